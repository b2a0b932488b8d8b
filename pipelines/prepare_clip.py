"""The per-clip work of ``lesbench prepare``, what one task does on a worker.

Pass 1 (:class:`ClipProcessor`): one clip through the pipeline's clip stages
(:data:`lesbench.pipelines.stages.PIPELINE`, in its order, each timed into the row's
``time_{stage}_s``) into one manifest row and a done-record; whatever happens, a clip gives
exactly one row. Pass 2 (:class:`CoeffsProcessor`): one clip's coefficients from the fitted face
model, and the fit itself (:func:`fit_face_model_file`). Also the clean-up of outputs that no
longer belong to a clip or to the data set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lesbench import schema
from lesbench.errors import MediaError, OutputWriteError
from lesbench.pipelines import manifest as mf
from lesbench.pipelines.prepare_config import WRITE_ERROR, PrepareConfig, one_line, writing
from lesbench.pipelines.prepare_lock import RunCancelled, RunLease
from lesbench.extract.face_model import FaceModel
from lesbench.pipelines.stages import ClipWork, CoeffsStage, FaceStage, Stage, build_stages
from lesbench.prepared import CLIP_KINDS, PreparedDataset


class ClipProcessor:
    """Runs pass 1 on one clip at a time. Create one per worker process and reuse it: the
    MediaPipe landmarker inside is made once (on the first clip)."""

    def __init__(self, config: PrepareConfig | None = None) -> None:
        self.config = config or PrepareConfig()
        self.stages: list[Stage] = build_stages(self.config, scope="clip")

    @property
    def face(self) -> FaceStage:
        """The face stage (its landmarker is what a worker sets up ahead of the first clip)."""
        return next(s for s in self.stages if isinstance(s, FaceStage))

    @property
    def versions(self) -> dict[str, str]:
        """Versions of the pass-1 stages (keys: stage names)."""
        return {s.name: s.version for s in self.stages}

    def close(self) -> None:
        for stage in self.stages:
            stage.close()

    # -- the task -------------------------------------------------------------------------
    def prepare_clip(self, clip: schema.Clip, out: str | os.PathLike,
                     lease: RunLease | None = None) -> dict[str, Any]:
        """Process one clip into ``out``; returns its manifest row (never raises for bad input).

        A failure caused by the input (:class:`MediaError`) is final for these inputs and gets
        a done-record; any other exception (a bug, a full disk, a tracker closed under the clip)
        is reported in the row but not recorded, so the next run tries the clip again.

        ``lease``: the run's claim on ``out``, checked before the clip starts and before each
        write; once the run is gone (interrupted, or another run took over) this raises
        :class:`RunCancelled` and touches nothing more.
        """
        data = PreparedDataset.with_layout(out)
        check = lease.check if lease is not None else (lambda: None)
        check()
        t0 = time.perf_counter()
        row = mf.empty_row(clip.as_row())
        for name, version in self.versions.items():
            row[f"version_{mf.stage_column(name)}"] = version
        timings: dict[str, float] = {}
        work = ClipWork(clip, data, self.config, row, check)
        final = True
        try:
            self._run(work, timings)
        except RunCancelled:
            raise
        except MediaError as exc:
            row["status"], row["error"] = "failed", one_line(str(exc))
        except OutputWriteError as exc:
            row["status"], row["error"], row[WRITE_ERROR] = "failed", one_line(str(exc)), True
            final = False
        except Exception as exc:  # noqa: BLE001 - one bad clip never stops the data set
            row["status"] = "failed"
            row["error"] = one_line(f"{clip.video_path}: {type(exc).__name__}: {exc}")
            final = False
        finally:
            if work.tee is not None:
                work.tee.images = []  # the decoded frames are this clip's only
        written = work.written
        if row["status"] != "failed":
            statuses = [s for s, _ in work.problems]
            row["status"] = next((s for s in ("no_face", "no_audio", "silent_audio") if s in statuses), "ok")
            row["error"] = "; ".join(msg for _, msg in work.problems) or None
        if row["status"] == "failed":
            written = []  # a failed clip has no outputs, not even those written before it failed
        check()
        remove_unwritten(data, clip.clip_id, written)
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
                remove_unwritten(data, clip.clip_id, [])
                row.update(status="failed", error=one_line(str(exc)), **{WRITE_ERROR: True})
        return row

    def _run(self, work: ClipWork, timings: dict[str, float]) -> None:
        """The clip stages in pipeline order; each one's seconds go to ``timings[name]``."""
        for stage in self.stages:
            if not stage.applies(work):
                continue
            t = time.perf_counter()
            try:
                stage.run(work)
            finally:
                timings[stage.name] = time.perf_counter() - t


