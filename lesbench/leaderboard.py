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
version goes into the output.

Measured numbers are ranked only within one benchmark (protocol + data set). Paper-reported
numbers go into a separate table labelled with their source protocol and are never bolded
or ranked.

    lb = build_leaderboard()                       # packaged data
    print(render(lb, "md"))
    tex, bib = render(lb, "latex"), render(lb, "bib")
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lesbench.errors import LesbenchError
from lesbench.sanitize import csv_cell, latex_text, md_code, md_text, plot_text

#: Version of the measured-results file format written by ``lesbench evaluate``.
RESULTS_FORMAT_VERSION = "1"
FORMATS: tuple[str, ...] = ("md", "latex", "csv", "bib", "png")
README_START = "<!-- leaderboard:start -->"
README_END = "<!-- leaderboard:end -->"

#: Keys every measured-results file must have.
RESULT_REQUIRED: tuple[str, ...] = (
    "format_version", "method", "card", "benchmark", "protocol", "dataset", "scores",
    "generation", "environment",
)


class LeaderboardError(LesbenchError):
    """A leaderboard data file is missing, malformed or inconsistent (names file and problem)."""


@dataclass(frozen=True)
class MetricDisplay:
    label: str
    higher_is_better: bool | None
    decimals: int


#: How known metrics are shown; unknown ones fall back to their name, 3 decimals, and the
#: direction recorded in the results file.
METRIC_DISPLAY: dict[str, MetricDisplay] = {
    "psnr": MetricDisplay("PSNR", True, 2),
    "ssim": MetricDisplay("SSIM", True, 3),
    "lpips": MetricDisplay("LPIPS", False, 3),
    "fid": MetricDisplay("FID", False, 2),
    "csim": MetricDisplay("CSIM", True, 3),
    "m-lmd": MetricDisplay("M-LMD", False, 2),
    "f-lmd": MetricDisplay("F-LMD", False, 2),
    "lse-c": MetricDisplay("LSE-C", True, 2),
    "lse-d": MetricDisplay("LSE-D", False, 2),
    "lse-offset": MetricDisplay("LSE offset", None, 2),
    "av-sync": MetricDisplay("AV conf", True, 3),
    "av-abs-offset": MetricDisplay("|AV offset|", False, 2),
    "av-offset": MetricDisplay("AV offset", None, 2),
    "au-acc": MetricDisplay("AU acc", True, 3),
    "au-f1": MetricDisplay("AU F1", True, 3),
    "au-mae": MetricDisplay("AU MAE", False, 3),
    "au-pearson": MetricDisplay("AU r", True, 3),
    "emotion-acc": MetricDisplay("Emo acc", True, 3),
    "emotion-acc-frame": MetricDisplay("Emo acc (frame)", True, 3),
    "level-spearman": MetricDisplay("Level ρ", True, 3),
    "level-linearity": MetricDisplay("Level R²", True, 3),
    "level-monotonicity": MetricDisplay("Level mono", True, 3),
    "unit-isolation": MetricDisplay("Unit iso", True, 3),
    "kid": MetricDisplay("KID", False, 4),
}
METRIC_ORDER: tuple[str, ...] = tuple(METRIC_DISPLAY)

#: Row order of lesbench's own methods in measured tables (others follow alphabetically).
METHOD_ORDER: tuple[str, ...] = (
    "ground-truth", "renderer-oracle", "static", "retrieval", "audio-only", "one-hot", "les-talker",
)
#: Rows that are references, not competitors: never bolded as "best".
REFERENCE_METHODS: frozenset[str] = frozenset({"ground-truth"})


# ----------------------------------------------------------------------------------- locations

def data_dir() -> Path:
    """The packaged ``leaderboards/`` folder."""
    import lesbench.leaderboards as pkg

    return Path(pkg.__file__).resolve().parent


def cards_dir() -> Path:
    return data_dir() / "methods"


def reported_dir() -> Path:
    return data_dir() / "reported"


def results_dir() -> Path:
    return data_dir() / "results"


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LeaderboardError(f"{path}: not valid YAML ({exc})") from None


# ----------------------------------------------------------------------------------- cards

_CARD_REQUIRED = ("name", "kind", "title", "authors", "year", "venue", "cite_key", "bibtex", "verified")


