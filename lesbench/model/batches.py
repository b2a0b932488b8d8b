"""What LES-Talker trains and validates on: per-clip conditions and targets (with the level, unit
and per-AU-offset augmentations), batches padded to the longest item, and the held-out errors.

:class:`TalkerData` is built by :func:`lesbench.model.train.train` from the loaded clips
(:mod:`lesbench.model.data`) and the statistics fitted on the train split.
"""

from __future__ import annotations

import numpy as np

from lesbench import schema
from lesbench.model.config import TrainConfig


class TalkerData:
    """Clips, train statistics and the condition/target construction (augmentation) for a run."""

    def __init__(self, clips, stats, space, cfg: TrainConfig, bases) -> None:
        self.cfg = cfg
        self.stats = stats
        self.space = space
        self.bases = bases
        self.train = [c for c in clips if c.record.split == cfg.train_split]
        self.val = sorted((c for c in clips if c.record.split != cfg.train_split), key=lambda c: c.record.clip_id)
        self.val = self.val[: cfg.data.max_val_clips]
        self.emotions = space.emotions
        self.unit_names = list(space.units)
        self.unit_masks = np.stack([space.unit_mask([u]) for u in self.unit_names])  # (U, 17)
        self.global_neutral_exp = stats.exp_mean
        # per-clip mean AU delta (relative to the speaker's neutral AUs)
        self.clip_dau = {}
        for c in clips:
            ref = stats.neutral_au.get(c.record.speaker, space.global_neutral)
            self.clip_dau[c.record.clip_id] = (c.aus[c.valid].mean(0) - ref).astype(np.float32)

    @property
    def n_cond(self) -> int:
        return {"les": len(schema.AU_NAMES), "onehot": len(self.emotions), "audio-only": 0}[self.cfg.condition]

    def condition(self, clip_id: str, alpha: float = 1.0, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(condition vector (C,), LES vector v_aug (17,)) for a clip, scaled/masked."""
        v = self.stats.les_vectors[clip_id]
        v_aug = alpha * v * (1.0 if mask is None else mask)
        if self.cfg.condition == "les":
            return v_aug.astype(np.float32), v_aug.astype(np.float32)
        if self.cfg.condition == "onehot":
            # the coarse label the paper argues against: which emotion, not how much (every MEAD
            # level and every measured intensity gets the same 1); no level augmentation
            cond = np.zeros(len(self.emotions), np.float32)
            for e in self.stats.emotion_levels[clip_id]:
                cond[self.emotions.index(e)] = 1.0
            return cond, v.astype(np.float32)
        return np.zeros(0, np.float32), v.astype(np.float32)

    def sample(self, clip, start: int, rng: np.random.Generator | None) -> dict:
        """One training/validation item; ``rng`` None = no augmentation."""
        w = self.cfg.data.window if rng is not None else clip.n_frames
        end = min(start + w, clip.n_frames)
        sl = slice(start, end)
        cid = clip.record.clip_id
        alpha, mask = 1.0, None
        if rng is not None and self.cfg.condition != "audio-only":
            if self.cfg.condition == "les" and rng.random() < self.cfg.augment.level_prob:
                alpha = float(rng.random())
            if self.cfg.condition == "les" and rng.random() < self.cfg.augment.unit_prob:
                # keep k random units, k uniform in 1..U-1 (single-unit edits are common requests)
                k = int(rng.integers(1, len(self.unit_names)))
                keep = rng.permutation(len(self.unit_names))[:k]
                mask = np.clip(self.unit_masks[keep].sum(0), 0, 1)
        cond, v_aug = self.condition(cid, alpha, mask)
        if rng is not None and self.cfg.condition == "les" and rng.random() < self.cfg.augment.offset_prob:
            # per-AU offsets (the finest LES edits): every AU moved independently, so each AU
            # token's own effect is identifiable (emotions move AUs only in fixed combinations)
            offset = rng.normal(0.0, self.cfg.augment.offset_scale, len(v_aug)).astype(np.float32)
            v_aug = v_aug + offset
            cond = v_aug.astype(np.float32)
        v = self.stats.les_vectors[cid]
        shift = (v_aug - v) @ self.stats.exp_from_au  # (K,)
        valid = clip.valid[sl]
        exp = clip.exp[sl] + np.where(valid[:, None], shift[None], 0)
        pose = (clip.pose[sl] - clip.pose[clip.valid].mean(0)) / self.stats.pose_std
        s = clip.record.speaker
        return {
            "mel": (clip.mel[sl] - self.stats.mel_mean) / self.stats.mel_std,
            "exp": exp,
            "pose": np.where(valid[:, None], pose, 0),
            "valid": valid,
            "ident": (clip.ident - self.stats.id_mean) / self.stats.id_std,
            "cond": cond,
            "neutral_exp": self.stats.neutral_exp.get(s, self.global_neutral_exp),
            "requested_au": self.clip_dau[cid] - v + v_aug,
        }

    def epoch_items(self, epoch_seed: int) -> list[dict]:
        rng = np.random.default_rng(epoch_seed)
        items = []
        for clip in self.train:
            for _ in range(self.cfg.data.windows_per_clip):
                hi = max(clip.n_frames - self.cfg.data.window, 0)
                start = int(rng.integers(0, hi + 1))
                items.append(self.sample(clip, start, rng))
        order = rng.permutation(len(items))
        return [items[i] for i in order]


def collate(items: list[dict], device):
    """Pad to the longest item; returns tensors and the key-padding mask (True = padding)."""
    import torch

    t = max(len(it["mel"]) for it in items)

    def pad(x, fill=0.0):
        x = np.asarray(x)
        out = np.full((t, *x.shape[1:]), fill, dtype=np.float32 if x.dtype != bool else bool)
        out[: len(x)] = x
        return out

    batch = {
        "mel": np.stack([pad(it["mel"]) for it in items]),
        "exp": np.stack([pad(it["exp"]) for it in items]),
        "pose": np.stack([pad(it["pose"]) for it in items]),
        "valid": np.stack([pad(it["valid"], False) for it in items]),
        "ident": np.stack([it["ident"] for it in items]),
        "cond": np.stack([it["cond"] for it in items]),
        "neutral_exp": np.stack([it["neutral_exp"] for it in items]),
        "requested_au": np.stack([it["requested_au"] for it in items]),
    }
    lengths = np.array([len(it["mel"]) for it in items])
    padding = np.arange(t)[None, :] >= lengths[:, None]
    out = {k: torch.as_tensor(v.astype(np.float32) if v.dtype != bool else v, device=device) for k, v in batch.items()}
    out["padding"] = torch.as_tensor(padding, device=device)
    return out


def val_mean_baseline(td: TalkerData, stats) -> float | None:
    """Held-out error of predicting the train-mean coefficients everywhere (a reference line)."""
    if not td.val:
        return None
    errs = [np.abs(c.exp[c.valid] - stats.exp_mean).mean() for c in td.val]
    return float(np.mean(errs))


def evaluate_clips(model, td: TalkerData, clips, device, mouth, mouth_scale: float) -> dict:
    """Full-clip held-out errors: mean |exp| error (raw units) and lip-vertex error (scaled)."""
    import torch

    model.eval()
    errs, lips = [], []
    with torch.no_grad():
        for i in range(0, len(clips), 8):
            chunk = clips[i : i + 8]
            b = collate([td.sample(c, 0, None) for c in chunk], device)
            pred, _ = model(b["mel"], b["ident"], b["cond"] if td.n_cond else None, b["padding"])
            raw = pred * model.exp_std + model.exp_mean
            for j, c in enumerate(chunk):
                v = b["valid"][j]
                diff = (raw[j] - b["exp"][j])[v]
                errs.append(float(diff.abs().mean()))
                lips.append(float((diff @ mouth).abs().mean()) / mouth_scale)
    model.train()
    return {"exp_l1": float(np.mean(errs)), "lip": float(np.mean(lips))}
