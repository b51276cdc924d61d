"""Envelopes and low-frequency modulation: ADSR, LFO, vibrato, tremolo (Lesson 01).

All outputs are float32 ``(batch, samples)``. Times are in seconds, rates in Hz.
"""

from __future__ import annotations

import math
from typing import Union

import torch

from course_lib import DEFAULT_SR
from course_lib.synth import kernels
from course_lib.synth.core import (
    Param,
    as_control,
    batch_size_of,
    n_samples,
    phase_from_frequency,
    resolve_device,
)

Device = Union[str, torch.device, None]

LFO_SHAPES = ("sine", "triangle", "square", "saw")


def _per_voice(name: str, p: Param, batch: int, device: torch.device) -> torch.Tensor:
    """A number or ``(batch,)`` tensor -> float32 ``(batch, 1)``; anything else is an error."""
    t = torch.as_tensor(p, dtype=torch.float32, device=device)
    if t.ndim > 1:
        raise ValueError(f"{name} must be a number or a (batch,) tensor, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    t = t.reshape(-1, 1)
    if t.shape[0] not in (1, batch):
        raise ValueError(f"{name} has {t.shape[0]} values for a batch of {batch}")
    return t.expand(batch, 1)


def adsr(
    attack: Param,
    decay: Param,
    sustain: Param,
    release: Param,
    note_duration: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Linear ADSR envelope in [0, 1] -> ``(batch, samples)``.

    The level rises 0 -> 1 in ``attack`` s, falls to ``sustain`` in ``decay`` s and holds until
    the note-off at ``note_duration`` s; it then falls linearly to 0 in ``release`` s, starting
    from whatever level it had at note-off (also if the note ends during attack or decay).

    Args:
        attack, decay, release: stage lengths in seconds (>= 0); numbers or ``(batch,)`` tensors.
        sustain: sustain level in [0, 1]; number or ``(batch,)``.
        note_duration: note-off time in seconds (>= 0); number or ``(batch,)``.
        duration: total length of the envelope in seconds; sr: sample rate in Hz.
    """
    params = (attack, decay, sustain, release, note_duration)
    dev = resolve_device(device, *params)
    b = batch_size_of(*params, batch=batch)
    samples = n_samples(duration, sr)
    a, d, s, r, off = (
        _per_voice(name, p, b, dev)
        for name, p in zip(("attack", "decay", "sustain", "release", "note_duration"), params)
    )
    for name, t in (("attack", a), ("decay", d), ("release", r), ("note_duration", off)):
        if (t < 0).any():
            raise ValueError(f"{name} must be >= 0 seconds, got {float(t.min())}")
    if ((s < 0) | (s > 1)).any():
        raise ValueError(f"sustain must be a level in [0, 1], got {sustain}")

    if samples > 0 and kernels.serves(a, d, s, r, off):
        env = kernels.adsr_envelope(*(t.reshape(b).numpy() for t in (a, d, s, r, off)), samples, sr)
        return torch.from_numpy(env)  # bit-equal to the torch path below (tests/test_synth_kernels.py)
    eps = 1e-9

    def before_release(t: torch.Tensor) -> torch.Tensor:
        rise = t / a.clamp(min=eps)
        fall = 1.0 - (1.0 - s) * (t - a) / d.clamp(min=eps)
        return torch.where(t < a, rise, torch.where(t < a + d, fall, s))

    t = (torch.arange(samples, device=dev, dtype=torch.float32) / sr).reshape(1, -1)
    level_at_off = before_release(off)  # (batch, 1)
    release_part = level_at_off * (1.0 - (t - off) / r.clamp(min=eps)).clamp(0.0, 1.0)
    env = torch.where(t < off, before_release(t), release_part)
    return env.clamp(0.0, 1.0).to(torch.float32)


def _lfo_wave(shape: str, phase: torch.Tensor) -> torch.Tensor:
    if shape == "sine":
        return torch.sin(2 * math.pi * phase)
    if shape == "triangle":  # sine phase: 0 -> 1 -> 0 -> -1
        return 1.0 - 4.0 * torch.abs(torch.remainder(phase + 0.25, 1.0) - 0.5)
    if shape == "square":
        return torch.where(phase < 0.5, 1.0, -1.0).to(phase.dtype)
    if shape == "saw":
        return 2.0 * phase - 1.0
    raise ValueError(f"LFO shape must be one of {LFO_SHAPES}, got {shape!r}")


def lfo(
    rate_hz: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    shape: str = "sine",
    depth: Param = 1.0,
    offset: Param = 0.0,
    phase: Param = 0.0,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Low-frequency oscillator ``offset + depth * wave(rate)`` -> ``(batch, samples)``.

    Args:
        rate_hz: LFO rate in Hz (number, ``(batch,)`` or ``(batch, samples)``).
        shape: ``"sine"``, ``"triangle"``, ``"square"`` or ``"saw"`` (naive shapes: an LFO is
            far below Nyquist, aliasing is irrelevant); the wave swings in [-1, 1].
        depth, offset: scale and shift of the wave (number, ``(batch,)`` or ``(batch, samples)``).
        phase: initial phase in radians (number or ``(batch,)``).
    """
    if shape not in LFO_SHAPES:
        raise ValueError(f"LFO shape must be one of {LFO_SHAPES}, got {shape!r}")
    dev = resolve_device(device, rate_hz, depth, offset, phase)
    b = batch_size_of(rate_hz, depth, offset, phase, batch=batch)
    samples = n_samples(duration, sr)
    rate = as_control(rate_hz, b, samples, dev)
    p0 = torch.as_tensor(phase, dtype=torch.float64, device="cpu").reshape(-1, 1) / (2 * math.pi)
    ph = phase_from_frequency(rate, sr, samples, p0.expand(b, 1))
    wave = _lfo_wave(shape, ph)
    return (as_control(offset, b, samples, dev) + as_control(depth, b, samples, dev) * wave).to(torch.float32)


def vibrato(
    f0: Param,
    rate_hz: Param,
    depth_cents: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """f0 trajectory with sinusoidal vibrato: ``f0 * 2**(depth_cents * sin(2 pi rate t) / 1200)``.

    Args:
        f0: centre frequency in Hz (number, ``(batch,)`` or ``(batch, samples)``).
        rate_hz: vibrato rate in Hz; depth_cents: peak deviation in cents (100 = one semitone).
    Returns:
        ``(batch, samples)`` frequency in Hz, ready to pass as ``f0`` to any oscillator.
    """
    dev = resolve_device(device, f0, rate_hz, depth_cents)
    b = batch_size_of(f0, rate_hz, depth_cents, batch=batch)
    samples = n_samples(duration, sr)
    mod = lfo(rate_hz, duration, sr, shape="sine", depth=depth_cents, batch=b, device=dev)
    base = as_control(f0, b, samples, dev)
    return (base * torch.pow(2.0, mod / 1200.0)).to(torch.float32)


def tremolo(x: torch.Tensor, rate_hz: Param, depth: Param, sr: int = DEFAULT_SR) -> torch.Tensor:
    """Amplitude modulation: ``x`` times a gain that swings sinusoidally between ``1 - depth`` and 1.

    Args:
        x: audio ``(batch, samples)`` (or ``(samples,)``).
        rate_hz: tremolo rate in Hz; depth: modulation depth in [0, 1] (number or ``(batch,)``).
    Returns:
        same shape as ``x``.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of audio, got {type(x).__name__}")
    one_d = x.ndim == 1
    xb = x.reshape(1, -1) if one_d else x
    if xb.ndim != 2:
        raise ValueError(f"x must have shape (batch, samples), got {tuple(x.shape)}")
    dep = torch.as_tensor(depth, dtype=torch.float32, device=x.device)
    if ((dep < 0) | (dep > 1)).any():
        raise ValueError(f"tremolo depth must lie in [0, 1], got {depth}")
    b, samples = xb.shape
    wave = lfo(rate_hz, samples / sr, sr, shape="sine", batch=b, device=x.device)[:, :samples]
    d = as_control(dep, b, samples, x.device)
    gain = 1.0 - d * (0.5 - 0.5 * wave)
    y = xb * gain
    return y.reshape(-1) if one_d else y
