"""An optional learned refiner for LES-Talker's warp renderer (lesbench's addition).

The paper's renderer is not released; lesbench renders by a landmark-guided piecewise-affine
warp of the source crop (:mod:`lesbench.model.renderer`). This module adds a small image-to-image
network that corrects each warped frame:

    refined = clip(warped + up(R(down(warped), down(source), down(mouth_mask))), 0, 1)

- ``R`` is a U-Net of ``levels`` resolutions (``channels`` wide at full resolution, doubled per
  level), input 7 channels: the warped frame (RGB), the source crop (RGB) and a mouth mask (the
  filled outer-lip polygon of the target landmarks); output a 3-channel residual. Its last layer
  starts at zero, so an untrained refiner is the identity.
- It works at the resolution it was trained at (``size``, 128 on CPU, 256 on a GPU): at
  inference the 256 crop is resized to ``size``, the residual is computed there and resized
  back, and added to the full-resolution warp (so a CPU-trained refiner never sees structures at
  a scale it was not trained on). It is fully convolutional; any size divisible by
  ``2^(levels-1)`` runs.

Training pairs come from a prepared data set's **train split** only (:func:`build_pairs`):
source = the first face frame of the speaker's neutral clip (``source: neutral``; the clip's
own first face frame when the speaker has none, or with ``source: clip``), target = crop frame
``t``; input = the source crop warped to frame ``t``'s crop landmarks exactly as
:func:`~lesbench.model.renderer.render_frames` does (same warp, same mouth painting); label = the
real crop frame ``t``. The landmarks in crop pixels are the frames table's landmarks (source
pixels) mapped through the crop transform the prepare stage used
(:func:`lesbench.extract.crops.crop_params` recomputed from the same landmarks; ~0.3 px from
re-tracking the crop). Held-out speakers validate. Loss: L1 (+ ``mouth_weight`` extra inside
the mouth) + ``grad_weight`` x L1 of image gradients.

Files (in the run folder): ``refine.safetensors`` (weights; config in its metadata),
``refine.json`` (config, sha256 of the weights, data provenance, held-out scores),
``refine_log.csv`` (one row per logged step).

    from lesbench.model.refine import train_refiner, load_refiner
    result = train_refiner("prepared/", "runs/les", steps=400)       # CPU: 128 px
    refiner = load_refiner("runs/les/refine.safetensors")
    frame = refiner.refine(warped, source_crop, target_landmarks)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lesbench import __version__, schema
from lesbench.errors import DatasetError, LesbenchError, MediaError
from lesbench.model.config import RefineConfig, ConfigError, load_config, validate_refine

REFINE_FILE = "refine.safetensors"
REFINE_META = "refine.json"
REFINE_LOG = "refine_log.csv"
FORMAT = "lesbench-refiner"
FORMAT_VERSION = "1"
IN_CHANNELS = 7  # warped RGB, source RGB, mouth mask
LOG_FIELDS = ("step", "lr", "loss", "l1", "grad", "val_l1", "val_warp_l1", "seconds")


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

    from lesbench.model.data import MOUTH_LANDMARKS

    w, h = size
    mask = np.zeros((h, w), np.uint8)
    pts = np.asarray(landmarks, np.float64)[list(MOUTH_LANDMARKS[:20]), :2]
    if np.isfinite(pts).all():
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return mask


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def stack_input(warped: np.ndarray, source: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 7) uint8 network input from a warped frame and the source (S, S, 3) uint8
    and a mouth mask (S, S) uint8, resized to ``size``."""
    m = _resize(mask, size)
    return np.concatenate([_resize(warped, size), _resize(source, size), m[..., None]], axis=2)


def _to_tensor(batch_hwc: np.ndarray, device) -> torch.Tensor:
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
            r = self.net(_to_tensor(x[None], self.device))[0].permute(1, 2, 0).float().cpu().numpy()
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

    from lesbench.weights import file_sha256

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
    from lesbench.model.train import resolve_device
    from lesbench.weights import check_recorded_sha256, load_safetensors

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


# ---------------------------------------------------------------------------------- training data


@dataclass
class RefinePairs:
    """Training or validation pairs. ``inputs`` (N, S, S, 7) uint8 (:func:`stack_input` layout),
    ``targets`` (N, S, S, 3) uint8 real crop frames; ``clip_ids``/``frames`` say where each came
    from; ``skipped`` clip -> reason."""

    inputs: np.ndarray
    targets: np.ndarray
    clip_ids: list[str] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class _CropTrack:
    frames: np.ndarray  # (T, S, S, 3) uint8 crops
    landmarks: np.ndarray  # (T, 478, 3) crop pixels
    valid: np.ndarray  # (T,) bool


