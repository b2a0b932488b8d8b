"""The versioned stages of ``lesbench prepare`` (registered in ``lesbench.registry.STAGES``).

Each stage wraps one extractor and declares ``name``, ``version`` (from the extractor's module,
bumped whenever its output can change) and the model files it uses (names known to
:mod:`lesbench.weights`). Heavy resources (the MediaPipe landmarker) are made in
:meth:`Stage.setup`, once per worker process, never per clip or frame. A stage's version is
recorded in every manifest row and in the per-clip done-records, so changing it makes
``prepare`` redo exactly the clips it affects.

Order inside one clip (see :class:`lesbench.pipelines.prepare.ClipProcessor`):
``face`` -> ``action-units`` -> ``audio`` -> ``crops``; then, once the whole data set is
through, ``coeffs`` (fits the linear face model on the train split and projects every clip).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa


from lesbench.weights import file_sha256  # noqa: E402  (the one hasher: cached per path, size, mtime)


def resolve_weight(name: str) -> Path:
    """Path of a registered model file, through :func:`lesbench.weights.resolve` (sha256-checked)."""
    from lesbench import weights

    return Path(weights.resolve(name))


class Stage:
    """Base of every prepare stage.

    Subclasses set ``name``, ``version`` and ``weights`` and implement ``process`` with the
    signature their data needs; :meth:`setup` creates per-worker resources.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    #: Model files (``lesbench.weights`` names) whose sha256 goes into ``dataset.json``.
    weights: ClassVar[tuple[str, ...]] = ()

    def setup(self) -> None:
        """Create heavy resources (called once per worker, before the first clip)."""

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
    weights = ("mediapipe-face-landmarker",)

    def __init__(self, device: str | None = None, analysis_size: int | None = 640) -> None:
        from lesbench.pipelines import frames_table

        self.version = frames_table.VERSION  # type: ignore[misc]
        self.device = device
        self.analysis_size = analysis_size
        self._tracker = None

    def setup(self) -> None:
        if self._tracker is None:
            from lesbench.pipelines.face import FaceTracker

            self._tracker = FaceTracker(device=self.device, model_path=resolve_weight(self.weights[0]))

    def process(self, frames: Iterable[Any], fps: float, source_size: tuple[int, int]) -> "pd.DataFrame":
        """Frames table of one clip (no ``clip_id``); landmarks in source-frame pixels.

        ``frames``: ``lesbench.io.Frame`` records, possibly decoded smaller than ``source_size``
        (``(width, height)`` of the source video).
        """
        self.setup()
        return self._tracker.track(frames, fps=fps, analysis_size=self.analysis_size,
                                   source_size=source_size)

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None


class ActionUnitStage(Stage):
    """Named AU intensities AU01..AU45 from the blendshapes (documented mapping, docs/action_units.md)."""

    name = "action-units"

    def __init__(self) -> None:
        from lesbench.pipelines import action_units

        self.version = action_units.VERSION  # type: ignore[misc]

    def process(self, frames: "pd.DataFrame") -> "pd.DataFrame":
        """(Re)write the AU columns of a frames table from its ``blendshapes`` column."""
        from lesbench.pipelines.action_units import au_from_blendshapes
        from lesbench.schema import AU_NAMES, BLENDSHAPE_NAMES

        bs = (np.stack([np.asarray(v, np.float32) for v in frames["blendshapes"]])
              if len(frames) else np.zeros((0, len(BLENDSHAPE_NAMES)), np.float32))
        aus = au_from_blendshapes(bs)
        out = frames.copy()
        for j, au in enumerate(AU_NAMES):
            out[au] = aus[:, j]
        return out


class AudioStage(Stage):
    """16 kHz mono audio -> one row per video frame: 80-bin log-mel, MFCC+deltas, RMS energy."""

    name = "audio"

    def __init__(self, sample_rate: int = 16000, fps: float = 25.0) -> None:
        from lesbench.pipelines import audio_features

        self.version = audio_features.VERSION  # type: ignore[misc]
        self.sample_rate = sample_rate
        self.fps = fps

    def process(self, samples: np.ndarray, n_frames: int, clip_id: str) -> "pa.Table":
        from lesbench.pipelines.audio_features import audio_features, audio_to_table

        feats = audio_features(samples, sr=self.sample_rate, n_frames=n_frames, fps=self.fps)
        return audio_to_table(feats, clip_id=clip_id)

    def is_silent(self, samples: np.ndarray) -> bool:
        from lesbench.pipelines.audio_features import is_silent

        return bool(is_silent(samples, sr=self.sample_rate))


