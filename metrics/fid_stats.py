"""The statistics behind FID and KID, on feature matrices: Gaussian statistics accumulated in
float64, the Frechet distance (sqrtm, as pytorch-fid; or by eigenvalues), and KID's unbiased
MMD^2 with the cubic polynomial kernel over random subsets (as torch-fidelity)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesbench.metrics.fid_features import FEATURE_DIM


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