def crop_landmarks(landmarks: np.ndarray, face: np.ndarray, size: int = schema.CROP_SIZE) -> np.ndarray:
    """(T, 478, 3) landmarks in crop pixels from the frames table's (T, 478, 3) source-pixel
    landmarks, through the crop transform the prepare stage computes from them
    (:func:`lesbench.extract.crops.crop_params`, default smoothing); z scaled like x, y.
    Frames without a face give NaN."""
    from lesbench.extract import crops

    lm = np.asarray(landmarks, np.float64)
    params = crops.crop_params(lm, face, size=size, frame_size=(size, size))
    m = params.matrices
    k = np.sqrt(np.abs(np.linalg.det(m[:, :, :2])))
    xy = np.einsum("tij,tnj->tni", m[:, :, :2], lm[:, :, :2]) + m[:, None, :, 2]
    out = np.concatenate([xy, lm[:, :, 2:] * k[:, None, None]], axis=2)
    out[~np.asarray(face, bool)] = np.nan
    return out


def read_crop_track(root: Path, clip_id: str, size: int = schema.CROP_SIZE) -> _CropTrack:
    """A clip's crop frames and crop-pixel landmarks (frames aligned by index at 25 fps)."""
    import pandas as pd

    from lesbench import io

    paths = schema.dataset_paths(root)
    table_path = paths["frames"] / f"{clip_id}.parquet"
    video = paths["crops"] / f"{clip_id}.mp4"
    if not table_path.is_file():
        raise DatasetError(f"{table_path}: missing frames table")
    if not video.is_file():
        raise DatasetError(f"{video}: missing crop video (the refiner trains on the prepared crops)")
    try:
        table = pd.read_parquet(table_path, columns=["frame", "face", "landmarks"]).sort_values("frame")
    except Exception as exc:
        raise DatasetError(f"{table_path}: unreadable frames table ({exc})") from None
    n_lm = schema.N_LANDMARKS * 3
    lm = np.stack([np.asarray(v, np.float64) if v is not None and len(v) == n_lm else np.full(n_lm, np.nan)
                   for v in table["landmarks"]]).reshape(-1, schema.N_LANDMARKS, 3)
    face = table["face"].to_numpy(bool) & np.isfinite(lm).all(axis=(1, 2))
    if not face.any():
        raise DatasetError(f"{table_path}: no frame with a face")
    frames = io.read_frames(video, fps=schema.FPS)
    if frames.shape[1:3] != (size, size):
        raise DatasetError(f"{video}: crops are {frames.shape[2]}x{frames.shape[1]}, expected {size}x{size}")
    n = min(len(frames), len(lm))
    lmc = crop_landmarks(lm[:n], face[:n], size)
    return _CropTrack(frames=frames[:n], landmarks=lmc, valid=face[:n])


def _source_clips(clips, mode: str) -> dict[str, str]:
    """clip_id -> clip_id whose first face frame is its source."""
    neutral: dict[str, str] = {}
    if mode == "neutral":
        for c in sorted(clips, key=lambda c: c.clip_id):
            if c.emotion == "neutral":
                neutral.setdefault(c.speaker, c.clip_id)
    return {c.clip_id: neutral.get(c.speaker, c.clip_id) for c in clips}


