"""LSE-C / LSE-D: lip-sync error with the SyncNet v2 network (Chung & Zisserman, 2016).

Definitions (as in syncnet_python's ``SyncNetInstance.evaluate`` and the Wav2Lip
evaluation that named them), version ``syncnet_v2/1``:

1. Video: one face crop per frame (25 fps), resized to 224x224, **BGR** channel order, raw
   0..255 floats (no normalisation). Sliding windows of 5 consecutive frames -> a
   (3, 5, 224, 224) tensor per window start ``i``.
2. Audio: 16 kHz mono at int16 scale; MFCC exactly as ``python_speech_features.mfcc`` with its
   defaults (25 ms rectangular window, 10 ms step, 512-point FFT, 26 mel filters 0-8 kHz,
   pre-emphasis 0.97, 13 cepstra, lifter 22, c0 replaced by log frame energy) -> 100 frames/s;
   window ``i`` uses MFCC frames ``4i .. 4i+19`` -> a (1, 13, 20) tensor.
3. ``n = min(n_video, floor(n_samples / 640)) - 5`` windows; embeddings ``v_i``, ``a_i``
   (1024-d, no normalisation).
4. The audio embeddings are zero-padded by ``vshift = 15`` on both ends; for every window ``i``
   and offset ``j in 0..2*vshift``: ``d[i, j] = || v_i - a_pad[i + j] + 1e-6 ||_2``
   (torch ``pairwise_distance``, whose ``eps`` is added to the difference).
5. ``mdist[j] = mean_i d[i, j]``; **LSE-D = min_j mdist[j]** (lower is better);
   **LSE-C = median_j mdist[j] - min_j mdist[j]** (higher is better).
   ``offset = argmin_j mdist[j] - vshift`` frames, positive = audio lags the video
   (syncnet_python prints ``vshift - argmin``, the opposite sign).

Face crops: syncnet_python crops an S3FD face box ``b`` (half-size ``bs``) to the region
``[cy - bs, cy + 1.8 bs] x [cx - 1.4 bs, cx + 1.4 bs]`` (crop scale 0.4, extended downwards).
lesbench uses the same geometry around the box spanned by the MediaPipe landmarks
(``bbox`` column of the frames table), which is a little tighter than an S3FD box at the
forehead; this is the documented difference from the original pipeline.

Weights: ``syncnet_v2.model`` (a pickled state dict, ~54 MB, from the syncnet_python
release), resolved through ``lesbench.weights.resolve("syncnet-v2")`` and loaded with
``torch.load(weights_only=True)`` (it contains only tensors). Not shipped by any installable
package: put the file in lesbench's cache or pass it explicitly (see
:data:`HOW_TO_SUPPLY`). Without it the metric is reported unavailable, never faked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.metrics.base import Metric, MetricUnavailable

VERSION = "syncnet_v2/1"
WEIGHTS = "syncnet-v2"
VSHIFT = 15
HOW_TO_SUPPLY = (
    "SyncNet weights 'syncnet_v2.model' are not installed. Get the file from the syncnet_python "
    "release (its download_model.sh), then either pass it explicitly "
    "(`lesbench score --syncnet-weights PATH`, score(..., metric_options={'lse': {'weights_path': PATH}}) "
    "or LESBENCH_WEIGHT_SYNCNET_V2=PATH) or copy it into lesbench's weights cache."
)


# --------------------------------------------------------------------------------------------
# Audio: MFCC with python_speech_features' default parameters (own implementation)
# --------------------------------------------------------------------------------------------


def _mel_points(n_filters: int, n_fft: int, sr: int, low: float, high: float) -> np.ndarray:
    def hz2mel(f: float) -> float:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz2mel(low), hz2mel(high), n_filters + 2)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    return np.floor((n_fft + 1) * hz / sr).astype(np.int64)


def syncnet_mfcc(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """(n_frames, 13) MFCC of ``audio`` (float in [-1, 1] or int16 values; float input is
    scaled by 32768 to the int16 range SyncNet saw), 100 frames per second.

    Frames: 400-sample rectangular windows every 160 samples after pre-emphasis 0.97; the last
    frame is zero-padded; ``1 + ceil((N - 400) / 160)`` frames (1 when N <= 400).
    """
    x = np.asarray(audio, np.float64).reshape(-1)
    if np.issubdtype(np.asarray(audio).dtype, np.floating):
        x = x * 32768.0
    win, step, n_fft, n_filt, n_ceps, lifter = int(0.025 * sr), int(0.01 * sr), 512, 26, 13, 22
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1]) if x.size else x
    n = x.size
    n_frames = 1 if n <= win else 1 + int(np.ceil((n - win) / step))
    total = (n_frames - 1) * step + win
    x = np.concatenate([x, np.zeros(total - n)])
    idx = np.arange(win)[None, :] + step * np.arange(n_frames)[:, None]
    frames = x[idx]
    power = (np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2) / n_fft
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    bins = _mel_points(n_filt, n_fft, sr, 0.0, sr / 2.0)
    fb = np.zeros((n_filt, n_fft // 2 + 1))
    for m in range(n_filt):
        lo, c, hi = bins[m], bins[m + 1], bins[m + 2]
        for k in range(lo, c):
            fb[m, k] = (k - lo) / (c - lo)
        for k in range(c, hi):
            fb[m, k] = (hi - k) / (hi - c)
    feat = power @ fb.T
    feat = np.log(np.where(feat == 0, np.finfo(float).eps, feat))
    # DCT-II, orthonormal, first 13 coefficients
    k = np.arange(n_filt)
    basis = np.cos(np.pi * np.arange(n_ceps)[:, None] * (2 * k[None, :] + 1) / (2 * n_filt))
    scale = np.full(n_ceps, np.sqrt(2.0 / n_filt))
    scale[0] = np.sqrt(1.0 / n_filt)
    ceps = (feat @ basis.T) * scale
    ceps *= 1 + (lifter / 2.0) * np.sin(np.pi * np.arange(n_ceps) / lifter)
    ceps[:, 0] = np.log(energy)
    return ceps


# --------------------------------------------------------------------------------------------
# Network (the SyncNet v2 layout; parameter names match syncnet_v2.model's state dict)
# --------------------------------------------------------------------------------------------


def build_syncnet(embedding_dim: int = 1024) -> "Any":
    """SyncNet v2 (``torch.nn.Module``) with ``forward_audio`` (N,1,13,20) -> (N,D) and
    ``forward_video`` (N,3,5,224,224) -> (N,D). Random (seeded by the caller) until
    :func:`load_syncnet_weights`."""
    import torch
    from torch import nn

    def block2d(cin: int, cout: int, k: tuple[int, int], pad: tuple[int, int]) -> list:
        return [nn.Conv2d(cin, cout, kernel_size=k, stride=(1, 1), padding=pad), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    def block3d(cin: int, cout: int, k: tuple[int, int, int], stride: tuple[int, int, int],
                pad: tuple[int, int, int]) -> list:
        return [nn.Conv3d(cin, cout, kernel_size=k, stride=stride, padding=pad), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]

    # Layer order (and so the state-dict indices) follows the original network.
    audio_cnn = [
        *block2d(1, 64, (3, 3), (1, 1)), nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
        *block2d(64, 192, (3, 3), (1, 1)), nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
        *block2d(192, 384, (3, 3), (1, 1)),
        *block2d(384, 256, (3, 3), (1, 1)),
        *block2d(256, 256, (3, 3), (1, 1)), nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
        *block2d(256, 512, (5, 4), (0, 0)),
    ]
    video_cnn = [
        *block3d(3, 96, (5, 7, 7), (1, 2, 2), (0, 0, 0)), nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        *block3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        *block3d(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),
        *block3d(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),
        *block3d(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)), nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        *block3d(256, 512, (1, 6, 6), (1, 1, 1), (0, 0, 0)),
    ]

    def head() -> nn.Sequential:
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding_dim))

    class SyncNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.netcnnaud = nn.Sequential(*audio_cnn)
            self.netfcaud = head()
            self.netfclip = head()
            self.netcnnlip = nn.Sequential(*video_cnn)

        def forward_audio(self, x: "torch.Tensor") -> "torch.Tensor":
            return self.netfcaud(self.netcnnaud(x).flatten(1))

        def forward_video(self, x: "torch.Tensor") -> "torch.Tensor":
            return self.netfclip(self.netcnnlip(x).flatten(1))

    return SyncNetV2()


def load_syncnet_weights(model: Any, path: str | Path) -> None:
    """Load a ``syncnet_v2.model`` state dict with ``torch.load(weights_only=True)``.

    Raises ``ValueError`` naming the file when it is not a state dict of this architecture.
    """
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if hasattr(state, "state_dict"):
        state = state.state_dict()
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a SyncNet state dict (got {type(state).__name__})")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{path}: not a SyncNet v2 state dict (missing {missing[:4]}, unexpected {unexpected[:4]})")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(f"{path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(own[name].shape)}")
    model.load_state_dict(state)


# --------------------------------------------------------------------------------------------
# Offsets and distances
# --------------------------------------------------------------------------------------------


@dataclass
class LSEResult:
    """LSE of one clip: ``lse_d``, ``lse_c``, ``offset`` (frames, + = audio lags), ``mdist``
    (2*vshift+1,) mean distance per offset, ``dists`` (n_windows, 2*vshift+1)."""

    lse_d: float
    lse_c: float
    offset: int
    mdist: np.ndarray
    dists: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return {"lse_d": self.lse_d, "lse_c": self.lse_c, "offset": self.offset}


def offset_distances(video_emb: Any, audio_emb: Any, vshift: int = VSHIFT) -> np.ndarray:
    """(n, 2*vshift+1) distances ``|| v_i - a_pad[i + j] + 1e-6 ||`` with ``a`` zero-padded by
    ``vshift`` frames at both ends (step 4 of the module docstring)."""
    import torch
    import torch.nn.functional as F

    v = torch.as_tensor(np.asarray(video_emb, np.float32)) if not isinstance(video_emb, torch.Tensor) else video_emb.float()
    a = torch.as_tensor(np.asarray(audio_emb, np.float32)) if not isinstance(audio_emb, torch.Tensor) else audio_emb.float()
    if v.shape != a.shape:
        raise ValueError(f"video and audio embeddings differ in shape: {tuple(v.shape)} vs {tuple(a.shape)}")
    win = 2 * vshift + 1
    a_pad = F.pad(a, (0, 0, vshift, vshift))
    rows = [F.pairwise_distance(v[i:i + 1].expand(win, -1), a_pad[i:i + win]) for i in range(len(v))]
    return torch.stack(rows).numpy().astype(np.float64) if rows else np.zeros((0, win))


def lse_from_embeddings(video_emb: Any, audio_emb: Any, vshift: int = VSHIFT) -> LSEResult:
    """LSE-D, LSE-C and offset from per-window embeddings (steps 4-5)."""
    d = offset_distances(video_emb, audio_emb, vshift)
    if len(d) == 0:
        raise ValueError("no SyncNet windows (clip shorter than 6 frames)")
    mdist = d.mean(axis=0)
    j = int(np.argmin(mdist))
    return LSEResult(float(mdist[j]), float(np.median(mdist) - mdist[j]), j - vshift, mdist, d)


def syncnet_crop(frame: np.ndarray, bbox: np.ndarray, crop_scale: float = 0.4, size: int = 224) -> np.ndarray:
    """(size, size, 3) uint8 crop with syncnet_python's geometry around ``bbox`` (x0, y0, x1, y1
    pixels), same channel order as ``frame``; out-of-image parts are filled with 110 gray, as
    in the original's padding."""
    import cv2

    x0, y0, x1, y1 = (float(v) for v in bbox)
    bs = max(x1 - x0, y1 - y0) / 2.0
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    pad = int(bs * (1 + 2 * crop_scale)) + 1
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(110, 110, 110))
    my, mx = cy + pad, cx + pad
    crop = padded[int(my - bs): int(my + bs * (1 + 2 * crop_scale)), int(mx - bs * (1 + crop_scale)): int(mx + bs * (1 + crop_scale))]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


