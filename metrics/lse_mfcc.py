"""SyncNet's audio input: MFCC exactly as ``python_speech_features.mfcc`` computes it with its
defaults (own implementation, numpy only), 100 frames/s from 16 kHz audio at int16 scale."""

from __future__ import annotations

import numpy as np


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
