"""The stages of ``lesbench prepare``, as plug-ins, and :data:`PIPELINE`, their one ordered list.

Each stage wraps one extractor and declares ``name``, ``version`` (from the extractor's module,
bumped whenever its output can change), the model files it uses (names known to
:mod:`lesbench.weights`) and its ``scope``: ``"clip"`` stages run inside each clip's task, in
pipeline order, each reading what the earlier ones left in the clip's :class:`ClipWork` and
writing its outputs through :class:`~lesbench.prepared.PreparedDataset`; ``"dataset"`` stages run
once every clip is through (``coeffs`` fits the linear face model on the train split, then
projects every clip). Heavy resources (the MediaPipe landmarker) are made in :meth:`Stage.setup`,
once per worker process, never per clip or frame.

Everything that lists stages derives from :data:`PIPELINE`: the per-clip work
(:mod:`lesbench.pipelines.prepare_clip`), the manifest's version and timing columns
(:mod:`lesbench.pipelines.manifest`, in each stage's ``manifest_slot`` order), ``dataset.json``'s
``extractors`` and ``lesbench.registry.STAGES``. A stage's version is recorded in every
manifest row and in the per-clip done-records, so changing it makes ``prepare`` redo exactly
the clips it affects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator

import numpy as np

from lesbench import io, schema, weights
from lesbench.atomic import replacing
from lesbench.errors import MediaError
from lesbench.extract import action_units, audio_features, coeffs_table, crops, face, face_model, frames_table
from lesbench.pipelines.clip_media import FrameTee, load_clip_audio, timing_notes
from lesbench.pipelines.prepare_config import PrepareConfig, writing
from lesbench.prepared import PreparedDataset
from lesbench.weights import file_sha256  # the one hasher: cached per path, size, mtime

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa


def resolve_weight(name: str) -> Path:
    """Path of a registered model file, through :func:`lesbench.weights.resolve` (sha256-checked)."""
    return Path(weights.resolve(name))


@dataclass
class ClipWork:
    """One clip on its way through the per-clip stages: its manifest ``row`` (filled in as they
    run), the files written so far, the problems found (``(status, message)``), and what each
    stage leaves for the next: the probe (``media``), the decode size, the frames kept for the
    crops (``tee``), the frames table, the face flags ``(T,)`` bool and the audio samples
    (float32 mono at ``config.sample_rate``)."""

    clip: schema.Clip
    data: PreparedDataset
    config: PrepareConfig
    row: dict[str, Any]
    #: the run lease's check, called before every write (raises once the run is gone)
    check: Callable[[], None]
    written: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    media: io.MediaInfo | None = None
    decode_size: tuple[int, int] | None = None
    tee: FrameTee | None = None
    frames: "pd.DataFrame | None" = None
    face: np.ndarray | None = None
    samples: np.ndarray | None = None

    @property
    def has_face(self) -> bool:
        """Whether enough frames show a face for crops and coefficients."""
        return self.face is not None and (self.row["face_ratio"] or 0.0) >= self.config.min_face_ratio

    def write_table(self, kind: str, table: "pa.Table") -> None:
        """Write this clip's ``kind`` table (frames, audio) once the lease is still held."""
        self.check()
        target = self.data.clip_file(kind, self.clip.clip_id)
        with writing(target):
            self.written.append(self.data.write_table(kind, self.clip.clip_id, table))


class Stage:
    """Base of every prepare stage.

    Subclasses set ``name``, ``version``, ``weights``, ``scope`` and ``manifest_slot``; clip
    stages implement :meth:`run` (and :meth:`applies` when they are not for every clip);
    :meth:`setup` creates per-worker resources.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    #: Model files (``lesbench.weights`` names) whose sha256 goes into ``dataset.json``.
    weights: ClassVar[tuple[str, ...]] = ()
    #: ``"clip"``: runs in each clip's task; ``"dataset"``: runs once all clips are through.
    scope: ClassVar[str] = "clip"
    #: Position of the stage's ``version_*`` and ``time_*_s`` columns in ``clips.parquet``
    #: (the manifest's column order predates the pipeline's and is kept so its files stay
    #: byte-identical: crops come before audio there).
    manifest_slot: ClassVar[int] = 0

    @classmethod
    def from_config(cls, config: PrepareConfig) -> "Stage":
        """The stage set up for a run with ``config``."""
        return cls()

    def setup(self) -> None:
        """Create heavy resources (called once per worker, before the first clip)."""

    def close(self) -> None:
        """Free what :meth:`setup` made."""

    def applies(self, work: ClipWork) -> bool:
        """Whether this stage runs on the clip (given what the earlier stages found)."""
        return True

    def run(self, work: ClipWork) -> None:
        """Do this stage's part of one clip (clip stages only)."""
        raise NotImplementedError(f"stage {self.name!r} does not run per clip")

    def describe(self, resolve: bool = True) -> dict[str, Any]:
        """Provenance for ``dataset.json``: name, version, and each model file's sha256."""
        files = []
        for w in self.weights:
            entry: dict[str, Any] = {"name": w}
            if resolve:
                path = resolve_weight(w)
                entry.update(path=str(path), sha256=file_sha256(path))
            files.append(entry)
        return {"name": self.name, "version": self.version, "class": type(self).__qualname__,
                "weights": files}


