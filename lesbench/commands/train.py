"""``lesbench train``: train LES-Talker (or its one-hot / audio-only variants) on prepared data."""

from __future__ import annotations

import argparse

from lesbench.commands import Command

DESCRIPTION = """\
Train LES-Talker on a prepared data set (the output of `lesbench prepare`).

The Linear Emotion Space is taken from --les, else PREPARED/les, else built from the train
split; it is copied into the run. Every hyper-parameter is in the config (see the packaged
default: lesbench/model/default.yaml; --config files may set only what they change).
Validation on the held-out speakers runs every epoch; RUN/log.csv has one row per epoch.

  lesbench train --data prepared/ --out runs/les
  lesbench train --data prepared/ --out runs/onehot --set condition=onehot
  lesbench train --data prepared/ --out runs/les --resume --epochs 40
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


def parse_sets(items: list[str]) -> dict:
    """``["train.epochs=5", "condition=onehot"]`` -> nested dict (values parsed as YAML scalars)."""
    import yaml

    from lesbench.model.config import ConfigError

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
    from lesbench.errors import LesbenchError
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
    return 0


COMMANDS = [Command("train", "train LES-Talker (or its one-hot / audio-only variants) on prepared data",
                    _add_arguments, _run, order=30, description=DESCRIPTION)]
