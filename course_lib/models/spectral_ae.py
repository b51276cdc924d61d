"""The spectral autoencoder baseline of Lesson 07: log-magnitude in, log-magnitude out, Griffin-Lim for the phase.

A small convolutional autoencoder over STFT frames (the ``n_fft // 2 + 1`` frequency bins are the
channels of 1-D convolutions along time): the encoder squeezes every two frames into ``latent``
numbers, the decoder expands them back to a log-magnitude spectrogram. It learns no phase, so audio
comes from Griffin-Lim (:func:`course_lib.spectral.griffin_lim`), whose phase guesses are what you hear
as a metallic, smeared "phasiness" — the baseline DDSP is compared with in the lecture (no pitch is
given to this model: it must keep the pitch inside its spectrum).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import DEFAULT_SR
from course_lib.runtime.loop import TrainHistory, fit, random_crops, time_budget
from course_lib.spectral import griffin_lim, stft

Device = Union[str, torch.device, None]
PathLike = Union[str, Path]


@dataclass(frozen=True)
class SpectralAEConfig:
    """STFT (``n_fft``, ``hop`` in samples), widths of the two hidden layers, latent channels per 2 frames,
    the log-magnitude floor and the affine scaling ``(log|X| - offset) / scale`` the network sees."""

    sr: int = DEFAULT_SR
    n_fft: int = 1024
    hop: int = 256
    hidden: int = 256
    latent: int = 16
    floor: float = 1e-5
    offset: float = -5.0
    scale: float = 5.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


class SpectralAutoencoder(nn.Module):
    """Log-magnitude ``(batch, bins, frames)`` -> latents ``(batch, latent, ceil(frames / 2))`` -> log-magnitude."""

    def __init__(self, config: SpectralAEConfig | None = None, device: Device = None) -> None:
        super().__init__()
        self.config = cfg = config or SpectralAEConfig()
        h = cfg.hidden
        self.encoder = nn.Sequential(
            nn.Conv1d(cfg.bins, h, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv1d(h, h // 2, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Conv1d(h // 2, cfg.latent, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv1d(cfg.latent, h // 2, 3, padding=1), nn.LeakyReLU(0.1),
            nn.ConvTranspose1d(h // 2, h, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Conv1d(h, cfg.bins, 3, padding=1))
        if device is not None:
            self.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def log_magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``(batch, samples)`` -> scaled log-magnitude ``(batch, bins, frames)`` (what the network sees)."""
        cfg = self.config
        mag = stft(audio, cfg.n_fft, cfg.hop).abs()
        return (torch.log(mag + cfg.floor) - cfg.offset) / cfg.scale

    def magnitude(self, scaled: torch.Tensor) -> torch.Tensor:
        """Inverse of the scaling of :meth:`log_magnitude`: a linear magnitude ``(batch, bins, frames)``."""
        cfg = self.config
        return (torch.exp(scaled * cfg.scale + cfg.offset) - cfg.floor).clamp_min(0.0)

    def encode(self, scaled: torch.Tensor) -> torch.Tensor:
        return self.encoder(scaled)

    def forward(self, scaled: torch.Tensor) -> torch.Tensor:
        """Scaled log-magnitude ``(batch, bins, frames)`` -> its reconstruction, same shape."""
        frames = scaled.shape[-1]
        x = F.pad(scaled, (0, frames % 2), mode="replicate") if frames % 2 else scaled
        return self.decoder(self.encoder(x))[..., :frames]

    def loss(self, audio: torch.Tensor) -> torch.Tensor:
        """Mean absolute error of the scaled log-magnitudes of ``audio (batch, samples)``."""
        target = self.log_magnitude(audio)
        return (self(target) - target).abs().mean()

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, n_iter: int = 64, seed: int = 0) -> torch.Tensor:
        """Audio ``(batch, samples)`` -> autoencoded magnitude -> Griffin-Lim (``n_iter``) -> audio, same length."""
        cfg = self.config
        x = audio.to(self.device, torch.float32)
        mag = self.magnitude(self(self.log_magnitude(x)))
        return griffin_lim(mag, cfg.n_fft, cfg.hop, n_iter=n_iter, length=x.shape[-1], seed=seed)


def oracle_griffin_lim(audio: torch.Tensor, config: SpectralAEConfig = SpectralAEConfig(), n_iter: int = 64,
                       seed: int = 0) -> torch.Tensor:
    """Griffin-Lim from the *true* magnitude of ``audio (batch, samples)``: the phase artefacts alone."""
    mag = stft(audio, config.n_fft, config.hop).abs()
    return griffin_lim(mag, config.n_fft, config.hop, n_iter=n_iter, length=audio.shape[-1], seed=seed)


def train_spectral_ae(audio: torch.Tensor, steps: int, *, model: SpectralAutoencoder | None = None,
                      batch_size: int = 8, crop_frames: int = 32, lr: float = 1e-3, seed: int = 0,
                      max_seconds: float | None = None, progress: bool = True,
                      callback: Callable[[TrainHistory], None] | None = None,
                      device: Device = None) -> tuple[SpectralAutoencoder, TrainHistory]:
    """Train on random crops of notes ``audio (N, samples)`` for ``steps`` steps or ``max_seconds`` of wall time.

    ``max_seconds`` gives it the same compute budget as another model (the lesson: DDSP's training time).
    Returns (model in eval mode, history).
    """
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise ValueError(f"audio must be (notes, samples), got shape {tuple(audio.shape)}")
    torch.manual_seed(seed)
    model = model or SpectralAutoencoder(device=device)
    cfg = model.config
    crop = crop_frames * cfg.hop
    if audio.shape[-1] < crop:
        raise ValueError(f"notes of {audio.shape[-1]} samples are shorter than a crop of {crop_frames} frames")
    dev = model.device
    notes = audio.to(dev, torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def batch_fn(step: int, g: torch.Generator) -> torch.Tensor:
        return random_crops(notes, batch_size, crop, g)

    stop = time_budget(max_seconds, callback)
    hist = fit(model, opt, batch_fn, lambda m, b: m.loss(b), steps, seed=seed, progress=progress,
               desc="spectral AE", callback=stop)
    return model, hist


__all__ = ["SpectralAEConfig", "SpectralAutoencoder", "oracle_griffin_lim", "train_spectral_ae"]
