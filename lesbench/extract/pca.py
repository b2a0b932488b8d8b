"""Deterministic PCA pieces for the face model: the largest eigenpairs of a scatter matrix, and a
fixed sign for each component (defined only up to sign), so identical data give identical bases."""

from __future__ import annotations

import numpy as np


def sign_probe(dim: int) -> np.ndarray:
    """A fixed, generic ``(dim,)`` direction in [-0.5, 0.5) (Fibonacci hashing of the index:
    no RNG, so it is the same on every NumPy version and machine)."""
    k = np.arange(1, dim + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return (k >> np.uint64(11)).astype(np.float64) / float(1 << 53) - 0.5


def fix_signs(basis: np.ndarray) -> np.ndarray:
    """Fix each row's sign (PCA components are defined only up to sign, and LAPACK/ARPACK's
    choice can change with the BLAS thread count): the row's dot product with
    :func:`sign_probe` is made positive. A largest-|loading| rule is fragile here: the face
    mesh is left/right symmetric, so mirrored landmarks give near-equal loadings of opposite
    sign, and a rounding difference flips the choice. A generic fixed direction has no such
    ties; rows nearly orthogonal to it (|dot| < 1e-6, vanishingly rare) fall back to the
    largest-|loading| rule. Works in place on float rows; returns ``basis``."""
    if basis.size:
        dots = basis @ sign_probe(basis.shape[1])
        rows = np.arange(len(basis))
        largest = basis[rows, np.abs(basis).argmax(axis=1)]
        signs = np.where(np.abs(dots) > 1e-6, np.sign(dots), np.sign(largest))
        basis *= np.where(signs == 0, 1.0, signs)[:, None]
    return basis


def top_eigen(cov: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``k`` eigenpairs of a symmetric matrix (Lanczos for few of many: several times
    faster than a full decomposition; fixed start vector, so deterministic)."""
    dim = cov.shape[0]
    if k < dim // 4:
        from scipy.sparse.linalg import eigsh

        return eigsh(cov, k=k, which="LA", v0=np.ones(dim) / np.sqrt(dim))
    from scipy.linalg import eigh

    return eigh(cov, subset_by_index=[dim - k, dim - 1])
