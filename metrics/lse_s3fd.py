"""The S3FD face detector (syncnet_python's pre-processing; parameter names match
``sfd_face.pth``) and the choice between S3FD boxes and MediaPipe's landmark boxes for LSE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lesbench.errors import WeightsNotFoundError
from lesbench.weights import resolve as resolve_weight
from lesbench.metrics.base import MetricUnavailable
from lesbench.metrics.lse_crops import box_iou, follow_face

S3FD_WEIGHTS = "syncnet-s3fd"

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


def load_face_detector(detector: str = "auto", weights: str | Path | None = None,
                       device: str | None = None) -> tuple[S3FDDetector | None, str]:
    """(detector or None, note). ``"s3fd"``: S3FD, :class:`MetricUnavailable` naming the
    missing file when its weights do not resolve; ``"mediapipe"``: None (the frames table's
    boxes); ``"auto"``: S3FD when its weights resolve, else MediaPipe, the note saying why."""
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
