"""Weight-free audio-visual synchronisation: offset and confidence from landmarks and audio.

Definition (version ``xval-logmel-ridge/2``)
-------------------------------------------
Visual signal, per video frame ``i`` (25 fps): mouth shape from MediaPipe landmarks,
``opening`` = mean inner-lip gap over the pairs (13, 14), (82, 87), (312, 317) and ``width`` =
lip-corner distance (61, 291), both divided by the outer-eye-corner distance (33, 263), so
they do not depend on image size or face scale.

Audio signal, per video frame: a 16-band log-mel spectrum (80-7600 Hz, HTK mel scale) of a
64 ms Hann window *centred on the frame's capture time* (``i / fps`` by default; 16 kHz mono),
floored at 60 dB below the clip's maximum.

For every shift ``s`` in ``-K..K`` (default ``K = 15`` frames, SyncNet's range) the audio
features at time ``t_i + s / fps`` are used to predict the mouth shape of frame ``i`` by ridge
regression (lambda = 0.1 x n on standardised features), evaluated by 5-fold *contiguous-block*
cross-validation; ``score(s)`` = mean over the two mouth signals of the Pearson correlation
between the held-out predictions and the measurements. Then

- ``offset_frac`` = the peak of ``score`` refined by a parabola through the best shift and its
  neighbours; ``offset = round(offset_frac)`` (frames). **Sign: positive = the audio lags the video** (the
  sound of what the mouth does at frame ``i`` is heard at frame ``i + offset``). Delaying a
  clip's audio by ``k`` frames adds ``k`` to its offset. (syncnet_python prints the opposite
  sign; lesbench's LSE reports use this convention too.)
- ``confidence = motion_weight x (score(offset) - median_s score(s))``, in correlation units
  (0..2).

Mouth-motion gate (new in version 2). Correlation is blind to scale, so a face whose mouth does
not move at all (a still image repeated) still "correlates" its tracker jitter with the audio:
on the demo data a repeated source frame scored confidence 0.22-0.62 against 0.72-0.88 for the
real clips, with offsets anywhere in -15..15. The mouth motion ``m`` = the larger of the
standard deviations of ``opening`` and ``width`` over the frames with a face (inter-ocular
units). Tracker jitter on a still crop measured 0.0001-0.002; real speech 0.025-0.054. So
``motion_weight = clip((m - min_motion) / min_motion, 0, 1)`` with ``min_motion = 0.005``:
below 0.005 IOD the clip is *still*: confidence 0, offset undefined (None; left out of the
offset means) and the result carries the note ``no mouth motion``; from 0.01 IOD on (every real
clip) the weight is 1 and the score is unchanged. A still face therefore always scores worst.

Why a cross-validated regression rather than a plain correlation of mouth opening with the
RMS envelope: on the two real clips in ``../shared/data/speech-dev`` the plain normalised
cross-correlation (RMS, log-RMS, speech-band energy, with or without differencing) peaked
anywhere between -6 and +15 frames for the unshifted clips, because talkers open the mouth in
pauses (breathing) and the energy envelope ignores *what* is said. Which spectral bands go
with an open or a wide mouth differs between speakers, so it is learnt per clip; cross
validation keeps the score of a wrong shift near zero (no fitting to noise).

Measured on the real clips of ``../shared/data/speech-dev`` (unshifted): retalking_2 +0.85
frames, retalking_4 -1.3 frames (with capture times; -1.5 from the 25 fps resampled
timestamps); shifting their audio by k in -8..8 moves the estimate by k to within 0.35 frames.
On synthetic clips with exact alignment the estimate is within 0.45 frames.

Only frames with a face are used; at least ``min_frames`` paired frames (default 25) are
needed, otherwise the result is marked invalid with the reason.

Null calibration (new in version 3; the version-2 outputs are unchanged)
-----------------------------------------------------------------------
The confidence alone does not say whether a clip is in sync: it depends on how predictable the
clip's mouth is from its voice at *any* alignment (on retalking_2, matched audio scores 0.43
and the same video with other or misaligned speech 0.19-0.38). So each clip is also scored against a null made
from the *same video* with its *own audio at a wrong alignment*: the audio (cut or zero-padded
to the video's duration ``T / fps``) is rotated circularly by ``d`` frames for
``n_null`` rotations ``d`` spaced evenly (rounded to whole frames) over
``[K + null_margin, T - K - null_margin]`` (``K`` = ``max_shift``, ``null_margin`` = 10 frames
= 0.4 s), and :func:`av_sync` is run on each. A rotation by ``d`` puts the true alignment at
shift ``d`` (or ``d - T``), outside the searched ``-K..K`` by at least the margin, so every null
confidence is that of audio that is wrong for this video while keeping its voice, loudness and
rhythm. No randomness: the rule is deterministic. Then

- ``confidence_z`` = (confidence - mean(null)) / sd(null) (sample sd, ddof 1; floored at
  0.01 correlation units so a near-constant null cannot give an unbounded z);
- ``confidence_pct`` = percentage of null confidences below the clip's (ties count half), 0..100.

Clips shorter than ``2 (K + null_margin) + 2`` frames (52) have too few rotations: their z
and percentile are NaN, counted in ``n_uncalibrated`` with the reason in the clip notes. A still
mouth (see the gate) carries no sync evidence: z = 0, percentile 50 (chance), not NaN, so a
method whose mouths do not move cannot drop out of the mean.

Measured on the real speech-dev clips (docs/instruments.md): with their own audio, retalking_2
(5 s) z 1.51 / percentile 95 and retalking_4 (6.6 s) z 4.54 / 100; the same videos with another
clip's speech, their speech reversed or delayed 1.2 s: z -0.93..0.85, percentile 20-80. Short
clips give a wide null: read z with the clip length in mind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from lesbench.metrics._face import interocular, landmarks_array
from lesbench.metrics.base import Metric, Output

VERSION = "xval-logmel-ridge/3"

#: Mouth motion (std of the inter-ocular-normalised mouth shape) below which a clip is "still":
#: confidence 0, offset undefined. Full confidence weight from ``2 * MIN_MOUTH_MOTION`` on.
MIN_MOUTH_MOTION = 0.005

#: Null calibration: number of circular audio rotations and how far (frames) beyond the searched
#: shift range the true alignment must lie.
N_NULL = 20
NULL_MARGIN = 10
#: Floor of the null's standard deviation (correlation units) in ``confidence_z``.
MIN_NULL_SD = 0.01

#: Inner-lip landmark pairs (upper, lower) and lip corners in MediaPipe's 478-point topology.
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((13, 14), (82, 87), (312, 317))
LIP_CORNERS = (61, 291)


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


def mouth_shape(landmarks: Any) -> np.ndarray:
    """(T, 2) float64 ``[opening, width]`` divided by the inter-ocular distance; NaN rows where
    there is no face. ``landmarks``: (T, 478, 2|3) pixels or a frames table."""
    lm = landmarks_array(landmarks).astype(np.float64)
    io = interocular(lm)
    io = np.where(io > 0, io, np.nan)
    opening = np.mean([np.linalg.norm(lm[:, a, :2] - lm[:, b, :2], axis=1) for a, b in INNER_LIP_PAIRS], axis=0)
    width = np.linalg.norm(lm[:, LIP_CORNERS[0], :2] - lm[:, LIP_CORNERS[1], :2], axis=1)
    return np.stack([opening / io, width / io], axis=1)


def mel_filterbank(n_mels: int, n_fft: int, sr: int, fmin: float = 80.0, fmax: float = 7600.0) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale (2595 log10(1 + f/700))."""
    fmax = min(fmax, sr / 2.0)

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fb = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[m] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0.0, None)
    return fb


