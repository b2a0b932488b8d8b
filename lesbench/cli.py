"""``lesbench`` command line: a thin argparse layer over the Python API.

Sub-commands live in :mod:`lesbench.commands` (one module per family, discovered here).
Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from lesbench import __version__


def _discover_commands():
    import lesbench.commands as pkg

    commands = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        commands.extend(getattr(module, "COMMANDS", []))
    return sorted(commands, key=lambda c: (c.order, c.name))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lesbench",
        description=(
            "Emotional talking-head toolkit: prepare MEAD-layout video into per-frame Parquet "
            "features, train LES-Talker, and evaluate methods under one versioned protocol.\n\n"
            "Start with `lesbench demo` (everything end to end on synthetic data)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lesbench {__version__}")
    parser.add_argument("--verbose", dest="native_logs", action="store_true",
                        help="show MediaPipe/TF Lite's own start-up logging (hidden by default; also "
                             "LESBENCH_VERBOSE=1), in this process and its workers")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _discover_commands():
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if args.native_logs:  # through the environment, so that Dask and multiprocessing workers see it
        import os

        os.environ["LESBENCH_VERBOSE"] = "1"
    if run is None:
        parser.print_help()
        return 0
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt as exc:  # lesbench.errors.Interrupted says what was kept
        print(f"lesbench {args.command}: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))
    except Exception as exc:  # user-facing errors: one line, no traceback unless asked
        from lesbench.errors import LesbenchError

        if isinstance(exc, LesbenchError) and not _debug():
            print(f"lesbench {args.command}: error: {exc}", file=sys.stderr)
            return int(exc.exit_code)
        raise


def _debug() -> bool:
    import os

    return os.environ.get("LESBENCH_DEBUG", "") not in ("", "0")


if __name__ == "__main__":
    raise SystemExit(main())
