"""LSE-C / LSE-D: lip-sync error with the SyncNet v2 network (Chung & Zisserman, 2016).

Definitions (as in syncnet_python's ``SyncNetInstance.evaluate`` and the Wav2Lip
evaluation that named them), version ``syncnet_v2/2``:

1. Video: one face crop per frame (25 fps), resized to 224x224, **BGR** channel order, raw
   0..255 floats (no normalisation). Sliding windows of 5 consecutive frames -> a
   (3, 5, 224, 224) tensor per window start ``i``.
2. Audio: 16 kHz mono at int16 scale (float input is rounded to int16 as the reference chain's
   16-bit WAV is, so that digitally silent frames give the same log energy); MFCC exactly as
   ``python_speech_features.mfcc`` with its defaults (25 ms rectangular window, 10 ms step,
   512-point FFT, 26 mel filters 0-8 kHz, pre-emphasis 0.97, 13 cepstra, lifter 22, c0 replaced
   by log frame energy) -> 100 frames/s; window ``i`` uses MFCC frames ``4i .. 4i+19`` -> a
   (1, 13, 20) tensor.
3. ``n = min(n_video, floor(n_samples / 640)) - 5`` windows; embeddings ``v_i``, ``a_i``
   (1024-d, no normalisation), computed in batches of 20 windows as the reference does.
4. The audio embeddings are zero-padded by ``vshift = 15`` on both ends; for every window ``i``
   and offset ``j in 0..2*vshift``: ``d[i, j] = || v_i - a_pad[i + j] + 1e-6 ||_2``
   (torch ``pairwise_distance``, whose ``eps`` is added to the difference).
5. ``mdist[j] = mean_i d[i, j]``; **LSE-D = min_j mdist[j]** (lower is better);
   **LSE-C = median_j mdist[j] - min_j mdist[j]** (higher is better).
   ``offset = argmin_j mdist[j] - vshift`` frames, positive = audio lags the video, the
   convention of lesbench's ``sync`` metric; syncnet_python prints ``vshift - argmin`` ("AV
   offset", the opposite sign), available as :attr:`LSEResult.av_offset`. The reference also
   prints a per-window confidence ``median(mdist) - d[i, argmin]`` smoothed by a 9-tap median
   filter; it does not enter LSE-C/LSE-D and is kept here as :attr:`LSEResult.framewise_conf`.

Face crops, as syncnet_python's pre-processing makes them (``crop_video``):

- one face box per frame: S3FD (``sfd_face.pth``, on the frame scaled by 0.25, boxes with
  confidence > 0.9, non-maximum suppression at IoU 0.1) when its weights resolve, else the box
  spanned by the MediaPipe landmarks (``bbox`` of the frames table), which is a little tighter
  than an S3FD box at the forehead. The metric's version string names the detector
  (``syncnet_v2/2+s3fd`` or ``syncnet_v2/2+mediapipe``): the two give different numbers;
- one track per clip: the first detected face, then in each frame the box overlapping the
  previous one most (IoU > 0.5); frames without such a box get a box linearly interpolated
  between their neighbours (as the reference interpolates inside a track); frames before the
  first and after the last detection are left out, and the audio is cut to match;
- per frame the half-size ``s = max(w, h) / 2`` and centre ``(x, y)``; each of the three
  sequences median-filtered over 13 frames with zero padding at both ends (``scipy.signal.
  medfilt``'s definition, so the first and last 6 frames see zeros: the reference's quirk);
- crop ``[y - s, y + 2.8 s] x [x - 1.4 s, x + 1.4 s]`` (``crop_scale`` 0.4, extended
  downwards to the chin) from the frame padded by ``int(3.8 s)`` pixels of grey 110, resized
  to 224x224 (bilinear).

Differences from the reference pipeline, on purpose: no scene-cut detection and no minimum
track length (50 frames) or face size (100 px), because lesbench scores one talking face per
generated clip, often at 256x256; and nothing is re-encoded (the reference converts the video to
MPEG-4 and JPEG frames before detection, and writes the crops to an XVID video that it re-reads
as JPEG files; on a real clip, JPEG crops alone moved LSE-D by 0.0035).

Weights: ``syncnet_v2.model`` (a pickled state dict, ~54 MB, from the syncnet_python
release; files from PyTorch < 0.4.1 have no ``num_batches_tracked`` entries, which are then
left at their defaults, as the reference's own loader does), resolved through
``lesbench.weights.resolve("syncnet-v2")`` and loaded with ``torch.load(weights_only=True)``.
S3FD: ``sfd_face.pth`` through ``resolve("syncnet-s3fd")``, also a plain state dict. Neither is
shipped by any installable package: put the files in lesbench's cache or pass them explicitly
(see :data:`HOW_TO_SUPPLY`). Without SyncNet weights the metric is reported unavailable,
never faked; results record the sha256 of the files used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.metrics.base import Metric, MetricUnavailable, Output

VERSION = "syncnet_v2/2"
WEIGHTS = "syncnet-v2"
S3FD_WEIGHTS = "syncnet-s3fd"
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
    """(n_frames, 13) MFCC of ``audio`` (float in [-1, 1] or int16 values), 100 frames per second.

    Float input is converted to int16 as ffmpeg writes 16-bit PCM (``x * 32768`` rounded to the
    nearest integer, clipped), because the reference reads a 16-bit WAV: the rounding matters in
    digital silence, where a float signal would give a finite log energy and int16 zeros give
    ``log(eps)``. Frames: 400-sample rectangular windows every 160 samples after pre-emphasis
    0.97; the last frame is zero-padded; ``1 + ceil((N - 400) / 160)`` frames (1 when N <= 400).
    """
    x = np.asarray(audio, np.float64).reshape(-1)
    if np.issubdtype(np.asarray(audio).dtype, np.floating):
        x = np.clip(np.rint(x * 32768.0), -32768.0, 32767.0)
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


# --------------------------------------------------------------------------------------------
# Offsets and distances
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Face track and crops (syncnet_python's crop_video geometry)
# --------------------------------------------------------------------------------------------


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) with boxes ``b`` (n, 4), ``x0, y0, x1, y1`` pixels -> (n,)."""
    b = np.atleast_2d(np.asarray(b, np.float64))
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-8)


