"""Throughput of the landmark-based metric families on 256x256 crops (``lesbench bench score``).

Families timed, each in frames per second of video scored:

- ``face-tracking``: MediaPipe FaceLandmarker (lesbench's ``FaceTracker``) on 256x256 RGB crops,
  the pass that sync, LMD and AU share (done once per video);
- ``sync``: :func:`lesbench.metrics.sync_estimate.av_sync` (±15 shifts) from landmarks + 16 kHz audio;
- ``lmd``: :func:`lesbench.metrics.landmarks_distance.landmark_distance` from two landmark tracks;
- ``au``: :func:`lesbench.metrics.action_units.au_scores` from two AU tracks;
- ``sync+tracking`` etc.: the family including its share of face tracking (what a user sees).

Torch and BLAS are limited to one thread while timing (``threads=1``), so the figures are per
core. Inputs are generated here (a public-domain photo from scikit-image, synthetic audio).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np
from lesbench.extract.face import FaceTracker
from lesbench.extract.face_arrays import aus_array
from lesbench.extract.face_arrays import landmarks_array
from lesbench.metrics.action_units import au_scores
from lesbench.metrics.landmarks_distance import landmark_distance
from lesbench.metrics.sync_estimate import av_sync


def _best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _crops(n: int) -> np.ndarray:
    import cv2
    import skimage.data

    img = skimage.data.astronaut()
    out = [cv2.resize(np.ascontiguousarray(img[40:240, 100 + i % 20:300 + i % 20]), (256, 256)) for i in range(n)]
    return np.stack(out)


def bench_sync_families(n_frames: int = 250, repeat: int = 3, threads: int = 1) -> dict[str, float]:
    """Frames per second for each family (see the module docstring) on ``n_frames`` 256x256 frames."""
    import torch


    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        crops = _crops(n_frames)
        with FaceTracker() as tracker:
            tracker.track(crops[:5], fps=25.0)  # warm-up (model load)
            holder: dict[str, Any] = {}
            t_track = _best_of(lambda: holder.__setitem__("face", tracker.track(crops, fps=25.0)), repeat)
        face = holder["face"]
        lm = landmarks_array(face)
        aus = aus_array(face)
        rng = np.random.default_rng(0)
        audio = (rng.normal(0, 0.1, n_frames * 640) * np.repeat(rng.random(n_frames), 640)).astype(np.float32)
        lm2 = lm + rng.normal(0, 0.5, lm.shape).astype(np.float32)
        t_sync = _best_of(lambda: av_sync(lm, audio), repeat)
        t_lmd = _best_of(lambda: landmark_distance(lm2, lm), repeat)
        t_au = _best_of(lambda: au_scores(aus, aus[::-1]), repeat)
    finally:
        torch.set_num_threads(old_threads)
    fps = {
        "face-tracking": n_frames / t_track,
        "sync": n_frames / t_sync,
        "lmd": n_frames / t_lmd,
        "au": n_frames / t_au,
    }
    # a family including face tracking: LMD and AU track two videos (generated + reference)
    fps["sync+tracking"] = n_frames / (t_sync + t_track)
    fps["lmd+tracking"] = n_frames / (t_lmd + 2 * t_track)
    fps["au+tracking"] = n_frames / (t_au + 2 * t_track)
    return fps


def format_bench(fps: dict[str, float]) -> str:
    lines = [f"{'family':<18}{'frames/s (1 core, 256x256)':>28}"]
    lines += [f"{k:<18}{v:>28.1f}" for k, v in fps.items()]
    return "\n".join(lines)
