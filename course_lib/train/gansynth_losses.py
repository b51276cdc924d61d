"""GANSynth's losses: WGAN-GP (default) or non-saturating with R1, plus the auxiliary pitch cross-entropy.

WGAN-GP (as in GANSynth and PGGAN): ``D(fake) - D(real)`` plus a gradient penalty
``10 (||grad D(x_hat)|| - 1)^2`` on random interpolates and a drift term ``1e-3 D(real)^2``;
``loss="ns-r1"`` selects the non-saturating loss with an R1 penalty ``gamma / 2 ||grad D(real)||^2``.
Either way the auxiliary pitch loss is added with weight ``aux_weight`` (:class:`GANSynthConfig`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.gansynth import Discriminator, GANSynthConfig

__all__ = ["discriminator_loss", "generator_loss"]


def _score_grad(d: Discriminator, x: torch.Tensor, stage: int, alpha: float,
                pitch: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    score, logits = d(x, stage, alpha, pitch)
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return score, logits, grad.flatten(1)


def discriminator_loss(d: Discriminator, real: torch.Tensor, fake: torch.Tensor, pitch: torch.Tensor,
                       cfg: GANSynthConfig, stage: int, alpha: float,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """D's loss on a real batch and a (detached) fake batch, both ``(batch, 2, H, W)``; returns ``(loss, stats)``.

    ``pitch``: class indices ``(batch,)`` of the real notes, which the fakes were also generated for
    (auxiliary classifier target; on fakes too when ``cfg.aux_on_fake``).
    """
    fake = fake.detach()
    if cfg.loss == "wgan-gp":
        real_score, real_logits = d(real, stage, alpha, pitch)
        fake_score, fake_logits = d(fake, stage, alpha, pitch)
        eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device="cpu").to(real.device)
        mixed = eps * real + (1 - eps) * fake
        _, _, grad = _score_grad(d, mixed, stage, alpha, pitch)
        penalty = (grad.norm(dim=1) - 1).pow(2).mean()
        adv = fake_score.mean() - real_score.mean()
        reg = cfg.gp_weight * penalty + cfg.drift * real_score.pow(2).mean()
    else:
        real_score, real_logits, grad = _score_grad(d, real, stage, alpha, pitch)
        fake_score, fake_logits = d(fake, stage, alpha, pitch)
        adv = F.softplus(fake_score).mean() + F.softplus(-real_score).mean()
        penalty = grad.pow(2).sum(dim=1).mean()
        reg = 0.5 * cfg.r1_gamma * penalty
    aux = F.cross_entropy(real_logits, pitch)
    aux_fake = F.cross_entropy(fake_logits, pitch)
    loss = adv + reg + cfg.aux_weight * (aux + aux_fake if cfg.aux_on_fake else aux)
    stats = {"d_aux_fake": aux_fake.item(), "d_loss": loss.item(), "d_adv": adv.item(), "d_penalty": penalty.item(), "d_aux": aux.item(),
             "d_real": real_score.mean().item(), "d_fake": fake_score.mean().item(),
             "d_pitch_acc": float((real_logits.argmax(1) == pitch).float().mean()),
             "d_pitch_acc_fake": float((fake_logits.argmax(1) == pitch).float().mean())}
    return loss, stats


def generator_loss(d: Discriminator, fake: torch.Tensor, pitch: torch.Tensor, cfg: GANSynthConfig,
                   stage: int, alpha: float) -> tuple[torch.Tensor, dict]:
    """G's loss on fakes ``(batch, 2, H, W)`` generated for pitch classes ``(batch,)``; returns ``(loss, stats)``."""
    score, logits = d(fake, stage, alpha, pitch)
    adv = -score.mean() if cfg.loss == "wgan-gp" else F.softplus(-score).mean()
    aux = F.cross_entropy(logits, pitch)
    loss = adv + cfg.aux_weight * aux
    return loss, {"g_loss": loss.item(), "g_adv": adv.item(), "g_aux": aux.item()}
