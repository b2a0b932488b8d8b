"""M-LMD / F-LMD: mouth and full-face landmark distance between generated and reference video.

Definition, following EAT's evaluation code (``test_lmd*.py`` of the EAT benchmark, which
detects dlib's 68 points on 256x256 aligned crops):

1. Pair generated and reference frames with :func:`lesbench.metrics.protocol.paired_indices`
   (``m = min`` of the two lengths, evenly spaced indices in the longer clip).
2. Per frame and point set (mouth or face), **centre** each set on its own mean (removes
   translation; no scaling, no rotation).
3. Per frame: Euclidean distance of corresponding points, in pixels at the 256x256 crop.
4. Clip value: sum over valid frames and points / (valid frames x points) = mean per-point
   distance. Frames where either side has no face are skipped (EAT does the same).
   Data-set value: mean over clips.

Landmark sets (``landmarks=``), recorded in the version:

- ``mediapipe478`` (default, version ``lmd-mp478/1``): MediaPipe's 478 points from the shared
  face tracking; mouth = the 40 lip points of MediaPipe's lips contour (outer and inner), face =
  all 478. **Not numerically comparable** with papers' LMD (different points, 478 vs 68, lip
  contours sampled differently); use it to compare methods within lesbench.
- ``dlib68`` (version ``lmd-dlib68/1``): EAT's exact points, dlib's frontal detector + the
  68-point predictor (``lesbench.weights`` name ``dlib-shape-predictor-68``) on each frame;
  mouth = points 48-67 (20), face = 0-67 (68). This is the setting to compare with numbers
  reported under EAT's protocol.

Landmark pixels are rescaled to ``crop_size`` (256) when the video is not 256x256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.metrics._face import landmarks_array
from lesbench.metrics.base import Metric
from lesbench.metrics.protocol import paired_indices

#: MediaPipe FaceMesh lips (outer + inner contours), 40 points.
MEDIAPIPE_LIPS: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191,
    267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
)
DLIB68_MOUTH: tuple[int, ...] = tuple(range(48, 68))

VERSIONS = {"mediapipe478": "lmd-mp478/1", "dlib68": "lmd-dlib68/1"}


@dataclass
class LMDResult:
    """One clip: ``m_lmd``, ``f_lmd`` (pixels at 256), ``n_frames`` paired, ``n_valid`` used."""

    m_lmd: float
    f_lmd: float
    n_frames: int
    n_valid: int

    def as_dict(self) -> dict[str, float]:
        return {"m_lmd": self.m_lmd, "f_lmd": self.f_lmd}


def mouth_indices(landmarks: str) -> tuple[int, ...]:
    if landmarks == "mediapipe478":
        return MEDIAPIPE_LIPS
    if landmarks == "dlib68":
        return DLIB68_MOUTH
    raise ValueError(f"unknown landmark set {landmarks!r}; known: {sorted(VERSIONS)}")


def centred_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T,) mean over points of ||(a - mean a) - (b - mean b)|| for (T, N, 2) point sets."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return np.linalg.norm(a - b, axis=2).mean(axis=1)


def landmark_distance(pred: Any, ref: Any, landmarks: str = "mediapipe478",
                      pred_size: tuple[int, int] | None = None, ref_size: tuple[int, int] | None = None,
                      crop_size: int = 256, pairing: str = "linspace") -> LMDResult:
    """M-LMD and F-LMD of one clip (module docstring).

    Args:
        pred, ref: (T, N, 2|3) landmarks in pixels (NaN rows = no face) or frames tables.
        pred_size, ref_size: (width, height) of the videos the pixels refer to; landmarks are
            rescaled to ``crop_size`` (None: already at ``crop_size``).
    """
    mouth = list(mouth_indices(landmarks))
    p = landmarks_array(pred)[..., :2].astype(np.float64)
    r = landmarks_array(ref)[..., :2].astype(np.float64)
    if p.shape[1] != r.shape[1]:
        raise ValueError(f"landmark counts differ: {p.shape[1]} vs {r.shape[1]}")
    for arr, size in ((p, pred_size), (r, ref_size)):
        if size is not None:
            arr[..., 0] *= crop_size / float(size[0])
            arr[..., 1] *= crop_size / float(size[1])
    ip, ir = paired_indices(len(p), len(r), pairing)
    p, r = p[ip], r[ir]
    ok = np.isfinite(p).all(axis=(1, 2)) & np.isfinite(r).all(axis=(1, 2))
    if not ok.any():
        return LMDResult(float("nan"), float("nan"), len(ip), 0)
    m = centred_distance(p[ok][:, mouth], r[ok][:, mouth])
    f = centred_distance(p[ok], r[ok])
    return LMDResult(float(m.mean()), float(f.mean()), len(ip), int(ok.sum()))


def dlib68_landmarks(frames_rgb: np.ndarray, predictor_path: str | Path | None = None) -> np.ndarray:
    """(T, 68, 2) dlib landmarks (first detected face, upsample 0, as EAT), NaN without a face."""
    import cv2
    import dlib

    from lesbench.weights import resolve as resolve_weight

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(resolve_weight("dlib-shape-predictor-68", predictor_path)))
    out = np.full((len(frames_rgb), 68, 2), np.nan, np.float32)
    for i, frame in enumerate(frames_rgb):
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        rects = detector(gray, 0)
        if len(rects):
            shape = predictor(gray, rects[0])
            out[i] = [(shape.part(k).x, shape.part(k).y) for k in range(68)]
    return out


class LandmarkDistance(Metric):
    """M-LMD and F-LMD (pixels at 256x256, lower is better); :meth:`compute` = mean over clips."""

    name: ClassVar[str] = "lmd"
    version: ClassVar[str] = VERSIONS["mediapipe478"]
    higher_is_better: ClassVar[bool | None] = False
    inputs: ClassVar[tuple[str, ...]] = ("pred_face", "ref_face", "pred_size", "ref_size")
    needs_face: ClassVar[bool] = True

    def __init__(self, device: str | None = None, landmarks: str = "mediapipe478", crop_size: int = 256,
                 pairing: str = "linspace") -> None:
        mouth_indices(landmarks)  # validates the name
        self.landmarks, self.crop_size, self.pairing = landmarks, crop_size, pairing
        self.version = VERSIONS[landmarks]  # type: ignore[misc]  (instance overrides the default)
        super().__init__(device)

    def reset(self) -> None:
        self.results: list[LMDResult] = []

    def update(self, pred_face: Any, ref_face: Any, pred_size: tuple[int, int] | None = None,
               ref_size: tuple[int, int] | None = None) -> None:
        self.results.append(landmark_distance(pred_face, ref_face, self.landmarks, pred_size, ref_size,
                                              self.crop_size, self.pairing))

    def compute(self) -> dict[str, float]:
        ok = [r for r in self.results if r.n_valid > 0]
        if not ok:
            raise ValueError("lmd: no clip with a face in both videos")
        return {"m_lmd": float(np.mean([r.m_lmd for r in ok])), "f_lmd": float(np.mean([r.f_lmd for r in ok]))}


def lmd(pred: Any, ref: Any, landmarks: str = "mediapipe478", **kwargs: Any) -> dict[str, float]:
    """Functional twin of :class:`LandmarkDistance` for one clip: ``{"m_lmd", "f_lmd"}``."""
    return landmark_distance(pred, ref, landmarks, **kwargs).as_dict()
