"""The refiner's training and validation pairs, read from a prepared data set, and their scores.

A pair is (the source crop warped to a target frame's crop landmarks exactly as the renderer does,
the real crop frame); see :mod:`lesbench.model.refine` for how sources and targets are chosen. The
crops and landmarks are read through :class:`lesbench.prepared.PreparedDataset`; the landmarks
are mapped into crop pixels through the crop transform the prepare stage used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesbench import schema
from lesbench.errors import DatasetError, MediaError
from lesbench.model.refine_net import IN_CHANNELS, Refiner, resize_square, mouth_mask, stack_input
from lesbench.model.renderer import inner_lip_gap, warp_source_frame
from lesbench.extract import crops
from lesbench.prepared import PreparedDataset
from lesbench.render import PiecewiseAffineWarp


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
    lm = np.asarray(landmarks, np.float64)
    params = crops.crop_params(lm, face, size=size, frame_size=(size, size))
    m = params.matrices
    k = np.sqrt(np.abs(np.linalg.det(m[:, :, :2])))
    xy = np.einsum("tij,tnj->tni", m[:, :, :2], lm[:, :, :2]) + m[:, None, :, 2]
    out = np.concatenate([xy, lm[:, :, 2:] * k[:, None, None]], axis=2)
    out[~np.asarray(face, bool)] = np.nan
    return out


def read_crop_track(data: PreparedDataset | str | Path, clip_id: str, size: int = schema.CROP_SIZE) -> _CropTrack:
    """A clip's crop frames and crop-pixel landmarks (frames aligned by index at 25 fps) from the
    prepared data set ``data`` (an opened one, or its folder)."""
    if not isinstance(data, PreparedDataset):
        data = PreparedDataset(data)
    table_path = data.existing("frames", clip_id)
    video = data.clip_file("crops", clip_id)
    if not video.is_file():
        raise DatasetError(f"{video}: missing crop video (the refiner trains on the prepared crops)")
    lm, face = data.landmarks(clip_id)
    lm = lm.astype(np.float64)
    face = face & np.isfinite(lm).all(axis=(1, 2))
    if not face.any():
        raise DatasetError(f"{table_path}: no frame with a face")
    frames = data.crop_frames(clip_id)
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


def build_pairs(root: PreparedDataset | str | Path, clips, *, size: int, pairs_per_clip: int, source: str = "neutral",
                max_pairs: int | None = None, progress: bool = False) -> RefinePairs:
    """Pairs (see the module docstring) from ``clips`` (:class:`~lesbench.les.prepared.ClipRecord`)
    of the prepared data set ``root``, at ``size`` px. ``pairs_per_clip`` target frames per clip,
    evenly spaced over its face frames (the source frame itself excluded); ``max_pairs`` keeps
    an evenly spaced subset. An unreadable clip is recorded in ``skipped`` and left out."""
    from tqdm.auto import tqdm

    data = root if isinstance(root, PreparedDataset) else PreparedDataset(root)
    crop = schema.CROP_SIZE
    src_of = _source_clips(clips, source)
    tracks: dict[str, _CropTrack] = {}
    skipped: dict[str, str] = {}

    def track(cid: str) -> _CropTrack | None:
        if cid not in tracks and cid not in skipped:
            try:
                tracks[cid] = read_crop_track(data, cid, crop)
            except (DatasetError, MediaError) as exc:
                skipped[cid] = str(exc)
        return tracks.get(cid)

    inputs, targets, ids, idx = [], [], [], []
    warps: dict[str, tuple] = {}
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
            targets.append(resize_square(tr.frames[t], size))
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
