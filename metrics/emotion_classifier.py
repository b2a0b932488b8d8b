"""MEAD-specific 8-class emotion classifier, trained on a prepared data set's train split.

``lesbench train-classifier PREPARED --features au|crops|both`` trains, evaluates on held-out
speakers (clips whose ``split`` is ``val`` or ``test`` in ``clips.parquet``) and writes
``FILE.safetensors`` + ``FILE.json`` (the card: name, the weights' sha256, classes, features,
architecture, training data set (folder, dataset.json sha256, speakers), held-out accuracy).
``EmotionAccuracy(classifier=FILE)`` then uses it; ``lesbench evaluate`` records the card in the
results file (:mod:`lesbench.metrics.emotion_classifier_card`), with a caveat when the method
under test trains on the features the classifier reads (an ``au`` classifier and LES-Talker).

Features and models (all frame-level, pooled to clip level by the mean class probability):

- ``au``: the 17 AU intensities of each frame (``frames/{clip_id}.parquet``, columns
  ``schema.AU_NAMES``) standardised with the train split's mean/std, then an MLP
  17 -> 64 -> 64 -> 8 (ReLU, dropout 0.1). At scoring time the AUs of the generated frames are
  needed (``aus=`` argument; :class:`EmotionAccuracy` computes them with the MediaPipe face
  tracker when not given).
- ``crops``: the aligned face crop (``crops/{clip_id}.mp4``) cut and scaled as for the FER
  classifier (:func:`lesbench.metrics.emotion_fer.fer_inputs`: fixed face box, grayscale, 64×64,
  [-1, 1]) and a small CNN (stride-2 conv stem 16, conv blocks 32/64 with max pooling, global
  average pooling, linear 8); training takes every ``frame_step``-th frame.
- ``both``: both models, trained separately; frame probabilities are averaged.

Training: Adam (lr 1e-3), class-balanced cross-entropy (weights ∝ 1 / frames per class),
fixed seed, CPU or GPU (``device``). Frames without a face (``face`` false or NaN AUs) are
skipped.

The networks and inference: :mod:`lesbench.metrics.emotion_classifier_model`; reading the
training data: :mod:`lesbench.metrics.emotion_classifier_data`; cards in results:
:mod:`lesbench.metrics.emotion_classifier_card`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lesbench.errors import DatasetError
from lesbench.schema import AU_NAMES, EMOTIONS
from lesbench.threads import torch_threads
from lesbench.weights import file_sha256
from lesbench.metrics.emotion_classifier_data import ClipData, load_clips
from lesbench.metrics.emotion_classifier_model import CARD_FORMAT, MeadEmotionClassifier, torch_modules
from lesbench.metrics.emotion_clip import pool_clip

FEATURES = ("au", "crops", "both")



@dataclass
class TrainResult:
    """What ``train_classifier`` produced (also written to the JSON card)."""

    path: str
    card: dict = field(default_factory=dict)


def _class_weights(y: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n, 0.0)
    return w.astype(np.float32)


def _fit(model: Any, x: np.ndarray, y: np.ndarray, epochs: int, batch: int, device: Any, seed: int,
         log: Any = None, what: str = "", threads: int | None = None) -> None:
    """Mini-batch training. ``threads``: torch CPU threads for the duration (restored after);
    1 for the tiny AU MLP, whose steps are ~20x slower when two threads contend for busy cores."""
    with torch_threads(threads or None):
        _fit_loop(model, x, y, epochs, batch, device, seed, log, what)


def _fit_loop(model: Any, x: np.ndarray, y: np.ndarray, epochs: int, batch: int, device: Any, seed: int,
              log: Any, what: str) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    weight = torch.from_numpy(_class_weights(y, len(EMOTIONS))).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        total = 0.0
        for s in range(0, len(perm), batch):
            idx = perm[s : s + batch]
            xb, yb = xt[idx].to(device), yt[idx].to(device)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if log and (epoch == epochs - 1 or epoch % max(1, epochs // 5) == 0):
            log(f"  {what} epoch {epoch + 1}/{epochs}: loss {total / len(perm):.4f}")
    model.eval()


def train_classifier(prepared: str | Path, out: str | Path | None = None, features: str = "au",
                     epochs: int | None = None, seed: int = 0, device: str | None = None,
                     frame_step: int = 5, log: Any = print, threads: int | None = None) -> TrainResult:
    """Train a MEAD 8-class classifier on ``prepared``'s train split; see the module doc.

    ``threads``: torch CPU threads while training the crop CNN (default: torch's setting; the
    AU MLP always uses 1). Returns the saved path and the card (held-out clip and frame accuracy under ``heldout``).
    Raises :class:`lesbench.errors.DatasetError` when the train or held-out split is empty.
    """
    import torch
    from safetensors.torch import save_file

    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    prepared = Path(prepared)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    t0 = time.time()
    clips = load_clips(prepared, features, frame_step, log)
    train = [c for c in clips if c.split == "train"]
    held = [c for c in clips if c.split in ("val", "test")]
    if not train:
        raise DatasetError(f"{prepared}: no usable clips in the train split")
    if not held:
        raise DatasetError(f"{prepared}: no usable val/test clips to report held-out accuracy on")
    cls_index = {e: i for i, e in enumerate(EMOTIONS)}
    AUFrameMLP, CropCNN = torch_modules()
    tensors: dict[str, Any] = {}
    arch: dict[str, Any] = {}
    models: dict[str, Any] = {}
    if features in ("au", "both"):
        x = np.concatenate([c.aus for c in train])
        y = np.concatenate([np.full(len(c.aus), cls_index[c.emotion]) for c in train])
        m = AUFrameMLP().to(dev)
        m.mean.copy_(torch.from_numpy(x.mean(axis=0)))
        m.std.copy_(torch.from_numpy(np.maximum(x.std(axis=0), 1e-3)))
        log(f"training AU MLP on {len(x)} frames of {len(train)} clips")
        _fit(m, x, y, epochs or 40, 256, dev, seed, log, "au", threads=1)
        models["au"] = m
        arch["au"] = {"type": "AUFrameMLP", "inputs": list(AU_NAMES), "hidden": 64}
    if features in ("crops", "both"):
        x = np.concatenate([c.crops for c in train])
        y = np.concatenate([np.full(len(c.crops), cls_index[c.emotion]) for c in train])
        m = CropCNN().to(dev)
        log(f"training crop CNN on {len(x)} frames of {len(train)} clips")
        _fit(m, x, y, epochs or 15, 32, dev, seed, log, "crops", threads=threads)
        models["crops"] = m
        arch["crops"] = {"type": "CropCNN", "input": "fer_inputs 64x64 gray [-1,1]", "frame_step": frame_step}
    for key, m in models.items():
        for name, t in m.state_dict().items():
            tensors[f"{key}.{name}"] = t.detach().cpu().contiguous()
    clf = MeadEmotionClassifier(models, features, name="", device=dev)
    acc = evaluate(clf, held)
    out = Path(out) if out else prepared / "classifiers" / f"emotion-{features}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    card = {
        "format": CARD_FORMAT,
        "name": out.stem,
        "classes": list(EMOTIONS),
        "features": features,
        "architecture": arch,
        "dataset": {"path": str(prepared.resolve()), "dataset_json": _dataset_json(prepared),
                    "dataset_json_sha256": _sha256_or_none(prepared / "dataset.json")},
        "train": {"n_clips": len(train), "speakers": sorted({c.speaker for c in train}), "seed": seed,
                  "epochs": epochs, "seconds": round(time.time() - t0, 1)},
        "heldout": {"splits": ["val", "test"], "speakers": sorted({c.speaker for c in held}), **acc},
    }
    tmp = out.with_suffix(".tmp.safetensors")
    # The weights file's own card leaves out where and how long (the folder's path, seconds), so
    # its sha256, which results record, is the same for the same training; FILE.json has them.
    weights_card = {**card, "dataset": {k: v for k, v in card["dataset"].items()
                                        if k not in ("path", "dataset_json_sha256")},
                    "train": {k: v for k, v in card["train"].items() if k != "seconds"}}
    save_file(tensors, str(tmp), metadata={"card": json.dumps(weights_card)})
    tmp.replace(out)
    card_path = out.with_suffix(".json")
    tmp_card = card_path.with_suffix(".tmp.json")
    # the weights' sha256 can only live outside the file it hashes: the card beside it records
    # it, and load() refuses weights that no longer match
    tmp_card.write_text(json.dumps({**card, "sha256": file_sha256(out, fresh=True)}, indent=2) + "\n")
    tmp_card.replace(card_path)
    log(f"held-out ({len(held)} clips): clip accuracy {acc['clip_accuracy']:.3f}, "
        f"frame accuracy {acc['frame_accuracy']:.3f}; wrote {out} and {card_path}")
    return TrainResult(str(out), card)


def _sha256_or_none(path: Path) -> str | None:
    return file_sha256(path, fresh=True) if path.is_file() else None


def _dataset_json(prepared: Path) -> dict:
    p = prepared / "dataset.json"
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return {k: d[k] for k in ("format_version", "lesbench_version") if k in d}


def evaluate(clf: "MeadEmotionClassifier", clips: Sequence[ClipData]) -> dict[str, Any]:
    """Clip (mean-probability pooling) and frame accuracy, plus per-class clip accuracy."""
    right, frames_right, frames = 0, 0, 0
    per_class: dict[str, list[int]] = {}
    for c in clips:
        p = clf.predict_features(aus=c.aus, crops=c.crops)
        target = EMOTIONS.index(c.emotion)
        ok = int(pool_clip(p) == target)
        right += ok
        frames_right += int((p.argmax(axis=1) == target).sum())
        frames += len(p)
        per_class.setdefault(c.emotion, []).append(ok)
    return {"n_clips": len(clips), "clip_accuracy": right / len(clips), "frame_accuracy": frames_right / frames,
            "per_class_clip_accuracy": {k: float(np.mean(v)) for k, v in sorted(per_class.items())}}
