"""Writing video (H.264/H.265 .mp4, optional AAC track) and audio (.m4a, .wav), atomically: a
temporary file in the destination folder, then ``os.replace``. Deterministic bytes with ``threads=1``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.atomic import replacing
from lesbench.io.decode import av_module
from lesbench.io.video import Frame

#: Below this width or height x264's macroblock-tree rate control gave run-to-run different
#: bytes here (measured: 64x48 and 96x64 vary, 128x128 and larger do not), so it is turned
#: off for such tiny videos; its compression gain there is negligible.
_MBTREE_MIN_SIDE = 128

#: Suffix -> (FFmpeg muxer, audio codec) for :func:`write_audio`.
AUDIO_SUFFIXES: dict[str, tuple[str, str]] = {
    ".m4a": ("ipod", "aac"),
    ".mp4": ("mp4", "aac"),
    ".wav": ("wav", "pcm_s16le"),
}


def _as_fraction(fps: float) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


def _check_audio(samples: np.ndarray, what: str = "audio") -> np.ndarray:
    a = np.asarray(samples)
    if a.ndim != 1:
        raise ValueError(f"{what} must be mono, shape (n_samples,), got {a.shape}")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or infinite samples")
    return np.clip(a, -1.0, 1.0)


def _audio_frame(av: Any, chunk: np.ndarray, fmt: str, sr: int, pts: int) -> Any:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk[None, :]), format=fmt, layout="mono")
    frame.sample_rate = sr
    frame.time_base = Fraction(1, sr)
    frame.pts = pts
    return frame


def _add_audio_stream(container: Any, codec: str, sr: int, bit_rate: int | None) -> Any:
    # FFmpeg's native AAC encoder audibly distorts 48 kHz mono at 64 kb/s (a 0.5 sine peaks at
    # 0.7); 64 kb/s is clean at 16 kHz.
    bit_rate = int(bit_rate) if bit_rate else (64000 if sr <= 24000 else 128000)
    stream = container.add_stream(codec, rate=sr)
    ctx = stream.codec_context
    ctx.layout = "mono"
    ctx.sample_rate = sr
    if codec == "aac":
        ctx.format = "fltp"
        ctx.bit_rate = bit_rate
    else:
        ctx.format = "s16"
    ctx.thread_type = "NONE"
    return stream


def _encode_audio(av: Any, container: Any, stream: Any, samples: np.ndarray, start: int, stop: int,
                  sr: int) -> None:
    if stop <= start:
        return
    chunk = samples[start:stop]
    if stream.codec_context.name == "aac":
        frame = _audio_frame(av, chunk, "fltp", sr, start)
    else:
        pcm = np.round(chunk * 32767.0).astype(np.int16)
        frame = _audio_frame(av, pcm, "s16", sr, start)
    container.mux(stream.encode(frame))


def _zero_padding(frame: Any) -> None:
    """Zero the bytes right of each plane's width (and below its height).

    x264 reads some of them (in its lookahead on short clips), and FFmpeg leaves them
    uninitialised, which made the output bytes vary from run to run.
    """
    for plane in frame.planes:
        buf = np.frombuffer(plane, np.uint8)
        used = plane.height * plane.line_size
        if plane.line_size > plane.width:
            buf[:used].reshape(plane.height, plane.line_size)[:, plane.width:] = 0
        buf[used:] = 0


def _as_image(item: Any) -> np.ndarray:
    img = item.image if isinstance(item, Frame) else item
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) RGB images, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {img.dtype}")
    return np.ascontiguousarray(img)


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray | Frame] | np.ndarray,
    fps: float = 25,
    audio: np.ndarray | None = None,
    sr: int = 16000,
    crf: int = 18,
    *,
    preset: str = "medium",
    threads: int = 1,
    audio_bit_rate: int | None = None,
    codec: str = "libx264",
    audio_codec: str = "aac",
) -> Path:
    """Encode ``frames`` to an H.264 (libx264, yuv420p) .mp4 at ``fps``; atomic.

    ``frames``: iterable of ``(H, W, 3)`` uint8 RGB arrays or :class:`Frame` (consumed as a
    stream), or one ``(T, H, W, 3)`` array; width and height must be even (yuv420p).
    ``audio``: optional mono float32 samples in [-1, 1] at ``sr`` Hz, muxed as AAC.
    ``crf``: x264 quality (0 lossless-ish .. 51; 18 is visually lossless).
    ``threads``: encoder threads; the default 1 makes the output bytes reproducible.
    ``audio_bit_rate``: AAC bits/s (default: 64 k up to 24 kHz, else 128 k).
    ``codec``: ``libx264`` (default) or ``libx265`` (H.265, same ``crf``/``preset`` options, where
    PyAV's FFmpeg has it: ``"libx265" in av.codecs_available``); ``audio_codec``: ``aac``
    (default) or ``pcm_s16le`` (lossless, e.g. to compare against AAC).
    The moov index is written at the front (``faststart``) so files stream. Returns ``path``.
    """
    av = av_module()
    path = Path(path)
    rate = _as_fraction(fps)
    samples = _check_audio(audio) if audio is not None else None
    sr = int(sr)
    with replacing(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4",
                            options={"movflags": "+faststart"})
        try:
            it = iter(frames)
            first = next(it, None)
            if first is None:
                raise ValueError(f"{path}: no frames to write")
            img = _as_image(first)
            h, w = img.shape[:2]
            if w % 2 or h % 2:
                raise ValueError(f"{path}: frame size {w}x{h} must be even for H.264 yuv420p")
            vstream = container.add_stream(codec, rate=rate)
            vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
            vstream.codec_context.time_base = 1 / rate
            vstream.codec_context.thread_type = "NONE" if threads == 1 else "AUTO"
            vstream.codec_context.thread_count = max(0, int(threads))
            options = {"crf": str(int(crf)), "preset": preset, "threads": str(max(0, int(threads)))}
            if codec == "libx265":  # x265 takes no "threads" option; its pools are set in x265-params
                options.pop("threads")
                options["x265-params"] = f"pools={max(1, int(threads))}:frame-threads=1:log-level=error"
            elif min(w, h) < _MBTREE_MIN_SIDE:
                options["x264-params"] = "mbtree=0"
            vstream.options = options
            astream = _add_audio_stream(container, audio_codec, sr, audio_bit_rate) if samples is not None else None

            written = 0
            i = 0
            while img is not None:
                if img.shape[:2] != (h, w):
                    raise ValueError(f"{path}: frame {i} is {img.shape[1]}x{img.shape[0]}, expected {w}x{h}")
                vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p", threads=1)
                _zero_padding(vf)
                vf.pts = i
                vf.time_base = 1 / rate
                container.mux(vstream.encode(vf))
                i += 1
                if astream is not None:  # interleave: audio up to the end of this frame
                    stop = min(len(samples), int(round(i / rate * sr)))
                    _encode_audio(av, container, astream, samples, written, stop, sr)
                    written = max(written, stop)
                nxt = next(it, None)
                img = _as_image(nxt) if nxt is not None else None
            container.mux(vstream.encode(None))
            if astream is not None:
                _encode_audio(av, container, astream, samples, written, len(samples), sr)
                container.mux(astream.encode(None))
        finally:
            container.close()
    return path


def write_audio(
    path: str | os.PathLike[str],
    samples: np.ndarray,
    sr: int = 16000,
    *,
    bit_rate: int | None = None,
) -> Path:
    """Write mono float32 ``samples`` in [-1, 1] at ``sr`` Hz; atomic. Returns ``path``.

    The suffix picks the format: ``.m4a`` / ``.mp4`` (AAC, ``bit_rate`` bits/s, default 64 k
    up to 24 kHz, else 128 k) or ``.wav`` (16-bit PCM). Samples outside [-1, 1] are clipped.
    """
    av = av_module()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise ValueError(f"{path}: unsupported audio suffix {suffix!r}; use one of {sorted(AUDIO_SUFFIXES)}")
    fmt, codec = AUDIO_SUFFIXES[suffix]
    a = _check_audio(samples)
    if a.size == 0:
        raise ValueError(f"{path}: no audio samples to write")
    sr = int(sr)
    with replacing(path) as tmp:
        options = {"movflags": "+faststart"} if fmt in ("ipod", "mp4") else {}
        container = av.open(str(tmp), mode="w", format=fmt, options=options)
        try:
            stream = _add_audio_stream(container, codec, sr, bit_rate)
            block = 1 << 15
            for start in range(0, len(a), block):
                _encode_audio(av, container, stream, a, start, min(len(a), start + block), sr)
            container.mux(stream.encode(None))
        finally:
            container.close()
    return path
