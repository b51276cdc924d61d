"""Spectral representations (Lessons 01-05).

STFT / iSTFT, the course's mel filterbank and log-mel, log-magnitude with a floor,
Griffin-Lim phase reconstruction, and GANSynth's instantaneous frequency (IF): the phase
unwrapped along time, differenced frame to frame and divided by pi, with its exact inverse
(a cumulative sum back to phase).
:func:`multiscale_spectral_distance` compares two clips at several FFT sizes at once (DDSP's
training loss and Lesson 07's reconstruction metric).

Shapes: audio ``(batch, samples)`` (1-D input is treated as a batch of one and returned 1-D
where noted); complex spectrograms ``(batch, n_fft // 2 + 1, frames)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torchaudio.functional as AF

from course_lib import DEFAULT_SR


def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.ndim == 1:
        return x.unsqueeze(0), True
    if x.ndim != 2:
        raise ValueError(f"audio must be (samples,) or (batch, samples), got shape {tuple(x.shape)}")
    return x, False


def _window(n_fft: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype)


def stft(x: torch.Tensor, n_fft: int = 1024, hop: int = 256, center: bool = True) -> torch.Tensor:
    """Complex STFT with a periodic Hann window.

    Args:
        x: audio ``(batch, samples)`` or ``(samples,)``.
        n_fft: frame length and FFT size in samples. hop: hop size in samples.
        center: pad by ``n_fft // 2`` (reflect) so frame ``t`` is centred on sample ``t * hop``.
    Returns:
        complex64 ``(batch, n_fft // 2 + 1, frames)`` (batch of one for 1-D input).
    """
    xb, _ = _batched(x)
    if xb.shape[-1] == 0:
        raise ValueError("stft: audio is empty")
    if center and xb.shape[-1] <= n_fft // 2:
        raise ValueError(f"stft: audio of {xb.shape[-1]} samples is too short for n_fft={n_fft} with reflect padding")
    return torch.stft(
        xb, n_fft=n_fft, hop_length=hop, window=_window(n_fft, xb.device), center=center,
        pad_mode="reflect", return_complex=True,
    )


def istft(spec: torch.Tensor, n_fft: int = 1024, hop: int = 256, length: int | None = None,
          center: bool = True) -> torch.Tensor:
    """Inverse of :func:`stft` (weighted overlap-add): ``(batch, freq, frames)`` -> ``(batch, samples)``."""
    if spec.ndim == 2:
        spec = spec.unsqueeze(0)
    return torch.istft(
        spec, n_fft=n_fft, hop_length=hop, window=_window(n_fft, spec.device, spec.real.dtype),
        center=center, length=length,
    )


@dataclass(frozen=True)
class MelConfig:
    """Mel-spectrogram settings (sr and frequencies in Hz, sizes in samples)."""

    sr: int = DEFAULT_SR
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    htk: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def frames(self, samples: int) -> int:
        """Number of (centred) frames for a clip of ``samples`` samples."""
        return samples // self.hop + 1


def mel_filterbank(cfg: MelConfig = MelConfig(), device: torch.device | str | None = None) -> torch.Tensor:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` (Slaney area-normalised; HTK or Slaney scale)."""
    if cfg.fmax > cfg.sr / 2 + 1e-6:
        raise ValueError(f"fmax={cfg.fmax} Hz is above Nyquist ({cfg.sr / 2} Hz)")
    fb = AF.melscale_fbanks(
        n_freqs=cfg.n_fft // 2 + 1, f_min=cfg.fmin, f_max=cfg.fmax, n_mels=cfg.n_mels,
        sample_rate=cfg.sr, norm="slaney", mel_scale="htk" if cfg.htk else "slaney",
    )
    return fb.T.contiguous().to(device or "cpu")


def mel_spectrogram(x: torch.Tensor, cfg: MelConfig = MelConfig(), power: float = 1.0) -> torch.Tensor:
    """Mel spectrogram ``(batch, n_mels, frames)`` of audio ``(batch, samples)``; power 1 = magnitude."""
    spec = stft(x, cfg.n_fft, cfg.hop).abs()
    if power != 1.0:
        spec = spec.pow(power)
    return torch.matmul(mel_filterbank(cfg, spec.device), spec)


def log_mel(x: torch.Tensor, cfg: MelConfig = MelConfig(), floor: float = 1e-5) -> torch.Tensor:
    """Natural-log mel magnitude ``log(max(mel, floor))``, ``(batch, n_mels, frames)``."""
    return torch.log(mel_spectrogram(x, cfg).clamp_min(floor))


def log_magnitude(spec: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """``log(|X| + floor)`` of a complex (or magnitude) spectrogram (GANSynth's magnitude image)."""
    mag = spec.abs() if torch.is_complex(spec) else spec
    return torch.log(mag + floor)


def griffin_lim(magnitude: torch.Tensor, n_fft: int = 1024, hop: int = 256, n_iter: int = 32,
                length: int | None = None, momentum: float = 0.99, seed: int = 0) -> torch.Tensor:
    """Phase reconstruction from a magnitude ``(batch, freq, frames)`` (fast Griffin-Lim, Perraudin 2013).

    Starts from a seeded random phase, alternates iSTFT/STFT projections with momentum;
    returns audio ``(batch, samples)``.
    """
    if magnitude.ndim == 2:
        magnitude = magnitude.unsqueeze(0)
    g = torch.Generator().manual_seed(seed)  # drawn on the CPU: the same start on every device
    angles = torch.exp(2j * math.pi * torch.rand(magnitude.shape, generator=g).to(magnitude.device))
    if length is None:
        length = (magnitude.shape[-1] - 1) * hop
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        audio = istft(magnitude * angles, n_fft, hop, length=length)
        rebuilt = stft(audio, n_fft, hop)
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
    return istft(magnitude * angles, n_fft, hop, length=length)


def precise_dtype(device: torch.device) -> torch.dtype:
    """The most precise float for work on ``device``: float64 on the CPU, float32 elsewhere (Apple MPS has no
    float64, CUDA's is slow)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def instantaneous_frequency(phase: torch.Tensor, time_axis: int = -1) -> torch.Tensor:
    """GANSynth IF: unwrap the phase along time, take the first difference, divide by pi.

    The first frame's difference is taken against zero, so the map is exactly invertible by
    :func:`phase_from_if`. Values lie in [-1, 1] up to the unwrapping (radians / pi).
    """
    ph = phase.to(precise_dtype(phase.device))
    unwrapped = _unwrap(ph, time_axis)
    diff = torch.diff(unwrapped, dim=time_axis, prepend=torch.zeros_like(unwrapped.narrow(time_axis, 0, 1)))
    return (diff / math.pi).to(phase.dtype)


def wrap_phase(phase: torch.Tensor) -> torch.Tensor:
    """Angles in radians wrapped to [-pi, pi) (same shape and dtype)."""
    return torch.remainder(phase + math.pi, 2 * math.pi) - math.pi


def phase_from_if(inst_freq: torch.Tensor, time_axis: int = -1) -> torch.Tensor:
    """Inverse of :func:`instantaneous_frequency`: cumulative sum along time, times pi, wrapped to (-pi, pi]."""
    ph = torch.cumsum(inst_freq.to(precise_dtype(inst_freq.device)) * math.pi, dim=time_axis)
    return wrap_phase(ph).to(inst_freq.dtype)


def _unwrap(phase: torch.Tensor, dim: int) -> torch.Tensor:
    """NumPy-style phase unwrapping along ``dim`` (jumps larger than pi are corrected by 2 pi)."""
    d = torch.diff(phase, dim=dim)
    d_mod = wrap_phase(d)
    d_mod = torch.where((d_mod == -math.pi) & (d > 0), torch.full_like(d_mod, math.pi), d_mod)
    correction = torch.where(d.abs() < math.pi, torch.zeros_like(d), d_mod - d)
    first = phase.narrow(dim, 0, 1)
    return torch.cat([first, first + torch.cumsum(d + correction, dim=dim)], dim=dim)


def audio_to_logmag_if(x: torch.Tensor, n_fft: int = 1024, hop: int = 256,
                       floor: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio ``(batch, samples)`` -> (log-magnitude, IF), each ``(batch, n_fft // 2 + 1, frames)``."""
    spec = stft(x, n_fft, hop)
    return log_magnitude(spec, floor), instantaneous_frequency(torch.angle(spec))


def logmag_if_to_audio(logmag: torch.Tensor, inst_freq: torch.Tensor, n_fft: int = 1024, hop: int = 256,
                       length: int | None = None, floor: float = 1e-6) -> torch.Tensor:
    """Exact inverse of :func:`audio_to_logmag_if`: ``(batch, freq, frames)`` pair -> audio ``(batch, samples)``."""
    if logmag.shape != inst_freq.shape:
        raise ValueError(f"log-magnitude {tuple(logmag.shape)} and IF {tuple(inst_freq.shape)} shapes differ")
    precise = precise_dtype(logmag.device)
    magnitude = (torch.exp(logmag.to(precise)) - floor).clamp_min(0.0)
    phase = phase_from_if(inst_freq.to(precise))
    spec = torch.polar(magnitude, phase)
    return istft(spec, n_fft, hop, length=length).to(torch.float32)


MULTISCALE_FFT_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)
"""DDSP's FFT sizes (Engel et al., 2020): each scale sees a different time / frequency trade-off."""


def multiscale_spectral_distance(reference: torch.Tensor, estimate: torch.Tensor,
                                 fft_sizes: tuple[int, ...] = MULTISCALE_FFT_SIZES, overlap: float = 0.75,
                                 log_weight: float = 1.0, eps: float = 1e-7) -> torch.Tensor:
    """Multi-scale spectral distance per clip ``(batch,)`` between audio ``(batch, samples)`` pairs.

    For each FFT size ``n`` (hop ``n (1 - overlap)``, Hann window) with magnitudes ``S`` and ``S'``:
    ``mean|S - S'| + log_weight * mean|log(S + eps) - log(S' + eps)|``; the scales are summed.
    Differentiable in both inputs; 0 exactly when the clips are equal.
    """
    ref, _ = _batched(reference)
    est, _ = _batched(estimate)
    if ref.shape != est.shape:
        raise ValueError(f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} shapes differ")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    total = ref.new_zeros(ref.shape[0])
    for n_fft in fft_sizes:
        hop = max(1, int(n_fft * (1.0 - overlap)))
        s_ref, s_est = stft(ref, n_fft, hop).abs(), stft(est, n_fft, hop).abs()
        total = total + (s_ref - s_est).abs().mean(dim=(1, 2))
        if log_weight:
            total = total + log_weight * (torch.log(s_ref + eps) - torch.log(s_est + eps)).abs().mean(dim=(1, 2))
    return total
