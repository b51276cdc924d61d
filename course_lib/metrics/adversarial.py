"""Fooling a classifier on purpose: why a metric computed by one network can be gamed.

:func:`targeted_perturbation` adds a small, bounded perturbation to each clip so that the
classifier labels it as a chosen class (projected gradient descent with sign steps, Madry et
al. 2018, on the waveform). Give many copies of **one** loop a different target class each and
the Inception Score computed with that classifier climbs toward the number of classes, while
the clips still sound like the one loop plus a faint hiss: IS measures what the classifier
says, not what a listener hears. Lesson 06 uses it as the "fool IS" exercise.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def targeted_perturbation(classifier: torch.nn.Module, audio: torch.Tensor | np.ndarray,
                          targets: torch.Tensor | np.ndarray, eps: float = 0.01, steps: int = 20,
                          step_size: float | None = None) -> torch.Tensor:
    """Clips ``(n, samples)`` moved toward the classes ``targets`` ``(n,)`` within ``|delta| <= eps``.

    Each step lowers the cross-entropy of ``classifier(audio + delta)`` for the target classes by a
    sign step of ``step_size`` (default ``eps / 8``) on every sample, then clips ``delta`` to
    ``[-eps, eps]`` and the result to ``[-1, 1]``. ``classifier`` maps audio at its own ``sr`` to
    logits ``(n, C)`` (a course classifier); its weights are not changed. Deterministic (no random
    start). Returns float32 audio ``(n, samples)`` on the CPU.
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"audio must be (n >= 1, samples), got shape {tuple(x.shape)}")
    t = torch.as_tensor(targets).long().reshape(-1)
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"targets must hold one class per clip ({x.shape[0]}), got {t.shape[0]}")
    if not eps > 0 or steps < 1:
        raise ValueError(f"need eps > 0 and steps >= 1, got eps={eps}, steps={steps}")
    step = eps / 8 if step_size is None else float(step_size)
    if not step > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    dev = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    x, t = x.to(dev), t.to(dev)
    delta = torch.zeros_like(x, requires_grad=True)
    try:
        for _ in range(steps):
            loss = F.cross_entropy(classifier((x + delta).clamp(-1.0, 1.0)), t)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta -= step * grad.sign()
                delta.clamp_(-eps, eps)
    finally:
        classifier.train(was_training)
    return (x + delta.detach()).clamp(-1.0, 1.0).cpu()
