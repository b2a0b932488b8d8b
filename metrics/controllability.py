"""Controllability of emotion level and facial unit (version ``ctrl/1``).

None of the usual anchors (EAT, EAMM, SadTalker) measure whether "level 0.5" really sits
between 0 and 1, or whether editing the brows leaves the mouth alone. lesbench does:

**Level control.** A method is asked for levels ``l_1..l_N`` (e.g. 0, 0.25, ..., 1) of one
emotion; for each output the measured AUs (mean over frames, minus an optional neutral
``baseline``) are projected on that emotion's LES direction ``d`` (a (17,) AU vector, from
the LES artifact): ``p = (a - baseline) . d / ||d||`` (AU-intensity units). Then

- ``spearman`` = Spearman rank correlation between ``l`` and ``p`` (average ranks for ties;
  1 = perfectly monotonic);
- ``r2`` = coefficient of determination of the least-squares line ``p ~ alpha + beta l``
  (``1 - SS_res / SS_tot``; 1 = perfectly linear); ``slope`` = beta.

**Unit isolation.** For an edit of facial unit ``U`` (``schema.FACIAL_UNITS``), with AU
vectors before ``a0`` and after ``a1`` (17,): ``inside = mean_{au in U} |a1 - a0|``,
``outside = mean_{au not in U} |a1 - a0|``, ``isolation = outside / inside`` (lower is better;
0 = nothing outside the unit moved; NaN when nothing inside moved).

Measuring with the lower face held (:func:`lesbench.extract.measure.hold_lower_face`) and the
AU measure the sweep uses (:class:`lesbench.extract.measure.TrackerMeasure`) live on the ground
floor, shared with LES-Talker's acceptance checks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from lesbench.extract.face_arrays import aus_array
from lesbench.metrics.base import Metric, MetricUnavailable, Output
from lesbench.schema import AU_NAMES, FACIAL_UNITS

VERSION = "ctrl/1"


def project_on_direction(aus: Any, direction: np.ndarray, baseline: np.ndarray | None = None) -> float:
    """Scalar projection of the clip-mean AU vector (minus ``baseline``) on ``direction``.

    ``aus``: (T, 17), (17,) or a frames table; NaN frames are ignored.
    """
    a = aus_array(aus).astype(np.float64)
    mean = np.nanmean(a, axis=0)
    d = np.asarray(direction, np.float64).reshape(-1)
    if d.shape != (len(AU_NAMES),):
        raise ValueError(f"direction must be ({len(AU_NAMES)},), got {d.shape}")
    norm = np.linalg.norm(d)
    if norm == 0:
        raise ValueError("direction is the zero vector")
    if baseline is not None:
        mean = mean - np.asarray(baseline, np.float64).reshape(-1)
    return float(mean @ d / norm)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):  # average ranks of ties
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def level_control(levels: np.ndarray, projections: np.ndarray) -> dict[str, float]:
    """``{"spearman", "r2", "slope", "n"}`` for requested ``levels`` and measured ``projections``."""
    x = np.asarray(levels, np.float64).reshape(-1)
    y = np.asarray(projections, np.float64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} levels but {len(y)} projections")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError("level control needs at least 3 outputs at 2 or more distinct levels")
    rx, ry = _ranks(x), _ranks(y)
    sp = float(np.corrcoef(rx, ry)[0, 1]) if np.ptp(ry) > 0 else float("nan")
    beta, alpha = np.polyfit(x, y, 1)
    ss_res = float(((y - (alpha + beta * x)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return {"spearman": sp, "r2": r2, "slope": float(beta), "n": int(len(x))}


def unit_isolation(before: Any, after: Any, unit: str) -> float:
    """``outside / inside`` mean |delta AU| for an edit of facial ``unit`` (see module doc).

    ``before``/``after``: (17,), (T, 17) (frame mean is used) or frames tables.
    """
    if unit not in FACIAL_UNITS:
        raise ValueError(f"unknown facial unit {unit!r}; known: {sorted(FACIAL_UNITS)}")
    a0 = np.nanmean(aus_array(before).astype(np.float64), axis=0)
    a1 = np.nanmean(aus_array(after).astype(np.float64), axis=0)
    inside = np.array([n in FACIAL_UNITS[unit] for n in AU_NAMES])
    delta = np.abs(a1 - a0)
    din, dout = float(delta[inside].mean()), float(delta[~inside].mean())
    return dout / din if din > 0 else float("nan")


class LevelControllability(Metric):
    """Spearman rho and R^2 of measured LES projection vs requested level, per emotion.

    ``directions``: emotion -> (17,) LES direction; ``baselines``: optional emotion-independent
    neutral AU vector per speaker is folded in by the caller (``baseline=``). Clips are pooled
    per emotion; :meth:`compute` gives the mean over emotions and ``per_emotion``.
    """

    name: ClassVar[str] = "controllability"
    version: ClassVar[str] = VERSION
    #: also the controllability sweep's outputs (``lesbench.sweep``): ``isolation`` is measured
    #: only by the sweep's unit edits
    outputs: ClassVar[tuple[Output, ...]] = (
        Output("spearman", "level-spearman", "Level ρ", "higher", 3),
        Output("r2", "level-linearity", "Level R²", "higher", 3),
        Output("isolation", "unit-isolation", "Unit iso", "higher", 3))
    inputs: ClassVar[tuple[str, ...]] = ("pred_face", "emotion", "level")
    unit: ClassVar[str] = "dataset"
    needs_face: ClassVar[bool] = True

    def __init__(self, device: str | None = None, directions: dict[str, np.ndarray] | None = None,
                 baseline: np.ndarray | None = None) -> None:
        if not directions:
            raise MetricUnavailable("controllability", "needs LES emotion directions (pass directions= "
                                    "from a fitted LES artifact)")
        self.directions = {k: np.asarray(v, np.float64) for k, v in directions.items()}
        self.baseline = baseline
        super().__init__(device)

    def reset(self) -> None:
        self.points: dict[str, list[tuple[float, float]]] = {}

    def update(self, pred_face: Any, emotion: str, level: float) -> None:
        if emotion not in self.directions:
            return  # e.g. neutral: no direction, nothing to control
        p = project_on_direction(pred_face, self.directions[emotion], self.baseline)
        self.points.setdefault(emotion, []).append((float(level), p))

    def compute(self) -> dict[str, Any]:
        per = {}
        for emo, pts in sorted(self.points.items()):
            arr = np.array(pts)
            try:
                per[emo] = level_control(arr[:, 0], arr[:, 1])
            except ValueError:
                continue
        if not per:
            raise ValueError("controllability: no emotion with 3+ outputs at 2+ levels")
        return {"spearman": float(np.nanmean([v["spearman"] for v in per.values()])),
                "r2": float(np.nanmean([v["r2"] for v in per.values()])),
                "per_emotion": per}


def controllability(levels: np.ndarray, aus: list[Any], direction: np.ndarray,
                    baseline: np.ndarray | None = None) -> dict[str, float]:
    """Functional twin of :class:`LevelControllability` for one emotion."""
    return level_control(levels, [project_on_direction(a, direction, baseline) for a in aus])