def build_pairs(root: str | Path, clips, *, size: int, pairs_per_clip: int, source: str = "neutral",
                max_pairs: int | None = None, progress: bool = False) -> RefinePairs:
    """Pairs (see the module docstring) from ``clips`` (:class:`~lesbench.les.prepared.ClipRecord`)
    of the prepared data set ``root``, at ``size`` px. ``pairs_per_clip`` target frames per clip,
    evenly spaced over its face frames (the source frame itself excluded); ``max_pairs`` keeps
    an evenly spaced subset. An unreadable clip is recorded in ``skipped`` and left out."""
    from lesbench.model.renderer import inner_lip_gap, warp_source_frame
    from lesbench.render import PiecewiseAffineWarp

    root = Path(root)
    crop = schema.CROP_SIZE
    src_of = _source_clips(clips, source)
    tracks: dict[str, _CropTrack] = {}
    skipped: dict[str, str] = {}

    def track(cid: str) -> _CropTrack | None:
        if cid not in tracks and cid not in skipped:
            try:
                tracks[cid] = read_crop_track(root, cid, crop)
            except (DatasetError, MediaError) as exc:
                skipped[cid] = str(exc)
        return tracks.get(cid)

    inputs, targets, ids, idx = [], [], [], []
    warps: dict[str, tuple] = {}
    from tqdm.auto import tqdm

    for c in tqdm(sorted(clips, key=lambda c: c.clip_id), desc="refine pairs", unit="clip", disable=not progress):
        tr = track(c.clip_id)
        if tr is None:
            continue
        s_id = src_of[c.clip_id]
        if s_id not in warps and track(s_id) is None:
            s_id = c.clip_id
        if s_id not in warps:
            st = tracks[s_id]
            k = int(np.flatnonzero(st.valid)[0])
            src_lm = st.landmarks[k]
            warps[s_id] = (PiecewiseAffineWarp(src_lm[:, :2], (crop, crop)), st.frames[k], inner_lip_gap(src_lm), k)
        warp, src_img, src_gap, src_k = warps[s_id]
        cand = np.flatnonzero(tr.valid)
        if s_id == c.clip_id:
            cand = cand[cand != src_k]
        if len(cand) == 0:
            continue
        pick = cand[np.unique(np.round(np.linspace(0, len(cand) - 1, min(pairs_per_clip, len(cand)))).astype(int))]
        for t in pick.tolist():
            dst = tr.landmarks[t]
            warped = warp_source_frame(warp, src_img, src_gap, dst)
            inputs.append(stack_input(warped, src_img, mouth_mask(dst, (crop, crop)), size))
            targets.append(_resize(tr.frames[t], size))
            ids.append(c.clip_id)
            idx.append(t)
        tracks.pop(c.clip_id, None)  # keep memory flat (a source's frame lives on in ``warps``)
    if max_pairs is not None and len(targets) > max_pairs:
        keep = np.unique(np.round(np.linspace(0, len(targets) - 1, max_pairs)).astype(int))
        inputs, targets = [inputs[i] for i in keep], [targets[i] for i in keep]
        ids, idx = [ids[i] for i in keep], [idx[i] for i in keep]
    if not targets:
        return RefinePairs(np.zeros((0, size, size, IN_CHANNELS), np.uint8), np.zeros((0, size, size, 3), np.uint8),
                           skipped=skipped)
    return RefinePairs(np.stack(inputs), np.stack(targets), ids, idx, skipped)


# ---------------------------------------------------------------------------------------- scores


