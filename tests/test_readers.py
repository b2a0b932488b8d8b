"""Data-set readers (MEAD layout and generic folder) on synthetic trees with odd files.

The trees hold empty placeholder files: readers only index paths, they never open media.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lesbench.errors import DatasetError
from lesbench.pipelines.folder import FolderDataset, clip_id_from_relpath
from lesbench.pipelines.mead import MeadDataset
from lesbench.registry import DATASETS


def touch(root: Path, rel: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


@pytest.fixture()
def mead_tree(tmp_path: Path) -> Path:
    root = tmp_path / "mead"
    for rel in [
        # a normal speaker, with audio for two of three clips
        "M003/video/front/angry/level_3/001.mp4",
        "M003/video/front/angry/level_3/002.mp4",
        "M003/video/front/neutral/level_1/001.mp4",
        "M003/audio/angry/level_3/001.m4a",
        "M003/audio/neutral/level_1/001.m4a",
        "M003/video/left_30/angry/level_3/001.mp4",  # another view: filtered, not reported
        # nested one folder deeper + odd case + level3 spelling + .MP4
        "W011/video/video/FRONT/Happy/Level3/003.MP4",
        "W011/audio/happy/level_3/003.m4a",
        "M005/M005/video/front/surprise/level_2/010.mp4",  # alias 'surprise' -> surprised
        # things that cannot be placed
        "M003/video/front/excited/level_3/001.mp4",  # wrong emotion name
        "M003/video/front/sad/001.mp4",  # missing level folder
        "M003/video/front/sad/level_3/notes.txt",  # stray file
        "M003/video/front/sad/level_3/take2.mp4",  # not a sentence number
        "M003/video/backup/front/sad/level_3/004.mp4",  # unknown folder between
        "W011/video.tar",  # archive not extracted
        # ignored metadata at the root
        "truth.parquet",
        "demo.json",
    ]:
        touch(root, rel)
    return root


def test_mead_reader_places_clips_and_reports_the_rest(mead_tree: Path) -> None:
    ds = MeadDataset(mead_tree, test_speakers=("M003",), val_speakers=("W011",))
    clips = ds.clips()
    ids = [c.clip_id for c in clips]
    assert ids == sorted(ids)
    assert ids == [
        "M003_front_angry_3_001",
        "M003_front_angry_3_002",
        "M003_front_neutral_1_001",
        "M005_front_surprised_2_010",
        "W011_front_happy_3_003",
    ]
    by_id = {c.clip_id: c for c in clips}
    assert by_id["M003_front_angry_3_001"].audio_path.endswith("M003/audio/angry/level_3/001.m4a")
    assert by_id["M003_front_angry_3_002"].audio_path is None  # audio missing -> none
    assert by_id["W011_front_happy_3_003"].audio_path.endswith("003.m4a")
    assert by_id["W011_front_happy_3_003"].video_path.endswith("W011/video/video/FRONT/Happy/Level3/003.MP4")
    assert by_id["W011_front_happy_3_003"].level == 3
    assert {c.clip_id: c.split for c in clips} == {
        "M003_front_angry_3_001": "test",
        "M003_front_angry_3_002": "test",
        "M003_front_neutral_1_001": "test",
        "M005_front_surprised_2_010": "train",
        "W011_front_happy_3_003": "val",
    }
    reasons = {Path(p).relative_to(mead_tree).as_posix(): r for p, r in ds.skipped}
    assert set(reasons) == {
        "M003/video/front/excited/level_3/001.mp4",
        "M003/video/front/sad/001.mp4",
        "M003/video/front/sad/level_3/notes.txt",
        "M003/video/front/sad/level_3/take2.mp4",
        "M003/video/backup/front/sad/level_3/004.mp4",
        "W011/video.tar",
    }
    assert "unknown emotion 'excited'" in reasons["M003/video/front/excited/level_3/001.mp4"]
    assert "level" in reasons["M003/video/front/sad/001.mp4"]
    assert "not a video or audio file" in reasons["M003/video/front/sad/level_3/notes.txt"]
    assert "backup" in reasons["M003/video/backup/front/sad/level_3/004.mp4"]
    assert "extract" in reasons["W011/video.tar"]
    assert ds.other_views == 1


def test_mead_reader_views_default_splits_and_determinism(mead_tree: Path) -> None:
    a = MeadDataset(mead_tree).clips()
    b = MeadDataset(mead_tree).clips()
    assert a == b
    # default EAT test speakers: M003 is test, the others train
    assert {c.speaker: c.split for c in a} == {"M003": "test", "M005": "train", "W011": "train"}
    both = MeadDataset(mead_tree, views=("front", "left_30")).clips()
    assert "M003_left_30_angry_3_001" in [c.clip_id for c in both]
    assert len(both) == len(a) + 1


def test_mead_reader_duplicates_and_single_speaker_root(tmp_path: Path) -> None:
    root = tmp_path / "W009"
    touch(root, "video/front/fear/level_3/001.mp4")
    touch(root, "video/video/front/fear/level_3/001.mp4")  # same clip twice
    ds = MeadDataset(root)
    clips = ds.clips()
    assert [c.clip_id for c in clips] == ["W009_front_fear_3_001"]
    assert clips[0].split == "test"
    assert len(ds.skipped) == 1 and "duplicate" in ds.skipped[0][1]


def test_mead_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        MeadDataset(tmp_path / "missing").clips()
    with pytest.raises(DatasetError, match="unknown MEAD view"):
        MeadDataset(tmp_path, views=("back",))
    with pytest.raises(DatasetError, match="both"):
        MeadDataset(tmp_path, test_speakers=("M003",), val_speakers=("M003",))


def test_mead_reader_on_real_dev_tree(mead_dev: Path) -> None:
    ds = MeadDataset(mead_dev)
    clips = ds.clips()
    assert {c.emotion for c in clips} == {
        "angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised"
    }
    assert all(c.speaker == "W009" and c.split == "test" for c in clips)
    assert ds.skipped == []


def test_folder_reader_ids_sidecar_and_collisions(tmp_path: Path) -> None:
    root = tmp_path / "vids"
    touch(root, "talks/Ann Lee/01.mp4")
    touch(root, "talks/Ann_Lee/01.mp4")  # sanitises to the same id as the one above
    touch(root, "b.MOV")
    touch(root, "notes.txt")
    (root / "clips.csv").write_text(
        "path,speaker,emotion,level,split\n"
        "b.MOV,bob,Happy,2,test\n"
        "gone.mp4,x,happy,1,train\n"
    )
    ds = FolderDataset(root)
    clips = ds.clips()
    ids = [c.clip_id for c in clips]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert "b" in ids
    collided = [i for i in ids if i.startswith("talks__Ann_Lee__01__")]
    assert len(collided) == 2
    b = next(c for c in clips if c.clip_id == "b")
    assert (b.speaker, b.emotion, b.level, b.split) == ("bob", "happy", 2, "test")
    other = next(c for c in clips if c.clip_id != "b")
    assert (other.speaker, other.emotion, other.level, other.split) == ("unknown", "unknown", 0, "train")
    assert other.audio_path is None
    assert [r for _, r in ds.skipped] == ["sidecar row names a video that is not in the folder"]
    # stable: same ids on a second index
    assert [c.clip_id for c in FolderDataset(root).clips()] == ids


def test_clip_id_from_relpath() -> None:
    assert clip_id_from_relpath("talks/Ann Lee/01.mp4") == "talks__Ann_Lee__01"
    assert clip_id_from_relpath("über/ä b.mp4") == "ber__b"


def test_readers_are_registered() -> None:
    assert DATASETS.get("mead") is MeadDataset
    assert DATASETS.get("folder") is FolderDataset


# ------------------------------------------------------------------ filesystem oddities


def odd_tree(root: Path) -> dict[str, str]:
    """Two placeable clips plus every filesystem oddity the readers must survive; returns
    relative path -> a word the skip reason must contain."""
    import os

    touch(root, "M003/video/front/angry/level_3/001.mp4")
    real = touch(tmp := root.parent / "elsewhere", "happy/level_3/002.mp4").parent.parent
    assert tmp.is_dir()
    os.symlink(real, root / "M003" / "video" / "front" / "happy")  # a linked folder: followed
    lvl = root / "M003" / "video" / "front" / "angry" / "level_3"
    os.symlink("..", lvl / "up")  # loop back to an ancestor
    os.symlink("self.mp4", lvl / "self.mp4")  # a link that resolves through itself
    os.symlink("nowhere.mp4", lvl / "003.mp4")  # dangling
    os.mkfifo(lvl / "004.mp4")  # opening it would block
    (lvl / os.fsdecode(b"\xff05.mp4")).write_bytes(b"")  # not UTF-8
    os.symlink(real, root / "M003" / "video" / "front" / "sad")  # second link to a folder already read
    touch(root, "W011/video/front/sad/level_3/001.mp4")  # in a folder we make unlistable
    return {
        "M003/video/front/angry/level_3/up": "loop",
        "M003/video/front/angry/level_3/self.mp4": "loop",
        "M003/video/front/angry/level_3/003.mp4": "dangling",
        "M003/video/front/angry/level_3/004.mp4": "not a regular file",
        "M003/video/front/angry/level_3/\\xff05.mp4": "utf-8",
        "M003/video/front/sad": "already indexed",
        "W011/video/front/sad": "permission denied",
    }


@pytest.fixture()
def odd_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    import os

    root = tmp_path / "mead"
    expected = odd_tree(root)
    blocked = root / "W011" / "video" / "front" / "sad"
    real_scandir = os.scandir

    def scandir(path):  # tests run as root, where chmod 000 does not stop reading
        if Path(path) == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return root, expected


def test_readers_note_filesystem_oddities_and_never_raise(odd_root) -> None:
    root, expected = odd_root
    ds = MeadDataset(root)
    clips = ds.clips()
    assert [c.clip_id for c in clips] == ["M003_front_angry_3_001", "M003_front_happy_3_002"]
    # the linked folder is indexed under its path in the tree
    assert clips[1].video_path == str(root / "M003/video/front/happy/level_3/002.mp4")
    reasons = {Path(p).relative_to(root).as_posix(): r for p, r in ds.skipped}
    assert set(reasons) == set(expected)
    for rel, word in expected.items():
        assert word in reasons[rel].lower(), (rel, reasons[rel])
    for p, r in ds.skipped:  # printable everywhere: Parquet, JSON, terminals
        assert p.encode("utf-8") and r.encode("utf-8")

    folder = FolderDataset(root)
    assert len(folder.clips()) == 2
    assert {Path(p).relative_to(root).as_posix() for p, _ in folder.skipped} == set(expected)


def test_looping_root_is_a_clear_error(tmp_path: Path) -> None:
    import os

    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(DatasetError, match="not a folder"):
        MeadDataset(tmp_path / "loop").clips()
    with pytest.raises(DatasetError, match="not a folder"):
        FolderDataset(tmp_path / "loop").clips()
