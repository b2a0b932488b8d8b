"""``ground-truth``: the real test clip (the reference row of every leaderboard).

It returns the prepared data set's aligned crop of the requested clip, so every metric sees
exactly the frames a method is compared against; it bounds what is reachable (sync, AU and
emotion scores of real video) and checks the metric plumbing (PSNR/SSIM against itself are at
their maximum up to re-encoding).
"""

from __future__ import annotations

import numpy as np

from lesbench.baselines.base import GenerationRequest, Method, fit_length
from lesbench.errors import LesbenchError


class GroundTruth(Method):
    name = "ground-truth"
    card = "ground-truth"

    def generate(self, request: GenerationRequest) -> np.ndarray:
        if self.data is None:
            raise LesbenchError("ground-truth: setup() was not called with the prepared data set")
        frames = self.data.read_crop(request.clip_id)
        return fit_length(frames, request.n_frames)
