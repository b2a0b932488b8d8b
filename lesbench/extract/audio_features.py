"""Audio features, one row per video frame (the ``audio`` stage, docs/design.md).

From 16 kHz mono float32 samples in [-1, 1] (``lesbench.io.read_audio``), numpy/scipy only:

- ``mel`` (T, 80) float32: natural log of mel-filtered power, ``ln(max(P, 1e-10))``.
- ``mfcc`` (T, 39) float32: 13 cepstral coefficients (orthonormal DCT-II of ``mel``, c0 kept),
  then their deltas and delta-deltas (regression over +-2 rows, edges replicated).
- ``energy`` (T,) float32: RMS of the Hann-weighted window, ``sqrt(sum(w x^2) / sum(w))``
  (a full-scale sine gives 0.707).

Alignment: row ``k`` belongs to video frame ``k`` at ``t = k / fps``. Its analysis window is
centred on that time: samples ``k*hop - hop ... k*hop + hop`` (``hop = sr / fps`` = 640 at
16 kHz and 25 fps, window ``2*hop`` = 1280 samples = 80 ms, Hann). Hann windows at half their
length overlap-add to a constant, so every sample counts equally across rows. Samples outside
the clip are zeros (no reflection, which would invent sound). ``n_frames`` rows exactly: the
audio is zero-padded or ignored past the last video frame.

Mel filterbank: HTK mel scale ``mel = 2595 log10(1 + f / 700)``, 80 triangular filters with
peak 1, centres equally spaced in mel between ``FMIN`` = 55 Hz and ``FMAX`` = 7600 Hz, applied to
the power spectrum of a 1280-point real FFT (12.5 Hz resolution).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lesbench.schema import FPS, SAMPLE_RATE

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: Stage version: bump when the features' content can change.
VERSION = "1"

N_MELS = 80
N_MFCC = 13
FMIN = 55.0
FMAX = 7600.0
LOG_FLOOR = 1e-10
DELTA_WIDTH = 2
#: ``is_silent`` threshold: the loudest 40 ms frame's RMS, dB relative to full scale.
SILENCE_DBFS = -60.0


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_center_frequencies(n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """``(n_mels,)`` centre frequency of each filter, Hz."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))[1:-1]


