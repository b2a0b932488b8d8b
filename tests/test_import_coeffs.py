"""``lesbench import-coeffs deep3d``: Deep3DFaceRecon files mapped to the clips of a prepared
data set (by name, by MEAD path, per-frame folders), with every unusable file listed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lesbench import schema

CLIPS = {  # clip_id -> n_frames
    "W009_front_happy_3_001": 5,
    "W009_front_sad_2_002": 4,
    "W011_front_neutral_1_001": 3,
    "W011_front_angry_3_003": 6,
}


def fake_prepared(root: Path) -> Path:
    """The parts of a prepared data set the importer reads: clips.parquet and dataset.json."""
    import pandas as pd

    src = root / "mead"
    out = root / "prep"
    out.mkdir(parents=True)
    rows = []
    for cid, n in CLIPS.items():
        spk, view, emo, level, sent = cid.split("_")
        rows.append({"clip_id": cid, "video_path": str(src / spk / "video" / view / emo / f"level_{level}" / f"{sent}.mp4"),
                     "status": "ok", "n_frames": n})
    rows.append({"clip_id": "W011_front_fear_1_004", "video_path": str(src / "W011/video/front/fear/level_1/004.mp4"),
                 "status": "failed", "n_frames": None})
    pd.DataFrame(rows).to_parquet(out / schema.CLIPS_PARQUET)
    (out / schema.DATASET_JSON).write_text(json.dumps({"source_root": str(src), "fps": 25.0}))
    return out


def coeffs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.normal(0, 1, (n, 257)).astype(np.float32)
    arr[:, 224:227] = rng.uniform(-0.3, 0.3, (n, 3))  # angles, radians
    return arr


def test_import_deep3d_matches_by_name_path_and_frame_folder(tmp_path, capsys) -> None:
    import pyarrow.parquet as pq
    from scipy.io import savemat

    from lesbench.cli import main

    data = fake_prepared(tmp_path)
    src = tmp_path / "deep3d"
    arrays = {cid: coeffs(n, i) for i, (cid, n) in enumerate(CLIPS.items())}
    # 1. by name (.npy)
    src.mkdir()
    np.save(src / "W009_front_happy_3_001.npy", arrays["W009_front_happy_3_001"])
    # 2. by MEAD path (.mat, Deep3DFaceRecon_pytorch's split keys), one row short of the clip
    p = src / "W009/video/front/sad/level_2/002.mat"
    p.parent.mkdir(parents=True)
    a = arrays["W009_front_sad_2_002"][:3]
    savemat(p, {"id": a[:, :80], "exp": a[:, 80:144], "tex": a[:, 144:224], "angle": a[:, 224:227],
                "gamma": a[:, 227:254], "trans": a[:, 254:257]})
    # 3. a folder per clip with one file per frame (.txt, name order)
    d = src / "W011_front_angry_3_003"
    d.mkdir()
    for i, row in enumerate(arrays["W011_front_angry_3_003"]):
        (d / f"{i:06d}.txt").write_text(" ".join(f"{v:.9g}" for v in row) + "\n")
    # unusable: no such clip, a duplicate, a broken file, a failed clip
    np.save(src / "W015_front_happy_1_001.npy", coeffs(2, 9))
    (src / "dup").mkdir()
    np.save(src / "dup" / "W009_front_happy_3_001.npy", coeffs(5, 10))
    (src / "W011_front_neutral_1_001.csv").write_text("1,2,3\n")
    np.save(src / "W011_front_fear_1_004.npy", coeffs(2, 11))

    rc = main(["import-coeffs", "deep3d", str(src), "--data", str(data)])
    text = capsys.readouterr().out
    assert rc == 0, text
    out = data / "coeffs_deep3d"
    assert sorted(p.stem for p in out.glob("*.parquet")) == ["W009_front_happy_3_001", "W009_front_sad_2_002",
                                                             "W011_front_angry_3_003"]
    for cid, n in (("W009_front_happy_3_001", 5), ("W009_front_sad_2_002", 3), ("W011_front_angry_3_003", 6)):
        t = pq.read_table(out / f"{cid}.parquet")
        assert t.column("clip_id").to_pylist() == [cid] * n and t.column("frame").to_pylist() == list(range(n))
        np.testing.assert_allclose(np.asarray(t.column("id").to_pylist()), arrays[cid][:n, :80], rtol=1e-6)
        np.testing.assert_allclose(np.asarray(t.column("exp").to_pylist()), arrays[cid][:n, 80:144], rtol=1e-6)
        np.testing.assert_allclose(t.column("tz").to_numpy(), arrays[cid][:n, 256], rtol=1e-6)
    record = json.loads((out / "import.json").read_text())
    reasons = {u["path"]: u["reason"] for u in record["unmatched"]}
    assert set(reasons) == {"W015_front_happy_1_001.npy", "dup/W009_front_happy_3_001.npy",
                            "W011_front_neutral_1_001.csv", "W011_front_fear_1_004.npy"}
    assert "already has coefficients" in reasons["dup/W009_front_happy_3_001.npy"]
    assert "unreadable" in reasons["W011_front_neutral_1_001.csv"] and "257" in reasons["W011_front_neutral_1_001.csv"]
    assert "matches no prepared clip" in reasons["W011_front_fear_1_004.npy"]  # failed clips are not targets
    assert record["missing"] == ["W011_front_neutral_1_001"]
    assert record["mismatched"] == ["W009_front_sad_2_002"]
    assert record["written"]["W011_front_angry_3_003"]["files"][0] == "W011_front_angry_3_003/000000.txt"
    meta = json.loads((data / schema.DATASET_JSON).read_text())
    entry = meta["imports"]["coeffs_deep3d"]
    assert entry["files"] == "coeffs_deep3d/{clip_id}.parquet" and entry["n_clips"] == 3 and entry["n_unmatched"] == 4
    assert meta["source_root"]  # the rest of dataset.json kept
    assert "W015_front_happy_1_001.npy" in text and "not imported" in text

    # a second import from a smaller folder replaces the first: no stale clip files remain
    only = tmp_path / "only"
    only.mkdir()
    np.save(only / "W011_front_neutral_1_001.npy", arrays["W011_front_neutral_1_001"])
    assert main(["import-coeffs", "deep3d", str(only), "--data", str(data), "--strict", "--extra"]) == 0
    assert [p.stem for p in out.glob("*.parquet")] == ["W011_front_neutral_1_001"]
    assert pq.read_table(out / "W011_front_neutral_1_001.parquet").schema.field("gamma").type.list_size == 27
    capsys.readouterr()


def test_import_usage_errors(tmp_path, capsys) -> None:
    from lesbench.cli import main

    data = fake_prepared(tmp_path)
    nothing = tmp_path / "empty"
    nothing.mkdir()
    np.save(nothing / "unrelated.npy", coeffs(2, 0))
    assert main(["import-coeffs", "deep3d", str(nothing), "--data", str(data)]) != 0
    err = capsys.readouterr().err
    assert "matches a clip" in err and "unrelated.npy" in err
    assert not (data / "coeffs_deep3d").exists()  # nothing written when nothing matched
    assert main(["import-coeffs", "deep3d", str(tmp_path / "missing"), "--data", str(data)]) != 0
    assert "not found" in capsys.readouterr().err
    assert main(["import-coeffs", "deep3d", str(nothing), "--data", str(tmp_path / "not-prepared")]) != 0
    assert "not a prepared data set" in capsys.readouterr().err
