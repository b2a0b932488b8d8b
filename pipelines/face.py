"""Per-frame face analysis with MediaPipe FaceLandmarker (the ``face`` stage, docs/design.md, docs/action_units.md).

:class:`FaceTracker` wraps ONE FaceLandmarker (tasks API, VIDEO running mode, one face,
blendshapes and facial transformation matrices on) that is created once and reused for every
clip a worker processes. :meth:`FaceTracker.track` turns a clip's frames into the frames table
(one row per frame, no ``clip_id``); :func:`frames_schema` gives the exact Arrow types the
pipeline writes and :func:`frames_to_table` converts.

Columns (``frame_columns()``):

- ``frame`` int32, ``t`` float64 seconds, ``face`` bool
- ``bbox`` (4,) float32 ``x0, y0, x1, y1``: extent of the 478 landmarks, source-frame pixels
- ``yaw``, ``pitch``, ``roll`` float32 degrees, from the rotation part ``R`` of MediaPipe's facial
  transformation matrix (canonical face model -> camera; camera x right, y up, z towards the
  viewer). Decomposition ``R = Ry(yaw) @ Rx(-pitch) @ Rz(roll)``:
  ``yaw = atan2(R[0,2], R[2,2])`` > 0 when the face turns towards the image's right side
  (the subject's left); ``pitch = asin(R[1,2])`` > 0 when the face looks up;
  ``roll = atan2(R[1,0], R[1,1])`` > 0 when the head tilts counter-clockwise as seen in the image.
- ``tx``, ``ty``, ``tz`` float32: translation of that matrix, centimetres in MediaPipe's metric
  camera space (``tz`` < 0: the face is in front of the camera).
- ``scale`` float32: face size in source pixels = 3D distance between the outer eye corners
  (landmarks 33 and 263) using the x, y, z landmark coordinates, so it does not shrink when
  the head turns.
- ``landmarks`` (1434,) float32 = 478 x (x, y, z) flattened: x, y in pixels of the SOURCE frame
  (also when the analysis ran on a downscaled copy), z in the same pixel scale as x
  (MediaPipe's z is normalised by the image width).
- ``blendshapes`` (52,) float32 in ``schema.BLENDSHAPE_NAMES`` order (checked against
  MediaPipe's category names on every frame).
- ``AU01`` ... ``AU45`` float32 in [0, 1], from :func:`~lesbench.pipelines.action_units.au_from_blendshapes`.

Frames without a face have ``face = False`` and NaN in every number.

MediaPipe's C++ logging: creating a landmarker makes MediaPipe and TF Lite write about five
lines straight to the process's stderr (``WARNING: Logging before InitGoogle()``, ``INFO:
Created TensorFlow Lite XNNPACK delegate``, ``W0000 ... inference_feedback_manager.cc``...),
in every worker process, through progress bars. Environment variables do not stop them
(measured: ``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL`` leave all five), so
:func:`quiet_native_stderr` points file descriptor 2 at a temporary file while the landmarker
is created, then drops the known routine lines and shows anything else once, prefixed
``lesbench: MediaPipe:``. ``LESBENCH_VERBOSE=1`` (``lesbench --verbose``) leaves stderr alone.

Timestamps: VIDEO mode requires strictly increasing timestamps over the landmarker's life.
The tracker keeps a running millisecond offset across clips, and before each new clip it feeds
one blank frame so MediaPipe drops its tracking state; a clip's output is therefore the same
whichever clips the tracker processed before (tested).
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import tempfile
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.schema import AU_NAMES, BLENDSHAPE_NAMES, N_LANDMARKS
from lesbench.pipelines.action_units import au_from_blendshapes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

#: Stage version: bump when the frames table's content can change.
VERSION = "1"

#: Default longest image side used for analysis by :func:`analyze_video` (docs/design.md, performance: landmarks
#: from a 640x360 copy of 1080p differ from full resolution by ~0.4% of the eye distance while
#: decoding + wrapping get much cheaper). Sources smaller than this are analysed as they are.
DEFAULT_ANALYSIS_SIZE = 640

N_BLENDSHAPES = len(BLENDSHAPE_NAMES)
LANDMARK_DIM = N_LANDMARKS * 3
#: Outer eye corners in MediaPipe's 478-point topology (subject's right, subject's left).
OUTER_EYE_CORNERS = (33, 263)

FRAME_SCALAR_FLOAT_COLUMNS: tuple[str, ...] = ("yaw", "pitch", "roll", "tx", "ty", "tz", "scale")


def frame_columns(with_clip_id: bool = False) -> list[str]:
    """Column names of the frames table, in order."""
    cols = ["frame", "t", "face", "bbox", *FRAME_SCALAR_FLOAT_COLUMNS, "landmarks", "blendshapes", *AU_NAMES]
    return (["clip_id"] if with_clip_id else []) + cols


def frames_schema(with_clip_id: bool = True) -> "pa.Schema":
    """Exact Arrow schema of ``frames/{clip_id}.parquet`` (docs/design.md).

    ``landmarks`` and ``blendshapes`` carry their layout as field metadata.
    """
    import pyarrow as pa

    f32 = pa.float32()
    fields = [
        pa.field("frame", pa.int32(), nullable=False),
        pa.field("t", pa.float64(), nullable=False),
        pa.field("face", pa.bool_(), nullable=False),
        pa.field("bbox", pa.list_(f32, 4), metadata={"layout": "x0,y0,x1,y1", "unit": "px"}),
        *[pa.field(c, f32) for c in FRAME_SCALAR_FLOAT_COLUMNS],
        pa.field(
            "landmarks",
            pa.list_(f32, LANDMARK_DIM),
            metadata={"layout": f"{N_LANDMARKS}x3 row-major (x,y,z)", "unit": "px (source frame)"},
        ),
        pa.field("blendshapes", pa.list_(f32, N_BLENDSHAPES), metadata={"names": ",".join(BLENDSHAPE_NAMES)}),
        *[pa.field(au, f32) for au in AU_NAMES],
    ]
    if with_clip_id:
        fields.insert(0, pa.field("clip_id", pa.string(), nullable=False))
    return pa.schema(fields, metadata={"stage": "face", "stage_version": VERSION})


def frames_to_table(df: "pd.DataFrame", clip_id: str | None = None) -> "pa.Table":
    """Convert :meth:`FaceTracker.track`'s DataFrame to an Arrow table with :func:`frames_schema`.

    Args:
        df: frames DataFrame (the ``clip_id`` column optional).
        clip_id: written to every row when given (required when ``df`` has no ``clip_id``
            and the clip_id column is wanted; with ``None`` and no column, the table has none).
    """
    import pyarrow as pa

    with_id = clip_id is not None or "clip_id" in df.columns
    schema = frames_schema(with_clip_id=with_id)
    n = len(df)
    arrays: list[pa.Array] = []
    for field in schema:
        name = field.name
        if name == "clip_id":
            values = [clip_id] * n if clip_id is not None else df["clip_id"].astype(str).tolist()
            arrays.append(pa.array(values, type=pa.string()))
        elif pa.types.is_fixed_size_list(field.type):
            width = field.type.list_size
            flat = _stack_column(df[name], width).reshape(-1)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), width))
        else:
            arrays.append(pa.array(df[name].to_numpy(), type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _stack_column(col: "pd.Series", width: int) -> np.ndarray:
    if len(col) == 0:
        return np.zeros((0, width), np.float32)
    return np.stack([np.asarray(v, dtype=np.float32).reshape(width) for v in col])


# --------------------------------------------------------------------------------------------
# Model file
# --------------------------------------------------------------------------------------------


def landmarker_model_path(path: str | Path | None = None) -> Path:
    """Path of MediaPipe's ``face_landmarker.task``, through
    ``lesbench.weights.resolve("mediapipe-face-landmarker", path)`` (explicit path -> cache ->
    installed package -> download; sha256-checked)."""
    from lesbench import weights

    return Path(weights.resolve("mediapipe-face-landmarker", path))


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def euler_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a 3x3 rotation (see the module docstring).

    The matrix is first projected to the nearest rotation (SVD), so a scaled or slightly
    non-orthogonal input is fine.
    """
    u, _, vt = np.linalg.svd(np.asarray(rotation, dtype=np.float64))
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    yaw = math.degrees(math.atan2(r[0, 2], r[2, 2]))
    pitch = math.degrees(math.asin(float(np.clip(r[1, 2], -1.0, 1.0))))
    roll = math.degrees(math.atan2(r[1, 0], r[1, 1]))
    return yaw, pitch, roll


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Inverse of :func:`euler_from_rotation`: ``Ry(yaw) @ Rx(-pitch) @ Rz(roll)`` (degrees)."""
    a, b, c = (math.radians(v) for v in (yaw, -pitch, roll))
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


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


def analysis_shape(width: int, height: int, analysis_size: int | None) -> tuple[int, int]:
    """(w, h) to analyse a ``width x height`` frame at: longest side ``analysis_size`` at most,
    aspect kept, even sizes; unchanged when already small enough or ``analysis_size`` is None."""
    longest = max(width, height)
    if analysis_size is None or longest <= analysis_size:
        return width, height
    f = analysis_size / longest
    return max(2, int(round(width * f / 2)) * 2), max(2, int(round(height * f / 2)) * 2)


# --------------------------------------------------------------------------------------------
# Tracker
# --------------------------------------------------------------------------------------------


#: Lines MediaPipe / TF Lite print while a landmarker is created that say nothing a user can
#: act on (glog info lines of any source file, and these known warnings).
_ROUTINE_NATIVE_LINE = re.compile(
    r"^I\d{4} |Logging before InitGoogle|Created TensorFlow Lite XNNPACK delegate|"
    r"inference_feedback_manager\.cc|face_landmarker_graph\.cc:\d+\] Sets FaceBlendshapesGraph acceleration|"
    r"gl_context|GL version|Successfully initialized EGL")
#: glog's line prefix: severity, date, time, thread, ``file:line]``.
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ (?P<where>[^\]]+)\] ")


def native_logs_verbose() -> bool:
    """True when ``LESBENCH_VERBOSE`` is set (``lesbench --verbose`` sets it for workers too)."""
    return os.environ.get("LESBENCH_VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


@functools.lru_cache(maxsize=None)
def _say_once(line: str) -> None:
    """Show one kept native line, once per process (every worker creates a landmarker)."""
    print(line, file=sys.stderr, flush=True)


def filter_native_lines(text: str) -> list[str]:
    """The lines of ``text`` worth showing, in lesbench's words: routine lines dropped, glog
    prefixes (severity, time, thread) replaced by ``lesbench: MediaPipe:`` and the source file."""
    kept = []
    for line in text.splitlines():
        if not line.strip() or _ROUTINE_NATIVE_LINE.search(line):
            continue
        m = _GLOG_PREFIX.match(line)
        kept.append(f"lesbench: MediaPipe ({m.group('where')}): {line[m.end():]}" if m else line)
    return kept


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 during the block; afterwards show
    only lines that are not routine (:func:`filter_native_lines`), each once per process.

    Python's own writes to ``sys.stderr`` in the block are captured too and shown afterwards
    unchanged (unless routine); nothing is lost, only delayed. No-op when
    :func:`native_logs_verbose` or when file descriptor 2 cannot be duplicated.
    """
    if native_logs_verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (closed, embedded interpreter)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in filter_native_lines(capture.read().decode("utf-8", "replace")):
                _say_once(line)


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
            aw, ah = analysis_shape(w, h, analysis_size)
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
        return _assemble(index, times, has_face, lm_buf[:n], bs_buf[:n], pose_buf[:n], bbox_buf[:n])


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


