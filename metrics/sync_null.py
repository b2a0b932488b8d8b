"""Null calibration of the ``sync`` confidence: the clip scored against its own audio rotated to
wrong alignments, as a z-score and a percentile; and a generated clip's sync next to its reference.

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

from dataclasses import dataclass
from typing import Any

import numpy as np

from lesbench.metrics.sync_estimate import SyncResult, av_sync

#: Null calibration: number of circular audio rotations and how far (frames) beyond the searched
#: shift range the true alignment must lie.
N_NULL = 20
NULL_MARGIN = 10
#: Floor of the null's standard deviation (correlation units) in ``confidence_z``.
MIN_NULL_SD = 0.01


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


def reference_deltas(pred: SyncResult, ref: SyncResult) -> dict[str, float]:
    """A generated clip's sync minus its reference clip's, on the same audio.

    ``offset_vs_ref`` = pred offset - ref offset (frames), ``abs_offset_vs_ref`` = |pred offset|
    - |ref offset| (> 0: further out of sync than the reference), NaN where either clip is still
    (no offset) or invalid; ``confidence_vs_ref`` = pred confidence - ref confidence (a still
    clip counts with its confidence 0, as in the ``sync`` means), NaN where either is invalid.
    ``ref_offset`` / ``ref_confidence``: the reference's own values (NaN where undefined).
    """
    nan = float("nan")

    def num(x: Any) -> float:
        return nan if x is None else float(x)

    p_conf = num(pred.confidence) if pred.valid else nan
    r_conf = num(ref.confidence) if ref.valid else nan
    p_off = num(pred.offset) if pred.valid else nan
    r_off = num(ref.offset) if ref.valid else nan
    return {"ref_offset": r_off, "ref_confidence": r_conf, "offset_vs_ref": p_off - r_off,
            "abs_offset_vs_ref": abs(p_off) - abs(r_off), "confidence_vs_ref": p_conf - r_conf}


def sync_vs_reference(pred_face: Any, ref_face: Any, audio: np.ndarray, sr: int = 16000, fps: float = 25.0,
                      max_shift: int = 15, n_null: int = N_NULL, **kwargs: Any) -> dict[str, Any]:
    """A generated clip's sync next to its reference clip's, on the same audio.

    Returns ``pred_*`` and ``ref_*`` for ``offset`` (frames), ``confidence``, ``confidence_z``
    and ``confidence_pct``, plus ``delta_offset`` = pred - ref offset, ``delta_abs_offset`` =
    |pred offset| - |ref offset| (frames; > 0: the generated clip is further out of sync than
    its reference), ``delta_confidence`` and ``delta_z`` (pred - ref; NaN where either side is
    undefined). Ground truth itself is not perfectly in sync (real recordings measure about
    +-1 frame), so the difference is the fair reading for a method that copies the reference's
    timing. The ``delta_*`` values are :func:`reference_deltas` (what the ``sync`` metric reports).
    """
    out: dict[str, Any] = {}
    results = {}
    for side, face in (("pred", pred_face), ("ref", ref_face)):
        r, cal = calibrate_sync(face, audio, sr, fps, max_shift, n_null, **kwargs)
        results[side] = r
        out[f"{side}_offset"] = r.offset
        out[f"{side}_confidence"] = r.confidence
        out[f"{side}_confidence_z"] = cal.z
        out[f"{side}_confidence_pct"] = cal.percentile
        out[f"{side}_note"] = r.note or r.reason or cal.reason
    d = reference_deltas(results["pred"], results["ref"])
    out["delta_offset"] = d["offset_vs_ref"]
    out["delta_abs_offset"] = d["abs_offset_vs_ref"]
    out["delta_confidence"] = d["confidence_vs_ref"]
    out["delta_z"] = out["pred_confidence_z"] - out["ref_confidence_z"]
    return out
