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
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="device of the network families and of the end-to-end runs (default auto)")
    p.add_argument("--workers", default="1,2", metavar="N,M",
                   help="end to end: numbers of Dask workers to time (default 1,2; speed-ups are over 1 worker)")
    p.add_argument("--ref", default=None, metavar="DIR",
                   help="end to end: reference videos to score against (default: the tiny demo, generated)")
    p.add_argument("--metrics", default=None,
                   help="end to end and evaluate: comma-separated metrics (default: the protocol's)")
    p.add_argument("--protocol", default="demo-v1", help="end to end: protocol (default demo-v1)")
    p.add_argument("--evaluate-data", default=None, metavar="PREPARED",
                   help="evaluate end to end on this prepared data set's test split (e.g. the full demo's "
                        "prepared/); default: the tiny demo, generated and prepared first")
    p.add_argument("--evaluate-method", default="static", help="evaluate end to end: the method (default static)")
    p.add_argument("--evaluate-checkpoint", default=None, help="evaluate end to end: the method's checkpoint")
    p.add_argument("--evaluate-protocol", default=None,
                   help="evaluate end to end: protocol (default: --protocol)")
    p.add_argument("--evaluate-max-clips", type=int, default=None, help="evaluate end to end: first N test clips")
    p.add_argument("--evaluate-workers", type=int, default=None,
                   help="evaluate end to end on N Dask workers (default: in this process)")
    p.add_argument("--skip", choices=["families", "end-to-end", "evaluate"], default=None, action="append",
                   help="leave out a part (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_bench(args: argparse.Namespace) -> int:
    """Frames/s per metric family; families from other metric modules join through
    ``lesbench.metrics.<module>:bench_*_families`` functions listed in BENCH_FAMILY_PROVIDERS.
    Then ``score`` end to end in one process and on 1 and 2 workers."""
    import importlib
    import inspect
    import json

    from lesbench.metrics.score import resolve_device

    device = resolve_device(args.device)
    skip = set(args.skip or ())
    out: dict = {}
    if "families" not in skip:
        fps: dict[str, float] = {}
        for target in BENCH_FAMILY_PROVIDERS:
            module, _, attr = target.partition(":")
            provider = getattr(importlib.import_module(module), attr)
            kwargs = {"device": device} if "device" in inspect.signature(provider).parameters else {}
            fps.update(provider(n_frames=args.frames, repeat=args.repeat, **kwargs))
        out["families"] = fps
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if "end-to-end" not in skip:
        from lesbench.metrics.bench import bench_score_workers

        workers = [int(w) for w in args.workers.split(",") if w.strip()]
        out["end_to_end"] = bench_score_workers(args.ref, workers=workers, metrics=metrics, protocol=args.protocol,
                                                device=device)
    if "evaluate" not in skip:
        import sys

        from lesbench.metrics.bench import bench_evaluate

        out["evaluate"] = bench_evaluate(args.evaluate_data, method=args.evaluate_method,
                                         protocol=args.evaluate_protocol or args.protocol,
                                         max_clips=args.evaluate_max_clips, device=device,
                                         workers=args.evaluate_workers, checkpoint=args.evaluate_checkpoint,
                                         metrics=metrics, log=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    lines = []
    if "families" in out:
        lines += [f"{'family':<18}{'frames/s (1 core, 256x256)':>28}"]
        lines += [f"{k:<18}{v:>28.1f}" for k, v in out["families"].items()]
    if "end_to_end" in out:
        e = out["end_to_end"]
        lines += ["", f"score end to end: {e['n_clips']} clips, {e['n_frames']} frames, protocol {e['protocol']}",
                  f"{'run':<14}{'seconds':>10}{'frames/s':>10}{'speed-up':>10}"]
        for k, r in e["runs"].items():
            sp = e["speedup"].get(k)
            lines.append(f"{k:<14}{r['seconds']:>10.1f}{r['frames_per_s']:>10.1f}{(f'{sp:.2f}' if sp else '-'):>10}")
        lines.append("reports identical across runs: " + ("yes" if e["same_results"] else "NO"))
        for key, val in e.items():
            if key.startswith("differs_from_"):
                lines += [f"  {run}: {', '.join(what)} differ from {key[len('differs_from_'):]}" for run, what in val.items()]
    if "evaluate" in out:
        lines += [""] + _evaluate_lines(out["evaluate"], out.get("families", {}))
    print("\n".join(lines))
    return 0


def _evaluate_lines(e: dict, families: dict[str, float]) -> list[str]:
    """The evaluate run's steps and scoring stages; for a stage that is one metric family, its
    isolated frames/s (measured above in the same run) and the ratio of the stage's time per
    generated frame to the isolated time per frame (1.0: the scorer adds nothing; a metric that
    reads only some frames, or the reference's frames too, moves the ratio below or above)."""
    steps = e.get("steps", {})
    n = max(int(e["n_frames"]), 1)
    lines = [f"evaluate end to end: {e['method']} on {e['data']}, {e['n_clips']} clips, {e['n_frames']} generated "
             f"frames, protocol {e['protocol']}" + (f", {e['workers']} workers" if e.get("workers") else ""),
             f"  total {e['seconds']:.1f} s ({e['frames_per_s']:.2f} generated frames/s): generating "
             f"{steps.get('generating', float('nan')):.1f} s, scoring {steps.get('scoring', float('nan')):.1f} s, "
             f"sweep {steps.get('sweep', float('nan')):.1f} s",
             f"  {'scoring stage':<22}{'seconds':>9}{'ms/frame':>10}{'isolated ms/frame':>19}{'ratio':>7}"]
    for stage, sec in sorted(steps.get("scoring_stages", {}).items(), key=lambda kv: -kv[1]):
        family = stage.split(" ", 1)[1] if stage.startswith("metric ") else None
        fps = families.get(family) if family else None
        iso = 1000.0 / fps if fps and fps == fps else None
        per = 1000.0 * sec / n
        lines.append(f"  {stage:<22}{sec:>9.1f}{per:>10.1f}" + (f"{iso:>19.1f}{per / iso:>7.2f}" if iso else ""))
    return lines


#: ``module:function(n_frames, repeat) -> {family: frames/s}`` providers for `lesbench bench score`.
BENCH_FAMILY_PROVIDERS: list[str] = [
    "lesbench.metrics.bench_sync:bench_sync_families",
    "lesbench.metrics.bench:bench_image_families",  # FID, PSNR, SSIM, LPIPS, CSIM, emotion
]


def _benchmarks() -> list:
    from lesbench.commands.bench import Benchmark

    return [Benchmark("score", "frames/s of each metric family on 256x256 crops, and score end to end with 1 and "
                      "2 workers",
                      _add_bench_arguments, _run_bench)]


BENCHMARKS = _benchmarks()
