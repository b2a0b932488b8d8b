"""``lesbench score`` on two tiny folders of videos (made here from a public-domain photo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lesbench.metrics.protocol import load_protocol
from lesbench.metrics.discover import discover
from lesbench.metrics.report import bootstrap_ci
from lesbench.metrics.score import score

pytest.importorskip("mediapipe")


def _face_frames(n: int, dy: float = 0.0, mouth: float = 0.0) -> np.ndarray:
    """n 256x256 frames of the astronaut photo's face, slowly panning; ``mouth`` > 0 stretches
    the lower face region a little (a different 'generated' expression)."""
    import cv2
    import skimage.data

    img = skimage.data.astronaut()  # public domain (NASA), shipped by scikit-image
    out = []
    for i in range(n):
        x0, y0 = 100 + i, 40 + int(dy)
        crop = np.ascontiguousarray(img[y0:y0 + 200, x0:x0 + 200])
        if mouth:
            h = crop.shape[0]
            lower = cv2.resize(crop[int(h * 0.6):], (200, int(h * 0.4 * (1 + mouth))))
            crop = np.vstack([crop[:int(h * 0.6)], lower])[:200]
        out.append(cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def _tone(n_frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames * 640) / 16000
    env = np.repeat(rng.uniform(0.1, 1.0, n_frames), 640)
    return (0.3 * env * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from lesbench import io

    root = tmp_path_factory.mktemp("score")
    pred, ref = root / "pred", root / "ref"
    n = 30
    face = _face_frames(n)
    blank = np.full((n, 256, 256, 3), 90, np.uint8)
    for d, mouth in ((ref, 0.0), (pred, 0.08)):
        frames = _face_frames(n, mouth=mouth)
        io.write_video(d / "happy" / "level_3" / "talk.mp4", frames, fps=25, audio=_tone(n))
        io.write_video(d / "happy" / "level_3" / "mute.mp4", frames, fps=25)            # no audio
        io.write_video(d / "angry" / "level_1" / "empty.mp4", blank, fps=25, audio=_tone(n, 1))  # no face
        io.write_video(d / "same.mp4", face, fps=25, audio=_tone(n, 2))
    (pred / "broken.mp4").write_bytes(b"not a video")
    return pred, ref


def test_discover_reads_emotion_and_level_from_the_path(folders):
    pred, _ = folders
    entries = discover(pred)
    assert entries["happy/level_3/talk"].emotion == "happy" and entries["happy/level_3/talk"].level == 3
    assert entries["angry/level_1/empty"].emotion == "angry" and entries["angry/level_1/empty"].level == 1
    assert entries["same"].emotion is None


def test_score_folders(folders, tmp_path):
    pred, ref = folders
    report = score(pred, ref=ref, metrics=["lmd", "sync", "au", "lse", "nonexistent"], protocol="mead-v1")
    clips = {c.key: c for c in report.clips}
    # per-clip problems are reported, never raised
    assert any("no_audio" in i for i in clips["happy/level_3/mute"].issues)
    assert any("no_face" in i for i in clips["angry/level_1/empty"].issues)
    assert any("unreadable" in i for i in clips["broken"].issues)
    assert "broken" in report.unpaired
    lmd = report.metrics["lmd"]
    assert lmd.unavailable is None
    assert lmd.per_clip["same"]["m_lmd"] == pytest.approx(0.0, abs=1e-3)  # identical videos
    assert lmd.per_clip["happy/level_3/talk"]["m_lmd"] > 0.05  # stretched lower face (same ~ 0)
    assert lmd.per_clip["angry/level_1/empty"] == {"skipped": "no face"}
    assert lmd.value["m_lmd"] == pytest.approx(np.mean([lmd.per_clip[k]["m_lmd"] for k in
                                                        ("happy/level_3/mute", "happy/level_3/talk", "same")]))
    au = report.metrics["au"]
    assert au.per_clip["same"]["mae"] == pytest.approx(0.0, abs=1e-6)
    assert report.metrics["sync"].per_clip["happy/level_3/mute"] == {"skipped": "no audio"}
    assert report.metrics["lse"].unavailable and "syncnet_v2.model" in report.metrics["lse"].unavailable
    assert "not a registered metric" in report.metrics["nonexistent"].unavailable
    assert report.protocol["id"] == "mead-v1@1.1"
    assert len(report.weights["mediapipe-face-landmarker"]) == 64
    table = report.table()
    assert "lmd.m_lmd" in table and "unavailable:" in table and "clip issues:" in table
    out = report.write_json(tmp_path / "s.json")
    data = json.loads(out.read_text())
    assert data["metrics"]["lmd"]["version"] == "lmd-mp478/1"
    assert data["metrics"]["lmd"]["per_clip"]["same"]["m_lmd"] == pytest.approx(0.0, abs=1e-3)


def test_cli_score(folders, tmp_path, capsys):
    from lesbench.cli import main

    pred, ref = folders
    out = tmp_path / "r.json"
    assert main(["score", str(pred), "--ref", str(ref), "--metrics", "lmd", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lmd.f_lmd" in text and out.is_file()


def test_metrics_needing_a_reference_are_unavailable_without_one(folders):
    pred, _ = folders
    report = score(pred, metrics=["lmd"])
    assert report.metrics["lmd"].unavailable == "needs reference videos (--ref)"



def test_sync_compares_with_the_reference_only_where_there_is_one(folders):
    """``sync`` reads the reference's face as an optional input: with --ref it adds generated
    minus reference; without, every clip is still scored (no "needs reference videos")."""
    pred, ref = folders
    paired = score(pred, ref=ref, metrics=["sync"], protocol="mead-v1").metrics["sync"]
    alone = score(pred, metrics=["sync"], protocol="mead-v1").metrics["sync"]
    assert paired.unavailable is None and alone.unavailable is None
    same, same_alone = paired.per_clip["same"], alone.per_clip["same"]
    # identical videos on the same audio: the reference's sync is the clip's own
    assert same["ref_confidence"] == same["confidence"] and same["confidence_vs_ref"] == 0.0
    assert same_alone["confidence"] == same["confidence"] and np.isnan(same_alone["confidence_vs_ref"])
    # the mean is over the clips with a reference; the others are counted, not averaged
    assert paired.value["confidence_vs_ref"] == pytest.approx(np.nanmean(
        [v["confidence_vs_ref"] for v in paired.per_clip.values() if isinstance(v, dict) and "confidence" in v]))
    assert alone.counts["n_clips_no_value_confidence_vs_ref"] == alone.counts["n_clips"]

def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = list(np.random.default_rng(0).normal(1.0, 0.5, 40))
    lo, hi = bootstrap_ci(x, n=2000, seed=0)
    assert lo < np.mean(x) < hi and bootstrap_ci(x, n=2000, seed=0) == (lo, hi)
    assert bootstrap_ci([1.0]) is None


def test_protocol_is_data(tmp_path):
    p = load_protocol("mead-v1")
    assert p.test_speakers == ("M003", "M030", "W009", "W015")
    assert p.crop_size == 256 and p.fps == 25 and p.sample_rate == 16000
    assert p.sampling("fid").unit == "dataset" and p.sampling("lmd").every == 1
    assert p.au_threshold_vector().shape == (17,)
    custom = tmp_path / "mine.yaml"
    custom.write_text("name: mine\nversion: '2'\nfps: 25\nsample_rate: 16000\n"
                      "frames: {fid: {every: 5, max_frames: 10, unit: dataset}}\n"
                      "au: {default_threshold: 0.5, thresholds: {AU45: 0.2}}\n")
    q = load_protocol(custom)
    assert q.id == "mine@2"
    np.testing.assert_array_equal(q.frame_indices("fid", 100), np.arange(0, 50, 5))
    assert q.au_threshold_vector()[-1] == pytest.approx(0.2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: '1'\nfps: 25\nsample_rate: 16000\nau: {thresholds: {AU99: 1}}\n")
    from lesbench.errors import LesbenchError

    with pytest.raises(LesbenchError, match="AU99"):
        load_protocol(bad)
    with pytest.raises(LesbenchError, match="mead-v1"):
        load_protocol("mead-v9")


def test_bench_sync_families_reports_positive_rates():
    from lesbench.metrics.bench_sync import bench_sync_families

    fps = bench_sync_families(n_frames=30, repeat=1)
    assert set(fps) >= {"face-tracking", "sync", "lmd", "au"}
    assert all(v > 0 for v in fps.values())
    assert fps["sync+tracking"] < fps["sync"]


def test_registered_metrics_import():
    from lesbench.registry import METRICS

    for name in ("sync", "lse", "lmd", "au", "controllability"):
        cls = METRICS.get(name)
        assert cls.name == name and cls.version
