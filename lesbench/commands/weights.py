"""``lesbench weights``: list, verify and locate the model files lesbench uses."""

from __future__ import annotations

import argparse
import sys

from lesbench.commands import Command


def _add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    ls = sub.add_parser("list", help="every registered model file: found?, where, sha256 ok?")
    ls.add_argument("--no-verify", action="store_true", help="do not hash the files found (faster)")
    ver = sub.add_parser(
        "verify",
        help="check sha256 of model files; exit 1 if a named (or required) file is missing or wrong")
    ver.add_argument("names", nargs="*", metavar="NAME",
                     help="files that must be present and correct (default: every file found is "
                          "checked, missing ones are reported, only required ones fail)")
    path = sub.add_parser("path", help="print the resolved path of one model file (downloads it "
                                       "when allowed and not found locally)")
    path.add_argument("name", metavar="NAME")
    path.add_argument("--no-download", action="store_true", help="never download")
    p.set_defaults(weights_command="list", no_verify=False)


def _status_line(name: str, check: bool) -> tuple[list[str], bool, bool]:
    """Table cells for one file, whether it was found, and whether it is correct."""
    from lesbench import weights as w

    spec = w.get_spec(name)
    found = w.locate(name)
    if found.path is None:
        return [name, "no", "-", "-"], False, False
    where = (f"package {spec.package}: {spec.package_path}" if found.source == "package"
             else f"{found.source}: {found.path}")
    if not check:
        return [name, "yes", where, "not checked"], True, True
    result = w.verify(found.path, spec)
    return [name, "yes", where, result.status], True, result.ok


def _print_table(rows: list[list[str]]) -> None:
    header = ["name", "found", "where", "sha256"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for r in [header, *rows]:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")


def _missing_hints(names: list[str]) -> None:
    from lesbench import weights as w

    if not names:
        return
    print("\nmissing:")
    for name in names:
        spec = w.get_spec(name)
        how = spec.instructions
        if spec.url:
            how += f"; or fetch {spec.url}"
        print(f"  {name}: {how}; then set {w.env_var(name)}=PATH or copy it into {w.cache_dir()}")


def _run_list(args: argparse.Namespace) -> int:
    from lesbench import weights as w

    rows, missing = [], []
    for name in w.names():
        cells, found, _ = _status_line(name, check=not args.no_verify)
        rows.append(cells)
        if not found:
            missing.append(name)
    _print_table(rows)
    _missing_hints(missing)
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    from lesbench import weights as w

    requested = list(args.names)
    for name in requested:
        w.get_spec(name)  # unknown names: clear error listing the known ones
    names = requested or w.names()
    rows, missing, failed = [], [], []
    for name in names:
        cells, found, ok = _status_line(name, check=True)
        rows.append(cells)
        must = bool(requested) or w.get_spec(name).required
        if not found:
            missing.append(name)
            if must:
                failed.append(f"{name}: missing")
        elif not ok:
            failed.append(f"{name}: sha256 mismatch")
    _print_table(rows)
    _missing_hints(missing)
    if failed:
        print("\nFAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    print("\nall checked files are correct" + ("" if not missing else
                                              f" ({len(missing)} optional files not present)"))
    return 0


def _run_path(args: argparse.Namespace) -> int:
    from lesbench import weights as w

    print(w.resolve(args.name, download=False if args.no_download else None))
    return 0


def _run(args: argparse.Namespace) -> int:
    return {"list": _run_list, "verify": _run_verify, "path": _run_path}[args.weights_command](args)


COMMANDS = [
    Command(
        "weights", "list, verify and locate model files (sha256-checked, offline-first)",
        _add_arguments, _run, order=80,
        description=(
            "Model files lesbench uses, where each was found and whether its sha256 matches.\n"
            "Lookup order: explicit path (argument, $LESBENCH_WEIGHT_<NAME>, config) -> lesbench\n"
            "cache ($LESBENCH_CACHE/weights) -> installed package that ships it -> download\n"
            "(never when LESBENCH_OFFLINE is set)."),
    ),
]
