"""The robustness audit's report: per metric output the deltas of every perturbation from the
original with bootstrap CIs over clips, the spread, and the report's text, JSON and plot
(definitions in :mod:`lesbench.metrics.robustness`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.records import json_safe
from lesbench.metrics.robustness_perturb import ORIGINAL

#: Version of the audit (its definitions and report), written into every report.
VERSION = "robust/1"


def _numbers(name: str, value: Any) -> dict[str, float]:
    """``{output label: float}`` of one metric value (a float, or a dict of outputs)."""
    if isinstance(value, dict):
        return {f"{name}.{k}": float(v) for k, v in value.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {name: float(value)}
    return {}


def _flatten(results: dict[str, Any]) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, str]]:
    """From ``{metric: MetricResult}``: output values, per-output per-clip values, unavailable."""
    values: dict[str, float] = {}
    per_clip: dict[str, dict[str, float]] = {}
    unavailable: dict[str, str] = {}
    for name, res in results.items():
        if getattr(res, "unavailable", None) is not None:
            unavailable[name] = str(res.unavailable)
            continue
        values.update(_numbers(name, res.value))
        for clip, v in (getattr(res, "per_clip", None) or {}).items():
            for label, x in _numbers(name, v).items():
                if math.isfinite(x):
                    per_clip.setdefault(label, {})[clip] = x
    return values, per_clip, unavailable


def _percentile_ci(draws: np.ndarray, level: float) -> list[float]:
    lo, hi = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def robustness_table(variants: dict[str, dict[str, Any]], *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict[str, Any]:
    """The report's numbers from ``{variant: {metric: MetricResult}}`` (``original`` first).

    Returns ``{output: {"values": {variant: v}, "delta": {p: {"value", "ci95"}}, "spread":
    {"value", "ci95", "max_at", "min_at"}, "n_clips", "ci_reason", "missing": {variant: why}}}``
    (module doc for the definitions).
    """
    if ORIGINAL not in variants:
        raise ValueError(f"robustness_table: no {ORIGINAL!r} variant")
    flat = {k: _flatten(v) for k, v in variants.items()}
    labels = list(dict.fromkeys(lab for v in flat.values() for lab in v[0]))
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for lab in labels:
        metric = lab.split(".")[0]
        vals = {k: f[0][lab] for k, f in flat.items() if lab in f[0] and math.isfinite(f[0][lab])}
        missing = {k: (f[2].get(metric) or "no value for this output") for k, f in flat.items() if k not in vals}
        entry: dict[str, Any] = {"values": vals, "missing": missing, "delta": {}, "spread": None,
                                 "n_clips": 0, "ci_reason": None}
        if ORIGINAL not in vals or len(vals) < 2:
            entry["ci_reason"] = "the original or every perturbation has no value"
            out[lab] = entry
            continue
        # clips with a value in every variant that has one: the paired bootstrap's population
        clip_sets = [set(flat[k][1].get(lab, {})) for k in vals]
        clips = sorted(set.intersection(*clip_sets)) if clip_sets else []
        entry["n_clips"] = len(clips)
        draws = None
        if len(clips) >= 2:
            table = np.array([[flat[k][1][lab][c] for c in clips] for k in vals])  # (V, C)
            idx = rng.integers(0, len(clips), size=(int(n_boot), len(clips)))
            draws = table[:, idx].mean(axis=2)  # (V, B): clip-mean of every variant per draw
        else:
            entry["ci_reason"] = ("no per-clip values (a dataset-level metric)" if not clips
                                  else "fewer than 2 clips with values in every variant")
        names = list(vals)
        base = vals[ORIGINAL]
        for i, k in enumerate(names):
            if k == ORIGINAL:
                continue
            ci = _percentile_ci(draws[i] - draws[names.index(ORIGINAL)], level) if draws is not None else None
            entry["delta"][k] = {"value": vals[k] - base, "ci95": ci}
        hi = max(vals, key=vals.__getitem__)
        lo = min(vals, key=vals.__getitem__)
        entry["spread"] = {"value": vals[hi] - vals[lo], "max_at": hi, "min_at": lo,
                           "ci95": _percentile_ci(draws.max(axis=0) - draws.min(axis=0), level)
                           if draws is not None else None}
        out[lab] = entry
    return out


@dataclass
class RobustnessReport:
    """An audit's outcome: the perturbation set, per-variant scorer output summaries, the table."""

    perturbations: dict[str, Any]
    pred: str
    ref: str | None
    metrics: list[str] | None
    protocol: str
    table: dict[str, Any]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return json_safe({"version": VERSION, "perturbations": self.perturbations, "pred": self.pred,
                          "ref": self.ref, "metrics": self.metrics, "protocol": self.protocol,
                          "skipped": self.skipped, "variants": self.variants, "table": self.table,
                          "seconds": round(self.seconds, 1)})

    def text(self) -> str:
        """One block per metric output: original value, delta per perturbation [CI], spread [CI]."""
        def fmt(x: float | None) -> str:
            return "-" if x is None or not math.isfinite(x) else f"{x:+.4g}"

        def ci(c: list[float] | None) -> str:
            return f"[{c[0]:+.3g}, {c[1]:+.3g}]" if c else ""

        lines = [f"robustness {self.perturbations['name']}@{self.perturbations['version']} ({VERSION})  "
                 f"pred {self.pred}  ref {self.ref or '-'}  protocol {self.protocol}", ""]
        for lab, e in self.table.items():
            if e["spread"] is None:
                lines.append(f"{lab}: no spread ({e['ci_reason']})")
                continue
            sp = e["spread"]
            lines.append(f"{lab}: original {e['values'][ORIGINAL]:.4g}   spread {sp['value']:.4g} {ci(sp['ci95'])}"
                         f"  (max {sp['max_at']}, min {sp['min_at']}; {e['n_clips']} clips"
                         + (f"; no CI: {e['ci_reason']}" if e["ci_reason"] else "") + ")")
            for k, d in e["delta"].items():
                lines.append(f"    {k:<18}{fmt(d['value']):>12}  {ci(d['ci95'])}")
            for k, why in e["missing"].items():
                lines.append(f"    {k:<18}{'n/a':>12}  {why}")
        if self.skipped:
            lines += ["", "perturbations not run:"] + [f"  {k}: {v}" for k, v in self.skipped.items()]
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> list[Path]:
        """``robustness.json``, ``robustness.txt`` and ``robustness.png`` into ``out_dir`` (atomic)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in (("robustness.json", json.dumps(self.as_dict(), indent=2, allow_nan=False)),
                           ("robustness.txt", self.text() + "\n")):
            tmp = out / (name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(out / name)
            written.append(out / name)
        png = plot_report(self.table, out / "robustness.png",
                          title=f"{self.perturbations['name']}@{self.perturbations['version']}")
        if png is not None:
            written.append(png)
        return written


def plot_report(table: dict[str, Any], path: str | Path, title: str = "") -> Path | None:
    """One panel per metric output: delta per perturbation with its CI (bars), the spread in the
    panel title. None when no output has a spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(lab, e) for lab, e in table.items() if e.get("spread")]
    if not rows:
        return None
    ncol = min(3, len(rows))
    nrow = math.ceil(len(rows) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 0.32 * 16 * nrow + 1), squeeze=False)
    for ax, (lab, e) in zip(axes.flat, rows):
        names = list(e["delta"])
        vals = [e["delta"][k]["value"] for k in names]
        err = np.array([[v - d["ci95"][0], d["ci95"][1] - v] if d["ci95"] else [0.0, 0.0]
                        for v, d in zip(vals, (e["delta"][k] for k in names))]).T
        ax.barh(range(len(names)), vals, xerr=err if len(names) else None, color="tab:blue", alpha=0.8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        sp = e["spread"]
        ax.set_title(f"{lab}: orig {e['values'][ORIGINAL]:.3g}, spread {sp['value']:.3g}", fontsize=9)
        ax.set_xlabel("score(perturbed) - score(original)", fontsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the suptitle
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path
