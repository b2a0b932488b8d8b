"""The score report: per-clip outcomes summarised into values with bootstrap confidence
intervals, counts and reasons, and its JSON and text forms.

Aggregates are means over clips (protocol ``aggregate: clips``) or over all frames of all clips
pooled (``aggregate: frames``), with a seeded percentile bootstrap CI that resamples clips.
Counts (``n_*`` outputs, ``frame_counts()``) are sums, never averaged or given a CI.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.metrics.base import Metric, MetricResult, MetricUnavailable
from lesbench.metrics.outputs import output_direction
from lesbench.metrics.protocol import Protocol
from lesbench.records import json_safe

@dataclass
class ClipStatus:
    key: str
    pred: str
    ref: str | None
    emotion: str | None = None
    level: int | None = None
    n_frames: int | None = None
    #: reference frames, and frame pairs the paired metrics read (protocol pairing)
    n_ref_frames: int | None = None
    n_paired: int | None = None
    has_audio: bool | None = None
    face_ratio: float | None = None
    issues: list[str] = field(default_factory=list)


@dataclass
class ScoreReport:
    """Everything a score run produced (``as_dict`` is the JSON written by ``--json``)."""

    protocol: dict[str, Any]
    pred: str
    ref: str | None
    metrics: dict[str, MetricResult]
    clips: list[ClipStatus]
    weights: dict[str, str]
    lesbench_version: str
    seconds: float
    unpaired: list[str] = field(default_factory=list)
    #: clips found under PRED but not scored (clip list, speaker filter): key -> reason
    excluded: dict[str, str] = field(default_factory=dict)
    #: the clip list used: path, sha256, listed, missing (listed clips without a video)
    clip_list: dict[str, Any] | None = None

    @property
    def results(self) -> dict[str, MetricResult]:
        """Alias of :attr:`metrics` (what ``lesbench.evaluation`` reads)."""
        return self.metrics

    def as_dict(self) -> dict[str, Any]:
        return json_safe({
            "lesbench_version": self.lesbench_version,
            "protocol": self.protocol,
            "pred": self.pred,
            "ref": self.ref,
            "weights": self.weights,
            "metrics": {k: asdict(m) for k, m in self.metrics.items()},
            "clips": [asdict(c) for c in self.clips],
            "unpaired": self.unpaired,
            "excluded": self.excluded,
            "clip_list": self.clip_list,
            "seconds": self.seconds,
        })

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=False), encoding="utf-8")
        tmp.replace(path)
        return path

    def table(self) -> str:
        """Readable summary: one line per metric value, then unavailable metrics and clip issues."""
        lines = [f"protocol {self.protocol.get('id')}  pred {self.pred}  ref {self.ref or '-'}  "
                 f"clips {len(self.clips)}", ""]
        head = f"{'metric':<28}{'value':>12}  {'95% CI':<22}{'n':>5}  {'better':<7}version"
        lines += [head, "-" * len(head)]
        for name, m in self.metrics.items():
            if m.unavailable is not None:
                continue
            values = m.value if isinstance(m.value, dict) else {name: m.value}
            cis = m.ci95 if isinstance(m.ci95, dict) else {}
            n = m.counts.get("n_clips", "-")
            for key, val in values.items():
                if not isinstance(val, (int, float)):
                    continue
                ci = cis.get(key) if isinstance(m.value, dict) else m.ci95
                ci_s = f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
                label = name if key == name else f"{name}.{key}"
                better = {True: "higher", False: "lower", None: "-"}[output_direction(name, key, m.higher_is_better)]
                lines.append(f"{label:<28}{val:>12.4g}  {ci_s:<22}{n!s:>5}  {better:<7}{m.version}")
        counted = [(k, m) for k, m in self.metrics.items() if m.unavailable is None and (m.counts or m.skipped)]
        if counted:
            lines += ["", "counts (sums over clips; not averaged):"]
            for k, m in counted:
                text = "  ".join(f"{c}={v}" for c, v in m.counts.items())
                if m.skipped:
                    text += "  skipped: " + "; ".join(f"{why} ({v})" for why, v in m.skipped.items())
                lines.append(f"  {k:<26}{text}")
        missing = {k: m for k, m in self.metrics.items() if m.unavailable is not None}
        if missing:
            lines += ["", "unavailable:"] + [f"  {k}: {m.unavailable}" for k, m in missing.items()]
        issues = [c for c in self.clips if c.issues]
        if issues:
            lines += ["", "clip issues:"] + [f"  {c.key}: {'; '.join(c.issues)}" for c in issues]
        if self.unpaired:
            lines += ["", f"not paired with a reference: {len(self.unpaired)} clip(s)"]
        if self.excluded:
            reasons: dict[str, int] = {}
            for why in self.excluded.values():
                reasons[why] = reasons.get(why, 0) + 1
            lines += ["", f"not scored: {len(self.excluded)} clip(s): "
                      + "; ".join(f"{why} ({v})" for why, v in reasons.items())]
        if self.clip_list and self.clip_list.get("missing"):
            lines += [f"listed in {self.clip_list['path']} without a generated video: "
                      f"{len(self.clip_list['missing'])} clip(s)"]
        return "\n".join(lines)



def bootstrap_ci(values: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean over clips (seeded); None with fewer than 2 values."""
    x = [v for v in values if v is not None and np.isfinite(v)]
    return bootstrap_ci_weighted(x, [1.0] * len(x), n, seed, level)


