"""Leaderboard tables: measured results grouped by benchmark (protocol + data set), rows and
columns in a fixed order, and how each column shows its numbers: label, arrow, decimals and
direction as each metric declares its outputs (:func:`lesbench.metrics.outputs.metric_outputs`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesbench.leaderboard.cards import LeaderboardError, cards_dir, load_cards
from lesbench.leaderboard.data import ReportedRow, ResultRow, load_reported, load_results
from lesbench.metrics.outputs import metric_outputs

#: Row order of lesbench's own methods in measured tables (others follow alphabetically).
METHOD_ORDER: tuple[str, ...] = (
    "ground-truth", "renderer-oracle", "static", "retrieval", "audio-only", "one-hot", "les-talker",
)
#: Rows that are references, not competitors: never bolded as "best".
REFERENCE_METHODS: frozenset[str] = frozenset({"ground-truth"})


@dataclass(frozen=True)
class MetricDisplay:
    """How a column shows its numbers."""

    label: str
    higher_is_better: bool | None
    decimals: int
    #: ground truth bounds the meaningful scale: ranked by distance to it (:func:`best_methods`)
    reference_bound: bool = False


def metric_order() -> tuple[str, ...]:
    """The labelled outputs of every metric, in column order; other names follow by name."""
    return tuple(name for name, mo in metric_outputs().items() if mo.output.label)


@dataclass
class MeasuredTable:
    benchmark: str
    dataset: str
    rows: list[ResultRow]
    metrics: list[str]


@dataclass
class Leaderboard:
    cards: dict[str, Any]
    measured: list[MeasuredTable]
    reported: list[ReportedRow]



def _method_sort_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def metric_sort_key(metric: str) -> tuple[int, str]:
    order = metric_order()
    return (order.index(metric), "") if metric in order else (len(order), metric)


def build_leaderboard(results: str | Path | None = None, benchmark: str | None = None,
                      cards: str | Path | None = None, reported: str | Path | None = None,
                      include_reported: bool = True) -> Leaderboard:
    """Collect cards, measured results (grouped by benchmark and data set) and reported numbers."""
    card_map = load_cards(cards)
    rows = load_results(results)
    for r in rows:
        if r.card not in card_map:
            raise LeaderboardError(f"{r.path}: card {r.card!r} has no method card in {cards or cards_dir()}")
    if benchmark:
        rows = [r for r in rows if r.benchmark == benchmark]
    groups: dict[tuple[str, str], list[ResultRow]] = {}
    for r in rows:
        groups.setdefault((r.benchmark, r.dataset), []).append(r)
    tables = []
    for (bench, ds), members in sorted(groups.items()):
        seen: dict[str, str] = {}
        for r in members:
            if r.method in seen:
                raise LeaderboardError(
                    f"{r.path}: a second result for method {r.method!r} on {bench}/{ds} (also {seen[r.method]})"
                )
            seen[r.method] = r.path
        members = sorted(members, key=lambda r: _method_sort_key(r.method))
        metrics = sorted({m for r in members for m in r.scores}, key=metric_sort_key)
        tables.append(MeasuredTable(bench, ds, members, metrics))
    rep = load_reported(reported, card_map) if include_reported else []
    rep = sorted(rep, key=lambda r: (r.method, r.dataset, r.protocol, r.reported_by or "~"))
    return Leaderboard(card_map, tables, rep)


def display(metric: str, hib: bool | None = None) -> MetricDisplay:
    """How column ``metric`` shows: as its metric declares it; an unknown name under its own
    name, 3 decimals and the direction ``hib`` recorded with the numbers."""
    declared = metric_outputs().get(metric)
    if declared is None:
        return MetricDisplay(metric, hib, 3)
    out = declared.output
    return MetricDisplay(out.label or out.name, out.higher_is_better, out.decimals, out.reference_bound)


def _direction(metric: str, table: MeasuredTable) -> bool | None:
    """Direction of column ``metric``: declared, else as its results files record it."""
    if metric in metric_outputs():
        return display(metric).higher_is_better
    return next((r.scores[metric].higher_is_better for r in table.rows if metric in r.scores), None)


def fmt(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0." + "0" * decimals if text.startswith("-") and float(text) == 0 else text


def reference_value(table: MeasuredTable, metric: str) -> float | None:
    """The displayed value of ``metric`` in the table's reference (ground-truth) row, or None."""
    for r in table.rows:
        if r.method in REFERENCE_METHODS and metric in r.scores:
            return float(fmt(r.scores[metric].value, display(metric).decimals))
    return None


def bounded_by_reference(table: MeasuredTable, metric: str) -> bool:
    """True when column ``metric`` is ranked by distance to ground truth: its output is declared
    ``reference_bound`` and the table has a ground-truth value for it."""
    return display(metric).reference_bound and reference_value(table, metric) is not None


def best_methods(table: MeasuredTable) -> dict[str, set[str]]:
    """Per metric, the methods whose displayed value is best (reference rows excluded).

    A column whose output is ``reference_bound`` (a sync confidence) in a table with a ground
    truth row is ranked by the distance of the displayed value to ground truth's: a value past
    ground truth (a more predictable mouth than the real one) is not better. Without a
    ground-truth row such a column is ranked by its direction."""
    out: dict[str, set[str]] = {}
    for metric in table.metrics:
        direction = _direction(metric, table)
        decimals = display(metric).decimals
        if direction is None:
            continue
        cands = {
            r.method: float(fmt(r.scores[metric].value, decimals))
            for r in table.rows if metric in r.scores and r.method not in REFERENCE_METHODS
        }
        if len(cands) < 2:
            continue
        ref = reference_value(table, metric) if display(metric).reference_bound else None
        if ref is not None:
            # distances compared after rounding to the shown decimals, so equal-looking gaps tie
            dist = {m: round(abs(v - ref), decimals) for m, v in cands.items()}
            target = min(dist.values())
            out[metric] = {m for m, d in dist.items() if d == target}
            continue
        target = max(cands.values()) if direction else min(cands.values())
        out[metric] = {m for m, v in cands.items() if v == target}
    return out


def past_reference(table: MeasuredTable) -> dict[str, set[str]]:
    """Per ``reference_bound`` column, the non-reference methods whose displayed value is past
    ground truth's (above it for higher-is-better, below for lower-is-better)."""
    out: dict[str, set[str]] = {}
    for metric in table.metrics:
        direction = _direction(metric, table)
        ref = reference_value(table, metric) if display(metric).reference_bound else None
        if ref is None or direction is None:
            continue
        decimals = display(metric).decimals
        past = {r.method for r in table.rows if metric in r.scores and r.method not in REFERENCE_METHODS
                and (float(fmt(r.scores[metric].value, decimals)) > ref if direction
                     else float(fmt(r.scores[metric].value, decimals)) < ref)}
        if past:
            out[metric] = past
    return out


def arrow(metric: str, table: MeasuredTable | None = None, unicode: bool = True) -> str:
    """`` ↑``/`` ↓`` (or LaTeX arrows) for the column's direction; "" when it has none."""
    direction = _direction(metric, table) if table is not None else display(metric).higher_is_better
    if direction is None:
        return ""
    if unicode:
        return " ↑" if direction else " ↓"
    return r" $\uparrow$" if direction else r" $\downarrow$"


def measured_source(r: ResultRow) -> str:
    rev = (r.git_revision or "no-git")[:10]
    return f"measured, lesbench {r.lesbench_version} @ {rev}"

