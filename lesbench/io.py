"""Video and audio I/O on PyAV (FFmpeg in-process; no subprocess, no torchvision).

Reading
    :func:`probe` describes a file (streams, size, fps, duration, VFR, truncation).
    :func:`iter_frames` streams RGB frames **resampled by timestamp** to a target frame rate:
    output frame ``k`` has ``t = k / fps`` seconds and shows the source frame on screen at that
    time (the last source frame whose timestamp is ``<= t``, within 0.1 ms). Times are counted
    from the first video frame. The number of output frames is ``round(duration * fps)`` where
    ``duration`` runs from the first frame's timestamp to the end of the last frame (its
    timestamp plus its duration), so 30 -> 25 fps keeps the clip's duration and variable
    frame-rate (VFR) sources come out at a constant rate.
    :func:`read_frames` is the explicit in-memory variant, ``(T, H, W, 3) uint8``.
    Frames come out **as displayed**: a display matrix (a phone's ``rotate`` tag) is applied,
    so a video recorded rotated is read upright and :func:`probe` reports the displayed size.
    :func:`read_audio_for_video` returns a clip's audio **on the video's timeline**: sample 0 is
    heard when the video's first frame is shown (container start offsets, edit lists and
    priming honoured; see its docstring and docs/media-timing.md). Use it wherever audio is
    read next to video. :func:`read_audio` decodes any audio stream PyAV reads (.m4a AAC, .wav,
    the audio track of an .mp4, ...) to mono float32 in [-1, 1] at 16 kHz (channels averaged),
    counting from the stream's first decoded sample: for audio used on its own.

Writing (atomic: a temporary file in the destination folder, then ``os.replace``)
    :func:`write_video`: H.264 (libx264, yuv420p, ``crf``) in .mp4, optionally with a mono AAC
    track muxed in. :func:`write_audio`: .m4a (AAC) or .wav (16-bit PCM) by suffix.
    With the default ``threads=1`` the bytes are deterministic: the same frames and audio give
    the same file on the same FFmpeg/x264 build (x264's output depends on its thread count, so
    a thread count chosen from the CPU count would not be reproducible across machines; and for
    videos under 128 px a side x264's mb-tree is switched off, see ``_MBTREE_MIN_SIDE``).

Broken input raises :class:`lesbench.errors.MediaError` with ``kind`` one of ``missing``,
``empty``, ``not_media``, ``no_video_stream``, ``no_audio_stream``, ``truncated``,
``decode_error``. A truncated or partly corrupt file is decoded as far as it can be: packets that
fail to decode are skipped (and logged), and only a file that yields no frame at all raises
(``truncated`` when the container declares more packets than it holds, or when an MP4's index is
missing, else ``decode_error``). :attr:`MediaInfo.truncated` tells callers that want to flag such
clips.

Performance (docs/design.md, performance): colour conversion and resizing run in one ``to_ndarray`` call with an
explicit thread count (PyAV's automatic count costs up to 50% when one process per core already
fills the machine); the decoder is single-threaded unless ``threads`` says otherwise; source
frames that no output frame shows are decoded but never converted.
"""

from __future__ import annotations

import logging
import os
import struct
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lesbench.errors import MediaError

if TYPE_CHECKING:  # pragma: no cover
    import av

__all__ = [
    "Frame",
    "MediaInfo",
    "probe",
    "iter_frames",
    "read_frames",
    "read_audio",
    "read_audio_for_video",
    "write_video",
    "write_audio",
    "AUDIO_SUFFIXES",
]

log = logging.getLogger(__name__)

#: Tolerance (seconds) when comparing an output time with a source timestamp. Far below any
#: frame interval, far above float rounding of timestamps.
_TIME_EPS = 1e-4

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


@dataclass(frozen=True)
class Frame:
    """One output video frame.

    ``index``: output frame number (0-based); ``t``: its time in seconds (``index / fps`` when
    resampling, else the source timestamp relative to the first frame); ``image``: ``(H, W, 3)``
    uint8 RGB; ``source_index``: which decoded source frame (0-based, presentation order) it shows.
    """

    index: int
    t: float
    image: np.ndarray
    source_index: int = -1


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