def bootstrap_ci_weighted(values: Sequence[float], weights: Sequence[float], n: int = 1000, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap CI of a pooled mean ``sum(v w) / sum(w)`` (clip means ``v`` over
    ``w`` frames each), resampling clips (seeded); None with fewer than 2 clips."""
    v = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    if len(v) < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n, len(v)))
    means = (v[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def split_counts(value: Any) -> tuple[Any, dict[str, int]]:
    """``(value without its n_* entries, those entries as int counts)`` (counts are summed,
    never averaged)."""
    if not isinstance(value, dict):
        return value, {}
    counts = {k: int(v) for k, v in value.items() if k.startswith("n_") and isinstance(v, (int, float, np.number))
              and np.isfinite(v)}
    return {k: v for k, v in value.items() if not k.startswith("n_")}, counts


def scalars(value: Any) -> dict[str, float]:
    if isinstance(value, dict):
        return {k: float(v) for k, v in value.items() if isinstance(v, (int, float, np.floating, np.integer))
                and not isinstance(v, bool)}
    return {"": float(value)}



def summarise(name: str, m: Metric, res: MetricResult, unit: str, clips: dict[str, Any],
               counts: dict[str, dict[str, int]], proto: Protocol) -> None:
    """Fill ``res`` from the per-clip outcomes ``clips`` (key -> ``{"value"}``, ``{"skipped"}``
    or True for a dataset metric's update) and per-clip ``counts``."""
    total: dict[str, int] = {}
    for c in counts.values():
        for k, v in c.items():
            total[k] = total.get(k, 0) + int(v)
    skipped: dict[str, int] = {}
    for v in clips.values():
        if isinstance(v, dict) and "skipped" in v:
            skipped[str(v["skipped"])] = skipped.get(str(v["skipped"]), 0) + 1
    res.skipped = skipped
    try:
        if unit == "dataset":
            value, extra = split_counts(m.compute())
            total.update(extra)
            total.update(metric_counts(m))
            res.value = value if isinstance(value, dict) else float(value)
            res.per_clip = {k: ("ok" if v is True else v) for k, v in clips.items()}
            res.counts = {"n_clips": sum(1 for v in clips.values() if v is True), **total}
            return
        ok = {k: v for k, v in clips.items() if isinstance(v, dict) and "value" in v}
        res.per_clip = {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in clips.items()}
        res.counts = {"n_clips": len(ok), **total}
        if not ok:
            res.unavailable = "no clip could be scored (see clip issues)"
            return
        keys = list(scalars(next(iter(ok.values()))["value"]))
        aggregate = proto.sampling(name).aggregate if name in proto.frames else "clips"
        agg: dict[str, float] = {}
        cis: dict[str, tuple[float, float] | None] = {}
        for k in keys:
            vals = {c: scalars(v["value"]).get(k, float("nan")) for c, v in ok.items()}
            finite = {c: x for c, x in vals.items() if np.isfinite(x)}
            if len(finite) < len(vals):  # counted, never silently left out
                res.counts[f"n_clips_no_value{'_' + k if k else ''}"] = len(vals) - len(finite)
            if aggregate == "frames":
                frames = [counts.get(c, {}).get("n_frames") for c in finite]
                if any(x is None for x in frames):
                    raise ValueError(f"{name}: aggregate 'frames' needs per-frame counts, which this metric "
                                     "does not report")
                w = [float(x) for x in frames if x is not None]
                wsum = float(sum(w))
                agg[k] = float(np.dot(list(finite.values()), w) / wsum) if wsum > 0 else float("nan")
                cis[k] = bootstrap_ci_weighted(list(finite.values()), w, proto.bootstrap_n, proto.bootstrap_seed,
                                               proto.bootstrap_level)
            else:
                agg[k] = float(np.mean(list(finite.values()))) if finite else float("nan")
                cis[k] = bootstrap_ci(list(finite.values()), proto.bootstrap_n, proto.bootstrap_seed,
                                      proto.bootstrap_level)
        if keys == [""]:
            res.value, res.ci95 = agg[""], cis[""]
        else:
            res.value, res.ci95 = agg, cis
    except MetricUnavailable as exc:
        res.value, res.ci95, res.unavailable = None, None, exc.reason
    except (ValueError, LesbenchError) as exc:
        res.unavailable = f"could not compute: {exc}"


def metric_counts(m: Metric) -> dict[str, int]:
    """Counts a metric instance reports through ``frame_counts()`` (frames in its mean, values
    it could not compute), or {}."""
    fn = getattr(m, "frame_counts", None)
    return {k: int(v) for k, v in (fn() or {}).items()} if callable(fn) else {}


def clip_value(m: Metric, clip_counts: dict[str, dict[str, dict[str, int]]], name: str, key: str) -> dict[str, Any]:
    """One clip's outcome of a per-clip metric: ``{"value": ...}`` or, when nothing could be
    computed, ``{"skipped": reason}``; its counts (``n_*`` outputs, ``frame_counts()``) go to
    ``clip_counts[name][key]``."""
    counts = metric_counts(m)
    try:
        value, extra = split_counts(m.compute())
    except ValueError:
        clip_counts.setdefault(name, {})[key] = counts
        raise
    counts.update(extra)
    clip_counts.setdefault(name, {})[key] = counts
    numbers = scalars(value)
    if numbers and not any(np.isfinite(v) for v in numbers.values()):
        why = ", ".join(f"{k}={v}" for k, v in counts.items() if k != "n_frames" and v)
        return {"skipped": f"no computable value ({why})" if why else "no computable value"}
    return {"value": value}