class SyncNetScorer:
    """SyncNet v2 with its weights, turning crops + audio into :class:`LSEResult`.

    ``weights``: explicit ``syncnet_v2.model`` path, else ``lesbench.weights.resolve``;
    ``random_init_seed``: build with seeded random weights instead (tests only).
    """

    def __init__(self, weights: str | Path | None = None, device: str | None = None,
                 random_init_seed: int | None = None, batch_size: int = 20) -> None:
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        if random_init_seed is not None:
            torch.manual_seed(random_init_seed)
            self.model = build_syncnet()
            self.weights_path: Path | None = None
        else:
            self.weights_path = resolve_syncnet_weights(weights)
            self.model = build_syncnet()
            load_syncnet_weights(self.model, self.weights_path)
        self.model.eval().to(self.device)

    def embeddings(self, crops_bgr: np.ndarray, audio: np.ndarray, sr: int = 16000) -> tuple[np.ndarray, np.ndarray]:
        """(n, D) video and audio embeddings of the 5-frame windows (steps 1-3).

        ``crops_bgr``: (T, 224, 224, 3) uint8 BGR; ``audio``: (N,) float mono at 16 kHz.
        """
        import torch

        if sr != 16000:
            raise ValueError(f"SyncNet expects 16 kHz audio, got {sr} Hz")
        crops = np.asarray(crops_bgr)
        if crops.ndim != 4 or crops.shape[1:] != (224, 224, 3):
            raise ValueError(f"crops must be (T, 224, 224, 3), got {crops.shape}")
        mfcc = syncnet_mfcc(audio, sr).T.astype(np.float32)  # (13, n_mfcc)
        n = min(len(crops), len(np.asarray(audio).reshape(-1)) // 640) - 5
        if n <= 0:
            raise ValueError("clip too short for SyncNet (needs more than 5 frames of video and audio)")
        video = torch.from_numpy(crops.astype(np.float32)).permute(3, 0, 1, 2)  # (3, T, 224, 224)
        v_out, a_out = [], []
        with torch.no_grad():
            for start in range(0, n, self.batch_size):
                idx = range(start, min(n, start + self.batch_size))
                vb = torch.stack([video[:, i:i + 5] for i in idx]).to(self.device)
                ab = torch.stack([torch.from_numpy(mfcc[None, :, 4 * i:4 * i + 20]) for i in idx]).to(self.device)
                v_out.append(self.model.forward_video(vb).cpu())
                a_out.append(self.model.forward_audio(ab).cpu())
        return torch.cat(v_out).numpy(), torch.cat(a_out).numpy()

    def score(self, crops_bgr: np.ndarray, audio: np.ndarray, sr: int = 16000, vshift: int = VSHIFT) -> LSEResult:
        v, a = self.embeddings(crops_bgr, audio, sr)
        return lse_from_embeddings(v, a, vshift)


def resolve_syncnet_weights(path: str | Path | None = None) -> Path:
    """``syncnet_v2.model`` through ``lesbench.weights``; :class:`MetricUnavailable` (with
    :data:`HOW_TO_SUPPLY`) when it cannot be found."""
    from lesbench.errors import WeightsNotFoundError
    from lesbench.weights import resolve as resolve_weight

    try:
        return resolve_weight(WEIGHTS, path)
    except (WeightsNotFoundError, KeyError, FileNotFoundError) as exc:
        msg = str(exc)
        raise MetricUnavailable("lse", msg if "supply" in msg.lower() else f"{msg}. {HOW_TO_SUPPLY}") from None


def crops_for_syncnet(frames_rgb: np.ndarray, bboxes: np.ndarray, crop_scale: float = 0.4) -> np.ndarray:
    """(T, 224, 224, 3) BGR crops from RGB frames and per-frame face boxes; frames without a
    box (NaN) reuse the nearest previous box (the first valid one at the start)."""
    boxes = np.asarray(bboxes, np.float64).copy()
    ok = np.isfinite(boxes).all(axis=1)
    if not ok.any():
        raise ValueError("no face box in any frame")
    last = boxes[np.argmax(ok)]
    for i in range(len(boxes)):
        if ok[i]:
            last = boxes[i]
        else:
            boxes[i] = last
    return np.stack([syncnet_crop(np.ascontiguousarray(f[..., ::-1]), b, crop_scale) for f, b in zip(frames_rgb, boxes)])


class LSE(Metric):
    """LSE-D (lower is better) and LSE-C (higher is better) per clip with SyncNet v2."""

    name: ClassVar[str] = "lse"
    version: ClassVar[str] = VERSION
    higher_is_better: ClassVar[bool | None] = None  # lse_c: higher; lse_d: lower
    weights: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "pred_face", "audio")
    needs_audio: ClassVar[bool] = True
    needs_face: ClassVar[bool] = True

    def __init__(self, device: str | None = None, weights_path: str | Path | None = None,
                 vshift: int = VSHIFT, crop_scale: float = 0.4, scorer: SyncNetScorer | None = None) -> None:
        self.vshift, self.crop_scale = vshift, crop_scale
        super().__init__(device)
        # Raises MetricUnavailable at construction when the weights are missing.
        self.scorer = scorer or SyncNetScorer(weights_path, device)

    def reset(self) -> None:
        self.results: list[LSEResult] = []

    def update(self, pred_video: np.ndarray, pred_face: Any, audio: np.ndarray) -> None:
        bboxes = np.stack([np.asarray(b, np.float64) for b in pred_face["bbox"]]) if hasattr(pred_face, "columns") \
            else np.asarray(pred_face, np.float64)
        crops = crops_for_syncnet(pred_video, bboxes, self.crop_scale)
        self.results.append(self.scorer.score(crops, audio, 16000, self.vshift))

    def compute(self) -> dict[str, float]:
        if not self.results:
            raise ValueError("lse: no clips")
        return {"lse_d": float(np.mean([r.lse_d for r in self.results])),
                "lse_c": float(np.mean([r.lse_c for r in self.results])),
                "offset": float(np.mean([r.offset for r in self.results]))}


def lse(crops_bgr: np.ndarray, audio: np.ndarray, weights_path: str | Path | None = None,
        vshift: int = VSHIFT) -> dict[str, float]:
    """Functional twin of :class:`LSE` for one clip of 224x224 BGR crops + 16 kHz audio."""
    return SyncNetScorer(weights_path).score(crops_bgr, audio, 16000, vshift).as_dict()
