"""Additive synthesis: sums of (decaying) sinusoidal partials (Lesson 01).

Partial ``k`` of a voice is ``a_k * exp(-d_k t) * sin(2 pi r_k phi(t) + p_k)``, where ``phi`` is
the running phase of ``f0`` in cycles, ``r_k`` the frequency ratio, ``d_k`` the decay rate in
1/s and ``p_k`` the start phase in radians. Partials at or above Nyquist are dropped (per sample,
so a glide loses partials as they cross ``sr/2`` instead of aliasing).

:func:`harmonic_synth` is the time-varying, differentiable form that DDSP needs (Lesson 07): every
harmonic gets its own amplitude *per sample*, and gradients flow to the amplitudes and to ``f0``.
"""

from __future__ import annotations

import math
from typing import Union

import torch

from course_lib import DEFAULT_SR
from course_lib.synth.core import Param, as_control, batch_size_of, n_samples, phase_from_frequency, resolve_device

Device = Union[str, torch.device, None]

# Risset's bell (Computer Sound Catalog, 1969): frequency ratio, extra offset in Hz,
# relative amplitude and relative duration of each partial.
_RISSET_BELL = (
    (0.56, 0.0, 1.00, 1.000),
    (0.56, 1.0, 0.67, 0.900),
    (0.92, 0.0, 1.00, 0.650),
    (0.92, 1.7, 1.80, 0.550),
    (1.19, 0.0, 2.67, 0.325),
    (1.70, 0.0, 1.67, 0.350),
    (2.00, 0.0, 1.46, 0.250),
    (2.74, 0.0, 1.33, 0.200),
    (3.00, 0.0, 1.33, 0.150),
    (3.76, 0.0, 1.00, 0.100),
    (4.07, 0.0, 1.33, 0.075),
)


