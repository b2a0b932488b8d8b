"""Per-frame face analysis with MediaPipe FaceLandmarker (the ``face`` stage, docs/design.md, docs/action_units.md).

:class:`FaceTracker` wraps ONE FaceLandmarker (tasks API, VIDEO running mode, one face,
blendshapes and facial transformation matrices on) that is created once and reused for every
clip a worker processes. :meth:`FaceTracker.track` turns a clip's frames into the frames table
(one row per frame, no ``clip_id``). Its columns, exact Arrow types and conversion are in
:mod:`lesbench.extract.frames_table`, the pose angles' convention in
:mod:`lesbench.extract.head_pose`, the handling of MediaPipe's native start-up
logging in :mod:`lesbench.extract.native_logs`.

Timestamps: VIDEO mode requires strictly increasing timestamps over the landmarker's life.
The tracker keeps a running millisecond offset across clips, and before each new clip it feeds
one blank frame so MediaPipe drops its tracking state; a clip's output is therefore the same
whichever clips the tracker processed before (tested).
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from lesbench import io, weights
from lesbench.errors import LesbenchError, MediaError
from lesbench.schema import BLENDSHAPE_NAMES, N_LANDMARKS
from lesbench.extract.frames_table import LANDMARK_DIM, N_BLENDSHAPES, assemble_frames
from lesbench.extract.head_pose import euler_from_rotation
from lesbench.extract.native_logs import quiet_native_stderr
from lesbench.extract.face_arrays import OUTER_EYE_CORNERS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Default longest image side used for analysis by :func:`analyze_video` (docs/design.md, performance: landmarks
#: from a 640x360 copy of 1080p differ from full resolution by ~0.4% of the eye distance while
#: decoding + wrapping get much cheaper). Sources smaller than this are analysed as they are.
DEFAULT_ANALYSIS_SIZE = 640



# --------------------------------------------------------------------------------------------
# Model file
# --------------------------------------------------------------------------------------------


def landmarker_model_path(path: str | Path | None = None) -> Path:
    """Path of MediaPipe's ``face_landmarker.task``, through
    ``lesbench.weights.resolve("mediapipe-face-landmarker", path)`` (explicit path -> cache ->
    installed package -> download; sha256-checked)."""
    return Path(weights.resolve("mediapipe-face-landmarker", path))


@dataclass(frozen=True)
class _FrameInput:
    index: int
    t: float
    image: np.ndarray


def _as_frames(frames: Iterable[Any], fps: float) -> Iterator[_FrameInput]:
    """Accept ``lesbench.io.Frame`` records (index, t, image) or bare HxWx3 arrays."""
    for k, item in enumerate(frames):
        if isinstance(item, np.ndarray):
            yield _FrameInput(k, k / fps, item)
        else:
            yield _FrameInput(int(item.index), float(item.t), item.image)


# --------------------------------------------------------------------------------------------
# Tracker
# --------------------------------------------------------------------------------------------

class FaceTracker:
    """One MediaPipe FaceLandmarker in VIDEO mode, reused across clips.

    Create one per worker process and call :meth:`track` for each clip. Not thread-safe.

    Args:
        device: ``None``/``"cpu"`` runs on CPU (MediaPipe's XNNPACK delegate, one core);
            ``"gpu"`` asks MediaPipe for its GPU delegate (only where MediaPipe was built with it).
        model_path: explicit ``face_landmarker.task`` (else :func:`landmarker_model_path`).
        min_detection_confidence, min_presence_confidence, min_tracking_confidence: MediaPipe's
            thresholds (its defaults, 0.5).
    """

    #: Milliseconds left between two clips on the landmarker's clock.
    CLIP_GAP_MS = 1000

    def __init__(
        self,
        device: str | None = None,
        model_path: str | Path | None = None,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        import mediapipe as mp
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision

        self._mp = mp
        self.model_path = landmarker_model_path(model_path)
        if device not in (None, "cpu", "gpu"):
            raise LesbenchError(f"FaceTracker: device must be 'cpu' or 'gpu', got {device!r}")
        delegate = (
            mp_tasks.BaseOptions.Delegate.GPU if device == "gpu" else mp_tasks.BaseOptions.Delegate.CPU
        )
        options = vision.FaceLandmarkerOptions(
            base_options=mp_tasks.BaseOptions(model_asset_path=str(self.model_path), delegate=delegate),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=1,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        with quiet_native_stderr():
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._guard = _LandmarkerGuard(self._landmarker)
        # Close the graph before interpreter teardown: MediaPipe dispatches close() through a
        # thread pool that Python shuts down before ordinary atexit handlers run, after which
        # its own __del__ fails noisily. Threading's exit hooks run in reverse order of
        # registration, so registering after the landmarker (and its pool) exist runs ours first.
        # The guard defers the close while a clip is being tracked in another thread (a worker
        # shutting down under a running task): a closed landmarker answers "no face" to every
        # frame without raising, which would pass for a real result.
        self._finalizer = weakref.finalize(self, self._guard.close)
        self._finalizer.atexit = False
        try:
            threading._register_atexit(self._finalizer)  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):  # other Pythons / already shutting down
            self._finalizer.atexit = True
        self._next_ms = 0
        self._blank = np.zeros((64, 64, 3), dtype=np.uint8)
        self.frames_processed = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the landmarker (also done automatically at exit).

        Safe to call from another thread while :meth:`track` runs: that clip then raises
        :class:`TrackerClosedError` at its next frame and the landmarker is released when it
        has stopped, never under a running detection.
        """
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._guard.closed

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- per clip ----------------------------------------------------------------------------
    def _reset_tracking(self) -> None:
        """Feed one blank frame so MediaPipe loses the previous clip's face track."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=self._blank)
        self._landmarker.detect_for_video(image, self._next_ms)
        self._next_ms += self.CLIP_GAP_MS

    def track(
        self,
        frames: Iterable[Any],
        fps: float = 25.0,
        analysis_size: int | None = None,
        source_size: tuple[int, int] | None = None,
    ) -> "pd.DataFrame":
        """Analyse one clip.

        Args:
            frames: ``lesbench.io.Frame`` records (``index``, ``t`` seconds, ``image`` HxWx3
                uint8 RGB) or bare HxWx3 uint8 RGB arrays (then ``t = k / fps``).
            fps: frame rate used for bare arrays.
            analysis_size: if set, frames whose longest side exceeds it are downscaled (area
                interpolation) before MediaPipe; outputs stay in source-frame pixels.
            source_size: ``(width, height)`` of the source video when ``frames`` were already
                decoded at a smaller size (``lesbench.io.iter_frames(size=...)``); landmark and
                bbox pixels are then expressed at ``source_size``. Default: each frame's size.

        Returns:
            DataFrame, one row per frame, columns :func:`frame_columns` (no ``clip_id``).

        Raises:
            TrackerClosedError: the tracker is closed, or was closed during this clip.
        """
        with self._guard.in_use():
            return self._track(frames, fps, analysis_size, source_size)

    def _track(self, frames: Iterable[Any], fps: float, analysis_size: int | None,
               source_size: tuple[int, int] | None) -> "pd.DataFrame":
        import cv2

        mp = self._mp
        guard = self._guard
        self._reset_tracking()
        start_ms = self._next_ms
        n_max_guess = 256
        lm_buf = np.full((n_max_guess, LANDMARK_DIM), np.nan, np.float32)
        bs_buf = np.full((n_max_guess, N_BLENDSHAPES), np.nan, np.float32)
        pose_buf = np.full((n_max_guess, 7), np.nan, np.float32)
        bbox_buf = np.full((n_max_guess, 4), np.nan, np.float32)
        index: list[int] = []
        times: list[float] = []
        has_face: list[bool] = []
        last_ms = start_ms - 1
        for k, fr in enumerate(_as_frames(frames, fps)):
            guard.check()
            if k == lm_buf.shape[0]:
                lm_buf, bs_buf, pose_buf, bbox_buf = (
                    _grow(b) for b in (lm_buf, bs_buf, pose_buf, bbox_buf)
                )
            image = fr.image
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise LesbenchError(
                    f"FaceTracker.track: frame {fr.index} must be HxWx3 uint8 RGB, "
                    f"got shape {image.shape} dtype {image.dtype}"
                )
            h, w = image.shape[:2]
            out_w, out_h = source_size if source_size is not None else (w, h)
            aw, ah = io.fit_within(w, h, analysis_size)
            if (aw, ah) != (w, h):
                image = cv2.resize(image, (aw, ah), interpolation=cv2.INTER_AREA)
            # Strictly increasing ms timestamps even if t repeats or rounds to the same ms.
            ts = max(start_ms + int(round(fr.t * 1000.0)), last_ms + 1)
            last_ms = ts
            result = self._landmarker.detect_for_video(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)), ts
            )
            guard.check()  # closed during this frame: its answer cannot be trusted
            index.append(fr.index)
            times.append(fr.t)
            found = bool(result.face_landmarks)
            has_face.append(found)
            if found:
                _fill_row(result, k, out_w, out_h, lm_buf, bs_buf, pose_buf, bbox_buf)
        self._next_ms = last_ms + self.CLIP_GAP_MS
        n = len(index)
        self.frames_processed += n
        return assemble_frames(index, times, has_face, lm_buf[:n], bs_buf[:n], pose_buf[:n], bbox_buf[:n])


class TrackerClosedError(LesbenchError):
    """The tracker was closed before or while a clip was being tracked: the clip has no result
    (never a "no face" one)."""


class _LandmarkerGuard:
    """Closes a landmarker exactly once, and never while a clip is using it.

    ``close()`` marks it closed; if a clip is running, the real close happens when that clip
    leaves :meth:`in_use`, and the clip's next :meth:`check` raises.
    """

    def __init__(self, landmarker: Any) -> None:
        self._landmarker = landmarker
        self._lock = threading.Lock()
        self._users = 0
        self.closed = False
        self._released = False

    def check(self) -> None:
        if self.closed:
            raise TrackerClosedError("FaceTracker was closed while tracking a clip (the worker is shutting "
                                     "down); the clip has no result")

    @contextmanager
    def in_use(self) -> Iterator[None]:
        with self._lock:
            self.check()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                release = self.closed and self._users == 0 and not self._released
                self._released = self._released or release
            if release:
                self._landmarker.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            release = self._users == 0 and not self._released
            self._released = self._released or release
        if release:
            self._landmarker.close()


def _grow(buf: np.ndarray) -> np.ndarray:
    extra = np.full_like(buf, np.nan)
    return np.concatenate([buf, extra])


def _fill_row(
    result: Any,
    k: int,
    out_w: int,
    out_h: int,
    lm_buf: np.ndarray,
    bs_buf: np.ndarray,
    pose_buf: np.ndarray,
    bbox_buf: np.ndarray,
) -> None:
    pts = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]], dtype=np.float32)
    if pts.shape[0] != N_LANDMARKS:
        raise LesbenchError(f"MediaPipe returned {pts.shape[0]} landmarks, expected {N_LANDMARKS}")
    pts[:, 0] *= out_w
    pts[:, 1] *= out_h
    pts[:, 2] *= out_w  # MediaPipe's z uses roughly the same normalisation as x
    lm_buf[k] = pts.reshape(-1)
    bbox_buf[k] = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
    cats = result.face_blendshapes[0] if result.face_blendshapes else []
    if len(cats) == N_BLENDSHAPES:
        for j, cat in enumerate(cats):
            if cat.category_name != BLENDSHAPE_NAMES[j]:
                raise LesbenchError(
                    f"MediaPipe blendshape {j} is {cat.category_name!r}, lesbench expects "
                    f"{BLENDSHAPE_NAMES[j]!r}: update lesbench.schema.BLENDSHAPE_NAMES"
                )
            bs_buf[k, j] = cat.score
    if result.facial_transformation_matrixes:
        m = np.asarray(result.facial_transformation_matrixes[0], dtype=np.float64).reshape(4, 4)
        yaw, pitch, roll = euler_from_rotation(m[:3, :3])
        a, b = OUTER_EYE_CORNERS
        scale = float(np.linalg.norm(pts[a] - pts[b]))
        pose_buf[k] = (yaw, pitch, roll, m[0, 3], m[1, 3], m[2, 3], scale)


def analyze_video(
    path: str | Path,
    fps: float = 25.0,
    analysis_size: int | None = DEFAULT_ANALYSIS_SIZE,
    tracker: FaceTracker | None = None,
) -> "pd.DataFrame":
    """Frames table of one video file: ``lesbench.io.iter_frames`` + :meth:`FaceTracker.track`.

    Frames are resampled to ``fps`` by timestamp and, when the source is larger than
    ``analysis_size`` (longest side), decoded straight at the smaller size (nearly free in
    PyAV); landmarks are still reported in source pixels.

    Args:
        path: video file.
        fps: output frame rate.
        analysis_size: longest side analysed (``None``: full resolution).
        tracker: a tracker to reuse (a new one is made and closed otherwise).

    Raises:
        lesbench.errors.MediaError: the file is missing, not a video, or broken.
    """
    info = io.probe(path, count_frames=False)
    if not info.has_video:
        raise MediaError(path, "no video stream", kind="no_video_stream")
    size = io.fit_within(info.width, info.height, analysis_size)
    decode_size = None if size == (info.width, info.height) else size
    own = tracker is None
    tracker = tracker or FaceTracker()
    try:
        frames = io.iter_frames(path, fps=fps, size=decode_size)
        return tracker.track(frames, fps=fps, source_size=(info.width, info.height))
    finally:
        if own:
            tracker.close()
