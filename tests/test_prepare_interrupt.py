"""Interrupted and failing ``lesbench prepare`` runs never leave data that reads as right.

Ctrl-C / SIGTERM mid-run, a tracker closed under a running clip, a full disk, and arguments
that cannot work. Data: the ``--tiny`` synthetic demo (``tiny_demo`` fixture, 8 clips).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lesbench import schema
from lesbench.cli import main
from lesbench.errors import OutputWriteError, UsageError
from lesbench.pipelines import manifest as mf

from test_prepare import content_digest, read_clips

QUIET = {"progress": False, "log": lambda m: None}


def _done_records(out: Path) -> list[Path]:
    folder = out / mf.STATE_DIR / mf.DONE_DIR
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(".coeffs.json")) if folder.is_dir() else []


# ------------------------------------------------------------------------------ tracker


def test_closed_tracker_raises_instead_of_reporting_no_face(tiny_demo) -> None:
    from lesbench import io
    from lesbench.extract.face import FaceTracker, TrackerClosedError

    video = next(tiny_demo.rglob("*.mp4"))
    frames = list(io.iter_frames(video, fps=25))
    tracker = FaceTracker()
    assert tracker.track(frames)["face"].all()  # the demo face is found in every frame

    # closed from another thread while a clip runs (a worker shutting down under its task):
    # the clip raises; the landmarker is released only once the clip has stopped
    started, result = threading.Event(), {}

    def slow_frames():
        for k, fr in enumerate(frames):
            if k == 3:
                started.set()
                time.sleep(0.3)
            yield fr

    def run() -> None:
        try:
            result["table"] = tracker.track(slow_frames())
        except Exception as exc:  # noqa: BLE001 - inspected below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(30)
    tracker.close()
    assert tracker.closed and not tracker._guard._released  # still in use: not released yet
    thread.join(30)
    assert isinstance(result.get("error"), TrackerClosedError), result
    assert "table" not in result
    assert tracker._guard._released

    # and a tracker closed before the clip refuses it too
    with pytest.raises(TrackerClosedError):
        tracker.track(frames)
    tracker.close()  # closing twice is harmless


# ------------------------------------------------------------------------------ lease


def test_lease_ends_with_the_run_and_a_cancelled_clip_writes_nothing(tiny_demo, tmp_path) -> None:
    from lesbench.pipelines.prepare_clip import ClipProcessor
    from lesbench.pipelines.prepare_lock import RunCancelled, RunLease, RunLock
    from lesbench.registry import DATASETS

    out = tmp_path / "out"
    clip = DATASETS.get("mead")(tiny_demo).clips()[0]
    with RunLock(out) as lock:
        lease = lock.lease
        assert lease.held()
        lock.revoke()  # what an interrupted run does before shutting its cluster down
        assert not lease.held()
        with pytest.raises(RunCancelled):
            ClipProcessor().prepare_clip(clip, out, lease)
        assert not _done_records(out) and not (out / "frames").exists()
    assert not lease.held()  # lock released
    # a lock left by a process that is gone (kill -9) holds no lease either
    lock_path = out / mf.STATE_DIR / "lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path.write_text(f"{socket.gethostname()} {dead.pid} tok\n")
    assert not RunLease(str(lock_path), "tok").held()
    lock_path.write_text(f"{socket.gethostname()} {os.getpid()} tok\n")
    assert RunLease(str(lock_path), "tok").held() and not RunLease(str(lock_path), "other").held()


# ------------------------------------------------------------------------------ usage errors


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_argument_errors_exit_2_with_one_line_and_no_work(tiny_demo, tmp_path, capsys) -> None:
    from lesbench.pipelines.prepare import prepare
    from lesbench.pipelines.prepare_config import PrepareConfig

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    root = str(tiny_demo)
    cases = {
        "exists and is not a folder": ["--out", str(a_file)],
        "cannot write the output folder": ["--out", str(a_file / "sub")],
        "fps must be a positive number": ["--out", str(tmp_path / "o1"), "--fps", "0"],
        "workers must be a whole number": ["--out", str(tmp_path / "o2"), "--workers", "-1"],
        "nothing answers there": ["--out", str(tmp_path / "o3"), "--scheduler", f"tcp://127.0.0.1:{_closed_port()}"],
        "not a scheduler address": ["--out", str(tmp_path / "o4"), "--scheduler", "nonsense://x"],
        "holds input clips": ["--out", root],
        "min_face_ratio must be between 0 and 1": ["--out", str(tmp_path / "o5"), "--min-face-ratio", "1.5"],
    }
    for expected, args in cases.items():
        t = time.perf_counter()
        assert main(["prepare", root, *args, "--no-progress"]) == 2, expected
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0] and err[0].startswith("lesbench prepare: error:"), (expected, err)
        assert time.perf_counter() - t < 15, expected  # refused up front, not after a timeout
    # no work was done: nothing created, the input untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    assert not (tiny_demo / schema.CLIPS_PARQUET).exists() and not (tiny_demo / mf.STATE_DIR).exists()
    # the Python API refuses the same things
    with pytest.raises(UsageError, match="fps"):
        PrepareConfig(fps=float("nan"))
    with pytest.raises(UsageError, match="workers"):
        prepare(tiny_demo, tmp_path / "o6", workers=0, **QUIET)
    with pytest.raises(UsageError, match="holds input clips"):
        prepare(tiny_demo, tiny_demo / "W009", **QUIET)
    assert isinstance(UsageError("x"), ValueError)


def test_dask_scratch_goes_under_the_output_folder_unless_configured(tmp_path) -> None:
    import dask

    from lesbench.cluster import make_local_cluster
    from lesbench.pipelines.prepare_runner import dask_scratch_dir

    out = tmp_path / "out"
    scratch = dask_scratch_dir(out)
    assert scratch == out / mf.STATE_DIR / "dask-scratch-space"
    with make_local_cluster(1, local_directory=str(scratch)) as cluster:
        dirs = [w["local_directory"] for w in cluster.scheduler_info["workers"].values()]
        assert dirs and all(Path(d).parent == scratch for d in dirs), dirs
    with dask.config.set({"temporary-directory": str(tmp_path / "mine")}):
        assert dask_scratch_dir(out) is None  # the user's setting wins


# ------------------------------------------------------------------------------ disk full


class FullDisk:
    """Writes through prepare's writers fail with ENOSPC after ``after`` of them succeeded,
    while ``OUT/.lesbench/reserve`` exists (deleting it frees space, as on a real disk);
    ``forever``: they fail whatever is deleted. Every atomic Parquet or text write, whichever
    module calls it, starts with ``lesbench.atomic.tmp_path``: that is where it is refused."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, out: Path, after: int, forever: bool = False) -> None:
        from lesbench import atomic, io
        from lesbench.extract.face_model import FaceModel

        self.out, self.after, self.forever = out, after, forever
        self.writes = self.refused = 0
        for owner, name in ((atomic, "tmp_path"), (io, "write_video"), (FaceModel, "save")):
            monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name)))

    def _wrap(self, fn):
        def write(*args, **kwargs):
            full = self.writes >= self.after and (self.forever or (self.out / mf.STATE_DIR / "reserve").exists())
            if full:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.writes += 1
            return fn(*args, **kwargs)
        return write


