"""The SyncNet v2 network (parameter names match ``syncnet_v2.model``'s state dict), its weights,
and :class:`SyncNetScorer`, which turns 224x224 BGR face crops and 16 kHz audio into embeddings and
an :class:`~lesbench.metrics.lse_offsets.LSEResult`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lesbench.errors import WeightsNotFoundError
from lesbench.weights import resolve as resolve_weight
from lesbench.metrics.base import MetricUnavailable
from lesbench.metrics.lse_mfcc import syncnet_mfcc
from lesbench.metrics.lse_offsets import VSHIFT, LSEResult, lse_from_embeddings

WEIGHTS = "syncnet-v2"
HOW_TO_SUPPLY = (
    "SyncNet weights 'syncnet_v2.model' are not installed. Get the file from the syncnet_python "
    "release (its download_model.sh), then either pass it explicitly "
    "(`lesbench score --syncnet-weights PATH`, score(..., metric_options={'lse': {'weights_path': PATH}}) "
    "or LESBENCH_WEIGHT_SYNCNET_V2=PATH) or copy it into lesbench's weights cache."
)



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
    """Load a ``syncnet_v2.model`` state dict with ``torch.load(weights_only=True)`` (the
    released file and one saved from syncnet_python's ``S().state_dict()``, in either of
    torch's serialisation formats, read the same).

    Raises ``ValueError`` naming the file when it is not a state dict of this architecture.
    """
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if hasattr(state, "state_dict"):
        state = state.state_dict()
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a SyncNet state dict (got {type(state).__name__})")
    own = model.state_dict()
    # BatchNorm's num_batches_tracked counter appeared in PyTorch 0.4.1; older files lack it and
    # it plays no part in evaluation, so it may be absent (then it keeps its default).
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{path}: not a SyncNet v2 state dict (missing {missing[:4]}, unexpected {unexpected[:4]})")
    for name, tensor in state.items():
        if not hasattr(tensor, "shape"):
            raise ValueError(f"{path}: {name} is a {type(tensor).__name__}, not a tensor")
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(f"{path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(own[name].shape)}")
    model.load_state_dict(state, strict=False)


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

        ``crops_bgr``: (T, 224, 224, 3) uint8 BGR; ``audio``: (N,) mono at 16 kHz, float in
        [-1, 1] or int16 values.
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
    try:
        return resolve_weight(WEIGHTS, path)
    except (WeightsNotFoundError, KeyError, FileNotFoundError) as exc:
        msg = str(exc)
        raise MetricUnavailable("lse", msg if "supply" in msg.lower() else f"{msg}. {HOW_TO_SUPPLY}") from None
