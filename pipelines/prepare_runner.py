"""Where ``prepare``'s tasks run: a Dask cluster (local, or attached with ``--scheduler``) or,
with ``scheduler="sync"``, this process; and the tasks themselves.

Each worker holds one :class:`_ProcessorPlugin` per run, which makes the per-clip processors
(:mod:`lesbench.pipelines.prepare_clip`) once, so the landmarker is set up once per worker.
The cluster side is :class:`lesbench.cluster.DaskPool`, shared with ``score``; results stream
back as they finish.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from distributed.diagnostics.plugin import WorkerPlugin

from lesbench import schema
from lesbench.cluster import DaskPool, scratch_dir, worker_plugin
from lesbench.errors import UsageError
from lesbench.pipelines.manifest import STATE_DIR
from lesbench.pipelines.prepare_clip import ClipProcessor, CoeffsProcessor
from lesbench.pipelines.prepare_config import PrepareConfig, one_line
from lesbench.pipelines.prepare_lock import RunLease

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


def _worker_plugin(name: "str | _ProcessorPlugin") -> _ProcessorPlugin:
    """This run's plugin: on a worker, the one registered as ``name``; in-process (``scheduler
    ="sync"``), the plugin object itself is passed."""
    return name if isinstance(name, _ProcessorPlugin) else worker_plugin(name)


def prepare_task(clip: schema.Clip, out: str, config: PrepareConfig, plugin: Any,
                 lease: RunLease | None = None) -> dict[str, Any]:
    """Pass 1 of one clip on this worker; returns its manifest row."""
    if lease is not None:
        lease.check()  # before the landmarker is made: a worker left behind takes no new clip
    return _worker_plugin(plugin).clip_processor().prepare_clip(clip, out, lease)


def coeffs_task(clip_id: str, out: str, model_path: str, sha: str, config: PrepareConfig,
                plugin: Any, lease: RunLease | None = None) -> tuple[str, float, str | None, bool]:
    """Pass 2 of one clip on this worker (see :meth:`CoeffsProcessor.coeffs_clip`)."""
    return _worker_plugin(plugin).coeffs_processor(model_path, sha).coeffs_clip(clip_id, out, lease)


def dask_scratch_dir(out: str | os.PathLike) -> Path | None:
    """Where a local cluster's workers keep their scratch space (spilled data, locks):
    ``OUT/.lesbench/dask-scratch-space``, next to the data it serves and out of the data set,
    unless the user configured Dask's ``temporary-directory`` (then None: theirs is used)."""
    return scratch_dir(Path(out) / STATE_DIR)


class Runner:
    """Where the tasks run: a :class:`~lesbench.cluster.DaskPool` (a local cluster, or an
    attached one) or, with ``scheduler="sync"``, this process (for debugging and profiling).

    What prepare adds to the pool: the cluster is started (or attached to) on the first task,
    so a re-run with nothing left to do starts none, and registered plugins are sent to the
    workers at that point; a local cluster's workers ignore SIGINT; an unreachable scheduler is
    a :class:`UsageError`; and ``on_abort`` runs before the cluster is shut down.
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None,
                 local_directory: str | os.PathLike | None = None,
                 on_abort: Callable[[], None] | None = None) -> None:
        """``local_directory``: scratch space of a local cluster's workers (None: Dask's
        default). ``on_abort``: called first when the ``with`` block ends with an exception
        (Ctrl-C...), before the cluster is shut down, so that clips still running on it
        cannot commit results (see :class:`~lesbench.pipelines.prepare_lock.RunLease`)."""
        self.scheduler = scheduler
        self.progress = progress
        self.on_abort = on_abort
        self._pool = DaskPool(workers=workers, scheduler=None if scheduler == "sync" else scheduler,
                              progress=progress, log=log or (lambda msg: print(msg, file=sys.stderr)),
                              local_directory=local_directory)
        self._local: _ProcessorPlugin | None = None
        self._pending: dict[str, PrepareConfig] = {}
        #: seconds spent starting the cluster and the workers' landmarkers
        self.startup_s = 0.0

    @property
    def sync(self) -> bool:
        return self.scheduler == "sync"

    @property
    def dashboard(self) -> str | None:
        return self._pool.dashboard

    def __enter__(self) -> "Runner":
        return self

    def _start(self) -> None:
        if self.sync or self._pool.client is not None:
            return
        t = time.perf_counter()
        try:
            self._pool.start()
        except (OSError, TimeoutError) as exc:
            if not self.scheduler:
                raise
            raise UsageError(f"cannot connect to the Dask scheduler {self.scheduler}: {one_line(str(exc))}") from None
        if not self.scheduler:
            self._pool.client.register_plugin(_IgnoreInterrupts(), name="lesbench-ignore-sigint")
        for name, config in self._pending.items():
            self._pool.register(_ProcessorPlugin(name, config), name=name)
        self._pending.clear()
        self.startup_s += time.perf_counter() - t

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self.on_abort is not None:
            self.on_abort()
        if self._local is not None:
            self._local.teardown(None)
        # an attached cluster outlives this run: the pool frees the workers' landmarkers
        self._pool.__exit__(exc_type, *exc)

    def register(self, name: str, config: PrepareConfig) -> None:
        """Give every worker a :class:`_ProcessorPlugin` called ``name`` (when they start)."""
        if self.sync:
            self._local = self._local or _ProcessorPlugin(name, config)
        elif self._pool.client is None:
            self._pending[name] = config
        else:
            self._pool.register(_ProcessorPlugin(name, config), name=name)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one task (on a worker when there is a cluster) and return its result."""
        if self.sync:
            return fn(*args)
        self._start()
        return self._pool.client.submit(fn, *args, pure=False, retries=2).result()

    def map(self, fn: Callable[..., Any], items: Sequence[Any], args: tuple, keys: Sequence[str],
            desc: str) -> Iterator[tuple[int, Any, BaseException | None]]:
        """Run ``fn(item, *args)`` for every item; yields (index, result, error) as they finish."""
        if not self.sync:
            if items:
                self._start()
                yield from self._pool.map(fn, items, args, keys, desc)
            return
        from tqdm import tqdm

        local = tuple(self._local if isinstance(a, str) and a == self._local.name else a for a in args)
        bar = tqdm(total=len(items), desc=desc, unit="clip", disable=not self.progress or not items,
                   file=sys.stderr, dynamic_ncols=True)
        try:
            for i, item in enumerate(items):
                res = fn(item, *local)
                bar.update(1)
                yield i, res, None
        finally:
            bar.close()
