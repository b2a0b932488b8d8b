"""``static``: the source frame repeated for every output frame.

The floor of the benchmark: perfect identity and image quality at frame 0, no motion at all,
so it must be worst on lip sync and on everything that needs expression change.
"""

from __future__ import annotations

import numpy as np

from lesbench.baselines.base import GenerationRequest, Method


class StaticFrame(Method):
    name = "static"
    card = "static"

    def generate(self, request: GenerationRequest) -> np.ndarray:
        """(n_frames, H, W, 3) uint8: ``request.source_image`` repeated."""
        src = np.asarray(request.source_image, dtype=np.uint8)
        return np.repeat(src[None], request.n_frames, axis=0)
