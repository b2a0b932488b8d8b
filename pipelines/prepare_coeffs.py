"""Pass 2 of ``lesbench prepare``, once every clip is through pass 1: fit the linear face model
on the train split's usable clips (or copy the one given with ``--face-model``), write
``face_model.npz``, and project every clip with a face to ``coeffs/{clip_id}.parquet`` on the
runner. A model whose inputs are unchanged is reused, and so are coefficients whose done-record
still holds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from lesbench import schema
from lesbench.atomic import replacing, write_text
from lesbench.errors import OutputWriteError
from lesbench.pipelines import manifest as mf
from lesbench.pipelines.prepare_clip import fit_face_model_file, remove_unwritten
from lesbench.pipelines.prepare_config import FACE_STATUSES, WRITE_ERROR, PrepareConfig, config_hash, one_line, writing
from lesbench.pipelines.prepare_lock import RunLease
from lesbench.pipelines.prepare_runner import Runner, coeffs_task
from lesbench.pipelines.stages import CoeffsStage
from lesbench.prepared import PreparedDataset
from lesbench.weights import file_sha256


def coefficients_pass(data: PreparedDataset, clips: list[schema.Clip], rows: dict[str, dict[str, Any]],
                      runner: Runner, config: PrepareConfig, plugin: str, face_model: str | os.PathLike | None,
                      force: bool, log: Callable[[str], None],
                      damaged: dict[str, list[str]] | None = None, lease: RunLease | None = None) -> dict[str, Any]:
    """Fit (or load) the face model, write ``face_model.npz`` and every clip's coefficients;
    fills the ``coeffs`` columns of ``rows``; adds clips whose coefficients are redone for
    damage to ``damaged``. Returns the model's provenance for dataset.json.

    When the face model cannot be written (disk full), every usable clip becomes a ``failed``
    row saying so; their pass-1 outputs and done-records stay, so a re-run only fits and
    projects."""
    out = data.root
    stage = CoeffsStage()
    target = data.path("face_model")
    usable = [c for c in clips if rows[c.clip_id]["status"] in FACE_STATUSES]
    version_column = f"version_{mf.stage_column(stage.name)}"
    time_column = f"time_{mf.stage_column(stage.name)}_s"
    for c in clips:
        rows[c.clip_id][version_column] = None
        rows[c.clip_id][time_column] = None
    if not usable:
        target.unlink(missing_ok=True)
        return {"summary": "not fitted: no clip with a usable face track"}

    try:
        if face_model is not None:
            src = Path(face_model)
            if src.resolve() != target.resolve():
                blob = src.read_bytes()
                with writing(target), replacing(target) as tmp:
                    tmp.write_bytes(blob)
            provenance = {"loaded_from": str(src.resolve()), "sha256": file_sha256(target)}
            summary = f"loaded from {src}"
        else:
            provenance = fit_face_model(data, usable, rows, stage, runner, force, log, lease)
            summary = provenance["summary"]
    except OutputWriteError as exc:
        reason = one_line(f"coefficients not computed: {exc}")
        for c in usable:
            rows[c.clip_id].update(status="failed", error=reason, **{WRITE_ERROR: True})
        return {"summary": f"not fitted: {reason}"}
    sha = file_sha256(target)
    provenance.update(path=target.relative_to(out).as_posix(), sha256=sha, stage_version=stage.version, summary=summary)

    todo = []
    for c in usable:
        inputs = {"frames": mf.file_fingerprint(data.clip_file("frames", c.clip_id)), "face_model": sha}
        done = mf.DoneCheck() if force else mf.check_done(out, c.clip_id, inputs, {stage.name: stage.version}, "",
                                                           "coeffs")
        rows[c.clip_id][version_column] = stage.version
        if done.record is None:
            todo.append(c.clip_id)
            if done.damage and damaged is not None:
                damaged.setdefault(c.clip_id, []).extend(done.damage)
    if todo:
        for i, res, err in runner.map(coeffs_task, todo, (str(out), str(target), sha, config, plugin, lease),
                                      todo, "coeffs"):
            clip_id = todo[i]
            if err is not None:
                res = (clip_id, None, one_line(f"coefficients failed: {type(err).__name__}: {err}"), False)
            _, seconds, error, write_error = res
            rows[clip_id][time_column] = seconds
            if error:
                rows[clip_id]["status"] = "failed"
                rows[clip_id]["error"] = error
                rows[clip_id][WRITE_ERROR] = write_error
                rows[clip_id][version_column] = None
                # a failed clip has no outputs; without its done-record the next run retries it
                remove_unwritten(data, clip_id, [])
                mf.done_path(out, clip_id).unlink(missing_ok=True)
    return provenance


def fit_face_model(data: PreparedDataset, usable: list[schema.Clip], rows: dict[str, dict[str, Any]],
                   stage: CoeffsStage, runner: Runner, force: bool, log: Callable[[str], None],
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
    out = data.root
    frame_files = [data.clip_file("frames", c.clip_id) for c in train]

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
    key_hash = config_hash(key)
    record_path = out / mf.STATE_DIR / "face_model.json"
    target = data.path("face_model")
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
    error = runner.call(fit_face_model_file, [str(p) for p in frame_files], [c.speaker for c in train],
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
        write_text(record_path, json.dumps({"key": key_hash, "size": target.stat().st_size,
                                            "sha256": mf.sha256_file(target), "provenance": provenance}))
    return {**provenance, "fit_s": time.perf_counter() - t}
