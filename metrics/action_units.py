"""AU accuracy against target AUs: per-AU activation accuracy and F1, intensity MAE, Pearson r.

Definition (version ``au-acc/1``). Inputs are per-frame AU intensities in [0, 1] in
``schema.AU_NAMES`` order (17 AUs): the generated video's (measured by lesbench's face stage)
and the target's (the reference video's measured AUs, or a requested (17,) vector repeated on
every frame). Frames are paired with :func:`~lesbench.metrics.protocol.paired_indices`; frames
without a face on either side are skipped.

- Activation: ``AU active <=> intensity >= threshold``; thresholds come from the protocol
  (``au.default_threshold`` and per-AU ``au.thresholds``; mead-v1: 0.3 for all AUs).
- ``acc[au]`` = fraction of frames whose activation agrees; ``accuracy`` = mean over AUs.
- ``f1[au] = 2 TP / (2 TP + FP + FN)`` over all frames of all clips updated (counts are pooled,
  not averaged per clip); undefined (NaN) when the AU is active in neither target nor
  prediction on any frame; ``f1`` = mean over AUs where defined.
- ``mae`` = mean |pred - target| over frames and AUs (intensity units, [0, 1]).
- ``pearson[au]`` = Pearson r over all pooled frames (NaN if either side is constant);
  ``pearson`` = mean over AUs where defined.

:meth:`AUAccuracy.compute` pools frames over clips; per-clip values come from
:func:`au_scores` on one clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from lesbench.extract.face_arrays import aus_array
from lesbench.metrics.base import Metric, Output
from lesbench.metrics.protocol import paired_indices
from lesbench.schema import AU_NAMES

VERSION = "au-acc/1"
N_AU = len(AU_NAMES)


@dataclass
class AUCounts:
    """Sufficient statistics, per AU (arrays of length 17)."""

    tp: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    fp: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    fn: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    tn: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    abs_err: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    n: float = 0.0
    sx: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    sy: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    sxx: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    syy: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))
    sxy: np.ndarray = field(default_factory=lambda: np.zeros(N_AU))

    def add(self, pred: np.ndarray, target: np.ndarray, thresholds: np.ndarray) -> None:
        x = pred.astype(np.float64)
        y = target.astype(np.float64)
        pa, ta = x >= thresholds, y >= thresholds
        self.tp += (pa & ta).sum(0)
        self.fp += (pa & ~ta).sum(0)
        self.fn += (~pa & ta).sum(0)
        self.tn += (~pa & ~ta).sum(0)
        self.abs_err += np.abs(x - y).sum(0)
        self.n += len(x)
        self.sx += x.sum(0)
        self.sy += y.sum(0)
        self.sxx += (x * x).sum(0)
        self.syy += (y * y).sum(0)
        self.sxy += (x * y).sum(0)

    def scores(self) -> dict[str, Any]:
        if self.n == 0:
            raise ValueError("au: no frame with a face on both sides")
        acc = (self.tp + self.tn) / self.n
        den = 2 * self.tp + self.fp + self.fn
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(den > 0, 2 * self.tp / np.where(den > 0, den, 1), np.nan)
            cov = self.sxy - self.sx * self.sy / self.n
            vx = self.sxx - self.sx ** 2 / self.n
            vy = self.syy - self.sy ** 2 / self.n
            ok = (vx > 1e-12 * self.n) & (vy > 1e-12 * self.n)
            r = np.where(ok, cov / np.sqrt(np.where(ok, vx * vy, 1.0)), np.nan)
        mae_au = self.abs_err / self.n
        return {
            "accuracy": float(acc.mean()),
            "f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
            "mae": float(mae_au.mean()),
            "pearson": float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"),
            "per_au": {name: {"accuracy": float(acc[j]), "f1": float(f1[j]), "mae": float(mae_au[j]),
                              "pearson": float(r[j])} for j, name in enumerate(AU_NAMES)},
            "n_frames": int(self.n),
        }


def _paired(pred: Any, target: Any, pairing: str) -> tuple[np.ndarray, np.ndarray]:
    p = aus_array(pred)
    t = aus_array(target)
    if len(t) == 1 and len(p) > 1:  # a requested AU vector: the same target on every frame
        t = np.repeat(t, len(p), axis=0)
    ip, it = paired_indices(len(p), len(t), pairing)
    p, t = p[ip], t[it]
    ok = np.isfinite(p).all(1) & np.isfinite(t).all(1)
    return p[ok], t[ok]


def au_scores(pred: Any, target: Any, thresholds: float | np.ndarray = 0.3, pairing: str = "linspace") -> dict[str, Any]:
    """Functional twin of :class:`AUAccuracy` for one clip.

    Args:
        pred: (T, 17) AU intensities or a frames table.
        target: (T', 17), (17,) (a requested vector, used on every frame) or a frames table.
        thresholds: scalar or (17,) activation thresholds.
    """
    th = np.broadcast_to(np.asarray(thresholds, np.float64), (N_AU,))
    counts = AUCounts()
    counts.add(*_paired(pred, target, pairing), th)
    return counts.scores()


class AUAccuracy(Metric):
    """AU activation accuracy / F1, intensity MAE and Pearson r against target AUs."""

    name: ClassVar[str] = "au"
    version: ClassVar[str] = VERSION
    outputs: ClassVar[tuple[Output, ...]] = (
        Output("accuracy", "au-acc", "AU acc", "higher", 3), Output("f1", "au-f1", "AU F1", "higher", 3),
        Output("mae", "au-mae", "AU MAE", "lower", 3), Output("pearson", "au-pearson", "AU r", "higher", 3))
    protocol_args: ClassVar[dict[str, str]] = {"thresholds": "au_threshold_vector", "pairing": "pairing"}
    inputs: ClassVar[tuple[str, ...]] = ("pred_face", "target_aus")
    needs_face: ClassVar[bool] = True

    def __init__(self, device: str | None = None, thresholds: float | np.ndarray = 0.3, pairing: str = "linspace") -> None:
        self.thresholds = np.broadcast_to(np.asarray(thresholds, np.float64), (N_AU,)).copy()
        self.pairing = pairing
        super().__init__(device)

    def reset(self) -> None:
        self.counts = AUCounts()

    def update(self, pred_face: Any, target_aus: Any) -> None:
        self.counts.add(*_paired(pred_face, target_aus, self.pairing), self.thresholds)

    def compute(self) -> dict[str, Any]:
        return self.counts.scores()