class FaceStage(Stage):
    """MediaPipe FaceLandmarker (VIDEO mode) over a clip: landmarks, blendshapes, pose, bbox."""

    name = "face"
    version = frames_table.VERSION
    weights = ("mediapipe-face-landmarker",)
    manifest_slot = 0

    def __init__(self, device: str | None = None, analysis_size: int | None = 640) -> None:
        self.device = device
        self.analysis_size = analysis_size
        self._tracker = None

    @classmethod
    def from_config(cls, config: PrepareConfig) -> "FaceStage":
        return cls(device=config.device, analysis_size=config.analysis_size)

    def setup(self) -> None:
        if self._tracker is None:
            self._tracker = face.FaceTracker(device=self.device, model_path=resolve_weight(self.weights[0]))

    def process(self, frames: Iterable[Any], fps: float, source_size: tuple[int, int]) -> "pd.DataFrame":
        """Frames table of one clip (no ``clip_id``); landmarks in source-frame pixels.

        ``frames``: ``lesbench.io.Frame`` records, possibly decoded smaller than ``source_size``
        (``(width, height)`` of the source video).
        """
        self.setup()
        return self._tracker.track(frames, fps=fps, analysis_size=self.analysis_size,
                                   source_size=source_size)

    def run(self, work: ClipWork) -> None:
        """Probe the video, decode it once (resampled to ``fps``, at the work size) and track
        the face; refuses a video without a picture, a truncated one, or one with no frame."""
        c = work.config
        video = Path(work.clip.video_path)
        info = io.probe(video)
        if not info.has_video:
            raise MediaError(video, "no video stream", "no_video_stream")
        if info.truncated:  # a cut-off copy: its frames would not match its audio or duration
            raise MediaError(video, f"truncated: holds {info.n_frames} of the {info.declared_n_frames} "
                                    "frames its header declares", "truncated")
        work.row.update(src_fps=float(info.fps), src_width=int(info.width), src_height=int(info.height),
                        vfr=bool(info.vfr), duration_s=float(info.duration_s))
        size = io.fit_within(info.width, info.height, c.work_size)
        work.media = info
        work.decode_size = None if size == (info.width, info.height) else size
        work.tee = FrameTee(io.iter_frames(video, fps=c.fps, size=work.decode_size), c.max_buffer_frames)
        work.frames = self.process(work.tee, fps=c.fps, source_size=(info.width, info.height))
        if len(work.frames) == 0:
            raise MediaError(video, "no frames could be decoded", "decode_error")

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None


class ActionUnitStage(Stage):
    """Named AU intensities from the blendshapes (documented mapping, docs/action_units.md): the
    17 averaged AU01..AU45 and the 26 per-side AU02_L..AU45_R."""

    name = "action-units"
    version = action_units.VERSION
    manifest_slot = 1

    def process(self, frames: "pd.DataFrame") -> "pd.DataFrame":
        """(Re)write the AU columns (averaged and per side) of a frames table from its
        ``blendshapes`` column."""
        bs = (np.stack([np.asarray(v, np.float32) for v in frames["blendshapes"]])
              if len(frames) else np.zeros((0, len(schema.BLENDSHAPE_NAMES)), np.float32))
        aus = action_units.au_from_blendshapes(bs)
        sided = action_units.sided_au_from_blendshapes(bs)
        out = frames.copy()
        for j, au in enumerate(schema.AU_NAMES):
            out[au] = aus[:, j]
        for j, au in enumerate(action_units.SIDED_AU_NAMES):
            out[au] = sided[:, j]
        return out

    def run(self, work: ClipWork) -> None:
        """Add the AUs, write the frames table, and say ``no_face`` below the minimum face ratio."""
        frames = self.process(work.frames)
        work.frames = frames
        work.face = frames["face"].to_numpy(dtype=bool)
        n, ratio = len(frames), float(work.face.mean())
        work.row.update(n_frames=n, face_ratio=ratio)
        work.write_table("frames", frames_table.frames_to_table(frames, work.clip.clip_id))
        if not work.has_face:
            work.problems.append(("no_face", f"{Path(work.clip.video_path)}: face found in {ratio:.0%} of {n} frames "
                                             f"(minimum {work.config.min_face_ratio:.0%})"))


