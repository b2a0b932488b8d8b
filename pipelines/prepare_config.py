"""What every part of ``lesbench prepare`` shares: the per-clip settings (:class:`PrepareConfig`)
and how a failed write is told apart from bad input (:func:`writing`, :data:`WRITE_ERROR`).

Kept apart from the driver so the stages, the per-clip work, the coefficient pass and the Dask
runner can all import it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping

from lesbench import schema
from lesbench.errors import OutputWriteError, UsageError

#: Statuses whose clips have a usable face track (crops and coefficients are written).
FACE_STATUSES = ("ok", "no_audio", "silent_audio")

#: Key of a manifest row (not a column: never written) set when the clip failed because an
#: output could not be written (disk full...), so the run can say so and exit non-zero.
WRITE_ERROR = "_write_error"


@dataclass(frozen=True)
class PrepareConfig:
    """Per-clip settings; all of them (but ``device``) change the outputs, so their hash is part
    of every done-record.

    fps: output frame rate (frames are resampled by timestamp). sample_rate: audio rate, Hz.
    work_size: longest side (px) frames are decoded at when the source is larger; landmarks are
    still reported in source pixels, crops are cut from these frames. analysis_size: longest
    side the landmarker sees. crop_size: side of the aligned crops. min_face_ratio: below this
    fraction of frames with a face, a clip is ``no_face``. max_buffer_frames: longest clip held
    in memory for the crops (longer ones are decoded twice). crf, crop_preset: x264 quality and
    speed preset of the crops. ``superfast`` (measured on 256x256 demo crops at crf 18: 0.7 ms per
    frame, 1.2 kB per frame, PSNR 41.1 dB) over ``veryfast`` (1.2 ms, 0.74 kB, 40.5 dB) and
    ``medium`` (~8x slower): the encoder was the largest cost of prepare beyond decoding and
    landmarks.
    """

    fps: float = float(schema.FPS)
    sample_rate: int = schema.SAMPLE_RATE
    work_size: int | None = 640
    analysis_size: int | None = 640
    crop_size: int = schema.CROP_SIZE
    min_face_ratio: float = 0.5
    max_buffer_frames: int = 750
    crf: int = 18
    crop_preset: str = "superfast"
    device: str | None = None

    def __post_init__(self) -> None:
        # refused here, before any clip is read: a bad value would otherwise fail every clip
        # (fps 0 divides by zero) or silently mean something else (a negative size)
        def positive(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value <= 0):
                raise UsageError(f"{name} must be a positive number, got {value!r}")

        positive("fps", self.fps)
        positive("sample_rate", self.sample_rate)
        positive("work_size", self.work_size, allow_none=True)
        positive("analysis_size", self.analysis_size, allow_none=True)
        positive("crop_size", self.crop_size)
        positive("max_buffer_frames", self.max_buffer_frames)
        if not isinstance(self.min_face_ratio, (int, float)) or not 0.0 <= self.min_face_ratio <= 1.0:
            raise UsageError(f"min_face_ratio must be between 0 and 1, got {self.min_face_ratio!r}")
        if not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise UsageError(f"crf must be an integer from 0 to 51 (x264), got {self.crf!r}")
        if self.device not in (None, "cpu", "gpu"):
            raise UsageError(f"device must be 'cpu' or 'gpu', got {self.device!r}")

    def hash(self) -> str:
        d = asdict(self)
        d.pop("device")
        d.pop("max_buffer_frames")  # memory policy only: same outputs either way
        return config_hash(d)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-able mapping (16 hex digits of its sorted-key JSON's sha256)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def one_line(text: str) -> str:
    """``text`` with its whitespace runs (newlines included) made single spaces: one manifest cell."""
    return " ".join(str(text).split())


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` (no space left, permissions...) into an
    :class:`OutputWriteError` naming the file and the cause."""
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as exc:
        cause = f"{exc.strerror} (errno {exc.errno})" if exc.errno and exc.strerror else str(exc)
        raise OutputWriteError(f"{path}: could not write: {cause}") from exc
