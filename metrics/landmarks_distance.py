"""The LMD / LVD kernel on landmark tracks: the point sets (mouth, face), per-frame centred and
velocity distances, and one clip's distances from two landmark tracks (the definitions are in
:mod:`lesbench.metrics.landmarks`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lesbench.extract.face_arrays import landmarks_array
from lesbench.metrics.protocol import paired_indices

#: MediaPipe FaceMesh lips (outer + inner contours), 40 points.
MEDIAPIPE_LIPS: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191,
    267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
)
#: dlib / iBUG 68-point mouth (outer 48-59, inner 60-67), as imutils' ``FACIAL_LANDMARKS_IDXS["mouth"]``.
DLIB68_MOUTH: tuple[int, ...] = tuple(range(48, 68))

LANDMARK_SETS = ("mediapipe478", "dlib68")
DEFINITIONS = ("lesbench", "eat")


@dataclass
class LMDResult:
    """One clip. Distances in pixels at the crop size; NaN when no frame is valid.

    ``n_frames`` paired frames, ``n_valid`` of them with a face in both videos,
    ``n_no_face_pred`` / ``n_no_face_ref`` paired frames without a face in each video.
    ``m_lvd`` / ``f_lvd`` are EAT's velocity distances (``definition="eat"``; None otherwise),
    ``f_lvd`` as EAT's code computes it (the mouth term over 68), ``f_lvd_face`` the velocity
    distance of the whole face (what that code meant).
    """

    m_lmd: float
    f_lmd: float
    n_frames: int
    n_valid: int
    n_no_face_pred: int = 0
    n_no_face_ref: int = 0
    m_lvd: float | None = None
    f_lvd: float | None = None
    f_lvd_face: float | None = None

    def as_dict(self) -> dict[str, float]:
        out = {"m_lmd": self.m_lmd, "f_lmd": self.f_lmd}
        if self.m_lvd is not None and self.f_lvd is not None:
            out.update(m_lvd=self.m_lvd, f_lvd=self.f_lvd)
        return out


def mouth_indices(landmarks: str) -> tuple[int, ...]:
    if landmarks == "mediapipe478":
        return MEDIAPIPE_LIPS
    if landmarks == "dlib68":
        return DLIB68_MOUTH
    raise ValueError(f"unknown landmark set {landmarks!r}; known: {', '.join(LANDMARK_SETS)}")


def centred_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T,) mean over points of ||(a - mean a) - (b - mean b)|| for (T, N, 2) point sets."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return np.linalg.norm(a - b, axis=2).mean(axis=1)


def velocity_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T - 1,) summed over points ||(a[t] - a[t-1]) - (b[t] - b[t-1])|| for (T, N, 2) point sets
    (raw coordinates, consecutive rows; EAT's landmark velocity term)."""
    return np.linalg.norm(np.diff(a, axis=0) - np.diff(b, axis=0), axis=2).sum(axis=1)


def paired_landmark_distance(p: np.ndarray, r: np.ndarray, mouth: tuple[int, ...] | list[int],
                             definition: str = "lesbench") -> LMDResult:
    """The kernel: LMD (and EAT's LVD) of two already paired landmark sequences.

    Args:
        p, r: (M, N, 2) landmarks in pixels of the generated and reference video, row i of each
            paired; a row with any NaN = no face in that frame.
        mouth: indices of the mouth points in the N.
        definition: ``lesbench`` or ``eat`` (module docstring).
    """
    if definition not in DEFINITIONS:
        raise ValueError(f"unknown LMD definition {definition!r}; known: {', '.join(DEFINITIONS)}")
    p = np.asarray(p, np.float64)
    r = np.asarray(r, np.float64)
    if p.shape != r.shape or p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"paired landmarks must both be (M, N, 2), got {p.shape} and {r.shape}")
    has_p = np.isfinite(p).all(axis=(1, 2))
    has_r = np.isfinite(r).all(axis=(1, 2))
    ok = has_p & has_r
    n_valid = int(ok.sum())
    res = LMDResult(float("nan"), float("nan"), len(p), n_valid, int((~has_p).sum()), int((~has_r).sum()))
    eat = definition == "eat"
    if eat:
        res.m_lvd = res.f_lvd = res.f_lvd_face = float("nan")
    if n_valid == 0:
        return res
    mouth = list(mouth)
    pv, rv = p[ok], r[ok]
    res.m_lmd = float(centred_distance(pv[:, mouth], rv[:, mouth]).mean())
    res.f_lmd = float(centred_distance(pv, rv).mean())
    if eat:
        # EAT divides the velocity sums by the valid frames (not valid frames - 1), over the
        # steps between consecutive valid frames; F-LVD takes the mouth sum (module docstring).
        mouth_sum = float(velocity_distance(pv[:, mouth], rv[:, mouth]).sum())
        res.m_lvd = mouth_sum / (n_valid * len(mouth))
        res.f_lvd = mouth_sum / (n_valid * p.shape[1])
        res.f_lvd_face = float(velocity_distance(pv, rv).sum()) / (n_valid * p.shape[1])
    return res


def rescale_landmarks(arr: np.ndarray, size: tuple[int, int] | None, crop_size: int) -> np.ndarray:
    if size is not None:
        arr[..., 0] *= crop_size / float(size[0])
        arr[..., 1] *= crop_size / float(size[1])
    return arr


def landmark_distance(pred: Any, ref: Any, landmarks: str = "mediapipe478",
                      pred_size: tuple[int, int] | None = None, ref_size: tuple[int, int] | None = None,
                      crop_size: int = 256, pairing: str = "linspace", definition: str = "lesbench") -> LMDResult:
    """LMD of one clip from landmarks (module docstring).

    Args:
        pred, ref: (T, N, 2|3) landmarks in pixels (NaN rows = no face) or frames tables; N = 478
            or 68 as ``landmarks`` says.
        pred_size, ref_size: (width, height) of the videos the pixels refer to; landmarks are
            rescaled to ``crop_size`` (None: already at ``crop_size``).
    """
    mouth = mouth_indices(landmarks)
    p = landmarks_array(pred)[..., :2].astype(np.float64)
    r = landmarks_array(ref)[..., :2].astype(np.float64)
    if p.shape[1] != r.shape[1]:
        raise ValueError(f"landmark counts differ: {p.shape[1]} vs {r.shape[1]}")
    if p.shape[1] <= max(mouth):
        raise ValueError(f"{landmarks} landmarks need {max(mouth) + 1}+ points, got {p.shape[1]}")
    p, r = rescale_landmarks(p, pred_size, crop_size), rescale_landmarks(r, ref_size, crop_size)
    ip, ir = paired_indices(len(p), len(r), pairing)
    return paired_landmark_distance(p[ip], r[ir], mouth, definition)