class AudioStage(Stage):
    """16 kHz mono audio -> one row per video frame: 80-bin log-mel, MFCC+deltas, RMS energy."""

    name = "audio"
    version = audio_features.VERSION
    manifest_slot = 3

    def __init__(self, sample_rate: int = 16000, fps: float = 25.0) -> None:
        self.sample_rate = sample_rate
        self.fps = fps

    @classmethod
    def from_config(cls, config: PrepareConfig) -> "AudioStage":
        return cls(sample_rate=config.sample_rate, fps=config.fps)

    def process(self, samples: np.ndarray, n_frames: int, clip_id: str) -> "pa.Table":
        feats = audio_features.audio_features(samples, sr=self.sample_rate, n_frames=n_frames, fps=self.fps)
        return audio_features.audio_to_table(feats, clip_id=clip_id)

    def is_silent(self, samples: np.ndarray) -> bool:
        return bool(audio_features.is_silent(samples, sr=self.sample_rate))

    def run(self, work: ClipWork) -> None:
        """The clip's audio file (else the video's track) -> features table; ``no_audio`` or
        ``silent_audio`` when there is none to speak of; notes on what reading put right."""
        clip, n = work.clip, work.row["n_frames"]
        samples, source, problem = load_clip_audio(clip, work.media, self.sample_rate)
        work.row["audio_source"] = source
        work.row["notes"] = "; ".join(timing_notes(clip, work.media, source, samples, n, self.fps,
                                                   self.sample_rate)) or None
        if samples is None:
            work.problems.append(("no_audio", problem))
            return
        work.samples = samples
        work.row["audio_duration_s"] = len(samples) / self.sample_rate
        work.write_table("audio", self.process(samples, n, clip.clip_id))
        if self.is_silent(samples):
            where = clip.audio_path if source == "file" else f"{Path(clip.video_path)} (audio track)"
            work.problems.append(("silent_audio", f"{where}: audio is silent"))


class CropStage(Stage):
    """Aligned, temporally smoothed 256x256 face crops (similarity transform from stable
    landmarks)."""

    name = "crops"
    version = crops.VERSION
    manifest_slot = 2

    def __init__(self, size: int = 256) -> None:
        self.size = size

    @classmethod
    def from_config(cls, config: PrepareConfig) -> "CropStage":
        return cls(size=config.crop_size)

    def process(self, images: Iterable[np.ndarray], landmarks: np.ndarray, face: np.ndarray,
                source_size: tuple[int, int]) -> Iterator[np.ndarray]:
        """Crops of ``images`` ((H, W, 3) uint8 RGB, in order, possibly decoded smaller than
        the source) from per-frame ``landmarks`` ((T, 478, 3) float32 in SOURCE pixels, NaN
        without a face), ``face`` (T,) bool and ``source_size`` (width, height). Yields
        (size, size, 3) uint8, lazily."""
        aligned, _ = crops.align_clip(images, landmarks, face, size=self.size, source_size=source_size)
        return aligned

    def applies(self, work: ClipWork) -> bool:
        return work.has_face

    def run(self, work: ClipWork) -> None:
        """Cut the crops from the kept frames (or a second decode of a long clip) and write them
        with the clip's audio muxed in, atomically."""
        c, info, n = work.config, work.media, len(work.frames)
        lms = np.stack([np.asarray(v, np.float32) for v in work.frames["landmarks"]]).reshape(n, schema.N_LANDMARKS, 3)
        if work.tee.overflow:
            video = Path(work.clip.video_path)
            images: Iterable[np.ndarray] = (fr.image for fr in io.iter_frames(video, fps=c.fps, size=work.decode_size))
        else:
            images = work.tee.images
        frames = self.process(images, lms, work.face, source_size=(info.width, info.height))
        mux = None
        if work.samples is not None:
            want = n * int(round(c.sample_rate / c.fps))
            mux = np.zeros(want, np.float32)
            mux[: min(want, len(work.samples))] = work.samples[:want]
        target = work.data.clip_file("crops", work.clip.clip_id)
        with writing(target), replacing(target) as tmp:
            io.write_video(tmp, frames, fps=c.fps, audio=mux, sr=c.sample_rate, crf=c.crf,
                           preset=c.crop_preset)
            work.check()  # cancelled meanwhile: the temporary file goes, nothing is recorded
        work.written.append(target)