def test_full_disk_gives_failed_rows_then_a_rerun_completes_identically(tiny_demo, tmp_path, monkeypatch, capsys) -> None:
    from lesbench.pipelines.prepare import prepare
    from lesbench.pipelines.validate import validate

    root = tmp_path / "mead"
    shutil.copytree(tiny_demo, root)  # changed below
    for media in list(root.rglob("*.mp4")) + list(root.rglob("*.m4a")):  # 4 clips are enough
        if (media.parent.parent.name, media.parent.name) not in {("neutral", "level_1"), ("happy", "level_3")}:
            media.unlink()
    reference = tmp_path / "reference"
    prepare(root, reference, scheduler="sync", **QUIET)
    n_clips = len(read_clips(reference))
    assert n_clips == 4

    out = tmp_path / "out"
    with monkeypatch.context() as m:
        disk = FullDisk(m, out, after=6)  # the first clip's 4 files, then half of the second
        code = main(["prepare", str(root), "--out", str(out), "--scheduler", "sync", "--no-progress"])
    captured = capsys.readouterr()
    assert disk.refused > 0
    assert code == 1 and "Traceback" not in captured.err
    err = [line for line in captured.err.splitlines() if line.startswith("lesbench prepare: error:")]
    # the first clip's own files were written, but not the face model, so it has no coefficients
    assert len(err) == 1 and f"{n_clips} of {n_clips} clips could not be written" in err[0], captured.err
    assert "No space left on device" in err[0] and "re-run" in err[0]
    clips = read_clips(out).set_index("clip_id")
    assert len(clips) == n_clips  # a row for every clip, written although the disk was full
    assert (clips["status"] == "failed").all() and clips["error"].str.contains("No space left on device").all()
    assert clips["error"].iloc[0].startswith("coefficients not computed: ")
    assert json.loads((out / schema.DATASET_JSON).read_text())["counts"]["by_status"] == {"failed": n_clips}
    assert len(_done_records(out)) == 1  # only the clip written completely is recorded as done
    assert not mf.stale_temps(out) and not (out / mf.STATE_DIR / "reserve").exists()
    assert not validate(out).ok  # an incomplete data set never reads as valid

    # space freed: the re-run completes and equals an undisturbed run
    summary = prepare(root, out, scheduler="sync", **QUIET)
    assert summary.n_reused == 1 and summary.n_write_failed == 0
    assert content_digest(out) == content_digest(reference)
    assert validate(out).ok

    # a disk that stays full: the manifest cannot be written either; one clear error, the
    # done clips kept
    os.utime(next(root.rglob("*.mp4")), None)  # one clip to redo
    with monkeypatch.context() as m:
        FullDisk(m, out, after=0, forever=True)
        with pytest.raises(OutputWriteError, match=r"clips.parquet: could not write: No space left on device.*"
                                                   rf"{n_clips - 1} of {n_clips} clips are done and kept"):
            prepare(root, out, scheduler="sync", **QUIET)


