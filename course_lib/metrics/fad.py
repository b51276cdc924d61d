"""Fréchet Audio Distance (Kilgour et al., 2019): embed -> Gaussian statistics -> Fréchet distance.

Works with any embedder (:mod:`course_lib.metrics.embeddings`): VGGish for the standard FAD,
or the course's loop classifier. Reference statistics can be computed once and cached as
``.npz`` (:class:`~course_lib.metrics.frechet.GaussianStats`).

FAD is biased upwards for small sets (the bias falls like ``1/n``). :func:`fad_infinity`
removes it as Chong & Forsyth (2020) do for FID: evaluate on subsets of several sizes, fit
``FAD(n) = a + b / n`` and report the intercept ``a``. :func:`fad_versus_size` draws that
curve with several subsets per size (mean and spread) for plotting. :func:`fad_bootstrap`
gives a percentile confidence interval by resampling the generated embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from course_lib import DEFAULT_SR
from course_lib.metrics.embeddings import Embedder, embed_audio
from course_lib.metrics.frechet import ArrayLike, GaussianStats, _as_float64, gaussian_stats


def _stats(x: GaussianStats | ArrayLike) -> GaussianStats:
    return x if isinstance(x, GaussianStats) else gaussian_stats(x)


def fad_from_embeddings(reference: GaussianStats | ArrayLike, generated: GaussianStats | ArrayLike) -> float:
    """FAD between reference and generated embeddings ``(n, d)`` / ``(m, d)`` (or their statistics)."""
    return _stats(reference).distance(_stats(generated))


def fad(reference: GaussianStats | torch.Tensor, generated: torch.Tensor, embedder: Embedder,
        sr: int = DEFAULT_SR, batch_size: int = 64, device: torch.device | str | None = None) -> float:
    """FAD of generated clips ``(m, samples)`` against reference clips ``(n, samples)`` or cached statistics.

    Both sets are embedded with ``embedder`` in batches on ``device``; ``sr`` is the clips' rate in Hz.
    """
    if not isinstance(reference, GaussianStats):
        reference = gaussian_stats(embed_audio(reference, embedder, sr, batch_size, device))
    gen = embed_audio(generated, embedder, sr, batch_size, device)
    return fad_from_embeddings(reference, gen)


@dataclass
class FadInfinity:
    """Extrapolated FAD at infinite sample size: ``value`` (intercept), ``slope`` b, and the fitted points."""

    value: float
    slope: float
    sizes: np.ndarray
    fads: np.ndarray


def fad_infinity(reference: GaussianStats | ArrayLike, generated: ArrayLike, min_size: int | None = None,
                 n_points: int = 15, seed: int = 0) -> FadInfinity:
    """FAD-infinity: FAD on random subsets of ``n_points`` sizes from ``min_size`` to ``m``, linear fit in ``1/n``.

    ``generated`` is embeddings ``(m, d)``; ``min_size`` defaults to ``max(d + 1, m // 5)`` capped below ``m``.
    """
    ref = _stats(reference)
    gen = _as_float64(generated, "generated embeddings")
    if gen.ndim != 2 or gen.shape[1] != ref.dim:
        raise ValueError(f"generated embeddings must be (m, {ref.dim}), got shape {gen.shape}")
    m = gen.shape[0]
    if min_size is None:
        min_size = min(max(ref.dim + 1, m // 5), m - 1)
    if not 2 <= min_size < m or n_points < 2:
        raise ValueError(f"need 2 <= min_size < m={m} and n_points >= 2; got min_size={min_size}, n_points={n_points}")
    rng = np.random.default_rng(seed)
    sizes = np.unique(np.linspace(min_size, m, n_points).astype(int))
    fads = np.array([ref.distance(gaussian_stats(gen[rng.choice(m, size=n, replace=False)])) for n in sizes])
    slope, intercept = np.polyfit(1.0 / sizes, fads, 1)
    return FadInfinity(value=float(intercept), slope=float(slope), sizes=sizes, fads=fads)


@dataclass
class FadCurve:
    """FAD against the number of generated clips: ``mean`` and ``std`` ``(k,)`` over ``repeats`` random
    subsets of each size in ``sizes`` ``(k,)``, and the fit ``FAD(n) = fad_inf + slope / n`` to the means
    of the sizes ``n >= fit_from``."""

    sizes: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    repeats: int
    fad_inf: float
    slope: float
    fit_from: int = 2

    def fit(self, n: np.ndarray | float) -> np.ndarray:
        """The fitted curve ``fad_inf + slope / n`` at clip counts ``n``."""
        return self.fad_inf + self.slope / np.asarray(n, dtype=np.float64)


def fad_versus_size(reference: GaussianStats | ArrayLike, generated: ArrayLike, sizes: Sequence[int],
                    repeats: int = 5, seed: int = 0, fit_from: int = 2) -> FadCurve:
    """FAD of random subsets of ``generated`` embeddings ``(m, d)`` against fixed reference statistics.

    For each ``n`` in ``sizes`` (clip counts, ``2 <= n <= m``), ``repeats`` subsets of ``n`` clips are drawn
    without replacement (seeded) and their FADs averaged. A least-squares line in ``1 / n`` through the
    means of the sizes ``n >= fit_from`` gives FAD-infinity (Chong & Forsyth's extrapolation, as
    :func:`fad_infinity`, with repeats) and the size of the small-sample bias (``slope``: FAD units times
    clips). The ``1 / n`` law holds for large ``n``; far below the embedding dimension the covariance is
    singular and the curve bends, so fit from a few dozen clips up. The full set (``n = m``) has one subset
    only, so its ``std`` is 0. At least two distinct sizes ``>= fit_from`` are needed for the fit.
    """
    ref = _stats(reference)
    gen = _as_float64(generated, "generated embeddings")
    if gen.ndim != 2 or gen.shape[1] != ref.dim:
        raise ValueError(f"generated embeddings must be (m, {ref.dim}), got shape {gen.shape}")
    m = gen.shape[0]
    n_values = np.unique(np.asarray(list(sizes), dtype=np.int64))
    if n_values.size < 2 or n_values.min() < 2 or n_values.max() > m:
        raise ValueError(f"sizes must hold at least two distinct clip counts in [2, m={m}], got {list(sizes)}")
    fitted = n_values >= fit_from
    if fitted.sum() < 2:
        raise ValueError(f"need at least two sizes >= fit_from={fit_from} for the 1/n fit, got {n_values.tolist()}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    rng = np.random.default_rng(seed)
    means, stds = [], []
    for n in n_values:
        draws = 1 if n == m else repeats
        values = [ref.distance(gaussian_stats(gen[rng.choice(m, size=int(n), replace=False)])) for _ in range(draws)]
        means.append(float(np.mean(values)))
        stds.append(float(np.std(values)))
    slope, intercept = np.polyfit(1.0 / n_values[fitted], np.array(means)[fitted], 1)
    return FadCurve(sizes=n_values, mean=np.array(means), std=np.array(stds), repeats=int(repeats),
                    fad_inf=float(intercept), slope=float(slope), fit_from=int(fit_from))


@dataclass
class BootstrapCI:
    """Bias-corrected bootstrap interval ``[low, high]`` at level ``level``, with the bootstrap std.

    ``bias``: how much higher FAD is on a bootstrap resample than on the sample itself (resampling
    with replacement repeats clips, which looks like less diversity); the interval is shifted back by it.
    """

    low: float
    high: float
    std: float
    level: float
    n_boot: int
    bias: float = 0.0


def fad_bootstrap(reference: GaussianStats | ArrayLike, generated: ArrayLike, n_boot: int = 100,
                  level: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Bootstrap CI of FAD: resample generated embeddings ``(m, d)`` with replacement ``n_boot`` times.

    FAD is biased upwards on a resample (repeated clips shrink the covariance), so the percentile
    interval of the resampled values is shifted down by that bias (mean of the resamples minus the
    FAD of the sample itself) and clipped at 0: the interval then brackets the reported FAD.
    """
    if n_boot < 2 or not 0.0 < level < 1.0:
        raise ValueError(f"need n_boot >= 2 and 0 < level < 1, got n_boot={n_boot}, level={level}")
    ref = _stats(reference)
    gen = _as_float64(generated, "generated embeddings")
    if gen.ndim != 2 or gen.shape[1] != ref.dim or gen.shape[0] < 2:
        raise ValueError(f"generated embeddings must be (m >= 2, {ref.dim}), got shape {gen.shape}")
    rng = np.random.default_rng(seed)
    m = gen.shape[0]
    values = np.array([ref.distance(gaussian_stats(gen[rng.integers(0, m, size=m)])) for _ in range(n_boot)])
    bias = float(values.mean() - ref.distance(gaussian_stats(gen)))
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail]) - bias
    return BootstrapCI(max(0.0, float(low)), max(0.0, float(high)), float(values.std(ddof=1)), level, n_boot, bias)
