"""One ``prepare`` per output folder at a time, and how a run ends.

:class:`RunLock` is ``OUT/.lesbench/lock`` (``host pid token``); its :class:`RunLease` travels
with every task, which checks it before each write, so a clip still running when its run was
interrupted (or on a cluster that outlived its client) never records itself as done.
:func:`reserved_space` keeps room for the manifest on a filling disk, and
:func:`interrupts_end_cleanly` turns Ctrl-C and SIGTERM into :class:`~lesbench.errors.Interrupted`
(docs/prepare-interruptions.md).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from lesbench.atomic import write_text
from lesbench.errors import DatasetError, Interrupted, LesbenchError
from lesbench.pipelines.manifest import STATE_DIR


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



class RunLock:
    """``OUT/.lesbench/lock``: one prepare per output folder at a time. Holds
    ``host pid token``; :attr:`lease` is what the run's tasks check."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.path = Path(out) / STATE_DIR / "lock"
        self.token = uuid.uuid4().hex
        self.lease = RunLease(str(self.path), self.token)

    def revoke(self) -> None:
        """Keep the folder locked but end the lease: tasks still running stop writing."""
        try:
            write_text(self.path, f"{socket.gethostname()} {os.getpid()} revoked\n")
        except OSError:  # a full disk: removing the lock ends the lease too
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
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


@contextmanager
def reserved_space(path: Path, nbytes: int) -> Iterator[Path]:
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
def interrupts_end_cleanly(n_done: Callable[[], int], n_clips: int) -> Iterator[None]:
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
