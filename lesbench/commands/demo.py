"""``lesbench demo``: everything end to end on the synthetic demo data set."""

from __future__ import annotations

import argparse

from lesbench.commands import Command

_STEPS = ("data", "prepare", "les", "train", "classifier", "edit", "evaluate", "leaderboard")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--seed", type=int, default=0, help="demo data and training seed (default: 0)")
    p.add_argument("--tiny", action="store_true", help="a few ~1 s clips: a smoke run in about a minute")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    p.add_argument("--steps", default=",".join(_STEPS),
                   help=f"comma-separated subset of: {','.join(_STEPS)} (default: all)")
    p.add_argument("--epochs", type=int, default=None, help="override training epochs")
    p.add_argument("--max-clips", type=int, default=None, help="evaluate only the first N test clips")
    p.add_argument("--force", action="store_true", help="redo steps whose output already exists")
    p.add_argument("--check", action="store_true",
                   help="then compare the results with the committed reference (exact counts and hashes, "
                        "a stated tolerance per metric); exits 1 on a FAIL. On a finished output folder "
                        "finished steps are skipped (the edit step renders its few clips again)")
    p.add_argument("--reference", default=None,
                   help="reference for --check: a .jsonl reference file or a results folder "
                        "(default: the committed one for the full or --tiny demo)")
    p.add_argument("--verbose", action="store_true",
                   help="with --check: list every compared count, version and hash, not only differences")
    p.add_argument("--write-reference", default=None, metavar="FILE",
                   help="after the run, write its results and step digests to FILE as a reference "
                        "(how the committed tiny reference is made)")


def _run(args: argparse.Namespace) -> int:
    from lesbench.demo.run import run_demo

    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    run = run_demo(args.out, seed=args.seed, tiny=args.tiny, workers=args.workers, steps=steps,
                   force=args.force, epochs=args.epochs, max_clips=args.max_clips)
    if args.write_reference:
        from lesbench.demo.reference import write_reference

        command = "lesbench demo" + (" --tiny" if args.tiny else "") + (f" --seed {args.seed}" if args.seed else "")
        path = write_reference(run.out, args.write_reference, tiny=args.tiny, command=command)
        print(f"reference written to {path}")
    if args.check:
        from lesbench.demo.check import check_demo

        report = check_demo(run.out, args.reference, tiny=args.tiny)
        print(report.format(verbose=args.verbose))
        return 0 if report.ok else 1
    return 0


COMMANDS = [Command("demo", "run everything end to end on the synthetic demo data set "
                    "(generate, prepare, LES, train, emotion classifier, edit, evaluate, leaderboard)", _add_arguments, _run, order=1)]
