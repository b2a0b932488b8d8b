"""LES-Talker: audio encoder + identity + CDAN -> per-frame expression coefficients and head pose.

Inputs are standardised with train-split statistics stored as buffers (so a checkpoint is
self-contained): log-mel (B, T, 80), identity coefficients (B, K_id), condition (B, C).
Outputs: standardised expression coefficients (B, T, K_exp) and standardised head-pose motion
(B, T, 3: yaw, pitch, roll relative to the clip mean). :meth:`LESTalker.predict` returns them
in raw units.
"""

from __future__ import annotations

import torch
from torch import nn

from lesbench.model.cdan import CDAN
from lesbench.model.config import ModelConfig


class TemporalConvBlock(nn.Module):
    def __init__(self, d: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        pad = (kernel - 1) // 2 * dilation
        self.conv = nn.Conv1d(d, d, kernel, padding=pad, dilation=dilation)
        self.norm = nn.GroupNorm(1, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T)
        return x + self.drop(torch.nn.functional.gelu(self.norm(self.conv(x))))


class AudioEncoder(nn.Module):
    """(B, T, 80) standardised log-mel -> (B, T, D); a small temporal conv stack (same length)."""

    def __init__(self, n_mel: int, d: int, layers: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_mel, d, kernel, padding=(kernel - 1) // 2)
        self.blocks = nn.Sequential(*(TemporalConvBlock(d, kernel, 2**i, dropout) for i in range(layers)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.inp(mel.transpose(1, 2))
        return self.blocks(x).transpose(1, 2)


class LESTalker(nn.Module):
    """The model. ``condition``: ``les`` (C = 17 AU tokens), ``onehot`` (C = emotions), ``audio-only``."""

    def __init__(self, cfg: ModelConfig, *, n_mel: int, n_exp: int, n_id: int, n_cond: int, condition: str) -> None:
        super().__init__()
        self.condition = condition
        self.n_exp, self.n_id, self.n_cond, self.n_mel = n_exp, n_id, n_cond, n_mel
        d = cfg.d_model
        self.audio = AudioEncoder(n_mel, d, cfg.audio_layers, cfg.audio_kernel, cfg.dropout)
        self.identity = nn.Linear(n_id, d)
        self.cdan = CDAN(n_exp, n_cond if condition != "audio-only" else 0, d, cfg.n_heads, cfg.n_layers,
                         cfg.ffn_mult, cfg.dropout, cfg.temporal_window)
        self.pose_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 3))
        # train-split statistics (filled by the trainer, saved with the weights)
        self.register_buffer("mel_mean", torch.zeros(n_mel))
        self.register_buffer("mel_std", torch.ones(n_mel))
        self.register_buffer("exp_mean", torch.zeros(n_exp))
        self.register_buffer("exp_std", torch.ones(n_exp))
        self.register_buffer("id_mean", torch.zeros(n_id))
        self.register_buffer("id_std", torch.ones(n_id))
        self.register_buffer("pose_std", torch.ones(3))
        self.register_buffer("au_from_exp", torch.zeros(n_exp, 17))
        self.register_buffer("exp_from_au", torch.zeros(17, n_exp))

    def forward(self, mel: torch.Tensor, ident: torch.Tensor, cond: torch.Tensor | None,
                key_padding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised inputs -> (exp (B, T, K), pose (B, T, 3)), both standardised."""
        h = self.audio(mel) + self.identity(ident)[:, None, :]
        exp = self.cdan(h, cond if self.condition != "audio-only" else None, key_padding)
        return exp, self.pose_head(h)

    @torch.no_grad()
    def predict(self, mel: torch.Tensor, ident: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw-unit inputs (T, 80), (K_id,), (C,) -> raw exp (T, K) and pose motion (T, 3) degrees."""
        was = self.training
        self.eval()
        m = ((mel - self.mel_mean) / self.mel_std)[None]
        i = ((ident - self.id_mean) / self.id_std)[None]
        c = None if cond is None else cond[None]
        exp, pose = self.forward(m, i, c)
        self.train(was)
        return exp[0] * self.exp_std + self.exp_mean, pose[0] * self.pose_std