def follow_face(detections: list[np.ndarray], min_iou: float = 0.5) -> np.ndarray:
    """One face track through per-frame detections (each (n_i, >=4), best first): the first
    detected face, then in every frame the box overlapping the last tracked box most, if its IoU
    exceeds ``min_iou``. (T, 4) float64, NaN in frames without one."""
    out = np.full((len(detections), 4), np.nan)
    last: np.ndarray | None = None
    for t, det in enumerate(detections):
        det = np.asarray(det, np.float64)
        if det.size == 0:
            continue
        det = det.reshape(len(det), -1)
        if last is None:
            k = 0
        else:
            iou = box_iou(last, det[:, :4])
            k = int(np.argmax(iou))
            if iou[k] <= min_iou:
                continue
        out[t] = last = det[k, :4]
    return out


@dataclass
class FaceTrack:
    """Smoothed crop parameters of frames ``first .. first + len(size) - 1``: half-size
    ``size`` and centre ``cx``, ``cy`` (pixels), each (n,) float64; ``n_interpolated`` frames had
    no box of their own."""

    first: int
    size: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    n_interpolated: int

    def __len__(self) -> int:
        return len(self.size)


def face_track(bboxes: np.ndarray, smooth: int = 13) -> FaceTrack:
    """:class:`FaceTrack` from per-frame boxes (T, 4) ``x0, y0, x1, y1`` (NaN rows: no face):
    cut to the first..last frame with a box, gaps filled by linear interpolation, then half-size
    and centre median-filtered over ``smooth`` frames (zero-padded, as the reference does)."""
    boxes = np.asarray(bboxes, np.float64).reshape(-1, 4)
    ok = np.isfinite(boxes).all(axis=1)
    if not ok.any():
        raise ValueError("no face box in any frame")
    idx = np.flatnonzero(ok)
    first, last = int(idx[0]), int(idx[-1])
    frames = np.arange(first, last + 1)
    filled = np.stack([np.interp(frames, idx, boxes[idx, c]) for c in range(4)], axis=1)
    size = np.maximum(filled[:, 3] - filled[:, 1], filled[:, 2] - filled[:, 0]) / 2.0
    cx, cy = (filled[:, 0] + filled[:, 2]) / 2.0, (filled[:, 1] + filled[:, 3]) / 2.0
    return FaceTrack(first, median_filter(size, smooth), median_filter(cx, smooth), median_filter(cy, smooth),
                     int(len(frames) - len(idx)))


