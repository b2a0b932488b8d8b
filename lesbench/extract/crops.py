"""Aligned, temporally smoothed face crops (the ``crops`` stage, docs/design.md).

Each frame's crop is a similarity transform (rotation, uniform scale, translation) of the source
frame computed from landmarks that do not move when the person speaks or emotes:

- the two eye centres, each the mean of its inner and outer eye corner (MediaPipe landmarks
  33/133 and 362/263) -> the crop's rotation (the eye line is made horizontal) and its anchor
  (the eye midpoint is placed at ``(0.5, EYE_Y) * size``);
- the *3D* distance between the eye centres (landmark z shares x's pixel scale) -> the crop's
  scale (the eye distance becomes ``EYE_DISTANCE * size``). Unlike the 2D distance it does not
  shrink when the head turns, so a head turn does not zoom the crop;
- the nose bridge (landmark 168) keeps the anchor stable when the eye corners are briefly
  unreliable (blinks): the anchor is the mean of the eye midpoint and the nose bridge, which sit
  within a few pixels of each other on a frontal face.

The mouth and jaw are never used, so speech does not move the crop.

Smoothing: the per-frame parameters (anchor x, y, log eye distance, unwrapped angle) are
filtered with a zero-phase Gaussian over time (``sigma`` frames; no lag, unlike a causal filter)
after frames without a face are filled by linear interpolation between the nearest good frames
(held constant before the first and after the last). A clip with no face at all falls back to a
centred square crop, flagged in :class:`CropParams`.

Pixels outside the source frame are filled by replicating the border.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from lesbench.schema import CROP_SIZE, N_LANDMARKS

#: Stage version: bump when the crops' content can change.
VERSION = "1"

#: Canonical layout of the crop, as fractions of its size.
EYE_Y = 0.42  # height of the eye midpoint / nose bridge anchor
EYE_DISTANCE = 0.25  # distance between the two eye centres

LEFT_EYE_CORNERS = (33, 133)  # subject's right eye (image left): outer, inner corner
RIGHT_EYE_CORNERS = (362, 263)  # subject's left eye (image right): inner, outer corner
NOSE_BRIDGE = 168
#: Every landmark the transform depends on.
STABLE_LANDMARKS: tuple[int, ...] = (*LEFT_EYE_CORNERS, *RIGHT_EYE_CORNERS, NOSE_BRIDGE)

DEFAULT_SIGMA = 2.0


@dataclass(frozen=True)
class CropParams:
    """Per-frame crop transforms of one clip (T frames).

    Attributes:
        anchor: ``(T, 2)`` float64 source pixels mapped to ``(0.5, EYE_Y) * size``.
        eye_distance: ``(T,)`` float64 3D eye-centre distance, source pixels.
        angle: ``(T,)`` float64 radians, angle of the eye line in the source image
            (counter-clockwise positive in image coordinates, i.e. y down).
        matrices: ``(T, 2, 3)`` float64 affine maps source pixel -> crop pixel (cv2 layout).
        measured: ``(T,)`` bool, the frame had a face (False: parameters interpolated/held).
        size: crop side in pixels.
        fallback: True when no frame had a face and a centred square crop was used.
    """

    anchor: np.ndarray
    eye_distance: np.ndarray
    angle: np.ndarray
    matrices: np.ndarray
    measured: np.ndarray
    size: int
    fallback: bool = False

    def __len__(self) -> int:
        return len(self.angle)


def _as_points(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim == 2 and pts.shape[1] == N_LANDMARKS * 3:
        pts = pts.reshape(len(pts), N_LANDMARKS, 3)
    if pts.ndim != 3 or pts.shape[1:] != (N_LANDMARKS, 3):
        raise ValueError(f"landmarks must be (T, {N_LANDMARKS}, 3) or (T, {N_LANDMARKS * 3}), got {pts.shape}")
    return pts


def raw_params(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unsmoothed (anchor (T,2), eye_distance (T,), angle (T,)) from ``(T, 478, 3)`` landmarks."""
    pts = _as_points(landmarks)
    left = pts[:, list(LEFT_EYE_CORNERS)].mean(axis=1)
    right = pts[:, list(RIGHT_EYE_CORNERS)].mean(axis=1)
    eye_mid = 0.5 * (left[:, :2] + right[:, :2])
    anchor = 0.5 * (eye_mid + pts[:, NOSE_BRIDGE, :2])
    distance = np.linalg.norm(right - left, axis=1)
    d = right[:, :2] - left[:, :2]
    angle = np.arctan2(d[:, 1], d[:, 0])
    return anchor, distance, angle


