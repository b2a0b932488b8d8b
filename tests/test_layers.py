"""Import directions (docs/design.md, "Layout and layering"), read from the source with ``ast``.

The package-dir mapping (pipelines/ -> lesbench.pipelines, ...) hides the arrows from most tools,
and heavy imports sit inside functions, so every import statement is checked, at any depth.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"lesbench": "lesbench", "pipelines": "lesbench.pipelines", "metrics": "lesbench.metrics",
           "baselines": "lesbench.baselines"}

#: Modules everything may import; they import only each other.
GROUND = {"lesbench", "lesbench.atomic", "lesbench.schema", "lesbench.errors", "lesbench.io", "lesbench.weights", "lesbench.records",
          "lesbench.threads", "lesbench.sanitize", "lesbench.prepared", "lesbench.registry", "lesbench.bibtex",
          "lesbench.render", "lesbench.cluster"}
#: The ground floor's packages: their modules are ground floor too.
GROUND |= {f"lesbench.io.{m}" for m in ("decode", "info", "video", "audio", "write")}
GROUND |= {"lesbench.weights.specs", "lesbench.weights.files"}
#: The top: evaluation, the sweep, the leaderboard, the demo and the command line.
TOP = ("lesbench.evaluation", "lesbench.sweep", "lesbench.leaderboard", "lesbench.cli", "lesbench.commands",
       "lesbench.demo", "lesbench.__main__")
#: Within the middle floor: what each part must never import.
MIDDLE_NEVER = {
    "lesbench.pipelines": ("lesbench.metrics", "lesbench.baselines", "lesbench.les", "lesbench.model"),
    "lesbench.metrics": ("lesbench.baselines", "lesbench.les", "lesbench.model"),
    "lesbench.les": ("lesbench.baselines", "lesbench.model"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, 'file:line') for every lesbench import."""
    found = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if ".venv" in path.parts:
                continue
            me = _module_name(path)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [node.module]
                else:
                    continue
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                found += [(me, t, where) for t in targets if t == "lesbench" or t.startswith("lesbench.")]
    return found


def _is(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _on_top(module: str) -> bool:
    """The top floor, plus the benchmark tools (``*.bench*``), which run whole chains."""
    return any(_is(module, p) for p in TOP) or module.rsplit(".", 1)[-1].startswith("bench")


def test_the_ground_floor_imports_only_the_ground_floor():
    bad = [f"{w}: {me} imports {t}" for me, t, w in _imports() if me in GROUND and t not in GROUND]
    assert not bad, "\n".join(bad)


def test_nothing_below_the_top_imports_the_top():
    bad = [f"{w}: {me} imports {t}" for me, t, w in _imports()
           if not _on_top(me) and _on_top(t)]
    assert not bad, "\n".join(bad)


def test_middle_floor_directions():
    bad = [f"{w}: {me} imports {t}" for me, t, w in _imports()
           for part, never in MIDDLE_NEVER.items() if _is(me, part) and any(_is(t, n) for n in never)]
    assert not bad, "\n".join(bad)


def test_the_check_sees_imports_inside_functions():
    """The walker is not blind to function-level imports (most of lesbench's heavy ones are)."""
    found = {(me, t) for me, t, _ in _imports()}
    assert ("lesbench.metrics.scorer", "lesbench.cluster") in found  # imported inside a function (dask)
