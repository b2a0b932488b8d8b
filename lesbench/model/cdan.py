"""Cross-Dimension Attention Net (CDAN), lesbench's reading of LES-Talker's module.

Three kinds of token meet here (docs/les-talker.md):

- **condition tokens** along the *feature* dimension: one token per AU (17), keyed by a learned
  AU identity and carrying the AU's LES value times a learned value vector (the one-hot variant
  uses one token per emotion in the same way);
- **expression tokens**: one token per expression coefficient (K_exp), from a learned query
  per coefficient;
- **frame tokens** along the *structure* (time) dimension: one per video frame, from the audio
  encoder and the identity.

A CDAN block attends across feature dimensions (expression tokens <- condition tokens, then
expression tokens <-> expression tokens: "which AUs drive which coefficients, jointly"), across
dimensions (frame tokens <- expression tokens: each frame reads the emotion-specific coefficient
context) and across structure (frame tokens <-> frame tokens over time, optionally windowed).
The readout pairs every frame token with every expression token: ``exp[t, k] =
w . GELU(LN(P e_k + Q h_t)) + u_k . m_k``, where ``m_k`` is the first block's condition message
to expression token k. Because the condition tokens' attention keys are the AUs' identities
and only their values carry the LES amounts, ``u_k . m_k`` (a learned readout vector per coefficient) is exactly linear in the LES vector:
the linearity of the LES carries over to the coefficients (levels scale, units add), while the
nonlinear path models how emotion and speech interact. The condition is constant over a clip, so the feature-dimension
attention runs once per clip (B x K tokens) and the temporal attention once per frame sequence
(B x T tokens): cost is linear in T x K only in the readout.

Shapes: B batch, T frames, K expression tokens, C condition tokens, D model width.
"""

from __future__ import annotations

import torch
from torch import nn


