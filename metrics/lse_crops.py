"""Face crops for SyncNet as syncnet_python's ``crop_video`` makes them: one face followed
through the clip, its boxes interpolated and median-filtered, and the crop geometry (see
:mod:`lesbench.metrics.lse`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lesbench.metrics.lse_offsets import median_filter


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) with boxes ``b`` (n, 4), ``x0, y0, x1, y1`` pixels -> (n,)."""
    b = np.atleast_2d(np.asarray(b, np.float64))
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-8)


def follow_face(detections: list[np.ndarray], min_iou: float = 0.5) -> np.ndarray:
    """One face track through per-frame detections (each (n_i, >=4), best first): the first
    detected face, then in every frame the box overlapping the last tracked box most, if its IoU
    exceeds ``min_iou``. (T, 4) float64, NaN in frames without one."""
    out = np.full((len(detections), 4), np.nan)
    last: np.ndarray | None = None
    for t, det in enumerate(detections):
        det = np.asarray(det, np.float64)
        if det.size == 0:
            continue
        det = det.reshape(len(det), -1)
        if last is None:
            k = 0
        else:
            iou = box_iou(last, det[:, :4])
            k = int(np.argmax(iou))
            if iou[k] <= min_iou:
                continue
        out[t] = last = det[k, :4]
    return out


@dataclass
class FaceTrack:
    """Smoothed crop parameters of frames ``first .. first + len(size) - 1``: half-size
    ``size`` and centre ``cx``, ``cy`` (pixels), each (n,) float64; ``n_interpolated`` frames had
    no box of their own."""

    first: int
    size: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    n_interpolated: int

    def __len__(self) -> int:
        return len(self.size)


def face_track(bboxes: np.ndarray, smooth: int = 13) -> FaceTrack:
    """:class:`FaceTrack` from per-frame boxes (T, 4) ``x0, y0, x1, y1`` (NaN rows: no face):
    cut to the first..last frame with a box, gaps filled by linear interpolation, then half-size
    and centre median-filtered over ``smooth`` frames (zero-padded, as the reference does)."""
    boxes = np.asarray(bboxes, np.float64).reshape(-1, 4)
    ok = np.isfinite(boxes).all(axis=1)
    if not ok.any():
        raise ValueError("no face box in any frame")
    idx = np.flatnonzero(ok)
    first, last = int(idx[0]), int(idx[-1])
    frames = np.arange(first, last + 1)
    filled = np.stack([np.interp(frames, idx, boxes[idx, c]) for c in range(4)], axis=1)
    size = np.maximum(filled[:, 3] - filled[:, 1], filled[:, 2] - filled[:, 0]) / 2.0
    cx, cy = (filled[:, 0] + filled[:, 2]) / 2.0, (filled[:, 1] + filled[:, 3]) / 2.0
    return FaceTrack(first, median_filter(size, smooth), median_filter(cx, smooth), median_filter(cy, smooth),
                     int(len(frames) - len(idx)))


def crop_face(frame: np.ndarray, cx: float, cy: float, half_size: float, crop_scale: float = 0.4,
              size: int = 224) -> np.ndarray:
    """(size, size, C) crop of ``frame`` (H, W, C) uint8 around a face of half-size
    ``half_size`` centred at ``(cx, cy)`` pixels: rows ``cy - s .. cy + s (1 + 2 crop_scale)``,
    columns ``cx -+ s (1 + crop_scale)``, out-of-image parts grey 110; same channel order."""
    import cv2

    bs = float(half_size)
    if not bs > 0:
        raise ValueError(f"face half-size must be positive, got {bs} (a track shorter than 7 frames "
                         "is zeroed by the 13-frame median filter)")
    pad = int(bs * (1 + 2 * crop_scale))
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(110, 110, 110))
    my, mx = cy + pad, cx + pad
    rows = slice(int(my - bs), int(my + bs * (1 + 2 * crop_scale)))
    cols = slice(int(mx - bs * (1 + crop_scale)), int(mx + bs * (1 + crop_scale)))
    return cv2.resize(padded[rows, cols], (size, size), interpolation=cv2.INTER_LINEAR)


def crops_for_syncnet(frames_rgb: np.ndarray, bboxes: np.ndarray,
                      crop_scale: float = 0.4) -> tuple[np.ndarray, FaceTrack]:
    """(n, 224, 224, 3) BGR crops of the frames of the face track through ``bboxes`` (T, 4)
    (NaN rows: no face; see :func:`face_track`), and the track (its ``first`` frame says where
    the crops start in the clip)."""
    track = face_track(bboxes)
    crops = [crop_face(np.ascontiguousarray(frames_rgb[track.first + i][..., ::-1]), track.cx[i], track.cy[i],
                       track.size[i], crop_scale) for i in range(len(track))]
    return np.stack(crops), track
