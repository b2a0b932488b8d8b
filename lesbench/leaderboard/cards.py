"""Method cards (``leaderboards/methods/*.yaml``): read and checked against their BibTeX, and
where the packaged leaderboard data lives."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import lesbench.leaderboards as packaged
from lesbench.baselines.base import CARD_KINDS, MethodCard
from lesbench.bibtex import BibTeXError, parse_entry, strip_braces
from lesbench.errors import LesbenchError


class LeaderboardError(LesbenchError):
    """A leaderboard data file is missing, malformed or inconsistent (names file and problem)."""


def data_dir() -> Path:
    """The packaged ``leaderboards/`` folder."""
    return Path(packaged.__file__).resolve().parent


def cards_dir() -> Path:
    return data_dir() / "methods"


def reported_dir() -> Path:
    return data_dir() / "reported"


def results_dir() -> Path:
    return data_dir() / "results"


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LeaderboardError(f"{path}: not valid YAML ({exc})") from None



_CARD_REQUIRED = ("name", "kind", "title", "authors", "year", "venue", "cite_key", "bibtex", "verified")


def load_card(path: str | Path) -> MethodCard:
    """Read and validate one method card (the file stem is its key)."""
    path = Path(path)
    data = read_yaml(path)
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
        arxiv=opt_str(data.get("arxiv")),
        doi=opt_str(data.get("doi")),
        url=opt_str(data.get("url")),
        code_url=opt_str(data.get("code_url")),
        license=opt_str(data.get("license")),
        trained_on=tuple(str(t) for t in (data.get("trained_on") or [])),
        cite_key=str(data["cite_key"]),
        bibtex=str(data["bibtex"]),
        verified=bool(data["verified"]),
        verification=" ".join(str(data.get("verification") or "").split()),
        lesbench_method=opt_str(data.get("lesbench_method")),
        measured_name=opt_str(data.get("measured_name")),
    )


def opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def card_keys(directory: str | Path | None = None) -> set[str]:
    """Keys of the method cards in ``directory`` (default: packaged), without reading them."""
    return {p.stem for p in (Path(directory) if directory else cards_dir()).glob("*.yaml")}


def load_cards(directory: str | Path | None = None) -> dict[str, MethodCard]:
    """All method cards of ``directory`` (default: packaged), by key. Cards sharing a
    ``cite_key`` must carry the identical BibTeX entry."""
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


