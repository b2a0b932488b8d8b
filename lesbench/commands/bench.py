"""``lesbench bench <name>``: performance benchmarks that print figures (not timed tests).

Sub-benchmarks are collected from every module in :mod:`lesbench.commands` that defines
``BENCHMARKS = [Benchmark(...)]``, so a new one (e.g. ``bench score``) is added by writing its
own command module, without editing this one::

    # lesbench/commands/score_bench.py
    from lesbench.commands.bench import Benchmark
    BENCHMARKS = [Benchmark("score", "metric throughput", _add_arguments, _run)]

(``COMMANDS`` is optional in such a module.) ``bench prepare`` is defined here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from lesbench.commands import Command


@dataclass(frozen=True)
class Benchmark:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _add_prepare_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="MEAD-layout folder to take clips from (e.g. the demo data)")
    p.add_argument("--clips", type=int, default=8, help="clips to use (default 8)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each built 1080p clip (default 4)")
    p.add_argument("--as-is", action="store_true", help="benchmark the clips as they are (no 1920x1080 30 fps set)")
    p.add_argument("--repeat", type=int, default=1, help="repeat each measurement, keep the fastest (default 1)")
    p.add_argument("--work-dir", default=None, help="where to build the clip set and outputs (kept); default a temp dir")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_prepare_bench(args: argparse.Namespace) -> int:
    import sys

    from lesbench.pipelines.bench import bench_prepare, format_result, to_json

    result = bench_prepare(args.root, n_clips=args.clips, as_is=args.as_is, seconds=args.seconds,
                           work_dir=args.work_dir, repeat=args.repeat,
                           log=lambda m: print(m, file=sys.stderr))
    print(to_json(result) if args.json else format_result(result))
    return 0


BUILTIN = [Benchmark("prepare", "throughput of `lesbench prepare` vs decode + landmarks (the ceiling)",
                     _add_prepare_bench, _run_prepare_bench)]


def discover() -> list[Benchmark]:
    """Built-in benchmarks plus every ``BENCHMARKS`` list in :mod:`lesbench.commands` modules."""
    import lesbench.commands as pkg

    found = {b.name: b for b in BUILTIN}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name == "bench":
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for b in getattr(module, "BENCHMARKS", []):
            found.setdefault(b.name, b)
    return [found[k] for k in sorted(found)]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for b in discover():
        bp = sub.add_parser(b.name, help=b.help, description=b.help,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        b.add_arguments(bp)
        bp.set_defaults(_bench_run=b.run)


def _run(args: argparse.Namespace) -> int:
    run = getattr(args, "_bench_run", None)
    if run is None:
        names = ", ".join(b.name for b in discover())
        print(f"lesbench bench: choose a benchmark ({names}); see `lesbench bench --help`")
        return 2
    return int(run(args) or 0)


COMMANDS = [Command("bench", "performance benchmarks that print figures (prepare, ...)", _add_arguments, _run, order=80)]
