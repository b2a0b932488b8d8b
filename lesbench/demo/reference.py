"""The demo's reference results: what a run is compared on, and the files that hold it.

A run's summary (:class:`RunSummary`) is its results per method (the JSON files ``lesbench
evaluate`` wrote), the content digest of each step's outputs (:func:`step_digests`) and the
processor model it ran on (:func:`processor_model`: kernels are chosen by processor). A reference
is the same, written as one JSON Lines file (:func:`write_reference`: a header line with the
digests, then one results record per method) or read from a results folder
(:func:`read_reference`). :mod:`lesbench.demo.check` compares a run with one.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from lesbench.errors import LesbenchError
from lesbench.leaderboard import data_dir
from lesbench.les.space import LES_JSON, les_hash
from lesbench.model.runs import MODEL_FILE, checkpoint_sha256
from lesbench.prepared import CLIP_KINDS, PreparedDataset

#: Header ``kind`` of a reference file.
REFERENCE_KIND = "lesbench-demo-reference"
REFERENCE_VERSION = "1"
#: Where the demo's results land in its output folder (``lesbench.evaluation`` layout).
RESULTS_SUBDIR = Path("results") / "demo-v1" / "lesbench-demo"
#: The committed tiny reference, relative to the packaged ``leaderboards/`` folder. Not a
#: ``.json`` file: the leaderboard reads every ``*.json`` under ``results/`` as a table row, and
#: smoke-run numbers must not appear next to the full demo's.
TINY_REFERENCE = Path("results") / "demo-v1-tiny.reference.jsonl"
#: The full demo's reference: the results the README's table is built from.
FULL_REFERENCE = Path("results") / "demo-v1" / "lesbench-demo"

#: The demo's steps whose outputs are digested, in chain order.
DIGEST_STEPS: tuple[str, ...] = ("data", "prepare", "les", "train", "classifier", "edit")


# ------------------------------------------------------------------------------ digests

def _hash_files(root: Path, files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _files_under(root: Path, *subdirs: str) -> list[Path]:
    out: list[Path] = []
    for sub in subdirs:
        base = root / sub
        if base.is_file():
            out.append(base)
        elif base.is_dir():
            out.extend(p for p in base.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    return out


def step_digests(out: str | Path) -> dict[str, str | None]:
    """Content sha256 of each demo step's outputs in the folder ``out`` (None: not there).

    Paths, creation times and seconds that steps record next to their outputs are left out,
    so two identical runs into different folders give equal digests:

    - ``data``: every file of ``mead/`` (videos, audio, ``truth.parquet``, ``demo.json``);
    - ``prepare``: the per-clip features and crops and ``face_model.npz`` (not ``clips.parquet``
      and ``dataset.json``, which hold paths and timings);
    - ``les``: :func:`lesbench.les.space.les_hash`; ``train``: each run's
      :func:`lesbench.model.runs.checkpoint_sha256`;
    - ``classifier``: the weights file (its embedded card holds no path or time);
    - ``edit``: the edited clips and ``checks.json``.
    """
    out = Path(out)
    digests: dict[str, str | None] = {}
    mead = _files_under(out, "mead")
    digests["data"] = _hash_files(out, mead) if mead else None
    data = PreparedDataset(out / "prepared")
    parts = [data.path(name).relative_to(data.root).as_posix() for name in (*CLIP_KINDS, "face_model")]
    prepared = _files_under(data.root, *parts)
    digests["prepare"] = _hash_files(data.root, prepared) if prepared else None
    digests["les"] = les_hash(out / "les") if (out / "les" / LES_JSON).is_file() else None
    runs = sorted(p.parent for p in (out / "runs").glob(f"*/{MODEL_FILE}"))
    if runs:
        h = hashlib.sha256()
        for run in runs:
            h.update(f"{run.name}\0{checkpoint_sha256(run)}\0".encode())
        digests["train"] = h.hexdigest()
    else:
        digests["train"] = None
    clf = out / "classifier" / "emotion-au.safetensors"
    digests["classifier"] = hashlib.sha256(clf.read_bytes()).hexdigest() if clf.is_file() else None
    edits = _files_under(out, "edits")
    digests["edit"] = _hash_files(out, edits) if edits else None
    return digests


#: Instruction-set flags that select kernels in MediaPipe (XNNPACK), numpy and torch.
_KERNEL_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512", "amx", "vnni", "neon", "asimd", "sve")


def processor_model() -> str:
    """The processor's model name and kernel-selecting instruction sets (``/proc/cpuinfo``),
    e.g. ``AMD EPYC [avx avx2 avx512f ...]``; else :func:`platform.processor`. Two machines
    with the same string run the same kernels (a model name alone hides generations)."""
    name, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and not name:
                name = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = value
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    isa = sorted({f for f in flags.split() if any(f.startswith(k) for k in _KERNEL_FLAGS)})
    return f"{name} [{' '.join(isa)}]" if isa else name


# ------------------------------------------------------------------------------ reading

@dataclass
class RunSummary:
    """What the check compares: results per method, plus step digests when known."""

    results: dict[str, dict[str, Any]]
    digests: dict[str, str | None] = field(default_factory=dict)
    processor: str | None = None
    source: str = ""


def read_results_dir(folder: str | Path) -> dict[str, dict[str, Any]]:
    """method name -> results record, from ``folder/*.json``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LesbenchError(f"{folder}: no results folder (run the demo's evaluate step first)")
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LesbenchError(f"{path}: unreadable results file ({exc})") from None
        if not isinstance(data, dict) or "method" not in data or "scores" not in data:
            raise LesbenchError(f"{path}: not a lesbench results file (no 'method' or 'scores')")
        out[str(data["method"])] = data
    if not out:
        raise LesbenchError(f"{folder}: holds no results file (*.json)")
    return out


def summarize_run(out: str | Path) -> RunSummary:
    """A demo output folder's results and step digests, on this processor."""
    out = Path(out)
    return RunSummary(results=read_results_dir(out / RESULTS_SUBDIR), digests=step_digests(out),
                      processor=processor_model(), source=str(out))


def write_reference(out: str | Path, path: str | Path, *, tiny: bool, command: str) -> Path:
    """Write the reference file for the run in ``out``: a header line, then one line per method."""
    summary = summarize_run(out)
    header = {"kind": REFERENCE_KIND, "version": REFERENCE_VERSION, "tiny": tiny, "command": command,
              "processor": summary.processor, "digests": summary.digests}
    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps(summary.results[m], sort_keys=True) for m in sorted(summary.results)]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def read_reference(path: str | Path) -> RunSummary:
    """A reference: a ``.jsonl`` file from :func:`write_reference`, or a results folder."""
    path = Path(path)
    if path.is_dir():
        return RunSummary(results=read_results_dir(path), source=str(path))
    if not path.is_file():
        raise LesbenchError(f"{path}: reference results not found")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    try:
        records = [json.loads(ln) for ln in lines]
    except ValueError as exc:
        raise LesbenchError(f"{path}: not a JSON Lines reference file ({exc})") from None
    if not records or not isinstance(records[0], dict) or records[0].get("kind") != REFERENCE_KIND:
        raise LesbenchError(f"{path}: first line is not a {REFERENCE_KIND} header")
    header = records[0]
    if str(header.get("version")) != REFERENCE_VERSION:
        raise LesbenchError(f"{path}: reference version {header.get('version')!r}; this lesbench reads {REFERENCE_VERSION}")
    results = {}
    for i, rec in enumerate(records[1:], start=2):
        if not isinstance(rec, dict) or "method" not in rec or "scores" not in rec:
            raise LesbenchError(f"{path}: line {i} is not a results record")
        results[str(rec["method"])] = rec
    return RunSummary(results=results, digests=dict(header.get("digests") or {}),
                      processor=header.get("processor"), source=str(path))


def default_reference(tiny: bool) -> Path:
    """The committed reference for the tiny or the full demo (packaged ``leaderboards/``)."""
    return data_dir() / (TINY_REFERENCE if tiny else FULL_REFERENCE)