def crop_face(frame: np.ndarray, cx: float, cy: float, half_size: float, crop_scale: float = 0.4,
              size: int = 224) -> np.ndarray:
    """(size, size, C) crop of ``frame`` (H, W, C) uint8 around a face of half-size
    ``half_size`` centred at ``(cx, cy)`` pixels: rows ``cy - s .. cy + s (1 + 2 crop_scale)``,
    columns ``cx -+ s (1 + crop_scale)``, out-of-image parts grey 110; same channel order."""
    import cv2

    bs = float(half_size)
    if not bs > 0:
        raise ValueError(f"face half-size must be positive, got {bs} (a track shorter than 7 frames "
                         "is zeroed by the 13-frame median filter)")
    pad = int(bs * (1 + 2 * crop_scale))
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(110, 110, 110))
    my, mx = cy + pad, cx + pad
    rows = slice(int(my - bs), int(my + bs * (1 + 2 * crop_scale)))
    cols = slice(int(mx - bs * (1 + crop_scale)), int(mx + bs * (1 + crop_scale)))
    return cv2.resize(padded[rows, cols], (size, size), interpolation=cv2.INTER_LINEAR)


def crops_for_syncnet(frames_rgb: np.ndarray, bboxes: np.ndarray,
                      crop_scale: float = 0.4) -> tuple[np.ndarray, FaceTrack]:
    """(n, 224, 224, 3) BGR crops of the frames of the face track through ``bboxes`` (T, 4)
    (NaN rows: no face; see :func:`face_track`), and the track (its ``first`` frame says where
    the crops start in the clip)."""
    track = face_track(bboxes)
    crops = [crop_face(np.ascontiguousarray(frames_rgb[track.first + i][..., ::-1]), track.cx[i], track.cy[i],
                       track.size[i], crop_scale) for i in range(len(track))]
    return np.stack(crops), track


# --------------------------------------------------------------------------------------------
# S3FD face detector (syncnet_python's pre-processing; parameter names match sfd_face.pth)
# --------------------------------------------------------------------------------------------

#: per source layer: anchor stride (pixels) and anchor size (pixels)
S3FD_STEPS = (4, 8, 16, 32, 64, 128)
S3FD_MIN_SIZES = (16, 32, 64, 128, 256, 512)
#: RGB means subtracted from the 0..255 input
S3FD_MEAN_RGB = (123.0, 117.0, 104.0)


