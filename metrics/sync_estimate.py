"""The ``sync`` estimate of one clip: cross-validated ridge prediction of the mouth shape from
the audio at every shift, the peak (offset) and the confidence, with the mouth-motion gate
(:func:`av_sync`; the definition is in :mod:`lesbench.metrics.sync`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lesbench.metrics.sync_features import audio_frame_features, mouth_shape

#: Mouth motion (std of the inter-ocular-normalised mouth shape) below which a clip is "still":
#: confidence 0, offset undefined. Full confidence weight from ``2 * MIN_MOUTH_MOTION`` on.
MIN_MOUTH_MOTION = 0.005


@dataclass
class SyncResult:
    """Outcome of :func:`av_sync` for one clip.

    ``offset`` frames (positive: audio lags video), ``offset_frac`` the parabola-refined peak,
    ``confidence`` = motion weight x (peak minus median score), ``scores`` (2K+1,)
    cross-validated correlation per shift in ``shifts``. ``valid`` is False (and ``reason`` set)
    when there was too little data. ``still`` is True when the mouth does not move (motion below
    :data:`MIN_MOUTH_MOTION`): then ``confidence == 0``, ``offset is None`` and ``note`` says so.
    ``motion``: the mouth motion (inter-ocular units).
    """

    offset: int | None
    offset_frac: float | None
    confidence: float | None
    peak: float | None
    shifts: np.ndarray
    scores: np.ndarray
    n_frames: int
    n_valid: int
    valid: bool = True
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    still: bool = False
    motion: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "offset_frac": self.offset_frac,
            "confidence": self.confidence,
            "peak": self.peak,
            "n_frames": self.n_frames,
            "n_valid": self.n_valid,
            "valid": self.valid,
            "reason": self.reason,
            "still": self.still,
            "motion": self.motion,
            "note": self.note,
        }


def _stack_context(x: np.ndarray, context: int) -> np.ndarray:
    if context <= 0:
        return x
    p = np.pad(x, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([p[j:j + len(x)] for j in range(2 * context + 1)], axis=1)


def _cv_corr(y: np.ndarray, x: np.ndarray, ridge: float, folds: int) -> float:
    """Mean over columns of y of corr(y, cross-validated ridge prediction from x)."""
    n = len(y)
    block = (np.arange(n) * folds) // n
    pred = np.zeros_like(y)
    eye = np.eye(x.shape[1])
    for f in range(folds):
        te = block == f
        tr = ~te
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        xtr, xte = (x[tr] - mu) / sd, (x[te] - mu) / sd
        ym = y[tr].mean(0)
        w = np.linalg.solve(xtr.T @ xtr + ridge * tr.sum() * eye, xtr.T @ (y[tr] - ym))
        pred[te] = xte @ w + ym
    out = []
    for j in range(y.shape[1]):
        a, b = y[:, j] - y[:, j].mean(), pred[:, j] - pred[:, j].mean()
        den = np.sqrt((a * a).sum() * (b * b).sum())
        out.append((a * b).sum() / den if den > 0 else 0.0)
    return float(np.mean(out))


def av_sync(landmarks: Any, audio: np.ndarray, sr: int = 16000, fps: float = 25.0, max_shift: int = 15,
            n_mels: int = 16, context: int = 0, ridge: float = 0.1, folds: int = 5,
            min_frames: int = 25, window_s: float = 0.064, frame_times: np.ndarray | None = None,
            min_motion: float = MIN_MOUTH_MOTION) -> SyncResult:
    """Audio-visual offset and confidence of one clip (see :mod:`lesbench.metrics.sync`).

    Args:
        landmarks: (T, 478, 2|3) pixels (NaN rows = no face) or a frames table.
        audio: (N,) float mono samples at ``sr`` Hz; sample 0 is at time 0 of the video.
        fps: frame rate; shifts are whole frames of ``1 / fps`` seconds.
        max_shift: K, shifts ``-K..K`` frames are searched.
        frame_times: (T,) seconds at which each image was captured (default ``i / fps``). After
            a frame-rate conversion that repeats/drops frames, pass the source frame's own
            timestamp (``lesbench.io`` gives ``source_index``) so the audio is read where the
            image was taken, not where it is shown.
        min_motion: mouth-motion gate in inter-ocular units (see :mod:`lesbench.metrics.sync`); 0
            disables it.

    Returns:
        :class:`SyncResult`; offset > 0 means the audio lags the video.
    """
    shape = mouth_shape(landmarks)
    n = len(shape)
    ok = np.isfinite(shape).all(axis=1)
    shifts = np.arange(-max_shift, max_shift + 1)
    scores = np.full(len(shifts), np.nan)
    audio = np.asarray(audio, np.float64).reshape(-1)
    if audio.size == 0 or not np.any(audio):
        return SyncResult(None, None, None, None, shifts, scores, n, int(ok.sum()), False, "no or silent audio")
    times = np.arange(n) / fps if frame_times is None else np.asarray(frame_times, np.float64)
    if times.shape != (n,):
        raise ValueError(f"frame_times has shape {times.shape}, expected ({n},)")
    max_db = audio_frame_features(audio, n, sr, fps, n_mels, window_s, times=times).max()
    t_lo, t_hi = times.min() - 0.5 / fps, times.max() + 0.5 / fps
    grid = None
    if frame_times is None:  # regular frames: one feature matrix on the grid -K .. n+K, sliced per shift
        k = int(max_shift)
        grid = audio_frame_features(audio, n + 2 * k, sr, fps, n_mels, window_s,
                                    times=np.arange(-k, n + k) / fps, max_db=max_db)
    for j, s in enumerate(shifts):
        ts = times + s / fps
        keep = ok & (ts >= t_lo) & (ts <= t_hi)
        if keep.sum() < max(min_frames, 2 * folds):
            continue
        raw = grid[s + max_shift: s + max_shift + n] if grid is not None else \
            audio_frame_features(audio, n, sr, fps, n_mels, window_s, times=ts, max_db=max_db)
        feats = _stack_context(raw, context)
        scores[j] = _cv_corr(shape[keep], feats[keep], ridge, folds)
    if not np.isfinite(scores).any():
        return SyncResult(None, None, None, None, shifts, scores, n, int(ok.sum()), False,
                          f"too few frames with a face ({int(ok.sum())} of {n}; need {min_frames} + shifts)")
    motion = float(np.nanmax(shape[ok].std(axis=0)))
    if motion < min_motion:
        return SyncResult(None, None, 0.0, float(np.nanmax(scores)), shifts, scores, n, int(ok.sum()), True, "",
                          still=True, motion=motion,
                          note=f"no mouth motion (std {motion:.4f} < {min_motion:g} inter-ocular): "
                               "confidence 0, offset undefined")
    weight = float(np.clip((motion - min_motion) / min_motion, 0.0, 1.0)) if min_motion > 0 else 1.0
    best = int(np.nanargmax(scores))
    peak = float(scores[best])
    frac = float(shifts[best])
    if 0 < best < len(scores) - 1 and np.isfinite(scores[best - 1]) and np.isfinite(scores[best + 1]):
        a, b, c = scores[best - 1], peak, scores[best + 1]
        den = a - 2 * b + c
        if den < 0:
            frac += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return SyncResult(int(np.round(frac)), frac, weight * (peak - float(np.nanmedian(scores))), peak, shifts,
                      scores, n, int(ok.sum()), motion=motion)


def shift_audio(audio: np.ndarray, frames: int, sr: int = 16000, fps: float = 25.0) -> np.ndarray:
    """Delay (``frames`` > 0) or advance (< 0) ``audio`` by whole video frames, same length,
    zero-filled: the test transform whose offset :func:`av_sync` must recover."""
    audio = np.asarray(audio)
    s = int(round(frames * sr / fps))
    if s > 0:
        return np.concatenate([np.zeros(s, audio.dtype), audio])[: len(audio)]
    if s < 0:
        return np.concatenate([audio[-s:], np.zeros(-s, audio.dtype)])
    return audio.copy()
