"""Typed, lazy plug-in registries (datasets, stages, metrics, methods).

Entries are ``"module:attr"`` strings, imported only when asked for, so ``lesbench ls`` and
``lesbench --help`` never import torch or mediapipe. Third-party code can add entries with
:meth:`Registry.register` (as a decorator or with a lazy string).

    from lesbench.registry import METRICS
    fid_cls = METRICS.get("fid")          # imports lesbench.metrics.fid only now
    METRICS.get("fdi")                    # UnknownNameError: ... did you mean 'fid'?
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """An unknown plug-in name; the message lists the known ones and the nearest match."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> plug-in object, filled with lazy ``"module:attr"`` strings or objects."""

    def __init__(self, kind: str, entries: dict[str, str] | None = None, source: str | None = None) -> None:
        """``source``: ``"module:attr"`` of a name -> object mapping that holds the built-in
        entries (imported when the names are first needed), for plug-ins whose own module is
        the one place that lists them."""
        self.kind = kind
        self._entries: dict[str, str | T] = dict(entries or {})
        self._source = source

    def _load_source(self) -> None:
        if self._source is not None:
            module_name, _, attr = self._source.partition(":")
            built_in = getattr(importlib.import_module(module_name), attr)
            self._source = None  # only once the import worked: a failed one is raised again next time
            for name, obj in built_in.items():
                self._entries.setdefault(name, obj)

    def register(self, name: str, target: str | T | None = None) -> Callable[[T], T] | None:
        """Register ``target`` under ``name``; without ``target``, act as a class decorator."""
        if target is not None:
            self._entries[name] = target
            return None

        def decorator(obj: T) -> T:
            self._entries[name] = obj
            return obj

        return decorator

    def names(self) -> list[str]:
        self._load_source()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_source()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def target(self, name: str) -> str:
        """Where ``name`` lives, as ``module:attr``, without importing it."""
        entry = self._lookup(name)
        if isinstance(entry, str):
            return entry
        return f"{entry.__module__}:{getattr(entry, '__qualname__', repr(entry))}"

    def get(self, name: str) -> T:
        entry = self._lookup(name)
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            obj = getattr(importlib.import_module(module_name), attr)
            self._entries[name] = obj
            return obj
        return entry

    def _lookup(self, name: str) -> str | T:
        self._load_source()
        try:
            return self._entries[name]
        except KeyError:
            known = self.names()
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(known) or '(none)'}"
            ) from None


# The built-in plug-ins. Each line is cheap: nothing is imported until ``get``.
DATASETS: Registry = Registry(
    "dataset",
    {
        "mead": "lesbench.pipelines.mead:MeadDataset",
        "folder": "lesbench.pipelines.folder:FolderDataset",
    },
)

# The stages are listed once, in prepare's pipeline (lesbench.pipelines.stages.PIPELINE).
STAGES: Registry = Registry("stage", source="lesbench.pipelines.stages:STAGE_CLASSES")

METRICS: Registry = Registry(
    "metric",
    {
        "sync": "lesbench.metrics.sync:AVSync",
        "lse": "lesbench.metrics.lse:LSE",
        "lmd": "lesbench.metrics.landmarks:LandmarkDistance",
        "au": "lesbench.metrics.action_units:AUAccuracy",
        "controllability": "lesbench.metrics.controllability:LevelControllability",
        "fid": "lesbench.metrics.fid:FID",
        "kid": "lesbench.metrics.fid:KID",
        "psnr": "lesbench.metrics.image:PSNR",
        "ssim": "lesbench.metrics.image:SSIM",
        "lpips": "lesbench.metrics.image:LPIPS",
        "csim": "lesbench.metrics.identity:CSIM",
        "emotion": "lesbench.metrics.emotion:EmotionAccuracy",
        "emotion-prototype": "lesbench.metrics.emotion_prototype:EmotionPrototype",
    },
)

METHODS: Registry = Registry(
    "method",
    {
        "ground-truth": "lesbench.baselines.ground_truth:GroundTruth",
        "static": "lesbench.baselines.static:StaticFrame",
        "renderer-oracle": "lesbench.baselines.renderer_oracle:RendererOracle",
        "retrieval": "lesbench.baselines.retrieval:NearestClipRetrieval",
        "les-talker": "lesbench.baselines.les_talker:LESTalkerMethod",
        "one-hot": "lesbench.baselines.les_talker:OneHotVariant",
        "audio-only": "lesbench.baselines.les_talker:AudioOnlyVariant",
        "external": "lesbench.baselines.external:ExternalVideos",
    },
)

ALL: dict[str, Registry] = {
    "datasets": DATASETS,
    "stages": STAGES,
    "metrics": METRICS,
    "methods": METHODS,
}
