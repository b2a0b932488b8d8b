"""The outputs of every registered metric, in one table.

Each metric class declares its outputs once (:attr:`lesbench.metrics.base.Metric.outputs`:
public name, label, direction, decimals). This module gathers them; the score report, the
names ``lesbench evaluate`` writes into results files, the controllability sweep and the
leaderboard's columns (order, label, arrow, decimals) all read this table.

    table = metric_outputs()
    table["m-lmd"].output     # Output("m_lmd", "m-lmd", "M-LMD", "lower", 2, "px")
    output_name("lmd", "m_lmd")   # "m-lmd"
"""

from __future__ import annotations

from dataclasses import dataclass

from lesbench.metrics.base import Metric, Output
from lesbench.registry import METRICS

#: Order of the metrics' labelled columns in tables (each metric's outputs in the order it
#: declares them); registered metrics not named here follow by name.
COLUMN_ORDER: tuple[str, ...] = ("psnr", "ssim", "lpips", "fid", "csim", "lmd", "lse", "sync", "au", "emotion",
                                 "controllability", "kid")


@dataclass(frozen=True)
class MetricOutput:
    """One row of the table: the metric (registry name) and one of its declared outputs."""

    metric: str
    output: Output

    @property
    def name(self) -> str:
        return self.output.name


def _metric_class(name: str) -> type[Metric]:
    return METRICS.get(name)


def metric_outputs() -> dict[str, MetricOutput]:
    """Public output name -> :class:`MetricOutput` for every registered metric; labelled outputs
    first, in :data:`COLUMN_ORDER` and declaration order, then the unlabelled ones by name.

    Raises:
        ValueError: two metrics declare the same public name.
    """
    order = [m for m in COLUMN_ORDER if m in METRICS] + [m for m in METRICS.names() if m not in COLUMN_ORDER]
    labelled: list[MetricOutput] = []
    plain: list[MetricOutput] = []
    seen: dict[str, str] = {}
    for metric in order:
        for out in _metric_class(metric).outputs:
            if out.name in seen:
                raise ValueError(f"metric output {out.name!r} declared by both {seen[out.name]!r} and {metric!r}")
            seen[out.name] = metric
            (labelled if out.label else plain).append(MetricOutput(metric, out))
    return {mo.name: mo for mo in labelled + sorted(plain, key=lambda mo: mo.name)}


def declared_output(metric: str, key: str) -> Output | None:
    """The output ``key`` of ``compute()`` that registered metric ``metric`` declares ("" or the
    metric's name: its single value), or None (not declared, or not a registered metric)."""
    if metric not in METRICS:
        return None
    for out in _metric_class(metric).outputs:
        if out.key == key or (key in ("", metric) and out.key in ("", metric)):
            return out
    return None


def output_name(metric: str, key: str) -> str:
    """Public name of output ``key`` of ``metric`` (``lmd``/``m_lmd`` -> ``m-lmd``); an output
    that is not declared is named ``{metric}-{key}``."""
    out = declared_output(metric, key)
    if out is not None:
        return out.name
    return metric if key in ("", metric) else f"{metric}-{key}".replace("_", "-")


def output_direction(metric: str, key: str, default: bool | None) -> bool | None:
    """``higher_is_better`` of output ``key`` of ``metric``: the declared direction, else
    ``default`` (the metric's own)."""
    out = declared_output(metric, key)
    return default if out is None else out.higher_is_better