class CoeffsProcessor:
    """Projects clips onto a fitted linear face model (one per worker, model loaded once)."""

    def __init__(self, model_path: str | os.PathLike, model_sha256: str) -> None:
        self.stage = CoeffsStage()
        self.model_path = Path(model_path)
        self.model_sha256 = model_sha256
        self._model: FaceModel | None = None

    @property
    def model(self) -> FaceModel:
        if self._model is None:
            self._model = FaceModel.load(self.model_path)
        return self._model

    def coeffs_clip(self, clip_id: str, out: str | os.PathLike,
                    lease: RunLease | None = None) -> tuple[str, float, str | None, bool]:
        """Write ``coeffs/{clip_id}.parquet``; returns (clip_id, seconds, error or None, whether
        the error was a failed write).
        Raises :class:`RunCancelled` (writing nothing) once ``lease`` is no longer held."""
        data = PreparedDataset.with_layout(out)
        check = lease.check if lease is not None else (lambda: None)
        check()
        t0 = time.perf_counter()
        src = data.clip_file("frames", clip_id)
        try:
            table = self.stage.project(self.model, data.read_arrow("frames", clip_id), clip_id)
            check()
            target = data.clip_file("coeffs", clip_id)
            with writing(target):
                data.write_table("coeffs", clip_id, table)
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
            return clip_id, time.perf_counter() - t0, one_line(f"coefficients not written: {exc}"), True
        except Exception as exc:  # noqa: BLE001
            return (clip_id, time.perf_counter() - t0,
                    one_line(f"{src}: coefficients failed: {type(exc).__name__}: {exc}"), False)


def fit_face_model_file(frame_files: list[str], speakers: list[str], clip_ids: list[str], n_frames: int,
                        provenance: dict[str, Any], target: str, lease: RunLease | None = None) -> str | None:
    """Fit the face model and save it (atomically) to ``target`` while ``lease`` is held.
    Returns None, or why ``target`` could not be written: returned, not raised, since a full
    disk is no task failure for Dask to retry and log as a crash."""
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


def clip_inputs(clip: schema.Clip) -> dict[str, Any]:
    """The input fingerprint of a clip (size + mtime of its files)."""
    return {
        "video": mf.file_fingerprint(clip.video_path),
        "audio": mf.file_fingerprint(clip.audio_path),
        "video_path": clip.video_path,
        "audio_path": clip.audio_path,
    }


def remove_unwritten(data: PreparedDataset, clip_id: str, written: list[Path]) -> None:
    """Delete this clip's outputs from an earlier run that this run did not write (a clip
    that used to have a face, audio...), and its coefficients (redone in pass 2)."""
    keep = {p.resolve() for p in written}
    for kind in CLIP_KINDS:
        p = data.clip_file(kind, clip_id)
        if p.exists() and p.resolve() not in keep:
            p.unlink()
    mf.done_path(data.root, clip_id, "coeffs").unlink(missing_ok=True)


def remove_vanished(data: PreparedDataset, keep: set[str]) -> int:
    """Delete outputs and done-records of clips not in ``keep`` (their source files are gone or
    this run selects other clips): the prepared set holds exactly the clips in clips.parquet.
    Returns how many clips had something removed."""
    gone: set[str] = set()
    for kind in CLIP_KINDS:
        for clip_id, p in data.clip_files(kind):
            if clip_id not in keep:
                p.unlink()
                gone.add(clip_id)
    done_dir = data.root / mf.STATE_DIR / mf.DONE_DIR
    if done_dir.is_dir():
        for p in done_dir.glob("*.json"):
            stem = p.name[: -len(".json")]
            if stem not in keep and stem.removesuffix(".coeffs") not in keep:
                p.unlink()
                gone.add(stem.removesuffix(".coeffs"))
    return len(gone)


def refresh_row(row: dict[str, Any], clip: schema.Clip) -> dict[str, Any]:
    """A reused row with the reader's current metadata (split and speaker lists may change
    without touching the clip's outputs)."""
    fresh = dict(row)
    fresh.update({k: v for k, v in clip.as_row().items() if k in fresh})
    return fresh
