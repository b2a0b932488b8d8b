"""Metric robustness: how much each score moves when the same predictions are perturbed in ways
that preserve their content (version ``robust/1``).

Re-encoding a video shifts SyncNet scores by 0.4-1.2 (THEval), crops and frame sampling change
FID; a table that reports one number per metric hides how much of a difference between methods
is the instrument's. The audit re-scores one set of predictions under a fixed, versioned set of
perturbations (data: ``metrics/perturbations/robustness-v1.yaml``,
:func:`~lesbench.metrics.robustness_perturb.load_perturbations`)
with the public :func:`lesbench.metrics.score.score` (a black box: its ``metrics`` results
only) and reports, per metric output:

- ``values``: the score of the original predictions (``original``) and of each perturbation;
- ``delta[p]`` = score(p) - score(original), with a bootstrap 95% CI over clips of the mean
  per-clip difference (clips resampled with replacement, the same draw for every variant);
- ``spread`` = max - min over the original and every perturbation, with a bootstrap CI: per
  draw, the clip-mean of every variant, then max - min. Dataset-level metrics (FID) have no
  per-clip values: their deltas and spread get no CI (``ci_reason`` says so).

The point values are the scorer's own (e.g. a frame-pooled PSNR under ``aggregate: frames``);
the CIs resample clip values. A perturbation or metric that could not be computed is listed
with its reason (``skipped``, ``unavailable``), never dropped.

Perturbations and how they are applied: :mod:`~lesbench.metrics.robustness_perturb`; the table
and the report: :mod:`~lesbench.metrics.robustness_report`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

from lesbench.errors import LesbenchError
from lesbench.metrics.protocol import FrameSampling, load_protocol
from lesbench.metrics.discover import discover
from lesbench.metrics.score import score
from lesbench.metrics.robustness_perturb import (ORIGINAL, PerturbationSet, load_perturbations, missing_requirement,
                                                 perturb_clip)
from lesbench.metrics.robustness_report import RobustnessReport, robustness_table


def _variant_summary(report: Any) -> dict[str, Any]:
    """What the report keeps of one score run: values, CIs, counts, unavailable reasons."""
    out = {}
    for name, m in report.metrics.items():
        out[name] = {"value": m.value, "ci95": m.ci95, "unavailable": m.unavailable,
                     "counts": dict(getattr(m, "counts", {}) or {}), "skipped": dict(getattr(m, "skipped", {}) or {})}
    return out


def audit(pred: str | Path, ref: str | Path | None = None, *, out: str | Path,
          metrics: list[str] | None = None, protocol: str | Path = "mead-v1",
          perturbations: str | Path | PerturbationSet = "robustness-v1", only: list[str] | None = None,
          clips: list[str] | None = None, device: str | None = None, metric_options: dict | None = None,
          scorer: Callable[..., Any] | None = None, progress: Callable[[str], None] | None = None) -> RobustnessReport:
    """Score ``pred`` (against ``ref``) as it is and under every perturbation; write the report.

    ``out``: the output folder; perturbed copies go to ``out/perturbed/{name}/`` (re-used when
    present and complete, so an interrupted audit resumes), reference features to
    ``out/cache``. ``only``: run just these perturbation names. ``clips``: clip keys to keep
    (default: every clip of ``pred``). ``scorer``: :func:`lesbench.metrics.score.score` or a
    stand-in with its signature (tests). Returns the :class:`RobustnessReport` (also written:
    :meth:`RobustnessReport.write`).
    """
    if scorer is None:
        scorer = score
    say = progress or (lambda _m: None)
    t0 = time.time()
    out = Path(out)
    pset = perturbations if isinstance(perturbations, PerturbationSet) else load_perturbations(perturbations)
    chosen = list(pset.perturbations)
    if only:
        unknown = set(only) - {p.name for p in chosen}
        if unknown:
            raise LesbenchError(f"{pset.source}: no perturbation named {sorted(unknown)}; "
                                f"known: {', '.join(p.name for p in chosen)}")
        chosen = [p for p in chosen if p.name in only]
    proto = load_protocol(protocol)
    entries = discover(pred)
    if clips:
        missing = sorted(set(clips) - set(entries))
        if missing:
            raise LesbenchError(f"{pred}: clips not found: {', '.join(missing[:5])}")
        entries = {k: v for k, v in entries.items() if k in set(clips)}
    keys = sorted(entries)
    cache = out / "cache"

    def run(pred_in: Any, proto_in: Any, what: str) -> Any:
        say(f"scoring {what} ({len(keys)} clips)")
        return scorer(pred_in, ref=ref, metrics=metrics, protocol=proto_in, device=device,
                      metric_options=metric_options, cache_dir=cache, clips=keys)

    variants: dict[str, Any] = {ORIGINAL: run(pred, proto, ORIGINAL)}
    skipped: dict[str, str] = {}
    written: dict[str, dict[str, Any]] = {}
    for p in chosen:
        why = missing_requirement(p)
        if why:
            skipped[p.name] = why
            continue
        if p.kind == "sampling":
            if metrics is not None and p.metric not in metrics:
                skipped[p.name] = f"{p.metric} is not among the audited metrics"
                continue
            spec = FrameSampling(**{k: v for k, v in p.sampling.items()})
            variants[p.name] = run(pred, dataclasses.replace(proto, frames={**proto.frames, p.metric: spec}), p.name)
            continue
        folder = out / "perturbed" / p.name
        info: dict[str, Any] = {}
        for i, key in enumerate(keys):
            dst = folder / f"{key}.mp4"
            if not dst.is_file():  # written atomically: a present file is complete
                info[key] = perturb_clip(entries[key].video, dst, p, entries[key].audio)
            say(f"{p.name}: {i + 1}/{len(keys)} {key}")
        written[p.name] = {"folder": str(folder), "clips": info}
        variants[p.name] = run(folder, proto, p.name)
    results = {k: v.metrics for k, v in variants.items()}
    table = robustness_table(results, n_boot=int(proto.bootstrap_n), seed=int(proto.bootstrap_seed),
                             level=float(proto.bootstrap_level))
    report = RobustnessReport(
        perturbations=pset.summary(), pred=str(pred), ref=None if ref is None else str(ref), metrics=metrics,
        protocol=f"{proto.name}@{proto.version}", table=table,
        variants={k: {"scores": _variant_summary(v), **({"written": written[k]} if k in written else {})}
                  for k, v in variants.items()},
        skipped=skipped, seconds=time.time() - t0)
    report.write(out)
    return report
