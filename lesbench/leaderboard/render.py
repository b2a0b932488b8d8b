"""Rendering a leaderboard: Markdown, LaTeX (booktabs) with its .bib, CSV and a PNG chart; the
README section between the markers. The same data always renders to the same bytes."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any

from lesbench.bibtex import format_bibtex, parse_entry
from lesbench.leaderboard.cards import LeaderboardError
from lesbench.leaderboard.tables import (Leaderboard, MeasuredTable, arrow, best_methods, bounded_by_reference,
                                         build_leaderboard, display, fmt, measured_source, metric_sort_key,
                                         past_reference)
from lesbench.sanitize import csv_cell, latex_text, md_code, md_text, plot_text

FORMATS: tuple[str, ...] = ("md", "latex", "csv", "bib", "png")
README_START = "<!-- leaderboard:start -->"
README_END = "<!-- leaderboard:end -->"
#: Cell markers: a value past ground truth on a scale ground truth bounds; a number from an
#: emotion classifier that reads the features the method was trained on.
PAST_REFERENCE_MARK = "†"
CAVEAT_MARK = "‡"


def table_notes(t: MeasuredTable) -> list[str]:
    """The notes under a measured table (plain text; each renderer escapes it): how the columns
    that ground truth bounds are ranked, and which rows carry a classifier caveat."""
    notes = []
    bounded = [display(m).label for m in t.metrics if bounded_by_reference(t, m)]
    if bounded:
        notes.append(f"{', '.join(bounded)}: ground truth bounds the meaningful scale (a generated mouth can be "
                     "more predictable from its voice than a real one, which is not better), so bold marks the value "
                     f"closest to ground truth's and {PAST_REFERENCE_MARK} a value past it.")
    caveats = sorted({note for r in t.rows for note in r.caveats.values()})
    if caveats:
        notes.append(f"{CAVEAT_MARK} " + "; ".join(caveats) + ".")
    return notes


def _marks(t: MeasuredTable, past: dict[str, set[str]], method: str, caveats: dict[str, str], metric: str) -> str:
    return (PAST_REFERENCE_MARK if method in past.get(metric, set()) else "") + (CAVEAT_MARK if metric in caveats
                                                                                 else "")


def render_markdown(lb: Leaderboard, heading_level: int = 3) -> str:
    h = "#" * heading_level
    out: list[str] = []
    if not lb.measured:
        out.append(f"{h} Measured results\n\nNo measured results yet: run `lesbench evaluate`.\n")
    for t in lb.measured:
        best = best_methods(t)
        out.append(f"{h} Measured: {md_code(t.benchmark)} on {md_code(t.dataset)}\n")
        out.append(
            f"Protocol {md_code(t.benchmark)}, data set {md_code(t.dataset)}; every number measured by lesbench "
            "(95% confidence intervals in the CSV). Bold: best non-reference value. "
            "Ground truth is the reference row.\n"
        )
        header = ["Method", "Cite", *(md_text(display(m).label) + arrow(m, t) for m in t.metrics), "Source"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---", "---", *(["---:"] * len(t.metrics)), "---"]) + "|")
        past = past_reference(t)
        for r in t.rows:
            card = lb.cards[r.card]
            cells = [md_text(card.measured_name or card.name), md_code(card.cite_key)]
            for m in t.metrics:
                if m not in r.scores:
                    cells.append("–")
                    continue
                disp = display(m)
                text = fmt(r.scores[m].value, disp.decimals)
                cells.append((f"**{text}**" if r.method in best.get(m, set()) else text)
                             + _marks(t, past, r.method, r.caveats, m))
            cells.append(md_text(measured_source(r)))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        notes = table_notes(t)
        if notes:
            for n in notes:
                out += [md_text(n), ""]
    if lb.reported:
        out.append(f"{h} Reported by papers (not measured by lesbench, not comparable across protocols)\n")
        metrics = sorted({m for r in lb.reported for m in r.values}, key=metric_sort_key)
        header = ["Method", "Reported by", "Data set", "Protocol",
                  *(md_text(display(m).label) + arrow(m) for m in metrics), "Verified", "Source"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] * 4 + ["---:"] * len(metrics) + ["---", "---"]) + "|")
        for r in lb.reported:
            by = lb.cards[r.reported_by].name if r.reported_by else "unidentified"
            cells = [md_text(lb.cards[r.method].name), md_text(by), md_text(r.dataset), md_code(r.protocol)]
            for m in metrics:
                cells.append(fmt(r.values[m], display(m).decimals) if m in r.values else "–")
            cells.append("yes" if r.verified else "**no**")
            cells.append(md_text(r.source_label()))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        out.append("Protocols of the reported rows:\n")
        for p, note in sorted({(r.protocol, r.protocol_note) for r in lb.reported}):
            out.append(f"- {md_code(p)}: {md_text(note)}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------------- latex

def _cite_keys_latex(lb: Leaderboard) -> list[str]:
    keys: set[str] = set()
    for t in lb.measured:
        keys.update(lb.cards[r.card].cite_key for r in t.rows)
        if t.dataset.lower().startswith("mead") and "mead" in lb.cards:
            keys.add(lb.cards["mead"].cite_key)
    for r in lb.reported:
        keys.add(lb.cards[r.method].cite_key)
        if r.reported_by:
            keys.add(lb.cards[r.reported_by].cite_key)
        if r.dataset.lower().startswith("mead") and "mead" in lb.cards:
            keys.add(lb.cards["mead"].cite_key)
    return sorted(keys)


def render_latex(lb: Leaderboard) -> str:
    """booktabs tables (one per benchmark, one for reported numbers) to ``\\input`` in a paper.

    Needs ``\\usepackage{booktabs}``; every ``\\cite`` key is in :func:`render_bib`'s output.
    """
    out: list[str] = [
        "% Generated by `lesbench leaderboard --format latex`; do not edit by hand.",
        "% Requires \\usepackage{booktabs}. Citations: the matching .bib from `--format bib`.",
        "",
    ]
    for t in lb.measured:
        best = best_methods(t)
        ds_cite = ""
        if t.dataset.lower().startswith("mead") and "mead" in lb.cards:
            ds_cite = f" \\cite{{{lb.cards['mead'].cite_key}}}"
        label = re.sub(r"[^A-Za-z0-9]+", "-", f"{t.benchmark}-{t.dataset}").strip("-").lower()
        out += [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{Measured by lesbench under protocol \texttt{{{latex_text(t.benchmark)}}} on "
            rf"\texttt{{{latex_text(t.dataset)}}}{ds_cite}. Bold: best non-reference value; "
            r"$\uparrow$/$\downarrow$: higher/lower is better.}",
            rf"\label{{tab:lesbench-{label}}}",
            r"\begin{tabular}{l" + "r" * len(t.metrics) + "}",
            r"\toprule",
            "Method & " + " & ".join(latex_text(display(m).label) + arrow(m, t, unicode=False)
                                     for m in t.metrics) + r" \\",
            r"\midrule",
        ]
        past = past_reference(t)
        for r in t.rows:
            card = lb.cards[r.card]
            cells = [f"{latex_text(card.measured_name or card.name)}~\\cite{{{card.cite_key}}}"]
            for m in t.metrics:
                if m not in r.scores:
                    cells.append("--")
                    continue
                text = fmt(r.scores[m].value, display(m).decimals)
                marks = _marks(t, past, r.method, r.caveats, m)
                marks = marks.replace(PAST_REFERENCE_MARK, r"$^\dagger$").replace(CAVEAT_MARK, r"$^\ddagger$")
                cells.append((f"\\textbf{{{text}}}" if r.method in best.get(m, set()) else text) + marks)
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        notes = table_notes(t)
        if notes:
            text = " ".join(latex_text(n) for n in notes)
            text = text.replace(PAST_REFERENCE_MARK, r"$^\dagger$").replace(CAVEAT_MARK, r"$^\ddagger$")
            out += [r"\par\smallskip\footnotesize " + text]
        out += [r"\end{table}", ""]
    if lb.reported:
        metrics = sorted({m for r in lb.reported for m in r.values}, key=metric_sort_key)
        out += [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            r"\caption{Numbers reported by papers, not measured by lesbench. Each row is under its own "
            r"protocol and the rows are not comparable with each other or with lesbench's measured "
            r"results. Unverified rows are marked with $^\dagger$.}",
            r"\label{tab:lesbench-reported}",
            r"\begin{tabular}{llll" + "r" * len(metrics) + "}",
            r"\toprule",
            "Method & Reported by & Data set & Protocol & " + " & ".join(
                latex_text(display(m).label) + arrow(m, unicode=False) for m in metrics) + r" \\",
            r"\midrule",
        ]
        for r in lb.reported:
            card = lb.cards[r.method]
            if r.reported_by:
                by = lb.cards[r.reported_by]
                by_text = f"{latex_text(by.name)}~\\cite{{{by.cite_key}}}"
            else:
                by_text = "unidentified"
            mark = "" if r.verified else r"$^\dagger$"
            ds_text = latex_text(r.dataset)
            if r.dataset.lower().startswith("mead") and "mead" in lb.cards:
                ds_text += f"~\\cite{{{lb.cards['mead'].cite_key}}}"
            cells = [f"{latex_text(card.name)}~\\cite{{{card.cite_key}}}{mark}", by_text, ds_text,
                     f"\\texttt{{{latex_text(r.protocol)}}}"]
            for m in metrics:
                cells.append(fmt(r.values[m], display(m).decimals) if m in r.values else "--")
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def render_bib(lb: Leaderboard) -> str:
    """The BibTeX entries of every key cited by :func:`render_latex`, sorted by key."""
    by_key = {c.cite_key: c for c in lb.cards.values()}
    entries = [parse_entry(by_key[k].bibtex, source=f"card {by_key[k].key}") for k in _cite_keys_latex(lb)]
    return format_bibtex(entries)


# ----------------------------------------------------------------------------------- csv

CSV_COLUMNS: tuple[str, ...] = (
    "kind", "benchmark", "protocol", "dataset", "method", "method_name", "cite_key", "metric",
    "value", "ci95_low", "ci95_high", "higher_is_better", "metric_version", "source", "verified",
    "reported_by", "lesbench_version", "git_revision",
)


class _InertCsvWriter:
    """A :func:`csv.writer` whose every cell goes through :func:`csv_cell` (no formulas)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Any) -> None:
        self._writer.writerow([csv_cell(c) for c in row])


