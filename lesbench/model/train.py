"""Training LES-Talker (and its one-hot / audio-only variants) on a prepared data set.

    from lesbench.model.train import train
    result = train("prepared/", "runs/les", device="auto")
    result.history[-1]["val_exp_l1"]

A run folder holds everything generation needs and everything needed to continue exactly:

    RUN/config.yaml            the full configuration used
    RUN/checkpoint.json        meta: dimensions, condition, emotions, provenance (dataset.json
                               sha256, LES hash, face model sha256), versions, history, and
                               ``weights_sha256``: the sha256 of model.safetensors and
                               optimizer.safetensors, checked whenever they are loaded
    RUN/model.safetensors      weights + train-split statistics (buffers)
    RUN/optimizer.safetensors  AdamW state (tensors); RUN/state.json: epoch, param groups
    RUN/les/                   the LES artefact used; RUN/face_model.npz: the face model
    RUN/log.csv                one row per epoch: losses, validation error, lr, seconds

``--resume`` continues exactly: window sampling, augmentation and dropout are seeded from
``(seed, epoch)`` at the start of every epoch and the learning rate is a function of the epoch,
so "2 epochs" equals "1 epoch + resume 1 more" (tested).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesbench import __version__, schema
from lesbench.errors import DatasetError, LesbenchError
from lesbench.model.config import TrainConfig, load_config, save_config
from lesbench.threads import torch_threads
from lesbench.weights import check_recorded_sha256, file_sha256, load_safetensors

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
META_FILE = "checkpoint.json"
LOG_FILE = "log.csv"
LOG_FIELDS = ("epoch", "lr", "train_total", "train_coef", "train_lip", "train_au", "train_smooth", "train_pose",
              "val_exp_l1", "val_lip", "val_exp_l1_mean_baseline", "seconds")


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict] = field(default_factory=list)


def resolve_device(device: str | None = "auto"):
    """``auto`` -> CUDA when available, else CPU; ``cpu``/``cuda`` as asked (error if absent)."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LesbenchError(f"--device {device}: no CUDA device is available here (use auto or cpu)")
    return torch.device(device)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _save_safetensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)


