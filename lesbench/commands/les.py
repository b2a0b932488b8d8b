"""``lesbench les build``: the Linear Emotion Space from a prepared data set."""

from __future__ import annotations

import argparse

from lesbench.commands import Command


def _add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="les_command", metavar="ACTION", required=True)
    b = sub.add_parser(
        "build",
        help="build the LES artefact + report from a prepared data set's train split",
        description=(
            "Build the Linear Emotion Space (per-speaker neutral AU references, per-emotion "
            "directions, level scales, facial units) from the train split of PREPARED, and write "
            "les.json + les.npz + report.md + PNG plots into --out."
        ),
    )
    b.add_argument("prepared", metavar="PREPARED", help="prepared data set (output of `lesbench prepare`)")
    b.add_argument("--out", metavar="LES_DIR", default=None, help="output folder (default: PREPARED/les)")
    b.add_argument("--robust", choices=["median", "trimmed", "mean"], default="median",
                   help="robust mean over train speakers (default: median)")
    b.add_argument("--split", default="train", help="split the LES is built from (default: train)")
    b.add_argument("--bilateral", action="store_true",
                   help="build on the 30-d bilateral AU set (left and right AUs apart where MediaPipe gives both; "
                        "needs a data set prepared with action-units stage 2); the report then also shows the "
                        "averaged set's held-out separation. LES-Talker trains on the default averaged LES")
    s = sub.add_parser("show", help="print the report of an LES folder")
    s.add_argument("les_dir", metavar="LES_DIR")


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lesbench.les.report import report_text, write_report
    from lesbench.les.space import LinearEmotionSpace, build_les

    if args.les_command == "show":
        print(report_text(LinearEmotionSpace.load(args.les_dir, allow_bilateral=True)), end="")
        return 0
    out = Path(args.out) if args.out else Path(args.prepared) / "les"
    space = build_les(args.prepared, robust=args.robust, train_split=args.split, bilateral=args.bilateral)
    space.save(out)
    written = write_report(space, out)
    print(report_text(space), end="")
    print(f"wrote {out / 'les.json'}, {out / 'les.npz'} and {', '.join(p.name for p in written)}")
    return 0


COMMANDS = [Command("les", "Linear Emotion Space: build from prepared data, show its report", _add_arguments, _run, order=25)]
