"""The trained MEAD emotion classifier at inference: its networks (an AU MLP and a crop CNN) and
:class:`MeadEmotionClassifier`, which loads a file written by ``lesbench train-classifier`` (checking
its card and recorded sha256) and gives frame probabilities (see :mod:`lesbench.metrics.emotion_classifier`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.schema import AU_NAMES, EMOTIONS
from lesbench.weights import check_recorded_sha256, load_safetensors
from lesbench.extract.action_units import au_from_blendshapes
from lesbench.extract.face import FaceTracker
from lesbench.metrics.emotion_fer import fer_inputs

CARD_FORMAT = "lesbench-emotion-classifier/1"


def torch_modules() -> tuple[type, type]:
    """``(AUFrameMLP, CropCNN)``: the classifier's two network classes (torch imported only here)."""
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
        AUFrameMLP, CropCNN = torch_modules()
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
