"""What every method benchmarked by ``lesbench evaluate`` shares.

- :class:`MethodCard`: validated metadata of a method (or data set) — paper, venue, year,
  code, licence, training data and a BibTeX entry. Cards are data files in
  ``leaderboards/methods/*.yaml`` (loaded by :func:`lesbench.leaderboard.load_cards`).
- :class:`Method`: the generation interface. ``lesbench evaluate`` calls :meth:`Method.setup`
  once with the prepared data set, then :meth:`Method.generate` once per test clip.
- :class:`PreparedData`: the read-only view of a prepared data set (docs/design.md) that methods
  and the evaluator use.
- :class:`GenerationRequest`: one test clip's inputs (source image, audio, emotion, level).

    class Static(Method):
        name = "static"
        card = "static"
        def generate(self, request):
            return np.repeat(request.source_image[None], request.n_frames, axis=0)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Collection

import numpy as np

from lesbench import schema
from lesbench.errors import DatasetError, LesbenchError
from lesbench.io import iter_frames
from lesbench.extract.face import FaceTracker
from lesbench.prepared import PreparedDataset

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Kinds of card: a published method, a data set, or a baseline defined by lesbench itself.
CARD_KINDS: tuple[str, ...] = ("method", "dataset", "baseline")


@dataclass(frozen=True)
class MethodCard:
    """Metadata of one method (or data set) with its citation.

    ``key`` is the card's name (its file stem, used by results and ``--name``); ``cite_key``
    the BibTeX key. ``verified`` is True only when every bibliographic fact on the card was
    checked against a primary source (the paper page, the proceedings, the official code
    repository); ``verification`` says which, and what could not be checked.
    """

    key: str
    name: str
    title: str
    authors: tuple[str, ...]
    year: int
    venue: str
    cite_key: str
    bibtex: str
    kind: str = "method"
    arxiv: str | None = None
    doi: str | None = None
    url: str | None = None
    code_url: str | None = None
    license: str | None = None
    trained_on: tuple[str, ...] = ()
    verified: bool = False
    verification: str = ""
    #: Row name for numbers lesbench measured, when the method measured is lesbench's own
    #: reimplementation of the paper (so a measured row is never mistaken for the authors' model).
    measured_name: str | None = None
    #: Registry name when lesbench can run the method itself (``lesbench evaluate --method``).
    lesbench_method: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "kind": self.kind,
            "title": self.title,
            "authors": list(self.authors),
            "year": self.year,
            "venue": self.venue,
            "arxiv": self.arxiv,
            "doi": self.doi,
            "url": self.url,
            "code_url": self.code_url,
            "license": self.license,
            "trained_on": list(self.trained_on),
            "cite_key": self.cite_key,
            "verified": self.verified,
            "verification": self.verification,
            "lesbench_method": self.lesbench_method,
            "bibtex": self.bibtex,
        }


@dataclass
class GenerationRequest:
    """The inputs of one test clip.

    ``source_image``: (H, W, 3) uint8 RGB aligned crop (the protocol's source frame).
    ``audio``: (N,) float32 mono in [-1, 1] at ``sample_rate`` Hz, or None.
    ``n_frames`` frames at ``fps`` are expected back (the ground-truth clip's length).
    """

    clip_id: str
    speaker: str
    view: str
    emotion: str
    level: int
    sentence: str
    n_frames: int
    fps: float
    source_image: np.ndarray
    source_clip_id: str
    audio: np.ndarray | None = None
    sample_rate: int = schema.SAMPLE_RATE
    #: Controllability sweeps (:mod:`lesbench.sweep`): a continuous LES level (fraction of the MEAD
    #: level-3 expression, 0 = neutral) that methods taking continuous levels use instead of
    #: ``level``, and facial units (``schema.FACIAL_UNITS``) to restrict the emotion to. None in
    #: ordinary test-clip requests; methods that cannot honour them answer as they can.
    les_level: float | None = None
    units: tuple[str, ...] | None = None


class Method:
    """Base class of every benchmarked method.

    Subclasses set ``name`` (registry name), ``card`` (method-card key) and implement
    :meth:`generate`. ``setup`` receives the prepared data set (training split for methods that
    look things up, test clips for the ground-truth reference).
    """

    name: ClassVar[str] = ""
    card: ClassVar[str] = ""
    #: True when the method generates from any (source image, audio, emotion, level) request, so
    #: the controllability sweep (:mod:`lesbench.sweep`) can ask it for levels 0..1 and unit edits.
    controllable: ClassVar[bool] = False
    #: True for a method that serves existing videos: each keeps its own frame count (the scorer
    #: pairs it with the reference by the protocol's pairing) and may be scored from its file
    #: (:meth:`video_file`) instead of being re-encoded.
    keeps_own_length: ClassVar[bool] = False
    #: per-frame features the method was trained on (``"au"``: the prepared data set's AU
    #: intensities); None: not declared. Recorded in the results' provenance, where an emotion
    #: classifier that reads the same features is flagged as not independent.
    training_features: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, seed: int = 0, device: str | None = None, **options: Any) -> None:
        self.seed = int(seed)
        self.device = device
        self.options = dict(options)
        self.data: PreparedData | None = None

    def setup(self, data: PreparedData) -> None:
        """Called once before the first :meth:`generate` (load checkpoints, build indexes)."""
        self.data = data

    def generate(self, request: GenerationRequest) -> np.ndarray:  # pragma: no cover - abstract
        """Return the generated clip: (T, H, W, 3) uint8 RGB, ``T == request.n_frames``."""
        raise NotImplementedError

    @property
    def card_key(self) -> str:
        """The method card its results cite (``leaderboards/methods/{card_key}.yaml``)."""
        return self.card or self.name

    @property
    def result_name(self) -> str:
        """Name of its results file and leaderboard row (default: the registry name)."""
        return self.name

    def check(self, cards: Collection[str]) -> None:
        """Raise :class:`~lesbench.errors.LesbenchError` (naming the problem) when the method
        cannot be evaluated as configured; called before anything is generated. ``cards``: the
        known method-card keys."""

    def missing_clips(self) -> set[str]:
        """Test clips (after :meth:`setup`) the method has no output for: recorded as failures,
        never asked for."""
        return set()

    def describe_inputs(self) -> str | None:
        """After :meth:`setup`: what the method will serve for the test clips, for
        ``lesbench evaluate --match-only`` (None: it generates every clip, nothing to list)."""
        return None

    def video_file(self, request: GenerationRequest) -> Path | None:
        """A file that is the answer to ``request`` as it is (only for :attr:`keeps_own_length`
        methods), or None: :meth:`generate` is called."""
        return None

    def provenance(self) -> dict[str, Any]:
        """What identifies this run of the method: revision, checkpoint sha256, options."""
        return {"revision": None, "checkpoint": None, "checkpoint_sha256": None,
                "options": {k: _jsonable(v) for k, v in sorted(self.options.items())},
                "training_features": None if self.training_features is None else list(self.training_features)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def sha256_path(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, or of a folder's files (sorted relative paths + contents)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
            with open(p, "rb") as f:
                while block := f.read(chunk):
                    h.update(block)
        return h.hexdigest()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class PreparedData:
    """Read-only access to a prepared data set (docs/design.md) for methods and the evaluator:
    :class:`lesbench.prepared.PreparedDataset` (``dataset``) plus the usable clips as a table.

    ``clips`` holds the rows of ``clips.parquet`` whose status is ok (``view`` and ``sentence``
    filled in when absent). ``cache_dir`` is where derived per-clip arrays (crop landmarks) are
    cached; None disables the cache.
    """

    root: Path
    clips: "pd.DataFrame"
    info: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None
    dataset: PreparedDataset = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.dataset = PreparedDataset(self.root)

    @classmethod
    def open(cls, root: str | Path, cache_dir: str | Path | None = None) -> "PreparedData":
        dataset = PreparedDataset(root)
        info = dataset.info
        table = dataset.clips()
        for col, default in (("view", "front"), ("sentence", "")):
            if col not in table.columns:
                table = table.assign(**{col: default})
        return cls(root=dataset.root, clips=table, info=info.to_dict() if info is not None else {},
                   cache_dir=Path(cache_dir) if cache_dir else None)

    @property
    def paths(self) -> dict[str, Path]:
        return self.dataset.parts()

    def split(self, split: str) -> "pd.DataFrame":
        return self.clips[self.clips["split"].astype(str) == split]

    def row(self, clip_id: str) -> dict[str, Any]:
        rows = self.clips[self.clips["clip_id"] == clip_id]
        if rows.empty:
            raise DatasetError(f"{self.dataset.path('clips')}: no usable clip {clip_id!r}")
        return rows.iloc[0].to_dict()

    def crop_path(self, clip_id: str) -> Path:
        return self.dataset.crop(clip_id)

    def read_crop(self, clip_id: str) -> np.ndarray:
        """The aligned crop video: (T, 256, 256, 3) uint8 at 25 fps."""
        return self.dataset.crop_frames(clip_id)

    def read_first_frame(self, clip_id: str) -> np.ndarray:
        return self.dataset.first_crop_frame(clip_id)

    def read_audio(self, clip_id: str) -> np.ndarray | None:
        """The clip's audio (16 kHz mono float32) on its crop video's timeline: the crop's own
        track, else its audio file (the manifest's ``audio_path``)."""
        self.dataset.crop(clip_id)  # a missing crop is an error, not missing audio
        return self.dataset.crop_audio(clip_id, fallback=self.row(clip_id).get("audio_path"))

    def read_table(self, part: str, clip_id: str, columns: list[str] | None = None) -> "pd.DataFrame":
        """``frames``/``audio``/``coeffs`` parquet of one clip."""
        return self.dataset.read_table(part, clip_id, columns)

    def audio_features(self, clip_id: str) -> np.ndarray:
        """Per-video-frame MFCCs of a clip: (T, 39) float32 (from ``audio/{clip_id}.parquet``)."""
        table = self.read_table("audio", clip_id, columns=["frame", "mfcc"])
        table = table.sort_values("frame")
        return np.stack([np.asarray(v, np.float32) for v in table["mfcc"]]) if len(table) else np.zeros((0, 39), np.float32)

    def crop_landmarks(self, clip_id: str, tracker: Any = None) -> np.ndarray:
        """Per-frame landmarks in crop pixels: (T, 478, 2) float32, NaN where no face.

        The prepared frames table holds landmarks in source-video pixels; methods that warp the
        256x256 crops need them in crop pixels, so they are tracked on the crop itself
        (MediaPipe, through :class:`lesbench.extract.face.FaceTracker`) and cached.
        """
        cache = None
        if self.cache_dir is not None:
            cache = self.cache_dir / "crop_landmarks" / f"{clip_id}.npy"
            if cache.is_file():
                return np.load(cache)
        if tracker is None:
            tracker = FaceTracker()
        df = tracker.track(iter_frames(self.crop_path(clip_id), fps=schema.FPS), fps=schema.FPS)
        n = len(df)
        out = np.full((n, schema.N_LANDMARKS, 2), np.nan, np.float32)
        for i, (has_face, lm) in enumerate(zip(df["face"], df["landmarks"])):
            if bool(has_face) and lm is not None:
                arr = np.asarray(lm, np.float32).reshape(schema.N_LANDMARKS, 3)
                out[i] = arr[:, :2]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, out)
            tmp.replace(cache)
        return out


def fill_missing(track: np.ndarray) -> np.ndarray:
    """Fill NaN frames of a (T, ...) track with the nearest valid frame (forward, then back).

    Raises :class:`LesbenchError` when no frame is valid.
    """
    track = np.array(track, copy=True)
    valid = np.isfinite(track.reshape(len(track), -1)).all(axis=1)
    if not valid.any():
        raise LesbenchError("no frame with a face in the track")
    idx = np.where(valid, np.arange(len(track)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.argmax(valid))
    idx[idx < 0] = first
    return track[idx]


def fit_length(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """Trim or pad (repeating the last frame) a (T, ...) array to ``n_frames``."""
    if len(frames) == 0:
        raise LesbenchError("cannot fit an empty clip to a length")
    if len(frames) >= n_frames:
        return frames[:n_frames]
    pad = np.repeat(frames[-1:], n_frames - len(frames), axis=0)
    return np.concatenate([frames, pad], axis=0)
