"""Exception types shown to users as one clear line (``lesbench.cli`` prints them without a
traceback; set ``LESBENCH_DEBUG=1`` for one)."""

from __future__ import annotations


class LesbenchError(Exception):
    """Base of every error lesbench raises on purpose for bad input or missing files.
    ``exit_code``: what the CLI exits with after printing it."""

    exit_code = 2


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


class UsageError(LesbenchError, ValueError):
    """A command's arguments cannot work (an output folder that is a file, ``fps`` 0, an
    unreachable scheduler...): refused before any work. The CLI exits 2."""


class OutputWriteError(LesbenchError, OSError):
    """An output could not be written (disk full, permissions): names the file and the cause.
    The CLI exits 1: the arguments were fine, the machine was not."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after cleaning up; the message says what is kept and
    how to resume. ``exit_code``: 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)
