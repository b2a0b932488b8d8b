"""``lesbench prepare``: a data-set root -> the prepared data set of docs/design.md, on Dask.

Pass 1, one task per clip (:meth:`ClipProcessor.prepare_clip`): probe; decode the video once,
resampled by timestamp to 25 fps and, for large sources, decoded straight at ``work_size``
(longest side; the resize is nearly free inside the colour conversion); the face stage
(MediaPipe, one landmarker per worker process) -> action units -> ``frames/{id}.parquet``;
audio (the clip's audio file, else the video's own track) -> 16 kHz features, one row per
video frame -> ``audio/{id}.parquet``; the decoded frames, kept for the clip only, -> aligned
256x256 crops with the audio muxed -> ``crops/{id}.mp4``. Every clip returns exactly one
manifest row, whatever happens to it.

Pass 2 (after every clip): fit the linear face model on the train split's usable clips (or load
``face_model=``), write ``face_model.npz``, and project every clip with a face to
``coeffs/{id}.parquet``.

Then ``clips.parquet`` (one row per clip found, sorted by clip_id) and ``dataset.json``.

Robustness: writes are atomic (temp + rename, see :mod:`lesbench.pipelines.manifest`); a clip's
done-record is written after its outputs, so an interrupted run redoes exactly the clips without
a valid record; stale temp files are removed at start; results do not depend on worker count
or task order (each clip is computed independently, the tracker is reset per clip, rows are
sorted). Memory per worker is one clip's frames at ``work_size`` (clips longer than
``max_buffer_frames`` are decoded a second time for the crops instead of being held).

Interruptions and failures (docs/prepare-interruptions.md): tasks check the run's
:class:`RunLease` before every write, and an interrupted run revokes it before shutting its
cluster down, so no clip still running then is recorded as done; a landmarker is never closed
under a running clip (the clip raises instead). Ctrl-C / SIGTERM raise
:class:`~lesbench.errors.Interrupted`; outputs that cannot be written (disk full) make failed
rows, and the manifest is still written; arguments that cannot work raise
:class:`~lesbench.errors.UsageError` before any work.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from lesbench import schema
from lesbench.cluster import make_local_cluster, map_as_completed  # make_local_cluster: re-exported (bench, tests)
from lesbench.errors import DatasetError, Interrupted, LesbenchError, MediaError, OutputWriteError, UsageError
from lesbench.pipelines import manifest as mf

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

#: A container audio offset at least this large (seconds) is noted in the clip's row.
AUDIO_OFFSET_NOTE_S = 0.001
#: Audio that ends at least this long (seconds; 5 frames at 25 fps) before the video is noted.
SHORT_AUDIO_NOTE_S = 0.2
#: Statuses whose clips have a usable face track (crops and coefficients are written).
FACE_STATUSES = ("ok", "no_audio", "silent_audio")


@dataclass(frozen=True)
class PrepareConfig:
    """Per-clip settings; all of them (but ``device``) change the outputs, so their hash is part
    of every done-record.

    fps: output frame rate (frames are resampled by timestamp). sample_rate: audio rate, Hz.
    work_size: longest side (px) frames are decoded at when the source is larger; landmarks are
    still reported in source pixels, crops are cut from these frames. analysis_size: longest
    side the landmarker sees. crop_size: side of the aligned crops. min_face_ratio: below this
    fraction of frames with a face, a clip is ``no_face``. max_buffer_frames: longest clip held
    in memory for the crops (longer ones are decoded twice). crf, crop_preset: x264 quality and
    speed preset of the crops. ``superfast`` (measured on 256x256 demo crops at crf 18: 0.7 ms per
    frame, 1.2 kB per frame, PSNR 41.1 dB) over ``veryfast`` (1.2 ms, 0.74 kB, 40.5 dB) and
    ``medium`` (~8x slower): the encoder was the largest cost of prepare beyond decoding and
    landmarks.
    """

    fps: float = float(schema.FPS)
    sample_rate: int = schema.SAMPLE_RATE
    work_size: int | None = 640
    analysis_size: int | None = 640
    crop_size: int = schema.CROP_SIZE
    min_face_ratio: float = 0.5
    max_buffer_frames: int = 750
    crf: int = 18
    crop_preset: str = "superfast"
    device: str | None = None

    def __post_init__(self) -> None:
        # refused here, before any clip is read: a bad value would otherwise fail every clip
        # (fps 0 divides by zero) or silently mean something else (a negative size)
        def positive(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value <= 0):
                raise UsageError(f"{name} must be a positive number, got {value!r}")

        positive("fps", self.fps)
        positive("sample_rate", self.sample_rate)
        positive("work_size", self.work_size, allow_none=True)
        positive("analysis_size", self.analysis_size, allow_none=True)
        positive("crop_size", self.crop_size)
        positive("max_buffer_frames", self.max_buffer_frames)
        if not isinstance(self.min_face_ratio, (int, float)) or not 0.0 <= self.min_face_ratio <= 1.0:
            raise UsageError(f"min_face_ratio must be between 0 and 1, got {self.min_face_ratio!r}")
        if not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise UsageError(f"crf must be an integer from 0 to 51 (x264), got {self.crf!r}")
        if self.device not in (None, "cpu", "gpu"):
            raise UsageError(f"device must be 'cpu' or 'gpu', got {self.device!r}")

    def hash(self) -> str:
        d = asdict(self)
        d.pop("device")
        d.pop("max_buffer_frames")  # memory policy only: same outputs either way
        return mf.config_hash(d)


# ------------------------------------------------------------------------------- per clip


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


#: Key of a manifest row (not a column: never written) set when the clip failed because an
#: output could not be written (disk full...), so the run can say so and exit non-zero.
WRITE_ERROR = "_write_error"


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` (no space left, permissions...) into an
    :class:`OutputWriteError` naming the file and the cause."""
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as exc:
        cause = f"{exc.strerror} (errno {exc.errno})" if exc.errno and exc.strerror else str(exc)
        raise OutputWriteError(f"{path}: could not write: {cause}") from exc


def work_shape(width: int, height: int, work_size: int | None) -> tuple[int, int]:
    """(w, h) to decode a ``width x height`` video at: longest side ``work_size`` at most,
    even sizes, aspect kept; unchanged when already small enough."""
    longest = max(width, height)
    if work_size is None or longest <= work_size:
        return width, height
    f = work_size / longest
    return max(2, int(round(width * f / 2)) * 2), max(2, int(round(height * f / 2)) * 2)


class _FrameTee:
    """Pass frames through while keeping their images (up to ``limit``) for the crop stage."""

    def __init__(self, frames: Iterable[Any], limit: int) -> None:
        self._frames = frames
        self.limit = limit
        self.images: list[np.ndarray] = []
        self.overflow = False

    def __iter__(self) -> Iterator[Any]:
        for fr in self._frames:
            if not self.overflow:
                if len(self.images) < self.limit:
                    self.images.append(fr.image)
                else:  # too long to hold: drop and decode again for the crops
                    self.overflow = True
                    self.images = []
            yield fr


