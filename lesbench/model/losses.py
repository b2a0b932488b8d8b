"""LES-Talker losses (all masked by the frames' validity).

- ``coef``: L1 between predicted and target standardised expression coefficients;
- ``lip``: L1 between mouth vertices reconstructed through the face model's expression basis
  (identity cancels: both share the source identity), in units of the train split's
  mouth-displacement standard deviation; keeps the mouth shape (lip sync) under any emotion;
- ``au``: AU consistency: the train-split linear exp -> AU regressor applied to the clip-mean
  predicted coefficients (relative to the speaker's neutral coefficients) vs the requested AU
  delta (the clip's measured AU delta with its LES part replaced by the requested LES vector),
  in units of the train clips' mean absolute AU delta;
- ``smooth``: L1 between predicted and target frame-to-frame velocities (temporal smoothness
  without damping real motion);
- ``pose``: L1 on standardised head-pose motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lesbench.model.config import LossConfig


@dataclass
class LossBatch:
    """Targets for one batch. Shapes: B batch, T frames, K coefficients."""

    exp: torch.Tensor  # (B, T, K) raw target coefficients (augmented when requested)
    pose: torch.Tensor  # (B, T, 3) standardised pose motion
    valid: torch.Tensor  # (B, T) bool
    neutral_exp: torch.Tensor  # (B, K) speaker's neutral mean coefficients
    requested_au: torch.Tensor  # (B, 17) requested AU delta from neutral


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    m = m.expand_as(x)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def talker_losses(
    pred_exp_std: torch.Tensor,
    pred_pose: torch.Tensor,
    batch: LossBatch,
    *,
    exp_mean: torch.Tensor,
    exp_std: torch.Tensor,
    mouth_basis: torch.Tensor,
    mouth_scale: float,
    au_from_exp: torch.Tensor,
    au_scale: float,
    weights: LossConfig,
) -> dict[str, torch.Tensor]:
    """Returns the weighted ``total`` and each unweighted term (scalars)."""
    valid = batch.valid
    target_std = (batch.exp - exp_mean) / exp_std
    pred_raw = pred_exp_std * exp_std + exp_mean
    terms: dict[str, torch.Tensor] = {}
    terms["coef"] = _masked_mean((pred_exp_std - target_std).abs(), valid)
    # lip vertices: (B, T, K) @ (K, 3M)
    diff = (pred_raw - batch.exp) @ mouth_basis
    terms["lip"] = _masked_mean(diff.abs(), valid) / mouth_scale
    # AU consistency on clip means
    m = valid.to(pred_raw.dtype)[..., None]
    mean_exp = (pred_raw * m).sum(1) / m.sum(1).clamp_min(1.0)
    pred_au = (mean_exp - batch.neutral_exp) @ au_from_exp
    terms["au"] = (pred_au - batch.requested_au).abs().mean() / au_scale
    # temporal smoothness: velocity matching on consecutive valid frames
    vmask = valid[:, 1:] & valid[:, :-1]
    terms["smooth"] = _masked_mean(((pred_exp_std[:, 1:] - pred_exp_std[:, :-1]) - (target_std[:, 1:] - target_std[:, :-1])).abs(), vmask)
    terms["pose"] = _masked_mean((pred_pose - batch.pose).abs(), valid)
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    terms["total"] = total
    return terms
