"""From SyncNet embeddings to LSE-D / LSE-C: distances at every audio offset within ``vshift``
frames, their mean per offset, the minimum and the median-minus-minimum (steps 4-5 of
:mod:`lesbench.metrics.lse`), and the reference's median filter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

VSHIFT = 15


def median_filter(x: np.ndarray, kernel: int) -> np.ndarray:
    """Running median over ``kernel`` (odd) samples with zeros beyond both ends: the definition
    of ``scipy.signal.medfilt``, which syncnet_python uses for its box tracks and confidences.
    (n,) -> (n,) float64."""
    if kernel % 2 != 1:
        raise ValueError(f"median filter kernel must be odd, got {kernel}")
    v = np.asarray(x, np.float64).reshape(-1)
    half = kernel // 2
    padded = np.concatenate([np.zeros(half), v, np.zeros(half)])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, kernel), axis=1)


@dataclass
class LSEResult:
    """LSE of one clip: ``lse_d``, ``lse_c``, ``offset`` (frames, + = audio lags), ``mdist``
    (2*vshift+1,) mean distance per offset, ``dists`` (n_windows, 2*vshift+1),
    ``framewise_conf`` (n_windows,) the reference's per-window confidence at the best offset
    (median-filtered over 9 windows), ``crop``: how the crops were made (detector, frames used,
    frames whose box was interpolated), when :class:`LSE` made them."""

    lse_d: float
    lse_c: float
    offset: int
    mdist: np.ndarray
    dists: np.ndarray
    framewise_conf: np.ndarray | None = None
    crop: dict[str, Any] | None = None

    @property
    def av_offset(self) -> int:
        """The offset with syncnet_python's sign ("AV offset": ``vshift - argmin``)."""
        return -self.offset

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
    conf = median_filter(np.median(mdist) - d[:, j], 9)
    return LSEResult(float(mdist[j]), float(np.median(mdist) - mdist[j]), j - vshift, mdist, d, conf)