class TalkerData:
    """Clips, train statistics and the condition/target construction (augmentation) for a run."""

    def __init__(self, clips, stats, space, cfg: TrainConfig, bases) -> None:
        self.cfg = cfg
        self.stats = stats
        self.space = space
        self.bases = bases
        self.train = [c for c in clips if c.record.split == cfg.train_split]
        self.val = sorted((c for c in clips if c.record.split != cfg.train_split), key=lambda c: c.record.clip_id)
        self.val = self.val[: cfg.data.max_val_clips]
        self.emotions = space.emotions
        self.unit_names = list(space.units)
        self.unit_masks = np.stack([space.unit_mask([u]) for u in self.unit_names])  # (U, 17)
        self.global_neutral_exp = stats.exp_mean
        # per-clip mean AU delta (relative to the speaker's neutral AUs)
        self.clip_dau = {}
        for c in clips:
            ref = stats.neutral_au.get(c.record.speaker, space.global_neutral)
            self.clip_dau[c.record.clip_id] = (c.aus[c.valid].mean(0) - ref).astype(np.float32)

    @property
    def n_cond(self) -> int:
        return {"les": len(schema.AU_NAMES), "onehot": len(self.emotions), "audio-only": 0}[self.cfg.condition]

    def condition(self, clip_id: str, alpha: float = 1.0, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(condition vector (C,), LES vector v_aug (17,)) for a clip, scaled/masked."""
        v = self.stats.les_vectors[clip_id]
        v_aug = alpha * v * (1.0 if mask is None else mask)
        if self.cfg.condition == "les":
            return v_aug.astype(np.float32), v_aug.astype(np.float32)
        if self.cfg.condition == "onehot":
            # the coarse label the paper argues against: which emotion, not how much (every MEAD
            # level and every measured intensity gets the same 1); no level augmentation
            cond = np.zeros(len(self.emotions), np.float32)
            for e in self.stats.emotion_levels[clip_id]:
                cond[self.emotions.index(e)] = 1.0
            return cond, v.astype(np.float32)
        return np.zeros(0, np.float32), v.astype(np.float32)

    def sample(self, clip, start: int, rng: np.random.Generator | None) -> dict:
        """One training/validation item; ``rng`` None = no augmentation."""
        w = self.cfg.data.window if rng is not None else clip.n_frames
        end = min(start + w, clip.n_frames)
        sl = slice(start, end)
        cid = clip.record.clip_id
        alpha, mask = 1.0, None
        if rng is not None and self.cfg.condition != "audio-only":
            if self.cfg.condition == "les" and rng.random() < self.cfg.augment.level_prob:
                alpha = float(rng.random())
            if self.cfg.condition == "les" and rng.random() < self.cfg.augment.unit_prob:
                # keep k random units, k uniform in 1..U-1 (single-unit edits are common requests)
                k = int(rng.integers(1, len(self.unit_names)))
                keep = rng.permutation(len(self.unit_names))[:k]
                mask = np.clip(self.unit_masks[keep].sum(0), 0, 1)
        cond, v_aug = self.condition(cid, alpha, mask)
        if rng is not None and self.cfg.condition == "les" and rng.random() < self.cfg.augment.offset_prob:
            # per-AU offsets (the finest LES edits): every AU moved independently, so each AU
            # token's own effect is identifiable (emotions move AUs only in fixed combinations)
            offset = rng.normal(0.0, self.cfg.augment.offset_scale, len(v_aug)).astype(np.float32)
            v_aug = v_aug + offset
            cond = v_aug.astype(np.float32)
        v = self.stats.les_vectors[cid]
        shift = (v_aug - v) @ self.stats.exp_from_au  # (K,)
        valid = clip.valid[sl]
        exp = clip.exp[sl] + np.where(valid[:, None], shift[None], 0)
        pose = (clip.pose[sl] - clip.pose[clip.valid].mean(0)) / self.stats.pose_std
        s = clip.record.speaker
        return {
            "mel": (clip.mel[sl] - self.stats.mel_mean) / self.stats.mel_std,
            "exp": exp,
            "pose": np.where(valid[:, None], pose, 0),
            "valid": valid,
            "ident": (clip.ident - self.stats.id_mean) / self.stats.id_std,
            "cond": cond,
            "neutral_exp": self.stats.neutral_exp.get(s, self.global_neutral_exp),
            "requested_au": self.clip_dau[cid] - v + v_aug,
        }

    def epoch_items(self, epoch_seed: int) -> list[dict]:
        rng = np.random.default_rng(epoch_seed)
        items = []
        for clip in self.train:
            for _ in range(self.cfg.data.windows_per_clip):
                hi = max(clip.n_frames - self.cfg.data.window, 0)
                start = int(rng.integers(0, hi + 1))
                items.append(self.sample(clip, start, rng))
        order = rng.permutation(len(items))
        return [items[i] for i in order]


def collate(items: list[dict], device):
    """Pad to the longest item; returns tensors and the key-padding mask (True = padding)."""
    import torch

    t = max(len(it["mel"]) for it in items)

    def pad(x, fill=0.0):
        x = np.asarray(x)
        out = np.full((t, *x.shape[1:]), fill, dtype=np.float32 if x.dtype != bool else bool)
        out[: len(x)] = x
        return out

    batch = {
        "mel": np.stack([pad(it["mel"]) for it in items]),
        "exp": np.stack([pad(it["exp"]) for it in items]),
        "pose": np.stack([pad(it["pose"]) for it in items]),
        "valid": np.stack([pad(it["valid"], False) for it in items]),
        "ident": np.stack([it["ident"] for it in items]),
        "cond": np.stack([it["cond"] for it in items]),
        "neutral_exp": np.stack([it["neutral_exp"] for it in items]),
        "requested_au": np.stack([it["requested_au"] for it in items]),
    }
    lengths = np.array([len(it["mel"]) for it in items])
    padding = np.arange(t)[None, :] >= lengths[:, None]
    out = {k: torch.as_tensor(v.astype(np.float32) if v.dtype != bool else v, device=device) for k, v in batch.items()}
    out["padding"] = torch.as_tensor(padding, device=device)
    return out


def prepare_run_inputs(data: str | Path, run: Path, les: str | Path | None, cfg: TrainConfig, resume: bool):
    """Index the data set, get the LES (copied into the run) and the face model."""
    from lesbench.les.prepared import open_prepared
    from lesbench.les.space import LinearEmotionSpace, build_les
    from lesbench.model.data import load_face_bases

    index = open_prepared(data)
    run_les = run / "les"
    if resume and (run_les / "les.json").is_file():
        space = LinearEmotionSpace.load(run_les)
    else:
        if les is not None:
            space = LinearEmotionSpace.load(les)
        elif (Path(data) / "les" / "les.json").is_file():
            space = LinearEmotionSpace.load(Path(data) / "les")
        else:
            space = build_les(data, train_split=cfg.train_split)
        space.save(run_les)
    fm_src = index.paths["face_model"]
    fm_dst = run / schema.FACE_MODEL
    if not fm_dst.is_file() or not resume:
        if not fm_src.is_file():
            raise DatasetError(f"{fm_src}: missing; training needs the prepared data set's face model")
        shutil.copyfile(fm_src, fm_dst)
    return index, space, load_face_bases(fm_dst)


def build_model(cfg: TrainConfig, *, n_mel: int, n_exp: int, n_id: int, n_cond: int):
    from lesbench.model.talker import LESTalker

    return LESTalker(cfg.model, n_mel=n_mel, n_exp=n_exp, n_id=n_id, n_cond=n_cond, condition=cfg.condition)


def _set_buffers(model, stats) -> None:
    import torch

    for name in ("mel_mean", "mel_std", "exp_mean", "exp_std", "id_mean", "id_std", "pose_std", "au_from_exp", "exp_from_au"):
        getattr(model, name).copy_(torch.as_tensor(np.asarray(getattr(stats, name), np.float32)))


def _lr_at(cfg: TrainConfig, epoch: int) -> float:
    e, n = epoch, max(cfg.train.epochs, 1)
    return cfg.train.lr_min + 0.5 * (cfg.train.lr - cfg.train.lr_min) * (1 + math.cos(math.pi * e / n))


def train(
    data: str | Path,
    out: str | Path,
    *,
    config: str | Path | TrainConfig | None = None,
    overrides: dict | None = None,
    les: str | Path | None = None,
    device: str | None = "auto",
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or with ``resume=True`` continue) a run in ``out``; returns the epoch history.

    ``epochs`` overrides ``train.epochs`` (also when resuming: continue up to that many).
    """
    import torch

    from lesbench.les.prepared import dataset_provenance, sha256_file
    from lesbench.les.space import les_hash
    from lesbench.model.data import fit_statistics, load_clips
    from lesbench.model.losses import LossBatch, talker_losses

    run = Path(out)
    if resume:
        if not (run / "config.yaml").is_file() or not (run / STATE_FILE).is_file():
            raise LesbenchError(f"{run}: nothing to resume (no config.yaml / {STATE_FILE}); train without --resume first")
        cfg = load_config(run / "config.yaml")
    elif isinstance(config, TrainConfig):
        cfg = config.validate()
    else:
        cfg = load_config(config, overrides)
    if epochs is not None:
        cfg.train.epochs = int(epochs)
    if not resume and (run / STATE_FILE).is_file():
        raise LesbenchError(f"{run}: already holds a run; use --resume to continue it or choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    # a fixed count: float32 sums split over another number of threads differ in the last bits
    with torch_threads(max(1, cfg.train.threads)):
        index, space, bases = prepare_run_inputs(data, run, les, cfg, resume)
        clips = load_clips(index, target_lead=cfg.data.target_lead)
        stats = fit_statistics(clips, space, train_split=cfg.train_split, condition_source=cfg.condition_source,
                               ridge=cfg.augment.ridge, pinv_rcond=cfg.augment.pinv_rcond)
        td = TalkerData(clips, stats, space, cfg, bases)
        if not td.train:
            raise DatasetError(f"{data}: no loadable train clip")
        n_exp = td.train[0].exp.shape[1]
        if bases.exp_basis.shape[0] != n_exp:
            raise DatasetError(f"{index.paths['face_model']}: {bases.exp_basis.shape[0]} expression components but coeffs have {n_exp}")
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, n_mel=td.train[0].mel.shape[1], n_exp=n_exp, n_id=len(td.train[0].ident), n_cond=td.n_cond)
        _set_buffers(model, stats)
        model.to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        mouth = torch.as_tensor(bases.mouth_exp_basis(), device=dev)
        train_exp = np.concatenate([c.exp[c.valid] for c in td.train])
        mouth_scale = float(np.abs((train_exp - stats.exp_mean) @ bases.mouth_exp_basis()).mean()) + 1e-8
        au_a = torch.as_tensor(stats.au_from_exp, device=dev)
        au_scale = float(np.mean([np.abs(td.clip_dau[c.record.clip_id]).mean() for c in td.train])) + 1e-6
        exp_mean = torch.as_tensor(stats.exp_mean, device=dev)
        exp_std = torch.as_tensor(stats.exp_std, device=dev)

        history: list[dict] = []
        start_epoch = 0
        if resume:
            start_epoch, history = _load_training_state(run, model, opt, dev)
        save_config(cfg, run / "config.yaml")
        meta = {
            "format": "lesbench-les-talker",
            "version": "1",
            "lesbench_version": __version__,
            "torch_version": torch.__version__,
            "condition": cfg.condition,
            "emotions": td.emotions,
            "au_names": list(schema.AU_NAMES),
            "dims": {"n_mel": td.train[0].mel.shape[1], "n_exp": n_exp, "n_id": len(td.train[0].ident), "n_cond": td.n_cond},
            "mouth_scale": mouth_scale,
            "au_scale": au_scale,
            "au_fit_r2": stats.au_fit_r2,
            "config": cfg.to_dict(),
            "provenance": {
                **dataset_provenance(data),
                "les_sha256": les_hash(run / "les"),
                "face_model_sha256": sha256_file(run / schema.FACE_MODEL),
                "n_train_clips": len(td.train),
                "n_val_clips": len(td.val),
                "train_speakers": sorted({c.record.speaker for c in td.train}),
                "val_speakers": sorted({c.record.speaker for c in td.val}),
                "skipped_clips": dict(index.skipped),
            },
        }
        weights = cfg.loss
        baseline = _val_mean_baseline(td, stats)
        from tqdm.auto import tqdm

        bar = tqdm(range(start_epoch, cfg.train.epochs), desc="train", unit="epoch", disable=not progress,
                   initial=start_epoch, total=cfg.train.epochs)
        for epoch in bar:
            t0 = time.perf_counter()
            epoch_seed = cfg.seed * 1_000_003 + epoch
            torch.manual_seed(epoch_seed)
            lr = _lr_at(cfg, epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            items = td.epoch_items(epoch_seed)
            sums: dict[str, float] = {}
            nb = 0
            for i in range(0, len(items), cfg.data.batch_size):
                b = collate(items[i : i + cfg.data.batch_size], dev)
                pred_exp, pred_pose = model(b["mel"], b["ident"], b["cond"] if td.n_cond else None, b["padding"])
                terms = talker_losses(
                    pred_exp, pred_pose,
                    LossBatch(exp=b["exp"], pose=b["pose"], valid=b["valid"], neutral_exp=b["neutral_exp"],
                              requested_au=b["requested_au"]),
                    exp_mean=exp_mean, exp_std=exp_std, mouth_basis=mouth, mouth_scale=mouth_scale,
                    au_from_exp=au_a, au_scale=au_scale, weights=weights,
                )
                opt.zero_grad(set_to_none=True)
                terms["total"].backward()
                if cfg.train.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                opt.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                nb += 1
            val = evaluate_clips(model, td, td.val, dev, mouth, mouth_scale) if td.val else {}
            row = {"epoch": epoch + 1, "lr": lr, **{f"train_{k}": v / max(nb, 1) for k, v in sums.items()},
                   "val_exp_l1": val.get("exp_l1"), "val_lip": val.get("lip"),
                   "val_exp_l1_mean_baseline": baseline, "seconds": time.perf_counter() - t0}
            history.append(row)
            bar.set_postfix(loss=f"{row['train_total']:.3f}", val=f"{row['val_exp_l1'] or float('nan'):.4f}")
            last = epoch + 1 == cfg.train.epochs
            if last or (epoch + 1) % max(cfg.train.checkpoint_every, 1) == 0:
                _save_checkpoint(run, model, opt, epoch + 1, history, meta)
        bar.close()
        if start_epoch >= cfg.train.epochs and not (run / MODEL_FILE).is_file():
            _save_checkpoint(run, model, opt, start_epoch, history, meta)
        return TrainResult(run_dir=run, history=history)


def _val_mean_baseline(td: TalkerData, stats) -> float | None:
    """Held-out error of predicting the train-mean coefficients everywhere (a reference line)."""
    if not td.val:
        return None
    errs = [np.abs(c.exp[c.valid] - stats.exp_mean).mean() for c in td.val]
    return float(np.mean(errs))


def evaluate_clips(model, td: TalkerData, clips, device, mouth, mouth_scale: float) -> dict:
    """Full-clip held-out errors: mean |exp| error (raw units) and lip-vertex error (scaled)."""
    import torch

    model.eval()
    errs, lips = [], []
    with torch.no_grad():
        for i in range(0, len(clips), 8):
            chunk = clips[i : i + 8]
            b = collate([td.sample(c, 0, None) for c in chunk], device)
            pred, _ = model(b["mel"], b["ident"], b["cond"] if td.n_cond else None, b["padding"])
            raw = pred * model.exp_std + model.exp_mean
            for j, c in enumerate(chunk):
                v = b["valid"][j]
                diff = (raw[j] - b["exp"][j])[v]
                errs.append(float(diff.abs().mean()))
                lips.append(float((diff @ mouth).abs().mean()) / mouth_scale)
    model.train()
    return {"exp_l1": float(np.mean(errs)), "lip": float(np.mean(lips))}


def _save_checkpoint(run: Path, model, opt, epoch: int, history: list[dict], meta: dict) -> None:
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
    _atomic_write_text(run / STATE_FILE, json.dumps({"epoch": epoch, "param_groups": sd["param_groups"],
                                                     "scalars": scalars, "history": history}, indent=1))
    _atomic_write_text(run / META_FILE, json.dumps({**meta, "epoch": epoch, "history": history,
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
    import hashlib

    from lesbench.les.space import LES_JSON, les_hash

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


def _load_training_state(run: Path, model, opt, device) -> tuple[int, list[dict]]:
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
