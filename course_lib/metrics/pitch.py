"""Pitch accuracy (PA) and pitch entropy (PE) for pitch-conditioned generation (GANSynth, Engel et al. 2019).

A pitch classifier looks at each generated note. PA is the fraction whose most probable
class is the pitch the generator was asked for (in %, as in the lecture's table); PE is the
mean entropy of the classifier's per-clip distribution in nats: low when notes have a clear,
single pitch, high when the classifier is unsure (noisy or inharmonic output).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import xlogy

from course_lib.metrics.inception_score import _probabilities


def pitch_accuracy(probs: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """PA in percent: ``100 * mean(argmax probs == target)``.

    Args:
        probs: classifier probabilities ``(n_clips, n_classes)``.
        target: the conditioning pitch of each clip as a class index ``(n_clips,)`` (integers).
    """
    p = _probabilities(probs)
    t = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
    if t.shape != (p.shape[0],):
        raise ValueError(f"target must be ({p.shape[0]},) class indices, got shape {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"target must hold integer class indices, got dtype {t.dtype}")
    if t.min() < 0 or t.max() >= p.shape[1]:
        raise ValueError(f"target class indices must lie in [0, {p.shape[1] - 1}], got [{t.min()}, {t.max()}]")
    return float(100.0 * np.mean(p.argmax(axis=1) == t))


def pitch_entropy(probs: np.ndarray | torch.Tensor) -> float:
    """PE: mean over clips of the entropy ``-sum_y p(y|x) log p(y|x)`` in nats (0 = fully confident)."""
    p = _probabilities(probs)
    return float(-xlogy(p, p).sum(axis=1).mean())
