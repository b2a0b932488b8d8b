"""Rigid alignment of face shapes: a least-squares similarity transform (Umeyama) of 478-landmark
shapes onto reference points, and the head pose it implies ``(yaw, pitch, roll, tx, ty, tz, scale)``
(angles as :mod:`lesbench.extract.head_pose` defines them). Used by the face model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lesbench.schema import N_LANDMARKS
from lesbench.extract.head_pose import euler_from_rotation, rotation_from_euler

#: Pixel coordinates (y down, z away) <-> camera convention of the frames table (y up, z towards viewer).
_FLIP = np.diag([1.0, -1.0, -1.0])


def as_shapes(landmarks: np.ndarray) -> np.ndarray:
    """``(T, 478, 3)`` float64 from ``(T, 478, 3)``, ``(T, 1434)`` or one ``(478, 3)`` shape."""
    x = np.asarray(landmarks, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == N_LANDMARKS * 3:
        x = x.reshape(len(x), N_LANDMARKS, 3)
    elif x.ndim == 2 and x.shape == (N_LANDMARKS, 3):
        x = x[None]
    if x.ndim != 3 or x.shape[1:] != (N_LANDMARKS, 3):
        raise ValueError(f"landmarks must be (T, {N_LANDMARKS}, 3) or (T, {N_LANDMARKS * 3}), got {np.shape(landmarks)}")
    return x


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` for a batch.

    Args:
        src: ``(N, P, 3)`` point sets; dst: ``(P, 3)`` target.

    Returns:
        ``s`` (N,), ``R`` (N, 3, 3) proper rotations, ``t`` (N, 3).
    """
    mu_s = src.mean(axis=1)
    mu_d = dst.mean(axis=0)
    sc = src - mu_s[:, None]
    dc = dst - mu_d
    cov = np.einsum("pi,npj->nij", dc, sc) / src.shape[1]
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones((len(src), 3))
    d[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    d[d[:, 2] == 0, 2] = 1.0
    rot = np.einsum("nij,nj,njk->nik", u, d, vt)
    var_s = (sc**2).sum(axis=(1, 2)) / src.shape[1]
    scale = (sig * d).sum(axis=1) / var_s
    t = mu_d - scale[:, None] * np.einsum("nij,nj->ni", rot, mu_s)
    return scale, rot, t


def pose_from_alignment(scale: np.ndarray, rot: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(N, 7)`` pose (yaw, pitch, roll, tx, ty, tz, scale) of frames whose alignment to model
    space was ``y = s R x + t`` (so ``x = (1/s) R^T (y - t)``)."""
    out = np.empty((len(scale), 7))
    for i in range(len(scale)):
        r_img = rot[i].T  # model -> image rotation, pixel axes
        out[i, :3] = euler_from_rotation(_FLIP @ r_img @ _FLIP)
        out[i, 3:6] = -(r_img @ t[i]) / scale[i]
        out[i, 6] = 1.0 / scale[i]
    return out


def transform_from_pose(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pose_from_alignment`: per frame ``(S, R, t)`` with image = S R model + t."""
    pose = np.atleast_2d(np.asarray(pose, dtype=np.float64))
    rot = np.stack([_FLIP @ rotation_from_euler(*p[:3]) @ _FLIP for p in pose])
    return pose[:, 6], rot, pose[:, 3:6]


def align_shapes(
    shapes: np.ndarray, reference: np.ndarray, stable: Sequence[int], with_pose: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align ``(T, 478, 3)`` shapes to ``reference`` (``(P, 3)``, the ``stable`` landmarks' targets):
    ``(aligned (T, 478, 3), pose (T, 7), valid (T,))``; NaN where a stable landmark is missing."""
    stable = list(stable)
    valid = np.isfinite(shapes[:, stable]).all(axis=(1, 2))
    aligned = np.full(shapes.shape, np.nan)
    pose = np.full((len(shapes), 7), np.nan)
    if valid.any():
        x = shapes[valid]
        s, r, t = umeyama(x[:, stable], reference)
        aligned[valid] = s[:, None, None] * np.einsum("nij,npj->npi", r, x) + t[:, None]
        if with_pose:
            pose[valid] = pose_from_alignment(s, r, t)
    return aligned, pose, valid
