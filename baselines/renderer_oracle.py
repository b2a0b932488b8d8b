"""``renderer-oracle``: the ground-truth face geometry through lesbench's renderer.

For each test clip the per-frame landmarks of the real clip (tracked on its aligned crop)
drive the same landmark-guided warp (:mod:`lesbench.render`) that LES-Talker renders with,
starting from the protocol's source frame. The gap between this row and ``ground-truth`` is
the rendering error alone; the gap between LES-Talker and this row is the motion-prediction
error.
"""

from __future__ import annotations

import numpy as np

from lesbench.baselines.base import GenerationRequest, Method, fill_missing, fit_length
from lesbench.errors import LesbenchError
from lesbench.render import PiecewiseAffineWarp
from lesbench.render import paint_mouth_interior
from lesbench.extract.face import FaceTracker


class RendererOracle(Method):
    name = "renderer-oracle"
    card = "renderer-oracle"

    def __init__(self, seed: int = 0, device: str | None = None, paint_mouth: bool = True, **options) -> None:
        super().__init__(seed=seed, device=device, paint_mouth=paint_mouth, **options)
        self.paint_mouth = paint_mouth
        self._tracker = None

    def _landmarks(self, clip_id: str) -> np.ndarray:
        if self.data is None:
            raise LesbenchError("renderer-oracle: setup() was not called with the prepared data set")
        if self._tracker is None and (self.data.cache_dir is None or not
                                      (self.data.cache_dir / "crop_landmarks" / f"{clip_id}.npy").is_file()):
            self._tracker = FaceTracker()
        return self.data.crop_landmarks(clip_id, tracker=self._tracker)

    def generate(self, request: GenerationRequest) -> np.ndarray:

        src_track = self._landmarks(request.source_clip_id)
        src_pts = fill_missing(src_track)[0]
        dst = fit_length(fill_missing(self._landmarks(request.clip_id)), request.n_frames)
        image = np.asarray(request.source_image, np.uint8)
        warp = PiecewiseAffineWarp(src_pts, (image.shape[1], image.shape[0]))
        out = np.empty((request.n_frames, *image.shape), np.uint8)
        for t in range(request.n_frames):
            frame = warp.warp(image, dst[t])
            if self.paint_mouth:
                frame = paint_mouth_interior(frame, dst[t])
            out[t] = frame
        return out
