"""``lesbench score PRED [--ref REF] [--metrics ...] [--protocol mead-v1] [--json OUT.json]``."""

from __future__ import annotations

import argparse

from lesbench.commands import Command

DESCRIPTION = """\
Score generated videos (PRED) against references (REF) under a versioned protocol.

PRED and REF are folders of videos paired by relative path, MEAD-layout trees (emotion and
level read from the path) or prepared data sets (dataset.json present: crops/ are used).
Clips of different lengths are paired frame by frame (the protocol's linspace rule). Prints
one line per metric value with a bootstrap 95% CI over clips, then counts (clips and frames
scored, values that could not be computed, by reason); metrics that cannot run
here (missing weights or packages) are listed with the reason, and clips without audio or
without a face are listed per clip. --json writes everything (per-clip values, versions,
protocol, weight sha256).

examples:
  lesbench score gen/ --ref mead/ --metrics lmd,sync,au
  lesbench score gen/ --metrics sync --json sync.json
  lesbench score gen/ --ref mead/ --workers 4 --device cuda --batch-size 64
  lesbench score eat_out/ --ref mead/ --protocol eat-mead --metrics psnr,ssim,lmd,fid --clips mead100.txt
"""


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers N | --scheduler ADDRESS`` (score and evaluate)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="score clips in parallel on a local Dask cluster of N processes (default: this process)")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="score clips on the Dask cluster at this address")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", help="generated videos: folder, MEAD tree or prepared data set")
    p.add_argument("--ref", default=None, help="reference videos, paired with PRED by relative path / clip id")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names (default: the protocol's `metrics`, else fid,psnr,ssim,"
                        "lpips,csim,lmd,sync,lse,au,emotion; `lesbench ls metrics` lists them)")
    p.add_argument("--protocol", default="mead-v1",
                   help="protocol name or path of a protocol .yaml (default mead-v1; eat-mead reproduces EAT's "
                        "evaluation code, see docs/protocols.md)")
    p.add_argument("--clips", default=None, metavar="FILE",
                   help="score only the clips listed in FILE (one clip id or EAT-style name such as "
                        "M003_ang_3_001 per line); default: the protocol's clip_list, else every clip")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT.json", help="write the full report here")
    p.add_argument("--syncnet-weights", default=None, metavar="PATH",
                   help="syncnet_v2.model for LSE-C/LSE-D (else lesbench's weights resolver)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="torch device for network metrics (default auto: cuda if present, else cpu)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="frames per network batch for Inception (FID/KID) and LPIPS (default 32 / 16)")
    add_cluster_arguments(p)
    p.add_argument("--progress", action="store_true", help="print one line per clip")


def _run(args: argparse.Namespace) -> int:
    from lesbench.metrics.score import score

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    options: dict[str, dict] = {"lse": {"weights_path": args.syncnet_weights}} if args.syncnet_weights else {}
    if args.batch_size is not None:
        options.update(fid={"batch_size": args.batch_size}, kid={"batch_size": args.batch_size},
                       lpips={"batch": args.batch_size})
    report = score(args.pred, ref=args.ref, metrics=metrics, protocol=args.protocol, device=args.device,
                   metric_options=options, progress=args.progress, clips=args.clips,
                   workers=args.workers, scheduler=args.scheduler)
    print(report.table())
    if args.json_out:
        path = report.write_json(args.json_out)
        print(f"\nwrote {path}")
    return 0


COMMANDS = [Command("score", "score generated videos against references (metrics + bootstrap CIs)",
                    _add_arguments, _run, order=60, description=DESCRIPTION)]


def _add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=250, help="frames per measurement (default 250 = 10 s)")
    p.add_argument("--repeat", type=int, default=3, help="repeat each measurement, keep the fastest (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_bench(args: argparse.Namespace) -> int:
    """Frames/s per metric family; families from other metric modules join through
    ``lesbench.metrics.<module>:bench_*_families`` functions listed in BENCH_FAMILY_PROVIDERS."""
    import importlib
    import json

    fps: dict[str, float] = {}
    for target in BENCH_FAMILY_PROVIDERS:
        module, _, attr = target.partition(":")
        provider = getattr(importlib.import_module(module), attr)
        fps.update(provider(n_frames=args.frames, repeat=args.repeat))
    if args.json:
        print(json.dumps(fps, indent=2))
    else:
        lines = [f"{'family':<18}{'frames/s (1 core, 256x256)':>28}"] + [f"{k:<18}{v:>28.1f}" for k, v in fps.items()]
        print("\n".join(lines))
    return 0


#: ``module:function(n_frames, repeat) -> {family: frames/s}`` providers for `lesbench bench score`.
BENCH_FAMILY_PROVIDERS: list[str] = [
    "lesbench.metrics.bench_sync:bench_sync_families",
    "lesbench.metrics.bench:bench_image_families",  # FID, PSNR, SSIM, LPIPS, CSIM, emotion
]


def _benchmarks() -> list:
    from lesbench.commands.bench import Benchmark

    return [Benchmark("score", "frames/s of each metric family on 256x256 crops (CPU, one core)",
                      _add_bench_arguments, _run_bench)]


BENCHMARKS = _benchmarks()
