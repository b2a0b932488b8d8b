"""What the controllability sweep asks for (:class:`SweepConfig`) and what it measured: one
record per (source, emotion) and per (source, unit), and their summary (:mod:`lesbench.sweep`
describes the measurement)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from lesbench import schema
from lesbench.errors import LesbenchError
from lesbench.metrics.controllability import LevelControllability
from lesbench.records import json_safe

#: Version of the sweep (requests, sources, aggregation); the metric functions are ``ctrl/1``.
SWEEP_VERSION = "sweep/3"
NEUTRAL = "neutral"


@dataclass(frozen=True)
class SweepConfig:
    """What the sweep asks for. ``levels`` are LES levels (fractions of MEAD level 3) beyond the
    neutral level 0; ``duration_s`` the length of the driving audio (s); ``max_sources`` the
    number of test speakers used as sources; ``emotions``/``units`` restrict the sweep (default:
    all LES emotions, all facial units); ``flat_tol`` the projection range (AU units) below which
    an emotion counts as not responding to the level (scored 0); ``min_move`` the mean |ΔAU| inside a unit
    (AU units) below which an edit counts as not moving that unit (tracker noise floor);
    ``torch_threads``: torch's intra-op threads during the sweep (restored after; None leaves
    them). The sweep's many short clips run 4-8x slower with 2 threads than with 1 on a busy
    2-core machine (OpenMP spin-waits; same outputs), hence 1."""

    levels: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    duration_s: float = 0.6
    max_sources: int = 2
    emotions: tuple[str, ...] | None = None
    units: tuple[str, ...] | None = None
    flat_tol: float = 1e-3
    min_move: float = 0.005
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        if not self.levels or any(not (0.0 < float(lv) <= 2.0) for lv in self.levels):
            raise LesbenchError(f"sweep levels must be in (0, 2] (level 0 is always the neutral request): {self.levels}")
        if len(set(self.levels)) < 2:
            raise LesbenchError("the sweep needs at least 2 distinct non-zero levels")
        if self.duration_s <= 0 or self.max_sources < 1:
            raise LesbenchError("sweep duration_s must be > 0 and max_sources >= 1")
        unknown = set(self.units or ()) - set(schema.FACIAL_UNITS)
        if unknown:
            raise LesbenchError(f"unknown facial units {sorted(unknown)}; known: {', '.join(schema.FACIAL_UNITS)}")


@dataclass
class SweepSource:
    """One source image of the sweep: the first crop frame of ``clip_id`` ((H, W, 3) uint8 RGB)."""

    clip_id: str
    speaker: str
    view: str
    image: np.ndarray


@dataclass
class LevelRecord:
    """Level control of one (source, emotion): requested levels (0 first), projections (AU units,
    level-0 output subtracted), and ``level_control``'s numbers over the non-zero levels (0 when
    ``flat``: the method does not follow the level; NaN when too few requests succeeded).
    ``reason``: why the value is the worst one or undefined ("" when measured)."""

    source: str
    emotion: str
    levels: list[float]
    projections: list[float]
    spearman: float
    r2: float
    slope: float
    flat: bool
    reason: str = ""


@dataclass
class UnitRecord:
    """Unit isolation of one (source, unit): ctrl/1 ratios of the restricted (``ratio_restricted``)
    and unrestricted (``ratio_unrestricted``) edits of ``emotion`` against the neutral output,
    mean |ΔAU| inside/outside the unit for both, and ``isolation = 1 - restricted/unrestricted``
    (0 when the method cannot follow the unit request, NaN when undefined; ``reason`` says which)."""

    source: str
    unit: str
    emotion: str
    inside_restricted: float
    outside_restricted: float
    inside_unrestricted: float
    outside_unrestricted: float
    ratio_restricted: float
    ratio_unrestricted: float
    isolation: float
    measurement: str = "raw"  # "held": the other half measured with the unit's half held (module doc)
    reason: str = ""


@dataclass
class ControlSweepResult:
    """Everything the sweep measured; :meth:`summary` gives the reported means."""

    method: str
    levels: list[LevelRecord] = field(default_factory=list)
    units: list[UnitRecord] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    audio_clip: str | None = None
    n_frames: int = 0
    n_generated: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    config: SweepConfig = field(default_factory=SweepConfig)

    def level_values(self, key: str) -> list[float]:
        """Finite values of ``key`` over (source, emotion) pairs, flat pairs (scored 0) included."""
        return [float(getattr(r, key)) for r in self.levels if math.isfinite(getattr(r, key))]

    def isolation_values(self) -> list[float]:
        return [r.isolation for r in self.units if math.isfinite(r.isolation)]

    def values(self, key: str) -> list[float]:
        """Finite values of record field ``key``: ``isolation`` over (source, unit) pairs, else
        :meth:`level_values` (``spearman``, ``r2``)."""
        return self.isolation_values() if key == "isolation" else self.level_values(key)

    def summary(self) -> dict[str, Any]:
        """Means over (source, emotion) and (source, unit) pairs; NaN where nothing is defined."""
        def mean(v: list[float]) -> float:
            return float(np.mean(v)) if v else float("nan")

        per_emotion: dict[str, dict[str, float]] = {}
        for emo in sorted({r.emotion for r in self.levels}):
            rs = [r for r in self.levels if r.emotion == emo]
            per_emotion[emo] = {"spearman": mean([r.spearman for r in rs if math.isfinite(r.spearman)]),
                                "r2": mean([r.r2 for r in rs if math.isfinite(r.r2)]),
                                "slope": mean([r.slope for r in rs if not r.flat and math.isfinite(r.slope)]),
                                "n_flat": sum(r.flat for r in self.levels if r.emotion == emo)}
        per_unit = {u: {"isolation": mean([r.isolation for r in self.units if r.unit == u and math.isfinite(r.isolation)]),
                        "emotion": next(r.emotion for r in self.units if r.unit == u)}
                    for u in sorted({r.unit for r in self.units})}
        return {
            **{out.name: mean(self.values(out.key)) for out in LevelControllability.outputs},
            "n_level_pairs": len(self.levels),
            "n_flat": sum(r.flat for r in self.levels),
            "n_unit_pairs": len(self.units),
            "n_unit_not_following": sum(r.isolation == 0.0 and bool(r.reason) for r in self.units),
            "n_unit_undefined": sum(not math.isfinite(r.isolation) for r in self.units),
            "reasons": self.reasons(),
            "per_emotion": per_emotion,
            "per_unit": per_unit,
        }

    def reasons(self) -> dict[str, int]:
        """How many (source, emotion) / (source, unit) pairs scored the worst value or were left
        out, by kind of reason (the text before its first colon; the records hold the details)."""
        out: dict[str, int] = {}
        for r in [*self.levels, *self.units]:
            if r.reason:
                kind = "level" if isinstance(r, LevelRecord) else "unit"
                key = f"{kind}: {r.reason.split(':')[0].split(' (')[0]}"
                out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, Any]:
        return json_safe({
            "method": self.method, "version": SWEEP_VERSION, "config": asdict(self.config),
            "sources": self.sources, "audio_clip": self.audio_clip, "n_frames": self.n_frames,
            "n_generated": self.n_generated, "failures": dict(sorted(self.failures.items())),
            "seconds": round(self.seconds, 3), "summary": self.summary(),
            "levels": [asdict(r) for r in self.levels], "units": [asdict(r) for r in self.units],
        })


def unit_record(source: str, unit: str, emotion: str, neutral: np.ndarray, unrestricted: np.ndarray,
                 restricted: np.ndarray, unit_isolation: Callable[..., float], min_move: float = 0.0,
                 posable: bool = True) -> UnitRecord:
    """One unit record (module doc). ``posable``: the yardstick's direction of ``emotion`` has a
    component inside ``unit`` (else the request means nothing and the record is undefined)."""
    inside = np.array([n in schema.FACIAL_UNITS[unit] for n in schema.AU_NAMES])

    def parts(x: np.ndarray) -> tuple[float, float]:
        d = np.abs(x - neutral)
        return float(d[inside].mean()), float(d[~inside].mean())

    nan = float("nan")
    if not (np.isfinite(unrestricted).all() and np.isfinite(restricted).all()):
        return UnitRecord(source, unit, emotion, nan, nan, nan, nan, nan, nan, nan,
                          reason="a request failed (see failures)")
    in_r, out_r = parts(restricted)
    in_u, out_u = parts(unrestricted)
    r_r = unit_isolation(neutral, restricted, unit)
    r_u = unit_isolation(neutral, unrestricted, unit)
    # below min_move, the ratios are tracker noise
    if not posable:
        iso, reason = nan, f"undefined: the LES direction of {emotion} has no component in {unit}"
    elif in_u < min_move:
        iso, reason = 0.0, (f"cannot edit the unit: the unrestricted {emotion} edit moves {unit} by "
                            f"{in_u:.2g} < min_move {min_move:g} AU")
    elif in_r < min_move:
        iso, reason = 0.0, (f"does not follow the unit request: the edit restricted to {unit} moves it by "
                            f"{in_r:.2g} < min_move {min_move:g} AU")
    elif not (math.isfinite(r_r) and math.isfinite(r_u) and r_u > 0):
        iso, reason = nan, f"undefined: the unrestricted {emotion} edit moves nothing outside {unit}"
    else:
        iso, reason = 1.0 - r_r / r_u, ""
    return UnitRecord(source, unit, emotion, in_r, out_r, in_u, out_u, float(r_r), float(r_u), float(iso),
                      reason=reason)