class ClipProcessor:
    """Runs pass 1 on one clip at a time. Create one per worker process and reuse it: the
    MediaPipe landmarker inside is made once (on the first clip)."""

    def __init__(self, config: PrepareConfig | None = None) -> None:
        from lesbench.pipelines.stages import ActionUnitStage, AudioStage, CropStage, FaceStage

        self.config = config or PrepareConfig()
        c = self.config
        self.face = FaceStage(device=c.device, analysis_size=c.analysis_size)
        self.action_units = ActionUnitStage()
        self.audio = AudioStage(sample_rate=c.sample_rate, fps=c.fps)
        self.crops = CropStage(size=c.crop_size)

    @property
    def versions(self) -> dict[str, str]:
        """Versions of the pass-1 stages (keys: stage names)."""
        return {s.name: s.version for s in (self.face, self.action_units, self.audio, self.crops)}

    def close(self) -> None:
        self.face.close()

    # -- the task -------------------------------------------------------------------------
    def prepare_clip(self, clip: schema.Clip, out: str | os.PathLike,
                     lease: "RunLease | None" = None) -> dict[str, Any]:
        """Process one clip into ``out``; returns its manifest row (never raises for bad input).

        A failure caused by the input (:class:`MediaError`) is final for these inputs and gets
        a done-record; any other exception (a bug, a full disk, a tracker closed under the clip)
        is reported in the row but not recorded, so the next run tries the clip again.

        ``lease``: the run's claim on ``out``, checked before the clip starts and before each
        write; once the run is gone (interrupted, or another run took over) this raises
        :class:`RunCancelled` and touches nothing more.
        """
        out = Path(out)
        check = lease.check if lease is not None else (lambda: None)
        check()
        t0 = time.perf_counter()
        row = mf.empty_row(clip.as_row())
        for name, version in self.versions.items():
            row[f"version_{mf.stage_column(name)}"] = version
        timings: dict[str, float] = {}
        written: list[Path] = []
        final = True
        try:
            problems = self._run(clip, out, row, timings, written, check)
        except RunCancelled:
            raise
        except MediaError as exc:
            row["status"], row["error"] = "failed", _one_line(str(exc))
            problems = []
        except OutputWriteError as exc:
            row["status"], row["error"], row[WRITE_ERROR] = "failed", _one_line(str(exc)), True
            problems = []
            final = False
        except Exception as exc:  # noqa: BLE001 - one bad clip never stops the data set
            row["status"] = "failed"
            row["error"] = _one_line(f"{clip.video_path}: {type(exc).__name__}: {exc}")
            problems = []
            final = False
        if row["status"] != "failed":
            statuses = [s for s, _ in problems]
            row["status"] = next((s for s in ("no_face", "no_audio", "silent_audio") if s in statuses), "ok")
            row["error"] = "; ".join(msg for _, msg in problems) or None
        if row["status"] == "failed":
            written = []  # a failed clip has no outputs, not even those written before it failed
        check()
        self._remove_unwritten(out, clip.clip_id, written)
        for name in mf.STAGE_NAMES:
            row[f"time_{mf.stage_column(name)}_s"] = timings.get(name)
        row["time_total_s"] = time.perf_counter() - t0
        if final:
            record = mf.DoneRecord(
                clip_id=clip.clip_id,
                inputs=clip_inputs(clip),
                versions=self.versions,
                config=self.config.hash(),
                outputs=mf.output_sizes(out, written),
                row=row,
                hashes=mf.output_hashes(out, written),
            )
            check()
            try:
                with writing(mf.done_path(out, clip.clip_id)):
                    mf.write_done(out, record)
            except OutputWriteError as exc:  # outputs without a record would be redone anyway
                self._remove_unwritten(out, clip.clip_id, [])
                row.update(status="failed", error=_one_line(str(exc)), **{WRITE_ERROR: True})
        return row

    def _run(self, clip: schema.Clip, out: Path, row: dict, timings: dict, written: list[Path],
             check: Callable[[], None]) -> list[tuple[str, str]]:
        from lesbench import io
        from lesbench.pipelines.frames_table import frames_to_table

        c = self.config
        problems: list[tuple[str, str]] = []
        paths = schema.dataset_paths(out)
        video = Path(clip.video_path)

        # -- probe + face + AUs ----------------------------------------------------------
        t = time.perf_counter()
        info = io.probe(video)
        if not info.has_video:
            raise MediaError(video, "no video stream", "no_video_stream")
        if info.truncated:  # a cut-off copy: its frames would not match its audio or duration
            raise MediaError(video, f"truncated: holds {info.n_frames} of the {info.declared_n_frames} "
                                    "frames its header declares", "truncated")
        row.update(src_fps=float(info.fps), src_width=int(info.width), src_height=int(info.height),
                   vfr=bool(info.vfr), duration_s=float(info.duration_s))
        size = work_shape(info.width, info.height, c.work_size)
        decode_size = None if size == (info.width, info.height) else size
        tee = _FrameTee(io.iter_frames(video, fps=c.fps, size=decode_size), c.max_buffer_frames)
        frames = self.face.process(tee, fps=c.fps, source_size=(info.width, info.height))
        timings["face"] = time.perf_counter() - t
        n = len(frames)
        if n == 0:
            raise MediaError(video, "no frames could be decoded", "decode_error")
        t = time.perf_counter()
        frames = self.action_units.process(frames)
        face = frames["face"].to_numpy(dtype=bool)
        face_ratio = float(face.mean())
        row.update(n_frames=n, face_ratio=face_ratio)
        check()
        target = paths["frames"] / f"{clip.clip_id}.parquet"
        with writing(target):
            written.append(mf.write_parquet(frames_to_table(frames, clip.clip_id), target))
        timings["action-units"] = time.perf_counter() - t
        has_face = face_ratio >= c.min_face_ratio
        if not has_face:
            problems.append(("no_face", f"{video}: face found in {face_ratio:.0%} of {n} frames "
                                        f"(minimum {c.min_face_ratio:.0%})"))

        # -- audio ---------------------------------------------------------------------
        t = time.perf_counter()
        samples, source, audio_problem = self._load_audio(clip, info)
        row["audio_source"] = source
        row["notes"] = "; ".join(self._timing_notes(clip, info, source, samples, n)) or None
        if samples is None:
            problems.append(("no_audio", audio_problem))
        else:
            row["audio_duration_s"] = len(samples) / c.sample_rate
            table = self.audio.process(samples, n, clip.clip_id)
            check()
            target = paths["audio"] / f"{clip.clip_id}.parquet"
            with writing(target):
                written.append(mf.write_parquet(table, target))
            if self.audio.is_silent(samples):
                where = clip.audio_path if source == "file" else f"{video} (audio track)"
                problems.append(("silent_audio", f"{where}: audio is silent"))
        timings["audio"] = time.perf_counter() - t

        # -- crops ---------------------------------------------------------------------
        if has_face:
            t = time.perf_counter()
            lms = np.stack([np.asarray(v, np.float32) for v in frames["landmarks"]]).reshape(n, schema.N_LANDMARKS, 3)
            if tee.overflow:
                images: Iterable[np.ndarray] = (fr.image for fr in io.iter_frames(video, fps=c.fps, size=decode_size))
            else:
                images = tee.images
            crops = self.crops.process(images, lms, face, source_size=(info.width, info.height))
            mux = None
            if samples is not None:
                want = n * int(round(c.sample_rate / c.fps))
                mux = np.zeros(want, np.float32)
                mux[: min(want, len(samples))] = samples[:want]
            target = paths["crops"] / f"{clip.clip_id}.mp4"
            tmp = mf.tmp_path(target).with_suffix(".mp4.tmp")
            try:
                with writing(target):
                    io.write_video(tmp, crops, fps=c.fps, audio=mux, sr=c.sample_rate, crf=c.crf,
                                   preset=c.crop_preset)
                    check()
                    os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            written.append(target)
            timings["crops"] = time.perf_counter() - t
        tee.images = []
        return problems

    def _load_audio(self, clip: schema.Clip, info: Any) -> tuple[np.ndarray | None, str | None, str]:
        """(samples, source, problem): the clip's audio file, else the video's own track, placed
        on the video's timeline (:func:`lesbench.io.read_audio_for_video`)."""
        from lesbench import io

        sr = self.config.sample_rate
        if clip.audio_path:
            try:
                samples = io.read_audio_for_video(clip.video_path, clip.audio_path, sr=sr)
            except MediaError as exc:
                return None, None, _one_line(str(exc))
            if samples.size == 0:
                return None, None, f"{clip.audio_path}: no audio samples"
            return samples, "file", ""
        if not info.has_audio:
            return None, None, f"{clip.video_path}: no audio file for this clip and the video has no audio track"
        try:
            samples = io.read_audio_for_video(clip.video_path, sr=sr)
        except MediaError as exc:
            return None, None, _one_line(str(exc))
        if samples.size == 0:
            return None, None, f"{clip.video_path}: audio track holds no samples"
        return samples, "video", ""

    def _timing_notes(self, clip: schema.Clip, info: Any, source: str | None, samples: np.ndarray | None,
                      n_frames: int) -> list[str]:
        """What reading put right without failing the clip: a rotated picture, a container audio
        offset, audio that ends well before the picture (its frames get silence features)."""
        from lesbench import io

        c = self.config
        notes = []
        if info.reoriented:
            how = f"turned {info.rotation} degrees counter-clockwise" + (" and mirrored" if info.mirrored else "")
            notes.append(f"{clip.video_path}: rotation metadata applied, frames {how} "
                         f"({info.coded_width}x{info.coded_height} stored, {info.width}x{info.height} upright)")
        if samples is None:
            return notes
        audio = clip.audio_path if source == "file" else clip.video_path
        start = info.audio_start_s
        if source == "file":
            try:
                start = io.probe(audio).audio_start_s
            except MediaError:  # it was just read; a note never fails the clip
                start = None
        if start is not None and abs(start) >= AUDIO_OFFSET_NOTE_S:
            notes.append(f"{audio}: container audio offset applied, audio starts {abs(start):.3f} s "
                         f"{'after' if start > 0 else 'before'} the first video frame")
        video_s, audio_s = n_frames / c.fps, len(samples) / c.sample_rate
        if video_s - audio_s >= SHORT_AUDIO_NOTE_S:
            notes.append(f"{audio}: audio ends {video_s - audio_s:.2f} s before the video ({audio_s:.2f} s "
                         f"of {video_s:.2f} s); the frames after it get silence audio features")
        return notes

    @staticmethod
    def _remove_unwritten(out: Path, clip_id: str, written: list[Path]) -> None:
        """Delete this clip's outputs from an earlier run that this run did not write (a clip
        that used to have a face, audio...), and its coefficients (redone in pass 2)."""
        keep = {p.resolve() for p in written}
        paths = schema.dataset_paths(out)
        for kind, suffix in (("frames", ".parquet"), ("audio", ".parquet"), ("crops", ".mp4"), ("coeffs", ".parquet")):
            p = paths[kind] / f"{clip_id}{suffix}"
            if p.exists() and p.resolve() not in keep:
                p.unlink()
        mf.done_path(out, clip_id, "coeffs").unlink(missing_ok=True)


