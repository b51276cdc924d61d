"""Inception Score (Salimans et al., 2016) from a classifier's class probabilities.

``IS = exp( E_x KL( p(y|x) || p(y) ) )`` where ``p(y)`` is the mean prediction over the set.
It is 1 when every clip gets the same prediction (no diversity, or no confidence) and equals
the number of classes ``C`` when predictions are one-hot and spread evenly over all classes.
As in the lecture's table (and the original code), the set is cut into ``splits`` equal parts,
IS is computed on each, and mean ± std over the parts is reported.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import xlogy


def _probabilities(probs: np.ndarray | torch.Tensor, atol: float = 1e-3) -> np.ndarray:
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().to("cpu", torch.float64).numpy()
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"probs must be (n_clips, n_classes) with n_classes >= 2, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative (pass softmax outputs, not logits)")
    sums = p.sum(axis=1)
    if np.abs(sums - 1.0).max() > atol:
        raise ValueError(f"probs rows must sum to 1 (softmax outputs); found sums in [{sums.min():.4f}, {sums.max():.4f}]")
    return p / sums[:, None]


def kl_to_marginal(probs: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-clip ``KL(p(y|x) || p(y))`` in nats, ``(n_clips,)``, with ``p(y)`` the mean of ``probs (n, C)``."""
    p = _probabilities(probs)
    marginal = p.mean(axis=0, keepdims=True)
    return (xlogy(p, p) - xlogy(p, marginal)).sum(axis=1)


def inception_score(probs: np.ndarray | torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Inception Score of class probabilities ``(n_clips, n_classes)``: ``(mean, std)`` over ``splits``.

    Clips are taken in the given order and cut into ``splits`` contiguous parts of (nearly)
    equal size; pass ``splits=1`` for a single value (std 0).
    """
    p = _probabilities(probs)
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must be in [1, n_clips={p.shape[0]}], got {splits}")
    scores = [float(np.exp(kl_to_marginal(part).mean())) for part in np.array_split(p, splits)]
    return float(np.mean(scores)), float(np.std(scores))
