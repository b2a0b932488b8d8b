"""Results records: a score report turned into one record per public output name (the names,
directions and decimals each metric declares, :mod:`lesbench.metrics.outputs`), and the record
of the metric options a run used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.metrics.emotion import _FER_NAMES
from lesbench.metrics.emotion_classifier_card import card_summary, classifier_cards, classifier_caveats, read_card
from lesbench.metrics.outputs import output_direction, output_name
from lesbench.evaluation.provenance import sha256_file


def normalise_report(report: Any) -> dict[str, dict[str, Any]]:
    """Turn a ScoreReport (or a mapping/list of :class:`MetricResult`) into name -> record.

    Multi-output metrics become one record per output (:func:`output_name`); counts
    (``n_*``) and non-numeric outputs are left out.
    """
    results = getattr(report, "results", report)
    items = list(results.values()) if isinstance(results, dict) else list(results)
    out: dict[str, dict[str, Any]] = {}
    for r in items:
        name = str(getattr(r, "name"))
        value = getattr(r, "value", None)
        unavailable = getattr(r, "unavailable", None)
        hib = getattr(r, "higher_is_better", None)
        base = {"version": str(getattr(r, "version", "")), "weights": dict(getattr(r, "weights", {}) or {})}
        per_clip = getattr(r, "per_clip", {}) or {}
        counts = dict(getattr(r, "counts", {}) or {})
        # clips with a value (a multi-output metric's per-clip values are dicts, skipped clips too)
        n = counts.get("n_clips") or sum(1 for v in per_clip.values()
                                         if v is not None and not (isinstance(v, dict) and "skipped" in v)) or None
        skipped = dict(getattr(r, "skipped", {}) or {})
        if counts or skipped:  # counts are sums (never a CI); they go with every output
            base["counts"] = {**counts, **({"skipped": skipped} if skipped else {})}
        if unavailable or value is None:
            out[name] = {**base, "higher_is_better": hib, "unavailable": str(unavailable or "no value")}
            continue
        ci = getattr(r, "ci95", None)
        values = value if isinstance(value, dict) else {"": value}
        for key, v in values.items():
            if key.startswith("n_") or isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                continue
            if not np.isfinite(float(v)):
                continue
            sub_ci = ci.get(key) if isinstance(ci, dict) else (ci if key == "" else None)
            out[output_name(name, key)] = {
                **base, "value": float(v), "ci95": [float(sub_ci[0]), float(sub_ci[1])] if sub_ci else None,
                "higher_is_better": output_direction(name, key, hib), "n": n, "metric": name, "output": key or name,
            }
    return out


def describe_metric_options(metric_options: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """JSON-able record of ``metric_options``; an option naming a file records its path and
    sha256, and an emotion classifier also its name, features and held-out accuracy (from its
    card). A file option that does not exist raises :class:`LesbenchError` naming it, before
    anything is generated."""
    out: dict[str, dict[str, Any]] = {}
    for metric, opts in (metric_options or {}).items():
        if not isinstance(opts, dict):
            raise LesbenchError(f"metric_options[{metric!r}] must be a mapping of constructor arguments, "
                                f"got {type(opts).__name__}")
        rec: dict[str, Any] = {}
        for key, value in opts.items():
            if metric == "emotion" and key == "classifier" and isinstance(value, (str, Path)):
                rec[key] = describe_emotion_classifier(value)
            elif isinstance(value, Path) or (isinstance(value, str) and Path(value).suffix and Path(value).is_file()):
                path = Path(value)
                if not path.is_file():
                    raise LesbenchError(f"{path}: file given for metric {metric!r} option {key!r} does not exist")
                rec[key] = {"path": str(path.resolve()), "sha256": sha256_file(path)}
            else:
                rec[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        out[str(metric)] = rec
    return out


def describe_emotion_classifier(classifier: str | Path) -> dict[str, Any]:
    """The card of an emotion classifier option (:func:`~lesbench.metrics.emotion_classifier_card.card_summary`:
    name, path, sha256, features, training data, held-out accuracy) of a ``train-classifier``
    file (the FER2013 default names -> ``{"name": ...}`` only; its sha256 is in the emotion
    scores' weights and its card in the record's ``classifier_cards``)."""
    if str(classifier) in _FER_NAMES:
        return {"name": str(classifier)}
    path = Path(classifier)
    if not path.is_file():
        raise LesbenchError(f"{path}: emotion classifier file not found (train one with lesbench train-classifier)")
    return card_summary(read_card(path), sha256_file(path), str(path.resolve()))


def instrument_record(record: dict[str, Any]) -> dict[str, Any]:
    """What a results ``record`` adds about its emotion instruments: ``classifier_cards``
    (metric -> card) and ``caveats`` (output name -> why the number is not independent, e.g.
    an AU classifier scoring a method trained on AUs); see
    :mod:`lesbench.metrics.emotion_classifier_card`."""
    return {"classifier_cards": classifier_cards(record), "caveats": classifier_caveats(record)}