def build_s3fd() -> Any:
    """S3FD (Zhang et al. 2017; VGG16 trunk, L2-normalised conv3_3/4_3/5_3, six anchor scales)
    as a ``torch.nn.Module`` whose ``forward`` maps (N, 3, H, W) mean-subtracted RGB to
    ``loc`` (N, P, 4) box offsets, ``conf`` (N, P, 2) logits (background, face) and the feature
    map sizes [(h, w)] * 6."""
    import torch
    from torch import nn

    class L2Norm(nn.Module):
        def __init__(self, channels: int, scale: float) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.full((channels,), float(scale)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) * self.weight[None, :, None, None]

    def conv(cin: int, cout: int, k: int = 3, stride: int = 1, pad: int = 1, dilation: int = 1) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, k, stride, padding=pad, dilation=dilation)

    trunk: list[nn.Module] = []
    cin = 3
    # VGG16 to conv5_3; "C" is the ceil-mode pool after conv3_3. Indices follow the original.
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512, "M"):
        if item in ("M", "C"):
            trunk.append(nn.MaxPool2d(2, 2, ceil_mode=item == "C"))
        else:
            trunk += [conv(cin, int(item)), nn.ReLU(inplace=True)]
            cin = int(item)
    trunk += [conv(512, 1024, pad=6, dilation=6), nn.ReLU(inplace=True), conv(1024, 1024, k=1, pad=0), nn.ReLU(inplace=True)]
    src_channels = (256, 512, 512, 1024, 512, 256)

    class S3FDNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vgg = nn.ModuleList(trunk)
            self.L2Norm3_3, self.L2Norm4_3, self.L2Norm5_3 = L2Norm(256, 10), L2Norm(512, 8), L2Norm(512, 5)
            self.extras = nn.ModuleList([conv(1024, 256, k=1, pad=0), conv(256, 512, stride=2),
                                         conv(512, 128, k=1, pad=0), conv(128, 256, stride=2)])
            self.loc = nn.ModuleList([conv(c, 4) for c in src_channels])
            # the first scale predicts 3 background logits, max-pooled into one ("max-out")
            self.conf = nn.ModuleList([conv(c, 4 if i == 0 else 2) for i, c in enumerate(src_channels)])

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
            sources = []
            for lo, hi, norm in ((0, 16, self.L2Norm3_3), (16, 23, self.L2Norm4_3), (23, 30, self.L2Norm5_3)):
                for k in range(lo, hi):
                    x = self.vgg[k](x)
                sources.append(norm(x))
            for k in range(30, len(self.vgg)):
                x = self.vgg[k](x)
            sources.append(x)
            for k, layer in enumerate(self.extras):
                x = torch.relu(layer(x))
                if k % 2 == 1:
                    sources.append(x)
            locs, confs = [], []
            for i, src in enumerate(sources):
                c = self.conf[i](src)
                if i == 0:
                    c = torch.cat([c[:, :3].max(dim=1, keepdim=True).values, c[:, 3:]], dim=1)
                locs.append(self.loc[i](src).permute(0, 2, 3, 1).reshape(len(src), -1, 4))
                confs.append(c.permute(0, 2, 3, 1).reshape(len(src), -1, 2))
            return torch.cat(locs, 1), torch.cat(confs, 1), [tuple(s.shape[2:]) for s in sources]

    return S3FDNet()


def s3fd_priors(image_hw: tuple[int, int], feature_maps: list[tuple[int, int]]) -> np.ndarray:
    """(P, 4) float32 anchors ``cx, cy, w, h`` as fractions of the image, row-major per map."""
    imh, imw = image_hw
    out = []
    for (fh, fw), step, size in zip(feature_maps, S3FD_STEPS, S3FD_MIN_SIZES):
        ii, jj = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (jj.ravel() + 0.5) / (imw / step)
        cy = (ii.ravel() + 0.5) / (imh / step)
        out.append(np.stack([cx, cy, np.full(cx.shape, size / imw), np.full(cx.shape, size / imh)], axis=1))
    return np.concatenate(out).astype(np.float32)


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, max_iou: float, top_k: int | None = None) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best first: visit by
    descending score (at most ``top_k``), drop every later box whose IoU with a kept one
    exceeds ``max_iou``."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    if top_k is not None:
        order = order[:top_k]
    b = np.asarray(boxes, np.float64)
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        order = rest[box_iou(b[i], b[rest]) <= max_iou]
    return np.asarray(keep, np.int64)