def clip_inputs(clip: schema.Clip) -> dict[str, Any]:
    """The input fingerprint of a clip (size + mtime of its files)."""
    return {
        "video": mf.file_fingerprint(clip.video_path),
        "audio": mf.file_fingerprint(clip.audio_path),
        "video_path": clip.video_path,
        "audio_path": clip.audio_path,
    }


# ------------------------------------------------------------------------ pass 2: coeffs


class CoeffsProcessor:
    """Projects clips onto a fitted linear face model (one per worker, model loaded once)."""

    def __init__(self, model_path: str | os.PathLike, model_sha256: str) -> None:
        from lesbench.pipelines.stages import CoeffsStage

        self.stage = CoeffsStage()
        self.model_path = Path(model_path)
        self.model_sha256 = model_sha256
        self._model = None

    @property
    def model(self):  # noqa: ANN201 - lesbench.pipelines.face_model.FaceModel
        if self._model is None:
            from lesbench.pipelines.face_model import FaceModel

            self._model = FaceModel.load(self.model_path)
        return self._model

    def coeffs_clip(self, clip_id: str, out: str | os.PathLike,
                    lease: "RunLease | None" = None) -> tuple[str, float, str | None, bool]:
        """Write ``coeffs/{clip_id}.parquet``; returns (clip_id, seconds, error or None, whether
        the error was a failed write).
        Raises :class:`RunCancelled` (writing nothing) once ``lease`` is no longer held."""
        import pyarrow.parquet as pq

        out = Path(out)
        check = lease.check if lease is not None else (lambda: None)
        check()
        t0 = time.perf_counter()
        paths = schema.dataset_paths(out)
        src = paths["frames"] / f"{clip_id}.parquet"
        try:
            frames = pq.read_table(src)
            table = self.stage.project(self.model, frames, clip_id)
            check()
            target = paths["coeffs"] / f"{clip_id}.parquet"
            with writing(target):
                mf.write_parquet(table, target)
            check()
            with writing(mf.done_path(out, clip_id, "coeffs")):
                mf.write_done(out, mf.DoneRecord(
                    clip_id=clip_id,
                    inputs={"frames": mf.file_fingerprint(src), "face_model": self.model_sha256},
                    versions={self.stage.name: self.stage.version},
                    config="",
                    outputs=mf.output_sizes(out, [target]),
                    row={},
                    hashes=mf.output_hashes(out, [target]),
                ), part="coeffs")
            return clip_id, time.perf_counter() - t0, None, False
        except RunCancelled:
            raise
        except OutputWriteError as exc:
            return clip_id, time.perf_counter() - t0, _one_line(f"coefficients not written: {exc}"), True
        except Exception as exc:  # noqa: BLE001
            return (clip_id, time.perf_counter() - t0,
                    _one_line(f"{src}: coefficients failed: {type(exc).__name__}: {exc}"), False)


# ----------------------------------------------------------------------------- executors


class _ProcessorPlugin(WorkerPlugin):
    """Dask worker plugin holding this run's per-worker processors (made lazily, in the task's
    thread, on the first clip)."""

    def __init__(self, name: str, config: PrepareConfig) -> None:
        self.name = name
        self.config = config
        self._clip: ClipProcessor | None = None
        self._coeffs: dict[str, CoeffsProcessor] = {}

    def setup(self, worker: Any) -> None:  # WorkerPlugin protocol
        # Make the landmarker now, while the worker starts, so the first clip does not pay for
        # it and a missing model file fails the registration with a clear error.
        self.clip_processor().face.setup()

    def teardown(self, worker: Any) -> None:
        if self._clip is not None:
            self._clip.close()

    def clip_processor(self) -> ClipProcessor:
        if self._clip is None:
            self._clip = ClipProcessor(self.config)
        return self._clip

    def coeffs_processor(self, model_path: str, sha: str) -> CoeffsProcessor:
        if sha not in self._coeffs:
            self._coeffs = {sha: CoeffsProcessor(model_path, sha)}
        return self._coeffs[sha]


