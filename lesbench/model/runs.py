"""A LES-Talker run folder's files: the device it runs on, its checkpoint (weights, optimizer state,
``checkpoint.json`` with the weights' sha256), the content digest of a run and the CSV log.

The layout is described in :mod:`lesbench.model.train`; generation (:mod:`lesbench.model.generate`)
and the refiner (:mod:`lesbench.model.refine`) read runs through this module.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from lesbench.atomic import write_text
from lesbench.errors import LesbenchError
from lesbench.les.space import LES_JSON, les_hash
from lesbench.weights import check_recorded_sha256, file_sha256, load_safetensors

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
META_FILE = "checkpoint.json"
LOG_FILE = "log.csv"
LOG_FIELDS = ("epoch", "lr", "train_total", "train_coef", "train_lip", "train_au", "train_smooth", "train_pose",
              "val_exp_l1", "val_lip", "val_exp_l1_mean_baseline", "seconds")


def resolve_device(device: str | None = "auto"):
    """``auto`` -> CUDA when available, else CPU; ``cpu``/``cuda`` as asked (error if absent)."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LesbenchError(f"--device {device}: no CUDA device is available here (use auto or cpu)")
    return torch.device(device)


def _save_safetensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)


def save_checkpoint(run: Path, model, opt, epoch: int, history: list[dict], meta: dict) -> None:
    """Write the run's weights, optimizer state, ``state.json``, ``checkpoint.json`` (``meta``
    plus the epoch, the history and the weights' sha256) and ``log.csv``, each atomically."""
    import torch

    _save_safetensors(model.state_dict(), run / MODEL_FILE, {"format": "lesbench-les-talker"})
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    if tensors:
        _save_safetensors(tensors, run / OPTIM_FILE)
    digests = {name: file_sha256(run / name, fresh=True) for name in (MODEL_FILE, OPTIM_FILE) if (run / name).is_file()}
    write_text(run / STATE_FILE, json.dumps({"epoch": epoch, "param_groups": sd["param_groups"],
                                                     "scalars": scalars, "history": history}, indent=1))
    write_text(run / META_FILE, json.dumps({**meta, "epoch": epoch, "history": history,
                                                    "weights_sha256": digests}, indent=1, default=float))
    write_csv_log(run / LOG_FILE, LOG_FIELDS, history)


#: ``checkpoint.json`` entries that say where, when and how long, not what the model is.
_META_NOT_CONTENT = ("provenance", "history")
#: Run files that record the training's course (times per epoch), not what generation reads.
_RUN_LOG_FILES = (LOG_FILE, STATE_FILE)


def checkpoint_sha256(run: str | Path) -> str:
    """sha256 of what a run generates from: its files (sorted relative paths + bytes), with
    ``checkpoint.json`` minus its provenance and per-epoch history, ``les/les.json`` minus its
    provenance (:func:`lesbench.les.space.les_hash`), and the training log and resume state
    left out. Those hold paths, creation times and seconds per epoch, so hashing the folder's
    bytes would differ between two identical trainings; this digest is equal for equal
    weights, configuration, LES and face model.
    """
    run = Path(run)
    h = hashlib.sha256()
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        rel = path.relative_to(run).as_posix()
        if rel in _RUN_LOG_FILES or path.name.endswith(".tmp"):
            continue
        h.update(rel.encode() + b"\0")
        if rel == META_FILE:
            meta = {k: v for k, v in json.loads(path.read_text()).items() if k not in _META_NOT_CONTENT}
            h.update(json.dumps(meta, sort_keys=True, separators=(",", ":"), default=float).encode())
        elif path.name == LES_JSON:
            h.update(les_hash(path.parent).encode())
        else:
            h.update(path.read_bytes())
    return h.hexdigest()


def write_csv_log(path: Path, fields, rows: list[dict]) -> None:
    """Write ``rows`` (dicts; keys outside ``fields`` ignored) as CSV, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)
    tmp.replace(path)


def load_run_weights(run: Path, name: str = MODEL_FILE, device: str = "cpu") -> tuple[dict, str]:
    """``(tensors, sha256)`` of a run's ``model.safetensors`` (or ``optimizer.safetensors``),
    checked against the sha256 that ``checkpoint.json`` recorded when the file was written.

    Raises :class:`~lesbench.errors.WeightsFormatError` (not a safetensors file) or
    :class:`~lesbench.errors.ChecksumError` (modified or replaced since training), naming the file.
    """
    meta_path = run / META_FILE
    try:
        recorded = (json.loads(meta_path.read_text()).get("weights_sha256") or {}).get(name)
    except (OSError, ValueError) as exc:
        raise LesbenchError(f"{meta_path}: cannot read the run's checkpoint record ({exc})") from None
    tensors, _meta = load_safetensors(run / name, device=str(device))  # not safetensors: says so first
    digest = check_recorded_sha256(
        run / name, recorded, recorded_in=meta_path,
        remedy=f"Restore the file written by `lesbench train`, or train the run again (`lesbench train --out {run}`).")
    return tensors, digest


def load_training_state(run: Path, model, opt, device) -> tuple[int, list[dict]]:
    """Load a run's weights and optimizer state (sha256-checked) into ``model`` and ``opt`` for
    ``--resume``; returns ``(epochs done, history)``."""
    state = json.loads((run / STATE_FILE).read_text())
    model.load_state_dict(load_run_weights(run, MODEL_FILE, device=str(device))[0])
    tensors = load_run_weights(run, OPTIM_FILE, device=str(device))[0] if (run / OPTIM_FILE).is_file() else {}
    opt_state: dict = {}
    for key, v in tensors.items():
        pid, _, name = key.partition(".")
        opt_state.setdefault(int(pid), {})[name] = v
    for key, v in state.get("scalars", {}).items():
        pid, _, name = key.partition(".")
        opt_state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    return int(state["epoch"]), list(state.get("history", []))
