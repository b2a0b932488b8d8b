"""Base class for every metric (torchmetrics-style: state, ``update``, ``compute``).

A metric declares ``name``, ``version`` (bumped whenever its number can change),
``higher_is_better`` and the weights it needs (names known to :mod:`lesbench.weights`).
Each metric class has a plain-function twin in the same module, and is registered in
:data:`lesbench.registry.METRICS`.

    m = METRICS.get("psnr")()
    for pred, ref in pairs:
        m.update(pred, ref)          # (T, H, W, 3) uint8 RGB
    value = m.compute()              # float (or dict of floats for multi-output metrics)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


class MetricUnavailable(Exception):
    """Raised by a metric that cannot run here (weights or optional package missing).

    ``lesbench score`` reports it as unavailable with ``reason``; it is never silently dropped.
    """

    def __init__(self, metric: str, reason: str) -> None:
        self.metric = metric
        self.reason = reason
        super().__init__(f"{metric}: unavailable: {reason}")


class Metric:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool | None] = None  # None: closer to a target (e.g. sync offset 0)
    #: weight names resolved through lesbench.weights (their sha256 goes into results)
    weights: ClassVar[tuple[str, ...]] = ()
    #: what the metric reads per clip: any of "pred_video", "ref_video", "audio", "source",
    #: "pred_face", "ref_face" (face-tracker tables), "target_aus", "emotion", "level"
    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "ref_video")
    #: ``lesbench score`` calls ``update(**{name: value for name in inputs})`` (plus the
    #: extras "pred_size", "ref_size" = (width, height) of the videos), so ``update``'s keyword
    #: names are the input names. ``unit``: "clip" = a fresh instance per clip, one value per
    #: clip, aggregate = mean over clips with a bootstrap CI; "dataset" = one instance updated
    #: with every clip, computed once (FID). The protocol's ``frames.<name>.unit`` wins.
    unit: ClassVar[str] = "clip"
    #: clips without audio / without a face are reported per clip instead of being updated
    needs_audio: ClassVar[bool] = False
    needs_face: ClassVar[bool] = False

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def update(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def compute(self) -> float | dict[str, float]:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "higher_is_better": self.higher_is_better,
            "weights": list(self.weights),
        }


@dataclass
class MetricResult:
    """One metric's outcome in a score run: value(s) or the reason it is unavailable."""

    name: str
    version: str
    higher_is_better: bool | None
    value: float | dict[str, float] | None = None
    #: a (low, high) pair, or for a multi-output metric a dict output name -> (low, high) | None
    ci95: tuple[float, float] | dict[str, tuple[float, float] | None] | None = None
    per_clip: dict[str, Any] = field(default_factory=dict)
    unavailable: str | None = None
    weights: dict[str, str] = field(default_factory=dict)  # weight name -> sha256
    #: counts, never averaged nor given a CI: clips scored (``n_clips``), frames in the mean,
    #: values that could not be computed (``n_identical``, ``n_no_face``...), summed over clips
    counts: dict[str, int] = field(default_factory=dict)
    #: clips that gave no value, by reason -> number of clips
    skipped: dict[str, int] = field(default_factory=dict)
