"""Base class for every metric (torchmetrics-style: state, ``update``, ``compute``).

A metric declares ``name``, ``version`` (bumped whenever its number can change), its
``outputs`` (one :class:`Output` per number it reports: public name, label, direction, decimals)
and the weights it needs (names known to :mod:`lesbench.weights`). ``protocol_args`` says which
protocol settings its constructor takes, so :meth:`Metric.from_protocol` builds it.
Each metric class has a plain-function twin in the same module, and is registered in
:data:`lesbench.registry.METRICS`.

    m = METRICS.get("psnr")()
    for pred, ref in pairs:
        m.update(pred, ref)          # (T, H, W, 3) uint8 RGB
    value = m.compute()              # float (or dict of floats for multi-output metrics)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from lesbench.metrics.protocol import Protocol

#: ``higher`` / ``lower`` is better, or ``target``: closest to a target value is best (an
#: audio-visual offset of 0 frames); tables rank only ``higher`` and ``lower``.
Direction = Literal["higher", "lower", "target"]
DIRECTIONS: tuple[str, ...] = ("higher", "lower", "target")


@dataclass(frozen=True)
class Output:
    """One number a metric reports, declared once on the metric class.

    ``key``: its key in ``compute()``'s dict ("" for a metric that returns one float);
    ``name``: its public name in results files and tables (``m-lmd``); ``label``: the column
    heading (None: not a headline column; tables show it under ``name``, after the labelled
    columns); ``decimals``: digits shown in tables; ``unit``: e.g. ``dB``, ``px`` ("" unitless).
    ``reference_bound``: the ground-truth row's value is the best *meaningful* value (a sync
    confidence: generated mouths can be more predictable from the voice than real ones, which is
    not better); leaderboards rank such a column by distance to ground truth and mark values
    past it.
    """

    key: str
    name: str
    label: str | None = None
    direction: Direction = "higher"
    decimals: int = 3
    unit: str = ""
    reference_bound: bool = False

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"output {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")

    @property
    def higher_is_better(self) -> bool | None:
        """True / False, or None for ``target`` (what results files record)."""
        return {"higher": True, "lower": False}.get(self.direction)


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
    #: every number the metric reports (:class:`Output`); a key ``compute()`` returns that is not
    #: declared is reported as ``{name}-{key}`` with the metric's direction
    outputs: ClassVar[tuple[Output, ...]] = ()
    #: the metric as a whole: the direction its outputs share, None when they differ or aim at a
    #: target (derived from :attr:`outputs`; set it only on a metric without outputs)
    higher_is_better: ClassVar[bool | None] = None
    #: constructor argument -> :class:`~lesbench.metrics.protocol.Protocol` attribute it takes
    #: (an attribute that is a method is called): what :meth:`from_protocol` passes
    protocol_args: ClassVar[dict[str, str]] = {}
    #: weight names resolved through lesbench.weights (their sha256 goes into results)
    weights: ClassVar[tuple[str, ...]] = ()
    #: what the metric reads per clip: any of "pred_video", "ref_video", "audio", "source",
    #: "pred_face", "ref_face" (face-tracker tables), "target_aus", "emotion", "level"
    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "ref_video")
    #: inputs the metric uses when the clip has them and does without otherwise: a reference
    #: input (``ref_face``...) named here is passed as None for a clip without a usable
    #: reference, where one named in :attr:`inputs` skips the clip ("no reference clip")
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    #: ``lesbench score`` calls ``update(**{name: value for name in inputs})`` (plus the
    #: extras "pred_size", "ref_size" = (width, height) of the videos), so ``update``'s keyword
    #: names are the input names. ``unit``: "clip" = a fresh instance per clip, one value per
    #: clip, aggregate = mean over clips with a bootstrap CI; "dataset" = one instance updated
    #: with every clip, computed once (FID). The protocol's ``frames.<name>.unit`` wins.
    unit: ClassVar[str] = "clip"
    #: clips without audio / without a face are reported per clip instead of being updated
    needs_audio: ClassVar[bool] = False
    needs_face: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "outputs" in cls.__dict__ and cls.outputs:
            directions = {o.direction for o in cls.outputs}
            shared = directions.pop() if len(directions) == 1 else "target"
            cls.higher_is_better = {"higher": True, "lower": False}.get(shared)

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self.reset()

    @classmethod
    def from_protocol(cls, protocol: Protocol, device: str | None = None,
                      options: dict[str, Any] | None = None) -> "Metric":
        """The metric with the protocol's settings (:attr:`protocol_args`), then ``options``
        (extra constructor arguments, which win)."""
        kwargs: dict[str, Any] = {"device": device}
        for arg, attr in cls.protocol_args.items():
            value = getattr(protocol, attr)
            kwargs[arg] = value() if callable(value) else value
        kwargs.update(options or {})
        return cls(**kwargs)

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
