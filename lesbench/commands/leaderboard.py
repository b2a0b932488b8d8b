"""``lesbench leaderboard``: render measured results and paper-reported numbers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lesbench.commands import Command
from lesbench.errors import LesbenchError

_FORMATS = ("md", "latex", "csv", "bib", "png")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", default=None,
                   help="only this benchmark (protocol name, e.g. mead-v1); default: all")
    p.add_argument("--format", default="md", choices=_FORMATS,
                   help="md (default), latex (booktabs, \\cite per row), csv, bib, png")
    p.add_argument("--out", default=None,
                   help="write here instead of stdout (required for png); with --format latex "
                        "the matching .bib is written next to it")
    p.add_argument("--results", default=None,
                   help="folder of measured results (*.json from `lesbench evaluate`); "
                        "default: the results shipped with lesbench")
    p.add_argument("--no-reported", action="store_true",
                   help="leave out the table of paper-reported numbers")
    p.add_argument("--update-readme", metavar="README", default=None,
                   help="rewrite the section between <!-- leaderboard:start/end --> in README")


def _run(args: argparse.Namespace) -> int:
    from lesbench.leaderboard import build_leaderboard, render, render_bib, update_readme

    if args.update_readme:
        changed = update_readme(args.update_readme, args.results)
        print(f"{args.update_readme}: {'updated' if changed else 'already up to date'}")
        return 0
    lb = build_leaderboard(args.results, benchmark=args.benchmark, include_reported=not args.no_reported)
    if args.benchmark and not lb.measured:
        print(f"lesbench leaderboard: no measured results for benchmark {args.benchmark!r}", file=sys.stderr)
    out = render(lb, args.format)
    if args.out is None:
        if isinstance(out, bytes):
            raise LesbenchError("--format png needs --out FILE.png")
        sys.stdout.write(out)
        return 0
    path = Path(args.out)
    bib = path.with_suffix(".bib")
    if args.format == "latex" and bib == path:  # the .bib would overwrite the table
        raise LesbenchError(f"--out {path}: with --format latex the .bib is written next to the table with "
                            f"the suffix .bib; give the table another suffix (e.g. {path.with_suffix('.tex').name})")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(out, bytes):
        path.write_bytes(out)
    else:
        path.write_text(out, encoding="utf-8")
    print(f"wrote {path}")
    if args.format == "latex":
        bib.write_text(render_bib(lb), encoding="utf-8")
        print(f"wrote {bib} (cite keys used by {path.name})")
    return 0


COMMANDS = [
    Command(
        "leaderboard",
        "render leaderboards (md, LaTeX + .bib, CSV, PNG) from measured and reported results",
        _add_arguments,
        _run,
        order=75,
        description=(
            "Render leaderboards from data: measured results (one file per method and benchmark, "
            "written by `lesbench evaluate`) ranked per benchmark, and paper-reported numbers in a "
            "separate table labelled with their source protocol. Same data -> same bytes."
        ),
    )
]