# --------------------------------------------------------------------------------- opening


def _av() -> Any:
    import av

    return av


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "file not found", "missing")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file", "not_media")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)", "empty")


def _looks_like_isobmff(path: Path) -> bool:
    """True when the file starts with an ISO-BMFF ``ftyp`` box (mp4, m4a, mov)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] == b"ftyp"


def _open(path: Path) -> "av.container.InputContainer":
    """Open ``path`` for reading or raise :class:`MediaError` saying why not."""
    av = _av()
    _check_file(path)
    try:
        return av.open(str(path), mode="r")
    except FileNotFoundError as exc:  # raced with a deletion
        raise MediaError(path, "file not found", "missing") from exc
    except av.error.InvalidDataError as exc:
        if _looks_like_isobmff(path):
            # An MP4 whose index (moov box) is missing: cut off before the end of the file.
            raise MediaError(
                path, "MP4 file has no index (moov box): truncated or never finished writing",
                "truncated") from exc
        raise MediaError(path, "not a media file FFmpeg can read (invalid data)", "not_media") from exc
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"cannot open: {exc}", "not_media") from exc
    except OSError as exc:
        raise MediaError(path, f"cannot read: {exc}", "missing") from exc


def _configure_decoder(stream: Any, threads: int) -> None:
    ctx = stream.codec_context
    if threads == 1:
        ctx.thread_type = "NONE"
        ctx.thread_count = 1
    else:
        ctx.thread_type = "AUTO"
        ctx.thread_count = max(0, int(threads))  # 0: FFmpeg picks from the CPU count


def _decode_packets(container: Any, stream: Any, path: Path, counts: dict[str, int]) -> Iterator[Any]:
    """Decoded frames of ``stream`` in presentation order, skipping packets that fail.

    ``counts`` receives ``packets``, ``bad_packets`` and ``frames`` as decoding proceeds.
    A demuxer error (file cut mid-packet) ends the stream like an end of file.
    """
    av = _av()
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:
            counts["bad_packets"] += 1
            log.warning("%s: demuxing stopped early (%s)", path, exc)
            break
        if packet.size:
            counts["packets"] += 1
            if packet.pts is not None:
                end = int(packet.pts) + max(0, int(packet.duration or 0))
                counts["end_ticks"] = max(counts.get("end_ticks", end), end)
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            counts["bad_packets"] += 1
            if counts["bad_packets"] == 1:
                log.warning("%s: skipping undecodable data (%s)", path, exc)
            continue
        for frame in frames:
            counts["frames"] += 1
            yield frame


def _no_frames_error(path: Path, stream: Any, counts: dict[str, int], what: str) -> MediaError:
    declared = int(stream.frames or 0)
    if declared and counts["packets"] < declared:
        return MediaError(
            path, f"truncated: no {what} could be decoded ({counts['packets']} of {declared} "
            "declared packets present)", "truncated")
    if counts["bad_packets"]:
        return MediaError(path, f"no {what} could be decoded ({counts['bad_packets']} corrupt "
                          "packets)", "decode_error")
    return MediaError(path, f"{what} stream holds no data", "truncated" if declared else "decode_error")


# --------------------------------------------------------------------------------- orientation


@dataclass(frozen=True)
class _Orientation:
    """How to turn a decoded picture ``(H, W, C)`` into the displayed one.

    Applied in this order: ``transpose`` (swap rows and columns), then flip the rows
    (``flip_rows``: upside down), then flip the columns (``flip_cols``: left-right).
    ``rotation`` / ``mirrored`` describe it for people (see :class:`MediaInfo`).
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    rotation: int = 0
    mirrored: bool = False

    @property
    def identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def apply(self, img: np.ndarray) -> np.ndarray:
        if self.identity:
            return img
        if self.transpose:
            img = img.swapaxes(0, 1)
        if self.flip_rows:
            img = img[::-1]
        if self.flip_cols:
            img = img[:, ::-1]
        return np.ascontiguousarray(img)

    def stored_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """A displayed ``(width, height)`` -> the same picture's size before turning it."""
        return (size[1], size[0]) if self.transpose else size


