"""GANSynth's losses: WGAN-GP (default) or non-saturating with R1, plus the auxiliary pitch cross-entropy.

WGAN-GP (as in GANSynth and PGGAN): ``D(fake) - D(real)`` plus a gradient penalty
``10 (||grad D(x_hat)|| - 1)^2`` on random interpolates and a drift term ``1e-3 D(real)^2``;
``loss="ns-r1"`` selects the non-saturating loss with an R1 penalty ``gamma / 2 ||grad D(real)||^2``.
Either way the auxiliary pitch loss is added with weight ``aux_weight`` (:class:`GANSynthConfig`).

:func:`harmonic_loss` (not in the paper; off unless ``TrainConfig.harmonic_weight > 0``) is a pitch loss for G
that is no network: the share of the generated note's time-averaged power that sits on the harmonics of the
requested pitch, read from the generator's own log-magnitude channel (the idea of
:func:`course_lib.metrics.gansynth_card.harmonic_energy_db`, on the image and differentiable).
:func:`clock_motion_loss` (not in the paper; off unless ``TrainConfig.clock_weight > 0``, needs
``GANSynthConfig.pitch_clock``) is its counterpart for the second channel: how far G's loud cells drift off the
requested pitch's clock.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.gansynth import Discriminator, GANSynthConfig, class_f0, row_frequencies
from course_lib.models.gansynth_repr import ImageNormalizer

__all__ = ["discriminator_loss", "generator_loss", "harmonic_mask", "harmonic_ratio_db", "harmonic_loss",
           "clock_motion", "clock_motion_loss"]


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
                   stage: int, alpha: float, harmonic_weight: float = 0.0, normalizer: ImageNormalizer | None = None,
                   harmonic_target_db: float = 10.0, clock_weight: float = 0.0,
                   clock_target: float = 0.05) -> tuple[torch.Tensor, dict]:
    """G's loss on fakes ``(batch, 2, H, W)`` generated for pitch classes ``(batch,)``; returns ``(loss, stats)``.

    With ``harmonic_weight > 0`` :func:`harmonic_loss` (target ``harmonic_target_db``; needs the model's
    ``normalizer``) is added with that weight; with 0 (the default) nothing is computed for it. Likewise
    ``clock_weight > 0`` adds :func:`clock_motion_loss` (target ``clock_target``).
    """
    score, logits = d(fake, stage, alpha, pitch)
    adv = -score.mean() if cfg.loss == "wgan-gp" else F.softplus(-score).mean()
    aux = F.cross_entropy(logits, pitch)
    loss = adv + cfg.aux_weight * aux
    stats: dict = {}
    if harmonic_weight > 0:
        if normalizer is None:
            raise ValueError("harmonic_weight > 0 needs the model's normalizer")
        harm, stats = harmonic_loss(fake, pitch, cfg, normalizer, harmonic_target_db)
        loss = loss + harmonic_weight * harm
    if clock_weight > 0:
        if normalizer is None:
            raise ValueError("clock_weight > 0 needs the model's normalizer")
        motion, clock_stats = clock_motion_loss(fake, cfg, normalizer, clock_target)
        loss = loss + clock_weight * motion
        stats = stats | clock_stats
    return loss, {"g_loss": loss.item(), "g_adv": adv.item(), "g_aux": aux.item()} | stats


def harmonic_mask(row_hz: torch.Tensor, row_width: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
    """Which rows lie on a harmonic of each note: ``(batch, rows)`` bool, True where a row's centre ``row_hz (rows,)``
    is within one row width ``row_width`` (Hz, ``(rows,)`` or a number) of ``k f0`` for some ``k >= 1``
    (``f0 (batch,)`` Hz)."""
    f0 = f0.reshape(-1, 1)
    fc = torch.as_tensor(row_hz, dtype=f0.dtype, device=f0.device).reshape(1, -1)
    fw = torch.as_tensor(row_width, dtype=f0.dtype, device=f0.device).reshape(1, -1)
    h = fc / f0
    return ((h - h.round()).abs() * f0 < fw) & (h.round() >= 1)


def harmonic_ratio_db(log_mag: torch.Tensor, f0: torch.Tensor, row_hz: torch.Tensor,
                      row_width: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How much of each note's power sits on the harmonics of ``f0``, in dB, differentiably.

    Args:
        log_mag: raw log-magnitude images ``(batch, rows, frames)`` (natural log of |X|, any resolution).
        f0: requested fundamentals in Hz ``(batch,)``.
        row_hz / row_width: centre frequency and width in Hz of every row ``(rows,)``.

    The power ``exp(2 log_mag)`` is averaged over frames; rows whose centre lies within one row width of a
    harmonic ``k f0`` (k >= 1) are "near" (:func:`harmonic_mask`, also ``gansynth_card.harmonic_energy_db``'s). Returns
    ``(ratio_db, flat_db, resolved)``, each ``(batch,)``: ``10 log10(near power / other power)``; what a flat
    spectrum scores, ``10 log10(near rows / other rows)``; and whether the rows resolve the harmonics at all
    (width below ``f0 / 2`` and at least one row off the harmonics). Gradients flow into ``log_mag`` only.
    """
    if log_mag.ndim != 3 or log_mag.shape[1] != row_hz.shape[0]:
        raise ValueError(f"log_mag must be (batch, {row_hz.shape[0]}, frames), got {tuple(log_mag.shape)}")
    f0 = f0.reshape(-1, 1).to(log_mag.dtype)
    if f0.shape[0] != log_mag.shape[0]:
        raise ValueError(f"{f0.shape[0]} fundamentals for a batch of {log_mag.shape[0]} images")
    fw = row_width.to(log_mag.device, log_mag.dtype)
    near = harmonic_mask(row_hz.to(log_mag.device, log_mag.dtype), fw, f0)
    far = ~near
    # power relative to each note's loudest row keeps exp() in range; the ratio is unchanged
    lp = 2 * log_mag
    power = torch.exp(lp - lp.amax(dim=(1, 2), keepdim=True).detach()).mean(-1)
    tiny = torch.finfo(power.dtype).tiny
    ratio = 10 * torch.log10((power * near).sum(1).clamp_min(tiny) / (power * far).sum(1).clamp_min(tiny))
    n_near, n_far = near.sum(1), far.sum(1)
    flat = 10 * torch.log10(n_near.clamp_min(1).to(power.dtype) / n_far.clamp_min(1).to(power.dtype))
    resolved = (fw.amax() < f0[:, 0] / 2) & (n_far > 0) & (n_near > 0)
    return ratio, flat, resolved


