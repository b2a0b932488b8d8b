"""Content-verified done-records, labels against clip ids, and input trees with filesystem
oddities: ``lesbench validate`` finds what is wrong and a re-run of ``prepare`` repairs it.

Uses the tiny MEAD tree of ``test_prepare`` (six good clips, two of them W009 = test split),
prepared once in this process.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lesbench import schema
from lesbench.cli import main
from lesbench.pipelines import manifest as mf
from lesbench.pipelines.validate import validate

from test_prepare import build_tree, content_digest, read_clips


def quiet(msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mead_good")
    build_tree(root, bad=False)
    return root


@pytest.fixture(scope="module")
def prepared(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lesbench.pipelines.prepare import prepare

    out = tmp_path_factory.mktemp("prep_good") / "out"
    prepare(tree, out, test_speakers=("W009",), scheduler="sync", progress=False, log=quiet)
    return out


def flip_bytes(path: Path, n: int = 64) -> None:
    """Invert ``n`` bytes in the middle of ``path``: same size, and the same mtime (as bit rot
    would leave it), so only the content tells."""
    st = path.stat()
    blob = bytearray(path.read_bytes())
    mid = len(blob) // 2
    blob[mid: mid + n] = bytes(b ^ 0xFF for b in blob[mid: mid + n])
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def test_done_records_hash_every_output(prepared: Path) -> None:
    clips = read_clips(prepared)
    ok = clips.loc[clips["status"] == "ok", "clip_id"].iloc[0]
    rec = mf.read_done(prepared, ok)
    assert set(rec.outputs) == {f"frames/{ok}.parquet", f"audio/{ok}.parquet", f"crops/{ok}.mp4"}
    assert set(rec.hashes) == set(rec.outputs)
    for rel, digest in rec.hashes.items():
        assert digest == mf.sha256_file(prepared / rel)
    coeffs = mf.read_done(prepared, ok, "coeffs")
    assert coeffs.hashes == {f"coeffs/{ok}.parquet": mf.sha256_file(prepared / f"coeffs/{ok}.parquet")}
    fm = json.loads((prepared / mf.STATE_DIR / "face_model.json").read_text())
    assert fm["sha256"] == mf.sha256_file(prepared / schema.FACE_MODEL)
    assert validate(prepared).ok, validate(prepared).format()


def test_same_size_damage_is_found_by_validate_and_redone_by_prepare(tree: Path, prepared: Path,
                                                                     tmp_path: Path) -> None:
    from lesbench.pipelines.prepare import prepare

    reference = content_digest(prepared)
    ref_hashes = {p.name: json.loads(p.read_text())["hashes"]
                  for p in (prepared / mf.STATE_DIR / mf.DONE_DIR).glob("*.json")}
    out = tmp_path / "damaged"
    shutil.copytree(prepared, out)
    ids = sorted(read_clips(out).query("status == 'ok'")["clip_id"])
    hit = {ids[0]: f"frames/{ids[0]}.parquet", ids[1]: f"audio/{ids[1]}.parquet",
           ids[2]: f"crops/{ids[2]}.mp4", ids[3]: f"coeffs/{ids[3]}.parquet"}
    for rel in hit.values():
        flip_bytes(out / rel)

    report = validate(out)
    text = "\n".join(report.violations)
    for rel in hit.values():
        assert f"{out / rel}: content differs from the done-record" in text, report.format(50)
    assert len(report.violations) >= len(hit)
    assert main(["validate", str(out)]) == 1

    logs: list[str] = []
    summary = prepare(tree, out, test_speakers=("W009",), scheduler="sync", progress=False, log=logs.append)
    assert sorted(summary.damaged) == sorted(hit)
    for cid, rel in hit.items():
        assert any(rel in problem for problem in summary.damaged[cid])
    assert summary.n_processed == 3  # frames, audio, crops: the whole clip; coeffs: pass 2 only
    assert summary.n_reused == len(ids) - 3
    assert "(3 processed, 3 already done, 4 redone for damage;" in summary.format()
    assert any("no longer match their done-records" in line for line in logs)
    # repaired: equal to the untouched run, by content and by the recorded sha256 of every file
    assert content_digest(out) == reference
    got_hashes = {p.name: json.loads(p.read_text())["hashes"] for p in (out / mf.STATE_DIR / mf.DONE_DIR).glob("*.json")}
    assert got_hashes == ref_hashes
    assert validate(out).ok
    again = prepare(tree, out, test_speakers=("W009",), scheduler="sync", progress=False, log=quiet)
    assert again.n_processed == 0 and not again.damaged


def test_damaged_face_model_is_reported_and_refitted(tree: Path, prepared: Path, tmp_path: Path) -> None:
    from lesbench.pipelines.prepare import prepare

    reference = content_digest(prepared)
    out = tmp_path / "fm"
    shutil.copytree(prepared, out)
    flip_bytes(out / schema.FACE_MODEL)
    report = validate(out, check_crops=False)
    assert any(v.startswith(f"{out / schema.FACE_MODEL}: content differs") for v in report.violations), \
        report.format()
    assert main(["validate", "--skip-crops", str(out)]) == 1
    # the archive still opens: only the hash tells, and --skip-hashes leaves it out
    assert main(["validate", "--skip-crops", "--skip-hashes", str(out)]) == 0
    logs: list[str] = []
    prepare(tree, out, test_speakers=("W009",), scheduler="sync", progress=False, log=logs.append)
    assert any("fitting it again" in line for line in logs)
    assert content_digest(out) == reference  # the refit model is byte-identical
    assert validate(out).ok


def test_records_without_hashes_cannot_vouch_for_their_outputs(prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "old"
    shutil.copytree(prepared, out)
    cid = sorted(read_clips(out).query("status == 'ok'")["clip_id"])[0]
    path = mf.done_path(out, cid)
    rec = json.loads(path.read_text())
    rec["hashes"] = {}  # as an older lesbench wrote it (frames only) or a hand-made record
    path.write_text(json.dumps(rec))
    problems = dict(mf.verify_outputs(out, mf.read_done(out, cid)))
    assert set(problems) == set(rec["outputs"])
    assert all("cannot be verified" in p for p in problems.values())
    report = validate(out, check_crops=False)
    assert sum("cannot be verified" in v for v in report.violations) == 3
    # a record that is no longer JSON is damage too
    mf.done_path(out, cid, "coeffs").write_text("{not json")
    report = validate(out, check_crops=False)
    assert f"{mf.done_path(out, cid, 'coeffs')}: unreadable done-record" in report.violations
    assert mf.check_done(out, cid, {}, {}, "", "coeffs").damage == [f".lesbench/done/{cid}.coeffs.json: "
                                                                    "unreadable done-record"]
    # and a data set copied without its hidden state folder says so once
    shutil.rmtree(out / mf.STATE_DIR)
    report = validate(out, check_crops=False)
    assert [v for v in report.violations if "by content" in v] == [
        f"{out / mf.STATE_DIR / mf.DONE_DIR}: missing: no output can be verified by content (copy the data set "
        "with its hidden .lesbench folder, or re-run `lesbench prepare`)"]


def test_labels_contradicting_the_clip_id_are_reported(prepared: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "labels"
    shutil.copytree(prepared, out)
    table = pq.read_table(out / schema.CLIPS_PARQUET)
    rows = table.to_pylist()
    by_id = {r["clip_id"]: r for r in rows}
    by_id["M001_front_happy_3_001"]["emotion"] = "angry"
    by_id["M001_front_neutral_1_001"]["level"] = 2
    by_id["M002_front_angry_3_001"]["split"] = "test"  # M002 is a train speaker
    by_id["W009_front_sad_2_001"]["speaker"] = "W011"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out / schema.CLIPS_PARQUET)
    report = validate(out, check_crops=False, check_content=False)
    text = "\n".join(report.violations)
    assert "clips.parquet[M001_front_happy_3_001]: emotion 'angry' contradicts the clip id ('happy')" in text
    assert "clips.parquet[M001_front_happy_3_001]: emotion 'angry' contradicts the video path" in text
    assert "clips.parquet[M001_front_happy_3_001]: emotion 'angry' contradicts the audio path" in text
    assert "clips.parquet[M001_front_neutral_1_001]: level 2 contradicts the clip id (1)" in text
    assert ("clips.parquet[M002_front_angry_3_001]: split 'test' contradicts the data set's split rule: "
            "speaker 'M002' is 'train'") in text
    assert "clips.parquet[W009_front_sad_2_001]: speaker 'W011' contradicts the clip id ('W009')" in text
    # W011 is a train speaker while the row says test
    assert "clips.parquet[W009_front_sad_2_001]: split 'test' contradicts" in text
    flagged = {v.split("]")[0].removeprefix("clips.parquet[") for v in report.violations}
    assert flagged == {"M001_front_happy_3_001", "M001_front_neutral_1_001", "M002_front_angry_3_001",
                       "W009_front_sad_2_001"}


def test_symlink_loop_and_dangling_link_in_the_input_are_notes(tree: Path, prepared: Path,
                                                               tmp_path: Path) -> None:
    from lesbench.pipelines.prepare import prepare

    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    lvl = tree / "M001" / "video" / "front" / "happy" / "level_3"
    links = [tree / "M001" / "video" / "loop", tree / "M001" / "loopy", lvl / "007.mp4"]
    # added to the shared tree for this test only (the done-records name its paths, so the
    # run reuses every clip and only indexing is exercised)
    os.symlink("..", links[0])  # back to an ancestor
    os.symlink("loopy", links[1])  # resolves through itself (a name that is no clip)
    os.symlink("nowhere.mp4", links[2])  # dangling, named like a clip
    try:
        summary = prepare(tree, out, test_speakers=("W009",), scheduler="sync", progress=False, log=quiet)
    finally:
        for link in links:
            link.unlink()
    notes = {Path(p).relative_to(tree).as_posix(): r for p, r in summary.skipped_files}
    assert set(notes) == {"M001/video/loop", "M001/loopy", "M001/video/front/happy/level_3/007.mp4"}
    assert "symlink loop" in notes["M001/video/loop"] and "symlink loop" in notes["M001/loopy"]
    assert "dangling" in notes["M001/video/front/happy/level_3/007.mp4"]
    assert summary.n_clips == 6 and summary.n_processed == 0
    assert "3 file(s) could not be placed" in summary.format()
    info = json.loads((out / schema.DATASET_JSON).read_text())
    assert {Path(d["path"]).name for d in info["skipped_files"]} == {"loop", "loopy", "007.mp4"}
    assert content_digest(out).keys() == content_digest(prepared).keys()
    assert validate(out, check_crops=False).ok


def test_folder_labels_are_checked_against_the_path() -> None:
    from lesbench.pipelines.validate import ValidationReport
    from lesbench.pipelines.validate_labels import LabelRule as _LabelRule

    info = {"dataset": "folder", "reader": {"dataset": "folder", "root": "/data/vids", "sidecar": None,
                                            "test_speakers": [], "val_speakers": []}}
    rule = _LabelRule.from_info(info)
    base = {"speaker": "unknown", "view": "unknown", "emotion": "unknown", "level": 0, "split": "train"}
    good = {**base, "clip_id": "talks__Ann_Lee__01", "sentence": "01", "video_path": "/data/vids/talks/Ann Lee/01.mp4"}
    wrong_id = {**good, "clip_id": "talks__Bob__01"}
    labelled = {**good, "emotion": "happy", "split": "test"}
    rep = ValidationReport(Path("/out"))
    for row in (good, wrong_id, labelled):
        rule.check(rep, row)
    assert rep.violations == [
        "clips.parquet[talks__Bob__01]: clip_id contradicts the video path talks/Ann Lee/01.mp4 "
        "(expected 'talks__Ann_Lee__01')",
        "clips.parquet[talks__Ann_Lee__01]: emotion 'happy' but the data set has no sidecar to give it "
        "(expected 'unknown')",
        "clips.parquet[talks__Ann_Lee__01]: split 'test' contradicts the data set's split rule: speaker "
        "'unknown' is 'train' (test speakers [], val [])",
    ]
    # a sidecar may set labels and splits: only the id is checked then
    with_sidecar = _LabelRule.from_info({**info, "reader": {**info["reader"], "sidecar": "/data/vids/clips.csv"}})
    rep = ValidationReport(Path("/out"))
    with_sidecar.check(rep, labelled)
    assert rep.ok
