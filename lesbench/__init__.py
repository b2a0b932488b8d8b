"""lesbench: emotional talking-head preprocessing, LES-Talker, and benchmark toolkit.

The Python front door mirrors the command line::

    import lesbench
    summary = lesbench.prepare("mead/", "prepared/")            # lesbench prepare
    report = lesbench.validate("prepared/")                     # lesbench validate
    data = lesbench.PreparedDataset("prepared/")                # read the prepared data set
    lesbench.build_les("prepared/").save("les/")                # lesbench les build
    lesbench.train("prepared/", "runs/les-talker", les="les/")  # lesbench train
    scores = lesbench.score("gen/", ref="prepared/")            # lesbench score
    result = lesbench.evaluate("static", "prepared/", out="results/")  # lesbench evaluate
    board = lesbench.build_leaderboard("results/")              # lesbench leaderboard

Importing this package is cheap on purpose: each name is imported on first use, and heavy
libraries (torch, mediapipe, dask, av) only inside the functions that need them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> "module:attribute", resolved on first access.
_FRONT_DOOR: dict[str, str] = {
    "prepare": "lesbench.pipelines.prepare:prepare",
    "PrepareConfig": "lesbench.pipelines.prepare_config:PrepareConfig",
    "validate": "lesbench.pipelines.validate:validate",
    "dataset_info": "lesbench.pipelines.info:dataset_info",
    "PreparedDataset": "lesbench.prepared:PreparedDataset",
    "build_les": "lesbench.les.space:build_les",
    "train": "lesbench.model.train:train",
    "load_generator": "lesbench.model.generate:load_generator",
    "generate": "lesbench.model.generate:generate",
    "score": "lesbench.metrics.score:score",
    "score_items": "lesbench.metrics.score:score_items",
    "ScoreItem": "lesbench.metrics.discover:ScoreItem",
    "load_protocol": "lesbench.metrics.protocol:load_protocol",
    "evaluate": "lesbench.evaluation:evaluate",
    "build_leaderboard": "lesbench.leaderboard:build_leaderboard",
    "render_leaderboard": "lesbench.leaderboard:render",
    "run_demo": "lesbench.demo.run:run_demo",
}

__all__ = ["__version__", *_FRONT_DOOR]


def __getattr__(name: str) -> Any:
    target = _FRONT_DOOR.get(name)
    if target is None:
        raise AttributeError(f"module 'lesbench' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FRONT_DOOR))
