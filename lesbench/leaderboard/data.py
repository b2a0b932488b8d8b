"""The numbers a leaderboard shows: paper-reported rows (``leaderboards/reported/*.yaml``) and
measured results files (``lesbench evaluate``), read and validated."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lesbench.leaderboard.cards import LeaderboardError, load_cards, opt_str, read_yaml, reported_dir, results_dir
from lesbench.metrics.emotion_classifier_card import classifier_caveats

#: Version of the measured-results file format written by ``lesbench evaluate``.
RESULTS_FORMAT_VERSION = "1"

#: Keys every measured-results file must have.
RESULT_REQUIRED: tuple[str, ...] = (
    "format_version", "method", "card", "benchmark", "protocol", "dataset", "scores",
    "generation", "environment",
)



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
        data = read_yaml(path)
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
                method=str(e["method"]), reported_by=opt_str(e.get("reported_by")),
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
    #: score name -> why the number is not an independent measurement (an emotion classifier
    #: reading the features the method trained on; :func:`classifier_caveats`)
    caveats: dict[str, str] = field(default_factory=dict)


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
            # derived from the record, so results written before evaluate recorded it get it too
            caveats=classifier_caveats(data),
        ))
    return rows

