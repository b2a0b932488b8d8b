"""The Linear Emotion Space (LES) artefact: emotion type, level and facial unit as vector
operations on facial action units (lesbench's reading of LES-Talker, arXiv 2411.09268; see
docs/les-talker.md).

This module is the artefact itself (its vector algebra, ``les.json`` + ``les.npz``, the parsers
of LES requests); :mod:`lesbench.les.space` builds it from the *train* split of a prepared data
set only:

- per-speaker neutral AU reference ``n_s`` = mean AU over the speaker's neutral clips;
- per-emotion direction ``d_e`` = element-wise median over train speakers of
  ``mean AU(e, level 3) - n_s``, stored unit-normalised with its norm ``|d_e|`` (AU units);
- per-level scale ``s_{e,k}`` = median over speakers of the projection of the level-k delta
  onto ``d_e``, reported with the linearity (R^2 of a line through the per-speaker points) and
  monotonicity across MEAD levels 1-3;
- facial units = AU groups (:data:`lesbench.schema.FACIAL_UNITS`); editing a unit is a mask;
- an LES vector ``v = sum_e w_e * level_e * |d_e| * d_e`` (masked by units) ``+ offsets``;
  ``level`` is a fraction of the level-3 expression (1.0 = MEAD level 3); compounds are sums.

    space = build_les("prepared/")                       # lesbench.les.space
    v = space.vector({"happy": 0.6})                     # (17,) AU delta from neutral
    v = space.vector({"angry": 1.0}, units=["brows"])    # angry only in the brows
    w = space.to_les(clip_aus, speaker_neutral)          # {"happy": 0.8, ...}

Saved as ``les.json`` (metadata, scales, report numbers) + ``les.npz`` (arrays).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from lesbench import schema
from lesbench.errors import LesbenchError
from lesbench.extract.action_units import BILATERAL_SET_NAMES
from lesbench.records import json_safe

LES_FORMAT_VERSION = "1"
LES_JSON = "les.json"
LES_NPZ = "les.npz"
NEUTRAL = "neutral"

#: The AU sets an LES can be built on: the 17 left/right-averaged AUs (the default, what
#: LES-Talker trains on) or the 30-d bilateral set (each AU split by side where MediaPipe
#: gives both sides; docs/action_units.md).
AU_SETS: dict[str, tuple[str, ...]] = {"averaged": schema.AU_NAMES, "bilateral": BILATERAL_SET_NAMES}


def au_base(name: str) -> str:
    """``"AU12_L"`` -> ``"AU12"``; an averaged name is its own base."""
    return name.split("_", 1)[0]


def units_for(au_names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``schema.FACIAL_UNITS`` over an AU set: a unit holds both sides of each of its AUs."""
    names = tuple(au_names)
    return {u: tuple(n for n in names if au_base(n) in aus) for u, aus in schema.FACIAL_UNITS.items()}


class LESError(LesbenchError):
    """A bad LES request (unknown emotion or unit) or an unusable LES artefact."""


@dataclass
class EmotionDirection:
    """One emotion's direction in AU space and how its MEAD levels lie along it.

    ``direction``: (D,) unit vector in the space's ``au_names`` order (D = 17 averaged AUs,
    30 bilateral). ``norm``: length of the robust
    level-3 delta (AU intensity units, [0, 1] scale). ``level_scales``: MEAD level -> median
    projection of that level's delta on ``direction`` (same units). ``r2``: linearity of the
    projection against the level (line fit over per-speaker points). ``monotonic``: the median
    scales rise strictly with the level. ``speaker_monotonic``: share of speakers whose own
    projections rise strictly.
    """

    emotion: str
    direction: np.ndarray
    norm: float
    level_scales: dict[int, float]
    r2: float | None
    monotonic: bool | None
    speaker_monotonic: float | None
    n_speakers: int
    source_level: int = 3
    per_speaker: dict[str, dict[int, float]] = field(default_factory=dict)

    def top_aus(self, k: int = 4, au_names: tuple[str, ...] = schema.AU_NAMES) -> list[tuple[str, float]]:
        """The ``k`` AUs of largest weight, ``(name, weight)``; ``au_names``: the space's AU set."""
        order = np.argsort(-np.abs(self.direction))[:k]
        return [(au_names[i], float(self.direction[i])) for i in order]

    def level_fraction(self, mead_level: int) -> float:
        """The LES level (fraction of level 3) at which MEAD level ``mead_level`` lies."""
        top = self.level_scales.get(self.source_level) or self.norm
        return float(self.level_scales[mead_level] / top) if mead_level in self.level_scales else float("nan")


