"""Opening media files and decoding their packets: the layer under every reader in :mod:`lesbench.io`.

Opening checks the file and turns FFmpeg's failures into :class:`lesbench.errors.MediaError`
with a ``kind``; decoding skips packets that fail (counting them) so a damaged file is read as
far as it goes; the display matrix (rotation metadata) becomes an :class:`Orientation`; and the
first video frame's and first audio sample's times give the audio's offset on the video's timeline.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lesbench.errors import MediaError

if TYPE_CHECKING:  # pragma: no cover
    import av

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------- opening


def av_module() -> Any:
    """PyAV, imported when first needed (it loads FFmpeg)."""
    import av

    return av


def check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "file not found", "missing")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file", "not_media")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)", "empty")


def looks_like_isobmff(path: Path) -> bool:
    """True when the file starts with an ISO-BMFF ``ftyp`` box (mp4, m4a, mov)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] == b"ftyp"


def open_input(path: Path) -> "av.container.InputContainer":
    """Open ``path`` for reading or raise :class:`MediaError` saying why not."""
    av = av_module()
    check_file(path)
    try:
        return av.open(str(path), mode="r")
    except FileNotFoundError as exc:  # raced with a deletion
        raise MediaError(path, "file not found", "missing") from exc
    except av.error.InvalidDataError as exc:
        if looks_like_isobmff(path):
            # An MP4 whose index (moov box) is missing: cut off before the end of the file.
            raise MediaError(
                path, "MP4 file has no index (moov box): truncated or never finished writing",
                "truncated") from exc
        raise MediaError(path, "not a media file FFmpeg can read (invalid data)", "not_media") from exc
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"cannot open: {exc}", "not_media") from exc
    except OSError as exc:
        raise MediaError(path, f"cannot read: {exc}", "missing") from exc


def configure_decoder(stream: Any, threads: int) -> None:
    ctx = stream.codec_context
    if threads == 1:
        ctx.thread_type = "NONE"
        ctx.thread_count = 1
    else:
        ctx.thread_type = "AUTO"
        ctx.thread_count = max(0, int(threads))  # 0: FFmpeg picks from the CPU count


def decode_packets(container: Any, stream: Any, path: Path, counts: dict[str, int]) -> Iterator[Any]:
    """Decoded frames of ``stream`` in presentation order, skipping packets that fail.

    ``counts`` receives ``packets``, ``bad_packets`` and ``frames`` as decoding proceeds.
    A demuxer error (file cut mid-packet) ends the stream like an end of file.
    """
    av = av_module()
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


def no_frames_error(path: Path, stream: Any, counts: dict[str, int], what: str) -> MediaError:
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
class Orientation:
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


UPRIGHT = Orientation()
#: A small asymmetric grid: its image under a transform names the transform.
_PROBE_GRID = np.arange(6).reshape(2, 3)


def display_orientation(frame: Any, path: Path) -> Orientation:
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
        return UPRIGHT
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
    turned = Orientation(transpose, flip_rows, flip_cols).apply(_PROBE_GRID)
    for k in range(4):
        for mirror in (False, True):
            candidate = np.rot90(_PROBE_GRID, k)
            if mirror:
                candidate = candidate[:, ::-1]
            if candidate.shape == turned.shape and np.array_equal(candidate, turned):
                return Orientation(transpose, flip_rows, flip_cols, 90 * k, mirror)
    raise AssertionError("unreachable: every signed permutation is one of the eight")


# --------------------------------------------------------------------------------- timeline


def first_video_frame(path: Path) -> tuple[float | None, Orientation]:
    """(time of the first displayed frame in seconds on the container's timeline, orientation).

    Decodes until the first frame comes out (one frame; edit lists and discarded leading
    frames are already applied by FFmpeg). ``(None, upright)`` when nothing decodes.
    """
    container = open_input(path)
    try:
        if not container.streams.video:
            raise MediaError(path, "no video stream", "no_video_stream")
        stream = container.streams.video[0]
        configure_decoder(stream, 1)
        counts = {"packets": 0, "bad_packets": 0, "frames": 0}
        for vf in decode_packets(container, stream, path, counts):
            start = float(vf.pts * stream.time_base) if vf.pts is not None and stream.time_base else 0.0
            return start, display_orientation(vf, path)
        return None, UPRIGHT
    finally:
        container.close()


def first_audio_time(path: Path) -> float | None:
    """When the first decoded audio sample of ``path`` plays, in seconds on its own timeline.

    Priming samples the decoder drops (an edit list or skip-samples side data says so) are not
    counted; ones it keeps are. None when the file has no decodable audio or no timestamps.
    """
    container = open_input(path)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        stream.codec_context.thread_type = "NONE"
        counts = {"packets": 0, "bad_packets": 0, "frames": 0}
        for frame in decode_packets(container, stream, path, counts):
            if frame.pts is None or stream.time_base is None:
                return None
            return float(frame.pts * stream.time_base)
        return None
    finally:
        container.close()
