"""``retrieval``: the nearest training clip's expression track, time-aligned to the audio.

For a test clip asking for emotion *e* at level *l*, the candidates are the training clips of
*e* at *l* (same emotion at any level when there are none; recorded). The nearest one is the
candidate whose speech is closest to the test clip's: a shortlist by mean MFCC distance, then
dynamic time warping (DTW) on per-frame MFCCs; the DTW path maps every test frame to a frame
of the retrieved clip. The retrieved clip's landmark motion (relative to its speaker's neutral
face, scaled by inter-ocular distance) is added to the source face's landmarks and rendered
with the same landmark-guided warp as LES-Talker.

It is the "no learning" baseline: right emotion, real human motion, but lips only as right as
the nearest other sentence allows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lesbench.baselines.base import GenerationRequest, Method, PreparedData, fill_missing, fit_length
from lesbench.errors import DatasetError, LesbenchError
from lesbench.extract.face import FaceTracker
from lesbench.render import PiecewiseAffineWarp, paint_mouth_interior

_EYES = (33, 263)  # MediaPipe outer eye corners


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """DTW between sequences ``a`` (N, D) and ``b`` (M, D) with Euclidean frame cost.

    Returns (mean cost along the path, ``idx``) where ``idx[i]`` is the first frame of ``b``
    matched to frame ``i`` of ``a`` (monotone non-decreasing, shape (N,)).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        raise LesbenchError("dtw_path: empty sequence")
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        row = cost[i - 1]
        prev = acc[i - 1]
        cur = acc[i]
        for j in range(1, m + 1):
            best = prev[j - 1]
            if prev[j] < best:
                best = prev[j]
            if cur[j - 1] < best:
                best = cur[j - 1]
            cur[j] = row[j - 1] + best
    # backtrack
    i, j = n, m
    path = [(i - 1, j - 1)]
    while i > 1 or j > 1:
        options = [(acc[i - 1, j - 1], i - 1, j - 1), (acc[i - 1, j], i - 1, j), (acc[i, j - 1], i, j - 1)]
        _, i, j = min((o for o in options if o[1] >= 1 and o[2] >= 1), key=lambda o: o[0])
        path.append((i - 1, j - 1))
    path.reverse()
    idx = np.full(n, -1, np.int64)
    for pi, pj in path:
        if idx[pi] < 0:
            idx[pi] = pj
    return float(acc[n, m] / len(path)), idx


def _interocular(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[_EYES[0]] - lm[_EYES[1]]))


