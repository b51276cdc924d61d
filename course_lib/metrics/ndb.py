"""Number of statistically-different bins (NDB, Richardson & Weiss 2018) and the JSD of the bins.

The real embeddings are clustered by k-means into ``K`` bins (Voronoi cells). Each generated
embedding is assigned to its nearest centre. For every bin, a two-proportion z-test asks
whether the share of real and of generated samples in it differ (two-sided, level ``alpha``);
NDB is the number of bins where they do, and NDB/K its fraction (0 = same distribution,
1 = every bin differs, e.g. mode collapse or a disjoint set). The Jensen-Shannon divergence
(natural log, in [0, ln 2]) between the two bin histograms is reported alongside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, xlogy
from sklearn.cluster import KMeans

from course_lib.metrics.frechet import ArrayLike, _as_float64


def jensen_shannon_divergence(p: ArrayLike, q: ArrayLike) -> float:
    """JSD between two histograms ``(K,)`` (normalised here) in nats: ``½KL(p||m) + ½KL(q||m)``, m = (p+q)/2."""
    p, q = _as_float64(p, "p"), _as_float64(q, "q")
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"histograms must be 1-D of one length, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("histograms must be non-negative with a positive total")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    kl = lambda a: float((xlogy(a, a) - xlogy(a, m)).sum())  # noqa: E731
    return max(0.5 * kl(p) + 0.5 * kl(q), 0.0)


def two_proportion_z_test(count1: np.ndarray, n1: int, count2: np.ndarray, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test per bin: ``(z, two-sided p-value)``, each shaped like the counts.

    ``z = (c1/n1 - c2/n2) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with pooled ``p = (c1 + c2) / (n1 + n2)``;
    bins empty in both sets get ``z = 0``, ``p = 1``.
    """
    c1, c2 = np.asarray(count1, dtype=np.float64), np.asarray(count2, dtype=np.float64)
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"sample sizes must be positive, got n1={n1}, n2={n2}")
    pooled = (c1 + c2) / (n1 + n2)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    diff = c1 / n1 - c2 / n2
    z = np.divide(diff, se, out=np.zeros_like(diff), where=se > 0)
    return z, 2.0 * ndtr(-np.abs(z))


@dataclass
class NDBResult:
    """NDB outcome: ``ndb`` bins differ out of ``k`` (``ndb_k`` = ndb / k), JSD of the histograms (nats)."""

    ndb: int
    k: int
    ndb_k: float
    jsd: float
    real_proportions: np.ndarray
    generated_proportions: np.ndarray
    different: np.ndarray  # (k,) bool: bins that differ at level alpha


class NDBBins:
    """K-means bins fitted once on real embeddings ``(n, d)``; reused to score many generated sets."""

    def __init__(self, real: ArrayLike, k: int = 50, seed: int = 0, n_init: int = 3) -> None:
        r = _as_float64(real, "real embeddings")
        if r.ndim != 2:
            raise ValueError(f"real embeddings must be (n, d), got shape {r.shape}")
        if not 2 <= k <= r.shape[0]:
            raise ValueError(f"k (number of bins) must be in [2, n_real={r.shape[0]}], got {k}")
        self.k = int(k)
        self.seed = int(seed)
        self.kmeans = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(r)
        self.real_counts = np.bincount(self.kmeans.labels_, minlength=k)
        self.n_real = int(r.shape[0])

    @property
    def centers(self) -> np.ndarray:
        """Bin centres ``(k, d)``."""
        return self.kmeans.cluster_centers_

    def assign(self, embeddings: ArrayLike) -> np.ndarray:
        """Nearest-centre bin index ``(n,)`` of embeddings ``(n, d)``."""
        e = _as_float64(embeddings, "embeddings")
        if e.ndim != 2 or e.shape[1] != self.centers.shape[1]:
            raise ValueError(f"embeddings must be (n, {self.centers.shape[1]}), got shape {e.shape}")
        d2 = (e**2).sum(1)[:, None] - 2.0 * e @ self.centers.T + (self.centers**2).sum(1)[None, :]
        return d2.argmin(axis=1)

    def score(self, generated: ArrayLike, alpha: float = 0.05) -> NDBResult:
        """NDB, NDB/K and JSD of generated embeddings ``(m, d)`` against the fitted real bins."""
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        gen_counts = np.bincount(self.assign(generated), minlength=self.k)
        m = int(gen_counts.sum())
        _, pvals = two_proportion_z_test(self.real_counts, self.n_real, gen_counts, m)
        different = pvals < alpha
        ndb = int(different.sum())
        return NDBResult(
            ndb=ndb, k=self.k, ndb_k=ndb / self.k,
            jsd=jensen_shannon_divergence(self.real_counts, gen_counts),
            real_proportions=self.real_counts / self.n_real, generated_proportions=gen_counts / m,
            different=different,
        )


def ndb_jsd(real: ArrayLike, generated: ArrayLike, k: int = 50, alpha: float = 0.05, seed: int = 0) -> NDBResult:
    """NDB/K and JSD in one call: k-means (``k`` bins, seeded) on ``real (n, d)``, then score ``generated (m, d)``."""
    return NDBBins(real, k=k, seed=seed).score(generated, alpha=alpha)