class CoeffsStage(Stage):
    """Linear face model (docs/design.md): fitted on the train split, then identity / expression /
    pose coefficients per frame for every clip."""

    name = "coeffs"
    version = face_model.VERSION
    scope = "dataset"
    manifest_slot = 4

    def __init__(self, k_id: int = 16, k_exp: int = 32, max_fit_frames: int = 200_000) -> None:
        self.k_id = k_id
        self.k_exp = k_exp
        self.max_fit_frames = max_fit_frames

    def fit(self, frame_files: list[Path], speakers: list[str], clip_ids: list[str],
            n_frames: int | None = None, provenance: dict[str, Any] | None = None) -> face_model.FaceModel:
        """Fit :class:`~lesbench.extract.face_model.FaceModel` on the landmark tracks in
        ``frame_files`` (frames parquet files, read lazily), one identity group per speaker.
        Uses every n-th frame so that at most ``max_fit_frames`` frames enter the fit."""
        step = max(1, -(-(n_frames or 0) // self.max_fit_frames))
        # Identity groups are speakers, always: with a single speaker the model has no identity
        # components (k_id == 0, an empty ``id`` list per row), which is the truth. Grouping by
        # clip instead makes fake "identity" components out of what differs between one
        # person's clips (emotion, level, session), so a clip's id coefficients would carry
        # its emotion into everything conditioned on identity.
        extra = {"clips": list(clip_ids), "identity_groups": "speaker"}
        return face_model.FaceModel.fit(_LandmarkTracks(frame_files), groups=list(speakers), k_id=self.k_id,
                                        k_exp=self.k_exp, frame_step=step,
                                        provenance={**extra, **(provenance or {})})

    def project(self, model: face_model.FaceModel, frames: "pa.Table", clip_id: str) -> "pa.Table":
        """Coefficients table (one row per frame) of one clip's frames table."""
        lms = _landmarks_of(frames)
        return coeffs_table.coeffs_to_table(model.project(lms), clip_id=clip_id,
                                          frames=frames.column("frame").to_numpy())


def _landmarks_of(frames: "pa.Table") -> np.ndarray:
    """(T, 1434) float32 landmarks of a frames table (NaN rows where there is no face)."""
    col = frames.column("landmarks").combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(col), schema.N_LANDMARKS * 3)


class _LandmarkTracks:
    """Lazy sequence of landmark tracks, read from frames parquet files on access."""

    def __init__(self, files: list[Path]) -> None:
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        import pyarrow.parquet as pq

        return _landmarks_of(pq.read_table(self.files[i], columns=["landmarks"]))


#: The pipeline, in the order the stages run (clip stages within each clip, then the data-set
#: stages). Add a stage here and the manifest, ``dataset.json`` and the registry follow.
PIPELINE: tuple[type[Stage], ...] = (FaceStage, ActionUnitStage, AudioStage, CropStage, CoeffsStage)

#: name -> class, in pipeline order (what ``lesbench.registry.STAGES`` lists).
STAGE_CLASSES: dict[str, type[Stage]] = {cls.name: cls for cls in PIPELINE}

#: Stage names in the order of their ``clips.parquet`` columns.
MANIFEST_STAGES: tuple[str, ...] = tuple(cls.name for cls in sorted(PIPELINE, key=lambda c: c.manifest_slot))


def build_stages(config: PrepareConfig, scope: str | None = None) -> list[Stage]:
    """The pipeline's stages set up for ``config`` (only those of ``scope`` when given), in order."""
    return [cls.from_config(config) for cls in PIPELINE if scope is None or cls.scope == scope]


def describe_stages(config: PrepareConfig) -> list[dict[str, Any]]:
    """``dataset.json``'s ``extractors``: :meth:`Stage.describe` of every stage, in pipeline order."""
    return [stage.describe() for stage in build_stages(config)]
