"""An optional learned refiner for LES-Talker's warp renderer (lesbench's addition).

The paper's renderer is not released; lesbench renders by a landmark-guided piecewise-affine
warp of the source crop (:mod:`lesbench.model.renderer`). This module adds a small image-to-image
network that corrects each warped frame:

    refined = clip(warped + up(R(down(warped), down(source), down(mouth_mask))), 0, 1)

- ``R`` is a U-Net of ``levels`` resolutions (``channels`` wide at full resolution, doubled per
  level), input 7 channels: the warped frame (RGB), the source crop (RGB) and a mouth mask (the
  filled outer-lip polygon of the target landmarks); output a 3-channel residual. Its last layer
  starts at zero, so an untrained refiner is the identity.
- It works at the resolution it was trained at (``size``, 128 on CPU, 256 on a GPU): at
  inference the 256 crop is resized to ``size``, the residual is computed there and resized
  back, and added to the full-resolution warp (so a CPU-trained refiner never sees structures at
  a scale it was not trained on). It is fully convolutional; any size divisible by
  ``2^(levels-1)`` runs.

Training pairs come from a prepared data set's **train split** only (:func:`build_pairs`):
source = the first face frame of the speaker's neutral clip (``source: neutral``; the clip's
own first face frame when the speaker has none, or with ``source: clip``), target = crop frame
``t``; input = the source crop warped to frame ``t``'s crop landmarks exactly as
:func:`~lesbench.model.renderer.render_frames` does (same warp, same mouth painting); label = the
real crop frame ``t``. The landmarks in crop pixels are the frames table's landmarks (source
pixels) mapped through the crop transform the prepare stage used
(:func:`lesbench.extract.crops.crop_params` recomputed from the same landmarks; ~0.3 px from
re-tracking the crop). Held-out speakers validate. Loss: L1 (+ ``mouth_weight`` extra inside
the mouth) + ``grad_weight`` x L1 of image gradients.

The network and checkpoint are in :mod:`lesbench.model.refine_net`, the pairs in
:mod:`lesbench.model.refine_pairs`; this module trains.

Files (in the run folder): ``refine.safetensors`` (weights; config in its metadata),
``refine.json`` (config, sha256 of the weights, data provenance, held-out scores),
``refine_log.csv`` (one row per logged step).

    from lesbench.model.refine import train_refiner
    from lesbench.model.refine_net import load_refiner
    result = train_refiner("prepared/", "runs/les", steps=400)       # CPU: 128 px
    refiner = load_refiner("runs/les/refine.safetensors")
    frame = refiner.refine(warped, source_crop, target_landmarks)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lesbench import __version__, schema
from lesbench.atomic import write_text
from lesbench.errors import DatasetError
from lesbench.les.prepared import open_prepared
from lesbench.model.config import ConfigError, RefineConfig, load_config, validate_refine
from lesbench.model.refine_net import (
    FORMAT,
    FORMAT_VERSION,
    REFINE_FILE,
    REFINE_META,
    Refiner,
    RefineNet,
    resize_square,
    to_tensor,
    refined,
    save_refiner,
    stack_input,
)
from lesbench.model.refine_pairs import RefinePairs, build_pairs, evaluate_pairs
from lesbench.model.runs import resolve_device, write_csv_log
from lesbench.threads import torch_threads

REFINE_LOG = "refine_log.csv"
LOG_FIELDS = ("step", "lr", "loss", "l1", "grad", "val_l1", "val_warp_l1", "seconds")


@dataclass
class RefineResult:
    """What :func:`train_refiner` did: the checkpoint, its log and the held-out scores."""

    path: Path
    size: int
    steps: int
    device: str
    seconds: float
    history: list[dict] = field(default_factory=list)
    val: dict = field(default_factory=dict)
    n_train_pairs: int = 0
    sha256: str = ""


def _loss_terms(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, cfg: RefineConfig) -> dict[str, torch.Tensor]:
    diff = (out - target).abs()
    l1 = (diff * (1.0 + cfg.mouth_weight * mask)).mean()
    gx = lambda a: a[..., :, 1:] - a[..., :, :-1]  # noqa: E731
    gy = lambda a: a[..., 1:, :] - a[..., :-1, :]  # noqa: E731
    grad = (gx(out) - gx(target)).abs().mean() + (gy(out) - gy(target)).abs().mean()
    return {"l1": l1, "grad": grad, "loss": l1 + cfg.grad_weight * grad}


def _batch(pairs: RefinePairs, idx: np.ndarray, flips: np.ndarray | None, device) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = pairs.inputs[idx], pairs.targets[idx]
    if flips is not None and flips.any():
        x, y = x.copy(), y.copy()
        x[flips], y[flips] = x[flips][:, :, ::-1], y[flips][:, :, ::-1]
    return to_tensor(x, device), to_tensor(y, device)


def _val_l1(net: RefineNet, pairs: RefinePairs, device, batch: int = 16) -> tuple[float, float]:
    """(refined L1, warp L1) at the training size."""
    net.eval()
    tot = warp_tot = 0.0
    with torch.no_grad():
        for i in range(0, len(pairs), batch):
            x, y = _batch(pairs, np.arange(i, min(i + batch, len(pairs))), None, device)
            tot += float((refined(net, x) - y).abs().mean()) * len(x)
            warp_tot += float((x[:, :3] - y).abs().mean()) * len(x)
    net.train()
    return tot / len(pairs), warp_tot / len(pairs)


def resolve_refine_config(run_dir: str | Path | None, config: RefineConfig | str | Path | None = None,
                          overrides: dict | None = None) -> RefineConfig:
    """The refiner's config: ``config`` (a RefineConfig, or a YAML file with a ``refine:``
    section), else the run's ``config.yaml``, else the packaged defaults; then ``overrides``
    (keys of the ``refine:`` section)."""
    if isinstance(config, RefineConfig):
        cfg = RefineConfig(**asdict(config))
    elif config is not None:
        cfg = load_config(config).refine
    elif run_dir is not None and (Path(run_dir) / "config.yaml").is_file():
        cfg = load_config(Path(run_dir) / "config.yaml").refine
    else:
        cfg = load_config().refine
    if overrides:
        cfg = load_config(overrides={"refine": {**asdict(cfg), **overrides}}).refine
    return validate_refine(cfg)


def train_refiner(
    data: str | Path,
    run_dir: str | Path,
    *,
    config: RefineConfig | str | Path | None = None,
    size: int | None = None,
    steps: int | None = None,
    device: str | None = "auto",
    seed: int = 0,
    overrides: dict | None = None,
    train_split: str | None = None,
    progress: bool = True,
) -> RefineResult:
    """Train the refiner on the prepared data set ``data`` and write it into ``run_dir``.

    ``size`` / ``steps`` default to the config's ``size`` / ``steps`` on CPU and ``gpu_size`` /
    ``gpu_steps`` on CUDA. Train split (``train_split``, default the run's config or "train")
    only; held-out speakers (every other split) are scored at the end, warp-only vs refined,
    at 256 through the inference path. Deterministic for a ``seed`` on a given device.
    Writes ``refine.safetensors``, ``refine.json`` and ``refine_log.csv``.
    """
    run = Path(run_dir)
    cfg = resolve_refine_config(run, config, overrides)
    if train_split is None:
        train_split = load_config(run / "config.yaml").train_split if (run / "config.yaml").is_file() else "train"
    dev = resolve_device(device)
    on_gpu = dev.type == "cuda"
    size = int(size or (cfg.gpu_size if on_gpu else cfg.size))
    steps = int(steps or (cfg.gpu_steps if on_gpu else cfg.steps))
    if size % (1 << (cfg.levels - 1)):
        raise ConfigError(f"refiner size {size} must be divisible by 2^(levels-1) = {1 << (cfg.levels - 1)}")
    index = open_prepared(data)
    train_clips = [c for c in index.clips if c.split == train_split]
    val_clips = [c for c in index.clips if c.split != train_split]
    if cfg.max_train_clips:
        train_clips = train_clips[: cfg.max_train_clips]
    if not train_clips:
        raise DatasetError(f"{data}: no clip in split {train_split!r} to train the refiner on")
    run.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    with torch_threads(max(1, cfg.threads)):
        train_pairs = build_pairs(index.data, train_clips, size=size, pairs_per_clip=cfg.pairs_per_clip,
                                  source=cfg.source, progress=progress)
        if len(train_pairs) == 0:
            raise DatasetError(f"{data}: no usable training pair for the refiner (crops/landmarks missing?): "
                               + "; ".join(f"{k}: {v}" for k, v in list(train_pairs.skipped.items())[:3]))
        val_full = build_pairs(index.data, val_clips, size=schema.CROP_SIZE, pairs_per_clip=cfg.pairs_per_clip,
                               source=cfg.source, max_pairs=cfg.max_val_pairs) if val_clips else None
        val_small = None
        if val_full is not None and len(val_full):
            val_small = RefinePairs(np.stack([stack_input(x[..., :3], x[..., 3:6], x[..., 6], size) for x in val_full.inputs]),
                                    np.stack([resize_square(y, size) for y in val_full.targets]))
        t_data = time.perf_counter() - t_start

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = RefineNet(cfg.channels, cfg.levels).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        history: list[dict] = []
        sums: dict[str, float] = {}
        n_sum = 0
        t0 = time.perf_counter()
        from tqdm.auto import tqdm

        bar = tqdm(range(steps), desc="refine", unit="step", disable=not progress)
        net.train()
        for step in bar:
            lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * step / max(steps, 1)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = rng.choice(len(train_pairs), size=min(cfg.batch_size, len(train_pairs)), replace=False)
            flips = rng.random(len(idx)) < 0.5 if cfg.flip else None
            x, y = _batch(train_pairs, idx, flips, dev)
            terms = _loss_terms(refined(net, x), y, x[:, 6:7], cfg)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_sum += 1
            last = step + 1 == steps
            if last or (step + 1) % max(cfg.eval_every, 1) == 0 or step == 0:
                row = {"step": step + 1, "lr": lr, **{k: v / n_sum for k, v in sums.items()},
                       "val_l1": None, "val_warp_l1": None, "seconds": time.perf_counter() - t0}
                if val_small is not None:
                    row["val_l1"], row["val_warp_l1"] = _val_l1(net, val_small, dev)
                history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{row['val_l1'] or float('nan'):.4f}")
                sums, n_sum = {}, 0
        bar.close()
        t_train = time.perf_counter() - t0
        path = run / REFINE_FILE
        digest = save_refiner(net, path, cfg, size)
        net.eval()
        refiner = Refiner(net=net, config=cfg, size=size, device=dev, path=path, sha256=digest)
        val = evaluate_pairs(refiner, val_full) if val_full is not None and len(val_full) else {}
        seconds = time.perf_counter() - t_start
        meta = {
            "format": FORMAT, "version": FORMAT_VERSION, "file": REFINE_FILE, "sha256": digest,
            "lesbench_version": __version__, "torch_version": torch.__version__,
            "size": size, "steps": steps, "seed": seed, "device": str(dev), "config": asdict(cfg),
            "seconds": {"data": t_data, "train": t_train, "total": seconds},
            "val": val,
            "provenance": {
                **index.data.provenance(),
                "train_split": train_split,
                "n_train_pairs": len(train_pairs),
                "train_clips": sorted(set(train_pairs.clip_ids)),
                "train_speakers": sorted({c.speaker for c in train_clips}),
                "val_speakers": sorted({c.speaker for c in val_clips}),
                "n_val_pairs": len(val_full) if val_full is not None else 0,
                "skipped_clips": {**train_pairs.skipped, **(val_full.skipped if val_full is not None else {})},
            },
            "history": history,
        }
        write_text(run / REFINE_META, json.dumps(meta, indent=1, default=float))
        write_csv_log(run / REFINE_LOG, LOG_FIELDS, history)
        return RefineResult(path=path, size=size, steps=steps, device=str(dev), seconds=seconds, history=history,
                            val=val, n_train_pairs=len(train_pairs), sha256=digest)


def should_train_refiner(mode: str, device: str | None = "auto") -> bool:
    """``mode`` auto / true / false (or on / off): auto trains only when the resolved device is
    CUDA, true always, false never."""
    m = {"on": "true", "off": "false"}.get(str(mode).lower(), str(mode).lower())
    if m not in ("auto", "true", "false"):
        raise ConfigError(f"refine mode must be auto, on/true or off/false, got {mode!r}")
    if m == "false":
        return False
    return m == "true" or resolve_device(device).type == "cuda"