class CropStage(Stage):
    """Aligned, temporally smoothed 256x256 face crops (similarity transform from stable
    landmarks)."""

    name = "crops"

    def __init__(self, size: int = 256) -> None:
        from lesbench.pipelines import crops

        self.version = crops.VERSION  # type: ignore[misc]
        self.size = size

    def process(self, images: Iterable[np.ndarray], landmarks: np.ndarray, face: np.ndarray,
                source_size: tuple[int, int]) -> Iterator[np.ndarray]:
        """Crops of ``images`` ((H, W, 3) uint8 RGB, in order, possibly decoded smaller than
        the source) from per-frame ``landmarks`` ((T, 478, 3) float32 in SOURCE pixels, NaN
        without a face), ``face`` (T,) bool and ``source_size`` (width, height). Yields
        (size, size, 3) uint8, lazily."""
        from lesbench.pipelines.crops import align_clip

        crops, _ = align_clip(images, landmarks, face, size=self.size, source_size=source_size)
        return crops


class CoeffsStage(Stage):
    """Linear face model (docs/design.md): fitted on the train split, then identity / expression /
    pose coefficients per frame for every clip."""

    name = "coeffs"

    def __init__(self, k_id: int = 16, k_exp: int = 32, max_fit_frames: int = 200_000) -> None:
        from lesbench.pipelines import face_model

        self.version = face_model.VERSION  # type: ignore[misc]
        self.k_id = k_id
        self.k_exp = k_exp
        self.max_fit_frames = max_fit_frames

    def fit(self, frame_files: list[Path], speakers: list[str], clip_ids: list[str],
            n_frames: int | None = None, provenance: dict[str, Any] | None = None) -> Any:
        """Fit :class:`~lesbench.pipelines.face_model.FaceModel` on the landmark tracks in
        ``frame_files`` (frames parquet files, read lazily), one identity group per speaker.
        Uses every n-th frame so that at most ``max_fit_frames`` frames enter the fit."""
        from lesbench.pipelines.face_model import FaceModel

        step = max(1, -(-(n_frames or 0) // self.max_fit_frames))
        # Identity groups are speakers, always: with a single speaker the model has no identity
        # components (k_id == 0, an empty ``id`` list per row), which is the truth. Grouping by
        # clip instead makes fake "identity" components out of what differs between one
        # person's clips (emotion, level, session), so a clip's id coefficients would carry
        # its emotion into everything conditioned on identity.
        extra = {"clips": list(clip_ids), "identity_groups": "speaker"}
        return FaceModel.fit(_LandmarkTracks(frame_files), groups=list(speakers), k_id=self.k_id,
                             k_exp=self.k_exp, frame_step=step, provenance={**extra, **(provenance or {})})

    def project(self, model: Any, frames: "pa.Table", clip_id: str) -> "pa.Table":
        """Coefficients table (one row per frame) of one clip's frames table."""
        from lesbench.pipelines.coeffs_table import coeffs_to_table

        lms = _landmarks_of(frames)
        return coeffs_to_table(model.project(lms), clip_id=clip_id,
                               frames=frames.column("frame").to_numpy())


def _landmarks_of(frames: "pa.Table") -> np.ndarray:
    """(T, 1434) float32 landmarks of a frames table (NaN rows where there is no face)."""
    from lesbench.schema import N_LANDMARKS

    col = frames.column("landmarks").combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(col), N_LANDMARKS * 3)


class _LandmarkTracks:
    """Lazy sequence of landmark tracks, read from frames parquet files on access."""

    def __init__(self, files: list[Path]) -> None:
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        import pyarrow.parquet as pq

        return _landmarks_of(pq.read_table(self.files[i], columns=["landmarks"]))


#: name -> class, in pipeline order (also registered in ``lesbench.registry.STAGES``).
STAGE_CLASSES: dict[str, type[Stage]] = {
    cls.name: cls for cls in (FaceStage, ActionUnitStage, AudioStage, CropStage, CoeffsStage)
}