def load_card(path: str | Path) -> "MethodCard":
    """Read and validate one method card (the file stem is its key)."""
    from lesbench.baselines.base import CARD_KINDS, MethodCard
    from lesbench.bibtex import BibTeXError, parse_entry, strip_braces

    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise LeaderboardError(f"{path}: a method card must be a mapping")
    missing = [k for k in _CARD_REQUIRED if k not in data]
    if missing:
        raise LeaderboardError(f"{path}: missing fields {missing}")
    if data["kind"] not in CARD_KINDS:
        raise LeaderboardError(f"{path}: kind {data['kind']!r} is not one of {list(CARD_KINDS)}")
    if not isinstance(data["verified"], bool):
        raise LeaderboardError(f"{path}: verified must be true or false")
    if not data["verified"] and not str(data.get("verification") or "").strip():
        raise LeaderboardError(f"{path}: an unverified card must say what could not be checked (verification)")
    try:
        entry = parse_entry(str(data["bibtex"]), source=f"{path} (bibtex)")
    except BibTeXError as exc:
        raise LeaderboardError(str(exc)) from None
    if entry.key != data["cite_key"]:
        raise LeaderboardError(f"{path}: cite_key {data['cite_key']!r} differs from the BibTeX key {entry.key!r}")
    try:
        year = int(data["year"])
    except (TypeError, ValueError):
        raise LeaderboardError(f"{path}: year must be an integer") from None
    if entry.get("year") != str(year):
        raise LeaderboardError(f"{path}: year {year} differs from the BibTeX year {entry.get('year')!r}")
    if data["kind"] != "baseline":
        bib_title = strip_braces(entry.get("title") or "").casefold()
        if bib_title != " ".join(str(data["title"]).split()).casefold():
            raise LeaderboardError(f"{path}: title differs from the BibTeX title")
        bib_surnames = [a.split(",")[0].strip().strip("{}") for a in entry.authors()]
        card_surnames = [str(a).split()[-1] for a in data["authors"]]
        if bib_surnames != card_surnames:
            raise LeaderboardError(
                f"{path}: authors {card_surnames} differ from the BibTeX authors {bib_surnames}"
            )
    for key in ("arxiv",):
        if data.get(key) is not None and not re.fullmatch(r"\d{4}\.\d{4,5}", str(data[key])):
            raise LeaderboardError(f"{path}: arxiv {data[key]!r} is not an arXiv identifier like 2411.09268")
    return MethodCard(
        key=path.stem,
        name=str(data["name"]),
        kind=str(data["kind"]),
        title=" ".join(str(data["title"]).split()),
        authors=tuple(str(a) for a in data["authors"]),
        year=year,
        venue=str(data["venue"]),
        arxiv=_opt_str(data.get("arxiv")),
        doi=_opt_str(data.get("doi")),
        url=_opt_str(data.get("url")),
        code_url=_opt_str(data.get("code_url")),
        license=_opt_str(data.get("license")),
        trained_on=tuple(str(t) for t in (data.get("trained_on") or [])),
        cite_key=str(data["cite_key"]),
        bibtex=str(data["bibtex"]),
        verified=bool(data["verified"]),
        verification=" ".join(str(data.get("verification") or "").split()),
        lesbench_method=_opt_str(data.get("lesbench_method")),
        measured_name=_opt_str(data.get("measured_name")),
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def load_cards(directory: str | Path | None = None) -> dict[str, "MethodCard"]:
    """All method cards of ``directory`` (default: packaged), by key. Cards sharing a
    ``cite_key`` must carry the identical BibTeX entry."""
    from lesbench.bibtex import parse_entry

    directory = Path(directory) if directory else cards_dir()
    cards = {p.stem: load_card(p) for p in sorted(directory.glob("*.yaml"))}
    by_key: dict[str, tuple[str, Any]] = {}
    for card in cards.values():
        entry = parse_entry(card.bibtex)
        if card.cite_key in by_key and by_key[card.cite_key][1] != entry:
            raise LeaderboardError(
                f"{directory}: cards {by_key[card.cite_key][0]!r} and {card.key!r} share cite key "
                f"{card.cite_key!r} with different BibTeX entries"
            )
        by_key[card.cite_key] = (card.key, entry)
    return cards


# ----------------------------------------------------------------------------------- reported

@dataclass(frozen=True)
class ReportedRow:
    """Numbers a paper (or an author's evaluation output) published, with provenance."""

    method: str
    reported_by: str | None
    dataset: str
    protocol: str
    protocol_note: str
    source: dict[str, Any]
    verified: bool
    verification: str
    values: dict[str, float]
    path: str = ""

    def source_label(self) -> str:
        kind = str(self.source.get("kind") or "")
        where = self.source.get("url") or self.source.get("citation") or ""
        extra = []
        if self.source.get("table"):
            extra.append(f"table {self.source['table']}")
        if self.source.get("page"):
            extra.append(f"p. {self.source['page']}")
        label = ", ".join(x for x in [kind, *extra] if x)
        return f"{label} ({where})" if where else label


def load_reported(directory: str | Path | None = None, cards: dict | None = None) -> list[ReportedRow]:
    """All paper-reported numbers; each must name method, protocol and source."""
    directory = Path(directory) if directory else reported_dir()
    cards = cards if cards is not None else load_cards()
    rows: list[ReportedRow] = []
    for path in sorted(directory.glob("*.yaml")):
        data = _read_yaml(path)
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise LeaderboardError(f"{path}: expected a mapping with a list 'entries'")
        for i, e in enumerate(entries):
            where = f"{path}: entry {i + 1}"
            for k in ("method", "dataset", "protocol", "protocol_note", "source", "verified", "values"):
                if k not in e or e[k] in (None, ""):
                    raise LeaderboardError(f"{where}: missing {k!r}")
            if e["method"] not in cards:
                raise LeaderboardError(f"{where}: method {e['method']!r} has no method card")
            if e.get("reported_by") is not None and e["reported_by"] not in cards:
                raise LeaderboardError(f"{where}: reported_by {e['reported_by']!r} has no method card")
            if not isinstance(e["source"], dict) or not e["source"].get("kind"):
                raise LeaderboardError(f"{where}: source must be a mapping with at least 'kind'")
            if not isinstance(e["verified"], bool):
                raise LeaderboardError(f"{where}: verified must be true or false")
            if not e["verified"] and not str(e.get("verification") or "").strip():
                raise LeaderboardError(f"{where}: an unverified number must say why (verification)")
            values = {}
            for m, v in e["values"].items():
                try:
                    values[str(m)] = float(v)
                except (TypeError, ValueError):
                    raise LeaderboardError(f"{where}: value of {m!r} is not a number: {v!r}") from None
            rows.append(ReportedRow(
                method=str(e["method"]), reported_by=_opt_str(e.get("reported_by")),
                dataset=str(e["dataset"]), protocol=str(e["protocol"]),
                protocol_note=" ".join(str(e["protocol_note"]).split()), source=dict(e["source"]),
                verified=bool(e["verified"]), verification=" ".join(str(e.get("verification") or "").split()),
                values=values, path=str(path),
            ))
    return rows


# ----------------------------------------------------------------------------------- measured

@dataclass(frozen=True)
class MetricScore:
    value: float
    ci95: tuple[float, float] | None
    version: str
    higher_is_better: bool | None
    n: int | None = None


@dataclass(frozen=True)
class ResultRow:
    """One measured results file."""

    method: str
    card: str
    benchmark: str
    dataset: str
    scores: dict[str, MetricScore]
    lesbench_version: str
    git_revision: str | None
    date: str
    hardware: str
    unavailable: dict[str, str] = field(default_factory=dict)
    path: str = ""


def validate_result(data: Any, path: str | Path = "<result>") -> None:
    """Raise :class:`LeaderboardError` unless ``data`` is a valid measured-results record."""
    if not isinstance(data, dict):
        raise LeaderboardError(f"{path}: a results file must hold a JSON object")
    missing = [k for k in RESULT_REQUIRED if k not in data]
    if missing:
        raise LeaderboardError(f"{path}: missing keys {missing}")
    if str(data["format_version"]).split(".")[0] != RESULTS_FORMAT_VERSION:
        raise LeaderboardError(
            f"{path}: results format {data['format_version']} is not readable by this lesbench "
            f"(reads {RESULTS_FORMAT_VERSION}); re-run `lesbench evaluate`"
        )
    proto = data["protocol"]
    if not isinstance(proto, dict) or not proto.get("name"):
        raise LeaderboardError(f"{path}: protocol must be a mapping with a name")
    if proto["name"] != data["benchmark"]:
        raise LeaderboardError(f"{path}: benchmark {data['benchmark']!r} differs from protocol {proto['name']!r}")
    if not isinstance(data["dataset"], dict) or not data["dataset"].get("name"):
        raise LeaderboardError(f"{path}: dataset must be a mapping with a name")
    env = data["environment"]
    for k in ("lesbench_version", "git_revision", "date", "hardware"):
        if not isinstance(env, dict) or k not in env:
            raise LeaderboardError(f"{path}: environment.{k} missing")
    gen = data["generation"]
    for k in ("seed", "checkpoint_sha256", "revision"):
        if not isinstance(gen, dict) or k not in gen:
            raise LeaderboardError(f"{path}: generation.{k} missing")
    scores = data["scores"]
    if not isinstance(scores, dict):
        raise LeaderboardError(f"{path}: scores must be a mapping metric -> record")
    for name, rec in scores.items():
        if not isinstance(rec, dict) or "value" not in rec or "version" not in rec:
            raise LeaderboardError(f"{path}: score {name!r} needs value and version")
        if not isinstance(rec["value"], (int, float)) or not math.isfinite(float(rec["value"])):
            raise LeaderboardError(f"{path}: score {name!r} has a non-numeric value {rec['value']!r}")
        ci = rec.get("ci95")
        if ci is not None and (len(ci) != 2 or not all(isinstance(c, (int, float)) for c in ci)):
            raise LeaderboardError(f"{path}: score {name!r} has a malformed ci95 {ci!r}")


def load_results(directory: str | Path | None = None) -> list[ResultRow]:
    """Every ``*.json`` results file under ``directory`` (default: packaged results)."""
    packaged = directory is None
    directory = Path(directory) if directory else results_dir()
    rows: list[ResultRow] = []
    if not directory.exists():
        if packaged:  # a checkout without measured results yet
            return rows
        raise LeaderboardError(f"{directory}: results folder does not exist")
    for path in sorted(directory.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise LeaderboardError(f"{path}: not valid JSON ({exc})") from None
        validate_result(data, path)
        hw = data["environment"]["hardware"]
        hw_label = hw.get("summary", "") if isinstance(hw, dict) else str(hw)
        scores = {}
        for name, rec in data["scores"].items():
            ci = rec.get("ci95")
            scores[str(name)] = MetricScore(
                value=float(rec["value"]),
                ci95=(float(ci[0]), float(ci[1])) if ci is not None else None,
                version=str(rec["version"]),
                higher_is_better=rec.get("higher_is_better"),
                n=rec.get("n"),
            )
        rows.append(ResultRow(
            method=str(data["method"]), card=str(data["card"]), benchmark=str(data["benchmark"]),
            dataset=str(data["dataset"]["name"]), scores=scores,
            lesbench_version=str(data["environment"]["lesbench_version"]),
            git_revision=data["environment"].get("git_revision"),
            date=str(data["environment"]["date"]), hardware=hw_label,
            unavailable={str(k): str(v) for k, v in (data.get("unavailable") or {}).items()},
            path=str(path),
        ))
    return rows


# ----------------------------------------------------------------------------------- model

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


def _metric_sort_key(metric: str) -> tuple[int, str]:
    return (METRIC_ORDER.index(metric), "") if metric in METRIC_ORDER else (len(METRIC_ORDER), metric)


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
        metrics = sorted({m for r in members for m in r.scores}, key=_metric_sort_key)
        tables.append(MeasuredTable(bench, ds, members, metrics))
    rep = load_reported(reported, card_map) if include_reported else []
    rep = sorted(rep, key=lambda r: (r.method, r.dataset, r.protocol, r.reported_by or "~"))
    return Leaderboard(card_map, tables, rep)


def _display(metric: str, hib: bool | None = None) -> MetricDisplay:
    if metric in METRIC_DISPLAY:
        return METRIC_DISPLAY[metric]
    return MetricDisplay(metric, hib, 3)


def _fmt(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0." + "0" * decimals if text.startswith("-") and float(text) == 0 else text


def _best(table: MeasuredTable) -> dict[str, set[str]]:
    """Per metric, the methods whose displayed value is best (reference rows excluded)."""
    out: dict[str, set[str]] = {}
    for metric in table.metrics:
        hib = next((r.scores[metric].higher_is_better for r in table.rows if metric in r.scores), None)
        disp = _display(metric, hib)
        direction = disp.higher_is_better if metric in METRIC_DISPLAY else hib
        if direction is None:
            continue
        cands = {
            r.method: float(_fmt(r.scores[metric].value, disp.decimals))
            for r in table.rows if metric in r.scores and r.method not in REFERENCE_METHODS
        }
        if len(cands) < 2:
            continue
        target = max(cands.values()) if direction else min(cands.values())
        out[metric] = {m for m, v in cands.items() if v == target}
    return out


def _arrow(metric: str, table: MeasuredTable | None = None, unicode: bool = True) -> str:
    hib = None
    if table is not None:
        hib = next((r.scores[metric].higher_is_better for r in table.rows if metric in r.scores), None)
    disp = _display(metric, hib)
    direction = disp.higher_is_better if metric in METRIC_DISPLAY else hib
    if direction is None:
        return ""
    if unicode:
        return " ↑" if direction else " ↓"
    return r" $\uparrow$" if direction else r" $\downarrow$"


def _measured_source(r: ResultRow) -> str:
    rev = (r.git_revision or "no-git")[:10]
    return f"measured, lesbench {r.lesbench_version} @ {rev}"


# ----------------------------------------------------------------------------------- markdown

def render_markdown(lb: Leaderboard, heading_level: int = 3) -> str:
    h = "#" * heading_level
    out: list[str] = []
    if not lb.measured:
        out.append(f"{h} Measured results\n\nNo measured results yet: run `lesbench evaluate`.\n")
    for t in lb.measured:
        best = _best(t)
        out.append(f"{h} Measured: {md_code(t.benchmark)} on {md_code(t.dataset)}\n")
        out.append(
            f"Protocol {md_code(t.benchmark)}, data set {md_code(t.dataset)}; every number measured by lesbench "
            "(95% confidence intervals in the CSV). Bold: best non-reference value. "
            "Ground truth is the reference row.\n"
        )
        header = ["Method", "Cite", *(md_text(_display(m).label) + _arrow(m, t) for m in t.metrics), "Source"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---", "---", *(["---:"] * len(t.metrics)), "---"]) + "|")
        for r in t.rows:
            card = lb.cards[r.card]
            cells = [md_text(card.measured_name or card.name), md_code(card.cite_key)]
            for m in t.metrics:
                if m not in r.scores:
                    cells.append("–")
                    continue
                disp = _display(m)
                text = _fmt(r.scores[m].value, disp.decimals)
                cells.append(f"**{text}**" if r.method in best.get(m, set()) else text)
            cells.append(md_text(_measured_source(r)))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if lb.reported:
        out.append(f"{h} Reported by papers (not measured by lesbench, not comparable across protocols)\n")
        metrics = sorted({m for r in lb.reported for m in r.values}, key=_metric_sort_key)
        header = ["Method", "Reported by", "Data set", "Protocol",
                  *(md_text(_display(m).label) + _arrow(m) for m in metrics), "Verified", "Source"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] * 4 + ["---:"] * len(metrics) + ["---", "---"]) + "|")
        for r in lb.reported:
            by = lb.cards[r.reported_by].name if r.reported_by else "unidentified"
            cells = [md_text(lb.cards[r.method].name), md_text(by), md_text(r.dataset), md_code(r.protocol)]
            for m in metrics:
                cells.append(_fmt(r.values[m], _display(m).decimals) if m in r.values else "–")
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
        best = _best(t)
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
            "Method & " + " & ".join(latex_text(_display(m).label) + _arrow(m, t, unicode=False)
                                     for m in t.metrics) + r" \\",
            r"\midrule",
        ]
        for r in t.rows:
            card = lb.cards[r.card]
            cells = [f"{latex_text(card.measured_name or card.name)}~\\cite{{{card.cite_key}}}"]
            for m in t.metrics:
                if m not in r.scores:
                    cells.append("--")
                    continue
                text = _fmt(r.scores[m].value, _display(m).decimals)
                cells.append(f"\\textbf{{{text}}}" if r.method in best.get(m, set()) else text)
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    if lb.reported:
        metrics = sorted({m for r in lb.reported for m in r.values}, key=_metric_sort_key)
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
                latex_text(_display(m).label) + _arrow(m, unicode=False) for m in metrics) + r" \\",
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
                cells.append(_fmt(r.values[m], _display(m).decimals) if m in r.values else "--")
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def render_bib(lb: Leaderboard) -> str:
    """The BibTeX entries of every key cited by :func:`render_latex`, sorted by key."""
    from lesbench.bibtex import format_bibtex, parse_entry

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
                    s.version, _measured_source(r), "true", "", r.lesbench_version, r.git_revision or "",
                ])
    for r in lb.reported:
        card = lb.cards[r.method]
        for m in sorted(r.values, key=_metric_sort_key):
            hib = _display(m).higher_is_better
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
            best = _best(t)
            for m in t.metrics:
                names = [plot_text(lb.cards[r.card].name) for r in t.rows if m in r.scores]
                vals = [r.scores[m].value for r in t.rows if m in r.scores]
                bold = [r.method in best.get(m, set()) for r in t.rows if m in r.scores]
                panels.append((plot_text(f"{_display(m).label}{_arrow(m, t)}  [{t.benchmark} / {t.dataset}]"),
                               names, vals, bold))
        title = "lesbench measured results"
    else:
        metrics = sorted({m for r in lb.reported for m in r.values}, key=_metric_sort_key)
        for m in metrics:
            rows = [r for r in lb.reported if m in r.values]
            names = [plot_text(f"{lb.cards[r.method].name} ({r.protocol}){'' if r.verified else ' †'}") for r in rows]
            panels.append((plot_text(f"{_display(m).label}{_arrow(m)} (reported)"), names, [r.values[m] for r in rows],
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