def mel_filterbank(sr: int, n_fft: int, n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` float64 triangular filters (peak 1) on the rfft bins."""
    if fmax > sr / 2:
        raise ValueError(f"fmax {fmax} Hz is above the Nyquist frequency of {sr} Hz audio")
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


def hop_length(sr: int = SAMPLE_RATE, fps: float = FPS) -> int:
    hop = sr / fps
    if abs(hop - round(hop)) > 1e-9:
        raise ValueError(f"sample rate {sr} is not a whole multiple of {fps} fps")
    return int(round(hop))


def default_n_frames(n_samples: int, sr: int = SAMPLE_RATE, fps: float = FPS) -> int:
    """Video frames covering ``n_samples`` of audio: ``round(duration * fps)``."""
    return int(round(n_samples * fps / sr))


def _frames(samples: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """``(n_frames, 2*hop)`` windows centred on ``k * hop``; zeros outside the signal."""
    win = 2 * hop
    if n_frames == 0:
        return np.zeros((0, win))
    total = (n_frames + 1) * hop
    padded = np.zeros(total, dtype=np.float64)
    usable = samples[: max(0, total - hop)]
    padded[hop : hop + len(usable)] = usable
    return np.lib.stride_tricks.sliding_window_view(padded, win)[::hop][:n_frames]


def deltas(x: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """Regression deltas over time: ``d[t] = sum_n n (x[t+n] - x[t-n]) / (2 sum_n n^2)``,
    ``n = 1..width``, rows beyond the edges replicated. ``x``: ``(T, D)``."""
    if len(x) == 0:
        return x.copy()
    padded = np.pad(x, ((width, width), (0, 0)), mode="edge")
    t = len(x)
    num = sum(n * (padded[width + n : width + n + t] - padded[width - n : width - n + t]) for n in range(1, width + 1))
    return num / (2.0 * sum(n * n for n in range(1, width + 1)))


def audio_features(
    samples: np.ndarray,
    sr: int = SAMPLE_RATE,
    n_frames: int | None = None,
    fps: float = FPS,
) -> dict[str, np.ndarray]:
    """Per-video-frame log-mel, MFCC(+deltas) and energy of one clip.

    Args:
        samples: ``(N,)`` float mono in [-1, 1] (a ``(N, C)`` array is averaged to mono).
        sr: sample rate, Hz (16000 in lesbench; any multiple of ``fps`` works).
        n_frames: rows wanted (the clip's video frame count); default ``round(N / sr * fps)``.
        fps: video frame rate.

    Returns:
        ``{"t": (T,) float64 s, "mel": (T, 80) float32, "mfcc": (T, 39) float32,
        "energy": (T,) float32}`` with ``T = n_frames``.
    """
    from scipy.fft import dct, rfft

    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"audio_features: samples must be (N,) mono, got shape {np.shape(samples)}")
    if not np.isfinite(x).all():
        raise ValueError("audio_features: samples contain NaN or infinity")
    hop = hop_length(sr, fps)
    n = default_n_frames(len(x), sr, fps) if n_frames is None else int(n_frames)
    if n < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    window = np.hanning(2 * hop + 1)[:-1]  # periodic Hann: overlap-adds to 1 at hop = len/2
    raw = _frames(x, n, hop)
    power = np.abs(rfft(raw * window, axis=1)) ** 2
    mel_power = power @ np.ascontiguousarray(mel_filterbank(sr, 2 * hop).T)
    log_mel = np.log(np.maximum(mel_power, LOG_FLOOR))
    cepstra = dct(log_mel, type=2, norm="ortho", axis=1)[:, :N_MFCC] if n else np.zeros((0, N_MFCC))
    d1 = deltas(cepstra)
    d2 = deltas(d1)
    energy = np.sqrt(np.square(raw) @ window / window.sum()) if n else np.zeros(0)
    return {
        "t": np.arange(n, dtype=np.float64) / fps,
        "mel": log_mel.astype(np.float32).reshape(n, N_MELS),
        "mfcc": np.concatenate([cepstra, d1, d2], axis=1).astype(np.float32).reshape(n, 3 * N_MFCC),
        "energy": energy.astype(np.float32),
    }


def _block_rms(x: np.ndarray, block: int) -> np.ndarray:
    """RMS of consecutive ``block``-sample stretches (the last one zero-padded)."""
    n = int(np.ceil(len(x) / block))
    padded = np.zeros(n * block)
    padded[: len(x)] = x
    return np.sqrt((padded.reshape(n, block) ** 2).mean(axis=1))


def is_silent(samples: np.ndarray, sr: int = SAMPLE_RATE, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """True when no 40 ms stretch of the clip is louder than ``threshold_dbfs`` (RMS, dB re
    full scale), or the clip is empty. Speech, even quiet, has stretches far above -60 dBFS."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.size == 0:
        return True
    loudest = float(_block_rms(x, max(1, int(round(0.04 * sr)))).max())
    return loudest <= 0.0 or 20.0 * np.log10(loudest) < threshold_dbfs


def audio_schema(with_clip_id: bool = True) -> "pa.Schema":
    """Exact Arrow schema of ``audio/{clip_id}.parquet``."""
    import pyarrow as pa

    fields = [
        pa.field("frame", pa.int32(), nullable=False),
        pa.field("t", pa.float64(), nullable=False),
        pa.field("mel", pa.list_(pa.float32(), N_MELS), metadata={"unit": "ln power", "scale": "HTK mel 55-7600 Hz"}),
        pa.field("mfcc", pa.list_(pa.float32(), 3 * N_MFCC), metadata={"layout": "13 mfcc, 13 delta, 13 delta-delta"}),
        pa.field("energy", pa.float32(), metadata={"unit": "RMS, full scale = 1"}),
    ]
    if with_clip_id:
        fields.insert(0, pa.field("clip_id", pa.string(), nullable=False))
    return pa.schema(fields, metadata={"stage": "audio", "stage_version": VERSION})


def audio_to_table(features: dict[str, np.ndarray], clip_id: str | None = None) -> "pa.Table":
    """:func:`audio_features`' dict as an Arrow table with :func:`audio_schema`."""
    import pyarrow as pa

    n = len(features["energy"])
    schema = audio_schema(with_clip_id=clip_id is not None)
    cols: dict[str, pa.Array] = {}
    if clip_id is not None:
        cols["clip_id"] = pa.array([clip_id] * n, pa.string())
    cols["frame"] = pa.array(np.arange(n, dtype=np.int32))
    cols["t"] = pa.array(np.asarray(features["t"], dtype=np.float64))
    for name, width in (("mel", N_MELS), ("mfcc", 3 * N_MFCC)):
        flat = np.ascontiguousarray(features[name], dtype=np.float32).reshape(-1)
        cols[name] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width)
    cols["energy"] = pa.array(np.asarray(features["energy"], dtype=np.float32))
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)
