"""Import directions (docs/design.md, "Layout and layering"), read from the source with ``ast``.

The package-dir mapping (pipelines/ -> lesbench.pipelines, ...) hides the arrows from most tools,
and heavy imports sit inside functions, so every import statement is checked, at any depth.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"lesbench": "lesbench", "pipelines": "lesbench.pipelines", "metrics": "lesbench.metrics",
           "baselines": "lesbench.baselines"}

#: The ground floor: modules (and packages, with all their modules) that everything may import
#: and that import only each other.
GROUND = ("lesbench", "lesbench.atomic", "lesbench.schema", "lesbench.errors", "lesbench.io", "lesbench.weights",
          "lesbench.records", "lesbench.threads", "lesbench.sanitize", "lesbench.prepared", "lesbench.registry",
          "lesbench.bibtex", "lesbench.render", "lesbench.cluster", "lesbench.extract")
#: The middle floor, part by part, and what each part must never import (besides the top).
MIDDLE_NEVER = {
    "lesbench.pipelines": ("lesbench.metrics", "lesbench.baselines", "lesbench.les", "lesbench.model"),
    "lesbench.metrics": ("lesbench.baselines", "lesbench.les", "lesbench.model"),
    "lesbench.les": ("lesbench.pipelines", "lesbench.metrics", "lesbench.baselines", "lesbench.model"),
    "lesbench.model": ("lesbench.pipelines", "lesbench.baselines"),
    "lesbench.baselines": ("lesbench.pipelines",),
}
#: The top: evaluation, the sweep, the leaderboard, the demo and the command line.
TOP = ("lesbench.evaluation", "lesbench.sweep", "lesbench.leaderboard", "lesbench.cli", "lesbench.commands",
       "lesbench.demo", "lesbench.__main__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_in(source: str, me: str, where: str) -> list[tuple[str, str, str]]:
    """(importing module, imported module, 'file:line') for every lesbench import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module]
        else:
            continue
        found += [(me, t, f"{where}:{node.lineno}") for t in targets if t == "lesbench" or t.startswith("lesbench.")]
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for folder in FOLDERS for p in sorted((REPO / folder).rglob("*.py"))
            if ".venv" not in p.parts}


def _imports() -> list[tuple[str, str, str]]:
    return [imp for me, path in _modules().items()
            for imp in _imports_in(path.read_text(), me, str(path.relative_to(REPO)))]


def _is(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def floor(module: str) -> str | None:
    """``ground``, a middle part (``lesbench.metrics``...), ``top`` or ``None`` (unplaced).
    The benchmark tools (``*.bench*``) run whole chains, so they count as the top."""
    if any(_is(module, p) for p in TOP) or module.rsplit(".", 1)[-1].startswith("bench"):
        return "top"
    if module == "lesbench" or any(_is(module, p) for p in GROUND if p != "lesbench"):
        return "ground"
    return next((part for part in MIDDLE_NEVER if _is(module, part)), None)


def violations(imports: list[tuple[str, str, str]]) -> list[str]:
    """Every import that goes the wrong way, as 'file:line: A imports B (why)'."""
    bad = []
    for me, target, where in imports:
        mine, theirs = floor(me), floor(target)
        if mine == "ground" and theirs != "ground":
            bad.append(f"{where}: {me} imports {target} (the ground floor imports only the ground floor)")
        elif mine != "top" and theirs == "top":
            bad.append(f"{where}: {me} imports {target} (only the top imports the top)")
        elif mine in MIDDLE_NEVER and any(_is(target, n) for n in MIDDLE_NEVER[mine]):
            bad.append(f"{where}: {me} imports {target} ({mine} never imports {theirs})")
    return bad


def test_every_module_has_a_floor():
    unplaced = sorted(m for m in _modules() if floor(m) is None)
    assert not unplaced, f"modules on no floor (add them to tests/test_layers.py and docs/design.md): {unplaced}"


def test_imports_go_only_downward():
    bad = violations(_imports())
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("me, target", [
    ("lesbench.schema", "lesbench.pipelines.mead"),           # ground -> middle
    ("lesbench.extract.face", "lesbench.metrics.sync"),        # ground package -> middle
    ("lesbench.io.video", "lesbench.evaluation"),              # ground -> top
    ("lesbench.metrics.fid", "lesbench.leaderboard"),          # middle -> top
    ("lesbench.model.checks", "lesbench.sweep.records"),       # middle -> top, a module of a top package
    ("lesbench.metrics.score", "lesbench.baselines.base"),     # across the middle, forbidden way
    ("lesbench.pipelines.stages", "lesbench.metrics.lse"),
    ("lesbench.extract.face", "lesbench.pipelines.stages"),
    ("lesbench.les.space", "lesbench.model.talker"),
])
def test_the_check_fails_on_an_upward_import(me, target):
    source = f"def f():\n    from {target} import something\n"  # inside a function: still seen
    found = violations(_imports_in(source, me, "x.py"))
    assert len(found) == 1 and found[0].startswith(f"x.py:2: {me} imports {target}")


@pytest.mark.parametrize("me, target", [
    ("lesbench.metrics.fid", "lesbench.extract.face"),
    ("lesbench.baselines.static", "lesbench.model.generate"),
    ("lesbench.evaluation", "lesbench.baselines.base"),
    ("lesbench.io.video", "lesbench.atomic"),
])
def test_the_check_allows_downward_imports(me, target):
    assert violations([(me, target, "x.py:1")]) == []