def audio_frame_features(audio: np.ndarray, n_frames: int, sr: int = 16000, fps: float = 25.0,
                         n_mels: int = 16, window_s: float = 0.064, floor_db: float = 60.0,
                         times: np.ndarray | None = None, max_db: float | None = None) -> np.ndarray:
    """(n_frames, n_mels) log-mel (dB) of a Hann window of ``window_s`` seconds centred on each
    video frame's time (``times`` seconds, default ``i / fps``); zero-padded past the ends;
    floored ``floor_db`` below ``max_db`` (default: the maximum of these features).
    ``audio``: (N,) float mono at ``sr`` Hz, sample 0 at time 0."""
    audio = np.asarray(audio, np.float64).reshape(-1)
    if n_frames == 0:
        return np.zeros((0, n_mels))
    win = max(16, int(round(window_s * sr)))
    n_fft = 1 << int(np.ceil(np.log2(win)))
    t = np.arange(n_frames) / fps if times is None else np.asarray(times, np.float64)
    centres = np.round(t * sr).astype(np.int64)
    lead = win // 2 + max(0, -int(centres.min()))
    padded = np.pad(audio, (lead, max(0, int(centres.max()) + win - len(audio))))
    frames = np.stack([padded[c + lead - win // 2: c + lead - win // 2 + win] for c in centres]) * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    mel = power @ mel_filterbank(n_mels, n_fft, sr).T
    db = 10.0 * np.log10(mel + 1e-10)
    return np.maximum(db, (db.max() if max_db is None else max_db) - floor_db)


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
    """Audio-visual offset and confidence of one clip (see the module docstring).

    Args:
        landmarks: (T, 478, 2|3) pixels (NaN rows = no face) or a frames table.
        audio: (N,) float mono samples at ``sr`` Hz; sample 0 is at time 0 of the video.
        fps: frame rate; shifts are whole frames of ``1 / fps`` seconds.
        max_shift: K, shifts ``-K..K`` frames are searched.
        frame_times: (T,) seconds at which each image was captured (default ``i / fps``). After
            a frame-rate conversion that repeats/drops frames, pass the source frame's own
            timestamp (``lesbench.io`` gives ``source_index``) so the audio is read where the
            image was taken, not where it is shown.
        min_motion: mouth-motion gate in inter-ocular units (see the module docstring); 0
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


def null_rotations(n_frames: int, max_shift: int = 15, n_null: int = N_NULL, margin: int = NULL_MARGIN) -> np.ndarray:
    """(n,) int rotations in frames for the null of a clip of ``n_frames``: ``n_null`` values
    evenly spaced (rounded, duplicates dropped) over ``[max_shift + margin, n_frames -
    max_shift - margin]``; empty when that range is empty (clip too short)."""
    lo, hi = max_shift + margin, n_frames - max_shift - margin
    if hi < lo or n_null <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.round(np.linspace(lo, hi, n_null)).astype(np.int64))


def rotate_audio(audio: np.ndarray, frames: int, n_frames: int, sr: int = 16000, fps: float = 25.0) -> np.ndarray:
    """``audio`` cut or zero-padded to ``n_frames / fps`` seconds, then delayed circularly by
    ``frames`` video frames (what is heard at frame ``i`` was said at frame ``i - frames``)."""
    audio = np.asarray(audio, np.float64).reshape(-1)
    n = int(round(n_frames * sr / fps))
    clip = np.zeros(n)
    clip[: min(n, len(audio))] = audio[:n]
    return np.roll(clip, int(round(frames * sr / fps)))


@dataclass
class NullCalibration:
    """A clip's confidence against its own rotated-audio null (see the module docstring).

    ``z`` (null standard deviations) and ``percentile`` (0..100) of the confidence; NaN when no
    null could be made (``reason`` says why). ``null`` (n,) the null confidences, ``rotations``
    (n,) frames; ``null_mean``, ``null_sd`` (ddof 1) correlation units.
    """

    confidence: float | None
    z: float
    percentile: float
    null_mean: float
    null_sd: float
    null: np.ndarray
    rotations: np.ndarray
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"confidence_z": self.z, "confidence_pct": self.percentile, "null_mean": self.null_mean,
                "null_sd": self.null_sd, "n_null": len(self.null), "null_reason": self.reason}


def standardise(value: float, null: np.ndarray, min_sd: float = MIN_NULL_SD) -> tuple[float, float, float, float]:
    """``(z, percentile, null mean, null sd)`` of ``value`` against ``null`` (n >= 2):
    z = (value - mean) / max(sd (ddof 1), ``min_sd``); percentile = 100 x (#below + #equal / 2) / n."""
    null = np.asarray(null, np.float64)
    mean, sd = float(null.mean()), float(null.std(ddof=1))
    z = (value - mean) / max(sd, min_sd)
    pct = 100.0 * (float((null < value).sum()) + 0.5 * float((null == value).sum())) / len(null)
    return float(z), pct, mean, sd


def calibrate_sync(landmarks: Any, audio: np.ndarray, sr: int = 16000, fps: float = 25.0, max_shift: int = 15,
                   n_null: int = N_NULL, margin: int = NULL_MARGIN, frame_times: np.ndarray | None = None,
                   result: SyncResult | None = None, **kwargs: Any) -> tuple[SyncResult, NullCalibration]:
    """:func:`av_sync` of the clip and its confidences against the rotated-audio null.

    ``landmarks``/``audio``/``frame_times`` as for :func:`av_sync` (extra ``kwargs`` go to it);
    ``result``: the clip's own :func:`av_sync` result when already computed.
    """
    r = result if result is not None else av_sync(landmarks, audio, sr, fps, max_shift, frame_times=frame_times,
                                                   **kwargs)
    nan = float("nan")
    none = np.zeros(0, np.int64)
    if not r.valid:
        return r, NullCalibration(None, nan, nan, nan, nan, np.zeros(0), none, reason=f"invalid clip: {r.reason}")
    if r.still:  # no mouth motion: no sync evidence, chance level by definition
        return r, NullCalibration(r.confidence, 0.0, 50.0, nan, nan, np.zeros(0), none, reason="still mouth")
    if n_null <= 0:
        return r, NullCalibration(r.confidence, nan, nan, nan, nan, np.zeros(0), none,
                                  reason="calibration off (n_null 0)")
    rotations = null_rotations(r.n_frames, max_shift, n_null, margin)
    if len(rotations) < 2:
        return r, NullCalibration(r.confidence, nan, nan, nan, nan, np.zeros(0), rotations,
                                  reason=f"clip too short for a null ({r.n_frames} frames; need "
                                         f"{2 * (max_shift + margin) + 2} for 2 rotations)")
    null = []
    for d in rotations:
        nr = av_sync(landmarks, rotate_audio(audio, int(d), r.n_frames, sr, fps), sr, fps, max_shift,
                     frame_times=frame_times, **kwargs)
        # a rotation without usable audio (silence) carries no sync evidence: 0
        null.append(nr.confidence if nr.valid and nr.confidence is not None else 0.0)
    null_arr = np.asarray(null, np.float64)
    z, pct, mean, sd = standardise(float(r.confidence), null_arr)
    return r, NullCalibration(r.confidence, z, pct, mean, sd, null_arr, rotations)


def sync_vs_reference(pred_face: Any, ref_face: Any, audio: np.ndarray, sr: int = 16000, fps: float = 25.0,
                      max_shift: int = 15, n_null: int = N_NULL, **kwargs: Any) -> dict[str, Any]:
    """A generated clip's sync next to its reference clip's, on the same audio.

    Returns ``pred_*`` and ``ref_*`` for ``offset`` (frames), ``confidence``, ``confidence_z``
    and ``confidence_pct``, plus ``delta_offset`` = pred - ref offset, ``delta_abs_offset`` =
    |pred offset| - |ref offset| (frames; > 0: the generated clip is further out of sync than
    its reference), ``delta_confidence`` and ``delta_z`` (pred - ref; NaN where either side is
    undefined). Ground truth itself is not perfectly in sync (real recordings measure about
    +-1 frame), so the difference is the fair reading for a method that copies the reference's
    timing.
    """
    out: dict[str, Any] = {}
    for side, face in (("pred", pred_face), ("ref", ref_face)):
        r, cal = calibrate_sync(face, audio, sr, fps, max_shift, n_null, **kwargs)
        out[f"{side}_offset"] = r.offset
        out[f"{side}_confidence"] = r.confidence
        out[f"{side}_confidence_z"] = cal.z
        out[f"{side}_confidence_pct"] = cal.percentile
        out[f"{side}_note"] = r.note or r.reason or cal.reason

    def diff(a: Any, b: Any) -> float:
        return float(a) - float(b) if a is not None and b is not None else float("nan")

    out["delta_offset"] = diff(out["pred_offset"], out["ref_offset"])
    out["delta_abs_offset"] = diff(None if out["pred_offset"] is None else abs(out["pred_offset"]),
                                   None if out["ref_offset"] is None else abs(out["ref_offset"]))
    out["delta_confidence"] = diff(out["pred_confidence"], out["ref_confidence"])
    out["delta_z"] = diff(out["pred_confidence_z"], out["ref_confidence_z"])
    return out


class AVSync(Metric):
    """Weight-free AV offset/confidence (``sync``); per clip ``offset``, ``abs_offset``,
    ``confidence``, and the null-calibrated ``confidence_z`` / ``confidence_pct`` (see the
    module docstring); :meth:`compute` gives their means over the clips updated so far.

    Still clips (no mouth motion) count with confidence 0 (z 0, percentile 50) and are left out
    of the offset means (``offset``/``abs_offset`` are NaN when every clip is still); ``n_still``
    counts them and :attr:`clip_notes` holds their notes (``lesbench score`` lists them as clip
    issues). Clips too short for a null are left out of the z/percentile means and counted in
    ``n_uncalibrated``. ``n_null=0`` turns the calibration off (z, percentile NaN)."""

    name: ClassVar[str] = "sync"
    version: ClassVar[str] = VERSION
    outputs: ClassVar[tuple[Output, ...]] = (
        Output("confidence", "av-sync", "AV conf", "higher", 3),
        Output("abs_offset", "av-abs-offset", "|AV offset|", "lower", 2, "frames"),
        Output("offset", "av-offset", "AV offset", "target", 2, "frames"),
        Output("confidence_z", "sync-confidence-z", None, "higher", 3),
        Output("confidence_pct", "sync-confidence-pct", None, "higher", 3, "%"))
    protocol_args: ClassVar[dict[str, str]] = {"max_shift": "sync_max_shift", "sr": "sample_rate", "fps": "fps"}
    inputs: ClassVar[tuple[str, ...]] = ("pred_face", "audio")
    needs_audio: ClassVar[bool] = True
    needs_face: ClassVar[bool] = True

    def __init__(self, device: str | None = None, max_shift: int = 15, sr: int = 16000, fps: float = 25.0,
                 n_null: int = N_NULL, null_margin: int = NULL_MARGIN) -> None:
        self.max_shift, self.sr, self.fps = max_shift, sr, fps
        self.n_null, self.null_margin = n_null, null_margin
        super().__init__(device)

    def reset(self) -> None:
        self.results: list[SyncResult] = []
        self.nulls: list[NullCalibration] = []
        self.clip_notes: list[str] = []

    def update(self, pred_face: Any, audio: np.ndarray) -> None:
        r, cal = calibrate_sync(pred_face, audio, self.sr, self.fps, self.max_shift, self.n_null, self.null_margin)
        self.results.append(r)
        self.nulls.append(cal)
        if r.note:
            self.clip_notes.append(r.note)
        if r.valid and not r.still and not np.isfinite(cal.z) and self.n_null > 0:
            self.clip_notes.append(f"no sync null: {cal.reason}")

    def compute(self) -> dict[str, float]:
        ok = [(r, c) for r, c in zip(self.results, self.nulls) if r.valid]
        if not ok:
            reasons = "; ".join(sorted({r.reason for r in self.results})) or "no clips"
            raise ValueError(f"sync: no valid clip ({reasons})")
        moving = [r for r, _ in ok if r.offset is not None]
        calibrated = [c for _, c in ok if np.isfinite(c.z)]
        return {
            "offset": float(np.mean([r.offset for r in moving])) if moving else float("nan"),
            "abs_offset": float(np.mean([abs(r.offset) for r in moving])) if moving else float("nan"),
            "confidence": float(np.mean([r.confidence for r, _ in ok])),
            "n_still": float(len(ok) - len(moving)),
            "confidence_z": float(np.mean([c.z for c in calibrated])) if calibrated else float("nan"),
            "confidence_pct": float(np.mean([c.percentile for c in calibrated])) if calibrated else float("nan"),
            "n_uncalibrated": float(len(ok) - len(calibrated)),
        }


def sync_offset(landmarks: Any, audio: np.ndarray, sr: int = 16000, fps: float = 25.0,
                max_shift: int = 15) -> tuple[int | None, float | None]:
    """Functional twin of :class:`AVSync`'s version-2 outputs: ``(offset, confidence)`` of one clip."""
    r = av_sync(landmarks, audio, sr, fps, max_shift)
    return r.offset, r.confidence


def sync_calibrated(landmarks: Any, audio: np.ndarray, sr: int = 16000, fps: float = 25.0, max_shift: int = 15,
                    n_null: int = N_NULL, null_margin: int = NULL_MARGIN) -> dict[str, Any]:
    """Functional twin of :class:`AVSync` on one clip: ``offset``, ``confidence``,
    ``confidence_z``, ``confidence_pct`` (and ``null_mean``, ``null_sd``, ``n_null``)."""
    r, cal = calibrate_sync(landmarks, audio, sr, fps, max_shift, n_null, null_margin)
    return {"offset": r.offset, "confidence": r.confidence, **cal.as_dict()}