@dataclass
class LinearEmotionSpace:
    """The LES artefact: directions, neutral references, units, provenance and report numbers."""

    directions: dict[str, EmotionDirection]
    neutral_refs: dict[str, np.ndarray]  # train speaker -> (17,) mean neutral AU
    global_neutral: np.ndarray  # (17,) median of the train speakers' neutral references
    units: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(schema.FACIAL_UNITS))
    au_names: tuple[str, ...] = schema.AU_NAMES
    provenance: dict = field(default_factory=dict)
    separation: dict = field(default_factory=dict)  # held-out separation numbers (report)
    version: str = LES_FORMAT_VERSION
    #: AU set -> held-out separation of an LES built the same way on that set (report; filled
    #: by ``build_les(..., bilateral=True)``, empty otherwise).
    separation_by_au_set: dict = field(default_factory=dict)

    @property
    def au_set(self) -> str:
        """``"averaged"`` (17 AUs), ``"bilateral"`` (30) or ``"custom"``, from ``au_names``."""
        return next((name for name, names in AU_SETS.items() if tuple(self.au_names) == names), "custom")

    def asymmetry(self) -> dict[str, dict]:
        """Per emotion, how one-sided its direction is (bilateral set only; empty otherwise).

        ``index`` = sum over AU pairs of ``|d_L - d_R|`` / sum of ``|d_L| + |d_R|`` (0: the
        two sides move alike, 1: only one side moves); ``pair``: the AU whose sides differ
        most, with ``left`` / ``right`` its direction weights (unit-direction units).
        """
        names = list(self.au_names)
        pairs = [(au_base(n), names.index(n), names.index(au_base(n) + "_R")) for n in names if n.endswith("_L")]
        if not pairs:
            return {}
        out = {}
        for e in self.emotions:
            d = self.directions[e].direction
            diff = np.array([abs(d[i] - d[j]) for _, i, j in pairs])
            total = float(sum(abs(d[i]) + abs(d[j]) for _, i, j in pairs))
            k = int(np.argmax(diff))
            au, i, j = pairs[k]
            out[e] = {"index": float(diff.sum() / total) if total > 0 else 0.0, "pair": au,
                      "left": float(d[i]), "right": float(d[j])}
        return out

    # -- vector algebra ------------------------------------------------------------------------
    @property
    def emotions(self) -> list[str]:
        return sorted(self.directions)

    def matrix(self) -> np.ndarray:
        """(E, D) unit directions in ``self.emotions`` order (D = ``len(au_names)``)."""
        return np.stack([self.directions[e].direction for e in self.emotions])

    def unit_mask(self, units: Iterable[str] | None) -> np.ndarray:
        """(D,) 0/1 mask of the AUs in ``units`` (all ones when ``units`` is None)."""
        if units is None:
            return np.ones(len(self.au_names))
        mask = np.zeros(len(self.au_names))
        for u in units:
            if u not in self.units:
                raise LESError(f"unknown facial unit {u!r}; known units: {', '.join(self.units)}")
            for au in self.units[u]:
                mask[self.au_names.index(au)] = 1.0
        return mask

    def vector(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        units: Iterable[str] | None = None,
        offsets: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """LES vector (D,) float64 (``au_names`` order): AU delta from the neutral reference.

        ``weights`` maps emotion -> level (fraction of MEAD level 3; 0 = neutral, 1 = level 3;
        compounds are several entries). ``units`` keeps only those facial units' AUs.
        ``offsets`` adds per-AU deltas (e.g. ``{"AU12": 0.1}``) after masking.
        """
        v = np.zeros(len(self.au_names))
        for emotion, level in (weights or {}).items():
            if emotion == NEUTRAL:
                continue
            if emotion not in self.directions:
                raise LESError(
                    f"emotion {emotion!r} is not in this LES; known: {', '.join(self.emotions)}"
                )
            d = self.directions[emotion]
            v += float(level) * d.norm * d.direction
        v *= self.unit_mask(units)
        for au, delta in (offsets or {}).items():
            if au not in self.au_names:
                raise LESError(f"unknown AU {au!r} in offsets; known: {', '.join(self.au_names)}")
            v[self.au_names.index(au)] += float(delta)
        return v

    def neutral_for(self, speaker: str | None) -> np.ndarray:
        """A speaker's neutral AU reference; the global one for unknown speakers."""
        if speaker is not None and speaker in self.neutral_refs:
            return self.neutral_refs[speaker]
        return self.global_neutral

    def to_les(
        self, aus: np.ndarray, speaker_neutral: np.ndarray | None = None, *, residual: bool = False
    ) -> dict[str, float] | tuple[dict[str, float], dict[str, float]]:
        """Map measured AUs into LES coordinates (``--emotion-from CLIP``).

        ``aus``: (T, D) or (D,) measured AU intensities (``au_names`` order); their mean minus ``speaker_neutral``
        (default: the global neutral) is fitted by non-negative least squares on the scaled
        directions ``|d_e| d_e``. Returns emotion -> level (fraction of level 3). With
        ``residual=True`` also returns the per-AU remainder as offsets.
        """
        from scipy.optimize import nnls

        aus = np.asarray(aus, np.float64)
        mean = aus.mean(axis=0) if aus.ndim == 2 else aus
        ref = self.global_neutral if speaker_neutral is None else np.asarray(speaker_neutral, np.float64)
        delta = mean - ref
        basis = np.stack([self.directions[e].norm * self.directions[e].direction for e in self.emotions], 1)
        coef, _ = nnls(basis, delta)
        weights = {e: float(c) for e, c in zip(self.emotions, coef)}
        if not residual:
            return weights
        rest = delta - basis @ coef
        return weights, {au: float(r) for au, r in zip(self.au_names, rest)}

    def classify(self, delta: np.ndarray) -> str:
        """Nearest direction (cosine) to an AU delta (D,)."""
        m = self.matrix()
        sims = m @ delta / (np.linalg.norm(delta) + 1e-12)
        return self.emotions[int(np.argmax(sims))]

    # -- persistence ----------------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> Path:
        """Write ``les.json`` + ``les.npz`` into ``out_dir`` (atomically); return the folder."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        speakers = sorted(self.neutral_refs)
        arrays = {
            "directions": self.matrix(),
            "neutral_refs": np.stack([self.neutral_refs[s] for s in speakers]) if speakers else np.zeros((0, len(self.au_names))),
            "global_neutral": self.global_neutral,
        }
        tmp_npz = out / (LES_NPZ + ".tmp.npz")
        np.savez(tmp_npz, **arrays)
        tmp_npz.replace(out / LES_NPZ)
        meta = {
            "format": "lesbench-les",
            "version": self.version,
            "au_names": list(self.au_names),
            "emotions": self.emotions,
            "speakers": speakers,
            "units": {k: list(v) for k, v in self.units.items()},
            "directions": {
                e: {
                    "norm": d.norm,
                    "level_scales": {str(k): v for k, v in d.level_scales.items()},
                    "r2": d.r2,
                    "monotonic": d.monotonic,
                    "speaker_monotonic": d.speaker_monotonic,
                    "n_speakers": d.n_speakers,
                    "source_level": d.source_level,
                    "top_aus": d.top_aus(au_names=tuple(self.au_names)),
                    "per_speaker": {s: {str(k): v for k, v in p.items()} for s, p in d.per_speaker.items()},
                }
                for e, d in sorted(self.directions.items())
            },
            "separation": self.separation,
            "provenance": self.provenance,
            "npz_sha256": hashlib.sha256((out / LES_NPZ).read_bytes()).hexdigest(),
        }
        # Written only for the bilateral option, so an averaged LES's files (and hash) are
        # what they were before the option existed.
        if self.au_set != "averaged":
            meta["au_set"] = self.au_set
            meta["asymmetry"] = self.asymmetry()
        if self.separation_by_au_set:
            meta["separation_by_au_set"] = self.separation_by_au_set
        tmp = out / (LES_JSON + ".tmp")
        tmp.write_text(json.dumps(json_safe(meta), indent=1))
        tmp.replace(out / LES_JSON)
        return out

    @classmethod
    def load(cls, path: str | Path, *, allow_bilateral: bool = False) -> "LinearEmotionSpace":
        """Read an LES folder (or its ``les.json``); checks the format version and npz hash.

        A bilateral LES (``lesbench les build --bilateral``) is refused unless
        ``allow_bilateral``: LES-Talker, its checks and the controllability sweep condition on
        and measure the 17 averaged AUs.
        """
        path = Path(path)
        folder = path.parent if path.name == LES_JSON else path
        jpath, npath = folder / LES_JSON, folder / LES_NPZ
        if not jpath.is_file() or not npath.is_file():
            raise LESError(f"{folder}: not an LES folder (needs {LES_JSON} and {LES_NPZ}; run `lesbench les build`)")
        meta = json.loads(jpath.read_text())
        if meta.get("format") != "lesbench-les" or str(meta.get("version")).split(".")[0] != LES_FORMAT_VERSION:
            raise LESError(f"{jpath}: LES format {meta.get('version')!r} is not readable by this lesbench (reads {LES_FORMAT_VERSION})")
        digest = hashlib.sha256(npath.read_bytes()).hexdigest()
        if meta.get("npz_sha256") and digest != meta["npz_sha256"]:
            raise LESError(f"{npath}: sha256 does not match {jpath} (file changed or truncated)")
        with np.load(npath) as z:
            mat, refs, gneutral = z["directions"], z["neutral_refs"], z["global_neutral"]
        au_names = tuple(meta["au_names"])
        if au_names != schema.AU_NAMES and not allow_bilateral:
            raise LESError(
                f"{jpath}: a {meta.get('au_set', 'non-default')} LES over {len(au_names)} AUs; LES-Talker, its checks "
                f"and the sweep use the {len(schema.AU_NAMES)} averaged AUs: build one without --bilateral"
            )
        directions = {}
        for i, e in enumerate(meta["emotions"]):
            d = meta["directions"][e]
            directions[e] = EmotionDirection(
                emotion=e,
                direction=mat[i].astype(np.float64),
                norm=float(d["norm"]),
                level_scales={int(k): float(v) for k, v in d["level_scales"].items()},
                r2=d["r2"],
                monotonic=d["monotonic"],
                speaker_monotonic=d["speaker_monotonic"],
                n_speakers=int(d["n_speakers"]),
                source_level=int(d.get("source_level", 3)),
                per_speaker={s: {int(k): float(v) for k, v in p.items()} for s, p in d.get("per_speaker", {}).items()},
            )
        return cls(
            directions=directions,
            neutral_refs={s: refs[i].astype(np.float64) for i, s in enumerate(meta["speakers"])},
            global_neutral=gneutral.astype(np.float64),
            units={k: tuple(v) for k, v in meta["units"].items()},
            au_names=au_names,
            provenance=meta.get("provenance", {}),
            separation=meta.get("separation", {}),
            version=str(meta["version"]),
            separation_by_au_set=meta.get("separation_by_au_set", {}),
        )


def les_hash(folder: str | Path) -> str:
    """sha256 over ``les.json`` and ``les.npz`` (recorded in checkpoints as provenance).

    ``les.json``'s own ``provenance`` (the prepared folder's path and the sha256 of its
    ``dataset.json``, which holds a creation time) is left out: the hash names the space's
    content, so the same data built twice, or in another folder, gives the same hash.
    """
    folder = Path(folder)
    meta = json.loads((folder / LES_JSON).read_text())
    meta.pop("provenance", None)
    h = hashlib.sha256()
    h.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    h.update((folder / LES_NPZ).read_bytes())
    return h.hexdigest()


def parse_mix(text: str) -> dict[str, float]:
    """``"happy=0.5,surprised=0.5"`` -> ``{"happy": 0.5, "surprised": 0.5}``."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise LESError(f"--mix {text!r}: expected emotion=level pairs separated by commas")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise LESError(f"--mix {text!r}: {value!r} is not a number") from None
    if not out:
        raise LESError(f"--mix {text!r}: no emotion given")
    return out


def parse_units(text: str | None) -> list[str] | None:
    """``"brows,eyes"`` -> ``["brows", "eyes"]`` (None / empty -> all units)."""
    if not text:
        return None
    units = [u.strip() for u in text.split(",") if u.strip()]
    unknown = [u for u in units if u not in schema.FACIAL_UNITS]
    if unknown:
        raise LESError(f"unknown facial unit(s) {unknown}; known: {', '.join(schema.FACIAL_UNITS)}")
    return units
