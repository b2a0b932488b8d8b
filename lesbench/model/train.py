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

(files and digests: :mod:`lesbench.model.runs`; conditions, augmentation and batches:
:mod:`lesbench.model.batches`).

``--resume`` continues exactly: window sampling, augmentation and dropout are seeded from
``(seed, epoch)`` at the start of every epoch and the learning rate is a function of the epoch,
so "2 epochs" equals "1 epoch + resume 1 more" (tested).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesbench import __version__, schema
from lesbench.errors import DatasetError, LesbenchError
from lesbench.les.prepared import open_prepared
from lesbench.les.space import LinearEmotionSpace, build_les, les_hash
from lesbench.model.batches import TalkerData, collate, evaluate_clips, val_mean_baseline
from lesbench.model.config import TrainConfig, load_config, save_config
from lesbench.model.data import fit_statistics, load_clips, load_face_bases
from lesbench.model.losses import LossBatch, talker_losses
from lesbench.model.runs import MODEL_FILE, STATE_FILE, load_training_state, resolve_device, save_checkpoint
from lesbench.model.talker import LESTalker
from lesbench.threads import torch_threads
from lesbench.weights import file_sha256

@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict] = field(default_factory=list)


def prepare_run_inputs(data: str | Path, run: Path, les: str | Path | None, cfg: TrainConfig, resume: bool):
    """Index the data set, get the LES (copied into the run) and the face model."""
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
    fm_src = index.data.path("face_model")
    fm_dst = run / schema.FACE_MODEL
    if not fm_dst.is_file() or not resume:
        if not fm_src.is_file():
            raise DatasetError(f"{fm_src}: missing; training needs the prepared data set's face model")
        shutil.copyfile(fm_src, fm_dst)
    return index, space, load_face_bases(fm_dst)


def build_model(cfg: TrainConfig, *, n_mel: int, n_exp: int, n_id: int, n_cond: int):
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
            raise DatasetError(f"{index.data.path('face_model')}: {bases.exp_basis.shape[0]} expression components but coeffs have {n_exp}")
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
            start_epoch, history = load_training_state(run, model, opt, dev)
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
                **index.data.provenance(),
                "les_sha256": les_hash(run / "les"),
                "face_model_sha256": file_sha256(run / schema.FACE_MODEL),
                "n_train_clips": len(td.train),
                "n_val_clips": len(td.val),
                "train_speakers": sorted({c.record.speaker for c in td.train}),
                "val_speakers": sorted({c.record.speaker for c in td.val}),
                "skipped_clips": dict(index.skipped),
            },
        }
        weights = cfg.loss
        baseline = val_mean_baseline(td, stats)
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
                save_checkpoint(run, model, opt, epoch + 1, history, meta)
        bar.close()
        if start_epoch >= cfg.train.epochs and not (run / MODEL_FILE).is_file():
            save_checkpoint(run, model, opt, start_epoch, history, meta)
        return TrainResult(run_dir=run, history=history)