def render_csv(lb: Leaderboard) -> str:
    """Long format: one row per number, each naming its protocol and source."""
    buf = io.StringIO()
    w = _InertCsvWriter(csv.writer(buf, lineterminator="\n"))
    w.writerow(CSV_COLUMNS)
    for t in lb.measured:
        for r in t.rows:
            card = lb.cards[r.card]
            for m in t.metrics:
                if m not in r.scores:
                    continue
                s = r.scores[m]
                w.writerow([
                    "measured", t.benchmark, t.benchmark, t.dataset, r.method, card.measured_name or card.name, card.cite_key, m,
                    repr(float(s.value)), "" if s.ci95 is None else repr(s.ci95[0]),
                    "" if s.ci95 is None else repr(s.ci95[1]),
                    "" if s.higher_is_better is None else str(bool(s.higher_is_better)).lower(),
                    s.version, measured_source(r), "true", "", r.lesbench_version, r.git_revision or "",
                ])
    for r in lb.reported:
        card = lb.cards[r.method]
        for m in sorted(r.values, key=metric_sort_key):
            hib = display(m).higher_is_better
            w.writerow([
                "reported", "", r.protocol, r.dataset, r.method, card.name, card.cite_key, m,
                repr(r.values[m]), "", "", "" if hib is None else str(hib).lower(), "",
                r.source_label(), str(r.verified).lower(), r.reported_by or "", "", "",
            ])
    return buf.getvalue()