def _fill_missing(values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames where ``good`` is False; edges hold the nearest value."""
    t = np.arange(len(values))
    out = values.copy()
    if values.ndim == 1:
        out[~good] = np.interp(t[~good], t[good], values[good])
    else:
        for j in range(values.shape[1]):
            out[~good, j] = np.interp(t[~good], t[good], values[good, j])
    return out


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0 or len(values) < 2:
        return values
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(values, sigma=sigma, axis=0, mode="nearest")


def similarity_matrix(anchor: np.ndarray, eye_distance: float, angle: float, size: int = CROP_SIZE) -> np.ndarray:
    """``(2, 3)`` affine: source pixel -> crop pixel for one frame's parameters."""
    k = EYE_DISTANCE * size / eye_distance
    c, s = np.cos(-angle) * k, np.sin(-angle) * k
    rot = np.array([[c, -s], [s, c]])
    target = np.array([0.5 * size, EYE_Y * size])
    offset = target - rot @ np.asarray(anchor, dtype=np.float64)
    return np.hstack([rot, offset[:, None]])


def crop_params(
    landmarks: np.ndarray,
    face_flags: np.ndarray,
    size: int = CROP_SIZE,
    sigma: float = DEFAULT_SIGMA,
    frame_size: tuple[int, int] | None = None,
) -> CropParams:
    """Smoothed per-frame crop transforms.

    Args:
        landmarks: ``(T, 478, 3)`` or ``(T, 1434)`` source pixels (rows of no-face frames ignored).
        face_flags: ``(T,)`` bool, frames with a face.
        size: crop side, pixels.
        sigma: Gaussian smoothing width in frames (0: none).
        frame_size: ``(width, height)`` of the source; only needed for the no-face fallback.
    """
    pts = _as_points(landmarks)
    good = np.asarray(face_flags, dtype=bool) & np.isfinite(pts[:, list(STABLE_LANDMARKS)]).all(axis=(1, 2))
    n = len(pts)
    if not good.any():
        if frame_size is None:
            raise ValueError("crop_params: no frame has a face and frame_size was not given for the fallback crop")
        w, h = frame_size
        side = float(min(w, h))
        anchor = np.tile([w / 2.0, h / 2.0 - (0.5 - EYE_Y) * side], (n, 1))
        distance = np.full(n, EYE_DISTANCE * side)
        angle = np.zeros(n)
        fallback = True
    else:
        anchor, distance, angle = raw_params(pts)
        anchor = _fill_missing(anchor, good)
        log_d = _fill_missing(np.log(np.where(good, distance, 1.0)), good)
        angle = _fill_missing(_unwrap_good(angle, good), good)
        anchor = _smooth(anchor, sigma)
        distance = np.exp(_smooth(log_d, sigma))
        angle = _smooth(angle, sigma)
        fallback = False
    matrices = np.stack([similarity_matrix(anchor[i], distance[i], angle[i], size) for i in range(n)]) if n else np.zeros((0, 2, 3))
    return CropParams(anchor, distance, angle, matrices, good, size, fallback)


def _unwrap_good(angle: np.ndarray, good: np.ndarray) -> np.ndarray:
    out = angle.copy()
    out[good] = np.unwrap(angle[good])
    return out


def warp(image: np.ndarray, matrix: np.ndarray, size: int = CROP_SIZE, source_scale: float = 1.0) -> np.ndarray:
    """Apply one crop transform to an RGB frame.

    ``source_scale``: source pixels per pixel of ``image`` (e.g. 3.0 when the parameters are in
    1080p pixels and ``image`` was decoded at 360p).
    """
    import cv2

    m = np.asarray(matrix, dtype=np.float64).copy()
    if source_scale != 1.0:
        # image pixel j (centre) covers source pixels s*j ... s*j + s - 1: source = s*j + (s-1)/2
        m[:, 2] += m[:, :2].sum(axis=1) * 0.5 * (source_scale - 1.0)
        m[:, :2] *= source_scale
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def iter_crops(frames: Iterable, params: CropParams, source_size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Warp ``frames`` (``lesbench.io.Frame`` or HxWx3 uint8 arrays) with ``params``, lazily.

    ``source_size``: ``(width, height)`` the landmarks' pixels refer to, when the frames were
    decoded at another size (the transform is rescaled). Stops at the shorter of the two.
    """
    for k, item in enumerate(frames):
        if k >= len(params):
            break
        image = item if isinstance(item, np.ndarray) else item.image
        scale = 1.0 if source_size is None else source_size[0] / image.shape[1]
        yield warp(image, params.matrices[k], params.size, scale)


def align_clip(
    frames: Iterable,
    landmarks: np.ndarray,
    face_flags: np.ndarray,
    size: int = CROP_SIZE,
    sigma: float = DEFAULT_SIGMA,
    source_size: tuple[int, int] | None = None,
) -> tuple[Iterator[np.ndarray], CropParams]:
    """Aligned crops of one clip.

    Args:
        frames: the clip's frames (same count and order as ``landmarks``).
        landmarks: ``(T, 478, 3)`` or ``(T, 1434)`` landmarks in source pixels (frames table).
        face_flags: ``(T,)`` bool.
        size: crop side in pixels (256).
        sigma: temporal smoothing, frames.
        source_size: ``(width, height)`` of the source video; required when no frame has a face
            (centred fallback) or when ``frames`` are decoded at a different size.

    Returns:
        (an iterator of ``(size, size, 3)`` uint8 crops, the :class:`CropParams`).
    """
    frames = iter(frames)
    if source_size is None:
        first = next(frames, None)
        if first is None:
            return iter(()), crop_params(np.zeros((0, N_LANDMARKS, 3)), np.zeros(0, bool), size, sigma, (size, size))
        image = first if isinstance(first, np.ndarray) else first.image
        frame_size = (image.shape[1], image.shape[0])
        frames = _chain(first, frames)
    else:
        frame_size = source_size
    params = crop_params(landmarks, face_flags, size, sigma, frame_size)
    return iter_crops(frames, params, source_size), params


def _chain(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest
