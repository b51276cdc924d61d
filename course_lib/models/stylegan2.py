"""StyleGAN2 for log-mel "images" of one-bar loops (Karras et al., 2020; LoopTest recipe).

The pieces, each small enough to read (and, in HW2, to re-implement) on its own:

* :class:`MelImageSpec` turns a course log-mel ``(batch, n_mels, frames)`` of a 2 s loop into a
  non-square image ``(batch, 1, n_mels, width)`` in about [-1, 1] and back (the loop is periodic,
  so the extra columns up to a power-of-two-friendly width are the loop's first frames again).
* :class:`MappingNetwork`: z -> w, an MLP with equalized learning rate, keeping a running mean
  of w (``w_avg``) for the truncation trick (:func:`truncate`).
* :func:`modulated_conv2d`: the StyleGAN2 convolution - weights scaled per sample by a style,
  then *demodulated* (each output filter renormalised to unit norm) instead of AdaIN.
* :class:`NoiseInjection`, :class:`ConstantInput`, :class:`StyledConv`, :class:`ToMel`: the
  generator layers; :class:`Generator` is the skip architecture (every resolution adds its
  upsampled 1-channel output), :class:`Discriminator` the residual one with a minibatch-stddev layer.
* Losses: :func:`d_logistic_loss`, :func:`g_nonsaturating_loss` (and the saturating one, to show
  vanishing gradients), :func:`r1_penalty` (lazy: applied every few steps, scaled up),
  :func:`path_length_penalty`; :func:`ema_update` for the generator's moving average,
  :func:`mix_styles` for style mixing.
* :func:`generate_mels`, :func:`generate_audio`, :func:`export_loops`: from latents to log-mels,
  to audio through a vocoder (MelGAN, or Griffin-Lim), to WAV files.

Shapes: z ``(batch, z_dim)``; w ``(batch, w_dim)``; ws ``(batch, num_ws, w_dim)``; images
``(batch, 1, height, width)`` with height = n_mels and width = frames (padded).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import DEFAULT_SR
from course_lib.audio import save
from course_lib.models.layers import EqualizedLinear, minibatch_stddev
from course_lib.models.melgan import griffin_lim_vocoder
from course_lib.runtime.checkpoint import atomic_save, load_plain_checkpoint
from course_lib.spectral import MelConfig, log_mel

PathLike = Union[str, Path]
Device = Union[str, torch.device, None]
ASSETS = Path(__file__).resolve().parent.parent / "assets"
GENERATOR_ASSET = ASSETS / "stylegan2_loops.pt"
REBUILD_COMMAND = "python -m course_lib.train stylegan2 --preset lecture --out build/runs/sg_lecture --set threads=1"
"""The command that trains the shipped generator (its card, ``assets/stylegan2_loops.md``, names the exact run)."""
NOISE_MODES = ("random", "const", "none")

__all__ = [
    "MelImageSpec", "StyleGAN2Config", "EqualConv2d", "MappingNetwork", "modulated_conv2d",
    "ModulatedConv2d", "NoiseInjection", "ConstantInput", "StyledConv", "ToMel", "Generator", "DBlock",
    "Discriminator", "truncate", "mix_styles", "d_logistic_loss", "g_nonsaturating_loss",
    "g_saturating_loss", "r1_penalty", "path_length_penalty", "ema_update", "ema_beta", "sample_diversity",
    "make_ema", "generate_mels", "generate_audio", "export_loops", "save_generator", "load_stylegan2", "load_generator",
    "AUGMENTATIONS", "augment_loop_images", "check_labels", "balanced_labels",
]


# --------------------------------------------------------------------------- mel <-> image

@dataclass(frozen=True)
class MelImageSpec:
    """How a loop's log-mel becomes a generator image, and back.

    Attributes:
        mel: the log-mel settings (Hz, samples); the course's ``COURSE_MEL`` by default.
        loop_samples: samples per loop (2 s at 16 kHz = 32 000); ``frames = loop_samples // hop``.
        width: image width in frames (>= frames); columns past ``frames`` repeat the loop's start.
        lo, hi: natural-log mel values mapped to -1 and +1 (``lo`` = log of the mel floor 1e-5).
    """

    mel: MelConfig = field(default_factory=MelConfig)
    loop_samples: int = 2 * DEFAULT_SR
    width: int = 128
    lo: float = math.log(1e-5)
    hi: float = 4.0

    def __post_init__(self) -> None:
        if self.width < self.frames:
            raise ValueError(f"image width {self.width} is smaller than the loop's {self.frames} frames")
        if self.hi <= self.lo:
            raise ValueError(f"hi ({self.hi}) must be above lo ({self.lo})")

    @property
    def frames(self) -> int:
        """Mel frames per loop (``loop_samples // hop``): a vocoder turns them into exactly one loop."""
        return self.loop_samples // self.mel.hop

    @property
    def size(self) -> tuple[int, int]:
        """Image ``(height, width)`` = ``(n_mels, width)``."""
        return (self.mel.n_mels, self.width)

    def to_image(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, >= frames)`` log-mel -> ``(batch, 1, n_mels, width)`` image in about [-1, 1]."""
        if log_mel.ndim != 3 or log_mel.shape[1] != self.mel.n_mels or log_mel.shape[2] < self.frames:
            raise ValueError(f"log_mel must be (batch, {self.mel.n_mels}, >= {self.frames}), got {tuple(log_mel.shape)}")
        m = log_mel[..., : self.frames]
        reps = math.ceil(self.width / self.frames)
        m = m.repeat(1, 1, reps)[..., : self.width]
        return ((m - self.lo) / (self.hi - self.lo) * 2.0 - 1.0).unsqueeze(1)

    def audio_to_image(self, audio: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """Loops ``(N, samples)`` -> images ``(N, 1, n_mels, width)``: the log-mel of ``mel``, ``chunk`` loops at a
        time (bounded memory), through :meth:`to_image` (which keeps the first ``frames`` frames)."""
        return torch.cat([self.to_image(log_mel(audio[i:i + chunk], self.mel)) for i in range(0, audio.shape[0], chunk)])

    def to_mel(self, image: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_mels, width)`` image -> log-mel ``(batch, n_mels, frames)`` (the loop's frames)."""
        if image.ndim != 4 or image.shape[1] != 1 or image.shape[2] != self.mel.n_mels or image.shape[3] < self.frames:
            raise ValueError(f"image must be (batch, 1, {self.mel.n_mels}, >= {self.frames}), got {tuple(image.shape)}")
        return (image[:, 0, :, : self.frames] + 1.0) * 0.5 * (self.hi - self.lo) + self.lo

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mel"] = self.mel.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MelImageSpec":
        d = dict(d)
        return cls(mel=MelConfig(**d.pop("mel")), **d)


# --------------------------------------------------------------------------- config

@dataclass
class StyleGAN2Config:
    """Sizes of a StyleGAN2 generator / discriminator pair.

    Attributes:
        image_size: ``(height, width)``; both must be divisible by ``2 ** n_up``.
        n_up: number of 2x upsampling blocks (the constant input is ``image_size / 2**n_up``).
        channels: feature channels per resolution, from the constant input up (``n_up + 1`` values);
            the discriminator mirrors them.
        z_dim, w_dim: latent sizes. mapping_layers: MLP depth. mapping_lr_mul: its learning-rate multiplier.
        mbstd_group: minibatch-stddev group size (0 = off).
        w_avg_beta: running-mean decay of w (for truncation).
        n_classes: 0 for an unconditional model; K > 0 for a class-conditional one (loop styles): the
            generator adds a learned per-class offset to w, the discriminator adds a projection term
            (Miyato & Koyama, 2018), and every call takes integer ``labels`` ``(batch,)`` in ``[0, K)``.
        class_lr_mul: learning-rate multiplier of the per-class w offsets (equalised-learning-rate style: the
            stored parameter is the offset divided by it). 1.0 (the default) trains them at the full rate; the
            mapping network's 0.01 keeps them near their random start, so the class cannot outgrow z's share of w.
        class_mapping: how a conditional generator reads its class. False (the default): a learned per-class
            offset added to w after the mapping network. True (StyleGAN2-ADA): a learned class embedding enters
            the mapping network beside z (both normalised), so the MLP can shape each class's own variety;
            truncation then pulls towards the mean w of all classes, as in StyleGAN2-ADA.
        pack: discriminator only (PacGAN, Lin et al., NeurIPS 2018): it judges ``pack`` images at once, stacked
            as input channels, so it can see when a batch's images are too alike (1 = one image per judgement).
        d_channels: the discriminator's channels per resolution (``n_up + 1`` values, same order as
            ``channels``); None (the default) mirrors the generator's. Lets the generator grow without the
            discriminator's cost growing with it.
        input_from_w: False (StyleGAN2): the synthesis starts from the learned constant alone, so where things
            happen in the image (a loop's hits on the time grid) can vary only through the styles. True: a map
            ``(channels[0], *base_size)`` projected from the first w by a dense layer is added to the constant (as
            the first layer of DCGAN / BigGAN), so each latent can lay out its own pattern.
        input_map_init: that projection's initial weights are ``input_map_init`` times N(0, 1) (equalised, so its
            learning rate does not change); 0 starts from the plain constant input.
    """

    image_size: tuple[int, int] = (80, 128)
    n_up: int = 4
    channels: tuple[int, ...] = (128, 128, 64, 64, 32)
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    mapping_lr_mul: float = 0.01
    mbstd_group: int = 4
    w_avg_beta: float = 0.995
    n_classes: int = 0
    class_lr_mul: float = 1.0
    class_mapping: bool = False
    pack: int = 1
    d_channels: tuple[int, ...] | None = None
    input_from_w: bool = False
    input_map_init: float = 1.0

    def __post_init__(self) -> None:
        if self.n_classes < 0:
            raise ValueError(f"n_classes must be >= 0 (0 = unconditional), got {self.n_classes}")
        if self.pack < 1:
            raise ValueError(f"pack must be >= 1 (images per discriminator judgement), got {self.pack}")
        if not self.input_map_init >= 0:
            raise ValueError(f"input_map_init must be >= 0, got {self.input_map_init}")
        if not self.class_lr_mul > 0:
            raise ValueError(f"class_lr_mul must be > 0, got {self.class_lr_mul}")
        self.image_size = tuple(int(s) for s in self.image_size)
        self.channels = tuple(int(c) for c in self.channels)
        f = 2 ** self.n_up
        if any(s % f for s in self.image_size):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**n_up = {f}")
        if len(self.channels) != self.n_up + 1:
            raise ValueError(f"channels needs n_up + 1 = {self.n_up + 1} values, got {len(self.channels)}")
        if self.d_channels is not None:
            self.d_channels = tuple(int(c) for c in self.d_channels)
            if len(self.d_channels) != self.n_up + 1 or min(self.d_channels) < 1:
                raise ValueError(f"d_channels needs n_up + 1 = {self.n_up + 1} positive values (or None: mirror "
                                 f"channels), got {self.d_channels}")

    @property
    def discriminator_channels(self) -> tuple[int, ...]:
        """The discriminator's channels per resolution: ``d_channels``, or the generator's when None."""
        return self.channels if self.d_channels is None else self.d_channels

    @property
    def base_size(self) -> tuple[int, int]:
        """Size ``(h, w)`` of the constant input."""
        f = 2 ** self.n_up
        return (self.image_size[0] // f, self.image_size[1] // f)

    @property
    def num_ws(self) -> int:
        """How many w vectors the synthesis network reads (2 per resolution)."""
        return 2 * (self.n_up + 1)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- equalized-lr layers

class EqualConv2d(nn.Module):
    """2-D convolution with equalized learning rate (same padding); ``(B, in, H, W) -> (B, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


# --------------------------------------------------------------------------- mapping network

class MappingNetwork(nn.Module):
    """z ``(batch, z_dim)`` -> w ``(batch, w_dim)``: pixel-normalise z, then an MLP of leaky-ReLU layers.

    With ``embed_dim`` > 0 it also reads a class embedding ``(batch, embed_dim)``, concatenated to the normalised
    z as it is given (the generator normalises it: StyleGAN2-ADA's conditional mapping). Keeps ``w_avg`` (buffer,
    ``(w_dim,)``), the running mean of the w it produced in training (updated by :meth:`update_w_avg`), the centre
    of the truncation trick.
    """

    def __init__(self, z_dim: int = 128, w_dim: int = 128, n_layers: int = 4, lr_mul: float = 0.01,
                 embed_dim: int = 0) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        dims = [z_dim + embed_dim] + [w_dim] * n_layers
        self.layers = nn.Sequential(*[EqualizedLinear(a, b, gain=1.0, lr_mul=lr_mul, activation="lrelu")
                                      for a, b in zip(dims[:-1], dims[1:])])
        self.z_dim, self.w_dim, self.embed_dim = z_dim, w_dim, embed_dim
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, embed: torch.Tensor | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (batch, {self.z_dim}), got {tuple(z.shape)}")
        expected = None if self.embed_dim == 0 else (z.shape[0], self.embed_dim)
        if (None if embed is None else tuple(embed.shape)) != expected:
            raise ValueError(f"embed must be ({z.shape[0]}, {self.embed_dim}) for this mapping network "
                             f"(None when embed_dim is 0), got {None if embed is None else tuple(embed.shape)}")
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        if embed is not None:
            z = torch.cat([z, embed], dim=1)
        return self.layers(z)

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, beta: float = 0.995) -> None:
        """``w_avg <- beta * w_avg + (1 - beta) * mean(w)`` for a batch ``w`` ``(batch, w_dim)``."""
        self.w_avg.copy_(torch.lerp(w.detach().mean(0).to(self.w_avg.dtype), self.w_avg, beta))


def check_labels(labels: torch.Tensor | None, n_classes: int, batch: int) -> torch.Tensor | None:
    """Validate class labels for a model with ``n_classes`` (0 = unconditional: labels must be None).

    Returns ``labels`` as a long tensor ``(batch,)`` in ``[0, n_classes)``, or None for an unconditional model.
    The range is checked for CPU labels only: reading a GPU tensor's min / max would wait for the device in
    every forward pass (training draws its labels from the checked training labels, :func:`generate_mels`
    checks them on the CPU before they move).
    """
    if n_classes == 0:
        if labels is not None:
            raise ValueError("this model is unconditional (n_classes=0); do not pass labels")
        return None
    if labels is None:
        raise ValueError(f"this model is class-conditional ({n_classes} classes): pass labels (batch,) in [0, {n_classes})")
    labels = torch.as_tensor(labels)
    if labels.shape != (batch,) or labels.is_floating_point():
        raise ValueError(f"labels must be integers of shape ({batch},), got {labels.dtype} {tuple(labels.shape)}")
    if labels.numel() and labels.device.type == "cpu" and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}), got min {int(labels.min())}, max {int(labels.max())}")
    return labels.long()


def balanced_labels(n: int, n_classes: int) -> torch.Tensor | None:
    """``(n,)`` labels ``0, 1, ..., K-1, 0, 1, ...`` (every class equally often), or None when ``n_classes`` is 0."""
    return torch.arange(n) % n_classes if n_classes > 0 else None


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """Truncation trick: ``w_avg + psi * (w - w_avg)`` on the first ``cutoff`` styles (all if None).

    ``ws`` ``(batch, num_ws, w_dim)`` or ``(batch, w_dim)``; psi = 1 leaves w unchanged, psi = 0
    gives every sample the average style (the "mean loop").
    """
    out = torch.lerp(w_avg.to(ws.dtype), ws, psi)
    if cutoff is None or ws.ndim == 2:
        return out
    out = out.clone()
    out[:, cutoff:] = ws[:, cutoff:]
    return out


def mix_styles(w1: torch.Tensor, w2: torch.Tensor, switch: int, num_ws: int) -> torch.Tensor:
    """Style mixing: ws ``(batch, num_ws, w_dim)`` reading ``w1`` before layer index ``switch``, ``w2`` from it on.

    ``w1``, ``w2``: ``(batch, w_dim)`` (or already broadcast ``(batch, num_ws, w_dim)``).
    """
    if not 0 <= switch <= num_ws:
        raise ValueError(f"switch must be in [0, {num_ws}], got {switch}")
    a = w1 if w1.ndim == 3 else w1.unsqueeze(1).expand(-1, num_ws, -1)
    b = w2 if w2.ndim == 3 else w2.unsqueeze(1).expand(-1, num_ws, -1)
    return torch.cat([a[:, :switch], b[:, switch:]], dim=1)


# --------------------------------------------------------------------------- modulated convolution

def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int | None = None, eps: float = 1e-8, fused: bool = False) -> torch.Tensor:
    """StyleGAN2's modulated (and demodulated) convolution.

    Args:
        x: input ``(batch, in_ch, H, W)``.
        weight: shared kernel ``(out_ch, in_ch, k, k)`` (already multiplied by its equalized-lr scale).
        styles: per-sample scale of every input channel ``(batch, in_ch)``.
        demodulate: rescale each sample's output filter to unit L2 norm, so that unit-variance
            input gives unit-variance output (replaces AdaIN's instance normalisation).
        padding: zero padding (default ``k // 2``: same size).
        fused: build one kernel per sample and run a grouped convolution (the paper's form);
            ``False`` (default, same result, much faster on CPU) scales the input channels by the
            styles, convolves with the shared kernel and scales the output channels by the
            demodulation coefficients.
    Returns:
        ``(batch, out_ch, H', W')``.
    """
    b, cin, h, w_ = x.shape
    cout, wcin, kh, kw = weight.shape
    if wcin != cin or styles.shape != (b, cin):
        raise ValueError(f"shapes disagree: x {tuple(x.shape)}, weight {tuple(weight.shape)}, styles {tuple(styles.shape)}")
    pad = kh // 2 if padding is None else padding
    if fused:
        wgt = weight.unsqueeze(0) * styles.reshape(b, 1, cin, 1, 1)  # (B, out, in, k, k)
        if demodulate:
            wgt = wgt * torch.rsqrt(wgt.square().sum(dim=(2, 3, 4), keepdim=True) + eps)
        out = F.conv2d(x.reshape(1, b * cin, h, w_), wgt.reshape(b * cout, cin, kh, kw), padding=pad, groups=b)
        return out.reshape(b, cout, out.shape[-2], out.shape[-1])
    out = F.conv2d(x * styles.reshape(b, cin, 1, 1), weight, padding=pad)
    if demodulate:
        # ||w * s||^2 per (sample, out channel) = sum_in s_in^2 * sum_k w[out, in, k]^2
        dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).T + eps)  # (B, out)
        out = out * dcoefs.reshape(b, cout, 1, 1)
    return out


class ModulatedConv2d(nn.Module):
    """A conv layer whose kernel is modulated by w: affine A maps w ``(batch, w_dim)`` to input-channel styles.

    ``(batch, in_ch, H, W)`` -> ``(batch, out_ch, H*s, W*s)`` with s = 2 if ``upsample`` (bilinear, then conv).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, gain=1.0, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.demodulate, self.upsample = demodulate, upsample

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return modulated_conv2d(x, self.weight * self.scale, self.affine(w), self.demodulate)


class NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise ``(batch, 1, H, W)`` times a learned per-layer strength (starts at 0).

    ``noise_mode``: ``"random"`` (fresh noise, from ``generator`` if given), ``"const"`` (a fixed
    buffer, for reproducible renders), ``"none"``; or pass ``noise`` explicitly.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("const_noise", torch.randn(1, 1, *size, generator=torch.Generator().manual_seed(123)))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        if noise is None:
            if noise_mode == "none":
                return x
            if noise_mode == "const":
                noise = self.const_noise
            elif noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], generator=generator,
                                    device=generator.device if generator is not None else x.device).to(x.device)
            else:
                raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return x + self.strength * noise.to(x.dtype)


class ConstantInput(nn.Module):
    """The learned constant ``(1, channels, h, w)`` the synthesis starts from, repeated over the batch."""

    def __init__(self, channels: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, channels, *size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.const.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv -> noise -> bias -> leaky ReLU(0.2) * sqrt(2): one generator layer (reads one w)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, size: tuple[int, int],
                 upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, demodulate=True, upsample=upsample)
        self.noise = NoiseInjection(size)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None,
                noise_mode: str = "random", generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.noise(self.conv(x, w), noise, noise_mode, generator)
        return F.leaky_relu(x + self.bias, 0.2) * math.sqrt(2.0)


class ToMel(nn.Module):
    """1x1 modulated conv (no demodulation) to one channel, plus the upsampled skip from the previous resolution."""

    def __init__(self, in_channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, 1, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 1, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        y = self.conv(x, w) + self.bias
        if skip is not None:
            y = y + F.interpolate(skip, scale_factor=2.0, mode="bilinear", align_corners=False)
        return y


# --------------------------------------------------------------------------- generator

class Generator(nn.Module):
    """StyleGAN2 skip generator: z ``(batch, z_dim)`` -> image ``(batch, 1, height, width)``.

    ``mapping`` gives ws ``(batch, num_ws, w_dim)`` (with optional truncation); ``synthesis`` turns
    ws into an image. Style index of each layer: constant block conv 0, its ToMel 1; block k
    (k = 1..n_up): upsampling conv 2k-1, conv 2k, ToMel 2k+1.
    """

    def __init__(self, config: StyleGAN2Config = StyleGAN2Config(), device: Device = None) -> None:
        super().__init__()
        self.config = config
        c, w_dim = config.channels, config.w_dim
        h0, w0 = config.base_size
        embed_dim = w_dim if config.n_classes > 0 and config.class_mapping else 0
        self.mapping_net = MappingNetwork(config.z_dim, w_dim, config.mapping_layers, config.mapping_lr_mul, embed_dim)
        if config.n_classes > 0 and config.class_mapping:  # a class embedding read by the mapping network
            self.class_embed = nn.Parameter(torch.randn(config.n_classes, w_dim) / config.class_lr_mul)
        elif config.n_classes > 0:  # one learned w offset per class, added after the mapping network
            self.class_w = nn.Parameter(torch.randn(config.n_classes, w_dim) / config.class_lr_mul)
        if config.n_classes > 0:
            # transitional conditioning (set by the trainer, 1 = fully conditional): scales the class's input
            self.register_buffer("class_strength", torch.ones(()), persistent=False)
        self.input = ConstantInput(c[0], (h0, w0))
        if config.input_from_w:  # a per-latent layout added to the constant
            self.input_map = EqualizedLinear(w_dim, c[0] * h0 * w0, gain=1.0)
            with torch.no_grad():
                self.input_map.weight.mul_(config.input_map_init)
        self.conv0 = StyledConv(c[0], c[0], w_dim, (h0, w0))
        self.to_mel0 = ToMel(c[0], w_dim)
        self.ups, self.convs, self.to_mels = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for k in range(1, config.n_up + 1):
            size = (h0 * 2 ** k, w0 * 2 ** k)
            self.ups.append(StyledConv(c[k - 1], c[k], w_dim, size, upsample=True))
            self.convs.append(StyledConv(c[k], c[k], w_dim, size))
            self.to_mels.append(ToMel(c[k], w_dim))
        if device is not None:  # built on the CPU (same weights for a seed on every device), then moved
            self.to(device)

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def style_layers(self) -> list[tuple[int, nn.Module]]:
        """``(style index, layer)`` for every layer that reads a w (layers have an ``.conv.affine``)."""
        out: list[tuple[int, nn.Module]] = [(0, self.conv0), (1, self.to_mel0)]
        for k in range(1, self.config.n_up + 1):
            out += [(2 * k - 1, self.ups[k - 1]), (2 * k, self.convs[k - 1]), (2 * k + 1, self.to_mels[k - 1])]
        return out

    def noise_sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of each noise input, in the order :meth:`synthesis` consumes a ``noise`` list."""
        layers = [self.conv0] + [m for pair in zip(self.ups, self.convs) for m in pair]
        return [tuple(m.noise.const_noise.shape[-2:]) for m in layers]

    def make_noise(self, batch: int, generator: torch.Generator | None = None, device: Device = None) -> list[torch.Tensor]:
        """Fresh noise inputs, a list of ``(batch, 1, H, W)`` matching :meth:`noise_sizes`."""
        dev = torch.device(device) if device is not None else self.input.const.device
        return [torch.randn(batch, 1, h, w, generator=generator,
                            device=generator.device if generator is not None else dev).to(dev)
                for h, w in self.noise_sizes()]

    @property
    def n_classes(self) -> int:
        return self.config.n_classes

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """z ``(batch, z_dim)`` (and ``labels`` ``(batch,)`` for a conditional model) -> ws ``(batch, num_ws, w_dim)``.

        The same w on every layer, truncated towards ``w_avg`` (the running mean of the mapping network's
        output); a conditional model with class offsets then adds its class's offset, so truncation keeps the
        class (with ``class_mapping`` the class embedding enters the mapping network, times ``class_strength``).
        """
        labels = check_labels(labels, self.config.n_classes, z.shape[0])
        embed = None
        if labels is not None and self.config.class_mapping:
            e = self.class_embed[labels.to(self.class_embed.device)] * self.config.class_lr_mul
            embed = e * torch.rsqrt(e.square().mean(dim=1, keepdim=True) + 1e-8) * self.class_strength
        w = self.mapping_net(z) if embed is None else self.mapping_net(z, embed)  # HW2's mapping reads z alone
        ws = w.unsqueeze(1).expand(-1, self.num_ws, -1)
        if truncation_psi != 1.0:
            ws = truncate(ws, self.mapping_net.w_avg, truncation_psi, truncation_cutoff)
        if labels is not None and not self.config.class_mapping:
            ws = ws + self.class_offsets[labels.to(self.class_w.device)].unsqueeze(1)
        return ws

    @property
    def class_offsets(self) -> torch.Tensor:
        """The per-class w offsets ``(n_classes, w_dim)`` (the parameter times ``class_lr_mul``, times the
        ``class_strength`` buffer: 1 except while a trainer ramps the conditioning in)."""
        return self.class_w * (self.config.class_lr_mul * self.class_strength)

    def unconditioned_w(self, ws: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The mapping network's own output ``(batch, w_dim)`` from ws ``(batch, num_ws, w_dim)`` (class offset
        removed): what :meth:`MappingNetwork.update_w_avg` should average."""
        w = ws[:, 0]
        labels = check_labels(labels, self.config.n_classes, w.shape[0])
        if labels is None or self.config.class_mapping:  # no offset to remove
            return w
        return w - self.class_offsets[labels.to(w.device)].detach()

    def synthesis(self, ws: torch.Tensor, noise: Sequence[torch.Tensor] | None = None, noise_mode: str = "random",
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """ws ``(batch, num_ws, w_dim)`` -> image ``(batch, 1, height, width)``."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.config.w_dim:
            raise ValueError(f"ws must be (batch, {self.num_ws}, {self.config.w_dim}), got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        n_noise = 1 + 2 * self.config.n_up
        if noise is not None and len(noise) != n_noise:
            raise ValueError(f"noise must hold {n_noise} tensors (see noise_sizes()), got {len(noise)}")
        nz = list(noise) if noise is not None else [None] * n_noise
        x = self.input(ws.shape[0])
        if self.config.input_from_w:
            x = x + self.input_map(ws[:, 0]).view(x.shape)
        x = self.conv0(x, ws[:, 0], nz[0], noise_mode, generator)
        img = self.to_mel0(x, ws[:, 1])
        for k in range(1, self.config.n_up + 1):
            x = self.ups[k - 1](x, ws[:, 2 * k - 1], nz[2 * k - 1], noise_mode, generator)
            x = self.convs[k - 1](x, ws[:, 2 * k], nz[2 * k], noise_mode, generator)
            img = self.to_mels[k - 1](x, ws[:, 2 * k + 1], img)
        return img

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise: Sequence[torch.Tensor] | None = None, noise_mode: str = "random",
                generator: torch.Generator | None = None, mix_z: torch.Tensor | None = None,
                mix_cutoff: int | None = None, return_ws: bool = False, labels: torch.Tensor | None = None):
        """z ``(batch, z_dim)`` -> image ``(batch, 1, height, width)`` (and ws if ``return_ws``).

        Style mixing: with ``mix_z`` ``(batch, z_dim)`` and ``mix_cutoff`` = k, layers with style
        index >= k read the styles of ``mix_z`` (:func:`mix_styles`; a conditional model mixes within
        the class ``labels``).
        """
        ws = self.mapping(z, truncation_psi, truncation_cutoff, labels)
        if mix_z is not None and mix_cutoff is not None and mix_cutoff < self.num_ws:
            ws = mix_styles(ws, self.mapping(mix_z, truncation_psi, truncation_cutoff, labels), mix_cutoff,
                            self.num_ws)
        img = self.synthesis(ws, noise, noise_mode, generator)
        return (img, ws) if return_ws else img


# --------------------------------------------------------------------------- discriminator

class DBlock(nn.Module):
    """Residual discriminator block: two 3x3 convs then 2x average-pool, plus a 1x1 downsampled skip; / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv1(x), 0.2) * math.sqrt(2.0)
        y = F.avg_pool2d(F.leaky_relu(self.conv2(y), 0.2) * math.sqrt(2.0), 2)
        return (y + F.avg_pool2d(self.skip(x), 2)) / math.sqrt(2.0)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: images ``(batch, 1, height, width)`` -> logits ``(batch // pack,)``.

    With ``config.pack`` = m > 1 (PacGAN) rows ``m*i .. m*i + m - 1`` form pack i, judged as one m-channel image.
    A conditional one (``n_classes`` > 0) adds the projection ``<embed(label), h> / sqrt(dim)`` of its last
    hidden features ``h`` to the logit, so it judges "a real loop of this class" (times its ``class_strength``
    buffer, which a trainer may ramp from 0 to 1: transitional conditioning); the images of one pack must share
    their label.
    """

    def __init__(self, config: StyleGAN2Config = StyleGAN2Config(), device: Device = None) -> None:
        super().__init__()
        self.config = config
        c = config.discriminator_channels
        self.from_mel = EqualConv2d(config.pack, c[-1], 1)
        self.blocks = nn.Sequential(*[DBlock(c[k], c[k - 1]) for k in range(config.n_up, 0, -1)])
        extra = 1 if config.mbstd_group > 0 else 0
        self.conv = EqualConv2d(c[0] + extra, c[0], 3)
        h0, w0 = config.base_size
        self.fc = EqualizedLinear(c[0] * h0 * w0, c[0], gain=1.0, activation="lrelu")
        self.out = EqualizedLinear(c[0], 1, gain=1.0)
        if config.n_classes > 0:
            self.class_embed = nn.Parameter(torch.randn(config.n_classes, c[0]))
            # weight of the projection term (set by the trainer while it ramps the conditioning in; else 1)
            self.register_buffer("class_strength", torch.ones(()), persistent=False)
        if device is not None:  # built on the CPU, then moved
            self.to(device)

    def forward(self, image: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if image.ndim != 4 or tuple(image.shape[1:]) != (1, *self.config.image_size):
            raise ValueError(f"image must be (batch, 1, {self.config.image_size[0]}, {self.config.image_size[1]}), "
                             f"got {tuple(image.shape)}")
        m, b = self.config.pack, image.shape[0]
        if b % m:
            raise ValueError(f"the discriminator judges packs of {m} images: batch {b} is not a multiple of {m}")
        labels = check_labels(labels, self.config.n_classes, b)
        if labels is not None and m > 1:
            labels = labels.view(b // m, m)
            if labels.device.type == "cpu" and bool((labels != labels[:, :1]).any()):
                raise ValueError(f"the {m} images of a pack must share their label, got {labels.tolist()}")
            labels = labels[:, 0]
        x = image.reshape(b // m, m, *image.shape[2:])
        x = F.leaky_relu(self.from_mel(x), 0.2) * math.sqrt(2.0)
        x = self.blocks(x)
        if self.config.mbstd_group > 0:
            x = minibatch_stddev(x, self.config.mbstd_group, strict=True)
        x = F.leaky_relu(self.conv(x), 0.2) * math.sqrt(2.0)
        h = self.fc(x.flatten(1))
        logit = self.out(h).squeeze(1)
        if labels is not None:
            e = self.class_embed[labels.to(h.device)]
            logit = logit + self.class_strength * (h * e).sum(1) / math.sqrt(h.shape[1])
        return logit


# --------------------------------------------------------------------------- differentiable augmentation

AUGMENTATIONS: tuple[str, ...] = ("shift", "cutout")


def augment_loop_images(images: torch.Tensor, policy: Sequence[str], frames: int, generator: torch.Generator,
                        steps_per_loop: int = 16, rank: int = 0, world_size: int = 1, p: float = 1.0) -> torch.Tensor:
    """DiffAugment for loop images: the same random, differentiable transforms for real and fake batches.

    The discriminator sees only augmented images (real and generated alike), so it cannot memorise
    a small training set, while the generator still learns the un-augmented distribution (every
    transform is applied to both sides and is differentiable; Zhao et al., 2020) - as long as no transform
    is applied so often that its outputs look alike whatever the input (``p`` below).

    Args:
        images: ``(batch, 1, n_mels, width)`` loop images; columns ``>= frames`` repeat the loop's start.
        policy: names from :data:`AUGMENTATIONS`:
            ``"shift"`` rolls each loop circularly in time by a whole number of 16th notes (a loop
            started on another 16th is still a loop; the repeated columns are rebuilt);
            ``"cutout"`` sets one random time band (1/8 of the loop) and one random mel band (1/8 of
            the bands) of each image to silence (-1).
        frames: mel frames in one loop (``MelImageSpec.frames``, 125 for 2 s at hop 256).
        generator: CPU random generator (the caller seeds it per step, for reproducibility).
        steps_per_loop: grid of the ``"shift"`` augmentation (16th notes in a one-bar loop).
        rank, world_size: under data parallelism the random draws are made for the global batch
            and this process keeps rows ``rank::world_size`` (so N processes follow one process's run).
        p: probability that a transform is applied to an image (drawn per image and transform). With
            ``p = 1`` the circular shift *leaks* (Karras et al., 2020, ADA): every loop is seen at a uniformly
            random 16th, so the discriminator cannot tell a loop started on the wrong 16th from a real one, and
            the generator's loops drift off the bar's downbeat. With ``p < 1`` the un-shifted share keeps the
            downbeat in place.
    Returns:
        ``(batch, 1, n_mels, width)``.
    """
    unknown = sorted(set(policy) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {AUGMENTATIONS}")
    b, _, h, width = images.shape
    if not 0 < frames <= width:
        raise ValueError(f"frames must be in (0, {width}], got {frames}")
    n = b * world_size

    def draw(high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(0, high, (n, *shape[1:]), generator=generator)[rank::world_size]

    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")

    def chosen() -> torch.Tensor | None:  # (b,) which images this transform applies to; None: all of them
        if p == 1.0:
            return None
        return (torch.rand((n,), generator=generator) < p)[rank::world_size]

    x = images
    if "shift" in policy:
        steps = draw(steps_per_loop, (b,))
        keep = chosen()
        if keep is not None:
            steps = torch.where(keep, steps, torch.zeros_like(steps))
        offsets = torch.round(steps.double() * frames / steps_per_loop).long()
        cols = (torch.arange(width).unsqueeze(0) % frames - offsets.unsqueeze(1)) % frames  # (b, width)
        x = torch.gather(x, 3, cols.to(x.device).view(b, 1, 1, width).expand(b, 1, h, width))
    if "cutout" in policy:
        tw, fh = max(1, frames // 8), max(1, h // 8)
        t0 = draw(frames - tw + 1, (b, 1))
        f0 = draw(h - fh + 1, (b, 1))
        t_idx, f_idx = torch.arange(width).unsqueeze(0), torch.arange(h).unsqueeze(0)
        t_mask = ((t_idx % frames >= t0) & (t_idx % frames < t0 + tw)).view(b, 1, 1, width)
        f_mask = ((f_idx >= f0) & (f_idx < f0 + fh)).view(b, 1, h, 1)
        mask = t_mask | f_mask
        keep = chosen()
        if keep is not None:
            mask = mask & keep.view(b, 1, 1, 1)
        x = torch.where(mask.to(x.device), torch.full_like(x, -1.0), x)
    return x


# --------------------------------------------------------------------------- losses and regularisers

def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator's logistic loss ``mean(softplus(D(fake))) + mean(softplus(-D(real)))`` (scalar)."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator's non-saturating loss ``mean(softplus(-D(G(z))))`` = -log sigmoid(D(G(z))) (scalar)."""
    return F.softplus(-fake_logits).mean()


def g_saturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The original minimax generator loss ``mean(log(1 - sigmoid(D(G(z)))))`` = -softplus(D(G(z))).

    Its gradient vanishes when the discriminator confidently rejects the fakes; kept to show why
    the non-saturating loss is used.
    """
    return -F.softplus(fake_logits).mean()


def r1_penalty(real_images: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty ``mean over judgements of ||dD(x)/dx||^2`` on real images (scalar, differentiable).

    One judgement is one image, or one pack of images for a PacGAN discriminator (its logits are fewer than
    ``real_images``' rows; the squared gradients of a pack's images are summed).

    ``real_images`` must have ``requires_grad=True`` and be the input that produced ``real_logits``.
    The training loss adds ``gamma / 2 * r1 * interval`` every ``interval`` steps (lazy regularisation).
    """
    if not real_images.requires_grad:
        raise ValueError("real_images must require grad (call real.requires_grad_(True) before D(real))")
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.square().reshape(real_logits.shape[0], -1).sum(1).mean()  # per judgement (a pack of images)


def path_length_penalty(images: torch.Tensor, ws: torch.Tensor, pl_mean: torch.Tensor, decay: float = 0.01,
                        noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Path-length regulariser: penalise deviations of ``|J_w^T y|`` (y random image-space noise) from its running mean.

    Args:
        images: ``(batch, 1, H, W)`` made from ``ws`` ``(batch, num_ws, w_dim)`` (part of the same graph).
        pl_mean: running mean of the path length (0-d tensor). decay: its update rate.
        noise: the random image ``y`` ``(batch, 1, H, W)`` (default: drawn here); it is divided by sqrt(H * W).
    Returns:
        ``(penalty (scalar), new pl_mean (0-d, detached))``.
    """
    h, w = images.shape[2], images.shape[3]
    y = (noise if noise is not None else torch.randn_like(images)).to(images) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    new_mean = pl_mean + decay * (lengths.detach().mean() - pl_mean)
    return (lengths - new_mean).square().mean(), new_mean.detach()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """Exponential moving average of weights: ``p_ema <- beta * p_ema + (1 - beta) * p``; buffers copied.

    ``beta`` in [0, 1]; the two modules must have the same architecture.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.copy_(torch.lerp(p.detach(), p_ema, beta))
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def ema_beta(batch_size: int, half_life_images: float) -> float:
    """EMA decay per step so that the average's half-life is ``half_life_images`` training images."""
    if half_life_images <= 0:
        return 0.0
    return 0.5 ** (batch_size / half_life_images)


def sample_diversity(images: torch.Tensor) -> float:
    """Mean pairwise L2 distance between samples ``(batch, ...)`` divided by sqrt(numel per sample).

    0 when every sample is the same (mode collapse); about sqrt(2) * std for independent samples.
    """
    x = images.detach().flatten(1).to("cpu", torch.float64)  # a float: computed in float64 on the CPU
    if x.shape[0] < 2:
        raise ValueError("need at least 2 samples to measure diversity")
    d = torch.cdist(x, x)
    n = x.shape[0]
    return float(d.sum() / (n * (n - 1)) / math.sqrt(x.shape[1]))


def make_ema(generator: nn.Module) -> nn.Module:
    """A frozen deep copy of ``generator`` to hold its moving average."""
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


# --------------------------------------------------------------------------- generation and export

@torch.no_grad()
def generate_mels(generator: Generator, spec: MelImageSpec, n: int, seed: int = 0, truncation_psi: float = 1.0,
                  batch_size: int = 32, noise_mode: str = "random", z: torch.Tensor | None = None,
                  device: Device = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` generated loop log-mels ``(n, n_mels, frames)`` (latents drawn from ``seed``, or ``z`` ``(n, z_dim)``).

    A class-conditional generator plays ``labels`` ``(n,)`` (default :func:`balanced_labels`: every class
    equally often, in turn). Images are clamped to [-1, 1] (the range of real loop images) before
    conversion to log-mel.
    """
    dev = torch.device(device) if device is not None else next(generator.parameters()).device
    g = torch.Generator().manual_seed(seed)
    if z is None:
        z = torch.randn(n, generator.z_dim, generator=g)
    k = getattr(generator.config, "n_classes", 0)
    labels = check_labels(labels if labels is not None else balanced_labels(n, k), k, n)
    out = []
    for i in range(0, n, batch_size):
        zi = z[i:i + batch_size].to(dev)
        noise = generator.make_noise(zi.shape[0], generator=g, device=dev) if noise_mode == "random" else None
        extra = {} if labels is None else {"labels": labels[i:i + batch_size].to(dev)}
        img = generator(zi, truncation_psi=truncation_psi, noise=noise, noise_mode=noise_mode, **extra)
        out.append(spec.to_mel(img.clamp(-1.0, 1.0)))  # the range of real images; keeps vocoders finite
    return torch.cat(out)


@torch.no_grad()
def generate_audio(generator: Generator, spec: MelImageSpec, n: int,
                   vocoder: Callable[[torch.Tensor], torch.Tensor] | nn.Module | None = None, seed: int = 0,
                   truncation_psi: float = 1.0, batch_size: int = 16, device: Device = None) -> torch.Tensor:
    """``n`` generated loops as audio ``(n, loop_samples)`` at ``spec.mel.sr`` Hz, peak <= 1.

    ``vocoder`` maps log-mel ``(batch, n_mels, frames)`` to audio ``(batch, >= loop_samples)`` (a MelGAN
    generator); None uses Griffin-Lim (:func:`course_lib.models.melgan.griffin_lim_vocoder`).
    """
    mels = generate_mels(generator, spec, n, seed, truncation_psi, batch_size, device=device)
    voc = vocoder if vocoder is not None else (lambda m: griffin_lim_vocoder(m, spec.mel, spec.loop_samples))
    out = []
    for i in range(0, n, batch_size):
        y = voc(mels[i:i + batch_size])
        if y.shape[-1] < spec.loop_samples:
            raise ValueError(f"vocoder returned {y.shape[-1]} samples, fewer than a loop ({spec.loop_samples})")
        out.append(y[..., : spec.loop_samples].float().clamp(-1.0, 1.0).cpu())
    return torch.cat(out)


def export_loops(folder: PathLike, audio: torch.Tensor, sr: int, prefix: str = "loop") -> list[Path]:
    """Write loops ``(n, samples)`` as 16-bit WAVs ``<prefix>_000.wav``, ``<prefix>_001.wav``... in ``folder``
    (created; three digits, as HW2 names them); returns the paths."""
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n, samples), got {tuple(audio.shape)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [save(folder / f"{prefix}_{i:03d}.wav", audio[i].clamp(-1, 1), sr) for i in range(audio.shape[0])]


def save_generator(generator: Generator, spec: MelImageSpec, path: PathLike, meta: dict | None = None) -> Path:
    """Save a generator (usually the EMA one) with its config and mel-image spec as a plain dict (atomically: an
    interrupted save leaves the old file). A conditional generator saved while its conditioning was still being
    ramped in keeps its ``class_strength``."""
    blob = {"kind": "stylegan2_generator", "config": generator.config.to_dict(), "spec": spec.to_dict(),
            "state_dict": {k: v.cpu() for k, v in generator.state_dict().items()}, "meta": meta or {}}
    if generator.config.n_classes > 0 and float(generator.class_strength) != 1.0:
        blob["class_strength"] = float(generator.class_strength)
    return atomic_save(blob, path)


def load_stylegan2(path: PathLike | None = None, device: Device = None) -> Generator:
    """Load a generator saved by :func:`save_generator` (default: the shipped ``assets/stylegan2_loops.pt``).

    Returns the generator in eval mode with its settings as attributes: ``.spec`` (the
    :class:`MelImageSpec` its images use) and ``.meta`` (how it was trained). A missing file raises
    ``FileNotFoundError`` naming the command that makes it.
    """
    blob = load_plain_checkpoint(path if path is not None else GENERATOR_ASSET, "stylegan2_generator", "StyleGAN2 generator", REBUILD_COMMAND)
    g = Generator(StyleGAN2Config(**blob["config"]))
    g.load_state_dict(blob["state_dict"])
    if "class_strength" in blob:
        g.class_strength.fill_(float(blob["class_strength"]))
    g.meta = blob.get("meta", {})
    g.spec = MelImageSpec.from_dict(blob["spec"])
    return g.to(device or "cpu").eval()


def load_generator(path: PathLike | None = None, device: Device = None) -> tuple[Generator, MelImageSpec]:
    """Deprecated older form of :func:`load_stylegan2`: ``(generator, spec)``. Kept for one term; it warns."""
    warnings.warn("course_lib.models.stylegan2.load_generator is deprecated: use load_stylegan2, which returns the "
                  "generator with its spec as .spec", DeprecationWarning, stacklevel=2)
    g = load_stylegan2(path, device)
    return g, g.spec
