"""``score`` on Dask workers: the report does not depend on the number of workers, on the order
tasks finish in, or on whether the cluster is attached by address; caches stay valid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lesbench.metrics.discover import ScoreItem
from lesbench.metrics.score import resolve_device, score

pytest.importorskip("mediapipe")
pytest.importorskip("distributed")

METRICS = ["fid", "psnr", "lmd"]


def _results(report) -> dict:
    """The JSON report without its timing (the only field allowed to differ between runs)."""
    d = report.as_dict()
    d.pop("seconds")
    return d


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from lesbench import io

    from tests.test_score import _face_frames, _tone

    root = tmp_path_factory.mktemp("score_parallel")
    pred, ref = root / "pred", root / "ref"
    n = 20
    for i in range(5):
        shift = 3 * i
        frames = _face_frames(n + shift)[shift:]
        io.write_video(ref / "happy" / "level_3" / f"c{i}.mp4", frames, fps=25, audio=_tone(n, i))
        # generated: another expression; one clip shorter than its reference (paired by linspace)
        gen = _face_frames(n + shift - (4 if i == 2 else 0), mouth=0.05 * (i + 1))[shift:]
        io.write_video(pred / "happy" / "level_3" / f"c{i}.mp4", gen, fps=25, audio=_tone(len(gen), i))
    (pred / "happy" / "level_3" / "broken.mp4").write_bytes(b"not a video")
    return pred, ref


@pytest.mark.slow
@pytest.mark.timeout(1800)  # five scoring runs with Inception and MediaPipe on a loaded CPU
def test_results_do_not_depend_on_the_number_of_workers(folders, tmp_path):
    from distributed import LocalCluster

    pred, ref = folders
    one = score(pred, ref=ref, metrics=METRICS, protocol="demo-v1", workers=1)
    assert one.metrics["fid"].unavailable is None and np.isfinite(one.metrics["fid"].value)
    assert one.metrics["fid"].counts["n_clips"] == 5
    assert one.metrics["lmd"].counts["n_clips"] == 5
    expected = _results(one)

    def same(got: dict, what: str) -> None:
        for name in METRICS:
            assert got["metrics"][name] == expected["metrics"][name], f"{name}: {what} differs from 1 worker"
        assert got == expected, f"{what} differs from 1 worker"

    same(_results(score(pred, ref=ref, metrics=METRICS, protocol="demo-v1", workers=2)), "2 workers")
    same(_results(score(pred, ref=ref, metrics=METRICS, protocol="demo-v1")), "in-process")
    # an attached cluster, with the reference cache written by two workers at once, then read back
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        for what in ("scheduler, cache written", "scheduler, cache read"):
            same(_results(score(pred, ref=ref, metrics=METRICS, protocol="demo-v1", scheduler=cluster.scheduler_address,
                                cache_dir=tmp_path / "cache")), what)
    assert len(list((tmp_path / "cache" / "inception").glob("*.npy"))) == 5
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # atomic writes leave no partial files
    json.dumps(expected)  # the report stays JSON


@pytest.mark.slow  # starting two worker processes takes ~30 s on a loaded 2-core machine
def test_two_workers_match_one_process_on_cheap_metrics(folders):
    """The fast variant: per-clip metrics and clip statuses (unreadable clip, unequal lengths)."""
    pred, ref = folders
    metrics = ["psnr", "ssim"]
    a = _results(score(pred, ref=ref, metrics=metrics, protocol="demo-v1"))
    b = _results(score(pred, ref=ref, metrics=metrics, protocol="demo-v1", workers=2))
    assert a == b
    clips = {c["key"]: c for c in b["clips"]}
    assert [c["key"] for c in b["clips"]] == sorted(clips)  # clip order, not finishing order
    assert any("unreadable" in i for i in clips["happy/level_3/broken"]["issues"])
    assert clips["happy/level_3/c2"]["n_paired"] == 16
    assert b["metrics"]["psnr"]["counts"]["n_clips"] == 5
    assert b["metrics"]["psnr"]["per_clip"]["happy/level_3/broken"] == {"skipped": "generated video unreadable"}


def test_a_metric_unavailable_on_the_workers_is_reported(folders):
    pred, ref = folders
    report = score(pred, ref=ref, metrics=["psnr", "lpips"], protocol="demo-v1", workers=1,
                   metric_options={"lpips": {"backbone_path": str(Path("/nonexistent/alex.pth"))}})
    assert report.metrics["psnr"].unavailable is None
    assert report.metrics["lpips"].unavailable  # with its reason, never dropped


def test_device_names():
    assert resolve_device(None) is None and resolve_device("auto") is None
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def _crops(n: int) -> np.ndarray:
    from lesbench.metrics.bench import _frames

    return _frames(n)


@pytest.mark.slow  # Inception runs at a few frames/s on a loaded CPU
def test_inception_batches_equal_one_frame_at_a_time():
    from lesbench.errors import WeightsNotFoundError
    from lesbench.metrics.fid_features import InceptionFeatures

    try:
        ex = InceptionFeatures(device="cpu", batch_size=2)
    except WeightsNotFoundError as e:
        pytest.skip(f"fid-inception weights not installed: {e}")
    frames = _crops(3)  # batches of 2 and 1
    batched = ex(frames)
    ex.batch_size = 1
    single = ex(frames)
    assert batched.shape == (3, 2048)
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-4)


def test_emotion_classifier_batches_equal_one_frame_at_a_time():
    from lesbench.errors import WeightsNotFoundError
    from lesbench.metrics.emotion_fer import FERClassifier

    try:
        clf = FERClassifier(device="cpu", batch_size=4)
    except (WeightsNotFoundError, ImportError) as e:
        pytest.skip(f"FER2013 classifier not installed: {e}")
    frames = _crops(6)
    batched = clf.predict_proba(frames)
    clf.batch_size = 1
    single = clf.predict_proba(frames)
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.gpu
def test_inception_on_cuda_equals_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from lesbench.errors import WeightsNotFoundError
    from lesbench.metrics.fid_features import InceptionFeatures

    try:
        cpu = InceptionFeatures(device="cpu", batch_size=8)
    except WeightsNotFoundError as e:
        pytest.skip(f"fid-inception weights not installed: {e}")
    frames = _crops(8)
    # TF32 / cuDNN algorithms differ from the CPU's: features agree to ~1e-3 relative
    np.testing.assert_allclose(InceptionFeatures(device="cuda", batch_size=8)(frames), cpu(frames), rtol=1e-2, atol=1e-2)


def test_cli_passes_workers_scheduler_and_device(monkeypatch, folders):
    """`lesbench score` and `lesbench evaluate` hand --workers/--scheduler/--device on."""
    import lesbench.evaluation as ev
    import lesbench.metrics.score as sc
    from lesbench.cli import build_parser, main

    seen: dict = {}
    real = sc.score

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **{**kwargs, "workers": None, "scheduler": None})

    monkeypatch.setattr(sc, "score", spy)
    pred, ref = folders
    assert main(["score", str(pred), "--ref", str(ref), "--metrics", "psnr", "--protocol", "demo-v1",
                 "--workers", "3", "--device", "cpu", "--batch-size", "7"]) == 0
    assert seen["workers"] == 3 and seen["scheduler"] is None and seen["device"] == "cpu"
    assert seen["metric_options"]["fid"] == {"batch_size": 7}
    args = build_parser().parse_args(["evaluate", "--method", "static", "--data", "x", "--scheduler", "tcp://h:1"])
    assert args.scheduler == "tcp://h:1" and args.workers is None and args.device == "auto"
    with pytest.raises(SystemExit):  # one or the other
        build_parser().parse_args(["score", "p", "--workers", "2", "--scheduler", "tcp://h:1"])
    captured: dict = {}
    real_items = sc.score_items
    monkeypatch.setattr(ev, "score_items",
                        lambda *a, **k: captured.update(k) or real_items(*a, **{**k, "workers": None}))
    ev.default_scorer([ScoreItem("happy/level_3/c0", pred / "happy" / "level_3" / "c0.mp4",
                                 ref / "happy" / "level_3" / "c0.mp4", "happy", 3)], "demo-v1", ["psnr"], workers=2)
    assert captured["workers"] == 2


def test_feature_cache_entries_are_whole_and_reused(tmp_path, folders):
    """Two writers of one entry each use their own temporary file; the entry is then read back
    instead of recomputed."""
    from lesbench.metrics.video import FeatureCache

    _, ref = folders
    video = ref / "happy" / "level_3" / "c0.mp4"
    cache = FeatureCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float64).reshape(3, 2) / 7

    idx = np.array([0, 5, 10])
    a = cache.inception(video, idx, "w:rgb", compute)
    b = FeatureCache(tmp_path).inception(video, idx, "w:rgb", compute)
    assert len(calls) == 1 and np.array_equal(a, b) and b.dtype == np.float64
    assert [p.suffix for p in (tmp_path / "inception").iterdir()] == [".npy"]
    c = cache.inception(video, idx[:2], "w:rgb", compute)  # other frames: another entry
    assert len(calls) == 2 and len(c) == 3
