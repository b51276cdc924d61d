"""A RAVE-style waveform VAE at a CPU budget (Lesson 07): PQMF bands -> convolutional VAE -> PQMF synthesis.

RAVE (Caillon & Esling, 2021) in miniature, *first training stage only* (representation learning with a
multi-scale spectral loss and a KL term; RAVE's second, adversarial stage is left out):

* :class:`~course_lib.models.pqmf.PQMF` splits 16 kHz audio into ``n_bands`` bands at ``16 kHz / n_bands``;
* the encoder (strided 1-D convolutions) gives a mean and log-variance per latent channel at
  ``16 kHz / (n_bands * 4)``; a sample ``z = mu + sigma * eps`` is decoded by transposed convolutions back
  to the band signals, and the PQMF synthesis filters make the waveform.

It exists to measure what a few CPU minutes give (Lesson 07's table and the README), not to sound good.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Union

import torch
from torch import nn

from course_lib.models.pqmf import PQMF
from course_lib.runtime.loop import TrainHistory, fit, random_crops, time_budget
from course_lib.spectral import multiscale_spectral_distance

Device = Union[str, torch.device, None]


@dataclass(frozen=True)
class RaveLiteConfig:
    """Bands of the PQMF, hidden channels, latent channels and the KL weight ``beta``."""

    n_bands: int = 16
    hidden: int = 96
    latent: int = 16
    beta: float = 0.01

    def to_dict(self) -> dict:
        return asdict(self)


class RaveLite(nn.Module):
    """Audio ``(batch, samples)`` (a multiple of ``4 n_bands`` samples) -> reconstruction, same shape."""

    def __init__(self, config: RaveLiteConfig | None = None, device: Device = None) -> None:
        super().__init__()
        self.config = cfg = config or RaveLiteConfig()
        m, h = cfg.n_bands, cfg.hidden
        self.pqmf = PQMF(m)
        self.encoder = nn.Sequential(
            nn.Conv1d(m, h, 7, padding=3), nn.LeakyReLU(0.2),
            nn.Conv1d(h, h, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(h, h, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(h, 2 * cfg.latent, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv1d(cfg.latent, h, 3, padding=1), nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(h, h, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(h, h, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(h, m, 7, padding=3), nn.Tanh())
        if device is not None:
            self.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio -> (mean, log-variance), each ``(batch, latent, samples / (4 n_bands))``."""
        stats = self.encoder(self.pqmf.analysis(audio))
        mean, logvar = stats.chunk(2, dim=1)
        return mean, logvar.clamp(-10.0, 5.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(batch, latent, frames)`` -> audio ``(batch, frames * 4 n_bands)``."""
        return self.pqmf.synthesis(self.decoder(z))

    def forward(self, audio: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (reconstruction, KL divergence per clip ``(batch,)``)."""
        mean, logvar = self.encode(audio)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=1).mean(dim=-1)
        return self.decode(z), kl

    def loss(self, audio: torch.Tensor) -> torch.Tensor:
        recon, kl = self(audio)
        return (multiscale_spectral_distance(audio, recon) + self.config.beta * kl).mean()

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``(batch, samples)`` -> reconstruction from the latent means, same length (zero-padded inside)."""
        block = 4 * self.config.n_bands
        n = audio.shape[-1]
        x = torch.nn.functional.pad(audio.to(self.device, torch.float32), (0, (-n) % block))
        return self(x, sample=False)[0][..., :n]


def train_rave_lite(audio: torch.Tensor, steps: int, *, model: RaveLite | None = None, batch_size: int = 8,
                    crop: int = 8192, lr: float = 1e-3, seed: int = 0, max_seconds: float | None = None,
                    progress: bool = True, callback: Callable[[TrainHistory], None] | None = None,
                    device: Device = None) -> tuple[RaveLite, TrainHistory]:
    """Train on random crops of notes ``audio (N, samples)`` for ``steps`` steps or ``max_seconds`` of wall time."""
    if audio.ndim != 2 or audio.shape[-1] < crop:
        raise ValueError(f"audio must be (notes, samples >= {crop}), got shape {tuple(audio.shape)}")
    torch.manual_seed(seed)
    model = model or RaveLite(device=device)
    block = 4 * model.config.n_bands
    if crop % block:
        raise ValueError(f"crop must be a multiple of {block} samples, got {crop}")
    notes = audio.to(model.device, torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def batch_fn(step: int, g: torch.Generator) -> torch.Tensor:
        return random_crops(notes, batch_size, crop, g)

    stop = time_budget(max_seconds, callback)
    hist = fit(model, opt, batch_fn, lambda m, b: m.loss(b), steps, seed=seed, progress=progress,
               desc="RAVE-lite", callback=stop, grad_clip=5.0)
    return model, hist


__all__ = ["RaveLite", "RaveLiteConfig", "train_rave_lite"]
