"""``lesbench ls``: what is registered (datasets, stages, metrics, methods)."""

from __future__ import annotations

import argparse

from lesbench.commands import Command


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=["datasets", "stages", "metrics", "methods"],
                   help="only this kind of plug-in")


def _run(args: argparse.Namespace) -> int:
    from lesbench.registry import ALL

    kinds = [args.kind] if args.kind else list(ALL)
    for kind in kinds:
        registry = ALL[kind]
        print(f"{kind}:")
        for name in registry.names():
            print(f"  {name:<20} {registry.target(name)}")
        if not registry.names():
            print("  (none)")
    return 0


COMMANDS = [Command("ls", "list registered datasets, stages, metrics and methods", _add_arguments, _run, order=90)]
