"""Evaluation protocols as versioned data (DESIGN §7).

A protocol fixes everything that changes a number without changing the method: test speakers,
views, crop, frame rate, sample rate, which frames each metric reads, how generated and
reference frames are paired, the emotion classifier, the AU activation thresholds and the
bootstrap settings. Protocols are YAML files (``yaml.safe_load``); the built-in ones live in
``lesbench/metrics/protocols/*.yaml`` and any other file can be passed by path.

    p = load_protocol("mead-v1")
    p.test_speakers                     # ('M003', 'M030', 'W009', 'W015')
    p.frame_indices("fid", n_frames=120)  # which frames FID reads from a 120-frame clip
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.schema import AU_NAMES


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a clip one metric reads: every ``every``-th frame from 0, at most
    ``max_frames`` (``None``: all); ``unit`` is ``clip`` (one value per clip) or ``dataset``."""

    every: int = 1
    max_frames: int | None = None
    unit: str = "clip"

    def indices(self, n_frames: int) -> np.ndarray:
        idx = np.arange(0, max(0, int(n_frames)), max(1, int(self.every)))
        return idx if self.max_frames is None else idx[: int(self.max_frames)]


@dataclass(frozen=True)
class Protocol:
    """A loaded protocol. ``raw`` keeps the file's full content (it goes into results)."""

    name: str
    version: str
    description: str
    dataset: str
    test_speakers: tuple[str, ...]
    views: tuple[str, ...]
    emotions: tuple[str, ...]
    levels: tuple[int, ...]
    crop_size: int
    aligned: bool
    fps: float
    sample_rate: int
    frames: dict[str, FrameSampling]
    pairing: str
    emotion_classifier: str
    au_default_threshold: float
    au_thresholds: dict[str, float]
    sync_max_shift: int
    lse_vshift: int
    lse_crop_scale: float
    lmd_landmarks: str
    bootstrap_n: int
    bootstrap_seed: int
    bootstrap_level: float
    source: str = ""
    #: Test-clip selection: keep at most this many clips (the first by clip id) per speaker x
    #: view x emotion x level; None = every test clip. From ``test_clips.per_condition``.
    clips_per_condition: int | None = None
    #: Columns that define a condition for ``clips_per_condition`` (``test_clips.by``). When
    #: ``speaker`` is not among them, the speaker of each condition's clip rotates over the test
    #: speakers (condition i takes speaker i mod S first) so every speaker is represented.
    clips_by: tuple[str, ...] = ("speaker", "view", "emotion", "level")
    #: FID formula: ``sqrtm`` (pytorch-fid's) or ``eig`` (same value, faster; ``fid.method``).
    fid_method: str = "sqrtm"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        """``name@version``, the string recorded next to every result."""
        return f"{self.name}@{self.version}"

    def sampling(self, metric: str) -> FrameSampling:
        return self.frames.get(metric, FrameSampling())

    def frame_indices(self, metric: str, n_frames: int) -> np.ndarray:
        """Indices of the frames ``metric`` reads from a clip of ``n_frames`` frames."""
        return self.sampling(metric).indices(n_frames)

    def au_threshold_vector(self) -> np.ndarray:
        """(17,) float32 activation thresholds in ``schema.AU_NAMES`` order."""
        return np.array([self.au_thresholds.get(n, self.au_default_threshold) for n in AU_NAMES],
                        np.float32)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, **self.raw}


def builtin_protocols() -> list[str]:
    """Names of the protocols shipped with lesbench."""
    root = resources.files("lesbench.metrics") / "protocols"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_protocol(name_or_path: str | Path = "mead-v1") -> Protocol:
    """Load a built-in protocol by name (``"mead-v1"``) or any protocol YAML file by path.

    Raises:
        LesbenchError: unknown name, unreadable file, or a missing/invalid field (the message
            names the file and the field).
    """
    import yaml

    text: str
    source: str
    candidate = Path(str(name_or_path))
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise LesbenchError(f"{candidate}: protocol file not found")
        text, source = candidate.read_text(encoding="utf-8"), str(candidate)
    else:
        res = resources.files("lesbench.metrics") / "protocols" / f"{name_or_path}.yaml"
        if not res.is_file():
            known = ", ".join(builtin_protocols())
            raise LesbenchError(f"unknown protocol {str(name_or_path)!r}; built-in: {known} "
                                f"(or pass the path of a protocol .yaml file)")
        text, source = res.read_text(encoding="utf-8"), f"lesbench:{name_or_path}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LesbenchError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LesbenchError(f"{source}: a protocol must be a mapping")
    return _from_dict(data, source)