class _IgnoreInterrupts(WorkerPlugin):
    """Workers of prepare's own local cluster ignore SIGINT. A terminal's Ctrl-C reaches the
    whole process group; the client then revokes the lease and shuts its workers down, instead
    of each worker dying on its own with a traceback."""

    def setup(self, worker: Any) -> None:  # WorkerPlugin protocol
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_plugin(name: "str | _ProcessorPlugin", config: PrepareConfig) -> _ProcessorPlugin:
    if isinstance(name, _ProcessorPlugin):  # in-process run (scheduler="sync")
        return name
    from distributed import get_worker

    worker = get_worker()
    plugin = worker.plugins.get(name)
    if plugin is None:  # registered plugins reach every worker; this is only a safety net
        plugin = _ProcessorPlugin(name, config)
        worker.plugins[name] = plugin
    return plugin


def _prepare_task(clip: schema.Clip, out: str, config: PrepareConfig, plugin: Any,
                  lease: "RunLease | None" = None) -> dict[str, Any]:
    if lease is not None:
        lease.check()  # before the landmarker is made: a worker left behind takes no new clip
    return _worker_plugin(plugin, config).clip_processor().prepare_clip(clip, out, lease)


def _coeffs_task(clip_id: str, out: str, model_path: str, sha: str, config: PrepareConfig,
                 plugin: Any, lease: "RunLease | None" = None) -> tuple[str, float, str | None, bool]:
    return _worker_plugin(plugin, config).coeffs_processor(model_path, sha).coeffs_clip(clip_id, out, lease)


def dask_scratch_dir(out: str | os.PathLike) -> Path | None:
    """Where a local cluster's workers keep their scratch space (spilled data, locks):
    ``OUT/.lesbench/dask-scratch-space``, next to the data it serves and out of the data set,
    unless the user configured Dask's ``temporary-directory`` (then None: theirs is used)."""
    import dask

    if dask.config.get("temporary-directory", None):
        return None
    return Path(out) / mf.STATE_DIR / "dask-scratch-space"


class Runner:
    """Where the tasks run: a Dask cluster (local or attached) or, with ``scheduler="sync"``,
    this process (for debugging and profiling).

    The cluster is started (or attached to) on the first task, so a re-run with nothing left
    to do starts none. Registered plugins are sent to the workers at that point.
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None,
                 local_directory: str | os.PathLike | None = None,
                 on_abort: Callable[[], None] | None = None) -> None:
        """``local_directory``: scratch space of a local cluster's workers (None: Dask's
        default). ``on_abort``: called first when the ``with`` block ends with an exception
        (Ctrl-C...), before the cluster is shut down, so that clips still running on it
        cannot commit results (see :class:`RunLease`)."""
        self.workers = workers
        self.scheduler = scheduler
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.local_directory = local_directory
        self.on_abort = on_abort
        self.client: Client | None = None
        self._cluster = None
        self.dashboard: str | None = None
        self._local: _ProcessorPlugin | None = None
        self._pending: dict[str, PrepareConfig] = {}
        self._plugins: list[str] = []
        #: seconds spent starting the cluster and the workers' landmarkers
        self.startup_s = 0.0

    @property
    def sync(self) -> bool:
        return self.scheduler == "sync"

    def __enter__(self) -> "Runner":
        return self

    def _start(self) -> None:
        if self.sync or self.client is not None:
            return
        from distributed import Client

        t = time.perf_counter()
        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"cannot connect to the Dask scheduler {self.scheduler}: {_one_line(str(exc))}") from None
        else:
            extra = {"local_directory": str(self.local_directory)} if self.local_directory else {}
            self._cluster = make_local_cluster(self.workers, **extra)
            self.client = Client(self._cluster)
            self.client.register_plugin(_IgnoreInterrupts(), name="lesbench-ignore-sigint")
        self.dashboard = self.client.dashboard_link
        self.log(f"Dask dashboard: {self.dashboard}")
        for name, config in self._pending.items():
            self.client.register_plugin(_ProcessorPlugin(name, config), name=name)
            self._plugins.append(name)
        self._pending.clear()
        self.startup_s += time.perf_counter() - t

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self.on_abort is not None:
            self.on_abort()
        if self._local is not None:
            self._local.teardown(None)
        if self.client is not None:
            if self._cluster is None and self._plugins:
                # an attached cluster outlives this run: free the workers' landmarkers
                for name in self._plugins:
                    try:
                        self.client.unregister_worker_plugin(name)
                    except Exception:  # noqa: BLE001 - best effort; the run itself is done
                        pass
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def register(self, name: str, config: PrepareConfig) -> None:
        """Give every worker a :class:`_ProcessorPlugin` called ``name`` (when they start)."""
        if self.sync:
            self._local = self._local or _ProcessorPlugin(name, config)
        elif self.client is None:
            self._pending[name] = config
        else:
            self.client.register_plugin(_ProcessorPlugin(name, config), name=name)
            self._plugins.append(name)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one task (on a worker when there is a cluster) and return its result."""
        if self.sync:
            return fn(*args)
        self._start()
        return self.client.submit(fn, *args, pure=False, retries=2).result()

    def map(self, fn: Callable[..., Any], items: Sequence[Any], args: tuple, keys: Sequence[str],
            desc: str) -> Iterator[tuple[int, Any, BaseException | None]]:
        """Run ``fn(item, *args)`` for every item; yields (index, result, error) as they finish."""
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="clip", disable=not self.progress or not items,
                   file=sys.stderr, dynamic_ncols=True)
        try:
            if self.sync:
                local = tuple(self._local if isinstance(a, str) and a == self._local.name else a for a in args)
                for i, item in enumerate(items):
                    res = fn(item, *local)
                    bar.update(1)
                    yield i, res, None
                return
            if not items:
                return
            self._start()
            for i, res, err in map_as_completed(self.client, fn, items, args, keys, desc):
                bar.update(1)
                yield i, res, err
        finally:
            bar.close()


# --------------------------------------------------------------------------------- driver