# ------------------------------------------------------------------------------ Ctrl-C


# `lesbench ...` with Ctrl-C handled as in a terminal. A child inherits ignored signals, and a
# child of this test process can start with SIGINT ignored (measured: started after the
# test_prepare module ran, it had SIGINT and SIGQUIT ignored; which library does it is unknown).
_CLI = ("import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from lesbench.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")


def _run_prepare_cli(root: Path, out: Path, *extra: str) -> subprocess.Popen:
    # a session of its own: the test signals its whole process group, as a terminal's Ctrl-C does
    return subprocess.Popen([sys.executable, "-c", _CLI, "prepare", str(root), "--out", str(out),
                             "--no-progress", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


@pytest.mark.slow
def test_ctrl_c_mid_run_on_a_local_cluster_then_resume_equals_an_undisturbed_run(tiny_demo, tmp_path) -> None:
    reference = tmp_path / "reference"
    proc = _run_prepare_cli(tiny_demo, reference, "--workers", "2")
    assert proc.wait(300) == 0, proc.stderr.read()

    out = tmp_path / "out"
    proc = _run_prepare_cli(tiny_demo, out, "--workers", "2")
    deadline = time.time() + 300
    while len(_done_records(out)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "prepare finished before it could be interrupted"
    status = [line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
              if line.startswith(("SigIgn", "SigCgt", "SigBlk"))] if Path("/proc").is_dir() else []
    os.killpg(proc.pid, signal.SIGINT)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (status, stdout, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("lesbench prepare:")]
    n_done = len(_done_records(out))
    assert lines == [f"lesbench prepare: interrupted: {n_done} of 8 clips are done and kept; "
                     "re-run the same command to resume"]
    time.sleep(2)  # nothing left running may record a clip after the run has ended
    assert len(_done_records(out)) == n_done < 8
    for path in _done_records(out):  # every clip recorded as done is complete
        row = json.loads(path.read_text())["row"]
        assert row["status"] == "ok" and row["face_ratio"] == 1.0, row

    proc = _run_prepare_cli(tiny_demo, out, "--workers", "2")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"{n_done} of 8 clips already done" in err
    clips = read_clips(out)
    assert (clips["status"] == "ok").all() and (clips["face_ratio"] == 1.0).all()
    assert content_digest(out) == content_digest(reference)


def test_local_clusters_outside_prepare_keep_scratch_in_the_cache(tmp_path, monkeypatch):
    """score/evaluate's local clusters: scratch in lesbench's cache, never the working directory;
    a configured Dask temporary-directory wins."""
    import dask

    from lesbench.cluster import scratch_dir

    monkeypatch.setenv("LESBENCH_CACHE", str(tmp_path / "cache"))
    assert scratch_dir() == tmp_path / "cache" / "dask-scratch-space"
    with dask.config.set({"temporary-directory": str(tmp_path / "mine")}):
        assert scratch_dir() is None
