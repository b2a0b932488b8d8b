"""LES-Talker configuration: dataclasses mirroring ``default.yaml`` (package data).

    cfg = load_config()                       # the packaged defaults
    cfg = load_config("my.yaml")              # defaults overridden by a file (partial is fine)
    cfg = load_config(overrides={"train": {"epochs": 2}})
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from lesbench.errors import LesbenchError

CONDITIONS = ("les", "onehot", "audio-only")


class ConfigError(LesbenchError):
    """A config file or value that cannot be used (names the file/key)."""


@dataclass
class ModelConfig:
    d_model: int = 48
    n_heads: int = 4
    n_layers: int = 2
    audio_layers: int = 2
    audio_kernel: int = 5
    ffn_mult: int = 2
    dropout: float = 0.1
    temporal_window: int = 0


@dataclass
class DataConfig:
    window: int = 32
    windows_per_clip: int = 4
    batch_size: int = 16
    max_val_clips: int = 64
    target_lead: float = 1.2


@dataclass
class OptimConfig:
    epochs: int = 40
    lr: float = 2e-3
    lr_min: float = 2e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    threads: int = 1
    checkpoint_every: int = 1


@dataclass
class LossConfig:
    coef: float = 1.0
    lip: float = 1.0
    au: float = 0.5
    smooth: float = 0.5
    pose: float = 0.1


@dataclass
class AugmentConfig:
    level_prob: float = 0.5
    unit_prob: float = 0.5
    offset_prob: float = 0.3
    offset_scale: float = 0.1
    ridge: float = 1e-3
    pinv_rcond: float = 0.01


REFINE_ENABLED = ("auto", "true", "false")


@dataclass
class RefineConfig:
    """The optional learned refiner of the warp renderer (:mod:`lesbench.model.refine`)."""

    enabled: str = "auto"
    size: int = 128
    gpu_size: int = 256
    steps: int = 400
    gpu_steps: int = 4000
    channels: int = 24
    levels: int = 3
    batch_size: int = 8
    lr: float = 1e-3
    lr_min: float = 1e-4
    weight_decay: float = 0.0
    grad_weight: float = 0.5
    mouth_weight: float = 1.0
    source: str = "neutral"
    pairs_per_clip: int = 12
    max_train_clips: int = 0
    max_val_pairs: int = 96
    flip: bool = True
    eval_every: int = 100
    threads: int = 2

    def mode(self) -> str:
        """``enabled`` normalised to auto / true / false (YAML may give a bool)."""
        v = str(self.enabled).strip().lower()
        return {"on": "true", "yes": "true", "1": "true", "off": "false", "no": "false", "0": "false"}.get(v, v)


@dataclass
class TrainConfig:
    seed: int = 0
    condition: str = "les"
    condition_source: str = "measured"
    train_split: str = "train"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self, source: str = "config") -> "TrainConfig":
        if self.condition not in CONDITIONS:
            raise ConfigError(f"{source}: condition must be one of {CONDITIONS}, got {self.condition!r}")
        if self.condition_source not in ("measured", "label"):
            raise ConfigError(f"{source}: condition_source must be 'measured' or 'label', got {self.condition_source!r}")
        if self.model.d_model % self.model.n_heads:
            raise ConfigError(f"{source}: model.d_model ({self.model.d_model}) must be divisible by model.n_heads ({self.model.n_heads})")
        for name, value in (("data.window", self.data.window), ("data.batch_size", self.data.batch_size),
                            ("train.epochs", self.train.epochs), ("model.d_model", self.model.d_model)):
            if value < 1:
                raise ConfigError(f"{source}: {name} must be >= 1, got {value}")
        if not -5.0 <= self.data.target_lead <= 5.0:
            raise ConfigError(f"{source}: data.target_lead must be within -5..5 frames, got {self.data.target_lead}")
        validate_refine(self.refine, source)
        return self


def validate_refine(r: RefineConfig, source: str = "config") -> RefineConfig:
    """Check the ``refine:`` section; raises :class:`ConfigError` naming the key."""
    if r.mode() not in REFINE_ENABLED:
        raise ConfigError(f"{source}: refine.enabled must be auto, true or false, got {r.enabled!r}")
    r.enabled = r.mode()
    if r.source not in ("neutral", "clip"):
        raise ConfigError(f"{source}: refine.source must be 'neutral' or 'clip', got {r.source!r}")
    for name in ("size", "gpu_size", "steps", "gpu_steps", "channels", "levels", "batch_size", "pairs_per_clip", "threads"):
        if getattr(r, name) < 1:
            raise ConfigError(f"{source}: refine.{name} must be >= 1, got {getattr(r, name)}")
    for name in ("size", "gpu_size"):
        if getattr(r, name) % (1 << (r.levels - 1)):
            raise ConfigError(f"{source}: refine.{name} ({getattr(r, name)}) must be divisible by 2^(levels-1) = {1 << (r.levels - 1)}")
    return r


def default_config_path() -> Path:
    return Path(__file__).with_name("default.yaml")


def _merge(dc: Any, values: dict, where: str) -> Any:
    known = {f.name: f for f in fields(dc)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        current = getattr(dc, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            _merge(current, value, f"{where}.{key}")
        else:
            try:
                setattr(dc, key, type(current)(value) if current is not None else value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}.{key}: cannot use {value!r} as {type(current).__name__}") from None
    return dc


def config_from_dict(values: dict, where: str = "config") -> TrainConfig:
    return _merge(TrainConfig(), copy.deepcopy(values), where).validate(where)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Packaged defaults, then ``path`` (YAML, may be partial), then ``overrides``."""
    import yaml

    def read(p: Path) -> dict:
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        return data

    cfg = _merge(TrainConfig(), read(default_config_path()), str(default_config_path()))
    if path is not None:
        cfg = _merge(cfg, read(Path(path)), str(path))
    if overrides:
        cfg = _merge(cfg, copy.deepcopy(overrides), "overrides")
    return cfg.validate(str(path) if path else "config")


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path