_UPRIGHT = _Orientation()
#: A small asymmetric grid: its image under a transform names the transform.
_PROBE_GRID = np.arange(6).reshape(2, 3)


def _orientation(frame: Any, path: Path) -> _Orientation:
    """The display transform a decoded frame's display matrix asks for.

    The matrix (FFmpeg's DISPLAYMATRIX side data: 3x3 int32, ``a b u / c d v / x y w``, the 2x2
    part in 16.16 fixed point) maps a stored pixel ``(x, y)`` to the displayed ``(a*x + c*y,
    b*x + d*y)`` up to a translation. For the eight upright orientations (rotations by
    multiples of 90 degrees, optionally mirrored) that 2x2 part is a signed permutation, turned
    here into a transpose plus flips; this reproduces what the ``ffmpeg`` command line's
    autorotation displays (checked on all eight in the tests). Any other angle is rounded to
    the nearest multiple of 90 degrees, with a warning.
    """
    matrix = None
    for sd in frame.side_data:
        if "DISPLAYMATRIX" in str(sd.type):
            raw = bytes(sd)
            if len(raw) >= 36:
                matrix = struct.unpack("<9i", raw[:36])
            break
    if matrix is None:
        return _UPRIGHT
    a, b, c, d = (v / 65536.0 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    ra, rb, rc, rd = (int(round(v)) for v in (a, b, c, d))
    if not (abs(a - ra) < 0.05 and abs(b - rb) < 0.05 and abs(c - rc) < 0.05 and abs(d - rd) < 0.05
            and abs(ra * rd - rb * rc) == 1 and (ra == 0) == (rd == 0) and (rb == 0) == (rc == 0)):
        # Not a multiple of 90 degrees: turn to the nearest one (frames stay rectangular).
        rotation = int(round(float(frame.rotation or 0.0)))
        k = int(round(rotation / 90.0)) % 4
        log.warning("%s: display rotation %d degrees is not a multiple of 90; turning by %d",
                    path, rotation, 90 * k)
        ra, rb, rc, rd = ((1, 0, 0, 1), (0, -1, 1, 0), (-1, 0, 0, -1), (0, 1, -1, 0))[k]
    transpose = ra == 0
    flip_rows = (rb if transpose else rd) < 0
    flip_cols = (rc if transpose else ra) < 0
    # Describe it as "turn counter-clockwise by rotation, then mirror left-right if mirrored"
    # (FFmpeg's own angle for a mirrored matrix depends on how the flip was written).
    turned = _Orientation(transpose, flip_rows, flip_cols).apply(_PROBE_GRID)
    for k in range(4):
        for mirror in (False, True):
            candidate = np.rot90(_PROBE_GRID, k)
            if mirror:
                candidate = candidate[:, ::-1]
            if candidate.shape == turned.shape and np.array_equal(candidate, turned):
                return _Orientation(transpose, flip_rows, flip_cols, 90 * k, mirror)
    raise AssertionError("unreachable: every signed permutation is one of the eight")


# --------------------------------------------------------------------------------- timeline


def _first_video_frame(path: Path) -> tuple[float | None, _Orientation]:
    """(time of the first displayed frame in seconds on the container's timeline, orientation).

    Decodes until the first frame comes out (one frame; edit lists and discarded leading
    frames are already applied by FFmpeg). ``(None, upright)`` when nothing decodes.
    """
    container = _open(path)
    try:
        if not container.streams.video:
            raise MediaError(path, "no video stream", "no_video_stream")
        stream = container.streams.video[0]
        _configure_decoder(stream, 1)
        counts = {"packets": 0, "bad_packets": 0, "frames": 0}
        for vf in _decode_packets(container, stream, path, counts):
            start = float(vf.pts * stream.time_base) if vf.pts is not None and stream.time_base else 0.0
            return start, _orientation(vf, path)
        return None, _UPRIGHT
    finally:
        container.close()


def _first_audio_time(path: Path) -> float | None:
    """When the first decoded audio sample of ``path`` plays, in seconds on its own timeline.

    Priming samples the decoder drops (an edit list or skip-samples side data says so) are not
    counted; ones it keeps are. None when the file has no decodable audio or no timestamps.
    """
    container = _open(path)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        stream.codec_context.thread_type = "NONE"
        counts = {"packets": 0, "bad_packets": 0, "frames": 0}
        for frame in _decode_packets(container, stream, path, counts):
            if frame.pts is None or stream.time_base is None:
                return None
            return float(frame.pts * stream.time_base)
        return None
    finally:
        container.close()


# --------------------------------------------------------------------------------- probe


def probe(path: str | os.PathLike[str], count_frames: bool = True) -> MediaInfo:
    """Describe the streams of a media file.

    With ``count_frames`` (default) the video packets are demuxed (not decoded: fast, reads the
    file once) to get the true frame count, duration, VFR flag and truncation; without it the
    container header gives them. Either way the first video frame and the first audio packet
    are decoded, for the orientation and the audio's start (:class:`MediaInfo`).
    Raises :class:`MediaError` for missing/empty/unreadable files.
    """
    path = Path(path)
    container = _open(path)
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
                             size_bytes=size, audio_start_s=_first_audio_time(path))

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
            av = _av()
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
        video_start, orientation = _first_video_frame(path)
        width, height = (coded[1], coded[0]) if orientation.transpose else coded
        audio_start = None
        if a is not None:
            first_audio = _first_audio_time(path)
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


