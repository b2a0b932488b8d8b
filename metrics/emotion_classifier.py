"""MEAD-specific 8-class emotion classifier, trained on a prepared data set's train split.

``lesbench train-classifier PREPARED --features au|crops|both`` trains, evaluates on held-out
speakers (clips whose ``split`` is ``val`` or ``test`` in ``clips.parquet``) and writes
``FILE.safetensors`` + ``FILE.json`` (the card: classes, features, architecture, data set,
held-out accuracy). ``EmotionAccuracy(classifier=FILE)`` then uses it; results name it.

Features and models (all frame-level, pooled to clip level by the mean class probability):

- ``au``: the 17 AU intensities of each frame (``frames/{clip_id}.parquet``, columns
  ``schema.AU_NAMES``) standardised with the train split's mean/std, then an MLP
  17 -> 64 -> 64 -> 8 (ReLU, dropout 0.1). At scoring time the AUs of the generated frames are
  needed (``aus=`` argument; :class:`EmotionAccuracy` computes them with the MediaPipe face
  tracker when not given).
- ``crops``: the aligned face crop (``crops/{clip_id}.mp4``) cut and scaled as for the FER
  classifier (:func:`lesbench.metrics.emotion.fer_inputs`: fixed face box, grayscale, 64×64,
  [-1, 1]) and a small CNN (stride-2 conv stem 16, conv blocks 32/64 with max pooling, global
  average pooling, linear 8); training takes every ``frame_step``-th frame.
- ``both``: both models, trained separately; frame probabilities are averaged.

Training: Adam (lr 1e-3), class-balanced cross-entropy (weights ∝ 1 / frames per class),
fixed seed, CPU or GPU (``device``). Frames without a face (``face`` false or NaN AUs) are
skipped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lesbench.schema import AU_NAMES, EMOTIONS
from lesbench.weights import file_sha256

CARD_FORMAT = "lesbench-emotion-classifier/1"
FEATURES = ("au", "crops", "both")


def _torch_modules() -> tuple[type, type]:
    import torch
    from torch import nn

    class AUFrameMLP(nn.Module):
        """Per-frame AU MLP with the standardisation stored as buffers."""

        def __init__(self, n_in: int = len(AU_NAMES), n_classes: int = len(EMOTIONS), hidden: int = 64) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(n_in))
            self.register_buffer("std", torch.ones(n_in))
            self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.1),
                                     nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.1),
                                     nn.Linear(hidden, n_classes))

        def forward(self, x: Any) -> Any:  # (N, 17) -> logits (N, 8)
            return self.net((x - self.mean) / self.std)

    class CropCNN(nn.Module):
        """Small CNN on (N, 1, 64, 64) grayscale face crops in [-1, 1]."""

        def __init__(self, n_classes: int = len(EMOTIONS)) -> None:
            super().__init__()

            def block(i: int, o: int) -> nn.Sequential:
                return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

            # stride-2 stem (64 -> 32), two conv blocks (-> 16 -> 8): ~10 MFLOPs per frame
            self.features = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                          block(16, 32), block(32, 64))
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, n_classes))

        def forward(self, x: Any) -> Any:
            return self.head(self.features(x).mean(dim=(2, 3)))

    return AUFrameMLP, CropCNN


# --- data -------------------------------------------------------------------------------------


@dataclass
class ClipData:
    clip_id: str
    speaker: str
    emotion: str
    split: str
    aus: np.ndarray | None = None  # (T, 17) float32, face frames only
    crops: np.ndarray | None = None  # (T', 1, 64, 64) float32


def load_clips(prepared: str | Path, features: str, frame_step: int = 5,
               log: Any = None) -> list[ClipData]:
    """Clips of a prepared data set with status ok and a MEAD emotion, with their features.

    A clip whose feature file is missing or unreadable is skipped and logged (never fatal).
    """
    from lesbench.prepared import read_clips
    from lesbench.schema import dataset_paths

    paths = dataset_paths(prepared)
    # clips with crops and frames, audio or not
    clips = read_clips(prepared, statuses=("ok", "no_audio", "silent_audio"), required=("clip_id", "emotion", "split"))
    clips = clips[clips["emotion"].isin(EMOTIONS)]
    out: list[ClipData] = []
    for row in clips.itertuples(index=False):
        cd = ClipData(row.clip_id, str(getattr(row, "speaker", "")), row.emotion, row.split)
        try:
            if features in ("au", "both"):
                cd.aus = _read_aus(paths["frames"] / f"{row.clip_id}.parquet")
            if features in ("crops", "both"):
                cd.crops = _read_crops(paths["crops"] / f"{row.clip_id}.mp4", frame_step)
        except Exception as e:  # one bad clip never stops the data set
            if log:
                log(f"skipping {row.clip_id}: {type(e).__name__}: {e}")
            continue
        if (cd.aus is not None and len(cd.aus) == 0) or (cd.crops is not None and len(cd.crops) == 0):
            if log:
                log(f"skipping {row.clip_id}: no usable frames")
            continue
        out.append(cd)
    return out


def _read_aus(path: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    cols = list(AU_NAMES)
    table = pq.read_table(path, columns=cols + (["face"] if "face" in pq.read_schema(path).names else []))
    aus = np.stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in cols], axis=1)
    ok = np.isfinite(aus).all(axis=1)
    if "face" in table.column_names:
        ok &= table.column("face").to_numpy(zero_copy_only=False).astype(bool)
    return aus[ok]


def _read_crops(path: Path, frame_step: int) -> np.ndarray:
    from lesbench.io import read_frames
    from lesbench.metrics.emotion import fer_inputs

    frames = read_frames(path)
    return fer_inputs(frames[::frame_step])


# --- training ---------------------------------------------------------------------------------


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
    from lesbench.threads import torch_threads

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

    from lesbench.errors import DatasetError

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
    AUFrameMLP, CropCNN = _torch_modules()
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
        "dataset": {"path": str(prepared.resolve()), "dataset_json": _dataset_json(prepared)},
        "train": {"n_clips": len(train), "speakers": sorted({c.speaker for c in train}), "seed": seed,
                  "epochs": epochs, "seconds": round(time.time() - t0, 1)},
        "heldout": {"splits": ["val", "test"], "speakers": sorted({c.speaker for c in held}), **acc},
    }
    tmp = out.with_suffix(".tmp.safetensors")
    # The weights file's own card leaves out where and how long (the folder's path, seconds), so
    # its sha256, which results record, is the same for the same training; FILE.json has them.
    weights_card = {**card, "dataset": {k: v for k, v in card["dataset"].items() if k != "path"},
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


def _dataset_json(prepared: Path) -> dict:
    p = prepared / "dataset.json"
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return {k: d[k] for k in ("format_version", "lesbench_version") if k in d}


def evaluate(clf: "MeadEmotionClassifier", clips: Sequence[ClipData]) -> dict[str, Any]:
    """Clip (mean-probability pooling) and frame accuracy, plus per-class clip accuracy."""
    from lesbench.metrics.emotion import pool_clip

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


# --- inference --------------------------------------------------------------------------------


class MeadEmotionClassifier:
    """A trained MEAD classifier (8 classes, ``schema.EMOTIONS`` order)."""

    classes: tuple[str, ...] = EMOTIONS

    def __init__(self, models: dict[str, Any], features: str, name: str, device: Any = None,
                 card: dict | None = None, sha256: str = "") -> None:
        self.models = models
        self.features = features
        self.name = name
        self.device = device
        self.card = card or {}
        self.sha256 = sha256
        self._tracker: Any = None

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "MeadEmotionClassifier":
        """Load ``FILE.safetensors`` (the card is read from its metadata, or ``FILE.json``)."""
        import torch

        from lesbench.errors import LesbenchError
        from lesbench.weights import check_recorded_sha256, load_safetensors

        path = Path(path)
        if not path.is_file():
            raise LesbenchError(f"{path}: emotion classifier file not found (train one with lesbench train-classifier)")
        state, meta = load_safetensors(path)
        side_path = path.with_suffix(".json")
        try:
            side = json.loads(side_path.read_text()) if side_path.is_file() else {}
        except ValueError as exc:
            raise LesbenchError(f"{side_path}: not valid JSON ({exc})") from None
        card = json.loads(meta["card"]) if "card" in meta else side
        if isinstance(side, dict) and "path" not in card.get("dataset", {}):
            # the folder it was trained on is recorded only beside the weights (see train_classifier)
            card["dataset"] = {**card.get("dataset", {}), "path": (side.get("dataset") or {}).get("path")}
        if card.get("format") != CARD_FORMAT:
            raise LesbenchError(f"{path}: not a lesbench emotion classifier (format {card.get('format')!r})")
        digest = check_recorded_sha256(
            path, side.get("sha256") if isinstance(side, dict) else None, recorded_in=side_path,
            remedy="Restore the file written by `lesbench train-classifier`, or train it again.")
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        AUFrameMLP, CropCNN = _torch_modules()
        models = {}
        for key, ctor in (("au", AUFrameMLP), ("crops", CropCNN)):
            sub = {k[len(key) + 1 :]: v for k, v in state.items() if k.startswith(key + ".")}
            if sub:
                m = ctor()
                m.load_state_dict(sub)
                models[key] = m.to(dev).eval()
        return cls(models, card["features"], card.get("name", path.stem), dev, card, digest)

    def predict_features(self, aus: np.ndarray | None = None, crops: np.ndarray | None = None) -> np.ndarray:
        """Frame probabilities ``(T, 8)`` from AUs ``(T, 17)`` and/or FER-style inputs ``(T, 1, 64, 64)``.

        With both models, frames are paired by index (equal lengths required) and averaged.
        """
        import torch

        probs = []
        with torch.inference_mode():
            if "au" in self.models:
                if aus is None:
                    raise ValueError(f"classifier {self.name!r} needs per-frame AUs")
                x = torch.from_numpy(np.asarray(aus, np.float32)).to(self.device)
                probs.append(torch.softmax(self.models["au"](x), dim=1).cpu().numpy())
            if "crops" in self.models:
                if crops is None:
                    raise ValueError(f"classifier {self.name!r} needs face crops")
                out = []
                for s in range(0, len(crops), 256):
                    x = torch.from_numpy(np.ascontiguousarray(crops[s : s + 256])).to(self.device)
                    out.append(torch.softmax(self.models["crops"](x), dim=1).cpu().numpy())
                probs.append(np.concatenate(out))
        if len(probs) == 2 and len(probs[0]) != len(probs[1]):
            n = min(len(probs[0]), len(probs[1]))
            probs = [p[:n] for p in probs]
        return np.mean(probs, axis=0)

    def _aus_from_frames(self, frames: np.ndarray) -> np.ndarray:
        from lesbench.metrics.base import MetricUnavailable

        try:
            from lesbench.pipelines.action_units import au_from_blendshapes
            from lesbench.pipelines.face import FaceTracker
        except ImportError as e:
            raise MetricUnavailable("emotion", f"AU classifier needs the face tracker: {e}") from e
        if self._tracker is None:
            self._tracker = FaceTracker()
        df = self._tracker.track(list(frames), fps=25)
        bs = np.stack(df["blendshapes"].to_numpy()).astype(np.float32)
        return au_from_blendshapes(bs)

    def predict_proba(self, frames: np.ndarray | None = None, boxes: np.ndarray | None = None,
                      aus: np.ndarray | None = None) -> np.ndarray:
        """Frame probabilities ``(T, 8)`` for face-crop frames ``(T, H, W, 3)`` uint8.

        AU models use ``aus`` ``(T, 17)`` when given, else AUs measured on ``frames``; frames
        without a face (NaN AUs) are dropped.
        """
        from lesbench.metrics.emotion import fer_inputs

        crops = fer_inputs(frames, boxes) if "crops" in self.models else None
        a = None
        if "au" in self.models:
            a = np.asarray(aus, np.float32) if aus is not None else self._aus_from_frames(frames)
            ok = np.isfinite(a).all(axis=1)
            a = a[ok]
            if crops is not None and len(ok) == len(crops):
                crops = crops[ok]
        return self.predict_features(a, crops)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "classes": list(self.classes), "features": self.features,
                "weights": {self.name: self.sha256}, "heldout": self.card.get("heldout", {}),
                "dataset": self.card.get("dataset", {})}
