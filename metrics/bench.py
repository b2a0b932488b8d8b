"""Throughput of the image / identity / emotion metric families, for ``lesbench bench score``.

:func:`bench_score_image` times each family on ``n_frames`` 256×256 face crops (a real face,
scikit-image's astronaut, with per-frame noise and shifts) after one warm-up call, with torch
limited to ``threads`` CPU threads (restored afterwards), on ``device`` (default: CUDA when
present). Figures are frames per second of the metric's whole per-frame work (preprocessing +
model), excluding model loading. A family whose weights or package are missing is reported with
``unavailable`` and its reason.

:func:`bench_score_workers` times ``score`` end to end on the tiny demo with 1 and 2 workers
(and in one process) in one run, and checks that the reports are identical.

:func:`bench_evaluate` times ``evaluate`` of one method end to end (generation, scoring, the
controllability sweep) on a prepared data set (default: the tiny demo, generated and prepared
first, not timed), with the seconds of each step and scoring stage from the results file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from lesbench import io
from lesbench.errors import LesbenchError
from lesbench.errors import MediaError
from lesbench.metrics.base import MetricUnavailable
from lesbench.metrics.discover import discover
from lesbench.metrics.emotion_fer import FERClassifier
from lesbench.metrics.fid_features import InceptionFeatures
from lesbench.metrics.identity import DlibFaceEmbedder
from lesbench.metrics.identity import csim_frames
from lesbench.metrics.image import load_lpips
from lesbench.metrics.image import lpips_frames
from lesbench.metrics.image import psnr_frames
from lesbench.metrics.image import ssim_frames
from lesbench.metrics.score import score
from lesbench.demo.generate import generate_demo


def _frames(n: int, seed: int = 0) -> np.ndarray:
    import cv2
    from skimage import data

    face = cv2.resize(data.astronaut()[0:300, 80:380], (256, 256), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    out = np.empty((n, 256, 256, 3), np.uint8)
    for i in range(n):
        shifted = np.roll(face, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))
        out[i] = np.clip(shifted + rng.normal(0, 3, face.shape), 0, 255).astype(np.uint8)
    return out


def _time(fn: Callable[[], Any], n_frames: int) -> dict[str, float]:
    fn()  # warm-up (lazy loading, allocator)
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return {"frames_per_s": n_frames / dt, "seconds": dt, "n_frames": n_frames}


def bench_score_image(device: str | None = None, n_frames: int = 64, threads: int | None = 1) -> dict[str, dict]:
    """``{family: {"frames_per_s", "seconds", "n_frames", "device"} | {"unavailable": reason}}``
    for ``fid`` (Inception pool3 feature pass), ``psnr``, ``ssim``, ``lpips``, ``csim``, ``emotion``
    (FER mini-Xception incl. crop/grayscale/resize)."""
    import torch


    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    frames = _frames(n_frames)
    ref = _frames(n_frames, seed=1)
    results: dict[str, dict] = {}

    def run(name: str, setup: Callable[[], Callable[[], Any]], n: int = n_frames, on: str = dev) -> None:
        try:
            fn = setup()
            results[name] = {**_time(fn, n), "device": on}
        except (MetricUnavailable, LesbenchError, ImportError) as e:
            results[name] = {"unavailable": str(e)}

    try:
        def fid_setup() -> Callable[[], Any]:

            ex = InceptionFeatures(device=dev, batch_size=32)
            return lambda: ex(frames)

        def psnr_setup() -> Callable[[], Any]:

            return lambda: psnr_frames(frames, ref)

        def ssim_setup() -> Callable[[], Any]:

            return lambda: ssim_frames(frames, ref, device=dev)

        def lpips_setup() -> Callable[[], Any]:

            model = load_lpips("alex", dev)
            return lambda: lpips_frames(frames, ref, model)

        n_csim = min(n_frames, 16)  # dlib runs on the CPU and is slow: time fewer frames

        def csim_setup() -> Callable[[], Any]:

            emb = DlibFaceEmbedder()
            return lambda: csim_frames(frames[0], frames[1 : n_csim + 1], emb)

        def emotion_setup() -> Callable[[], Any]:

            clf = FERClassifier(device=dev)
            return lambda: clf.predict_proba(frames)

        run("fid", fid_setup)
        run("psnr", psnr_setup, on="cpu")
        run("ssim", ssim_setup)
        run("lpips", lpips_setup)
        run("csim", csim_setup, n=n_csim, on="cpu")
        run("emotion", emotion_setup)
    finally:
        torch.set_num_threads(before)
    for r in results.values():
        if "frames_per_s" in r:
            r["threads"] = threads or before
    return results


def bench_image_families(n_frames: int = 64, repeat: int = 1, device: str | None = None) -> dict[str, float]:
    """``lesbench bench score`` provider: ``{family: frames/s}`` (NaN where unavailable)."""
    best: dict[str, float] = {}
    for _ in range(max(1, repeat)):
        for family, r in bench_score_image(device=device, n_frames=n_frames).items():
            fps = r.get("frames_per_s", float("nan"))
            best[family] = max(best.get(family, float("-inf")), fps) if fps == fps else float("nan")
    return best


def shifted_copy(ref: str | Path, out: str | Path, shift_px: int = 2) -> dict[str, Path]:
    """A stand-in "generated" set for timing the scorer: every video under ``ref`` (a MEAD tree
    or folder, as :func:`lesbench.metrics.score.discover` finds them) re-encoded at 25 fps,
    shifted right by ``shift_px`` pixels, with its audio. Returns ``{key: video}``."""

    out = Path(out)
    made: dict[str, Path] = {}
    for key, entry in sorted(discover(ref).items()):
        frames = io.read_frames(entry.video, fps=25)
        frames = np.roll(frames, shift_px, axis=2)
        try:
            audio = io.read_audio_for_video(entry.video, entry.audio, sr=16000)
        except MediaError:
            audio = None
        made[key] = io.write_video(out / f"{key}.mp4", frames, fps=25, audio=audio)
    return made


def bench_score_workers(ref: str | Path | None = None, workers: Sequence[int] = (1, 2),
                        metrics: Sequence[str] | None = None, protocol: str = "demo-v1",
                        device: str | None = None, workdir: str | Path | None = None,
                        in_process: bool = True) -> dict[str, Any]:
    """End-to-end time of ``score`` (discovery, decoding, tracking, every metric, startup of
    the cluster and of each worker's models) on one "method" (:func:`shifted_copy` of the
    reference clips), in this process and with each number of ``workers``, in one run so that
    the ratios compare like with like on a shared machine.

    ``ref``: reference videos (default: the tiny synthetic demo, generated in ``workdir``).
    Returns ``{"n_clips", "n_frames", "runs": {"in-process" | "workers=N": {"seconds",
    "frames_per_s"}}, "speedup": {"workers=N": seconds(workers=1) / seconds(workers=N)}}``, and
    ``"same_results"``: whether every run's report (timing removed) equals the first, and
    ``"differs_from_<first run>"``: run -> the report fields and metrics that differ.
    """
    import tempfile


    with tempfile.TemporaryDirectory(prefix="lesbench-bench-score-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        if ref is None:
            ref = base / "demo" / "mead"
            generate_demo(ref, seed=0, tiny=True)
        pred = shifted_copy(ref, base / "pred")
        n_frames = 0
        for entry in discover(pred).values():
            n_frames += int(io.probe(entry.video).n_frames or 0)
        runs: dict[str, dict[str, float]] = {}
        reports: list[dict] = []
        plan: list[int | None] = ([None] if in_process else []) + list(workers)
        for w in plan:
            t0 = time.perf_counter()
            report = score(pred, ref=ref, metrics=list(metrics) if metrics else None, protocol=protocol,
                           device=device, workers=w)
            dt = time.perf_counter() - t0
            runs["in-process" if w is None else f"workers={w}"] = {"seconds": dt, "frames_per_s": n_frames / dt}
            d = report.as_dict()
            d.pop("seconds")
            reports.append(d)
    speedup = {}
    if "workers=1" in runs:
        speedup = {k: runs["workers=1"]["seconds"] / v["seconds"] for k, v in runs.items() if k.startswith("workers=")}
    names = list(runs)
    differ = {names[i]: sorted(k for k in set(r) | set(reports[0]) if k != "metrics" and r.get(k) != reports[0].get(k))
              + sorted(m for m in r["metrics"] if r["metrics"][m] != reports[0]["metrics"].get(m))
              for i, r in enumerate(reports[1:], 1)}
    return {"n_clips": len(pred), "n_frames": n_frames, "protocol": protocol, "runs": runs, "speedup": speedup,
            "same_results": all(r == reports[0] for r in reports),
            "differs_from_" + names[0]: {k: v for k, v in differ.items() if v}}


def bench_evaluate(data: str | Path | None = None, method: str = "static", protocol: str = "demo-v1",
                   max_clips: int | None = None, device: str | None = None, workers: int | None = None,
                   checkpoint: str | Path | None = None, workdir: str | Path | None = None,
                   metrics: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Wall time of ``evaluate`` of ``method`` on the test split of the prepared data set
    ``data`` under ``protocol`` (``max_clips``: only the first N test clips), in this process or
    on ``workers`` Dask workers, with a fresh feature cache (so the first method's cost:
    reference clips tracked and embedded too).

    ``data``: default the tiny demo, generated and prepared in ``workdir`` first (not timed).
    ``metrics``: only these (default: the protocol's, and the sweep).
    ``checkpoint``: for les-talker / one-hot / audio-only. Returns ``{"method", "protocol",
    "data", "n_clips", "n_frames" (generated frames scored), "seconds" (end to end),
    "frames_per_s", "steps" (``generating``, ``scoring``, ``sweep``, ``scoring_stages``: seconds
    from the results file)}``.
    """
    import tempfile

    from lesbench.evaluation import evaluate
    from lesbench.pipelines.prepare import prepare

    say = log or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="lesbench-bench-evaluate-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        label = "tiny demo" if data is None else str(data)
        if data is None:
            say("bench evaluate: generating and preparing the tiny demo (not timed)")
            generate_demo(base / "demo" / "mead", seed=0, tiny=True)
            prepare(base / "demo" / "mead", base / "demo" / "prepared", dataset="mead", progress=False)
            data = base / "demo" / "prepared"
        options = {"checkpoint": str(checkpoint)} if checkpoint is not None else None
        out = base / "evaluate-out"
        t0 = time.perf_counter()
        res = evaluate(method, data, protocol=protocol, out=out, workdir=out / "work" / method, device=device,
                       method_options=options, max_clips=max_clips, workers=workers, progress=say,
                       metrics=list(metrics) if metrics else None)
        dt = time.perf_counter() - t0
        n_frames = sum(int(io.probe(v).n_frames or 0) for v in res.videos.values())
    rec = res.record
    return {"method": method, "protocol": rec["protocol"]["id"], "data": label, "workers": workers,
            "n_clips": int(rec["generation"]["n_generated"]), "n_frames": n_frames, "seconds": dt,
            "frames_per_s": n_frames / dt if dt > 0 else float("nan"),
            "steps": rec["environment"].get("seconds", {})}