class NearestClipRetrieval(Method):
    name = "retrieval"
    card = "retrieval"

    def __init__(self, seed: int = 0, device: str | None = None, shortlist: int = 5,
                 paint_mouth: bool = True, **options: Any) -> None:
        super().__init__(seed=seed, device=device, shortlist=shortlist, paint_mouth=paint_mouth, **options)
        self.shortlist = int(shortlist)
        self.paint_mouth = paint_mouth
        self._tracker = None
        self._index: dict[tuple[str, int], list[str]] = {}
        self._by_emotion: dict[str, list[str]] = {}
        self._neutral: dict[str, str] = {}
        self.choices: dict[str, dict[str, Any]] = {}

    def setup(self, data: PreparedData) -> None:
        super().setup(data)
        train = data.split("train")
        if train.empty:
            raise DatasetError(f"{data.paths['clips']}: retrieval needs training clips (split == 'train'); none found")
        for row in train.itertuples(index=False):
            key = (str(row.emotion), int(row.level))
            self._index.setdefault(key, []).append(str(row.clip_id))
            self._by_emotion.setdefault(str(row.emotion), []).append(str(row.clip_id))
            if str(row.emotion) == "neutral":
                self._neutral.setdefault(str(row.speaker), str(row.clip_id))
        for lst in (*self._index.values(), *self._by_emotion.values()):
            lst.sort()

    # ------------------------------------------------------------------ helpers
    def _landmarks(self, clip_id: str) -> np.ndarray:
        assert self.data is not None
        cached = self.data.cache_dir is not None and (
            self.data.cache_dir / "crop_landmarks" / f"{clip_id}.npy").is_file()
        if self._tracker is None and not cached:
            self._tracker = FaceTracker()
        return fill_missing(self.data.crop_landmarks(clip_id, tracker=self._tracker))

    def _features(self, clip_id: str) -> np.ndarray | None:
        assert self.data is not None
        try:
            feats = self.data.audio_features(clip_id)
        except DatasetError:
            return None
        if len(feats) == 0 or not np.isfinite(feats).all():
            return None
        return feats

    def _candidates(self, emotion: str, level: int) -> tuple[list[str], str]:
        if self._index.get((emotion, level)):
            return self._index[(emotion, level)], "exact"
        if self._by_emotion.get(emotion):
            return self._by_emotion[emotion], "same emotion, other level"
        raise LesbenchError(f"retrieval: no training clip of emotion {emotion!r}")

    def retrieve(self, request: GenerationRequest) -> tuple[str, np.ndarray, dict[str, Any]]:
        """Pick the training clip and the per-test-frame index into it."""
        assert self.data is not None
        cands, match = self._candidates(request.emotion, request.level)
        target = self._features(request.clip_id)
        if target is None:
            # no audio features: the candidate closest in length, stretched linearly
            lengths = {c: len(self._landmarks(c)) for c in cands}
            best = min(cands, key=lambda c: (abs(lengths[c] - request.n_frames), c))
            idx = np.linspace(0, lengths[best] - 1, request.n_frames).round().astype(np.int64)
            return best, idx, {"match": match, "alignment": "linear (no audio features)"}
        target = fit_length(target, request.n_frames)
        mu, sd = target.mean(0), target.std(0) + 1e-6
        feats = {c: f for c in cands if (f := self._features(c)) is not None}
        if not feats:
            raise LesbenchError(f"retrieval: no candidate of {request.emotion}/{request.level} has audio features")
        tmean = ((target - mu) / sd).mean(0)
        ranked = sorted(feats, key=lambda c: (float(np.linalg.norm(((feats[c] - mu) / sd).mean(0) - tmean)), c))
        best_cost, best, best_idx = np.inf, ranked[0], None
        for c in ranked[: max(1, self.shortlist)]:
            cost, idx = dtw_path((target - mu) / sd, (feats[c] - mu) / sd)
            if cost < best_cost - 1e-12:
                best_cost, best, best_idx = cost, c, idx
        assert best_idx is not None
        return best, best_idx, {"match": match, "alignment": "dtw", "dtw_cost": round(best_cost, 6)}

    def generate(self, request: GenerationRequest) -> np.ndarray:
        if self.data is None:
            raise LesbenchError("retrieval: setup() was not called with the prepared data set")
        clip, idx, info = self.retrieve(request)
        track = self._landmarks(clip)
        idx = np.clip(idx, 0, len(track) - 1)
        speaker = str(self.data.row(clip)["speaker"])
        ref_clip = self._neutral.get(speaker, clip)
        ref = self._landmarks(ref_clip)[0]
        src = self._landmarks(request.source_clip_id)[0]
        scale = _interocular(src) / max(_interocular(ref), 1e-6)
        self.choices[request.clip_id] = {"retrieved": clip, "neutral_reference": ref_clip, **info}
        image = np.asarray(request.source_image, np.uint8)
        warp = PiecewiseAffineWarp(src, (image.shape[1], image.shape[0]))
        out = np.empty((request.n_frames, *image.shape), np.uint8)
        for t in range(request.n_frames):
            dst = src + (track[idx[t]] - ref) * scale
            frame = warp.warp(image, dst)
            out[t] = paint_mouth_interior(frame, dst) if self.paint_mouth else frame
        return out

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["retrieved"] = dict(sorted(self.choices.items()))
        return prov

