"""Exception types shown to users as one clear line (``lesbench.cli`` prints them without a
traceback; set ``LESBENCH_DEBUG=1`` for one)."""

from __future__ import annotations


class LesbenchError(Exception):
    """Base of every error lesbench raises on purpose for bad input or missing files."""


class MediaError(LesbenchError):
    """A video or audio file cannot be used: names the file and the problem.

    ``kind`` is a short machine-readable reason (``empty``, ``not_media``, ``no_video_stream``,
    ``no_audio_stream``, ``truncated``, ``missing``, ``decode_error``), used for manifest rows.
    """

    def __init__(self, path, problem: str, kind: str = "decode_error") -> None:
        self.path = str(path)
        self.problem = problem
        self.kind = kind
        super().__init__(f"{self.path}: {problem}")


class WeightsNotFoundError(LesbenchError):
    """A model file could not be resolved; the message lists where lesbench looked and how to
    supply the file."""


class ChecksumError(LesbenchError):
    """A model file exists but its sha256 does not match the registered one."""


class WeightsFormatError(LesbenchError):
    """A weights file exists but is not in the expected format (e.g. not a safetensors file)."""


class DatasetError(LesbenchError):
    """A data-set root or prepared data set is unusable (nothing found, wrong format version...)."""
