"""The Dask engine shared by ``prepare``, ``score`` and ``evaluate``: a local cluster set up for
per-clip video work, or an attached one (``--scheduler tcp://host:8786``), and an ordered map
over it with a progress bar.

    with DaskPool(workers=2) as pool:
        for i, result, error in pool.map(fn, items, args=(plugin_name,), keys=keys, desc="score"):
            ...

Per-worker state (a face tracker, an Inception network) lives in a ``WorkerPlugin`` that the
caller registers with :meth:`DaskPool.register`; a task finds it with :func:`worker_plugin`.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from distributed.diagnostics.plugin import WorkerPlugin

from lesbench.weights import cache_dir


def scratch_dir(base: Path | None = None) -> Path | None:
    """Scratch space of a local cluster's workers (spilled data, locks): ``dask-scratch-space``
    in ``base`` (default: lesbench's cache folder, never the working directory); None when the
    user configured Dask's ``temporary-directory`` (theirs is used)."""
    import dask

    if dask.config.get("temporary-directory", None):
        return None
    return (base if base is not None else cache_dir().parent) / "dask-scratch-space"


def make_local_cluster(workers: int | None = None, **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster``: ``workers`` processes (default: CPU count), one thread
    each, dashboard on a free port. ``kwargs`` go to ``LocalCluster``; without
    ``local_directory`` the workers' scratch space is :func:`scratch_dir`.

    The nanny's default ``MALLOC_TRIM_THRESHOLD_=65536`` turns every large frame buffer into an
    mmap/munmap pair (measured ~40% slower on 1080p decoding); it is unset so glibc decides.
    """
    import dask
    from distributed import LocalCluster

    n = workers or os.cpu_count() or 1
    opts: dict[str, Any] = dict(n_workers=n, threads_per_worker=1, processes=True,
                                dashboard_address=":0", silence_logs=40)
    scratch = scratch_dir()
    if scratch is not None:
        opts["local_directory"] = str(scratch)
    opts.update(kwargs)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(**opts)


class LazyWorkerState(WorkerPlugin):
    """Per-worker state made once, on the first task that asks for it (:meth:`get`), in that
    task's thread: ``factory(*args)``. Its ``close()``, if any, runs when the worker stops or
    the plugin is removed. ``factory`` and ``args`` must pickle."""

    def __init__(self, factory: Callable[..., Any], *args: Any) -> None:
        self.factory = factory
        self.args = args
        self._state: Any = None

    def get(self) -> Any:
        if self._state is None:
            self._state = self.factory(*self.args)
        return self._state

    def teardown(self, worker: Any) -> None:
        close = getattr(self._state, "close", None)
        if callable(close):
            close()
        self._state = None


def worker_plugin(name: str) -> Any:
    """The plugin ``name`` registered on the worker running the current task.

    Raises:
        RuntimeError: no such plugin on this worker (it was not registered).
    """
    from distributed import get_worker

    plugin = get_worker().plugins.get(name)
    if plugin is None:
        raise RuntimeError(f"worker plugin {name!r} is not registered on this worker")
    return plugin


def map_as_completed(client: Any, fn: Callable[..., Any], items: Sequence[Any], args: Sequence[Any],
                     keys: Sequence[str], desc: str) -> Iterator[tuple[int, Any, BaseException | None]]:
    """Submit ``fn(item, *args)`` for every item on ``client`` (task keys from ``desc`` and
    ``keys``, made unique per call; two retries, e.g. after a lost worker) and yield
    ``(index, result, error)`` as tasks finish: a task that failed yields its exception, never
    raises. Futures are released as they are read, so results do not pile up on the cluster."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = client.map(fn, list(items), *[[a] * len(items) for a in args],
                         key=[f"lesbench-{desc}-{token}-{k}" for k in keys], retries=2, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    for fut in as_completed(futures):
        i = index[fut.key]
        try:
            res, err = fut.result(), None
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after retries
            res, err = None, exc
        fut.release()
        yield i, res, err


class DaskPool:
    """A Dask client on a new local cluster (``workers``) or an attached one (``scheduler``),
    started on first use and closed on exit. Plugins registered here are removed from an
    attached cluster on exit (it outlives the run)."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, progress: bool = True,
                 log: Callable[[str], None] | None = None, local_directory: str | os.PathLike | None = None) -> None:
        """``local_directory``: scratch space of a local cluster's workers (default:
        :func:`scratch_dir`)."""
        self.workers = workers
        self.scheduler = scheduler
        self.local_directory = local_directory
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.client: Any = None
        self._cluster: Any = None
        self._plugins: list[str] = []
        self.dashboard: str | None = None
        #: seconds spent starting (or attaching to) the cluster
        self.startup_s = 0.0

    def __enter__(self) -> "DaskPool":
        return self

    def start(self) -> None:
        if self.client is not None:
            return
        from distributed import Client

        t = time.perf_counter()
        if self.scheduler:
            self.client = Client(self.scheduler, timeout="30s")
        else:
            extra = {"local_directory": str(self.local_directory)} if self.local_directory else {}
            self._cluster = make_local_cluster(self.workers, **extra)
            self.client = Client(self._cluster)
        self.dashboard = self.client.dashboard_link
        self.log(f"Dask dashboard: {self.dashboard}")
        self.startup_s += time.perf_counter() - t

    def register(self, plugin: Any, name: str) -> None:
        """Give every worker (present and future) ``plugin`` under ``name``."""
        self.start()
        self.client.register_plugin(plugin, name=name)
        self._plugins.append(name)

    def map(self, fn: Callable[..., Any], items: Sequence[Any], args: tuple = (), keys: Sequence[str] | None = None,
            desc: str = "task") -> Iterator[tuple[int, Any, BaseException | None]]:
        """Run ``fn(item, *args)`` for every item; yields ``(index, result, error)`` as tasks
        finish (any order: callers that need a fixed order sort by index)."""
        from tqdm import tqdm

        if not items:
            return
        self.start()
        keys = list(keys) if keys is not None else [str(i) for i in range(len(items))]
        bar = tqdm(total=len(items), desc=desc, unit="clip", disable=not self.progress,
                   file=sys.stderr, dynamic_ncols=True)
        try:
            for i, res, err in map_as_completed(self.client, fn, items, args, keys, desc):
                bar.update(1)
                yield i, res, err
        finally:
            bar.close()

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            if self._cluster is None:
                for name in self._plugins:
                    try:
                        self.client.unregister_worker_plugin(name)
                    except Exception:  # noqa: BLE001 - best effort; the run itself is done
                        pass
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