class S3FDDetector:
    """S3FD face boxes as syncnet_python's pre-processing gets them: the RGB frame scaled by
    ``scale`` (0.25), candidates with face probability > 0.05 decoded (variances 0.1, 0.2),
    NMS at IoU 0.3 over the best 5000, the best 750 kept; of those, the ones above ``conf_th``
    (0.9), NMS at IoU 0.1. ``weights``: explicit ``sfd_face.pth``, else ``lesbench.weights``."""

    def __init__(self, weights: str | Path | None = None, device: str | None = None,
                 scale: float = 0.25, conf_th: float = 0.9) -> None:
        import torch

        from lesbench.weights import resolve as resolve_weight

        self.weights_path = resolve_weight(S3FD_WEIGHTS, weights)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.scale, self.conf_th = scale, conf_th
        self.model = build_s3fd()
        state = torch.load(str(self.weights_path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{self.weights_path}: not an S3FD state dict (got {type(state).__name__})")
        own = self.model.state_dict()
        if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in own):
            diff = sorted(set(own) ^ set(state))[:4] or [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)][:4]
            raise ValueError(f"{self.weights_path}: not an S3FD (sfd_face.pth) state dict (differs at {diff})")
        self.model.load_state_dict(state)
        self.model.eval().to(self.device)

    def detect(self, frame_rgb: np.ndarray) -> np.ndarray:
        """(n, 5) ``x0, y0, x1, y1, score`` in ``frame_rgb``'s pixels (H, W, 3 uint8 RGB), best first."""
        import cv2
        import torch

        h, w = frame_rgb.shape[:2]
        small = cv2.resize(frame_rgb, dsize=(0, 0), fx=self.scale, fy=self.scale, interpolation=cv2.INTER_LINEAR)
        x = small.astype(np.float32) - np.asarray(S3FD_MEAN_RGB, np.float32)
        with torch.no_grad():
            loc, conf, maps = self.model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None].to(self.device))
            prob = torch.softmax(conf[0], dim=-1)[:, 1].cpu()
            loc = loc[0].cpu()
            priors = torch.from_numpy(s3fd_priors(tuple(small.shape[:2]), maps))
            centre = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
            wh = priors[:, 2:] * torch.exp(loc[:, 2:] * 0.2)
            boxes = torch.cat([centre - wh / 2, centre + wh / 2], dim=1)
        # The reference runs NMS over every box above 0.05 and keeps those above conf_th after.
        # In greedy NMS a box is removed only by better-scored ones, so starting from the boxes
        # above conf_th keeps exactly the same ones (the 5000 and 750 caps included) and skips
        # the thousands of weak candidates.
        cand = torch.nonzero(prob > max(0.05, self.conf_th)).flatten().numpy()
        scores, boxes_np = prob.numpy()[cand], boxes.numpy()[cand]
        keep = greedy_nms(boxes_np, scores, 0.3, top_k=5000)[:750]
        px = (boxes[cand][keep] * torch.tensor([w, h, w, h], dtype=torch.float32)).numpy().astype(np.float64)
        det = np.concatenate([px, scores[keep, None].astype(np.float64)], axis=1)
        return det[greedy_nms(det[:, :4], det[:, 4], 0.1)] if len(det) else np.zeros((0, 5))

    def track(self, frames_rgb: np.ndarray) -> np.ndarray:
        """(T, 4) face boxes of one face followed through the clip (:func:`follow_face`), NaN
        where it was not found."""
        return follow_face([self.detect(f) for f in frames_rgb])


# --------------------------------------------------------------------------------------------
# Scorer and metric
# --------------------------------------------------------------------------------------------


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
    from lesbench.errors import WeightsNotFoundError
    from lesbench.weights import resolve as resolve_weight

    try:
        return resolve_weight(WEIGHTS, path)
    except (WeightsNotFoundError, KeyError, FileNotFoundError) as exc:
        msg = str(exc)
        raise MetricUnavailable("lse", msg if "supply" in msg.lower() else f"{msg}. {HOW_TO_SUPPLY}") from None


def load_face_detector(detector: str = "auto", weights: str | Path | None = None,
                       device: str | None = None) -> tuple[S3FDDetector | None, str]:
    """(detector or None, note). ``"s3fd"``: S3FD, :class:`MetricUnavailable` naming the
    missing file when its weights do not resolve; ``"mediapipe"``: None (the frames table's
    boxes); ``"auto"``: S3FD when its weights resolve, else MediaPipe, the note saying why."""
    from lesbench.errors import WeightsNotFoundError

    if detector not in ("auto", "s3fd", "mediapipe"):
        raise ValueError(f"lse: unknown face detector {detector!r} (auto, s3fd, mediapipe)")
    if detector == "mediapipe":
        return None, "MediaPipe landmark boxes (requested)"
    try:
        return S3FDDetector(weights, device), "S3FD"
    except WeightsNotFoundError as exc:
        if detector == "s3fd":
            raise MetricUnavailable("lse", f"S3FD requested but its weights are missing: {exc}") from None
        first = str(exc).splitlines()[0]
        return None, f"MediaPipe landmark boxes: S3FD weights not found ({first})"


