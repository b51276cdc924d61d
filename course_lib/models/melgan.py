"""MelGAN vocoder (Kumar et al., 2019): log-mel ``(batch, n_mels, T)`` -> audio ``(batch, T * hop)``.

* :class:`MelGANGenerator`: a 7-tap input conv, then one stage per upsampling ratio (leaky ReLU,
  transposed conv by the ratio, a residual stack of dilated convs with dilations 1, 3, 9), and a
  7-tap output conv with tanh. The product of the ratios is the hop, so T frames give T * hop samples.
  Weight normalisation on every conv.
* :class:`ScaleDiscriminator` / :class:`MultiScaleDiscriminator`: strided grouped 1-D convs on the
  waveform at 1x, 1/2x, 1/4x rate; each returns its feature maps (last = logits).
* Losses: :func:`d_hinge_loss`, :func:`g_hinge_loss`, :func:`feature_matching_loss` (L1 between
  discriminator features of real and fake), and :func:`multi_resolution_stft_loss` (spectral
  convergence + log-magnitude L1 over several FFT sizes; the auxiliary loss that makes a small
  CPU training converge in minutes).
* :func:`griffin_lim_vocoder`: the baseline - mel -> linear magnitude by least squares, then Griffin-Lim.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from course_lib.runtime.checkpoint import atomic_save, load_plain_checkpoint
from course_lib.spectral import MelConfig, griffin_lim, mel_filterbank

PathLike = Union[str, Path]
Device = Union[str, torch.device, None]
ASSETS = Path(__file__).resolve().parent.parent / "assets"
VOCODER_ASSET = ASSETS / "melgan_loops.pt"
REBUILD_COMMAND = "python -m course_lib.train melgan --preset lecture --out build/runs/melgan"
"""The command that trains the shipped MelGAN (its card, ``assets/melgan_loops.md``, names the exact run)."""
STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((256, 64, 256), (512, 128, 512), (1024, 256, 1024))

__all__ = [
    "MelGANConfig", "ResidualStack", "MelGANGenerator", "ScaleDiscriminator", "MultiScaleDiscriminator",
    "d_hinge_loss", "g_hinge_loss", "feature_matching_loss", "stft_magnitude", "multi_resolution_stft_loss",
    "griffin_lim_vocoder", "save_vocoder", "load_melgan", "load_vocoder",
]


@dataclass
class MelGANConfig:
    """Sizes of a MelGAN generator and its multi-scale discriminator.

    Attributes:
        n_mels: mel bands of the input. ratios: upsampling per stage (product = hop in samples).
        channels: channels after the input conv (halved at every stage). res_layers: dilated
            convs per residual stack (dilations 3**i).
        lo, hi: log-mel values mapped to -1 / +1 at the input (log of the 1e-5 floor .. 4).
        disc_scales: discriminators (each on a 2x average-pooled copy of the previous' input).
        disc_channels: first discriminator conv width; disc_max_channels: cap; disc_downsamples:
            strided (x4) grouped conv layers per discriminator.
    """

    n_mels: int = 80
    ratios: tuple[int, ...] = (8, 8, 2, 2)
    channels: int = 256
    res_layers: int = 3
    lo: float = math.log(1e-5)
    hi: float = 4.0
    disc_scales: int = 3
    disc_channels: int = 16
    disc_max_channels: int = 1024
    disc_downsamples: int = 4

    def __post_init__(self) -> None:
        self.ratios = tuple(int(r) for r in self.ratios)
        if any(r < 1 or r % 2 and r != 1 for r in self.ratios):
            raise ValueError(f"ratios must be 1 or even, got {self.ratios}")
        if self.channels // 2 ** len(self.ratios) < 1:
            raise ValueError(f"channels={self.channels} is too small for {len(self.ratios)} halvings")

    @property
    def hop(self) -> int:
        """Samples per mel frame (product of the ratios)."""
        return math.prod(self.ratios)

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualStack(nn.Module):
    """``res_layers`` residual blocks (lrelu, dilated 3-tap conv, lrelu, 1x1 conv) with dilations 1, 3, 9...

    ``(batch, channels, samples)`` -> same shape.
    """

    def __init__(self, channels: int, res_layers: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.skips = nn.ModuleList()
        for i in range(res_layers):
            d = 3 ** i
            self.blocks.append(nn.Sequential(
                nn.LeakyReLU(0.2), nn.ReflectionPad1d(d), weight_norm(nn.Conv1d(channels, channels, 3, dilation=d)),
                nn.LeakyReLU(0.2), weight_norm(nn.Conv1d(channels, channels, 1))))
            self.skips.append(weight_norm(nn.Conv1d(channels, channels, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, skip in zip(self.blocks, self.skips):
            x = skip(x) + block(x)
        return x


class MelGANGenerator(nn.Module):
    """Log-mel ``(batch, n_mels, T >= 4)`` (natural log, the course's ``log_mel``) -> audio ``(batch, T * hop)`` in [-1, 1]."""

    def __init__(self, config: MelGANConfig = MelGANConfig(), device: Device = None) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        layers: list[nn.Module] = [nn.ReflectionPad1d(3), weight_norm(nn.Conv1d(config.n_mels, ch, 7))]
        for r in config.ratios:
            out = ch // 2
            layers += [nn.LeakyReLU(0.2),
                       weight_norm(nn.ConvTranspose1d(ch, out, 2 * r, stride=r, padding=r // 2 + r % 2,
                                                      output_padding=r % 2) if r > 1 else nn.Conv1d(ch, out, 1)),
                       ResidualStack(out, config.res_layers)]
            ch = out
        layers += [nn.LeakyReLU(0.2), nn.ReflectionPad1d(3), weight_norm(nn.Conv1d(ch, 1, 7)), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        if device is not None:  # built on the CPU, then moved
            self.to(device)

    @property
    def hop(self) -> int:
        return self.config.hop

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if log_mel.ndim != 3 or log_mel.shape[1] != self.config.n_mels:
            raise ValueError(f"log_mel must be (batch, {self.config.n_mels}, frames), got {tuple(log_mel.shape)}")
        if log_mel.shape[-1] < 4:
            raise ValueError(f"MelGAN needs at least 4 mel frames (reflection padding), got {log_mel.shape[-1]}")
        x = (log_mel - self.config.lo) / (self.config.hi - self.config.lo) * 2.0 - 1.0
        return self.net(x).squeeze(1)


class ScaleDiscriminator(nn.Module):
    """One MelGAN discriminator: audio ``(batch, samples)`` -> list of feature maps ``(batch, C, L)``; the last is the logits."""

    def __init__(self, channels: int = 16, max_channels: int = 1024, downsamples: int = 4) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.ReflectionPad1d(7), weight_norm(nn.Conv1d(1, channels, 15)), nn.LeakyReLU(0.2))]
        ch = channels
        for _ in range(downsamples):
            out = min(ch * 4, max_channels)
            groups = max(1, ch // 4) if out % max(1, ch // 4) == 0 else 1
            layers.append(nn.Sequential(weight_norm(nn.Conv1d(ch, out, 41, stride=4, padding=20, groups=groups)),
                                        nn.LeakyReLU(0.2)))
            ch = out
        out = min(ch * 2, max_channels)
        layers.append(nn.Sequential(weight_norm(nn.Conv1d(ch, out, 5, padding=2)), nn.LeakyReLU(0.2)))
        layers.append(weight_norm(nn.Conv1d(out, 1, 3, padding=1)))
        self.layers = nn.ModuleList(layers)

    def forward(self, audio: torch.Tensor) -> list[torch.Tensor]:
        x = audio.unsqueeze(1) if audio.ndim == 2 else audio
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """``disc_scales`` :class:`ScaleDiscriminator` s on audio at 1x, 1/2x, 1/4x... rate.

    audio ``(batch, samples)`` -> one feature list per scale.
    """

    def __init__(self, config: MelGANConfig = MelGANConfig()) -> None:
        super().__init__()
        self.config = config
        self.discs = nn.ModuleList([ScaleDiscriminator(config.disc_channels, config.disc_max_channels,
                                                       config.disc_downsamples) for _ in range(config.disc_scales)])

    def forward(self, audio: torch.Tensor) -> list[list[torch.Tensor]]:
        if audio.ndim != 2:
            raise ValueError(f"audio must be (batch, samples), got {tuple(audio.shape)}")
        x = audio.unsqueeze(1)
        out = []
        for i, d in enumerate(self.discs):
            if i:
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


# --------------------------------------------------------------------------- losses

def d_hinge_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Discriminator hinge loss summed over scales: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``."""
    return sum(F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean() for r, f in zip(real, fake))


def g_hinge_loss(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Generator adversarial loss summed over scales: ``mean(-D(fake))``."""
    return sum(-f[-1].mean() for f in fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 distance between real (detached) and fake discriminator features, all layers but the logits, all scales."""
    terms = [F.l1_loss(f, r.detach()) for rs, fs in zip(real, fake) for r, f in zip(rs[:-1], fs[:-1])]
    return sum(terms) / len(terms)


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Magnitude STFT ``(batch, n_fft // 2 + 1, frames)`` of audio ``(batch, samples)`` (Hann window, centred), floored at 1e-5."""
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, win, window, center=True, return_complex=True)
    return spec.abs().clamp_min(1e-5)


def multi_resolution_stft_loss(y_hat: torch.Tensor, y: torch.Tensor,
                               resolutions: Sequence[tuple[int, int, int]] = STFT_RESOLUTIONS) -> torch.Tensor:
    """Mean over (n_fft, hop, win) of spectral convergence ``||Y|-|Ŷ||_F / ||Y||_F`` + mean ``|log|Y| - log|Ŷ||``.

    Per clip; the denominator is floored at 0.01 per bin so that silent reference crops stay finite.

    ``y_hat``, ``y``: audio ``(batch, samples)`` of equal shape. Returns a scalar (0 iff the magnitudes match).
    """
    if y_hat.shape != y.shape:
        raise ValueError(f"y_hat {tuple(y_hat.shape)} and y {tuple(y.shape)} must have the same shape")
    total = y.new_zeros(())
    for n_fft, hop, win in resolutions:
        m_hat, m = stft_magnitude(y_hat, n_fft, hop, win), stft_magnitude(y, n_fft, hop, win)
        # a floor of 0.01 per bin on the reference's norm keeps silent crops from blowing the ratio up
        floor = 0.01 * math.sqrt(m[0].numel())
        sc = torch.linalg.norm((m - m_hat).flatten(1), dim=1) / torch.linalg.norm(m.flatten(1), dim=1).clamp_min(floor)
        total = total + sc.mean() + F.l1_loss(m_hat.log(), m.log())
    return total / len(resolutions)


# --------------------------------------------------------------------------- baseline and I/O

@torch.no_grad()
def griffin_lim_vocoder(log_mel: torch.Tensor, mel: MelConfig = MelConfig(), length: int | None = None,
                        n_iter: int = 32, periodic: bool = True, seed: int = 0) -> torch.Tensor:
    """Baseline vocoder: log-mel ``(batch, n_mels, T)`` -> linear magnitude (least squares, >= 0) -> Griffin-Lim.

    ``periodic=True`` treats the clip as a loop (appends its first frame, so T frames give exactly
    ``T * hop`` samples); ``length`` (samples) defaults to ``T * hop``. Returns ``(batch, length)``.
    """
    if log_mel.ndim == 2:
        log_mel = log_mel.unsqueeze(0)
    fb = mel_filterbank(mel).double()  # least squares in float64 on the CPU (Apple MPS has no float64)
    inv = torch.linalg.pinv(fb)  # (n_freq, n_mels)
    mag = (inv @ log_mel.to("cpu", torch.float64).clamp(max=20.0).exp()).clamp_min(0.0).float()  # cap: keep the iterations finite
    mag = mag.to(log_mel.device)
    if periodic:
        mag = torch.cat([mag, mag[..., :1]], dim=-1)
    n = length if length is not None else log_mel.shape[-1] * mel.hop
    y = griffin_lim(mag, mel.n_fft, mel.hop, n_iter=n_iter, length=n, seed=seed)
    return y.clamp(-1.0, 1.0)


def save_vocoder(vocoder: MelGANGenerator, path: PathLike, mel: MelConfig = MelConfig(), meta: dict | None = None) -> Path:
    """Save a MelGAN generator with its config and mel settings as a plain dict, atomically."""
    return atomic_save({"kind": "melgan_generator", "config": vocoder.config.to_dict(), "mel": mel.to_dict(),
                        "state_dict": {k: v.cpu() for k, v in vocoder.state_dict().items()}, "meta": meta or {}}, path)


def load_melgan(path: PathLike | None = None, device: Device = None) -> MelGANGenerator:
    """Load a vocoder saved by :func:`save_vocoder` (default: the shipped ``assets/melgan_loops.pt``).

    Returns the generator in eval mode with its settings as attributes: ``.mel`` (the :class:`MelConfig` of the
    mels it inverts) and ``.meta`` (how it was trained). A missing file raises ``FileNotFoundError`` naming the
    command that makes it.
    """
    blob = load_plain_checkpoint(path if path is not None else VOCODER_ASSET, "melgan_generator", "MelGAN", REBUILD_COMMAND)
    g = MelGANGenerator(MelGANConfig(**blob["config"]))
    g.load_state_dict(blob["state_dict"])
    g.meta = blob.get("meta", {})
    g.mel = MelConfig(**blob["mel"])
    return g.to(device or "cpu").eval()


def load_vocoder(path: PathLike | None = None, device: Device = None) -> tuple[MelGANGenerator, MelConfig]:
    """Deprecated older form of :func:`load_melgan`: ``(vocoder, mel)``. Kept for one term; it warns."""
    warnings.warn("course_lib.models.melgan.load_vocoder is deprecated: use load_melgan, which returns the vocoder "
                  "with its mel settings as .mel", DeprecationWarning, stacklevel=2)
    g = load_melgan(path, device)
    return g, g.mel
