"""distinct_frames: each distinct frame once, and the map back to every frame."""

from __future__ import annotations

import numpy as np

from lesbench.metrics.video import distinct_frames


def test_distinct_frames_maps_back_exactly():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    order = [0, 1, 0, 2, 2, 3, 1, 0]
    frames = base[order]
    first, inverse = distinct_frames(frames)
    assert first.tolist() == [0, 1, 3, 5]  # first occurrences, in order
    assert inverse.tolist() == [0, 1, 0, 2, 2, 3, 1, 0]
    np.testing.assert_array_equal(frames[first][inverse], frames)


def test_one_pixel_apart_is_distinct():
    a = np.zeros((6, 6, 3), np.uint8)
    b = a.copy()
    b[5, 5, 2] = 1
    first, inverse = distinct_frames(np.stack([a, b, a]))
    assert first.tolist() == [0, 1] and inverse.tolist() == [0, 1, 0]


def test_empty_and_all_distinct():
    first, inverse = distinct_frames(np.zeros((0, 2, 2, 3), np.uint8))
    assert first.size == 0 and inverse.size == 0
    frames = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    first, inverse = distinct_frames(frames)
    assert first.tolist() == list(range(5)) and inverse.tolist() == list(range(5))
