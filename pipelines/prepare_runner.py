"""Where ``prepare``'s tasks run: a Dask cluster (local, or attached with ``--scheduler``) or,
with ``scheduler="sync"``, this process; and the tasks themselves.

Each worker holds one :class:`_ProcessorPlugin` per run, which makes the per-clip processors
(:mod:`lesbench.pipelines.prepare_clip`) once, so the landmarker is set up once per worker.
Results stream back as they finish (:func:`lesbench.cluster.map_as_completed`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from distributed.diagnostics.plugin import WorkerPlugin

from lesbench import schema
from lesbench.cluster import make_local_cluster, map_as_completed
from lesbench.errors import UsageError
from lesbench.pipelines.manifest import STATE_DIR
from lesbench.pipelines.prepare_clip import ClipProcessor, CoeffsProcessor
from lesbench.pipelines.prepare_config import PrepareConfig, one_line
from lesbench.pipelines.prepare_lock import RunLease

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client


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


def prepare_task(clip: schema.Clip, out: str, config: PrepareConfig, plugin: Any,
                 lease: RunLease | None = None) -> dict[str, Any]:
    """Pass 1 of one clip on this worker; returns its manifest row."""
    if lease is not None:
        lease.check()  # before the landmarker is made: a worker left behind takes no new clip
    return _worker_plugin(plugin, config).clip_processor().prepare_clip(clip, out, lease)


def coeffs_task(clip_id: str, out: str, model_path: str, sha: str, config: PrepareConfig,
                plugin: Any, lease: RunLease | None = None) -> tuple[str, float, str | None, bool]:
    """Pass 2 of one clip on this worker (see :meth:`CoeffsProcessor.coeffs_clip`)."""
    return _worker_plugin(plugin, config).coeffs_processor(model_path, sha).coeffs_clip(clip_id, out, lease)


def dask_scratch_dir(out: str | os.PathLike) -> Path | None:
    """Where a local cluster's workers keep their scratch space (spilled data, locks):
    ``OUT/.lesbench/dask-scratch-space``, next to the data it serves and out of the data set,
    unless the user configured Dask's ``temporary-directory`` (then None: theirs is used)."""
    import dask

    if dask.config.get("temporary-directory", None):
        return None
    return Path(out) / STATE_DIR / "dask-scratch-space"


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
                raise UsageError(f"cannot connect to the Dask scheduler {self.scheduler}: {one_line(str(exc))}") from None
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
