"""The refiner's network and its inference path: :class:`RefineNet` (a small U-Net predicting a
residual on the warped frame), the network input (warped frame, source crop, mouth mask), the
loaded :class:`Refiner` applied to rendered frames, and the ``refine.safetensors`` checkpoint
(saved with sorted metadata so equal weights give equal bytes; loaded with its recorded sha256
checked). The method is described in :mod:`lesbench.model.refine`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lesbench import __version__
from lesbench.errors import LesbenchError
from lesbench.model.config import ConfigError, RefineConfig, validate_refine
from lesbench.model.data import MOUTH_LANDMARKS
from lesbench.model.runs import resolve_device
from lesbench.weights import check_recorded_sha256, file_sha256, load_safetensors

REFINE_FILE = "refine.safetensors"
REFINE_META = "refine.json"
REFINE_LOG = "refine_log.csv"
FORMAT = "lesbench-refiner"
FORMAT_VERSION = "1"
IN_CHANNELS = 7  # warped RGB, source RGB, mouth mask


class RefineError(LesbenchError):
    """A refiner checkpoint or its training input that cannot be used (names the file)."""


# ----------------------------------------------------------------------------------- the network


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.SiLU())


class RefineNet(nn.Module):
    """U-Net residual predictor plus a per-pixel linear (1x1) path from the input.
    ``forward(x)``: x (B, 7, H, W) float in [0, 1] (warped RGB, source RGB, mouth mask) ->
    residual (B, 3, H, W) in image units ([0, 1] scale)."""

    def __init__(self, channels: int = 24, levels: int = 3) -> None:
        super().__init__()
        widths = [channels * 2**i for i in range(levels)]
        self.levels = levels
        self.inc = _block(IN_CHANNELS, widths[0])
        self.down = nn.ModuleList([_block(widths[i - 1], widths[i]) for i in range(1, levels)])
        self.up = nn.ModuleList([_block(widths[i] + widths[i - 1], widths[i - 1]) for i in range(levels - 1, 0, -1)])
        self.out = nn.Conv2d(widths[0], 3, 1)
        # a per-pixel linear path from the input: global colour / exposure differences between
        # the source photo and the video are learned in a few steps instead of through the U-Net
        self.colour = nn.Conv2d(IN_CHANNELS, 3, 1)
        for layer in (self.out, self.colour):  # an untrained refiner returns the warp unchanged
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - 0.5
        h = self.inc(x)
        skips = []
        for block in self.down:
            skips.append(h)
            h = block(F.avg_pool2d(h, 2))
        for block in self.up:
            s = skips.pop()
            h = F.interpolate(h, size=s.shape[-2:], mode="nearest")
            h = block(torch.cat([h, s], 1))
        return self.out(h) + self.colour(x)


def refined(net: RefineNet, x: torch.Tensor) -> torch.Tensor:
    """The refined image (B, 3, H, W) in [0, 1] for inputs ``x`` (B, 7, H, W)."""
    return (x[:, :3] + net(x)).clamp(0.0, 1.0)


# -------------------------------------------------------------------------------- image helpers


def mouth_mask(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 mask, 255 inside the outer-lip polygon of (478, 2+) pixel landmarks
    (anti-aliased edge); ``size`` = (width, height)."""
    import cv2

    w, h = size
    mask = np.zeros((h, w), np.uint8)
    pts = np.asarray(landmarks, np.float64)[list(MOUTH_LANDMARKS[:20]), :2]
    if np.isfinite(pts).all():
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return mask


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def stack_input(warped: np.ndarray, source: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 7) uint8 network input from a warped frame and the source (S, S, 3) uint8
    and a mouth mask (S, S) uint8, resized to ``size``."""
    m = resize_square(mask, size)
    return np.concatenate([resize_square(warped, size), resize_square(source, size), m[..., None]], axis=2)


def to_tensor(batch_hwc: np.ndarray, device) -> torch.Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1] on ``device``."""
    t = torch.from_numpy(np.ascontiguousarray(batch_hwc)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


# ----------------------------------------------------------------------------- inference wrapper


@dataclass
class Refiner:
    """A loaded refiner: ``refine(frame, source, landmarks)`` on 256 crops (or any size)."""

    net: RefineNet
    config: RefineConfig
    size: int
    device: Any
    path: Path | None = None
    sha256: str | None = None

    @property
    def revision(self) -> str | None:
        return self.sha256[:16] if self.sha256 else None

    def residual(self, warped: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(S, S, 3) float32 correction in [0, 1] image units at the frame's resolution, for a
        warped frame and the source (S, S, 3) uint8 and a mouth mask (S, S) uint8."""
        import cv2

        h, w = warped.shape[:2]
        x = stack_input(warped, source, mask, self.size)
        with torch.no_grad():
            r = self.net(to_tensor(x[None], self.device))[0].permute(1, 2, 0).float().cpu().numpy()
        if r.shape[0] != h or r.shape[1] != w:
            r = cv2.resize(r, (w, h), interpolation=cv2.INTER_LINEAR)
        return r

    def refine_masked(self, warped: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Refined (S, S, 3) uint8 frame from the warp, the source and a mouth mask (S, S) uint8."""
        out = warped.astype(np.float32) / 255.0 + self.residual(warped, source, mask)
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def refine(self, warped: np.ndarray, source: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Refined (S, S, 3) uint8 frame: ``warped`` (the renderer's output) + the predicted
        residual. ``source``: the source crop (S, S, 3) uint8; ``landmarks``: the frame's target
        landmarks (478, 2+) pixels (for the mouth mask, :func:`mouth_mask`)."""
        h, w = warped.shape[:2]
        return self.refine_masked(warped, source, mouth_mask(landmarks, (w, h)))


def save_refiner(net: RefineNet, path: str | Path, config: RefineConfig, size: int) -> str:
    """Write weights (safetensors, config in its metadata) atomically; returns the file's sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "size": str(int(size)),
            "config": json.dumps(asdict(config), sort_keys=True), "lesbench_version": __version__}
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(tmp), metadata=meta)
    _sort_safetensors_metadata(tmp)
    tmp.replace(path)
    return file_sha256(path, fresh=True)


def _sort_safetensors_metadata(path: Path) -> None:
    """Rewrite the file's JSON header with its ``__metadata__`` keys sorted, in place.

    The safetensors writer serialises the metadata map in no fixed order, so identical weights
    and metadata gave files with different sha256. The header length is unchanged (same keys and
    values), so only the header bytes are rewritten; the tensors' offsets stay valid.
    """
    import struct

    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
        header = json.loads(raw)
        if "__metadata__" in header:
            header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        ordered = {k: header[k] for k in (["__metadata__"] if "__metadata__" in header else []) +
                   sorted(k for k in header if k != "__metadata__")}
        out = json.dumps(ordered, separators=(",", ":")).encode()
        if len(out) > n:
            raise RefineError(f"{path}: re-serialised safetensors header grew ({len(out)} > {n} bytes)")
        f.seek(8)
        f.write(out + b" " * (n - len(out)))  # the format pads headers with spaces


def load_refiner(path: str | Path, device: str | None = None) -> Refiner:
    """Load ``refine.safetensors`` (a file or the run folder holding it).

    The sha256 recorded in ``refine.json`` next to it (when present) must match. Raises
    :class:`RefineError` naming the file when it is missing, unreadable or not a refiner.
    """
    path = Path(path)
    if path.is_dir():
        path = path / REFINE_FILE
    if not path.is_file():
        raise RefineError(f"{path}: refiner checkpoint not found (train one with `lesbench train-refine`)")
    side = path.with_name(REFINE_META)
    recorded = None
    if side.is_file():
        try:
            recorded = json.loads(side.read_text()).get("sha256")
        except json.JSONDecodeError as exc:
            raise RefineError(f"{side}: not valid JSON ({exc})") from None
    tensors, meta = load_safetensors(path)  # not a safetensors file: says so, before any digest
    digest = check_recorded_sha256(
        path, recorded, recorded_in=side,
        remedy="Restore the file written by `lesbench train-refine`, retrain it "
               f"(`lesbench train-refine --run {path.parent} --force`), or generate without it (--no-refine).")
    if meta.get("format") != FORMAT:
        raise RefineError(f"{path}: not a LES-Talker refiner checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise RefineError(f"{path}: refiner format version {meta.get('version')!r}, this lesbench reads {FORMAT_VERSION}")
    try:
        cfg = validate_refine(RefineConfig(**json.loads(meta["config"])), str(path))
        size = int(meta["size"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise RefineError(f"{path}: bad refiner metadata ({exc})") from None
    net = RefineNet(cfg.channels, cfg.levels)
    try:
        net.load_state_dict(tensors)
    except RuntimeError as exc:
        raise RefineError(f"{path}: weights do not fit the recorded architecture ({str(exc).splitlines()[0]})") from None
    dev = resolve_device(device)
    net.to(dev).eval()
    return Refiner(net=net, config=cfg, size=size, device=dev, path=path, sha256=digest)
