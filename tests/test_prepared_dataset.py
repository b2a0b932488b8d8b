"""The prepared-data-set object: typed dataset.json, path templates, readers, atomic writers."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from lesbench import schema
from lesbench.errors import DatasetError
from lesbench.prepared import CLIP_FILES, DatasetInfo, PreparedDataset, read_dataset_info


def _frames_table(n: int, missing: int) -> pa.Table:
    width = schema.N_LANDMARKS * 3
    lm = np.arange(n * width, dtype=np.float32).reshape(n, width)
    values = [None if i == missing else lm[i] for i in range(n)]
    return pa.table({
        "frame": pa.array(np.arange(n)[::-1], pa.int32()),  # written out of order on purpose
        "face": pa.array([i != missing for i in range(n)]),
        "landmarks": pa.array(values, pa.list_(pa.float32(), width)),
    }), lm


def test_info_round_trip_keeps_keys_order_and_unknown_keys(tmp_path):
    raw = {"format_version": "1.3", "fps": 25, "future_key": {"a": 1}, "source_root": "/x"}
    (tmp_path / "dataset.json").write_text(json.dumps(raw))
    info = PreparedDataset(tmp_path).info
    assert info.fps == 25 and info.source_root == "/x" and info.extra == {"future_key": {"a": 1}}
    assert list(info.to_dict().items()) == list(raw.items())
    assert read_dataset_info(tmp_path) == raw
    assert list(DatasetInfo().to_dict())[:3] == ["format_version", "lesbench_version", "created_utc"]
    assert "imports" not in DatasetInfo().to_dict()


@pytest.mark.parametrize("content, message", [
    ('{"format_version": "9.0"}', "not compatible"),
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"config": 3}', "'config' must be an object"),
    ('{"files": {"frames": "frames/all.parquet"}}', "has no {clip_id}"),
    ('{"files": {"crops": "../elsewhere/{clip_id}.mp4"}}', "outside the data set"),
])
def test_bad_dataset_json_names_the_file(tmp_path, content, message):
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        PreparedDataset(tmp_path).info
    assert str(tmp_path / "dataset.json") in str(err.value)


def test_templates_decide_where_clip_files_are(tmp_path):
    ds = PreparedDataset(tmp_path)
    assert ds.clip_file("frames", "A_1") == tmp_path / "frames" / "A_1.parquet"
    assert ds.clip_file("crops", "A_1") == tmp_path / "crops" / "A_1.mp4"
    ds.write_info(DatasetInfo(files={**CLIP_FILES, "crops": "video/crop-{clip_id}.mp4"}))
    assert ds.clip_file("crops", "A_1") == tmp_path / "video" / "crop-A_1.mp4"
    assert ds.path("crops") == tmp_path / "video"
    (tmp_path / "video").mkdir()
    for name in ("crop-A_1.mp4", "crop-B_2.mp4", ".crop-C.mp4.abc.tmp", "other.mp4"):
        (tmp_path / "video" / name).write_bytes(b"")
    assert [c for c, _ in ds.clip_files("crops")] == ["A_1", "B_2"]
    with pytest.raises(KeyError, match="per-clip part"):
        ds.clip_file("clips", "A_1")


def test_tables_and_landmarks(tmp_path):
    ds = PreparedDataset(tmp_path)
    table, lm = _frames_table(5, missing=2)
    path = ds.write_table("frames", "A_1", table)
    assert path == tmp_path / "frames" / "A_1.parquet"
    assert not [p for p in (tmp_path / "frames").iterdir() if p.name.endswith(".tmp")]
    got, face = ds.landmarks("A_1")
    # sorted by frame: row i of the result is frame i, which the table holds at row 4 - i
    assert got.shape == (5, schema.N_LANDMARKS, 3)
    assert face.tolist() == [True, True, False, True, True]  # frame 2 is the table's row 2
    np.testing.assert_array_equal(got[0].reshape(-1), lm[4])
    np.testing.assert_array_equal(got[4].reshape(-1), lm[0])
    assert np.isnan(got[2]).all()
    assert ds.read_table("frames", "A_1", ["frame"])["frame"].tolist() == [4, 3, 2, 1, 0]
    with pytest.raises(DatasetError, match="missing audio table for clip 'A_1'") as err:
        ds.read_table("audio", "A_1")
    assert str(tmp_path / "audio" / "A_1.parquet") in str(err.value)
    (tmp_path / "frames" / "B_2.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match="unreadable frames table"):
        ds.read_table("frames", "B_2")


def test_clips_checks_the_manifest(tmp_path):
    ds = PreparedDataset(tmp_path)
    with pytest.raises(DatasetError, match="is not a prepared data set"):
        ds.clips()
    rows = {"clip_id": ["b", "a", "c"], "speaker": ["S"] * 3, "emotion": ["angry"] * 3, "level": [1, 2, 3],
            "split": ["train"] * 3, "status": ["ok", "ok", "failed"]}
    import pyarrow.parquet as pq

    pq.write_table(pa.table(rows), tmp_path / "clips.parquet")
    assert ds.clips()["clip_id"].tolist() == ["a", "b"]
    assert ds.clips(statuses=None)["clip_id"].tolist() == ["a", "b", "c"]
    pq.write_table(pa.table({k: v for k, v in rows.items() if k != "split"}), tmp_path / "clips.parquet")
    with pytest.raises(DatasetError, match=r"missing columns \['split'\]"):
        ds.clips()


def test_provenance_hashes_the_data_set_files_and_parts_follow_the_layout(tmp_path):
    import hashlib

    import pyarrow.parquet as pq

    ds = PreparedDataset(tmp_path)
    ds.write_info(DatasetInfo(dataset="mead"))
    pq.write_table(pa.table({"clip_id": ["a"]}), tmp_path / "clips.parquet")
    prov = ds.provenance()
    assert prov == {
        "root": str(tmp_path.resolve()),
        "dataset.json_sha256": hashlib.sha256((tmp_path / "dataset.json").read_bytes()).hexdigest(),
        "clips.parquet_sha256": hashlib.sha256((tmp_path / "clips.parquet").read_bytes()).hexdigest(),
        "face_model.npz_sha256": None,  # absent: recorded as such, not skipped
    }
    assert ds.parts() == schema.dataset_paths(tmp_path)


def test_crop_frames_and_audio_on_the_crop_timeline(tmp_path):
    from lesbench import io

    ds = PreparedDataset(tmp_path)
    n, sr = 10, schema.SAMPLE_RATE
    frames = np.stack([np.full((32, 32, 3), 20 * i, np.uint8) for i in range(n)])
    io.write_video(ds.clip_file("crops", "mute"), frames, fps=schema.FPS)
    t = np.arange(int(n / schema.FPS * sr)) / sr
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    io.write_audio(tmp_path / "mute.wav", tone, sr=sr)

    got = ds.crop_frames("mute")
    assert got.shape == (n, 32, 32, 3)
    assert np.abs(got.reshape(n, -1).mean(1) - 20 * np.arange(n)).max() < 3  # lossy codec
    np.testing.assert_array_equal(ds.first_crop_frame("mute"), got[0])

    assert ds.crop_audio("mute") is None  # no track and no fallback
    assert ds.crop_audio("mute", fallback=tmp_path / "absent.wav") is None
    audio = ds.crop_audio("mute", fallback=tmp_path / "mute.wav")
    assert audio.dtype == np.float32 and abs(len(audio) - n / schema.FPS * sr) <= sr * 0.05
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * sr / len(audio) - 440.0) < 15.0

    io.write_video(ds.clip_file("crops", "voiced"), frames, fps=schema.FPS, audio=tone, sr=sr)
    own = ds.crop_audio("voiced", fallback=tmp_path / "absent.wav")  # its own track wins
    spectrum = np.abs(np.fft.rfft(own))
    assert abs(np.argmax(spectrum) * sr / len(own) - 440.0) < 15.0
    with pytest.raises(DatasetError, match="missing face crop for clip 'none'"):
        ds.crop_audio("none")