@dataclass
class PrepareSummary:
    """What a ``prepare`` run did. ``rows``: the manifest rows (sorted by clip_id)."""

    out: Path
    n_clips: int
    by_status: dict[str, int]
    reasons: dict[str, list[str]]
    n_reused: int
    n_processed: int
    n_frames: int
    elapsed_s: float
    skipped_files: list[tuple[str, str]]
    dashboard: str | None = None
    #: clip_id -> "path: problem" for clips redone because an output no longer matched its
    #: done-record (damaged, resized or missing): counted in ``n_processed`` too
    damaged: dict[str, list[str]] = field(default_factory=dict)
    face_model: dict[str, Any] = field(default_factory=dict)
    #: wall-clock seconds: index_s, startup_s (cluster + workers' landmarkers), pass1_s,
    #: coeffs_s (face model + coefficients), write_s, total_s
    timings: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: clips that failed because an output could not be written (disk full...), and the
    #: first such error; a re-run after fixing the cause completes them
    n_write_failed: int = 0
    write_error: str | None = None

    @property
    def n_failed(self) -> int:
        return self.n_clips - self.by_status.get("ok", 0)

    def format(self, max_reasons: int = 5) -> str:
        redone = f", {len(self.damaged)} redone for damage" if self.damaged else ""
        lines = [f"prepared {self.n_clips} clips into {self.out} in {self.elapsed_s:.1f} s "
                 f"({self.n_processed} processed, {self.n_reused} already done{redone}; {self.n_frames} frames)"]
        for status in schema.CLIP_STATUSES:
            if self.by_status.get(status):
                lines.append(f"  {status:<13} {self.by_status[status]}")
                for reason in self.reasons.get(status, [])[:max_reasons]:
                    lines.append(f"      {reason}")
                extra = len(self.reasons.get(status, [])) - max_reasons
                if extra > 0:
                    lines.append(f"      ... and {extra} more (see clips.parquet)")
        if self.damaged:
            lines.append(f"  {len(self.damaged)} clip(s) redone because their outputs no longer matched "
                         "their done-records:")
            for clip_id, problems in sorted(self.damaged.items())[:max_reasons]:
                lines.append(f"      {clip_id}: {'; '.join(problems)}")
            if len(self.damaged) > max_reasons:
                lines.append(f"      ... and {len(self.damaged) - max_reasons} more")
        if self.skipped_files:
            lines.append(f"  {len(self.skipped_files)} file(s) could not be placed and were skipped:")
            for path, reason in self.skipped_files[:max_reasons]:
                lines.append(f"      {path}: {reason}")
            if len(self.skipped_files) > max_reasons:
                lines.append(f"      ... and {len(self.skipped_files) - max_reasons} more (see dataset.json)")
        if self.face_model:
            lines.append(f"  face model: {self.face_model.get('summary', '')}")
        return "\n".join(lines)

    def write_failure(self) -> str | None:
        """One line saying that clips could not be written and what to do, or None."""
        if not self.n_write_failed:
            return None
        return (f"{self.n_write_failed} of {self.n_clips} clips could not be written (first: {self.write_error}); "
                "free space (or fix the cause) and re-run the same command: clips already done are kept")


def open_dataset(root: str | os.PathLike, dataset: str = "mead", views: Sequence[str] = ("front",),
                 test_speakers: Sequence[str] | None = None, val_speakers: Sequence[str] = (),
                 **kwargs: Any) -> Any:
    """Instantiate a registered reader with the options it understands."""
    from lesbench.registry import DATASETS

    cls = DATASETS.get(dataset)
    opts: dict[str, Any] = {"views": tuple(views), "val_speakers": tuple(val_speakers), **kwargs}
    if test_speakers is not None:
        opts["test_speakers"] = tuple(test_speakers)
    return cls(root, **opts)


class RunCancelled(LesbenchError):
    """The run a task belongs to no longer holds its output folder (it was interrupted or
    exited, or another run took over): the task stops without writing anything more."""


@dataclass(frozen=True)
class RunLease:
    """A run's claim on its output folder, checked by its tasks wherever they run.

    Held while ``OUT/.lesbench/lock`` names this run's ``token`` and, when the lock holder is on
    this machine, its process is alive. A run revokes it before shutting its cluster down after
    an interrupt, so a clip still running there cannot record itself as done afterwards; a
    worker that outlives its client (a remote cluster, the client killed) stops at its next
    check instead of writing into a folder another run may be using.
    """

    lock: str
    token: str

    def held(self) -> bool:
        try:
            parts = Path(self.lock).read_text().split()
        except OSError:
            return False
        if len(parts) < 3 or parts[2] != self.token:
            return False
        if parts[0] == socket.gethostname():
            try:
                os.kill(int(parts[1]), 0)
            except ProcessLookupError:
                return False
            except (OSError, ValueError):
                pass  # exists but not ours to signal, or an odd lock: the token decided
        return True

    def check(self) -> None:
        """Raise :class:`RunCancelled` unless the lease is held."""
        if not self.held():
            raise RunCancelled(f"{Path(self.lock).parent.parent}: the prepare run this task belongs to is no "
                               "longer running; the task stops without writing")


