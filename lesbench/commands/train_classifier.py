"""``lesbench train-classifier``: a MEAD 8-class emotion classifier for Acc_emo."""

from __future__ import annotations

import argparse
from pathlib import Path

from lesbench.commands import Command


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prepared", metavar="PREPARED", help="prepared data set (output of `lesbench prepare`)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="output .safetensors (a .json card is written beside it; "
                        "default: PREPARED/classifiers/emotion-FEATURES.safetensors)")
    p.add_argument("--features", choices=["au", "crops", "both"], default="au",
                   help="per-frame AU intensities, aligned face crops, or both (default: au)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: 40 for au, 15 for crops)")
    p.add_argument("--frame-step", type=int, default=5, help="use every N-th crop frame for training (default: 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the crop CNN (default: torch's)")


def _run(args: argparse.Namespace) -> int:
    from lesbench.metrics.emotion_classifier import train_classifier

    result = train_classifier(args.prepared, out=args.out, features=args.features, epochs=args.epochs,
                              seed=args.seed, device=args.device, frame_step=args.frame_step,
                              threads=args.threads)
    held = result.card["heldout"]
    print(f"classifier {result.card['name']} ({result.card['features']}): held-out clip accuracy "
          f"{held['clip_accuracy']:.3f} on {held['n_clips']} clips (speakers {', '.join(held['speakers'])}), "
          f"frame accuracy {held['frame_accuracy']:.3f}; card {Path(result.path).with_suffix('.json')}")
    return 0


COMMANDS = [
    Command(
        "train-classifier",
        "train a MEAD 8-class emotion classifier (AUs and/or crops) for Acc_emo",
        _add_arguments,
        _run,
        order=45,
        description=(
            "Train a MEAD-specific 8-class emotion classifier on PREPARED's train split (per-frame AU "
            "intensities and/or aligned face crops, pooled to clips by mean probability), report its "
            "accuracy on the held-out val/test speakers, and save FILE.safetensors + FILE.json, its card "
            "(name, the weights' sha256, training data, held-out accuracy), which `lesbench evaluate` "
            "records in the results. Use it with EmotionAccuracy(classifier=FILE)."
        ),
    )
]
