"""The two signals the ``sync`` metric aligns, per video frame: the mouth shape from landmarks
(opening and width over the inter-ocular distance) and a log-mel spectrum of the audio centred
on the frame's time (see :mod:`lesbench.metrics.sync`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lesbench.extract.face_arrays import interocular, landmarks_array

#: Inner-lip landmark pairs (upper, lower) and lip corners in MediaPipe's 478-point topology.
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((13, 14), (82, 87), (312, 317))
LIP_CORNERS = (61, 291)


def mouth_shape(landmarks: Any) -> np.ndarray:
    """(T, 2) float64 ``[opening, width]`` divided by the inter-ocular distance; NaN rows where
    there is no face. ``landmarks``: (T, 478, 2|3) pixels or a frames table."""
    lm = landmarks_array(landmarks).astype(np.float64)
    io = interocular(lm)
    io = np.where(io > 0, io, np.nan)
    opening = np.mean([np.linalg.norm(lm[:, a, :2] - lm[:, b, :2], axis=1) for a, b in INNER_LIP_PAIRS], axis=0)
    width = np.linalg.norm(lm[:, LIP_CORNERS[0], :2] - lm[:, LIP_CORNERS[1], :2], axis=1)
    return np.stack([opening / io, width / io], axis=1)


def mel_filterbank(n_mels: int, n_fft: int, sr: int, fmin: float = 80.0, fmax: float = 7600.0) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale (2595 log10(1 + f/700))."""
    fmax = min(fmax, sr / 2.0)

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fb = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[m] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0.0, None)
    return fb


def audio_frame_features(audio: np.ndarray, n_frames: int, sr: int = 16000, fps: float = 25.0,
                         n_mels: int = 16, window_s: float = 0.064, floor_db: float = 60.0,
                         times: np.ndarray | None = None, max_db: float | None = None) -> np.ndarray:
    """(n_frames, n_mels) log-mel (dB) of a Hann window of ``window_s`` seconds centred on each
    video frame's time (``times`` seconds, default ``i / fps``); zero-padded past the ends;
    floored ``floor_db`` below ``max_db`` (default: the maximum of these features).
    ``audio``: (N,) float mono at ``sr`` Hz, sample 0 at time 0."""
    audio = np.asarray(audio, np.float64).reshape(-1)
    if n_frames == 0:
        return np.zeros((0, n_mels))
    win = max(16, int(round(window_s * sr)))
    n_fft = 1 << int(np.ceil(np.log2(win)))
    t = np.arange(n_frames) / fps if times is None else np.asarray(times, np.float64)
    centres = np.round(t * sr).astype(np.int64)
    lead = win // 2 + max(0, -int(centres.min()))
    padded = np.pad(audio, (lead, max(0, int(centres.max()) + win - len(audio))))
    frames = np.stack([padded[c + lead - win // 2: c + lead - win // 2 + win] for c in centres]) * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    mel = power @ mel_filterbank(n_mels, n_fft, sr).T
    db = 10.0 * np.log10(mel + 1e-10)
    return np.maximum(db, (db.max() if max_db is None else max_db) - floor_db)