def _partial_table(name: str, p: Param | None, batch: int, n: int, default: float, dev: torch.device) -> torch.Tensor:
    """(n,) or (batch, n) -> float64 (batch, n, 1)."""
    if p is None:
        return torch.full((batch, n, 1), default, dtype=torch.float64, device=dev)
    t = torch.as_tensor(p, dtype=torch.float64, device=dev)
    if t.ndim == 1:
        t = t.reshape(1, -1)
    if t.ndim != 2 or t.shape[1] != n or t.shape[0] not in (1, batch):
        raise ValueError(f"{name} must have shape ({n},) or ({batch}, {n}), got {tuple(torch.as_tensor(p).shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    return t.expand(batch, n).unsqueeze(-1)


def additive(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    amplitudes: Param,
    ratios: Param | None = None,
    decays: Param | None = None,
    phases: Param | None = None,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Sum of partials -> float32 ``(batch, samples)`` (not normalised).

    Args:
        f0: base frequency in Hz: number, ``(batch,)`` or ``(batch, samples)``.
        amplitudes: ``(n_partials,)`` or ``(batch, n_partials)`` linear amplitudes.
        ratios: frequency of each partial / f0, same shapes; default harmonic ``1, 2, ..., N``.
        decays: exponential decay rates in 1/s (amplitude ``exp(-decay t)``); default 0.
        phases: start phases in radians; default 0.
    """
    amps = torch.as_tensor(amplitudes, dtype=torch.float32)
    if amps.ndim not in (1, 2) or amps.shape[-1] == 0:
        raise ValueError(f"amplitudes must have shape (n_partials,) or (batch, n_partials), got {tuple(amps.shape)}")
    n_part = amps.shape[-1]
    per_voice = [p for p in (amplitudes, ratios, decays, phases) if isinstance(p, torch.Tensor) and p.ndim == 2]
    out_dev = resolve_device(device, f0, amplitudes, ratios if ratios is not None else 0.0)
    dev = torch.device("cpu")  # summed in float64 on the CPU (Apple MPS has none), then moved to out_dev
    b = batch_size_of(f0, *per_voice, batch=batch)
    samples = n_samples(duration, sr)
    freq = as_control(f0, b, samples, dev).to(torch.float64)
    if not torch.isfinite(freq).all() or (freq < 0).any():
        raise ValueError("f0 must be finite and >= 0 Hz")

    amp_t = _partial_table("amplitudes", amplitudes, b, n_part, 0.0, dev)
    rat_t = _partial_table("ratios", ratios, b, n_part, 0.0, dev)
    if ratios is None:
        rat_t = torch.arange(1, n_part + 1, dtype=torch.float64, device=dev).reshape(1, -1, 1).expand(b, n_part, 1)
    dec_t = _partial_table("decays", decays, b, n_part, 0.0, dev)
    ph_t = _partial_table("phases", phases, b, n_part, 0.0, dev) / (2 * math.pi)
    if (dec_t < 0).any():
        raise ValueError("decays must be >= 0 (1/s)")

    # unwrapped running phase of f0 in cycles (float64, so high partials of long notes stay in tune)
    inc = (freq / sr).expand(b, samples)
    phi = torch.cumsum(inc, dim=-1) - inc
    t = torch.arange(samples, dtype=torch.float64, device=dev).reshape(1, -1) / sr
    nyq = 0.5 * sr
    out = torch.zeros(b, samples, dtype=torch.float32, device=dev)
    for k in range(n_part):
        r, a = rat_t[:, k], amp_t[:, k]  # (batch, 1)
        audible = (r * freq < nyq) & (a != 0)
        if not bool(audible.any()):
            continue
        cyc = torch.remainder(r * phi + ph_t[:, k], 1.0)
        gain = a * torch.exp(-dec_t[:, k] * t) * audible
        out += (gain * torch.sin(2 * math.pi * cyc)).to(torch.float32)
    return out.to(out_dev)


def harmonic_synth(f0: torch.Tensor, amplitudes: torch.Tensor, sr: int = DEFAULT_SR) -> torch.Tensor:
    """Harmonic series with per-sample amplitudes: ``sum_k a_k[n] sin(2 pi k phi[n])`` -> ``(batch, samples)``.

    The differentiable oscillator bank of DDSP (Lesson 07), on the running phase of Lesson 01
    (:func:`~course_lib.synth.core.phase_from_frequency`: ``phi[0] = 0``, ``phi[n] = sum_{m<n} f0[m] / sr``
    cycles). Harmonic ``k`` is silent wherever ``k * f0[n] >= sr / 2`` (no aliasing), as in :func:`additive`.
    Gradients reach ``amplitudes`` and ``f0``.

    Args:
        f0: fundamental in Hz, ``(batch, samples)`` (or ``(batch, 1)`` for a steady pitch), >= 0.
        amplitudes: linear amplitude of harmonics ``k = 1..K``, ``(batch, K, samples)``.
        sr: sample rate in Hz.
    """
    if amplitudes.ndim != 3 or amplitudes.shape[1] == 0:
        raise ValueError(f"amplitudes must be (batch, n_harmonics, samples), got shape {tuple(amplitudes.shape)}")
    batch, n_harm, samples = amplitudes.shape
    freq = torch.as_tensor(f0, dtype=torch.float32, device=amplitudes.device)
    if freq.ndim != 2 or freq.shape[0] != batch or freq.shape[1] not in (1, samples):
        raise ValueError(f"f0 must be ({batch}, {samples}) or ({batch}, 1) Hz, got shape {tuple(freq.shape)}")
    if not torch.isfinite(freq).all() or bool((freq < 0).any()):
        raise ValueError("f0 must be finite and >= 0 Hz")
    phase = phase_from_frequency(freq, sr, samples)  # (batch, samples) cycles in [0, 1)
    k = torch.arange(1, n_harm + 1, dtype=torch.float32, device=amplitudes.device).reshape(1, -1, 1)
    audible = (k * freq.detach().unsqueeze(1)) < 0.5 * sr  # (batch, K, samples | 1)
    waves = torch.sin(k * ((2 * math.pi) * phase.unsqueeze(1)))  # phase < 1 cycle: k * phase stays small
    return (torch.where(audible, amplitudes, 0.0) * waves).sum(dim=1)


def _peak_normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)


def harmonic_tone(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    n_harmonics: int = 10,
    rolloff: float = 1.0,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Harmonic tone with amplitude ``1 / k**rolloff`` for harmonic ``k = 1..n_harmonics``.

    ``rolloff`` 1 sounds saw-like, 2 mellow; the result is peak-normalised to 1 per voice.
    Returns float32 ``(batch, samples)``.
    """
    if n_harmonics < 1:
        raise ValueError(f"n_harmonics must be >= 1, got {n_harmonics}")
    k = torch.arange(1, n_harmonics + 1, dtype=torch.float32)
    y = additive(f0, duration, sr, amplitudes=1.0 / k**rolloff, batch=batch, device=device)
    return _peak_normalise(y)


def bell(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Risset-style bell: 11 inharmonic partials, each decaying exponentially (60 dB over its own
    fraction of ``duration``), two pairs detuned by 1 and 1.7 Hz so that they beat.

    Args:
        f0: nominal pitch in Hz (number or ``(batch,)``); the partials sit at 0.56 .. 4.07 f0.
    Returns:
        float32 ``(batch, samples)``, peak-normalised to 1 per voice.
    """
    if duration <= 0:
        raise ValueError(f"duration must be > 0 s for a bell, got {duration}")
    dev = resolve_device(device, f0)
    b = batch_size_of(f0, batch=batch)
    f = torch.as_tensor(f0, dtype=torch.float64, device="cpu")  # the partials are designed on the CPU
    if f.ndim > 1:
        raise ValueError("bell f0 must be a number or a (batch,) tensor")
    if (f <= 0).any():
        raise ValueError(f"f0 must be > 0 Hz, got {f0}")
    f = f.reshape(-1, 1).expand(b, 1)
    table = torch.tensor(_RISSET_BELL, dtype=torch.float64)
    ratios = table[:, 0].reshape(1, -1) + table[:, 1].reshape(1, -1) / f  # (batch, 11)
    decays = math.log(1000.0) / (table[:, 3] * duration)  # -60 dB at the end of each partial
    y = additive(f.reshape(b), duration, sr, amplitudes=table[:, 2], ratios=ratios, decays=decays, device=dev)
    return _peak_normalise(y)