def harmonic_loss(fake: torch.Tensor, pitch: torch.Tensor, cfg: GANSynthConfig, normalizer: ImageNormalizer,
                  target_db: float = 10.0) -> tuple[torch.Tensor, dict]:
    """A hinge on the harmonic excess of G's notes: ``mean relu(target_db - (ratio_db - flat_db)) / 10``.

    ``fake``: normalised generated images ``(batch, 2, rows, frames)`` at any stage (rows are groups of the
    full image's STFT bins); ``pitch``: their class indices ``(batch,)``. The excess ``ratio_db - flat_db`` of
    :func:`harmonic_ratio_db` is 0 dB for a spectrum with no regard for the pitch; notes already ``target_db``
    above that cost nothing, and notes whose rows cannot resolve their harmonics (low pitches at coarse
    stages) are left out (mean over all notes, so they count as 0). Returns ``(loss, stats)`` with the mean
    excess in dB of the resolved notes (``g_harm_db``, absent when none is) and the share of resolved notes.
    """
    spec = cfg.spec_config
    if spec.kind == "mel_if":
        raise ValueError("harmonic_loss needs STFT rows (kind 'if' or 'phase'), not mel bands")
    rows = fake.shape[-2]
    centre, width = row_frequencies(spec)
    if centre.shape[0] % rows:
        raise ValueError(f"{rows} image rows do not group the {centre.shape[0]} rows of the representation")
    group = centre.shape[0] // rows
    centre, width = centre.view(rows, group).mean(1), width.view(rows, group).sum(1)
    log_mag = normalizer.denormalize(fake)[:, 0]
    f0 = class_f0(cfg, pitch, fake.dtype)
    ratio, flat, resolved = harmonic_ratio_db(log_mag, f0, centre, width)
    excess = ratio - flat
    loss = (F.relu(target_db - excess) * resolved.to(excess.dtype)).mean() / 10.0
    n = int(resolved.sum())
    stats = {"g_harm": loss.item(), "g_harm_resolved": n / max(1, fake.shape[0])}
    if n:  # left out when no note is resolved (no NaN in the history)
        stats["g_harm_db"] = float(excess.detach()[resolved].mean())
    return loss, stats


def clock_motion(images: torch.Tensor, kind: str, normalizer: ImageNormalizer) -> torch.Tensor:
    """How far each note's loud cells move off their pitch clock: ``(batch,)``, in units of pi per frame.

    ``images``: normalised images ``(batch, 2, rows, frames)`` whose channel 1 is relative to the pitch clock
    (:meth:`~course_lib.models.gansynth.GANSynth.working_images`). For ``kind="if"`` the motion of a cell is
    its relative IF (frames after the first); for ``"phase"`` the wrapped frame-to-frame change of its
    relative phase. The mean ``|motion|`` is weighted by each cell's power ``exp(2 log|X|)`` (weights carry no
    gradient): a steady note at its pitch scores near 0 (synthetic training notes above MIDI 36: median 0.02;
    below, where several harmonics share a row, median 0.14).
    """
    if kind not in ("if", "phase"):
        raise ValueError(f"clock motion needs kind 'if' or 'phase', got {kind!r}")
    second = images[:, 1]
    if kind == "if":
        motion = second[..., 1:]
    else:
        motion = torch.remainder(torch.diff(second, dim=-1) + 1.0, 2.0) - 1.0
    lp = 2 * normalizer.denormalize(images)[:, 0, :, 1:].detach()
    weight = torch.exp(lp - lp.amax(dim=(1, 2), keepdim=True))
    return (motion.abs() * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2))


def clock_motion_loss(fake: torch.Tensor, cfg: GANSynthConfig, normalizer: ImageNormalizer,
                      target: float = 0.05) -> tuple[torch.Tensor, dict]:
    """A hinge on :func:`clock_motion` of G's notes: ``mean relu(motion - target)``; returns ``(loss, stats)``.

    Needs ``cfg.pitch_clock`` (G paints channel 1 relative to the requested pitch's clock). No network, so G
    cannot fool it: the loss rewards loud cells that keep to the clock, i.e. a note periodic at the pitch it
    was asked for. Stats: ``g_clock`` (the loss) and ``g_clock_motion`` (mean motion).
    """
    if not cfg.pitch_clock:
        raise ValueError("clock_motion_loss needs GANSynthConfig.pitch_clock=True (channel 1 relative to the clock)")
    motion = clock_motion(fake, cfg.spec_config.kind, normalizer)
    loss = F.relu(motion - target).mean()
    return loss, {"g_clock": loss.item(), "g_clock_motion": float(motion.detach().mean())}