# ----------------------------------------------------------------------------------- png

def render_png(lb: Leaderboard) -> bytes:
    """A bar chart per metric: measured tables if any, else the reported numbers.

    Fixed size, DPI and PNG metadata (no software version or time), so bytes are stable.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    panels: list[tuple[str, list[str], list[float], list[bool]]] = []
    if lb.measured:
        for t in lb.measured:
            best = best_methods(t)
            for m in t.metrics:
                names = [plot_text(lb.cards[r.card].name) for r in t.rows if m in r.scores]
                vals = [r.scores[m].value for r in t.rows if m in r.scores]
                bold = [r.method in best.get(m, set()) for r in t.rows if m in r.scores]
                panels.append((plot_text(f"{display(m).label}{arrow(m, t)}  [{t.benchmark} / {t.dataset}]"),
                               names, vals, bold))
        title = "lesbench measured results"
    else:
        metrics = sorted({m for r in lb.reported for m in r.values}, key=metric_sort_key)
        for m in metrics:
            rows = [r for r in lb.reported if m in r.values]
            names = [plot_text(f"{lb.cards[r.method].name} ({r.protocol}){'' if r.verified else ' †'}") for r in rows]
            panels.append((plot_text(f"{display(m).label}{arrow(m)} (reported)"), names, [r.values[m] for r in rows],
                           [False] * len(rows)))
        title = "Reported by papers (each under its own protocol; not comparable)"
    n = max(1, len(panels))
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 0.6 + 2.4 * nrows), dpi=100)
    fig.suptitle(title, fontsize=10)
    for i, (label, names, vals, bold) in enumerate(panels):
        ax = fig.add_subplot(nrows, cols, i + 1)
        y = list(range(len(names)))
        ax.barh(y, vals, color=["#1f77b4" if b else "#9ecae1" for b in bold])
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        for yy, v in zip(y, vals):
            ax.text(v, yy, f" {v:.3g}", va="center", fontsize=6)
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no data", ha="center", va="center")
        ax.set_axis_off()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close("all")
    return buf.getvalue()


# ----------------------------------------------------------------------------------- entry points

def render(lb: Leaderboard, fmt: str) -> str | bytes:
    if fmt == "md":
        return render_markdown(lb)
    if fmt == "latex":
        return render_latex(lb)
    if fmt == "bib":
        return render_bib(lb)
    if fmt == "csv":
        return render_csv(lb)
    if fmt == "png":
        return render_png(lb)
    raise LeaderboardError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def render_readme_table(results: str | Path | None = None) -> str:
    """The Markdown that goes between the README's leaderboard markers (packaged data)."""
    return render_markdown(build_leaderboard(results), heading_level=3)


def readme_section(readme_text: str) -> str | None:
    """The text between the markers (without them), or None when the markers are absent."""
    start = readme_text.find(README_START)
    end = readme_text.find(README_END)
    if start < 0 or end < 0 or end < start:
        return None
    return readme_text[start + len(README_START): end].strip("\n") + "\n"


def update_readme(path: str | Path, results: str | Path | None = None) -> bool:
    """Rewrite the README section between the markers from the data; True when it changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if readme_section(text) is None:
        raise LeaderboardError(f"{path}: markers {README_START} / {README_END} not found")
    start = text.find(README_START) + len(README_START)
    end = text.find(README_END)
    new = text[:start] + "\n" + render_readme_table(results) + text[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False