class LSE(Metric):
    """LSE-D (lower is better) and LSE-C (higher is better) per clip with SyncNet v2, on
    syncnet_python's crops (see the module docstring). ``detector``: ``auto`` | ``s3fd`` |
    ``mediapipe``; the instance's ``version`` names the one used (``syncnet_v2/2+s3fd``)."""

    name: ClassVar[str] = "lse"
    version: ClassVar[str] = VERSION
    outputs: ClassVar[tuple[Output, ...]] = (
        Output("lse_c", "lse-c", "LSE-C", "higher", 2), Output("lse_d", "lse-d", "LSE-D", "lower", 2),
        Output("offset", "lse-offset", "LSE offset", "target", 2, "frames"))
    protocol_args: ClassVar[dict[str, str]] = {"vshift": "lse_vshift", "crop_scale": "lse_crop_scale"}
    weights: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "pred_face", "audio")
    needs_audio: ClassVar[bool] = True
    needs_face: ClassVar[bool] = True

    def __init__(self, device: str | None = None, weights_path: str | Path | None = None,
                 vshift: int = VSHIFT, crop_scale: float = 0.4, scorer: SyncNetScorer | None = None,
                 detector: str = "auto", s3fd_weights_path: str | Path | None = None) -> None:
        self.vshift, self.crop_scale = vshift, crop_scale
        super().__init__(device)
        # MetricUnavailable at construction when a weight file is missing or is not what it
        # should be (the message names the file), so that the other metrics of a run go on.
        try:
            self.scorer = scorer or SyncNetScorer(weights_path, device)
            self.detector, self.detector_note = load_face_detector(detector, s3fd_weights_path, device)
        except ValueError as exc:
            raise MetricUnavailable("lse", str(exc)) from None
        self.version = f"{VERSION}+{'s3fd' if self.detector is not None else 'mediapipe'}"  # type: ignore[misc]

    def describe(self) -> dict[str, Any]:
        from lesbench.weights import file_sha256

        d = super().describe()
        d["detector"] = self.detector_note
        # score records the files named under "classifier" -> "weights" (the ones this instance
        # loaded, explicit paths included) instead of resolving the class's weight names again.
        used = {WEIGHTS: self.scorer.weights_path}
        if self.detector is not None:
            used[S3FD_WEIGHTS] = self.detector.weights_path
        d["classifier"] = {"name": "syncnet_v2", "weights": {k: file_sha256(p) for k, p in used.items() if p is not None}}
        return d

    def reset(self) -> None:
        self.results: list[LSEResult] = []
        #: remarks on the clips scored since the last reset (``lesbench score`` lists them per clip)
        self.clip_notes: list[str] = []

    def update(self, pred_video: np.ndarray, pred_face: Any, audio: np.ndarray) -> LSEResult:
        """One clip: ``pred_video`` (T, H, W, 3) uint8 RGB at 25 fps, ``pred_face`` its frames
        table (``bbox`` column; used without S3FD) or (T, 4) boxes, ``audio`` (N,) 16 kHz mono.

        Frames outside the face track and boxes filled in are reported in ``clip_notes`` (and in
        the result's ``crop``); a clip where the detector finds no face raises ``ValueError``."""
        detector = "s3fd" if self.detector is not None else "mediapipe"
        if self.detector is not None:
            bboxes = self.detector.track(pred_video)
        elif hasattr(pred_face, "columns"):
            bboxes = np.stack([np.asarray(b, np.float64) if b is not None else np.full(4, np.nan)
                               for b in pred_face["bbox"]])
        else:
            bboxes = np.asarray(pred_face, np.float64)
        if not np.isfinite(bboxes).all(axis=1).any():
            raise ValueError(f"{detector} found no face in any of the {len(pred_video)} frames")
        crops, track = crops_for_syncnet(pred_video, bboxes, self.crop_scale)
        clip_audio = np.asarray(audio).reshape(-1)[track.first * 640:(track.first + len(track)) * 640]
        result = self.scorer.score(crops, clip_audio, 16000, self.vshift)
        n_video = int(len(pred_video))
        result.crop = {"detector": detector, "first_frame": track.first, "n_frames": len(track),
                       "n_video_frames": n_video, "n_interpolated": track.n_interpolated}
        if len(track) < n_video:
            self.clip_notes.append(f"scored frames {track.first}-{track.first + len(track) - 1} of {n_video} "
                                   f"(the {detector} face track)")
        if track.n_interpolated:
            n = track.n_interpolated
            self.clip_notes.append(f"{n} frame{'s' if n != 1 else ''} without a {detector} face box: box interpolated")
        self.results.append(result)
        return result

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
