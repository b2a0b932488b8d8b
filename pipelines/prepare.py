"""``lesbench prepare``: a data-set root -> the prepared data set of docs/design.md, on Dask.

This module is the driver: it checks the arguments, finds what is left to do, and runs the
passes; the work itself lives in the modules it calls:

- pass 1, one task per clip (:mod:`~lesbench.pipelines.prepare_clip`): the clip stages of
  :data:`~lesbench.pipelines.stages.PIPELINE` in order -- probe and decode the video once,
  resampled by timestamp to 25 fps and, for large sources, decoded straight at ``work_size``;
  face landmarks -> action units -> ``frames/{id}.parquet``; audio (the clip's audio file, else
  the video's own track) -> 16 kHz features, one row per video frame -> ``audio/{id}.parquet``;
  aligned 256x256 crops with the audio muxed -> ``crops/{id}.mp4``. Every clip returns exactly
  one manifest row, whatever happens to it.
- pass 2 (:mod:`~lesbench.pipelines.prepare_coeffs`): fit the linear face model on the train
  split's usable clips (or load ``face_model=``), write ``face_model.npz``, and project every
  clip with a face to ``coeffs/{id}.parquet``.
- then ``clips.parquet`` (one row per clip found, sorted by clip_id) and ``dataset.json``
  (:mod:`~lesbench.pipelines.prepare_info`), written through
  :class:`~lesbench.prepared.PreparedDataset`.

Tasks run on :class:`~lesbench.pipelines.prepare_runner.Runner` (a Dask cluster, or this
process). Robustness: writes are atomic (:mod:`lesbench.atomic`); a clip's done-record is
written after its outputs, so an interrupted run redoes exactly the clips without a valid record
(:mod:`lesbench.pipelines.manifest`); stale temp files are removed at start; results do not
depend on worker count or task order (each clip is computed independently, the tracker is reset
per clip, rows are sorted). Memory per worker is one clip's frames at ``work_size`` (clips
longer than ``max_buffer_frames`` are decoded a second time for the crops instead of being held).

Interruptions and failures (docs/prepare-interruptions.md, :mod:`lesbench.pipelines.prepare_lock`):
tasks check the run's lease before every write, and an interrupted run revokes it before
shutting its cluster down, so no clip still running then is recorded as done. Ctrl-C / SIGTERM
raise :class:`~lesbench.errors.Interrupted`; outputs that cannot be written (disk full) make
failed rows, and the manifest is still written; arguments that cannot work raise
:class:`~lesbench.errors.UsageError` before any work.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from lesbench import schema
from lesbench.atomic import tmp_path, write_parquet
from lesbench.errors import DatasetError, OutputWriteError, UsageError
from lesbench.pipelines import manifest as mf
from lesbench.extract.face_model import FaceModel
from lesbench.pipelines.prepare_clip import ClipProcessor, clip_inputs, refresh_row, remove_vanished
from lesbench.pipelines.prepare_coeffs import coefficients_pass
from lesbench.pipelines.prepare_config import WRITE_ERROR, PrepareConfig, one_line, writing
from lesbench.pipelines.prepare_info import build_dataset_info
from lesbench.pipelines.prepare_lock import RunLock, interrupts_end_cleanly, reserved_space
from lesbench.pipelines.prepare_runner import Runner, dask_scratch_dir, prepare_task
from lesbench.prepared import PreparedDataset
from lesbench.registry import DATASETS

__all__ = ["PrepareConfig", "PrepareSummary", "prepare"]


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
    cls = DATASETS.get(dataset)
    opts: dict[str, Any] = {"views": tuple(views), "val_speakers": tuple(val_speakers), **kwargs}
    if test_speakers is not None:
        opts["test_speakers"] = tuple(test_speakers)
    return cls(root, **opts)


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
        probe = tmp_path(out / "write-test")
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
        FaceModel.load(face_model)  # a foreign or broken file fails here, not on every clip
    if dataset == "folder" and (out == root.resolve() or root.resolve() in out.parents):
        # the folder reader would index our own crops on the next run
        raise UsageError(f"{out}: the output folder must not be inside the folder being read ({root})")
    inside = [c.clip_id for c in clips if out in Path(c.video_path).resolve().parents]
    if inside:
        raise UsageError(f"{out}: the output folder holds input clips ({', '.join(inside[:3])}"
                         f"{', ...' if len(inside) > 3 else ''}); choose a folder outside the data set")
    check_output_folder(out, root)

    versions = ClipProcessor(config).versions  # cheap: stages set themselves up lazily
    cfg_hash = config.hash()

    def n_done() -> int:
        return sum(mf.read_valid_done(out, c.clip_id, clip_inputs(c), versions, cfg_hash) is not None
                   for c in clips)

    data = PreparedDataset.with_layout(out)
    with RunLock(out) as lock, interrupts_end_cleanly(n_done, len(clips)), \
            reserved_space(out / mf.STATE_DIR / "reserve", 256 * 1024 + 2048 * len(clips)) as reserve:
        n_stale = mf.remove_stale_temps(out)
        if n_stale:
            log(f"removed {n_stale} temporary file(s) left by an interrupted run")

        rows: dict[str, dict[str, Any]] = {}
        todo: list[schema.Clip] = []
        damaged: dict[str, list[str]] = {}  # clip_id -> outputs that no longer match its done-record
        for clip in clips:
            done = mf.DoneCheck() if force else mf.check_done(out, clip.clip_id, clip_inputs(clip), versions, cfg_hash)
            if done.record is not None:
                rows[clip.clip_id] = refresh_row(done.record.row, clip)
            else:
                todo.append(clip)
                if done.damage:
                    damaged[clip.clip_id] = done.damage
        _log_damage(log, damaged)
        n_reused = len(rows)
        n_gone = remove_vanished(data, {c.clip_id for c in clips})
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
            for i, row, err in runner.map(prepare_task, todo, (str(out), config, plugin_name, lock.lease),
                                          [c.clip_id for c in todo], "prepare"):
                clip = by_index[i]
                if err is not None:
                    row = mf.empty_row(clip.as_row())
                    row["status"] = "failed"
                    row["error"] = one_line(
                        f"{clip.video_path}: processing failed: {type(err).__name__}: {err}"
                        + (" (a worker died on this clip repeatedly: out of memory or a crash in a native library)"
                           if type(err).__name__ == "KilledWorker" else ""))
                rows[clip.clip_id] = row

            timings["pass1_s"] = time.perf_counter() - t - runner.startup_s
            startup_pass1 = runner.startup_s
            # -- pass 2: face model + coefficients --------------------------------------
            t = time.perf_counter()
            fm_info = coefficients_pass(data, clips, rows, runner, config, plugin_name, face_model, force, log,
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

        write_manifest_file(data.path("clips"),
                            lambda: write_parquet(mf.manifest_table(ordered), data.path("clips")))
        info = build_dataset_info(data, root, dataset, reader, views, config, test_speakers, val_speakers,
                                  face_model, fm_info, ordered, skipped)
        write_manifest_file(data.info_path, lambda: data.write_info(info))
        timings["write_s"] = time.perf_counter() - t

    by_status = Counter(r["status"] for r in ordered)
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

