"""Torch CPU thread count for a block of code, restored afterwards."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count.

    ``None`` (or torch not installed) leaves the thread count alone. Besides speed, a fixed
    count makes CPU results reproducible: float32 reductions split over a different number of
    threads add up in a different order, and the last bits differ.
    """
    if n is None:
        yield
        return
    try:
        import torch
    except ImportError:  # nothing to limit
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
