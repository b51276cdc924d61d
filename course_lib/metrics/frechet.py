"""Fréchet distance between Gaussians fitted to embeddings (the maths behind FID and FAD).

For ``N(mu1, S1)`` and ``N(mu2, S2)``::

    F = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1 S2)^(1/2) )

``S1 S2`` is not symmetric, so a general matrix square root (``scipy.linalg.sqrtm``) is slow and
leaves complex round-off. Here the trace term is computed from a symmetric PSD matrix instead:
``S1 S2`` is similar to ``M = S1^(1/2) S2 S1^(1/2)`` (same eigenvalues, all >= 0), so
``tr (S1 S2)^(1/2) = sum_i sqrt(lambda_i(M))``. Both ``S1^(1/2)`` and the eigenvalues of ``M``
come from ``torch.linalg.eigh`` in float64, with tiny negative eigenvalues (round-off, or
rank-deficient covariances from fewer samples than dimensions) clipped to zero, so the result
is always a finite real number.

Reference statistics are stored as ``.npz`` files (``mu``, ``sigma``, ``n``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import torch

PathLike = Union[str, Path]
ArrayLike = Union[np.ndarray, torch.Tensor]


def _as_float64(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def psd_sqrt(matrix: ArrayLike) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix ``(d, d)`` by eigen-decomposition (float64).

    The input is symmetrised, negative eigenvalues (round-off) are clipped to 0, and the result
    ``R`` satisfies ``R @ R ~= matrix`` with ``R`` symmetric PSD.
    """
    a = _as_float64(matrix, "matrix")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"matrix must be square (d, d), got shape {a.shape}")
    t = torch.from_numpy(0.5 * (a + a.T))
    vals, vecs = torch.linalg.eigh(t)
    root = (vecs * vals.clamp_min(0.0).sqrt()) @ vecs.T
    return (0.5 * (root + root.T)).numpy()


def trace_sqrt_product(sigma1: ArrayLike, sigma2: ArrayLike, sqrt_sigma1: ArrayLike | None = None) -> float:
    """``tr((S1 S2)^(1/2))`` for symmetric PSD ``(d, d)`` covariances, via ``eigvalsh(S1^½ S2 S1^½)``.

    ``sqrt_sigma1`` may pass a precomputed :func:`psd_sqrt` of ``sigma1`` (cached reference).
    """
    s2 = _as_float64(sigma2, "sigma2")
    r = psd_sqrt(sigma1) if sqrt_sigma1 is None else _as_float64(sqrt_sigma1, "sqrt_sigma1")
    if r.shape != s2.shape:
        raise ValueError(f"covariance shapes differ: {r.shape} vs {s2.shape}")
    m = torch.from_numpy(r) @ torch.from_numpy(0.5 * (s2 + s2.T)) @ torch.from_numpy(r)
    eig = torch.linalg.eigvalsh(0.5 * (m + m.T))
    return float(eig.clamp_min(0.0).sqrt().sum())


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike,
                     sqrt_sigma1: ArrayLike | None = None) -> float:
    """Fréchet (2-Wasserstein squared) distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1, mu2: means ``(d,)``. sigma1, sigma2: covariances ``(d, d)`` (symmetric PSD; may be
            rank-deficient). sqrt_sigma1: optional cached ``psd_sqrt(sigma1)``.
    Returns:
        the distance as a Python float (>= 0 up to round-off; clipped at 0), computed in float64.
    """
    m1, m2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    s1, s2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    if m1.ndim != 1 or m1.shape != m2.shape:
        raise ValueError(f"means must be (d,) vectors of one size, got {m1.shape} and {m2.shape}")
    d = m1.shape[0]
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must be ({d}, {d}) to match the means, got {s.shape}")
    diff = m1 - m2
    tr_sqrt = trace_sqrt_product(s1, s2, sqrt_sigma1)
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)
    return max(value, 0.0)


@dataclass
class GaussianStats:
    """Mean ``mu (d,)`` and covariance ``sigma (d, d)`` (float64) of ``n`` embeddings."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    _sqrt: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.mu = _as_float64(self.mu, "mu")
        self.sigma = _as_float64(self.sigma, "sigma")
        if self.mu.ndim != 1 or self.sigma.shape != (self.mu.shape[0],) * 2:
            raise ValueError(f"stats: mu must be (d,) and sigma (d, d); got {self.mu.shape} and {self.sigma.shape}")

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        return int(self.mu.shape[0])

    def sqrt_sigma(self) -> np.ndarray:
        """Cached :func:`psd_sqrt` of ``sigma`` (reference statistics reuse it across calls)."""
        if self._sqrt is None:
            self._sqrt = psd_sqrt(self.sigma)
        return self._sqrt

    def distance(self, other: "GaussianStats") -> float:
        """Fréchet distance from these statistics to ``other`` (uses the cached square root)."""
        if other.dim != self.dim:
            raise ValueError(f"embedding dimensions differ: {self.dim} vs {other.dim}")
        return frechet_distance(self.mu, self.sigma, other.mu, other.sigma, sqrt_sigma1=self.sqrt_sigma())

    def save(self, path: PathLike) -> Path:
        """Write ``mu``, ``sigma``, ``n`` to an ``.npz`` file (parent folders created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: PathLike) -> "GaussianStats":
        """Read statistics written by :meth:`save` (``FileNotFoundError``/``ValueError`` if missing/invalid)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such statistics file")
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a readable .npz statistics file ({exc})") from exc
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not an .npz archive of statistics (a single array)")
        with data:
            missing = {"mu", "sigma"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: statistics file lacks {sorted(missing)}")
            return cls(data["mu"], data["sigma"], int(data["n"]) if "n" in data.files else 0)


def gaussian_stats(embeddings: ArrayLike) -> GaussianStats:
    """Fit a Gaussian to embeddings ``(n, d)``: sample mean and unbiased covariance (float64)."""
    e = _as_float64(embeddings, "embeddings")
    if e.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {e.shape}")
    if e.shape[0] < 2:
        raise ValueError(f"need at least 2 embeddings to estimate a covariance, got {e.shape[0]}")
    return GaussianStats(e.mean(axis=0), np.cov(e, rowvar=False).reshape(e.shape[1], e.shape[1]), e.shape[0])
