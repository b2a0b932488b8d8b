"""``lesbench train``: train LES-Talker (or its one-hot / audio-only variants) on prepared data."""

from __future__ import annotations

import argparse

from lesbench.commands import Command
from lesbench.errors import LesbenchError
from lesbench.model.config import ConfigError, load_config

DESCRIPTION = """\
Train LES-Talker on a prepared data set (the output of `lesbench prepare`).

The Linear Emotion Space is taken from --les, else PREPARED/les, else built from the train
split; it is copied into the run. Every hyper-parameter is in the config (see the packaged
default: lesbench/model/default.yaml; --config files may set only what they change).
Validation on the held-out speakers runs every epoch; RUN/log.csv has one row per epoch.

  lesbench train --data prepared/ --out runs/les
  lesbench train --data prepared/ --out runs/onehot --set condition=onehot
  lesbench train --data prepared/ --out runs/les --resume --epochs 40
  lesbench train --data prepared/ --out runs/les --refine on       # + the learned refiner, also on CPU

--refine (default: the config's refine.enabled, "auto"): after the talker, train the optional
learned refiner of the warp renderer (RUN/refine.safetensors): auto = only when a CUDA GPU is
present, on = always (CPU: at refine.size, 128 px), off = never.
"""

REFINE_DESCRIPTION = """\
Train (only) the optional learned refiner of LES-Talker's warp renderer on a prepared data set's
train split and write RUN/refine.safetensors, RUN/refine.json (config, sha256, provenance,
held-out warp-only vs refined L1/PSNR) and RUN/refine_log.csv. `lesbench generate` uses it when
present (--no-refine turns it off). Defaults come from RUN/config.yaml's refine: section when RUN
is a talker run, else the packaged defaults; CPU trains at refine.size (128) for refine.steps,
CUDA at refine.gpu_size (256) for refine.gpu_steps.

  lesbench train-refine --data prepared/ --run runs/les
  lesbench train-refine --data prepared/ --run runs/les --steps 2000 --set channels=32 --force
"""


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="PREPARED", help="prepared data set")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (checkpoints, log, config)")
    p.add_argument("--config", metavar="FILE", help="YAML config overriding the defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set train.epochs=5 --set condition=onehot")
    p.add_argument("--les", metavar="LES_DIR", help="LES artefact to use (default: PREPARED/les or build one)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto (CUDA when present)")
    p.add_argument("--epochs", type=int, help="train (or, with --resume, continue) up to this many epochs")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--refine", choices=["auto", "on", "off"],
                   help="train the learned refiner after the talker (default: config refine.enabled = auto: only with CUDA)")


def _add_refine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="PREPARED", help="prepared data set (with crops/)")
    p.add_argument("--run", required=True, metavar="RUN", help="run folder to write the refiner into (usually a `lesbench train` run)")
    p.add_argument("--config", metavar="FILE", help="YAML config whose refine: section overrides the defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one refine: value, e.g. --set channels=32 (or refine.channels=32)")
    p.add_argument("--size", type=int, help="training resolution (default: refine.size on CPU, refine.gpu_size on CUDA)")
    p.add_argument("--steps", type=int, help="optimiser steps (default: refine.steps on CPU, refine.gpu_steps on CUDA)")
    p.add_argument("--seed", type=int, help="default: the run's seed (0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto (CUDA when present)")
    p.add_argument("--force", action="store_true", help="replace an existing RUN/refine.safetensors")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_sets(items: list[str]) -> dict:
    """``["train.epochs=5", "condition=onehot"]`` -> nested dict (values parsed as YAML scalars)."""
    import yaml

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def _run(args: argparse.Namespace) -> int:
    from lesbench.model.train import train

    overrides = parse_sets(args.set)
    if args.resume and (args.config or overrides):
        raise LesbenchError("--resume continues with the run's own config.yaml; drop --config/--set (use --epochs to extend)")
    result = train(args.data, args.out, config=args.config, overrides=overrides or None, les=args.les,
                   device=args.device, resume=args.resume, epochs=args.epochs, progress=not args.no_progress)
    if result.history:
        first, last = result.history[0], result.history[-1]
        print(f"epochs {first['epoch']}-{last['epoch']}: train loss {first['train_total']:.4f} -> {last['train_total']:.4f}; "
              f"held-out exp L1 {first['val_exp_l1'] if first['val_exp_l1'] is not None else float('nan'):.4f} -> "
              f"{last['val_exp_l1'] if last['val_exp_l1'] is not None else float('nan'):.4f}")
    print(f"run: {result.run_dir} (checkpoint.json, model.safetensors, log.csv)")
    _maybe_train_refiner(args)
    return 0


def _maybe_train_refiner(args: argparse.Namespace) -> None:
    """After the talker: train the refiner when --refine / refine.enabled asks for it."""
    from pathlib import Path

    from lesbench.model.refine import should_train_refiner, train_refiner
    from lesbench.model.refine_net import REFINE_FILE

    run = Path(args.out)
    cfg = load_config(run / "config.yaml")
    mode = args.refine or cfg.refine.enabled
    if not should_train_refiner(mode, args.device):
        return
    if args.resume and (run / REFINE_FILE).is_file():
        print(f"refiner: kept {run / REFINE_FILE} (use `lesbench train-refine --force` to retrain it)")
        return
    _report_refiner(train_refiner(args.data, run, config=cfg.refine, device=args.device, seed=cfg.seed,
                                  train_split=cfg.train_split, progress=not args.no_progress))


def _report_refiner(r) -> None:
    v = r.val
    held = (f"; held-out L1 {v['warp_l1']:.4f} (warp) -> {v['refined_l1']:.4f} (refined), "
            f"PSNR {v['warp_psnr']:.2f} -> {v['refined_psnr']:.2f} dB over {v['n_pairs']} pairs") if v else ""
    print(f"refiner: {r.path} ({r.size} px, {r.steps} steps on {r.device}, {r.seconds:.0f} s){held}")


def _run_refine(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lesbench.model.refine import resolve_refine_config, train_refiner
    from lesbench.model.refine_net import REFINE_FILE

    run = Path(args.run)
    if (run / REFINE_FILE).is_file() and not args.force:
        raise LesbenchError(f"{run / REFINE_FILE}: already exists; add --force to replace it")
    sets = parse_sets(args.set)
    overrides = {**sets.pop("refine", {}), **sets} if sets else None
    cfg = resolve_refine_config(run, args.config, overrides)
    seed = args.seed
    if seed is None:
        seed = load_config(run / "config.yaml").seed if (run / "config.yaml").is_file() else 0
    _report_refiner(train_refiner(args.data, run, config=cfg, size=args.size, steps=args.steps, device=args.device,
                                  seed=seed, progress=not args.no_progress))
    return 0


COMMANDS = [Command("train", "train LES-Talker (or its one-hot / audio-only variants) on prepared data",
                    _add_arguments, _run, order=30, description=DESCRIPTION),
            Command("train-refine", "train the optional learned refiner of LES-Talker's warp renderer",
                    _add_refine_arguments, _run_refine, order=31, description=REFINE_DESCRIPTION)]
