"""Measuring helpers shared by the controllability sweep and LES-Talker's acceptance checks.

**Holding the lower face** (:func:`hold_lower_face`). AU extractors are not local: MediaPipe's
blendshape model reads the upper-face blendshapes from all landmarks, so an opened jaw alone
raises its ``eyeSquint`` (demo run: rendered eye pixels identical to the neutral output, measured
AU07 +0.08, AU06 +0.08). To ask whether an edit changed the *upper face* (the brow and eye units),
the edited frames are measured with everything below the base of the nose replaced by the
reference (e.g. neutral) output's pixels: both measured videos then share the lower face, and the
instrument's cross-talk from the mouth cancels, while any change the method made above the nose
is still in the image. :func:`upper_face_mask` draws the split.

:class:`TrackerMeasure` is the AU measure both use: a reused MediaPipe tracker, mean AU intensity
over the frames with a face.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lesbench import schema
from lesbench.extract.face import FaceTracker
from lesbench.extract.face_arrays import OUTER_EYE_CORNERS, landmarks_array


#: Facial units above the base of the nose (:func:`upper_face_mask`).
UPPER_FACE_UNITS: tuple[str, ...] = ("brows", "eyes")
#: MediaPipe landmark at the base of the nose (subnasale): the upper/lower face split.
SUBNASALE = 2


def upper_face_mask(landmarks: Any, shape: tuple[int, int], feather_px: float = 1.5) -> np.ndarray:
    """Weight of the upper face per pixel: 1 above the split line, 0 below, a linear ramp of
    ``feather_px`` pixels across it.

    The split line passes through the subnasale (landmark 2) and is parallel to the line through
    the outer eye corners (33, 263), so it follows head roll. ``landmarks``: (478, 2|3) or
    (T, 478, 2|3) pixels (frames without a face, NaN rows, copy the nearest frame with one).
    ``shape``: (H, W). Returns float32 (H, W) or (T, H, W) in [0, 1].
    """
    lm = np.asarray(landmarks, np.float64)
    single = lm.ndim == 2
    lm = lm[None] if single else lm
    used = [OUTER_EYE_CORNERS[0], OUTER_EYE_CORNERS[1], SUBNASALE]
    ok = np.isfinite(lm[:, used, :2]).all(axis=(1, 2))
    if not ok.any():
        raise ValueError("upper_face_mask: no frame with landmarks")
    idx = np.arange(len(lm))
    nearest = np.flatnonzero(ok)[np.abs(idx[:, None] - np.flatnonzero(ok)[None]).argmin(1)]
    lm = lm[nearest]
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((len(lm), h, w), np.float32)
    for t, pts in enumerate(lm):
        eye = pts[OUTER_EYE_CORNERS[1], :2] - pts[OUTER_EYE_CORNERS[0], :2]
        normal = np.array([-eye[1], eye[0]]) / (np.linalg.norm(eye) or 1.0)  # image y grows downwards
        mid = 0.5 * (pts[OUTER_EYE_CORNERS[0], :2] + pts[OUTER_EYE_CORNERS[1], :2])
        if np.dot(mid - pts[SUBNASALE, :2], normal) > 0:  # point the normal towards the chin
            normal = -normal
        dist = (xs - pts[SUBNASALE, 0]) * normal[0] + (ys - pts[SUBNASALE, 1]) * normal[1]  # > 0: below
        out[t] = np.clip(0.5 - dist / max(feather_px, 1e-6), 0.0, 1.0)
    return out[0] if single else out


def hold_lower_face(edited: np.ndarray, reference: np.ndarray, landmarks: Any,
                    feather_px: float = 1.5) -> np.ndarray:
    """Frames with ``edited``'s upper face and ``reference``'s lower face (module doc).

    ``edited``, ``reference``: (T, H, W, 3) uint8 (the shorter length is used); ``landmarks``:
    the reference's (T, 478, 2|3) or one (478, 2|3) set, pixels. Returns (T, H, W, 3) uint8.
    """
    a = np.asarray(edited)
    b = np.asarray(reference)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"hold_lower_face: frame sizes differ, {a.shape[1:]} vs {b.shape[1:]}")
    t = min(len(a), len(b))
    lm = np.asarray(landmarks, np.float64)
    mask = upper_face_mask(lm[:t] if lm.ndim == 3 else lm, a.shape[1:3], feather_px)
    mask = mask[None] if mask.ndim == 2 else mask
    mixed = mask[..., None] * a[:t].astype(np.float32) + (1.0 - mask[..., None]) * b[:t].astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)



class TrackerMeasure:
    """AU measurement with a (reused) MediaPipe FaceTracker: mean AU over frames with a face.

    Callable as the controllability sweep's AU measure (``lesbench.sweep``);
    :meth:`with_landmarks` also returns the tracked landmarks, which the sweep and the model's
    acceptance checks need to hold half of the face (:func:`hold_lower_face`).
    """

    def __init__(self, tracker: Any | None = None) -> None:
        self.tracker = tracker

    def with_landmarks(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(aus (17,), landmarks (T, 478, 3) pixels, NaN without a face)``."""
        if self.tracker is None:
            self.tracker = FaceTracker()
        table = self.tracker.track(list(np.asarray(frames, np.uint8)), fps=schema.FPS)
        face = table[table["face"].astype(bool)]
        if len(face) == 0:
            return np.full(len(schema.AU_NAMES), np.nan), landmarks_array(table)
        return face[list(schema.AU_NAMES)].to_numpy(np.float64).mean(axis=0), landmarks_array(table)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.with_landmarks(frames)[0]