class FeedForward(nn.Module):
    def __init__(self, d: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, d * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(d * mult, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConditionTokens(nn.Module):
    """Condition vector (B, C) -> attention keys (B, C, D) and values (B, C, D).

    Keys are the tokens' learned identities (``embed[c]``: *which* AU), values carry the amount
    (``value_c * value_vec[c]``). Expression tokens thus choose which AUs to read by identity
    and receive a contribution linear in each AU's LES value: a zero (masked) AU contributes
    nothing, and scaling the LES vector scales the contribution, as the LES is linear.
    """

    def __init__(self, n_tokens: int, d: int) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.randn(n_tokens, d))
        self.value = nn.Parameter(torch.randn(n_tokens, d))

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.embed[None].expand(cond.shape[0], -1, -1)
        return keys, cond[..., None] * self.value[None]


def _band_mask(t: int, window: int, device) -> torch.Tensor | None:
    if window <= 0 or window >= t:
        return None
    idx = torch.arange(t, device=device)
    return (idx[None, :] - idx[:, None]).abs() > window  # True = not allowed


class Attention(nn.Module):
    """Pre-norm residual multi-head attention ``x <- x + MHA(LN(x), kv)``."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, n_heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.last_weights: torch.Tensor | None = None
        self.last_message: torch.Tensor | None = None  # the attention output of the last call

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None, *, values: torch.Tensor | None = None,
                key_padding=None, mask=None, keep_weights: bool = False) -> torch.Tensor:
        q = self.norm(x)
        kv = q if kv is None else kv
        out, w = self.attn(q, kv, kv if values is None else values, key_padding_mask=key_padding, attn_mask=mask,
                           need_weights=keep_weights)
        if keep_weights:
            self.last_weights = w.detach()
        self.last_message = out
        return x + self.drop(out)


class CDANBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, ffn_mult: int, dropout: float, temporal_window: int, use_condition: bool) -> None:
        super().__init__()
        self.use_condition = use_condition
        self.exp_from_cond = Attention(d, n_heads, dropout) if use_condition else None
        self.exp_self = Attention(d, n_heads, dropout)
        self.exp_ff_norm = nn.LayerNorm(d)
        self.exp_ff = FeedForward(d, ffn_mult, dropout)
        self.frame_from_exp = Attention(d, n_heads, dropout)
        self.frame_time = Attention(d, n_heads, dropout)
        self.frame_ff_norm = nn.LayerNorm(d)
        self.frame_ff = FeedForward(d, ffn_mult, dropout)
        self.temporal_window = temporal_window

    def forward(self, e: torch.Tensor, h: torch.Tensor, cond_tokens: tuple[torch.Tensor, torch.Tensor] | None,
                key_padding: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """e (B, K, D) expression tokens, h (B, T, D) frame tokens."""
        if self.exp_from_cond is not None and cond_tokens is not None:
            keys, values = cond_tokens
            e = self.exp_from_cond(e, keys, values=values, keep_weights=not self.training)
        e = self.exp_self(e)
        e = e + self.exp_ff(self.exp_ff_norm(e))
        h = self.frame_from_exp(h, e)
        h = self.frame_time(h, key_padding=key_padding, mask=_band_mask(h.shape[1], self.temporal_window, h.device))
        h = h + self.frame_ff(self.frame_ff_norm(h))
        return e, h


class CDAN(nn.Module):
    """Stack of :class:`CDANBlock` + pairwise readout -> K coefficients per frame.

    Args:
        n_exp: K, number of expression coefficients (tokens).
        n_cond: C, condition tokens (17 AUs for LES, E emotions for one-hot, 0 for audio-only).
    """

    def __init__(self, n_exp: int, n_cond: int, d: int, n_heads: int, n_layers: int, ffn_mult: int,
                 dropout: float, temporal_window: int) -> None:
        super().__init__()
        self.n_cond = n_cond
        self.exp_queries = nn.Parameter(torch.randn(n_exp, d) * 0.02)
        self.cond_tokens = ConditionTokens(n_cond, d) if n_cond > 0 else None
        self.blocks = nn.ModuleList(
            CDANBlock(d, n_heads, ffn_mult, dropout, temporal_window, use_condition=n_cond > 0) for _ in range(n_layers)
        )
        # linear readout of the condition message (B, K, D) -> (B, K): with value-independent
        # attention weights this term is exactly linear in the LES vector
        self.cond_readout = nn.Parameter(torch.randn(n_exp, d) * d**-0.5) if n_cond > 0 else None
        self.e_proj = nn.Linear(d, d)
        self.h_proj = nn.Linear(d, d)
        self.out_norm = nn.LayerNorm(d)
        self.readout = nn.Linear(d, 1)

    def forward(self, frame_feats: torch.Tensor, cond: torch.Tensor | None,
                key_padding: torch.Tensor | None = None) -> torch.Tensor:
        """frame_feats (B, T, D), cond (B, C) -> coefficients (B, T, K)."""
        b = frame_feats.shape[0]
        e = self.exp_queries[None].expand(b, -1, -1)
        tokens = self.cond_tokens(cond) if self.cond_tokens is not None and cond is not None else None
        h = frame_feats
        for block in self.blocks:
            e, h = block(e, h, tokens, key_padding)
        z = self.e_proj(e)[:, None, :, :] + self.h_proj(h)[:, :, None, :]  # (B, T, K, D)
        out = self.readout(torch.nn.functional.gelu(self.out_norm(z))).squeeze(-1)
        if tokens is not None and self.cond_readout is not None:
            message = self.blocks[0].exp_from_cond.last_message  # (B, K, D)
            out = out + (message * self.cond_readout[None]).sum(-1)[:, None, :]
        return out

    def cross_attention(self) -> list[torch.Tensor]:
        """Last eval-mode expression <- condition attention maps, one (B, K, C) per block."""
        return [blk.exp_from_cond.last_weights for blk in self.blocks if blk.exp_from_cond is not None and blk.exp_from_cond.last_weights is not None]
