"""Synthetic talking-mouth data for the sync tests: landmarks whose mouth shape follows what a
synthetic voice says (vowel-like harmonic sounds with formants, silences with the mouth shut)."""

from __future__ import annotations

import numpy as np

# (F1, F2) Hz, mouth opening, mouth width (fractions of the inter-ocular distance)
VOWELS = [(750, 1300, 0.35, 0.55), (300, 2300, 0.08, 0.75), (350, 800, 0.12, 0.40), (500, 1800, 0.22, 0.62)]


def synthetic_clip(n_frames: int = 150, seed: int = 0, sr: int = 16000, fps: float = 25.0):
    """(landmarks (T, 478, 3) pixels, audio (N,) float32): a 'speaker' uttering random vowels."""
    rng = np.random.default_rng(seed)
    hop = int(sr / fps)
    opening = np.zeros(n_frames)
    width = np.full(n_frames, 0.5)
    audio = np.zeros(n_frames * hop, np.float64)
    t = np.arange(n_frames * hop) / sr
    i = 0
    while i < n_frames:
        dur = int(rng.integers(3, 9))
        if rng.random() < 0.3:  # silence, mouth closed
            i += dur
            continue
        f1, f2, op, wd = VOWELS[int(rng.integers(len(VOWELS)))]
        amp = rng.uniform(0.2, 0.8)
        # frame j shows the mouth at time j / fps: its sound is centred there too
        s, e = max(0, i * hop - hop // 2), min(n_frames * hop, (i + dur) * hop - hop // 2)
        # loudness changes from frame to frame (and the mouth with it): a sharp correlation peak
        gains = rng.uniform(0.3, 1.0, dur)
        env = np.repeat(gains, hop)[: e - s]
        env = np.convolve(np.pad(env, (80, 80), mode="edge"), np.ones(161) / 161, mode="valid")
        f0 = rng.uniform(100, 180)
        src = sum(np.sin(2 * np.pi * f0 * h * t[s:e]) * (1.0 / h) * (np.exp(-((f0 * h - f1) / 150) ** 2)
                                                                + np.exp(-((f0 * h - f2) / 200) ** 2))
                  for h in range(1, 40))
        audio[s:e] += amp * env * src
        frames = np.arange(i, min(n_frames, i + dur))
        shape = gains[: len(frames)]
        opening[frames] = op * amp * 1.5 * shape
        width[frames] = 0.5 + (wd - 0.5) * shape
        i += dur
    audio += rng.normal(0, 0.002, audio.shape)
    audio = (audio / np.abs(audio).max() * 0.8).astype(np.float32)
    io_px = 60.0
    lm = np.zeros((n_frames, 478, 3), np.float32)
    lm[:, :, 0], lm[:, :, 1] = 128.0, 140.0
    lm[:, 33, :2] = (98, 110)
    lm[:, 263, :2] = (158, 110)
    for (a, b), dx in zip(((13, 14), (82, 87), (312, 317)), (0.0, -8.0, 8.0)):
        lm[:, a, 0] = lm[:, b, 0] = 128 + dx
        lm[:, a, 1] = 160 - opening * io_px / 2
        lm[:, b, 1] = 160 + opening * io_px / 2
    lm[:, 61, 0] = 128 - width * io_px / 2
    lm[:, 291, 0] = 128 + width * io_px / 2
    lm[:, 61, 1] = lm[:, 291, 1] = 160
    lm[..., :2] += rng.normal(0, 0.3, lm[..., :2].shape)  # tracker jitter, pixels
    return lm, audio