# --------------------------------------------------------------------------------- video reading


def iter_frames(
    path: str | os.PathLike[str],
    fps: float | None = 25.0,
    size: tuple[int, int] | None = None,
    *,
    threads: int = 1,
    interpolation: str = "FAST_BILINEAR",
) -> Iterator[Frame]:
    """Stream the frames of ``path`` as RGB, resampled by timestamp to ``fps``.

    ``fps``: target frames per second (default 25); ``None`` yields every decoded frame as is,
    with ``t`` its own timestamp relative to the first frame. ``size``: ``(width, height)`` to
    resize to (inside the colour conversion, nearly free); ``None`` keeps the source size.
    ``threads``: decoder and conversion threads; 1 (default) suits one process per core,
    0 lets FFmpeg choose. ``interpolation``: swscale algorithm name for resizing
    (``FAST_BILINEAR``, ``BILINEAR``, ``AREA``, ``BICUBIC``, ...).

    Frames are turned upright as the video's display matrix (rotation metadata) says, like
    FFmpeg's command line does, so ``size`` and the yielded images are in the displayed
    orientation (:attr:`MediaInfo.width`/``height``).

    The file is opened and checked when this is called (so a broken file raises here); frames
    are decoded lazily while iterating. Each yielded image is a fresh array the caller may
    modify (a source frame shown twice when upsampling is converted twice). Raises :class:`MediaError` (``no_video_stream``, ``truncated``, ...).
    """
    path = Path(path)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive or None, got {fps!r}")
    if size is not None:
        w, h = (int(size[0]), int(size[1]))
        if w <= 0 or h <= 0:
            raise ValueError(f"size must be (width, height) > 0, got {size!r}")
        size = (w, h)
    container = _open(path)
    if not container.streams.video:
        container.close()
        raise MediaError(path, "no video stream", "no_video_stream")
    stream = container.streams.video[0]
    _configure_decoder(stream, threads)
    return _iter_frames(container, stream, path, fps, size, threads, interpolation)


