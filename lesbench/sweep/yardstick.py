"""The controllability sweep in ``lesbench evaluate``: the yardstick LES every method is
measured with, and the sweep's numbers as results records (named, with directions, as
:class:`lesbench.metrics.controllability.LevelControllability` declares its outputs)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lesbench.baselines.base import Method, PreparedData
from lesbench.errors import LesbenchError
from lesbench.les.space import LES_JSON, LinearEmotionSpace, build_les, les_hash
from lesbench.metrics.controllability import VERSION as CTRL_VERSION
from lesbench.metrics.controllability import LevelControllability
from lesbench.metrics.report import bootstrap_ci
from lesbench.sweep import AUMeasure, control_sweep, supports_control
from lesbench.sweep.records import SWEEP_VERSION, SweepConfig

#: The sweep's outputs: the controllability metric's declared outputs (key = the record field
#: averaged: ``spearman``/``r2`` of the level records, ``isolation`` of the unit records).
OUTPUTS = LevelControllability.outputs


def method_les(method: Any) -> Path | None:
    """The LES folder recorded in ``method``'s checkpoint (``{run}/les``), or None."""
    ckpt = getattr(method, "checkpoint", None)
    if ckpt is None:
        return None
    run = Path(ckpt) if Path(ckpt).is_dir() else Path(ckpt).parent
    return run / "les" if (run / "les" / LES_JSON).is_file() else None


def benchmark_les(data: PreparedData | str | Path, split: str = "train") -> tuple[LinearEmotionSpace, dict[str, Any]]:
    """The yardstick: the LES built from ``data``'s ``split`` with :func:`build_les`'s defaults,
    and its provenance (``sha256`` of the saved artefact, the data set's sha256s, the split).

    Built afresh on each call (seconds; deterministic, so equal data give an equal sha256) and
    hashed through a temporary folder: nothing is written next to the prepared data.
    """
    root = Path(getattr(data, "root", data))
    space = build_les(root, train_split=split)
    with tempfile.TemporaryDirectory(prefix="lesbench-les-") as tmp:
        sha = les_hash(space.save(tmp))
    info = {"from": "benchmark", "sha256": sha, "built_from": {"split": split, **space.provenance},
            "emotions": space.emotions}
    return space, info


def resolve_les(method: Any, les: str | Path | None = None,
                data: PreparedData | str | Path | None = None) -> tuple[LinearEmotionSpace, dict[str, Any]] | None:
    """The yardstick that measures the sweep and its provenance, or None when there is none.

    An explicit ``les`` (folder or ``les.json``) wins (``from: option``, for every method of the
    run); otherwise the LES the benchmark builds from ``data``'s train split
    (:func:`benchmark_les`, ``from: benchmark``). The method's checkpoint LES never measures; when
    there is one its path and sha256 are recorded as ``method_les``.
    """
    if les is not None:
        folder = Path(les).parent if Path(les).name == LES_JSON else Path(les)
        space = LinearEmotionSpace.load(folder)
        info: dict[str, Any] = {"from": "option", "path": str(folder.resolve()), "sha256": les_hash(folder),
                                "built_from": space.provenance, "emotions": space.emotions}
    elif data is not None:
        space, info = benchmark_les(data)
    else:
        return None
    own = method_les(method)
    if own is not None:
        info["method_les"] = {"path": str(own.resolve()), "sha256": les_hash(own),
                              "same_as_yardstick": les_hash(own) == info["sha256"]}
    return space, info


def evaluate_controllability(
    method: Method,
    data: PreparedData,
    *,
    les: str | Path | None = None,
    config: SweepConfig | None = None,
    bootstrap_n: int = 1000,
    bootstrap_seed: int = 0,
    measure: AUMeasure | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, Any]]:
    """Run the sweep for ``lesbench evaluate``: ``(scores, unavailable, record)``.

    ``scores`` uses the evaluator's record format (``value``, ``ci95`` over (source, emotion) or
    (source, unit) pairs, ``version``, ``higher_is_better``, ``n``); ``unavailable`` names outputs
    that could not be measured at all and why (a method that cannot follow the requests is not
    unavailable: it scores 0, reasons in ``record["summary"]["reasons"]``); ``record`` is the full
    sweep with the yardstick's provenance (``les``: sha256, built from what). A method
    without ``controllable`` gets no scores and ``record = {"applicable": False, "reason": ...}``
    (not applicable is not "unavailable": nothing is missing).
    """
    version = f"{CTRL_VERSION}+{SWEEP_VERSION}"
    name = getattr(method, "name", type(method).__name__)
    if not supports_control(method):
        why = (f"{name} does not generate from arbitrary (source, audio, emotion, level) requests "
               "(it replays or looks up test clips)")
        return {}, {}, {"applicable": False, "reason": f"not applicable: {why}"}
    try:
        resolved = resolve_les(method, les, data)
    except LesbenchError as exc:  # e.g. no train split with neutral clips to build the yardstick from
        resolved, why = None, f"no yardstick LES: {exc}"
    else:
        why = "no Linear Emotion Space to measure with: pass data or les=LES_FOLDER (`lesbench les build`)"
    if resolved is None:
        return {}, {o.name: why for o in OUTPUTS}, {"applicable": True, "reason": why}
    space, les_info = resolved
    res = control_sweep(method, data, space, config, measure=measure, progress=progress)
    scores: dict[str, dict[str, Any]] = {}
    unavailable: dict[str, str] = {}
    for out in OUTPUTS:
        values = res.values(out.key)
        if not values:
            # flat levels and unfollowed unit requests score 0 above: only undefined or failed
            # points are left, e.g. every request failed
            recs = res.units if out.key == "isolation" else res.levels
            why = (f"no defined sweep point ({len(res.failures)} failed requests; "
                   f"{'; '.join(sorted({r.reason for r in recs if r.reason})) or 'no record'})")
            unavailable[out.name] = why
            continue
        scores[out.name] = {"version": version, "weights": {}, "value": float(np.mean(values)),
                            "ci95": (list(ci) if (ci := bootstrap_ci(values, n=bootstrap_n, seed=bootstrap_seed))
                                     else None),
                            "higher_is_better": out.higher_is_better, "n": len(values), "metric": "controllability",
                            "output": out.key, "yardstick": {"les_sha256": les_info["sha256"],
                                                             "from": les_info["from"]}}
    record = {"applicable": True, "les": les_info, **res.as_dict()}
    return scores, unavailable, record
