"""dlib's 68 points as EAT's LMD code gets them: HOG frontal face detector (no upsampling) and the
68-point shape predictor on EAT's grey image, run only on the paired frames of two videos."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.weights import file_sha256, resolve as resolve_weight
from lesbench.metrics.base import MetricUnavailable
from lesbench.metrics.protocol import paired_indices
from lesbench.metrics.landmarks_distance import (DLIB68_MOUTH, LMDResult, paired_landmark_distance,
                                                 rescale_landmarks)

SHAPE_WEIGHTS = "dlib-shape-predictor-68"


def eat_grey(frame_rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey image as EAT's LMD code makes it: ``cv2.cvtColor(rgb, COLOR_BGR2GRAY)``
    on an RGB frame, i.e. ``0.114 R + 0.587 G + 0.299 B`` (red and blue weights swapped)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_BGR2GRAY)


def _check_frames(frames: Any, what: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[3] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"{what}: expected (T, H, W, 3) uint8 RGB frames, got {arr.shape} {arr.dtype}")
    return arr


class Dlib68Landmarker:
    """dlib's HOG frontal face detector + 68-point shape predictor, loaded once.

    ``landmarker(frames)`` with ``frames`` (T, H, W, 3) uint8 RGB returns (T, 68, 2) float32
    pixel coordinates (dlib's integers) of the first detected face, NaN on frames without one.
    :attr:`frames_done` and :attr:`seconds` accumulate for speed reports.
    """

    def __init__(self, predictor_path: str | Path | None = None, upsample: int = 0) -> None:
        try:
            import cv2  # noqa: F401 - needed by eat_grey; fail here, not on the first frame
            import dlib
        except ImportError as e:
            raise MetricUnavailable("lmd", f"dlib68 landmarks need dlib and opencv ({e}); "
                                    "pip install 'lesbench[dlib]'") from e
        try:
            self.path = resolve_weight(SHAPE_WEIGHTS, predictor_path)
        except LesbenchError as e:
            raise MetricUnavailable("lmd", str(e)) from e
        self.sha256 = {SHAPE_WEIGHTS: file_sha256(self.path)}
        self.upsample = int(upsample)
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(self.path))
        self.frames_done = 0
        self.seconds = 0.0

    def frame(self, frame_rgb: np.ndarray) -> np.ndarray | None:
        """(68, 2) float32 landmarks of the first face in one (H, W, 3) uint8 RGB frame, or None."""
        grey = eat_grey(frame_rgb)
        rects = self.detector(grey, self.upsample)
        if len(rects) == 0:
            return None
        shape = self.predictor(grey, rects[0])
        return np.array([(shape.part(k).x, shape.part(k).y) for k in range(68)], np.float32)

    def __call__(self, frames_rgb: Any) -> np.ndarray:
        frames = _check_frames(frames_rgb, "dlib68 landmarks")
        t0 = time.perf_counter()
        out = np.full((len(frames), 68, 2), np.nan, np.float32)
        for i, frame in enumerate(frames):
            pts = self.frame(frame)
            if pts is not None:
                out[i] = pts
        self.seconds += time.perf_counter() - t0
        self.frames_done += len(frames)
        return out


def dlib68_landmarks(frames_rgb: np.ndarray, predictor_path: str | Path | None = None,
                     landmarker: Dlib68Landmarker | None = None) -> np.ndarray:
    """(T, 68, 2) dlib landmarks of (T, H, W, 3) uint8 RGB frames (first face, EAT's grey image),
    NaN without a face. Pass ``landmarker`` to reuse loaded models across calls."""
    return (landmarker or Dlib68Landmarker(predictor_path))(frames_rgb)


def video_landmark_distance(pred_video: Any, ref_video: Any, landmarker: Dlib68Landmarker,
                            crop_size: int = 256, pairing: str = "linspace",
                            definition: str = "lesbench") -> LMDResult:
    """LMD of one clip from frames with dlib's 68 points: frames are paired first and only the
    paired frames are run through dlib. ``pred_video``, ``ref_video``: (T, H, W, 3) uint8 RGB."""
    pv = _check_frames(pred_video, "pred_video")
    rv = _check_frames(ref_video, "ref_video")
    ip, ir = paired_indices(len(pv), len(rv), pairing)
    p = rescale_landmarks(landmarker(pv[ip]).astype(np.float64), (pv.shape[2], pv.shape[1]), crop_size)
    r = rescale_landmarks(landmarker(rv[ir]).astype(np.float64), (rv.shape[2], rv.shape[1]), crop_size)
    return paired_landmark_distance(p, r, DLIB68_MOUTH, definition)