class _Lock:
    """``OUT/.lesbench/lock``: one prepare per output folder at a time. Holds
    ``host pid token``; :attr:`lease` is what the run's tasks check."""

    def __init__(self, out: Path) -> None:
        self.path = out / mf.STATE_DIR / "lock"
        self.token = uuid.uuid4().hex
        self.lease = RunLease(str(self.path), self.token)

    def revoke(self) -> None:
        """Keep the folder locked but end the lease: tasks still running stop writing."""
        try:
            mf.write_text(self.path, f"{socket.gethostname()} {os.getpid()} revoked\n")
        except OSError:  # a full disk: removing the lock ends the lease too
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "_Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{socket.gethostname()} {os.getpid()} {self.token}\n"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._holder_alive():
                    raise DatasetError(
                        f"{self.path.parent.parent}: another `lesbench prepare` ({' '.join(self.path.read_text().split()[:2])}) "
                        f"is writing here; wait for it, or delete {self.path} if it is gone"
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return self
        raise DatasetError(f"{self.path}: could not take the lock")

    def _holder_alive(self) -> bool:
        try:
            host, pid = self.path.read_text().split()[:2]
            if host != socket.gethostname():
                return True  # cannot check another machine: assume alive
            os.kill(int(pid), 0)
            return True
        except ProcessLookupError:
            return False
        except (OSError, ValueError):
            return False

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def check_output_folder(out: Path, root: Path) -> None:
    """Refuse an output folder that cannot work, before any work: an existing file, the data
    set root itself, or a place that cannot be created or written. Creates ``out``."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: the output folder exists and is not a folder")
    if out == root.resolve():
        raise UsageError(f"{out}: the output folder must not be the data set root itself "
                         "(its outputs would be read as input by later runs)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = mf.tmp_path(out / "write-test")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{out}: cannot write the output folder here: {exc.strerror or exc}") from None


def check_scheduler(address: str | None, timeout_s: float = 5.0) -> None:
    """Refuse a ``--scheduler`` address that is malformed or where nothing answers (instead of
    Dask's 30 s wait and traceback). ``None`` and ``"sync"`` need no check; protocols other
    than tcp/tls are left to Dask."""
    if address is None or address == "sync":
        return
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        protocol, location = parse_address(address)
        if protocol not in backends:
            raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(sorted(backends))})")
        if protocol not in ("tcp", "tls"):
            return
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--scheduler {address!r}: not a scheduler address (tcp://host:port): {exc}") from None
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"--scheduler {address}: nothing answers there ({exc.strerror or exc}); start it with "
                         "`dask scheduler`, or leave --scheduler out for a local cluster") from None


@contextmanager
def _reserved_space(path: Path, nbytes: int) -> Iterator[Path]:
    """Hold ``nbytes`` of disk in ``path`` (best effort) for the ``with`` block; the caller
    deletes ``path`` before writing ``clips.parquet`` and ``dataset.json``, so that a run that
    filled the disk can still write them, saying which clips could not be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.posix_fallocate(fd, 0, nbytes)
        finally:
            os.close(fd)
    except (OSError, AttributeError):  # already full, or a platform without fallocate
        path.unlink(missing_ok=True)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def _interrupts_end_cleanly(n_done: Callable[[], int], n_clips: int) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the run the same way: the ``with`` blocks inside unwind (the
    lease is revoked, the cluster shut down, the lock released) and :class:`Interrupted`
    says how many clips are done and that a re-run resumes."""
    state = {"signum": int(signal.SIGINT)}
    previous = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        def on_term(signum: int, frame: Any) -> None:
            state["signum"] = signum
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {n_done()} of {n_clips} clips are done and kept; re-run the same "
                          "command to resume", state["signum"]) from None
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def prepare(
    root: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str = "mead",
    views: Sequence[str] = ("front",),
    fps: float = schema.FPS,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    face_model: str | os.PathLike | None = None,
    test_speakers: Sequence[str] | None = None,
    val_speakers: Sequence[str] = (),
    config: PrepareConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    dataset_options: dict[str, Any] | None = None,
) -> PrepareSummary:
    """Prepare a data set (see the module docstring). Returns a :class:`PrepareSummary`.

    Args:
        root: the data set (a MEAD-layout folder for ``dataset="mead"``, any folder of videos
            for ``"folder"``).
        out: output folder (created).
        workers: Dask worker processes for the local cluster (default: CPU count).
        scheduler: ``tcp://host:port`` of a running Dask scheduler to use instead; ``"sync"``
            runs everything in this process.
        force: redo every clip even if a valid done-record exists.
        face_model: a ``face_model.npz`` to reuse instead of fitting one on the train split.
        config: per-clip settings (``fps`` overrides ``config.fps``).

    Raises:
        DatasetError: ``root`` missing or holding no clip; the output folder in use.
        UsageError: arguments that cannot work (``fps`` 0, ``workers`` < 1, an unreachable
            scheduler, an output folder that is a file, unwritable, or the input itself),
            refused before any work.
        OutputWriteError: ``clips.parquet`` or ``dataset.json`` could not be written (clips
            that could not be written are ``failed`` rows instead; see
            :attr:`PrepareSummary.n_write_failed`).
        Interrupted: SIGINT/SIGTERM; clips finished before it keep their done-records, and
            no clip running then is recorded as done.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    log = log or (lambda msg: print(msg, file=sys.stderr))
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise UsageError(f"fps must be a positive number, got {fps!r}") from None
    config = replace(config or PrepareConfig(), fps=fps)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"workers must be a whole number of at least 1, got {workers!r}")
    root = Path(root).expanduser()
    out = Path(out).expanduser().resolve()
    check_scheduler(scheduler)
    if not root.exists():
        raise DatasetError(f"{root}: no such folder")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    reader = open_dataset(root, dataset, views, test_speakers, val_speakers, **(dataset_options or {}))
    clips = reader.clips()
    # an output folder inside the root is not part of the data set
    # (realpath: Path.resolve raises on a symlink loop, and the notes name such links)
    skipped = [(p, r) for p, r in reader.skipped if out not in Path(os.path.realpath(p)).parents]
    if not clips:
        hint = "; ".join(f"{p}: {r}" for p, r in skipped[:3])
        raise DatasetError(
            f"{root}: no clips found for dataset {dataset!r} (views {list(views)})"
            + (f"; {len(skipped)} file(s) could not be placed, e.g. {hint}" if skipped else "")
        )
    if face_model is not None:
        if not Path(face_model).is_file():
            raise DatasetError(f"{face_model}: face model file not found")
        from lesbench.pipelines.face_model import FaceModel

        FaceModel.load(face_model)  # a foreign or broken file fails here, not on every clip
    if dataset == "folder" and (out == root.resolve() or root.resolve() in out.parents):
        # the folder reader would index our own crops on the next run
        raise UsageError(f"{out}: the output folder must not be inside the folder being read ({root})")
    inside = [c.clip_id for c in clips if out in Path(c.video_path).resolve().parents]
    if inside:
        raise UsageError(f"{out}: the output folder holds input clips ({', '.join(inside[:3])}"
                         f"{', ...' if len(inside) > 3 else ''}); choose a folder outside the data set")
    check_output_folder(out, root)

    from lesbench.pipelines.stages import STAGE_CLASSES

    versions = ClipProcessor(config).versions  # cheap: stages set themselves up lazily
    cfg_hash = config.hash()

    def n_done() -> int:
        return sum(mf.read_valid_done(out, c.clip_id, clip_inputs(c), versions, cfg_hash) is not None
                   for c in clips)

    with _Lock(out) as lock, _interrupts_end_cleanly(n_done, len(clips)), \
            _reserved_space(out / mf.STATE_DIR / "reserve", 256 * 1024 + 2048 * len(clips)) as reserve:
        n_stale = mf.remove_stale_temps(out)
        if n_stale:
            log(f"removed {n_stale} temporary file(s) left by an interrupted run")

        rows: dict[str, dict[str, Any]] = {}
        todo: list[schema.Clip] = []
        damaged: dict[str, list[str]] = {}  # clip_id -> outputs that no longer match its done-record
        for clip in clips:
            done = mf.DoneCheck() if force else mf.check_done(out, clip.clip_id, clip_inputs(clip), versions, cfg_hash)
            if done.record is not None:
                rows[clip.clip_id] = _refresh_row(done.record.row, clip)
            else:
                todo.append(clip)
                if done.damage:
                    damaged[clip.clip_id] = done.damage
        _log_damage(log, damaged)
        n_reused = len(rows)
        n_gone = _remove_vanished(out, {c.clip_id for c in clips})
        if n_gone:
            log(f"removed the outputs of {n_gone} clip(s) no longer in {root} (or not selected by this run)")
        if n_reused:
            log(f"{n_reused} of {len(clips)} clips already done (same inputs, stage versions and config); "
                f"{len(todo)} to process")

        # one plugin (and landmarker) per run: another run's end on a shared cluster must not
        # tear down the trackers this run's clips are using
        plugin_name = f"lesbench-prepare-{cfg_hash}-{lock.token[:8]}"
        timings["index_s"] = time.perf_counter() - t_start
        with Runner(workers=workers, scheduler=scheduler, progress=progress, log=log,
                    local_directory=dask_scratch_dir(out), on_abort=lock.revoke) as runner:
            runner.register(plugin_name, config)
            t = time.perf_counter()
            by_index = {i: c for i, c in enumerate(todo)}
            for i, row, err in runner.map(_prepare_task, todo, (str(out), config, plugin_name, lock.lease),
                                          [c.clip_id for c in todo], "prepare"):
                clip = by_index[i]
                if err is not None:
                    row = mf.empty_row(clip.as_row())
                    row["status"] = "failed"
                    row["error"] = _one_line(
                        f"{clip.video_path}: processing failed: {type(err).__name__}: {err}"
                        + (" (a worker died on this clip repeatedly: out of memory or a crash in a native library)"
                           if type(err).__name__ == "KilledWorker" else ""))
                rows[clip.clip_id] = row

            timings["pass1_s"] = time.perf_counter() - t - runner.startup_s
            startup_pass1 = runner.startup_s
            # -- pass 2: face model + coefficients --------------------------------------
            t = time.perf_counter()
            fm_info = _coefficients_pass(out, clips, rows, runner, config, plugin_name, face_model, force, log,
                                         damaged, lock.lease)
            timings["coeffs_s"] = time.perf_counter() - t - (runner.startup_s - startup_pass1)
            timings["startup_s"] = runner.startup_s
            timings["fit_s"] = float(fm_info.get("fit_s", 0.0))
            t = time.perf_counter()

        ordered = [rows[c.clip_id] for c in clips]
        write_failed = [r for r in ordered if r.get(WRITE_ERROR)]
        reserve.unlink(missing_ok=True)  # its space is for the two files below

        def write_manifest_file(path: Path, write: Callable[[], Any]) -> None:
            try:
                with writing(path):
                    write()
            except OutputWriteError as exc:
                raise OutputWriteError(f"{exc}; {n_done()} of {len(clips)} clips are done and kept: free space "
                                       "and re-run the same command to finish") from None

        write_manifest_file(out / schema.CLIPS_PARQUET,
                            lambda: mf.write_parquet(mf.manifest_table(ordered), out / schema.CLIPS_PARQUET))
        stages = [STAGE_CLASSES[name]().describe() if name != "face" else
                  STAGE_CLASSES[name](device=config.device, analysis_size=config.analysis_size).describe()
                  for name in STAGE_CLASSES]
        by_status = Counter(r["status"] for r in ordered)
        info = {
            "format_version": schema.DATASET_FORMAT_VERSION,
            "lesbench_version": _lesbench_version(),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source_root": str(root.resolve()),
            "dataset": dataset,
            "reader": reader.config() if hasattr(reader, "config") else {"dataset": dataset},
            "config": {
                **asdict(config),
                "dataset": dataset,
                "views": list(views),
                "test_speakers": list(getattr(reader, "test_speakers", test_speakers or ())),
                "val_speakers": list(getattr(reader, "val_speakers", val_speakers)),
                "face_model": str(face_model) if face_model else None,
            },
            "fps": config.fps,
            "sample_rate": config.sample_rate,
            "hop": int(round(config.sample_rate / config.fps)),
            "crop_size": config.crop_size,
            "extractors": stages,
            "face_model": {k: v for k, v in fm_info.items() if k != "fit_s"},
            "counts": {"clips": len(ordered), "by_status": dict(sorted(by_status.items())),
                       "by_split": dict(sorted(Counter(r["split"] for r in ordered).items()))},
            "skipped_files": [{"path": p, "reason": r} for p, r in skipped],
            # lesbench's synthetic demo data: recorded so its results are never labelled MEAD,
            # even after the source tree is deleted (lesbench.evaluation.dataset_label)
            "demo": _demo_card(root),
            "files": {"frames": "frames/{clip_id}.parquet", "audio": "audio/{clip_id}.parquet",
                      "coeffs": "coeffs/{clip_id}.parquet", "crops": "crops/{clip_id}.mp4",
                      "clips": schema.CLIPS_PARQUET, "face_model": schema.FACE_MODEL},
        }
        imports = _kept_imports(out)
        if imports:
            info["imports"] = imports
        write_manifest_file(out / schema.DATASET_JSON, lambda: mf.write_text(
            out / schema.DATASET_JSON, json.dumps(info, indent=2, sort_keys=False, default=str) + "\n"))
        timings["write_s"] = time.perf_counter() - t

    reasons: dict[str, list[str]] = {}
    for r in ordered:
        if r["status"] != "ok":
            reasons.setdefault(r["status"], []).append(f"{r['clip_id']}: {r['error']}")
    return PrepareSummary(
        out=out,
        n_clips=len(ordered),
        by_status=dict(by_status),
        reasons=reasons,
        n_reused=n_reused,
        n_processed=len(todo),
        damaged=damaged,
        n_frames=int(sum(r["n_frames"] or 0 for r in ordered)),
        elapsed_s=time.perf_counter() - t_start,
        skipped_files=skipped,
        dashboard=runner.dashboard,
        face_model=fm_info,
        n_write_failed=len(write_failed),
        write_error=write_failed[0]["error"] if write_failed else None,
        rows=ordered,
        timings={**timings, "total_s": time.perf_counter() - t_start},
    )


def _log_damage(log: Callable[[str], None], damaged: dict[str, list[str]]) -> None:
    if damaged:
        first = next(iter(damaged.values()))[0]
        log(f"{len(damaged)} clip(s) to redo: their outputs no longer match their done-records (e.g. {first})")


def _remove_vanished(out: Path, keep: set[str]) -> int:
    """Delete outputs and done-records of clips not in ``keep`` (their source files are gone or
    this run selects other clips): the prepared set holds exactly the clips in clips.parquet."""
    paths = schema.dataset_paths(out)
    gone: set[str] = set()
    for kind, suffix in (("frames", ".parquet"), ("audio", ".parquet"), ("crops", ".mp4"), ("coeffs", ".parquet")):
        if paths[kind].is_dir():
            for p in paths[kind].glob(f"*{suffix}"):
                cid = p.name[: -len(suffix)]
                if cid not in keep:
                    p.unlink()
                    gone.add(cid)
    done_dir = out / mf.STATE_DIR / mf.DONE_DIR
    if done_dir.is_dir():
        for p in done_dir.glob("*.json"):
            stem = p.name[: -len(".json")]
            if stem not in keep and stem.removesuffix(".coeffs") not in keep:
                p.unlink()
                gone.add(stem.removesuffix(".coeffs"))
    return len(gone)


def _kept_imports(out: Path) -> dict[str, Any]:
    """``imports`` entries of the previous dataset.json (``lesbench import-coeffs``) whose
    record file still exists: a re-run of prepare keeps documenting them."""
    try:
        old = json.loads((out / schema.DATASET_JSON).read_text()).get("imports") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: v for k, v in sorted(old.items()) if isinstance(v, dict) and v.get("record")
            and (out / str(v["record"])).is_file()}