def _iter_frames(container: Any, stream: Any, path: Path, fps: float | None,
                 size: tuple[int, int] | None, threads: int, interpolation: str) -> Iterator[Frame]:
    conv: dict[str, Any] = {"format": "rgb24", "threads": max(0, int(threads))}
    orientation: _Orientation | None = None  # read from the first decoded frame
    tb = stream.time_base
    nominal = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
    counts = {"packets": 0, "bad_packets": 0, "frames": 0}

    try:
        origin: float | None = None
        prev = None  # the source VideoFrame on screen before the one just decoded
        prev_img: np.ndarray | None = None  # prev converted early, not yet handed out
        prev_s = 0.0
        prev_i = -1
        prev_dur: float | None = None
        src_i = -1
        k = 0
        steps: list[float] = []

        def convert(vf: Any) -> np.ndarray:
            return orientation.apply(vf.to_ndarray(**conv))

        def shown_image() -> np.ndarray:
            # The early conversion is handed out once; a repeat (upsampling) converts again,
            # so every image is the caller's own array.
            nonlocal prev_img
            img, prev_img = prev_img, None
            return img if img is not None else convert(prev)

        for vf in _decode_packets(container, stream, path, counts):
            if orientation is None:
                orientation = _orientation(vf, path)
                if size is not None:  # the caller's size is the displayed one
                    w, h = orientation.stored_size(size)
                    conv.update(width=w, height=h, interpolation=interpolation)
            if vf.pts is not None and tb is not None:
                s_abs = float(vf.pts * tb)
            else:  # no timestamps (raw elementary stream): assume the nominal rate
                s_abs = (prev_s + (origin or 0.0) + nominal) if prev is not None else 0.0
            if origin is None:
                origin = s_abs
            s = s_abs - origin
            if prev is not None and s <= prev_s + 1e-9:
                continue  # duplicate or out-of-order timestamp: keep the first frame shown
            src_i += 1
            if prev is not None:
                steps.append(s - prev_s)
            if fps is None:
                yield Frame(src_i, s, convert(vf), src_i)
            else:
                while prev is not None and k / fps + _TIME_EPS < s:
                    yield Frame(k, k / fps, shown_image(), prev_i)
                    k += 1
                # Convert now, while the decoded picture is still in the CPU cache (30% faster
                # on 1080p than converting after the next decode), when an output time is
                # expected to fall on this frame; source frames no output shows are skipped.
                step = steps[-1] if steps else nominal
                prev_img = convert(vf) if k / fps < s + step - _TIME_EPS else None
            prev, prev_s, prev_i = vf, s, src_i
            prev_dur = float(vf.duration * tb) if (vf.duration and tb is not None) else None

        if prev is None:
            raise _no_frames_error(path, stream, counts, "video frame")
        if counts["bad_packets"]:
            log.warning("%s: %d packets could not be decoded; read %d frames (file truncated or "
                        "corrupt)", path, counts["bad_packets"], counts["frames"])
        if fps is not None:
            if prev_dur is None or prev_dur <= 0:
                prev_dur = float(np.median(steps)) if steps else nominal
            end_s = prev_s + prev_dur
            if "end_ticks" in counts and tb is not None and origin is not None:
                # Packets present but undecodable at the end still take their time on screen
                # (shown as the last good frame), so a damaged tail does not shorten the clip.
                end_s = max(end_s, float(counts["end_ticks"] * tb) - origin)
            n_out = int(round(end_s * fps))
            while k < n_out:
                yield Frame(k, k / fps, shown_image(), prev_i)
                k += 1
    finally:
        container.close()


def read_frames(
    path: str | os.PathLike[str],
    fps: float | None = 25.0,
    size: tuple[int, int] | None = None,
    *,
    threads: int = 1,
    interpolation: str = "FAST_BILINEAR",
) -> np.ndarray:
    """All frames of ``path`` in memory: ``(T, H, W, 3)`` uint8 RGB (see :func:`iter_frames`)."""
    frames = [f.image for f in iter_frames(path, fps, size, threads=threads, interpolation=interpolation)]
    return np.stack(frames, axis=0)


# --------------------------------------------------------------------------------- audio reading


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
        video_start, _ = _first_video_frame(video_path)
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
    av = _av()
    container = _open(path)
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

        for frame in _decode_packets(container, stream, path, counts):
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
            raise _no_frames_error(path, stream, counts, "audio")
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


# --------------------------------------------------------------------------------- writing


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


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
    av = _av()
    path = Path(path)
    rate = _as_fraction(fps)
    samples = _check_audio(audio) if audio is not None else None
    sr = int(sr)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
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
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
    av = _av()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise ValueError(f"{path}: unsupported audio suffix {suffix!r}; use one of {sorted(AUDIO_SUFFIXES)}")
    fmt, codec = AUDIO_SUFFIXES[suffix]
    a = _check_audio(samples)
    if a.size == 0:
        raise ValueError(f"{path}: no audio samples to write")
    sr = int(sr)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
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
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
