"""Leaderboards built from data files, never typed by hand.

Data (``leaderboards/``, shipped as ``lesbench.leaderboards``):

- ``methods/*.yaml``: method cards (:class:`lesbench.baselines.base.MethodCard`) with BibTeX.
- ``reported/*.yaml``: numbers published by papers, each with who reported it, where, under
  which protocol, and whether lesbench could verify it.
- ``results/**/*.json``: results measured by ``lesbench evaluate`` (one file per method and
  benchmark; see :data:`RESULT_REQUIRED`).

Rendering: Markdown, LaTeX (booktabs, ``\\cite{key}`` per row, an arrow per metric column,
best value bold, protocol in the caption), the matching ``.bib``, CSV (one row per number, each
naming its protocol and source) and a PNG chart. The same data always renders to the same
bytes: rows and columns are sorted, numbers have fixed decimals, and no time stamp or software
version goes into the output. Columns (order, label, arrow, decimals) come from the outputs each
metric declares (:mod:`lesbench.metrics.outputs`).

Modules: :mod:`~lesbench.leaderboard.cards` (method cards), :mod:`~lesbench.leaderboard.data`
(reported numbers, results files), :mod:`~lesbench.leaderboard.tables` (grouping, order,
display), :mod:`~lesbench.leaderboard.render` (the formats).

Measured numbers are ranked only within one benchmark (protocol + data set). A column whose
output is declared ``reference_bound`` (sync confidences, LSE-C/D) is ranked by distance to the
ground-truth row and values past it are marked; emotion numbers from a classifier that reads the
features the method trained on are marked too (notes under each table). Paper-reported
numbers go into a separate table labelled with their source protocol and are never bolded
or ranked.

    lb = build_leaderboard()                       # packaged data
    print(render(lb, "md"))
    tex, bib = render(lb, "latex"), render(lb, "bib")
"""

from lesbench.leaderboard.cards import (LeaderboardError, card_keys, cards_dir, data_dir, load_card, load_cards,
                                        reported_dir, results_dir)
from lesbench.leaderboard.data import (RESULT_REQUIRED, RESULTS_FORMAT_VERSION, MetricScore, ReportedRow, ResultRow,
                                       load_reported, load_results, validate_result)
from lesbench.leaderboard.render import (CSV_COLUMNS, FORMATS, README_END, README_START, readme_section, render,
                                         render_bib, render_csv, render_latex, render_markdown, render_png,
                                         render_readme_table, update_readme)
from lesbench.leaderboard.tables import (METHOD_ORDER, REFERENCE_METHODS, Leaderboard, MeasuredTable, MetricDisplay,
                                         build_leaderboard, display, metric_order)

__all__ = [
    "CSV_COLUMNS", "FORMATS", "METHOD_ORDER", "README_END", "README_START", "REFERENCE_METHODS", "RESULT_REQUIRED",
    "RESULTS_FORMAT_VERSION", "Leaderboard", "LeaderboardError", "MeasuredTable", "MetricDisplay", "MetricScore",
    "ReportedRow", "ResultRow", "build_leaderboard", "card_keys", "cards_dir", "data_dir", "display", "load_card", "load_cards",
    "load_reported", "load_results", "metric_order", "readme_section", "render", "render_bib", "render_csv",
    "render_latex", "render_markdown", "render_png", "render_readme_table", "reported_dir", "results_dir",
    "update_readme", "validate_result",
]
