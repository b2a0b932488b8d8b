"""Checking and loading files by content: the one sha256 hasher (cached per path, size and times),
the check of a digest recorded when lesbench wrote a file, and safetensors loading with a clear error."""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path

from lesbench.errors import ChecksumError, WeightsFormatError, WeightsNotFoundError

log = logging.getLogger(__name__)


def _sha256_read(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    return _sha256_read(path)


def file_sha256(path: str | os.PathLike[str], *, fresh: bool = False) -> str:
    """Hex sha256 of a file, remembered per (path, size, mtime, ctime, inode) for this process.

    ``fresh=True`` always reads the file: for checks where a stale digest would accept a changed
    file (damage need not change the size or the times: bit rot, a restored mtime, an in-place
    rewrite of the same size within the file system's time granularity).
    """
    p = Path(path).resolve()
    if fresh:
        return _sha256_read(str(p))
    st = p.stat()
    return _sha256_cached(str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def check_recorded_sha256(path: str | os.PathLike[str], expected: str | None, *, recorded_in: str | os.PathLike[str],
                          remedy: str) -> str:
    """sha256 of ``path``, checked against the one recorded when the file was written.

    For files lesbench writes itself (a run's ``model.safetensors``, the refiner, a trained
    emotion classifier): ``expected`` is the digest stored in ``recorded_in`` (the run's
    ``checkpoint.json``, ``refine.json``, the classifier's card). A different digest means the
    file was replaced or modified after training, so results computed with it would be credited
    to a model that did not produce them: :class:`~lesbench.errors.ChecksumError` names the
    file, both digests, where the expected one comes from and ``remedy`` (what to do).
    ``expected`` None (a file written before digests were recorded) returns the digest
    unchecked, with a log message.
    """
    actual = file_sha256(path, fresh=True)
    if expected is None:
        log.warning("%s: no sha256 recorded in %s (absent, or written by an older lesbench): not checked",
                    path, recorded_in)
        return actual
    if actual != str(expected).lower():
        raise ChecksumError(
            f"{path}: sha256 {actual} does not match {expected} recorded in {recorded_in} when it was "
            f"written; the file was modified or replaced since. {remedy}")
    return actual


def load_safetensors(path: str | os.PathLike[str], device: str = "cpu") -> tuple[dict, dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; a file that is not one (truncated, another
    format, empty) raises :class:`~lesbench.errors.WeightsFormatError` naming it, in one line."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own (Rust) error types
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsFormatError(f"{path}: not a readable safetensors file ({detail})") from None
    return tensors, metadata
