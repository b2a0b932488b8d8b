"""What a media file holds: :class:`MediaInfo` and :func:`probe` (streams, displayed size, fps,
duration, VFR, truncation, the audio's start on the video's timeline)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesbench.errors import MediaError
from lesbench.io.decode import av_module, first_audio_time, first_video_frame, open_input


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` finds in a media file.

    Video fields are 0/None when there is no video stream, audio fields when there is no audio.
    ``fps``: frames per second (the container's average rate; for VFR, frames / duration).
    ``n_frames``: video packets actually present (counted by demuxing, not decoding).
    ``duration_s``: video duration from the first frame's timestamp to the end of the last
    frame (audio duration for audio-only files). ``declared_n_frames`` /
    ``declared_duration_s``: what the container's header claims. ``truncated``: the header
    claims more frames than the file holds (cut-off download or copy). ``vfr``: frame
    intervals vary by more than 10% of the median interval.

    ``width``/``height`` are the **displayed** size: when the video carries a display matrix
    (rotation metadata) they are the decoded picture's size after turning it upright, which is
    what :func:`iter_frames` yields; ``coded_width``/``coded_height`` are the size as stored.
    ``rotation``: degrees counter-clockwise the stored picture is turned to display it (0, 90,
    180 or 270, as FFmpeg reports the display matrix); ``mirrored``: the display matrix also
    flips it. Both are applied by :func:`iter_frames`.

    ``audio_start_s``: when the audio's first decoded sample plays, in seconds, relative to
    the first displayed video frame (relative to the file's time 0 for an audio-only file);
    positive when the audio starts after the picture (what ``ffmpeg -itsoffset`` writes).
    :func:`read_audio_for_video` applies it. None when unknown (no audio, nothing decodable).
    """

    path: Path
    has_video: bool
    has_audio: bool
    width: int
    height: int
    fps: float
    n_frames: int
    duration_s: float
    audio_sample_rate: int | None
    audio_channels: int | None
    vfr: bool
    # Added beyond the shared contract:
    audio_duration_s: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    declared_n_frames: int | None = None
    declared_duration_s: float | None = None
    truncated: bool = False
    size_bytes: int = 0
    coded_width: int = 0
    coded_height: int = 0
    rotation: int = 0
    mirrored: bool = False
    audio_start_s: float | None = None

    @property
    def reoriented(self) -> bool:
        """True when the frames are turned or flipped from how they are stored."""
        return bool(self.rotation or self.mirrored)


def probe(path: str | os.PathLike[str], count_frames: bool = True) -> MediaInfo:
    """Describe the streams of a media file.

    With ``count_frames`` (default) the video packets are demuxed (not decoded: fast, reads the
    file once) to get the true frame count, duration, VFR flag and truncation; without it the
    container header gives them. Either way the first video frame and the first audio packet
    are decoded, for the orientation and the audio's start (:class:`MediaInfo`).
    Raises :class:`MediaError` for missing/empty/unreadable files.
    """
    path = Path(path)
    container = open_input(path)
    try:
        size = path.stat().st_size
        v = container.streams.video[0] if container.streams.video else None
        a = container.streams.audio[0] if container.streams.audio else None
        if v is None and a is None:
            raise MediaError(path, "no audio or video stream", "not_media")
        audio_sr = audio_ch = audio_dur = None
        if a is not None:
            audio_sr = int(a.codec_context.sample_rate or a.rate or 0) or None
            audio_ch = int(a.codec_context.channels or 0) or None
            if a.duration is not None and a.time_base is not None:
                audio_dur = float(a.duration * a.time_base)
            elif container.duration is not None:
                audio_dur = container.duration / 1_000_000
        if v is None:
            return MediaInfo(path, False, True, 0, 0, 0.0, 0, float(audio_dur or 0.0), audio_sr,
                             audio_ch, False, audio_duration_s=audio_dur, audio_codec=a.codec_context.name,
                             size_bytes=size, audio_start_s=first_audio_time(path))

        tb = v.time_base
        declared_n = int(v.frames or 0) or None
        declared_dur = None
        if v.duration is not None and tb is not None:
            declared_dur = float(v.duration * tb)
        elif container.duration is not None:
            declared_dur = container.duration / 1_000_000
        avg = float(v.average_rate) if v.average_rate else 0.0

        n_frames = declared_n or 0
        duration = declared_dur or (n_frames / avg if avg else 0.0)
        vfr = False
        truncated = False
        fps = avg
        if count_frames:
            pts: list[int] = []
            durs: list[int] = []
            n = 0
            av = av_module()
            try:
                for packet in container.demux(v):
                    if not packet.size:
                        continue
                    n += 1
                    if packet.pts is not None:
                        pts.append(int(packet.pts))
                        durs.append(int(packet.duration or 0))
            except av.error.FFmpegError:
                truncated = True
            n_frames = n
            if declared_n and n < declared_n:
                truncated = True
            if len(pts) == n and n > 0 and tb is not None:
                order = np.argsort(pts, kind="stable")
                p = np.asarray(pts, dtype=np.int64)[order]
                d = np.asarray(durs, dtype=np.int64)[order]
                steps = np.diff(p)
                median = float(np.median(steps)) if steps.size else 0.0
                last = int(d[-1]) if d[-1] > 0 else (median or (1 / avg / float(tb) if avg else 0))
                duration = float((p[-1] - p[0] + last) * tb)
                if steps.size and median > 0:
                    tick_tol = max(1.5, 0.1 * median)
                    vfr = bool(np.max(np.abs(steps - median)) > tick_tol)
            elif avg:
                duration = n / avg
            if vfr or not fps:
                fps = n / duration if duration > 0 else 0.0
            if declared_dur and duration < declared_dur - 1.5 / max(fps, 1.0):
                truncated = True
        coded = (int(v.codec_context.width), int(v.codec_context.height))
        video_start, orientation = first_video_frame(path)
        width, height = (coded[1], coded[0]) if orientation.transpose else coded
        audio_start = None
        if a is not None:
            first_audio = first_audio_time(path)
            if first_audio is not None:
                audio_start = first_audio - (video_start or 0.0)
        return MediaInfo(
            path=path, has_video=True, has_audio=a is not None,
            width=width, height=height, fps=float(fps),
            n_frames=int(n_frames), duration_s=float(duration), audio_sample_rate=audio_sr,
            audio_channels=audio_ch, vfr=vfr, audio_duration_s=audio_dur,
            video_codec=v.codec_context.name, audio_codec=a.codec_context.name if a is not None else None,
            declared_n_frames=declared_n, declared_duration_s=declared_dur, truncated=truncated,
            size_bytes=size, coded_width=coded[0], coded_height=coded[1], rotation=orientation.rotation,
            mirrored=orientation.mirrored, audio_start_s=audio_start,
        )
    finally:
        container.close()