def _assemble(
    index: list[int],
    times: list[float],
    has_face: list[bool],
    lms: np.ndarray,
    bss: np.ndarray,
    poses: np.ndarray,
    bboxes: np.ndarray,
) -> "pd.DataFrame":
    import pandas as pd

    aus = au_from_blendshapes(bss)
    data: dict[str, Any] = {
        "frame": np.asarray(index, dtype=np.int32),
        "t": np.asarray(times, dtype=np.float64),
        "face": np.asarray(has_face, dtype=bool),
        "bbox": list(bboxes),
    }
    for j, name in enumerate(FRAME_SCALAR_FLOAT_COLUMNS):
        data[name] = poses[:, j].astype(np.float32)
    data["landmarks"] = list(lms)
    data["blendshapes"] = list(bss)
    for j, name in enumerate(AU_NAMES):
        data[name] = aus[:, j]
    return pd.DataFrame(data, columns=frame_columns())


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
    from lesbench import io

    from lesbench.errors import MediaError

    info = io.probe(path, count_frames=False)
    if not info.has_video:
        raise MediaError(path, "no video stream", kind="no_video_stream")
    size = analysis_shape(info.width, info.height, analysis_size)
    decode_size = None if size == (info.width, info.height) else size
    own = tracker is None
    tracker = tracker or FaceTracker()
    try:
        frames = io.iter_frames(path, fps=fps, size=decode_size)
        return tracker.track(frames, fps=fps, source_size=(info.width, info.height))
    finally:
        if own:
            tracker.close()