def _from_dict(d: dict[str, Any], source: str) -> Protocol:
    def need(key: str) -> Any:
        if key not in d:
            raise LesbenchError(f"{source}: protocol field {key!r} is missing")
        return d[key]

    def section(key: str) -> dict[str, Any]:
        value = d.get(key) or {}
        if not isinstance(value, dict):
            raise LesbenchError(f"{source}: protocol field {key!r} must be a mapping")
        return value

    frames: dict[str, FrameSampling] = {}
    for metric, spec in section("frames").items():
        spec = spec or {}
        unit = str(spec.get("unit", "clip"))
        if unit not in ("clip", "dataset"):
            raise LesbenchError(f"{source}: frames.{metric}.unit must be clip or dataset, got {unit!r}")
        every = int(spec.get("every", 1))
        if every < 1:
            raise LesbenchError(f"{source}: frames.{metric}.every must be >= 1")
        mx = spec.get("max_frames")
        frames[str(metric)] = FrameSampling(every, None if mx is None else int(mx), unit)
    crop = section("crop")
    au = section("au")
    thresholds = {str(k): float(v) for k, v in (au.get("thresholds") or {}).items()}
    unknown = sorted(set(thresholds) - set(AU_NAMES))
    if unknown:
        raise LesbenchError(f"{source}: au.thresholds names unknown AUs {unknown}; known: {list(AU_NAMES)}")
    boot = section("bootstrap")
    per_condition = section("test_clips").get("per_condition")
    clips_by = tuple(str(c) for c in (section("test_clips").get("by") or ("speaker", "view", "emotion", "level")))
    bad_by = sorted(set(clips_by) - {"speaker", "view", "emotion", "level", "sentence"})
    if bad_by:
        raise LesbenchError(f"{source}: test_clips.by names unknown columns {bad_by}")
    fid_method = str(section("fid").get("method", "sqrtm"))
    if fid_method not in ("sqrtm", "eig"):
        raise LesbenchError(f"{source}: fid.method must be sqrtm or eig, got {fid_method!r}")
    if per_condition is not None and int(per_condition) < 1:
        raise LesbenchError(f"{source}: test_clips.per_condition must be >= 1 (or null for every clip)")
    pairing = str(d.get("pairing", "linspace"))
    if pairing not in ("linspace", "truncate"):
        raise LesbenchError(f"{source}: pairing must be linspace or truncate, got {pairing!r}")
    return Protocol(
        name=str(need("name")),
        version=str(need("version")),
        description=str(d.get("description", "")).strip(),
        dataset=str(d.get("dataset", "")),
        test_speakers=tuple(str(s) for s in d.get("test_speakers", ())),
        views=tuple(str(s) for s in d.get("views", ())),
        emotions=tuple(str(s) for s in d.get("emotions", ())),
        levels=tuple(int(s) for s in d.get("levels", ())),
        crop_size=int(crop.get("size", 256)),
        aligned=bool(crop.get("aligned", True)),
        fps=float(need("fps")),
        sample_rate=int(need("sample_rate")),
        frames=frames,
        pairing=pairing,
        emotion_classifier=str(d.get("emotion_classifier", "fer-mini-xception")),
        au_default_threshold=float(au.get("default_threshold", 0.5)),
        au_thresholds=thresholds,
        sync_max_shift=int(section("sync").get("max_shift", 15)),
        lse_vshift=int(section("lse").get("vshift", 15)),
        lse_crop_scale=float(section("lse").get("crop_scale", 0.4)),
        lmd_landmarks=str(section("lmd").get("landmarks", "mediapipe478")),
        bootstrap_n=int(boot.get("n", 1000)),
        bootstrap_seed=int(boot.get("seed", 0)),
        bootstrap_level=float(boot.get("level", 0.95)),
        source=source,
        clips_per_condition=None if per_condition is None else int(per_condition),
        clips_by=clips_by,
        fid_method=fid_method,
        raw=d,
    )


def paired_indices(n_pred: int, n_ref: int, pairing: str = "linspace") -> tuple[np.ndarray, np.ndarray]:
    """Frame pairing of a generated and a reference clip of different lengths.

    ``linspace`` (EAT's LMD code): ``m = min(n_pred, n_ref)`` pairs, indices
    ``floor(linspace(0, n, m, endpoint=False))`` in each clip, so the longer clip is evenly
    subsampled. ``truncate``: the first ``m`` frames of each.
    """
    m = min(int(n_pred), int(n_ref))
    if m <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if pairing == "truncate":
        return np.arange(m), np.arange(m)
    a = np.linspace(0, n_pred, m, endpoint=False).astype(np.int64)
    b = np.linspace(0, n_ref, m, endpoint=False).astype(np.int64)
    return a, b
