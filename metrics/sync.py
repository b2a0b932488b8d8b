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

The signals are in :mod:`~lesbench.metrics.sync_features`, the estimate in
:mod:`~lesbench.metrics.sync_estimate`, the null calibration of the confidence (version 3:
``confidence_z``, ``confidence_pct``) and the comparison with the reference clip
(``*_vs_ref``: generated minus reference on the same audio, where the clip has a reference) in
:mod:`~lesbench.metrics.sync_null`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from lesbench.metrics.base import Metric, Output
from lesbench.metrics.sync_estimate import SyncResult, av_sync
from lesbench.metrics.sync_null import N_NULL, NULL_MARGIN, NullCalibration, calibrate_sync, reference_deltas

VERSION = "xval-logmel-ridge/3"


class AVSync(Metric):
    """Weight-free AV offset/confidence (``sync``); per clip ``offset``, ``abs_offset``,
    ``confidence``, and the null-calibrated ``confidence_z`` / ``confidence_pct`` (see the
    module docstring); :meth:`compute` gives their means over the clips updated so far.

    Still clips (no mouth motion) count with confidence 0 (z 0, percentile 50) and are left out
    of the offset means (``offset``/``abs_offset`` are NaN when every clip is still); ``n_still``
    counts them and :attr:`clip_notes` holds their notes (``lesbench score`` lists them as clip
    issues). Clips too short for a null are left out of the z/percentile means and counted in
    ``n_uncalibrated``. ``n_null=0`` turns the calibration off (z, percentile NaN).
    With the reference clip's face table (``ref_face``, an optional input: clips without a
    reference still get every other output) the reference's own offset and confidence on the
    same audio are measured too (no null: :func:`av_sync` once), and ``offset_vs_ref``,
    ``abs_offset_vs_ref``, ``confidence_vs_ref`` (generated minus reference,
    :func:`~lesbench.metrics.sync_null.reference_deltas`), ``ref_offset`` and
    ``ref_confidence`` are averaged like the other outputs: offsets over the clips where both
    sides move, confidences over the clips where both are valid; NaN without any reference
    (``lesbench score`` counts the clips without a value)."""

    name: ClassVar[str] = "sync"
    version: ClassVar[str] = VERSION
    outputs: ClassVar[tuple[Output, ...]] = (
        Output("confidence", "av-sync", "AV conf", "higher", 3, reference_bound=True),
        Output("abs_offset", "av-abs-offset", "|AV offset|", "lower", 2, "frames"),
        Output("offset", "av-offset", "AV offset", "target", 2, "frames"),
        Output("confidence_z", "sync-confidence-z", None, "higher", 3, reference_bound=True),
        Output("confidence_pct", "sync-confidence-pct", None, "higher", 3, "%", reference_bound=True),
        # against the reference clip (generated minus reference, same audio); NaN without one
        Output("offset_vs_ref", "sync-offset-vs-ref", None, "target", 2, "frames"),
        Output("abs_offset_vs_ref", "sync-abs-offset-vs-ref", None, "target", 2, "frames"),
        Output("confidence_vs_ref", "sync-confidence-vs-ref", None, "target", 3),
        Output("ref_offset", "sync-ref-offset", None, "target", 2, "frames"),
        Output("ref_confidence", "sync-ref-confidence", None, "target", 3))
    protocol_args: ClassVar[dict[str, str]] = {"max_shift": "sync_max_shift", "sr": "sample_rate", "fps": "fps"}
    inputs: ClassVar[tuple[str, ...]] = ("pred_face", "audio")
    #: the reference clip's face table, when the clip has a reference: its sync on the same audio
    optional_inputs: ClassVar[tuple[str, ...]] = ("ref_face",)
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
        #: per clip: the reference's :func:`av_sync` result (None: no reference given)
        self.refs: list[SyncResult | None] = []

    def update(self, pred_face: Any, audio: np.ndarray, ref_face: Any = None) -> None:
        r, cal = calibrate_sync(pred_face, audio, self.sr, self.fps, self.max_shift, self.n_null, self.null_margin)
        self.results.append(r)
        self.nulls.append(cal)
        # the reference needs no null: only its offset and confidence are compared
        ref = None if ref_face is None else av_sync(ref_face, audio, self.sr, self.fps, self.max_shift)
        self.refs.append(ref)
        if ref is not None and (not ref.valid or ref.still):
            self.clip_notes.append(f"reference sync: {ref.reason if not ref.valid else ref.note}")
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
        deltas = [reference_deltas(r, ref) for r, ref in zip(self.results, self.refs) if r.valid and ref is not None]

        def mean(key: str) -> float:  # over the clips where both sides are defined
            vals = [d[key] for d in deltas if np.isfinite(d[key])]
            return float(np.mean(vals)) if vals else float("nan")

        return {
            "offset": float(np.mean([r.offset for r in moving])) if moving else float("nan"),
            "abs_offset": float(np.mean([abs(r.offset) for r in moving])) if moving else float("nan"),
            "confidence": float(np.mean([r.confidence for r, _ in ok])),
            "n_still": float(len(ok) - len(moving)),
            "confidence_z": float(np.mean([c.z for c in calibrated])) if calibrated else float("nan"),
            "confidence_pct": float(np.mean([c.percentile for c in calibrated])) if calibrated else float("nan"),
            "n_uncalibrated": float(len(ok) - len(calibrated)),
            **{k: mean(k) for k in ("offset_vs_ref", "abs_offset_vs_ref", "confidence_vs_ref", "ref_offset",
                                    "ref_confidence")},
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
