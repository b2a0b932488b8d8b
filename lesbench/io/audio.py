"""Reading audio: mono float32 in [-1, 1], on its own (:func:`read_audio`) or placed on a video's
timeline (:func:`read_audio_for_video`; docs/media-timing.md)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.errors import MediaError
from lesbench.io.decode import av_module, decode_packets, first_video_frame, no_frames_error, open_input

log = logging.getLogger(__name__)


def read_audio(path: str | os.PathLike[str], sr: int | None = 16000) -> np.ndarray:
    """Decode the first audio stream of ``path`` to mono float32 in [-1, 1].

    ``sr``: output sample rate in Hz (default 16 kHz; ``None`` keeps the source rate).
    Channels are averaged. Returns shape ``(n_samples,)``, starting at the stream's first
    decoded sample whatever its timestamp: for audio used on its own. Audio that goes with a
    video is read with :func:`read_audio_for_video`, which puts it on the video's timeline.
    Raises :class:`MediaError` (``no_audio_stream`` when the file has none).
    """
    return _decode_audio(Path(path), sr)[0]


def read_audio_for_video(
    video_path: str | os.PathLike[str],
    audio_path: str | os.PathLike[str] | None = None,
    sr: int | None = 16000,
) -> np.ndarray:
    """A clip's audio placed on its video's timeline: sample ``i`` plays at ``i / sr`` seconds
    after the video's first displayed frame (frame ``k`` of :func:`iter_frames` at ``fps``
    goes with samples ``k * sr / fps`` onwards).

    ``audio_path``: ``None`` (default) takes the video's own first audio stream; a separate
    file (MEAD's .m4a) is taken as starting at the video's time 0 unless the file states its
    own start time (then that start counts from the video's first frame).
    ``sr``: output rate in Hz (``None``: the source rate). Returns ``(n_samples,)`` mono
    float32 in [-1, 1], like :func:`read_audio`.

    The rule: ``offset`` = when the audio's first decoded sample plays minus when the video's
    first frame is shown, both read from the decoded frames' timestamps (so stream start
    times, edit lists and the decoder's dropping of marked AAC priming samples are all as
    FFmpeg applies them); priming samples the container does not mark are kept, at their own
    timestamp (a copy remuxed with ``-itsoffset`` keeps its priming frame just before the
    offset, and the speech lands at the offset). ``offset > 0`` (audio starts after the
    picture): that many seconds of silence are put in front; ``offset < 0`` (audio starts
    first): the samples before the first frame are dropped. The end is left as decoded
    (trimmed to the duration the container declares); callers pad or cut to their frame count.
    :attr:`MediaInfo.audio_start_s` (from :func:`probe`) reports the same offset.
    Raises :class:`MediaError` naming the file (``no_audio_stream``, ``no_video_stream``, ...).
    """
    video_path = Path(video_path)
    if audio_path is None:
        video_start, _ = first_video_frame(video_path)
        samples, rate, audio_start = _decode_audio(video_path, sr)
        offset = (audio_start or 0.0) - (video_start or 0.0)
        where = video_path
    else:
        audio_path = Path(audio_path)
        samples, rate, audio_start = _decode_audio(audio_path, sr)
        offset = audio_start or 0.0
        where = audio_path
    shift = int(round(offset * rate))
    if shift > 0:
        log.debug("%s: audio starts %.3f s after the first video frame: %d samples of silence put "
                  "in front", where, offset, shift)
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:
        log.debug("%s: audio starts %.3f s before the first video frame: %d samples dropped",
                  where, -offset, -shift)
        samples = samples[-shift:].copy()
    return samples


def _decode_audio(path: Path, sr: int | None) -> tuple[np.ndarray, int, float | None]:
    """``(samples, rate, start_s)``: the first audio stream of ``path`` as mono float32 at
    ``sr`` (or the source rate), and when its first decoded sample plays (seconds on the
    file's timeline; None without timestamps)."""
    av = av_module()
    container = open_input(path)
    try:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream", "no_audio_stream")
        stream = container.streams.audio[0]
        stream.codec_context.thread_type = "NONE"
        resampler = None
        start: float | None = None
        chunks: list[np.ndarray] = []
        counts = {"packets": 0, "bad_packets": 0, "frames": 0}

        def take(frames: Iterable[Any]) -> None:
            for out in frames:
                arr = out.to_ndarray()  # fltp: (channels, samples)
                chunks.append(arr.reshape(arr.shape[0], -1).mean(axis=0, dtype=np.float64).astype(np.float32)
                              if arr.shape[0] > 1 else arr.reshape(-1).astype(np.float32, copy=False))

        for frame in decode_packets(container, stream, path, counts):
            if resampler is None:
                rate = int(sr) if sr else frame.sample_rate
                # Same layout in, planar float out, channels averaged here (swresample's own
                # down-mix matrix scales channels by 1/sqrt(2), not by 1/n).
                resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=rate)
                if frame.pts is not None and stream.time_base is not None:
                    start = float(frame.pts * stream.time_base)
            frame.pts = None  # let the resampler count samples: robust to timestamp gaps
            take(resampler.resample(frame))
        if resampler is None:
            raise no_frames_error(path, stream, counts, "audio")
        take(resampler.resample(None))
        if counts["bad_packets"]:
            log.warning("%s: %d audio packets could not be decoded", path, counts["bad_packets"])
        out = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if stream.duration and stream.time_base is not None:
            # AAC decodes whole 1024-sample frames: drop the encoder's padding past the
            # duration the container declares.
            expected = int(round(float(stream.duration * stream.time_base) * resampler.rate))
            if 0 < expected < len(out):
                out = out[:expected]
        return np.clip(out, -1.0, 1.0, out=out), int(resampler.rate), start
    finally:
        container.close()
