"""Per-frame face tables as arrays: landmarks, AUs, valid frames, the eye distance. Shared by the
landmark-based metrics (sync, LMD, AU, controllability), the sweep and LES-Talker's checks.

The metrics accept either a frames table (``pandas.DataFrame`` with the columns of
``lesbench.extract.frames_table.frame_columns()``, as produced by ``FaceTracker.track`` or read
from a prepared data set's ``frames/*.parquet``) or plain arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lesbench.schema import AU_NAMES, N_LANDMARKS

#: Outer eye corners (subject's right, subject's left) in MediaPipe's 478-point topology.
OUTER_EYE_CORNERS = (33, 263)


def landmarks_array(face: Any) -> np.ndarray:
    """(T, 478, 3) float32 landmarks, NaN on frames without a face.

    ``face``: a frames table (``landmarks`` column of (1434,) arrays plus ``face`` bool) or an
    array of shape (T, 478, 3) / (T, 478, 2) / (T, 1434).
    """
    if hasattr(face, "columns"):
        col = face["landmarks"]
        rows = [np.full(N_LANDMARKS * 3, np.nan, np.float32) if v is None else np.asarray(v, np.float32)
                for v in col]
        arr = np.stack(rows).reshape(len(rows), N_LANDMARKS, 3) if rows else np.zeros((0, N_LANDMARKS, 3), np.float32)
        if "face" in face.columns:
            arr[~np.asarray(face["face"], bool)] = np.nan
        return arr
    arr = np.asarray(face, np.float32)
    if arr.ndim == 2 and arr.shape[1] == N_LANDMARKS * 3:
        arr = arr.reshape(len(arr), N_LANDMARKS, 3)
    if arr.ndim != 3 or arr.shape[2] not in (2, 3):
        raise ValueError(f"landmarks must be (T, N, 2|3), got shape {arr.shape}")
    return arr


def aus_array(face: Any) -> np.ndarray:
    """(T, 17) float32 AU intensities in ``schema.AU_NAMES`` order, NaN on frames without a face."""
    if hasattr(face, "columns"):
        missing = [n for n in AU_NAMES if n not in face.columns]
        if missing:
            raise ValueError(f"frames table has no AU columns {missing}")
        arr = np.stack([np.asarray(face[n], np.float32) for n in AU_NAMES], axis=1)
        if "face" in face.columns:
            arr[~np.asarray(face["face"], bool)] = np.nan
        return arr
    arr = np.asarray(face, np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != len(AU_NAMES):
        raise ValueError(f"AUs must be (T, {len(AU_NAMES)}), got shape {arr.shape}")
    return arr


def valid_frames(landmarks: np.ndarray) -> np.ndarray:
    """(T,) bool: frames whose landmarks are all finite."""
    return np.isfinite(landmarks.reshape(len(landmarks), -1)).all(axis=1)


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """(T,) outer-eye-corner distance in the landmarks' x, y units (pixels)."""
    a, b = OUTER_EYE_CORNERS
    return np.linalg.norm(landmarks[:, a, :2] - landmarks[:, b, :2], axis=1)
