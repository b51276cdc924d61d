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
* **Pitch clock** (``pitch_clock``, not in the paper, on in the shipped models): G and D work on the second
  channel relative to the phase ramps of the requested pitch's harmonics; :meth:`GANSynth.generate_images` adds
  them back (:func:`~course_lib.models.gansynth_repr.pitch_clock_shift`).

Loss: **WGAN-GP** by default (as in GANSynth and PGGAN): ``D(fake) - D(real)`` plus a gradient
penalty ``10 (||grad D(x_hat)|| - 1)^2`` on random interpolates and a drift term
``1e-3 D(real)^2``; ``loss="ns-r1"`` selects the non-saturating loss with an R1 penalty
``gamma / 2 ||grad D(real)||^2`` instead (often steadier on tiny CPU runs). Either way the
auxiliary pitch loss is added with weight ``aux_weight``.

This module holds the networks, their configuration and :func:`load_gansynth`; the shared layers are in
:mod:`course_lib.models.layers`, the losses in :mod:`course_lib.train.gansynth_losses`, the trainer, presets,
training notes and command line in :mod:`course_lib.train.gansynth`.

Shapes: images ``(batch, 2, n_freq, n_frames)``; at stage ``s`` (0 = smallest) the image is
``start_size * 2**s``. Pitches are MIDI numbers ``pitch_min .. pitch_min + n_pitches - 1``
(GANSynth: 24-84, 61 classes); models take class indices, :meth:`GANSynth.generate` takes MIDI.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.models.gansynth_repr import (ImageNormalizer, SpecImageConfig, audio_to_image, image_to_audio,
                                            pitch_clock_shift)
from course_lib.models.layers import EqualizedConv2d, EqualizedLinear, minibatch_stddev, pixel_norm
from course_lib.runtime.checkpoint import load_checkpoint, save_checkpoint
from course_lib.synth.core import midi_to_hz

PathLike = Union[str, Path]
LOSSES: tuple[str, ...] = ("wgan-gp", "ns-r1")
ASSETS = Path(__file__).resolve().parent.parent / "assets"
REBUILD_COMMAND = ("python -m course_lib.train.gansynth --preset lecture --kind if --high-res --pitch-clock "
                   "--harmonic-weight 10 --clock-weight 10 --steps-per-stage 100,150,200,600,3000 --out PATH")
"""How a GANSynth checkpoint is made (a shipped file's card, ``course_lib/assets/gansynth_*.md``, has its exact command)."""


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
        pitch_clock: **not in the paper**: the generator and the critic work on channel 1 (phase or IF) taken
            *relative to the requested pitch's clock* (:func:`~course_lib.models.gansynth_repr.pitch_clock_shift`:
            the phase ramp of the harmonic of f0 nearest each row is subtracted); :meth:`GANSynth.generate_images`
            adds it back, so generated images and audio are ordinary. A CPU-budget aid for low notes: below about
            MIDI 48 several harmonics share an STFT bin and the pitch lives in the IF more than in the
            magnitudes. Measured on the previous shipped IF +H model: pYIN found 0 of 24 notes at MIDI 24-47
            within 50 cents; the same magnitudes with the clock's IF gave 19 of 24. Needs kind "phase" or "if".
            Trained with it and the clock-motion loss (``TrainConfig.clock_weight``), the shipped IF +H and phase
            models reach PA 96.8 % and 97.4 % (without the clock: 49 % and 56 %; their cards).
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
    pitch_clock: bool = False

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        spec = self.spec_config
        if self.pitch_clock and spec.kind not in ("phase", "if"):
            raise ValueError(f"pitch_clock needs kind 'phase' or 'if', got {spec.kind!r}")
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


def class_f0(cfg: GANSynthConfig, pitch: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Fundamental frequency in Hz ``(batch,)`` of pitch class indices ``(batch,)`` (class 0 = MIDI ``cfg.pitch_min``)."""
    return midi_to_hz(pitch.to(dtype) + cfg.pitch_min, dtype=dtype)


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
        f0 = class_f0(self.cfg, pitch, z.dtype)
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
            f0 = class_f0(self.cfg, pitch, image.dtype)
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
        images = upsample_to_full(torch.cat(out), self.cfg)
        if self.cfg.pitch_clock:
            images = self.normalizer.normalize(
                pitch_clock_shift(self.normalizer.denormalize(images), class_f0(self.cfg, pitch, torch.float64), self.spec,
                                  sign=1.0))
        return images

    def working_images(self, images: torch.Tensor, midi: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Normalised images ``(batch, 2, n_freq, n_frames)`` of notes at MIDI ``midi`` -> what G paints and D
        sees: the same images, or with ``cfg.pitch_clock`` channel 1 relative to each note's pitch clock."""
        if not self.cfg.pitch_clock:
            return images
        f0 = class_f0(self.cfg, self.midi_to_class(midi), torch.float64)
        return self.normalizer.normalize(pitch_clock_shift(self.normalizer.denormalize(images), f0, self.spec))

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
        """Write a course checkpoint (:func:`course_lib.runtime.checkpoint.save_checkpoint`, atomic) to ``path``.

        ``include_discriminator=False`` keeps only what generation needs (a smaller file to ship);
        ``trainer_state`` (from :meth:`course_lib.train.gansynth.GANSynthTrainer.state_dict`) makes the file resumable.
        """
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


def load_gansynth(path: PathLike | None = None, device: torch.device | str | None = None) -> GANSynth:
    """Load a model saved by :meth:`GANSynth.save` (default: the shipped IF +H generator, ``assets/gansynth_if.pt``;
    ``FileNotFoundError`` naming the command that makes it / ``ValueError`` when missing / invalid)."""
    path = Path(path) if path is not None else ASSETS / "gansynth_if.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no GANSynth checkpoint; train one with `{REBUILD_COMMAND}` "
                                f"(or course_lib.train.gansynth.train)")
    ckpt = load_checkpoint(path)
    if ckpt.get("config", {}).get("kind") != "gansynth":
        raise ValueError(f"{path}: not a GANSynth checkpoint (config kind={ckpt.get('config', {}).get('kind')!r})")
    try:
        return GANSynth.from_checkpoint(ckpt, device)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: weights do not fit the stored config ({exc})") from exc