def image_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean L1 (0-1 scale) and mean per-image PSNR (dB, peak 1) of (N, H, W, 3) uint8 images."""
    p = pred.astype(np.float64) / 255.0
    t = target.astype(np.float64) / 255.0
    l1 = float(np.abs(p - t).mean())
    mse = ((p - t) ** 2).reshape(len(p), -1).mean(1)
    psnr = float(np.mean(10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))))
    return {"l1": l1, "psnr": psnr}


def evaluate_pairs(refiner: Refiner, pairs: RefinePairs) -> dict[str, float]:
    """Warp-only vs refined L1/PSNR on full-resolution ``pairs`` through :meth:`Refiner.refine_masked`
    (the inference path). The mouth mask is channel 6 of the inputs; the landmarks are not
    needed again."""
    out = np.stack([refiner.refine_masked(x[..., :3], x[..., 3:6], x[..., 6]) for x in pairs.inputs])
    warp_s = image_scores(pairs.inputs[..., :3], pairs.targets)
    ref_s = image_scores(out, pairs.targets)
    return {"n_pairs": len(pairs), "warp_l1": warp_s["l1"], "refined_l1": ref_s["l1"],
            "warp_psnr": warp_s["psnr"], "refined_psnr": ref_s["psnr"]}


# -------------------------------------------------------------------------------------- training


@dataclass
class RefineResult:
    """What :func:`train_refiner` did: the checkpoint, its log and the held-out scores."""

    path: Path
    size: int
    steps: int
    device: str
    seconds: float
    history: list[dict] = field(default_factory=list)
    val: dict = field(default_factory=dict)
    n_train_pairs: int = 0
    sha256: str = ""


def _loss_terms(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, cfg: RefineConfig) -> dict[str, torch.Tensor]:
    diff = (out - target).abs()
    l1 = (diff * (1.0 + cfg.mouth_weight * mask)).mean()
    gx = lambda a: a[..., :, 1:] - a[..., :, :-1]  # noqa: E731
    gy = lambda a: a[..., 1:, :] - a[..., :-1, :]  # noqa: E731
    grad = (gx(out) - gx(target)).abs().mean() + (gy(out) - gy(target)).abs().mean()
    return {"l1": l1, "grad": grad, "loss": l1 + cfg.grad_weight * grad}


def _batch(pairs: RefinePairs, idx: np.ndarray, flips: np.ndarray | None, device) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = pairs.inputs[idx], pairs.targets[idx]
    if flips is not None and flips.any():
        x, y = x.copy(), y.copy()
        x[flips], y[flips] = x[flips][:, :, ::-1], y[flips][:, :, ::-1]
    return _to_tensor(x, device), _to_tensor(y, device)


def _val_l1(net: RefineNet, pairs: RefinePairs, device, batch: int = 16) -> tuple[float, float]:
    """(refined L1, warp L1) at the training size."""
    net.eval()
    tot = warp_tot = 0.0
    with torch.no_grad():
        for i in range(0, len(pairs), batch):
            x, y = _batch(pairs, np.arange(i, min(i + batch, len(pairs))), None, device)
            tot += float((refined(net, x) - y).abs().mean()) * len(x)
            warp_tot += float((x[:, :3] - y).abs().mean()) * len(x)
    net.train()
    return tot / len(pairs), warp_tot / len(pairs)


def resolve_refine_config(run_dir: str | Path | None, config: RefineConfig | str | Path | None = None,
                          overrides: dict | None = None) -> RefineConfig:
    """The refiner's config: ``config`` (a RefineConfig, or a YAML file with a ``refine:``
    section), else the run's ``config.yaml``, else the packaged defaults; then ``overrides``
    (keys of the ``refine:`` section)."""
    if isinstance(config, RefineConfig):
        cfg = RefineConfig(**asdict(config))
    elif config is not None:
        cfg = load_config(config).refine
    elif run_dir is not None and (Path(run_dir) / "config.yaml").is_file():
        cfg = load_config(Path(run_dir) / "config.yaml").refine
    else:
        cfg = load_config().refine
    if overrides:
        cfg = load_config(overrides={"refine": {**asdict(cfg), **overrides}}).refine
    return validate_refine(cfg)


def train_refiner(
    data: str | Path,
    run_dir: str | Path,
    *,
    config: RefineConfig | str | Path | None = None,
    size: int | None = None,
    steps: int | None = None,
    device: str | None = "auto",
    seed: int = 0,
    overrides: dict | None = None,
    train_split: str | None = None,
    progress: bool = True,
) -> RefineResult:
    """Train the refiner on the prepared data set ``data`` and write it into ``run_dir``.

    ``size`` / ``steps`` default to the config's ``size`` / ``steps`` on CPU and ``gpu_size`` /
    ``gpu_steps`` on CUDA. Train split (``train_split``, default the run's config or "train")
    only; held-out speakers (every other split) are scored at the end, warp-only vs refined,
    at 256 through the inference path. Deterministic for a ``seed`` on a given device.
    Writes ``refine.safetensors``, ``refine.json`` and ``refine_log.csv``.
    """
    from lesbench.les.prepared import dataset_provenance, open_prepared
    from lesbench.model.train import _atomic_write_text, resolve_device, write_csv_log

    run = Path(run_dir)
    cfg = resolve_refine_config(run, config, overrides)
    if train_split is None:
        train_split = load_config(run / "config.yaml").train_split if (run / "config.yaml").is_file() else "train"
    dev = resolve_device(device)
    on_gpu = dev.type == "cuda"
    size = int(size or (cfg.gpu_size if on_gpu else cfg.size))
    steps = int(steps or (cfg.gpu_steps if on_gpu else cfg.steps))
    if size % (1 << (cfg.levels - 1)):
        raise ConfigError(f"refiner size {size} must be divisible by 2^(levels-1) = {1 << (cfg.levels - 1)}")
    index = open_prepared(data)
    train_clips = [c for c in index.clips if c.split == train_split]
    val_clips = [c for c in index.clips if c.split != train_split]
    if cfg.max_train_clips:
        train_clips = train_clips[: cfg.max_train_clips]
    if not train_clips:
        raise DatasetError(f"{data}: no clip in split {train_split!r} to train the refiner on")
    run.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    try:
        train_pairs = build_pairs(data, train_clips, size=size, pairs_per_clip=cfg.pairs_per_clip,
                                  source=cfg.source, progress=progress)
        if len(train_pairs) == 0:
            raise DatasetError(f"{data}: no usable training pair for the refiner (crops/landmarks missing?): "
                               + "; ".join(f"{k}: {v}" for k, v in list(train_pairs.skipped.items())[:3]))
        val_full = build_pairs(data, val_clips, size=schema.CROP_SIZE, pairs_per_clip=cfg.pairs_per_clip,
                               source=cfg.source, max_pairs=cfg.max_val_pairs) if val_clips else None
        val_small = None
        if val_full is not None and len(val_full):
            val_small = RefinePairs(np.stack([stack_input(x[..., :3], x[..., 3:6], x[..., 6], size) for x in val_full.inputs]),
                                    np.stack([_resize(y, size) for y in val_full.targets]))
        t_data = time.perf_counter() - t_start

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = RefineNet(cfg.channels, cfg.levels).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        history: list[dict] = []
        sums: dict[str, float] = {}
        n_sum = 0
        t0 = time.perf_counter()
        from tqdm.auto import tqdm

        bar = tqdm(range(steps), desc="refine", unit="step", disable=not progress)
        net.train()
        for step in bar:
            lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * step / max(steps, 1)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = rng.choice(len(train_pairs), size=min(cfg.batch_size, len(train_pairs)), replace=False)
            flips = rng.random(len(idx)) < 0.5 if cfg.flip else None
            x, y = _batch(train_pairs, idx, flips, dev)
            terms = _loss_terms(refined(net, x), y, x[:, 6:7], cfg)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_sum += 1
            last = step + 1 == steps
            if last or (step + 1) % max(cfg.eval_every, 1) == 0 or step == 0:
                row = {"step": step + 1, "lr": lr, **{k: v / n_sum for k, v in sums.items()},
                       "val_l1": None, "val_warp_l1": None, "seconds": time.perf_counter() - t0}
                if val_small is not None:
                    row["val_l1"], row["val_warp_l1"] = _val_l1(net, val_small, dev)
                history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{row['val_l1'] or float('nan'):.4f}")
                sums, n_sum = {}, 0
        bar.close()
        t_train = time.perf_counter() - t0
        path = run / REFINE_FILE
        digest = save_refiner(net, path, cfg, size)
        net.eval()
        refiner = Refiner(net=net, config=cfg, size=size, device=dev, path=path, sha256=digest)
        val = evaluate_pairs(refiner, val_full) if val_full is not None and len(val_full) else {}
        seconds = time.perf_counter() - t_start
        meta = {
            "format": FORMAT, "version": FORMAT_VERSION, "file": REFINE_FILE, "sha256": digest,
            "lesbench_version": __version__, "torch_version": torch.__version__,
            "size": size, "steps": steps, "seed": seed, "device": str(dev), "config": asdict(cfg),
            "seconds": {"data": t_data, "train": t_train, "total": seconds},
            "val": val,
            "provenance": {
                **dataset_provenance(data),
                "train_split": train_split,
                "n_train_pairs": len(train_pairs),
                "train_clips": sorted(set(train_pairs.clip_ids)),
                "train_speakers": sorted({c.speaker for c in train_clips}),
                "val_speakers": sorted({c.speaker for c in val_clips}),
                "n_val_pairs": len(val_full) if val_full is not None else 0,
                "skipped_clips": {**train_pairs.skipped, **(val_full.skipped if val_full is not None else {})},
            },
            "history": history,
        }
        _atomic_write_text(run / REFINE_META, json.dumps(meta, indent=1, default=float))
        write_csv_log(run / REFINE_LOG, LOG_FIELDS, history)
        return RefineResult(path=path, size=size, steps=steps, device=str(dev), seconds=seconds, history=history,
                            val=val, n_train_pairs=len(train_pairs), sha256=digest)
    finally:
        torch.set_num_threads(prev_threads)


def should_train_refiner(mode: str, device: str | None = "auto") -> bool:
    """``mode`` auto / true / false (or on / off): auto trains only when the resolved device is
    CUDA, true always, false never."""
    from lesbench.model.train import resolve_device

    m = {"on": "true", "off": "false"}.get(str(mode).lower(), str(mode).lower())
    if m not in ("auto", "true", "false"):
        raise ConfigError(f"refine mode must be auto, on/true or off/false, got {mode!r}")
    if m == "false":
        return False
    return m == "true" or resolve_device(device).type == "cuda"