def _refresh_row(row: dict[str, Any], clip: schema.Clip) -> dict[str, Any]:
    """A reused row with the reader's current metadata (split and speaker lists may change
    without touching the clip's outputs)."""
    fresh = dict(row)
    fresh.update({k: v for k, v in clip.as_row().items() if k in fresh})
    return fresh


def _demo_card(root: Path) -> dict[str, Any] | None:
    """The demo generator's card (``demo.json``: generator, version, seed) when ``root`` is
    lesbench's synthetic demo data, else None."""
    card = root / "demo.json"
    if not card.is_file():
        return None
    try:
        meta = json.loads(card.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("generator") != "lesbench.demo":
        return None
    return {k: meta.get(k) for k in ("generator", "generator_version", "seed", "tiny")}


def _lesbench_version() -> str:
    import lesbench

    return lesbench.__version__


def _coefficients_pass(out: Path, clips: list[schema.Clip], rows: dict[str, dict[str, Any]], runner: Runner,
                       config: PrepareConfig, plugin: str, face_model: str | os.PathLike | None,
                       force: bool, log: Callable[[str], None],
                       damaged: dict[str, list[str]] | None = None, lease: RunLease | None = None) -> dict[str, Any]:
    """Fit (or load) the face model, write ``face_model.npz`` and every clip's coefficients;
    fills the ``coeffs`` columns of ``rows``; adds clips whose coefficients are redone for
    damage to ``damaged``. Returns the model's provenance for dataset.json.

    When the face model cannot be written (disk full), every usable clip becomes a ``failed``
    row saying so; their pass-1 outputs and done-records stay, so a re-run only fits and
    projects."""
    from lesbench.pipelines.stages import CoeffsStage, file_sha256

    stage = CoeffsStage()
    target = out / schema.FACE_MODEL
    usable = [c for c in clips if rows[c.clip_id]["status"] in FACE_STATUSES]
    for c in clips:
        rows[c.clip_id][f"version_{mf.stage_column(stage.name)}"] = None
        rows[c.clip_id]["time_coeffs_s"] = None
    if not usable:
        target.unlink(missing_ok=True)
        return {"summary": "not fitted: no clip with a usable face track"}

    try:
        if face_model is not None:
            src = Path(face_model)
            if src.resolve() != target.resolve():
                blob = src.read_bytes()
                tmp = mf.tmp_path(target)
                try:
                    with writing(target):
                        tmp.write_bytes(blob)
                        os.replace(tmp, target)
                finally:
                    tmp.unlink(missing_ok=True)
            provenance = {"loaded_from": str(src.resolve()), "sha256": file_sha256(target)}
            summary = f"loaded from {src}"
        else:
            provenance = _fit_face_model(out, usable, rows, stage, runner, force, log, lease)
            summary = provenance["summary"]
    except OutputWriteError as exc:
        reason = _one_line(f"coefficients not computed: {exc}")
        for c in usable:
            rows[c.clip_id].update(status="failed", error=reason, **{WRITE_ERROR: True})
        return {"summary": f"not fitted: {reason}"}
    sha = file_sha256(target)
    provenance.update(path=schema.FACE_MODEL, sha256=sha, stage_version=stage.version, summary=summary)

    todo = []
    for c in usable:
        src = schema.dataset_paths(out)["frames"] / f"{c.clip_id}.parquet"
        inputs = {"frames": mf.file_fingerprint(src), "face_model": sha}
        done = mf.DoneCheck() if force else mf.check_done(out, c.clip_id, inputs, {stage.name: stage.version}, "",
                                                           "coeffs")
        rows[c.clip_id][f"version_{mf.stage_column(stage.name)}"] = stage.version
        if done.record is None:
            todo.append(c.clip_id)
            if done.damage and damaged is not None:
                damaged.setdefault(c.clip_id, []).extend(done.damage)
    if todo:
        for i, res, err in runner.map(_coeffs_task, todo, (str(out), str(target), sha, config, plugin, lease),
                                      todo, "coeffs"):
            clip_id = todo[i]
            if err is not None:
                res = (clip_id, None, _one_line(f"coefficients failed: {type(err).__name__}: {err}"), False)
            _, seconds, error, write_error = res
            rows[clip_id]["time_coeffs_s"] = seconds
            if error:
                rows[clip_id]["status"] = "failed"
                rows[clip_id]["error"] = error
                rows[clip_id][WRITE_ERROR] = write_error
                rows[clip_id][f"version_{mf.stage_column(stage.name)}"] = None
                # a failed clip has no outputs; without its done-record the next run retries it
                ClipProcessor._remove_unwritten(out, clip_id, [])
                mf.done_path(out, clip_id).unlink(missing_ok=True)
    return provenance


def _fit_task(frame_files: list[str], speakers: list[str], clip_ids: list[str], n_frames: int,
              provenance: dict[str, Any], target: str, lease: RunLease | None = None) -> str | None:
    """Fit the face model and save it (atomically) to ``target`` while ``lease`` is held.
    Returns None, or why ``target`` could not be written: returned, not raised, since a full
    disk is no task failure for Dask to retry and log as a crash."""
    from lesbench.pipelines.stages import CoeffsStage

    model = CoeffsStage().fit([Path(p) for p in frame_files], speakers, clip_ids, n_frames=n_frames,
                              provenance=provenance)
    if lease is not None:
        lease.check()
    try:
        with writing(target):
            model.save(target)
    except OutputWriteError as exc:
        return str(exc)
    return None


def _fit_face_model(out: Path, usable: list[schema.Clip], rows: dict[str, dict[str, Any]], stage: Any,
                    runner: "Runner", force: bool, log: Callable[[str], None],
                    lease: RunLease | None = None) -> dict[str, Any]:
    """Fit the face model on the train split's ``ok`` clips (all usable clips when the train
    split has none, which is recorded); reuses ``face_model.npz`` when its inputs are unchanged."""
    fitted_on = "train ok"
    train = [c for c in usable if c.split == "train" and rows[c.clip_id]["status"] == "ok"]
    if not train:
        fitted_on = "train"
        train = [c for c in usable if c.split == "train"]
    if not train:
        fitted_on = "all splits"
        train = list(usable)
        log("warning: no train-split clip with a usable face; the face model is fitted on all "
            "usable clips, test included (pass --face-model to reuse one fitted elsewhere)")
    paths = schema.dataset_paths(out)
    frame_files = [paths["frames"] / f"{c.clip_id}.parquet" for c in train]
    def frames_identity(c: schema.Clip, p: Path) -> Any:
        # content hash from the done-record (a clip redone with the same result does not
        # force a refit); size + mtime when there is none
        rec = mf.read_done(out, c.clip_id)
        rel = p.relative_to(out).as_posix()
        if rec is not None and rel in rec.hashes and rec.outputs.get(rel) == mf.file_fingerprint(p)["size"]:
            return rec.hashes[rel]
        return mf.file_fingerprint(p)

    key = {
        "stage_version": stage.version,
        "clips": {c.clip_id: frames_identity(c, p) for c, p in zip(train, frame_files)},
        "speakers": {c.clip_id: c.speaker for c in train},
    }
    key_hash = mf.config_hash(key)
    record_path = out / mf.STATE_DIR / "face_model.json"
    target = paths["face_model"]
    if not force and target.is_file():
        try:
            rec = json.loads(record_path.read_text())
            if rec.get("key") == key_hash and rec.get("size") == target.stat().st_size:
                # by content: a damaged model would otherwise be reused and project every clip
                if rec.get("sha256") == mf.sha256_file(target):
                    return rec["provenance"]
                log(f"{target}: content differs from its record ({record_path.name}); fitting it again")
        except (OSError, ValueError):
            pass
    t = time.perf_counter()
    # On a worker: one BLAS thread there (the nanny sets it), where a multi-threaded BLAS in this
    # process was measured 4-7x slower on a busy 2-core machine; and on a remote cluster the
    # fit runs next to the data.
    error = runner.call(_fit_task, [str(p) for p in frame_files], [c.speaker for c in train],
                        [c.clip_id for c in train], sum(int(rows[c.clip_id]["n_frames"] or 0) for c in train),
                        {"fitted_on": fitted_on}, str(target), lease)
    if error:
        raise OutputWriteError(error)
    speakers = sorted({c.speaker for c in train})
    provenance = {
        "fitted_on": fitted_on,
        "n_clips": len(train),
        "speakers": speakers,
        "summary": f"fitted on {len(train)} clips ({fitted_on}) of {len(speakers)} speaker(s)",
        # when: here, not in face_model.npz, whose bytes depend only on its inputs
        "fitted_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with writing(record_path):
        mf.write_text(record_path, json.dumps({"key": key_hash, "size": target.stat().st_size,
                                               "sha256": mf.sha256_file(target), "provenance": provenance}))
    return {**provenance, "fit_s": time.perf_counter() - t}
