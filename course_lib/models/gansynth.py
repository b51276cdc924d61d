"""GANSynth (Engel et al., ICLR 2019): a progressive GAN that paints pitch-conditioned note spectrograms.

The generator maps a latent ``z`` plus a one-hot MIDI pitch to a two-channel image
(log-magnitude, IF / phase / mel-IF; see :mod:`course_lib.models.gansynth_repr`) which is
inverted to audio in one shot: no autoregression, so a whole note costs one forward pass.

Architecture (progressive growing, Karras et al., ICLR 2018):

* **Generator**: ``pixel_norm(z) ++ one_hot(pitch)`` -> equalised dense layer to the smallest
  image (``start_size``) -> per stage: nearest 2x upsampling, two 3x3 convolutions with leaky
  ReLU and **pixel norm**; a 1x1 ``to_image`` layer per stage; ``tanh`` output in [-1, 1].
* **Discriminator**: the mirror image: 1x1 ``from_image`` per stage, two 3x3 convolutions and
  2x average pooling per stage, then **minibatch standard deviation** (one extra feature map:
  the average spread of features across a group of samples, which lets D see a collapsed
  batch), a 3x3 convolution and two dense layers giving a realness score and pitch logits.
* **Equalised learning rate**: every weight is stored with unit variance and scaled at run
  time by ``gain / sqrt(fan_in)``, so Adam takes equal-sized steps in every layer.
* **Fade-in**: when a new (higher-resolution) stage is added, its output is blended with the
  upsampled output of the previous stage, ``alpha`` going 0 -> 1 (the discriminator mirrors it,
  and real images are blended the same way).
* **Pitch**: the generator is conditioned on a one-hot pitch; in the paper the discriminator is not,
  but predicts the pitch (auxiliary classifier, AC-GAN): its cross-entropy on *real* notes trains D,
  its cross-entropy on *generated* notes (against the requested pitch) trains G. Optionally
  (``critic_pitch_comb``, not in the paper, off in every preset) the critic also *sees* the label's
  harmonic comb, so a note at the wrong pitch can score as fake, and its pitch head learns from real
  notes only. ``d_pitch_acc_fake`` (logged every step) is that head's accuracy on G's notes; G is
  trained against the head, so it is no independent pitch measure (see ``critic_pitch_comb``).

Loss: **WGAN-GP** by default (as in GANSynth and PGGAN): ``D(fake) - D(real)`` plus a gradient
penalty ``10 (||grad D(x_hat)|| - 1)^2`` on random interpolates and a drift term
``1e-3 D(real)^2``; ``loss="ns-r1"`` selects the non-saturating loss with an R1 penalty
``gamma / 2 ||grad D(real)||^2`` instead (often steadier on tiny CPU runs). Either way the
auxiliary pitch loss is added with weight ``aux_weight``.

Shapes: images ``(batch, 2, n_freq, n_frames)``; at stage ``s`` (0 = smallest) the image is
``start_size * 2**s``. Pitches are MIDI numbers ``pitch_min .. pitch_min + n_pitches - 1``
(GANSynth: 24-84, 61 classes); models take class indices, :meth:`GANSynth.generate` takes MIDI.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import DEFAULT_SR
from course_lib.models.gansynth_repr import (ImageNormalizer, SpecImageConfig, audio_to_image,
                                             config_for_duration, image_to_audio)

PathLike = Union[str, Path]
LOSSES: tuple[str, ...] = ("wgan-gp", "ns-r1")
ASSETS = Path(__file__).resolve().parent.parent / "assets"


# --------------------------------------------------------------------------- building blocks

class EqualizedLinear(nn.Module):
    """Dense layer with equalised learning rate: ``y = x (w * gain / sqrt(in)) ^T + b``, ``w ~ N(0, 1)``."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features, generator=generator))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_features)`` -> ``(batch, out_features)``."""
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """Same-padded 2-D convolution with equalised learning rate (``w ~ N(0, 1)`` scaled by ``gain / sqrt(fan_in)``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, gain: float = math.sqrt(2),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd for same padding, got {kernel}")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel, generator=generator))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in, H, W)`` -> ``(batch, out, H, W)``."""
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit RMS over channels (dim 1)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append one feature map: the mean standard deviation of features over groups of samples.

    ``(batch, C, H, W)`` -> ``(batch, C + 1, H, W)``. The group is the largest divisor of the
    batch not above ``group_size``.
    """
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    y = x.view(g, n // g, c, h, w).float()
    y = (y - y.mean(dim=0, keepdim=True)).pow(2).mean(dim=0).add(1e-8).sqrt()  # (n/g, C, H, W)
    y = y.mean(dim=(1, 2, 3)).to(x.dtype)  # (n/g,)
    y = y.view(1, n // g, 1, 1, 1).expand(g, n // g, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y], dim=1)


# --------------------------------------------------------------------------- configuration

@dataclass
class GANSynthConfig:
    """Architecture and loss of a GANSynth model.

    Attributes:
        spec: the image representation (:class:`SpecImageConfig` as a dict).
        n_stages: number of resolutions; the smallest image is ``image_size / 2**(n_stages - 1)``.
        channels: feature maps per stage, smallest resolution first (``n_stages`` values).
        latent_dim: size of ``z``. n_pitches / pitch_min: MIDI pitch classes (GANSynth: 61 from 24).
        loss: ``"wgan-gp"`` or ``"ns-r1"``. gp_weight: WGAN-GP lambda. drift: WGAN drift weight.
        r1_gamma: R1 weight. aux_weight: weight of the auxiliary pitch cross-entropy (10: with weight 1
            the critic's adversarial gradients drown the pitch head on small CPU runs and D never
            learns pitch, so neither does G).
        aux_on_fake: the critic's pitch head is also trained to name the pitch a *generated* note was
            asked for, as in AC-GAN (Odena et al. 2017) and TF-GAN's ``acgan_discriminator_loss`` that
            GANSynth trains with. Trained on real notes only, the head learns pitch but G's notes are
            out of its distribution and G gets no usable pitch gradient (measured: G's pitch
            cross-entropy stayed at chance, log 61, for 1,000 CPU steps while D's head reached 36 %).
        mbstd_group: minibatch-stddev group size.
        pitch_comb: **not in the paper** (off in the ``full`` preset): feed the generator, before each
            stage's first convolution, two channels computed from the requested pitch f0 for every
            frequency row: ``cos(2 pi f / f0)`` (1 on the harmonics; 0 where a row is too coarse to
            resolve them) and ``tanh(log2(f / f0) / 4)`` (where the fundamental sits). A CPU-budget
            aid: with the one-hot alone, G must learn to place harmonics from a 16-row start image;
            in our CPU runs without the comb G's pitch cross-entropy stayed at chance for 1,800 steps,
            with it it fell below 1 nat by step 4,000 (the shipped cards say what that is worth to
            an independent pitch classifier). The critic still has to learn pitch on its own.
        critic_pitch_comb: **not in the paper**: a *conditional* critic. The same two pitch channels, for
            the pitch each note is labelled with (real notes: their own; generated notes: the one they were
            asked for), are concatenated to the critic's input image (at both fade-in paths), so the
            realness score itself can check that the harmonics sit where the label says. Without it the
            critic is unconditional and only its auxiliary head knows pitch; with ``aux_on_fake`` that head
            and G agree on cues an independent pitch classifier does not read as pitch (measured: G's
            pitch cross-entropy below 0.1 nats, PA 8 %). Use it with ``aux_on_fake=False``.
            Measured (lecture IF +H, 4,050 steps, ``--conditional-critic``): the critic's pitch reaches G
            early (its real-only head names 33 % of G's notes at step 900 against 1.6 % without the comb,
            83 % at the end) but that head is fooled too: the independent pitch classifier still names
            only 8.3 % of the notes (PA) and pYIN finds 9 of 61 within 50 cents (29 unvoiced), so it is
            off by default; the notes' missing pitch is not only a routing problem.
    """

    spec: dict = field(default_factory=lambda: SpecImageConfig().to_dict())
    n_stages: int = 4
    channels: tuple[int, ...] = (64, 64, 32, 16)
    latent_dim: int = 64
    n_pitches: int = 61
    pitch_min: int = 24
    loss: str = "wgan-gp"
    gp_weight: float = 10.0
    drift: float = 1e-3
    r1_gamma: float = 1.0
    aux_weight: float = 10.0
    aux_on_fake: bool = True
    mbstd_group: int = 4
    pitch_comb: bool = False
    critic_pitch_comb: bool = False

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        spec = self.spec_config
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.n_stages < 1 or len(self.channels) != self.n_stages:
            raise ValueError(f"need one channel count per stage: n_stages={self.n_stages}, channels={self.channels}")
        f, t = spec.n_freq, spec.n_frames
        k = 2 ** (self.n_stages - 1)
        if f % k or t % k:
            raise ValueError(f"image {f}x{t} cannot be halved {self.n_stages - 1} times; use fewer stages")
        if self.n_pitches < 1 or self.latent_dim < 1:
            raise ValueError(f"n_pitches and latent_dim must be >= 1, got {self.n_pitches}, {self.latent_dim}")

    @property
    def spec_config(self) -> SpecImageConfig:
        """The representation as a :class:`SpecImageConfig`."""
        return SpecImageConfig(**self.spec)

    @property
    def start_size(self) -> tuple[int, int]:
        """``(freq, frames)`` of the stage-0 image."""
        s = self.spec_config
        k = 2 ** (self.n_stages - 1)
        return s.n_freq // k, s.n_frames // k

    def size_at(self, stage: int) -> tuple[int, int]:
        """``(freq, frames)`` of the image at ``stage``."""
        h, w = self.start_size
        return h * 2**stage, w * 2**stage

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


def _check_stage(stage: int | None, n_stages: int) -> int:
    s = n_stages - 1 if stage is None else int(stage)
    if not 0 <= s < n_stages:
        raise ValueError(f"stage must be in 0..{n_stages - 1}, got {stage}")
    return s


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"fade-in alpha must be in [0, 1], got {alpha}")
    return float(alpha)


# --------------------------------------------------------------------------- networks

def row_frequencies(spec: SpecImageConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre frequency and width (Hz) of every image row ``(n_freq,)`` each: STFT bins, or HTK mel bands for mel-IF."""
    n = spec.n_freq
    if spec.kind == "mel_if":
        top = 2595.0 * math.log10(1.0 + (spec.sr / 2) / 700.0)
        mel = torch.linspace(0.0, top, n + 2, dtype=torch.float64)
        edges = 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
        return edges[1:-1].float(), (edges[2:] - edges[:-2]).float() / 2
    centre = torch.arange(n, dtype=torch.float32) * spec.sr / spec.n_fft
    return centre, torch.full((n,), spec.sr / spec.n_fft)


@functools.lru_cache(maxsize=64)
def _stage_rows(spec: SpecImageConfig, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre frequency and width (Hz) of the ``rows`` rows of a stage image (groups of full-size rows)."""
    centre, width = row_frequencies(spec)
    group = centre.shape[0] // rows
    return centre.view(rows, group).mean(dim=1), width.view(rows, group).sum(dim=1)


def pitch_comb_channels(cfg: GANSynthConfig, stage: int, f0: torch.Tensor, frames: int) -> torch.Tensor:
    """The two pitch channels of ``cfg.pitch_comb`` at ``stage`` for fundamentals ``f0`` (Hz, ``(batch,)``).

    Returns ``(batch, 2, rows at stage, frames)``: ``cos(2 pi f / f0)`` on rows narrower than ``f0 / 2``
    (else 0) and ``tanh(log2(f / f0) / 4)``, constant along time.
    """
    fc, fw = _stage_rows(cfg.spec_config, cfg.size_at(stage)[0])
    fc, fw = fc.to(f0.device, f0.dtype), fw.to(f0.device, f0.dtype)
    f0 = f0.reshape(-1, 1)
    comb = torch.cos(2 * math.pi * fc / f0) * (fw < f0 / 2).to(f0.dtype)
    where = torch.tanh(torch.log2(fc.clamp_min(10.0) / f0) / 4)
    return torch.stack([comb, where], dim=1).unsqueeze(-1).expand(-1, -1, -1, frames)


class Generator(nn.Module):
    """``(z (batch, latent_dim), pitch class (batch,))`` -> image ``(batch, 2, *size_at(stage))`` in [-1, 1]."""

    def __init__(self, cfg: GANSynthConfig, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.cfg = cfg
        ch = cfg.channels
        h0, w0 = cfg.start_size
        self.input = EqualizedLinear(cfg.latent_dim + cfg.n_pitches, ch[0] * h0 * w0, gain=math.sqrt(2) / 4, generator=g)
        extra = 2 if cfg.pitch_comb else 0
        self.blocks = nn.ModuleList([nn.ModuleList([EqualizedConv2d(ch[0] + extra, ch[0], 3, generator=g)])])
        for s in range(1, cfg.n_stages):
            self.blocks.append(nn.ModuleList([EqualizedConv2d(ch[s - 1] + extra, ch[s], 3, generator=g),
                                              EqualizedConv2d(ch[s], ch[s], 3, generator=g)]))
        self.to_image = nn.ModuleList([EqualizedConv2d(c, 2, 1, gain=1.0, generator=g) for c in ch])

    def _block(self, s: int, x: torch.Tensor, f0: torch.Tensor | None = None) -> torch.Tensor:
        if s > 0:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.cfg.pitch_comb:
            x = torch.cat([x, pitch_comb_channels(self.cfg, s, f0, x.shape[-1])], dim=1)
        for conv in self.blocks[s]:
            x = pixel_norm(F.leaky_relu(conv(x), 0.2))
        return x

    def forward(self, z: torch.Tensor, pitch: torch.Tensor, stage: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """Generate images at ``stage`` (default: the last), fading in the newest stage by ``alpha``."""
        s = _check_stage(stage, self.cfg.n_stages)
        alpha = _check_alpha(alpha)
        if z.ndim != 2 or z.shape[1] != self.cfg.latent_dim:
            raise ValueError(f"z must be (batch, {self.cfg.latent_dim}), got {tuple(z.shape)}")
        pitch = torch.as_tensor(pitch, device=z.device).long().reshape(-1)
        if pitch.shape[0] != z.shape[0]:
            raise ValueError(f"{pitch.shape[0]} pitches for a batch of {z.shape[0]} latents")
        if pitch.numel() and (int(pitch.min()) < 0 or int(pitch.max()) >= self.cfg.n_pitches):
            raise ValueError(f"pitch class indices must be in 0..{self.cfg.n_pitches - 1}, "
                             f"got {int(pitch.min())}..{int(pitch.max())}")
        h0, w0 = self.cfg.start_size
        x = torch.cat([pixel_norm(z), F.one_hot(pitch, self.cfg.n_pitches).to(z.dtype)], dim=1)
        x = pixel_norm(F.leaky_relu(self.input(x), 0.2).view(z.shape[0], -1, h0, w0))
        f0 = 440.0 * 2.0 ** ((pitch.to(z.dtype) + self.cfg.pitch_min - 69) / 12)
        x = self._block(0, x, f0)
        previous = x
        for i in range(1, s + 1):
            previous = x
            x = self._block(i, x, f0)
        out = self.to_image[s](x)
        if s > 0 and alpha < 1.0:
            low = F.interpolate(self.to_image[s - 1](previous), scale_factor=2, mode="nearest")
            out = alpha * out + (1.0 - alpha) * low
        return torch.tanh(out)


class Discriminator(nn.Module):
    """Image ``(batch, 2, *size_at(stage))`` -> ``(score (batch,), pitch logits (batch, n_pitches))``."""

    def __init__(self, cfg: GANSynthConfig, seed: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.cfg = cfg
        ch = cfg.channels
        h0, w0 = cfg.start_size
        extra = 2 if cfg.critic_pitch_comb else 0
        self.from_image = nn.ModuleList([EqualizedConv2d(2 + extra, c, 1, generator=g) for c in ch])
        self.blocks = nn.ModuleList([nn.ModuleList()])  # stage 0 has the head below instead
        for s in range(1, cfg.n_stages):
            self.blocks.append(nn.ModuleList([EqualizedConv2d(ch[s], ch[s], 3, generator=g),
                                              EqualizedConv2d(ch[s], ch[s - 1], 3, generator=g)]))
        self.head_conv = EqualizedConv2d(ch[0] + 1, ch[0], 3, generator=g)
        self.head_dense = EqualizedLinear(ch[0] * h0 * w0, ch[0], generator=g)
        self.head_out = EqualizedLinear(ch[0], 1 + cfg.n_pitches, gain=1.0, generator=g)

    def _block(self, s: int, x: torch.Tensor) -> torch.Tensor:
        for conv in self.blocks[s]:
            x = F.leaky_relu(conv(x), 0.2)
        return F.avg_pool2d(x, 2)

    def _with_pitch(self, image: torch.Tensor, stage: int, f0: torch.Tensor | None) -> torch.Tensor:
        if f0 is None:
            return image
        return torch.cat([image, pitch_comb_channels(self.cfg, stage, f0, image.shape[-1])], dim=1)

    def forward(self, image: torch.Tensor, stage: int | None = None, alpha: float = 1.0,
                pitch: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Score and pitch logits of images at ``stage`` (checked against the image size).

        ``pitch``: class indices ``(batch,)`` the images are labelled with; required when
        ``cfg.critic_pitch_comb`` (a conditional critic), ignored otherwise.
        """
        s = _check_stage(stage, self.cfg.n_stages)
        alpha = _check_alpha(alpha)
        want = (2, *self.cfg.size_at(s))
        if image.ndim != 4 or tuple(image.shape[1:]) != want:
            raise ValueError(f"stage {s} expects images (batch, {', '.join(map(str, want))}), got {tuple(image.shape)}")
        f0 = None
        if self.cfg.critic_pitch_comb:
            if pitch is None:
                raise ValueError("this critic is conditional (critic_pitch_comb): pass the pitch class of every image")
            pitch = torch.as_tensor(pitch, device=image.device).long().reshape(-1)
            if pitch.shape[0] != image.shape[0]:
                raise ValueError(f"{pitch.shape[0]} pitches for a batch of {image.shape[0]} images")
            f0 = 440.0 * 2.0 ** ((pitch.to(image.dtype) + self.cfg.pitch_min - 69) / 12)
        x = F.leaky_relu(self.from_image[s](self._with_pitch(image, s, f0)), 0.2)
        if s > 0:
            x = self._block(s, x)
            if alpha < 1.0:
                low = F.leaky_relu(self.from_image[s - 1](self._with_pitch(F.avg_pool2d(image, 2), s - 1, f0)), 0.2)
                x = alpha * x + (1.0 - alpha) * low
            for i in range(s - 1, 0, -1):
                x = self._block(i, x)
        x = minibatch_stddev(x, self.cfg.mbstd_group)
        x = F.leaky_relu(self.head_conv(x), 0.2)
        x = F.leaky_relu(self.head_dense(x.flatten(1)), 0.2)
        out = self.head_out(x)
        return out[:, 0], out[:, 1:]


# --------------------------------------------------------------------------- losses

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


def resize_real(images: torch.Tensor, cfg: GANSynthConfig, stage: int, alpha: float = 1.0) -> torch.Tensor:
    """Full-resolution images ``(batch, 2, F, T)`` -> stage resolution, blended like the fade-in.

    Average-pool to ``size_at(stage)``; during a fade-in (``alpha < 1``) mix in the previous
    stage's image upsampled (nearest), exactly as the generator's output is mixed.
    """
    s = _check_stage(stage, cfg.n_stages)
    k = 2 ** (cfg.n_stages - 1 - s)
    x = F.avg_pool2d(images, k) if k > 1 else images
    if s > 0 and alpha < 1.0:
        low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        x = alpha * x + (1 - alpha) * low
    return x


def upsample_to_full(images: torch.Tensor, cfg: GANSynthConfig) -> torch.Tensor:
    """Images of any stage ``(batch, 2, h, w)`` -> full size ``(batch, 2, n_freq, n_frames)`` (nearest)."""
    spec = cfg.spec_config
    if images.shape[-2:] == (spec.n_freq, spec.n_frames):
        return images
    return F.interpolate(images, size=(spec.n_freq, spec.n_frames), mode="nearest")


# --------------------------------------------------------------------------- the model

class GANSynth(nn.Module):
    """Generator + discriminator + representation + normaliser, with generation helpers.

    ``stage`` / ``alpha`` record how far progressive training has grown the model; generation
    uses them (images of a not-yet-final stage are upsampled to full size before inversion).
    """

    def __init__(self, cfg: GANSynthConfig, normalizer: ImageNormalizer | None = None, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = cfg.spec_config
        self.normalizer = normalizer or ImageNormalizer()
        self.generator = Generator(cfg, seed=seed)
        self.discriminator = Discriminator(cfg, seed=seed + 1)
        self.stage = cfg.n_stages - 1
        self.alpha = 1.0
        self.meta: dict = {}
        self.has_discriminator = True

    @property
    def sr(self) -> int:
        """Sample rate of generated audio in Hz."""
        return self.spec.sr

    @property
    def pitches(self) -> list[int]:
        """The MIDI pitches the model knows."""
        return list(range(self.cfg.pitch_min, self.cfg.pitch_min + self.cfg.n_pitches))

    def midi_to_class(self, midi: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """MIDI pitches ``(batch,)`` -> class indices, ``ValueError`` outside the model's range."""
        m = torch.as_tensor(midi).long().reshape(-1)
        lo, hi = self.cfg.pitch_min, self.cfg.pitch_min + self.cfg.n_pitches - 1
        if m.numel() and (int(m.min()) < lo or int(m.max()) > hi):
            raise ValueError(f"MIDI pitches must lie in {lo}..{hi}, got {m.tolist()}")
        return m - lo

    def sample_latents(self, n: int, seed: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` standard-normal latents ``(n, latent_dim)`` (seeded on the CPU, then moved)."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.cfg.latent_dim, generator=g).to(device or self._device())

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def generate_images(self, midi: Sequence[int] | torch.Tensor, z: torch.Tensor | None = None,
                        seed: int | None = 0, batch_size: int = 64) -> torch.Tensor:
        """Normalised images ``(batch, 2, n_freq, n_frames)`` for MIDI pitches ``(batch,)``."""
        pitch = self.midi_to_class(midi).to(self._device())
        if z is None:
            z = self.sample_latents(pitch.shape[0], seed)
        z = z.to(self._device())
        self.generator.eval()
        out = [self.generator(z[i:i + batch_size], pitch[i:i + batch_size], self.stage, self.alpha)
               for i in range(0, pitch.shape[0], batch_size)]
        return upsample_to_full(torch.cat(out), self.cfg)

    def images_to_audio(self, images: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Normalised images ``(batch, 2, n_freq, n_frames)`` -> audio ``(batch, samples)`` in [-1, 1]."""
        audio = image_to_audio(self.normalizer.denormalize(images.float()), self.spec, length)
        return audio.clamp(-1.0, 1.0)

    def audio_to_images(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``(batch, samples)`` -> normalised images ``(batch, 2, n_freq, n_frames)``."""
        return self.normalizer.normalize(audio_to_image(audio, self.spec))

    @torch.no_grad()
    def generate(self, midi: Sequence[int] | torch.Tensor, z: torch.Tensor | None = None, seed: int | None = 0,
                 length: int | None = None, batch_size: int = 64) -> torch.Tensor:
        """Notes for MIDI pitches ``(batch,)``: audio ``(batch, length or spec.samples)`` at ``self.sr`` Hz."""
        images = self.generate_images(midi, z, seed, batch_size)
        return self.images_to_audio(images, length)

    @torch.no_grad()
    def interpolate(self, midi: int, n: int = 5, seed: int = 0, spherical: bool = True,
                    length: int | None = None) -> torch.Tensor:
        """Latent interpolation at a fixed pitch: ``n`` notes ``(n, samples)`` from one random ``z`` to another."""
        if n < 2:
            raise ValueError(f"n must be >= 2 notes, got {n}")
        z = self.sample_latents(2, seed)
        t = torch.linspace(0, 1, n, device=z.device)[:, None]
        if spherical:
            a, b = z[0], z[1]
            omega = torch.arccos(torch.clamp(F.cosine_similarity(a, b, dim=0), -1 + 1e-7, 1 - 1e-7))
            path = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
        else:
            path = (1 - t) * z[0] + t * z[1]
        return self.generate([midi] * n, z=path, length=length)

    @torch.no_grad()
    def pitch_sweep(self, midi: Sequence[int], seed: int = 0, length: int | None = None) -> torch.Tensor:
        """One fixed latent played at several pitches (timbre consistency): audio ``(len(midi), samples)``."""
        z = self.sample_latents(1, seed).expand(len(midi), -1)
        return self.generate(list(midi), z=z, length=length)

    # ----------------------------------------------------------------------- checkpoints

    def rebuild_config(self) -> dict:
        """What :func:`load_gansynth` needs besides the weights (plain, JSON-able)."""
        return {"kind": "gansynth", "config": self.cfg.to_dict(), "normalizer": self.normalizer.to_dict(),
                "stage": self.stage, "alpha": self.alpha, "meta": dict(self.meta)}

    def save(self, path: PathLike, include_discriminator: bool = True, trainer_state: dict | None = None,
             history: list[dict] | None = None) -> Path:
        """Write a course checkpoint (:func:`course_lib.train.checkpoint.save_checkpoint`, atomic) to ``path``.

        ``include_discriminator=False`` keeps only what generation needs (a smaller file to ship);
        ``trainer_state`` (from :meth:`GANSynthTrainer.state_dict`) makes the file resumable.
        """
        from course_lib.train.checkpoint import save_checkpoint

        target: nn.Module = self if include_discriminator else _GeneratorOnly(self.generator)
        hist = {"steps": [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in (history or [])]}
        extra = {"trainer": trainer_state} if trainer_state is not None else {}
        return save_checkpoint(path, target, None, step=int(self.meta.get("steps", 0)), config=self.rebuild_config(),
                               history=hist, extra=extra)

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: torch.device | str | None = None) -> "GANSynth":
        """Rebuild a model from a checkpoint dict written by :meth:`save`."""
        conf = ckpt["config"]
        cfg_dict = dict(conf["config"])
        cfg_dict["channels"] = tuple(cfg_dict["channels"])
        model = cls(GANSynthConfig(**cfg_dict), ImageNormalizer.from_dict(conf["normalizer"]))
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
        if unexpected or any(not k.startswith("discriminator.") for k in missing):
            raise RuntimeError(f"missing keys {missing}, unexpected keys {unexpected}")
        model.has_discriminator = not missing
        model.stage, model.alpha = int(conf["stage"]), float(conf["alpha"])
        model.meta = dict(conf.get("meta", {}))
        return model.to(device or "cpu").eval()


class _GeneratorOnly(nn.Module):
    """A wrapper whose state dict holds the generator's weights under the full model's key names."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator


def load_gansynth(path: PathLike, device: torch.device | str | None = None) -> GANSynth:
    """Load a model saved by :meth:`GANSynth.save` (``FileNotFoundError`` / ``ValueError`` when missing / invalid)."""
    from course_lib.train.checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no GANSynth checkpoint (train one with course_lib.models.gansynth.train)")
    ckpt = load_checkpoint(path)
    if ckpt.get("config", {}).get("kind") != "gansynth":
        raise ValueError(f"{path}: not a GANSynth checkpoint (config kind={ckpt.get('config', {}).get('kind')!r})")
    try:
        return GANSynth.from_checkpoint(ckpt, device)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: weights do not fit the stored config ({exc})") from exc


# --------------------------------------------------------------------------- training

@dataclass
class TrainConfig:
    """Optimisation and progressive schedule.

    Attributes:
        steps_per_stage: discriminator+generator steps at each stage (one value per stage).
        fade_fraction: fraction of each stage (after the first) spent fading the new layers in.
        batch_size: notes per step. lr / betas: Adam (PGGAN: 1e-3, (0, 0.99)).
        n_critic: discriminator steps per generator step.
        seed: latent / batch sampling seed.
    """

    steps_per_stage: tuple[int, ...] = (50, 50, 50, 50)
    fade_fraction: float = 0.5
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    n_critic: int = 1
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps_per_stage"], d["betas"] = list(self.steps_per_stage), list(self.betas)
        return d


class GANSynthTrainer:
    """Progressive WGAN-GP / NS-R1 training of a :class:`GANSynth` on normalised images.

    Args:
        model: the model (its normaliser must be the one the images were made with).
        images: normalised training images ``(N, 2, n_freq, n_frames)`` (CPU is fine; batches move).
        pitches: MIDI pitch of each image ``(N,)``.
        train_cfg: :class:`TrainConfig`. device: where to train (default: the model's).
    """

    def __init__(self, model: GANSynth, images: torch.Tensor, pitches: Sequence[int] | torch.Tensor,
                 train_cfg: TrainConfig, device: torch.device | str | None = None) -> None:
        if len(train_cfg.steps_per_stage) != model.cfg.n_stages:
            raise ValueError(f"steps_per_stage needs {model.cfg.n_stages} values, got {train_cfg.steps_per_stage}")
        spec = model.spec
        if images.ndim != 4 or tuple(images.shape[1:]) != spec.image_shape:
            raise ValueError(f"images must be (N, {', '.join(map(str, spec.image_shape))}), got {tuple(images.shape)}")
        self.classes = model.midi_to_class(pitches)
        if self.classes.shape[0] != images.shape[0]:
            raise ValueError(f"{self.classes.shape[0]} pitches for {images.shape[0]} images")
        self.device = torch.device(device) if device is not None else model._device()
        self.model = model.to(self.device)
        self.images = images
        self.tc = train_cfg
        self.g_opt = torch.optim.Adam(model.generator.parameters(), lr=train_cfg.lr, betas=train_cfg.betas)
        self.d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=train_cfg.lr, betas=train_cfg.betas)
        self.rng = torch.Generator().manual_seed(train_cfg.seed)
        self.step = 0
        self.history: list[dict] = []
        self._set_progress(0)

    @property
    def total_steps(self) -> int:
        """Steps in the whole progressive schedule."""
        return int(sum(self.tc.steps_per_stage))

    def schedule(self, step: int) -> tuple[int, float]:
        """``(stage, alpha)`` at global ``step`` (alpha ramps 0 -> 1 over the first ``fade_fraction`` of a stage)."""
        start = 0
        for s, n in enumerate(self.tc.steps_per_stage):
            if step < start + n or s == len(self.tc.steps_per_stage) - 1:
                if s == 0:
                    return 0, 1.0
                fade = max(1, int(round(self.tc.fade_fraction * n)))
                return s, min(1.0, (step - start) / fade)
            start += n
        return len(self.tc.steps_per_stage) - 1, 1.0

    def _set_progress(self, step: int) -> None:
        self.model.stage, self.model.alpha = self.schedule(step)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, self.images.shape[0], (self.tc.batch_size,), generator=self.rng)
        return self.images[idx].to(self.device), self.classes[idx].to(self.device)

    def warmup_discriminator(self, steps: int) -> dict:
        """Train only the discriminator for ``steps`` steps at the current stage (a critic warm-up,
        as WGAN trainings often do first); returns the last step's statistics."""
        stats: dict = {}
        for _ in range(int(steps)):
            stats = self.train_step(generator_step=False)
        return stats

    def train_step(self, generator_step: bool = True) -> dict:
        """One generator step after ``n_critic`` discriminator steps; returns the step's statistics.

        With ``generator_step=False`` only one discriminator step is taken and the schedule
        does not advance.
        """
        m, cfg = self.model, self.model.cfg
        stage, alpha = self.schedule(self.step)
        m.stage, m.alpha = stage, alpha
        m.generator.train()
        m.discriminator.train()
        stats: dict = {}
        for _ in range(self.tc.n_critic if generator_step else 1):
            real, cls = self._batch()
            real = resize_real(real, cfg, stage, alpha)
            z = torch.randn(real.shape[0], cfg.latent_dim, generator=self.rng).to(self.device)
            with torch.no_grad():
                fake = m.generator(z, cls, stage, alpha)
            loss, stats = discriminator_loss(m.discriminator, real, fake, cls, cfg, stage, alpha, self.rng)
            self.d_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.d_opt.step()
        if not generator_step:
            return stats
        cls = self.classes[torch.randint(0, self.classes.shape[0], (self.tc.batch_size,), generator=self.rng)]
        cls = cls.to(self.device)
        z = torch.randn(cls.shape[0], cfg.latent_dim, generator=self.rng).to(self.device)
        for p in m.discriminator.parameters():
            p.requires_grad_(False)
        g_loss, g_stats = generator_loss(m.discriminator, m.generator(z, cls, stage, alpha), cls, cfg, stage, alpha)
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        for p in m.discriminator.parameters():
            p.requires_grad_(True)
        stats.update(g_stats)
        stats.update(step=self.step, stage=stage, alpha=alpha)
        self.step += 1
        self._set_progress(self.step)
        self.history.append(stats)
        return stats

    def train(self, steps: int | None = None, progress: bool = True,
              callback: Callable[[dict], None] | None = None) -> list[dict]:
        """Run ``steps`` steps (default: the rest of the schedule) with a tqdm bar; returns their stats."""
        from tqdm.auto import tqdm

        n = self.total_steps - self.step if steps is None else int(steps)
        out = []
        t0 = time.perf_counter()
        with tqdm(total=n, disable=not progress, desc="GANSynth") as bar:
            for _ in range(n):
                st = self.train_step()
                out.append(st)
                bar.update(1)
                bar.set_postfix(stage=st["stage"], d=f"{st['d_adv']:.2f}", g=f"{st['g_adv']:.2f}")
                if callback is not None:
                    callback(st)
        self.model.meta.update(train_seconds=self.model.meta.get("train_seconds", 0.0) + time.perf_counter() - t0,
                               steps=self.step, train=self.tc.to_dict())
        self.model.eval()
        return out

    def save(self, path: PathLike) -> Path:
        """A resumable checkpoint: the model, both optimisers, the step, the RNG and the history."""
        self.model.meta.update(steps=self.step)
        return self.model.save(path, trainer_state=self.state_dict(), history=self.history)

    def resume(self, path: PathLike) -> None:
        """Load weights and optimiser state written by :meth:`save` and continue from its step."""
        from course_lib.train.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, self.model)
        if "trainer" not in ckpt.get("extra", {}):
            raise ValueError(f"{path}: holds no trainer state to resume from")
        self.load_state_dict(ckpt["extra"]["trainer"])
        self.history = list(ckpt.get("history", {}).get("steps", []))
        done = ckpt.get("config", {}).get("meta", {}).get("train_seconds")
        if done is not None:  # the training time so far, so a resumed run's card counts all of it
            self.model.meta["train_seconds"] = float(done)

    def state_dict(self) -> dict:
        """Optimiser states, step and RNG state (to resume)."""
        return {"step": self.step, "g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict`."""
        self.step = int(state["step"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        self.rng.set_state(state["rng"])
        self._set_progress(self.step)


@torch.no_grad()
def critic_separation(model: GANSynth, real: torch.Tensor, pitches: Sequence[int] | torch.Tensor,
                      z: torch.Tensor) -> float:
    """How well the current discriminator separates real from generated notes: AUC in [0.5, 1]-ish.

    The probability that D scores a real image above a generated one, over all (real, fake)
    pairs, for a fixed real batch ``(n, 2, F, T)`` (normalised, full size) and fixed latents
    ``(n, latent_dim)`` generated at ``pitches`` (MIDI). 1 = perfect separation, 0.5 = chance.
    """
    m = model
    cls = m.midi_to_class(pitches).to(m._device())
    fake = m.generator(z.to(m._device()), cls, m.stage, m.alpha)
    r = resize_real(real.to(m._device()), m.cfg, m.stage, m.alpha)
    m.discriminator.eval()
    rs, _ = m.discriminator(r, m.stage, m.alpha, cls)
    fs, _ = m.discriminator(fake, m.stage, m.alpha, cls)
    return float((rs[:, None] > fs[None, :]).float().mean() + 0.5 * (rs[:, None] == fs[None, :]).float().mean())


# --------------------------------------------------------------------------- presets

@dataclass(frozen=True)
class Preset:
    """One size setting: note length, representation geometry, model and schedule."""

    name: str
    duration: float
    n_fft: int
    model: dict
    train: dict

    def spec(self, kind: str = "if", sr: int = DEFAULT_SR, high_res: bool = False) -> SpecImageConfig:
        """The representation for ``kind`` (``high_res``: the +H variant of the same duration)."""
        return config_for_duration(self.duration, kind, sr, self.n_fft, high_res)

    def model_config(self, kind: str = "if", sr: int = DEFAULT_SR, high_res: bool = False,
                     **overrides) -> GANSynthConfig:
        """A :class:`GANSynthConfig` for ``kind`` (overrides change any field)."""
        d = dict(self.model)
        d.update(overrides)
        return GANSynthConfig(spec=self.spec(kind, sr, high_res).to_dict(), **d)

    def train_config(self, **overrides) -> TrainConfig:
        """A :class:`TrainConfig` (overrides change any field)."""
        d = dict(self.train)
        d.update(overrides)
        return TrainConfig(**d)


PRESETS: dict[str, Preset] = {
    # tests and COURSE_FAST lessons: 0.25 s notes, 128 x 64 images (+H: 256 x 32), seconds on a CPU
    "fast": Preset("fast", 0.25, 256,
                   model=dict(n_stages=4, channels=(32, 32, 16, 8), latent_dim=32, pitch_comb=True),
                   train=dict(steps_per_stage=(8, 8, 8, 8), batch_size=8)),
    # lecture: 0.5 s notes, 128 x 128 images (+H: 256 x 64, what the shipped checkpoints use),
    # about ten minutes on one busy CPU core, a few on a laptop
    "lecture": Preset("lecture", 0.5, 256,
                      model=dict(n_stages=5, channels=(32, 32, 32, 16, 8), latent_dim=32, pitch_comb=True),
                      train=dict(steps_per_stage=(60, 80, 100, 250, 400), batch_size=8)),
    # the paper's geometry (4 s, 512 x 256; +H 1024 x 128): a GPU and hours
    "full": Preset("full", 4.0, 1024,
                   model=dict(n_stages=7, channels=(256, 256, 256, 256, 128, 64, 32), latent_dim=256),
                   train=dict(steps_per_stage=(20000,) * 7, batch_size=32, lr=8e-4)),
}


def get_preset(name: str | Preset) -> Preset:
    """The :class:`Preset` called ``name`` (``"fast"``, ``"lecture"``, ``"full"``)."""
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise ValueError(f"unknown GANSynth preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]


def build(preset: str | Preset, audio: torch.Tensor, kind: str = "if", sr: int = DEFAULT_SR,
          high_res: bool = False, seed: int = 0, **model_overrides) -> tuple[GANSynth, torch.Tensor]:
    """A fresh model for ``preset`` and the normalised training images of ``audio`` ``(N, samples)``.

    Clips are cut to the preset's duration; the normaliser is fitted on these images.
    Returns ``(model, images (N, 2, n_freq, n_frames))``.
    """
    p = get_preset(preset)
    cfg = p.model_config(kind, sr, high_res, **model_overrides)
    spec = cfg.spec_config
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"audio must be (N >= 1, samples), got {tuple(x.shape)}")
    n = min(x.shape[-1], int(round(p.duration * sr)))
    raw = torch.cat([audio_to_image(x[i:i + 64, :n], spec) for i in range(0, x.shape[0], 64)])
    normalizer = ImageNormalizer.fit(raw, spec)
    model = GANSynth(cfg, normalizer, seed=seed)
    model.meta.update(preset=p.name, kind=kind, high_res=high_res, n_train=int(x.shape[0]), sr=sr)
    return model, normalizer.normalize(raw)


def train(preset: str | Preset, audio: torch.Tensor, pitches: Sequence[int] | torch.Tensor, kind: str = "if",
          sr: int = DEFAULT_SR, high_res: bool = False, seed: int = 0, device: torch.device | str | None = None,
          progress: bool = True, out: PathLike | None = None, **train_overrides) -> tuple[GANSynth, list[dict]]:
    """Build and train a model on notes ``audio`` ``(N, samples)`` with MIDI ``pitches`` ``(N,)``.

    Returns ``(model in eval mode, per-step statistics)``; with ``out`` the model is saved there.
    """
    from course_lib.train.device import pick_device

    model, images = build(preset, audio, kind, sr, high_res, seed)
    tc = get_preset(preset).train_config(seed=seed, **train_overrides)
    trainer = GANSynthTrainer(model, images, pitches, tc, device=pick_device(device))
    history = trainer.train(progress=progress)
    if out is not None:
        trainer.save(out)
    return model.to("cpu"), history


# --------------------------------------------------------------------------- data and command line

_NOTES_CACHE: dict = {}


def training_notes(duration: float = 0.5, split: str = "train", seed: int = 0, pitch_step: int = 1,
                   velocities: tuple[int, ...] = (100,), pitch_range: tuple[int, int] = (24, 84),
                   progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Notes of the synthetic mini-NSynth (``course_lib.data``'s ``fast`` instruments) for GANSynth.

    Every instrument plays every ``pitch_step``-th pitch of its range inside ``pitch_range`` (MIDI,
    inclusive; GANSynth: 24-84) at ``velocities``, for ``duration`` seconds at 16 kHz. ``split`` keeps
    the NSynth-style hash split of each note (``"train"``, ``"valid"``, ``"test"`` or ``"all"``).
    Returns ``(audio (N, samples), MIDI pitches (N,), NSynth examples)``.
    """
    from course_lib.data.datasets import split_of
    from course_lib.data.presets import get_preset as data_preset
    from course_lib.data.synthetic_notes import generate_notes

    if split not in ("train", "valid", "test", "all"):
        raise ValueError(f"split must be train, valid, test or all, got {split!r}")
    key = (float(duration), int(seed), int(pitch_step), tuple(int(v) for v in velocities))
    if key not in _NOTES_CACHE:  # the three splits of one set are rendered once per session
        preset = data_preset("fast").with_(note_seconds=duration, pitch_step=pitch_step, velocities=key[3])
        _NOTES_CACHE.clear()
        _NOTES_CACHE[key] = generate_notes(preset, seed=seed, progress=progress)
    audio, examples = _NOTES_CACHE[key]
    keep = [i for i, e in enumerate(examples) if pitch_range[0] <= e.pitch <= pitch_range[1]
            and (split == "all" or split_of(e.note_str) == split)]
    if not keep:
        raise ValueError(f"no notes in MIDI {pitch_range} for split {split!r}")
    return audio[keep].clone(), torch.tensor([examples[i].pitch for i in keep]), [examples[i] for i in keep]


PITCH_PATH_KEYS: tuple[str, ...] = ("d_pitch_acc", "d_pitch_acc_fake", "d_aux", "g_aux")
"""Per-step statistics that show whether pitch reaches G: the critic's pitch head on real notes and on G's
notes (accuracy against the requested pitch), its real cross-entropy and G's pitch cross-entropy (nats)."""


def pitch_path_curve(history: Sequence[dict], every: int = 500, window: int = 100) -> list[dict]:
    """Means of :data:`PITCH_PATH_KEYS` over the ``window`` steps before every ``every``-th step (and the last).

    ``history``: per-step statistics (:attr:`GANSynthTrainer.history`). Returns JSON-able rows
    ``{"step", "stage", key: mean, ...}``; keys missing from the history are left out.
    """
    if every < 1 or window < 1:
        raise ValueError(f"every and window must be >= 1 steps, got {every}, {window}")
    ends = sorted({n for n in range(every, len(history) + 1, every)} | ({len(history)} if history else set()))
    rows = []
    for end in ends:
        part = history[max(0, end - window):end]
        row = {"step": end, "stage": int(part[-1].get("stage", -1))}
        for k in PITCH_PATH_KEYS:
            if all(k in h for h in part):
                row[k] = round(sum(h[k] for h in part) / len(part), 3)
        rows.append(row)
    return rows


def pitch_path_logger(every: int) -> Callable[[dict], None]:
    """A :meth:`GANSynthTrainer.train` callback printing the pitch-path means of the last ``every`` steps as JSON."""
    import json

    window: list[dict] = []

    def log(stats: dict) -> None:
        window.append(stats)
        if len(window) == every:
            print(json.dumps(pitch_path_curve(window, every, every)[-1] | {"step": stats["step"] + 1}), flush=True)
            window.clear()

    return log


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_lib.models.gansynth --preset lecture --kind if --high-res --out PATH``: train and save.

    With ``--work DIR`` a resumable trainer checkpoint is written every ``--save-every`` steps and a
    re-run continues from it (same command), so a long CPU run can be stopped and resumed.
    """
    import argparse
    import json

    from course_lib.train.device import pick_device, seed_everything, set_threads

    ap = argparse.ArgumentParser(description="Train a GANSynth model on the synthetic mini-NSynth.")
    ap.add_argument("--preset", default="lecture", choices=sorted(PRESETS))
    ap.add_argument("--kind", default="if", choices=["phase", "if", "mel_if"])
    ap.add_argument("--high-res", action="store_true", help="the +H representation (2x FFT size)")
    ap.add_argument("--steps-per-stage", default=None,
                    help="comma-separated steps per stage, overriding the preset's schedule (e.g. 100,150,200,600,3000)")
    ap.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--work", default=None, help="folder of a resumable trainer checkpoint (resumed if present)")
    ap.add_argument("--save-every", type=int, default=200, help="steps between resumable checkpoints (with --work)")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="stop at this global step (the schedule stays the full one; resume later)")
    ap.add_argument("--aux-real-only", action="store_true",
                    help="train the critic's pitch head on real notes only (GANSynthConfig.aux_on_fake=False)")
    ap.add_argument("--conditional-critic", action="store_true",
                    help="critic_pitch_comb=True with the pitch head on real notes only (aux_on_fake=False); "
                         "see GANSynthConfig.critic_pitch_comb for what it measured")
    ap.add_argument("--log-every", type=int, default=0,
                    help="print the pitch-path statistics (means over the last LOG_EVERY steps) every LOG_EVERY steps")
    ap.add_argument("--generator-only", action="store_true", help="save without the discriminator (to ship)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    seed_everything(args.seed)
    p = get_preset(args.preset)
    overrides: dict = {"seed": args.seed}
    if args.steps_per_stage:
        overrides["steps_per_stage"] = tuple(int(v) for v in args.steps_per_stage.split(","))
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    audio, pitches, _ = training_notes(p.duration, "train", progress=True)
    model_overrides: dict = {}
    if args.conditional_critic:
        model_overrides.update(critic_pitch_comb=True, aux_on_fake=False)
    if args.aux_real_only:
        model_overrides["aux_on_fake"] = False
    model, images = build(p, audio, kind=args.kind, high_res=args.high_res, seed=args.seed, **model_overrides)
    trainer = GANSynthTrainer(model, images, pitches, p.train_config(**overrides), device=pick_device(args.device))
    work = None
    if args.work:
        work = Path(args.work) / (Path(args.out).stem + "_trainer.pt")
        work.parent.mkdir(parents=True, exist_ok=True)
        if work.is_file():
            trainer.resume(work)
            print(f"resumed {work} at step {trainer.step}")
    end = trainer.total_steps if args.stop_after is None else min(trainer.total_steps, args.stop_after)
    log = pitch_path_logger(args.log_every) if args.log_every > 0 else None
    while trainer.step < end:
        chunk = end - trainer.step if work is None else min(args.save_every, end - trainer.step)
        trainer.train(chunk, progress=log is None, callback=log)
        if work is not None:
            trainer.save(work)
    model = trainer.model.to("cpu").eval()
    model.meta.update(data="synthetic mini-NSynth (fast instruments), train split, MIDI 24-84, velocity 100",
                      n_train=int(audio.shape[0]),
                      command="python -m course_lib.models.gansynth " + " ".join(argv or sys.argv[1:]))
    path = model.save(args.out, include_discriminator=not args.generator_only, history=trainer.history)
    print(json.dumps({"out": str(path), "steps": trainer.step, "seconds": round(model.meta["train_seconds"], 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
