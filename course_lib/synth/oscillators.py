"""Oscillators: sine, sawtooth, square (pulse), triangle and coloured noise (Lesson 01).

All oscillators return float32 ``(batch, samples)``. ``f0`` may be a number (Hz), a ``(batch,)``
tensor (one pitch per voice) or a ``(batch, samples)`` f0 trajectory in Hz (glides, vibrato).

Band-limiting (``band_limited=True``) removes the aliasing that the naive waveforms produce:

* voices whose lowest f0 leaves at most ``ADDITIVE_MAX_HARMONICS`` harmonics below Nyquist
  (high notes, where aliasing is loudest) are rendered *additively*: the exact Fourier series
  truncated at Nyquist, so there is no alias at all;
* lower voices (many harmonics, where an additive render would be expensive) use PolyBLEP
  (saw, square) and PolyBLAMP (triangle) corrections of the naive waveform, which suppress the
  aliases, which are already weak there because they come from high harmonics.

The choice is made per voice, so a voice sounds the same whether it is rendered alone or in a
batch. Band-limited waveforms overshoot +-1 a little (Gibbs ripple: up to about 12 % for the
saw and 18 % for the square); scale with ``amplitude`` where strict [-1, 1] matters.
"""

from __future__ import annotations

import math
from typing import Any, Union

import torch

from course_lib import DEFAULT_SR
from course_lib.synth import kernels
from course_lib.synth.core import (
    Param,
    as_control,
    batch_size_of,
    make_generator,
    n_samples,
    phase_from_frequency,
    resolve_device,
)

Device = Union[str, torch.device, None]

#: Voices with at most this many harmonics below Nyquist are rendered additively (alias-free).
ADDITIVE_MAX_HARMONICS: int = 64

# Width (as a fraction of the sample rate) of the band below Nyquist over which additive
# harmonics fade out, so that a gliding note does not click when a harmonic crosses Nyquist.
_NYQUIST_TAPER: float = 0.02

WAVE_KINDS = ("sine", "saw", "square", "triangle", "noise")
_ALIASES = {"sawtooth": "saw", "sin": "sine", "tri": "triangle", "pulse": "square", "rect": "square"}


# --------------------------------------------------------------------------------------------
# parameter plumbing


def _check_f0(f0: Param) -> None:
    if isinstance(f0, torch.Tensor):
        if not torch.isfinite(f0).all():
            raise ValueError("f0 contains NaN or inf")
        if (f0 < 0).any():
            raise ValueError(f"f0 must be >= 0 Hz, got a minimum of {float(f0.min()):.3g} Hz")
    else:
        if not math.isfinite(float(f0)) or float(f0) < 0:
            raise ValueError(f"f0 must be a finite frequency >= 0 Hz, got {f0}")


def _prepare(
    f0: Param, duration: float, sr: int, batch: int | None, device: Device, *others: Param
) -> tuple[torch.Tensor, int, int, torch.device]:
    """Validate and broadcast ``f0``: returns (f0 control (batch, 1|samples), batch, samples, device)."""
    _check_f0(f0)
    samples = n_samples(duration, sr)
    dev = resolve_device(device, f0, *others)
    b = batch_size_of(f0, *others, batch=batch)
    freq = as_control(f0, b, samples, dev)
    return freq, b, samples, dev


def _phase_cycles(phase: Param, batch: int, device: torch.device) -> torch.Tensor:
    """Initial phase in radians (number or (batch,)) -> cycles, shaped (batch, 1), float64 on the CPU
    (it only feeds :func:`phase_from_frequency`, which accumulates there)."""
    del device
    p = torch.as_tensor(phase, dtype=torch.float64, device="cpu")
    if p.ndim > 1:
        raise ValueError(f"phase must be a number or a (batch,) tensor in radians, got shape {tuple(p.shape)}")
    return (p / (2 * math.pi)).reshape(-1, 1).expand(batch, 1)


def _amplitude(amplitude: Param, batch: int, samples: int, device: torch.device) -> torch.Tensor:
    return as_control(amplitude, batch, samples, device)


# --------------------------------------------------------------------------------------------
# band-limiting machinery


def _poly_blep(t: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """PolyBLEP residual of a unit-height-2 downward step at phase 0 (t, dt in cycles)."""
    dt = dt.clamp(1e-9, 0.5)
    x1 = t / dt  # just after the step
    x2 = (t - 1.0) / dt  # just before the step (wrapped)
    after = 2 * x1 - x1 * x1 - 1.0
    before = x2 * x2 + 2 * x2 + 1.0
    zero = torch.zeros_like(t)
    return torch.where(t < dt, after, torch.where(t > 1.0 - dt, before, zero))


def _poly_blamp(t: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """PolyBLAMP residual (in samples) of a corner at phase 0: (1-|x|)^3 / 3 for |x| < 1 sample."""
    dt = dt.clamp(1e-9, 0.5)
    d = torch.minimum(t, 1.0 - t) / dt  # distance to the corner in samples
    r = (1.0 - d).clamp(min=0.0)
    return r * r * r / 3.0


def _harmonic_count(freq: torch.Tensor, sr: int) -> torch.Tensor:
    """Per voice: number of harmonics of the lowest f0 that fit below Nyquist (large if f0 ~ 0)."""
    fmin = freq.amin(dim=-1).clamp(min=1e-3)
    return torch.floor((0.5 * sr) / fmin)


def _fourier(kind: str, k: int, duty: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    """Coefficients (c_sin, c_cos) of harmonic k, so that wave = dc + sum c_sin sin(2pi k p) + c_cos cos(2pi k p)."""
    if kind == "saw":  # 2p - 1
        return -2.0 / (math.pi * k), 0.0
    if kind == "triangle":  # 1 - 4|((p + 1/4) mod 1) - 1/2|, odd harmonics only
        if k % 2 == 0:
            return 0.0, 0.0
        return (8.0 / (math.pi**2 * k * k)) * (-1.0) ** ((k - 1) // 2), 0.0
    if kind == "square":  # +1 for p < duty, -1 after
        c = 4.0 / (math.pi * k) * torch.sin(math.pi * k * duty)
        ang = math.pi * k * duty  # cos(2pi k (p - d/2)) = cos(2pi k p) cos(ang) + sin(2pi k p) sin(ang)
        return c * torch.sin(ang), c * torch.cos(ang)
    raise ValueError(kind)


def _additive_wave(
    kind: str, phase: torch.Tensor, freq: torch.Tensor, sr: int, n_harm: int, duty: torch.Tensor
) -> torch.Tensor:
    """Exact Fourier series of the wave, harmonics faded out as they approach Nyquist.

    sin(k theta) and cos(k theta) come from the Chebyshev recurrence
    ``s_k = 2 cos(theta) s_{k-1} - s_{k-2}``: two multiply-adds per harmonic instead of a sine.
    """
    nyq = 0.5 * sr
    taper = _NYQUIST_TAPER * sr
    theta = 2 * math.pi * phase
    two_c = 2.0 * torch.cos(theta)
    s_prev, s_cur = torch.zeros_like(theta), torch.sin(theta)
    need_cos = kind == "square"
    if need_cos:
        c_prev, c_cur = torch.ones_like(theta), two_c * 0.5
    out = torch.zeros_like(phase)
    if kind == "square":
        out += 2.0 * duty - 1.0
    for k in range(1, n_harm + 1):
        if k > 1:  # in place: s_prev <- 2 cos(theta) s_cur - s_prev, then swap
            s_prev = s_prev.neg_().addcmul_(two_c, s_cur)
            s_prev, s_cur = s_cur, s_prev
            if need_cos:
                c_prev = c_prev.neg_().addcmul_(two_c, c_cur)
                c_prev, c_cur = c_cur, c_prev
        cs, cc = _fourier(kind, k, duty)
        if not isinstance(cs, torch.Tensor) and cs == 0.0 and cc == 0.0:
            continue
        gain = ((nyq - k * freq) / taper).clamp(0.0, 1.0)
        out.addcmul_(gain * cs, s_cur)
        if need_cos:
            out.addcmul_(gain * cc, c_cur)
    return out


def _naive(kind: str, phase: torch.Tensor, duty: torch.Tensor) -> torch.Tensor:
    if kind == "saw":
        return 2.0 * phase - 1.0
    if kind == "square":
        return torch.where(phase < duty, 1.0, -1.0).to(phase.dtype)
    if kind == "triangle":
        return 1.0 - 4.0 * torch.abs(torch.remainder(phase + 0.25, 1.0) - 0.5)
    raise ValueError(kind)


def _polyblep_wave(kind: str, phase: torch.Tensor, dt: torch.Tensor, duty: torch.Tensor) -> torch.Tensor:
    y = _naive(kind, phase, duty)
    if kind == "saw":
        return y - _poly_blep(phase, dt)
    if kind == "square":
        # rising edge (+2) at phase 0, falling edge (-2) at phase = duty
        return y + _poly_blep(phase, dt) - _poly_blep(torch.remainder(phase - duty, 1.0), dt)
    if kind == "triangle":
        # slope is +4 / cycle, i.e. +4 dt per sample; corners at 1/4 (slope -8 dt) and 3/4 (+8 dt)
        top = _poly_blamp(torch.remainder(phase - 0.25, 1.0), dt)
        bottom = _poly_blamp(torch.remainder(phase - 0.75, 1.0), dt)
        return y + 4.0 * dt * (bottom - top)
    raise ValueError(kind)


def _classic(
    kind: str,
    f0: Param,
    duration: float,
    sr: int,
    *,
    band_limited: bool,
    phase: Param,
    amplitude: Param,
    duty: Param,
    batch: int | None,
    device: Device,
) -> torch.Tensor:
    freq, b, samples, dev = _prepare(f0, duration, sr, batch, device, amplitude, phase, duty)
    d = torch.as_tensor(duty, dtype=torch.float32, device=dev)
    if d.ndim > 1:
        raise ValueError("duty must be a number or a (batch,) tensor")
    if ((d <= 0) | (d >= 1)).any():
        raise ValueError(f"duty must lie strictly between 0 and 1, got {duty}")
    d = d.reshape(-1, 1).expand(b, 1)
    phase0 = _phase_cycles(phase, b, dev)
    amp = _amplitude(amplitude, b, samples, dev)
    if band_limited and samples > 0 and kind == "saw" and kernels.serves(freq, phase0, amp):
        return _saw_compiled(freq, phase0, amp, sr, samples)
    ph = phase_from_frequency(freq, sr, samples, phase0)
    if not band_limited or samples == 0:
        return (amp * _naive(kind, ph, d)).to(torch.float32)

    n_harm = _harmonic_count(freq, sr)
    use_add = n_harm <= ADDITIVE_MAX_HARMONICS
    out = torch.empty(b, samples, dtype=torch.float32, device=dev)
    freq_full = freq.expand(b, freq.shape[1])
    if bool(use_add.any()):
        idx = torch.nonzero(use_add).flatten()
        k_max = int(n_harm[idx].max().item())
        out[idx] = _additive_wave(kind, ph[idx], freq_full[idx], sr, k_max, d[idx])
    if bool((~use_add).any()):
        idx = torch.nonzero(~use_add).flatten()
        dt = freq_full[idx] / sr
        out[idx] = _polyblep_wave(kind, ph[idx], dt, d[idx])
    return (amp * out).to(torch.float32)


def _saw_compiled(freq: torch.Tensor, phase0: torch.Tensor, amp: torch.Tensor, sr: int, samples: int) -> torch.Tensor:
    """Band-limited saw of :func:`_classic` with the PolyBLEP voices rendered by the numba kernel
    (phase and correction in one pass, bit-equal to the torch path); additive voices as before."""
    b = freq.shape[0]
    n_harm = _harmonic_count(freq, sr)
    use_add = n_harm <= ADDITIVE_MAX_HARMONICS
    freq_full = freq.expand(b, freq.shape[1])
    if not bool(use_add.any()):
        out = torch.from_numpy(kernels.polyblep_saw(
            freq_full.to(torch.float32).numpy(), phase0.reshape(b).numpy(), samples, sr))
        return (amp * out).to(torch.float32)
    out = torch.empty(b, samples, dtype=torch.float32)
    idx = torch.nonzero(use_add).flatten()
    ph = phase_from_frequency(freq_full[idx], sr, samples, phase0[idx])
    k_max = int(n_harm[idx].max().item())
    out[idx] = _additive_wave("saw", ph, freq_full[idx], sr, k_max, torch.full((len(idx), 1), 0.5))
    if bool((~use_add).any()):
        idx = torch.nonzero(~use_add).flatten()
        out[idx] = torch.from_numpy(kernels.polyblep_saw(
            freq_full[idx].to(torch.float32).numpy(), phase0[idx].reshape(-1).numpy(), samples, sr))
    return (amp * out).to(torch.float32)


# --------------------------------------------------------------------------------------------
# public oscillators


def sine(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    phase: Param = 0.0,
    amplitude: Param = 1.0,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Sine wave ``amplitude * sin(2 pi sum(f0)/sr + phase)`` -> ``(batch, samples)``.

    Args:
        f0: frequency in Hz: number, ``(batch,)`` or ``(batch, samples)`` trajectory.
        duration: length in seconds; sr: sample rate in Hz.
        phase: initial phase in radians (number or ``(batch,)``).
        amplitude: peak amplitude (number, ``(batch,)`` or ``(batch, samples)``).
        batch: number of voices when all parameters are numbers.
    """
    freq, b, samples, dev = _prepare(f0, duration, sr, batch, device, amplitude, phase)
    ph = phase_from_frequency(freq, sr, samples, _phase_cycles(phase, b, dev))
    amp = _amplitude(amplitude, b, samples, dev)
    return (amp * torch.sin(2 * math.pi * ph)).to(torch.float32)


def sawtooth(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    band_limited: bool = True,
    phase: Param = 0.0,
    amplitude: Param = 1.0,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Rising sawtooth (``2 p - 1`` for phase ``p`` in cycles, falling edge at p = 0) -> ``(batch, samples)``.

    ``band_limited=False`` gives the naive (aliasing) ramp; ``True`` an alias-suppressed one
    (additive for high notes, PolyBLEP otherwise; see the module docstring).
    Other arguments as in :func:`sine`.
    """
    return _classic("saw", f0, duration, sr, band_limited=band_limited, phase=phase,
                    amplitude=amplitude, duty=0.5, batch=batch, device=device)


def square(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    duty: Param = 0.5,
    band_limited: bool = True,
    phase: Param = 0.0,
    amplitude: Param = 1.0,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Square / pulse wave: +1 for the first ``duty`` of each cycle, -1 after -> ``(batch, samples)``.

    Args:
        duty: pulse width as a fraction of the period, strictly in (0, 1); number or ``(batch,)``.
        Others as in :func:`sawtooth`. The mean (DC) is ``2 duty - 1``.
    """
    return _classic("square", f0, duration, sr, band_limited=band_limited, phase=phase,
                    amplitude=amplitude, duty=duty, batch=batch, device=device)


def triangle(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    band_limited: bool = True,
    phase: Param = 0.0,
    amplitude: Param = 1.0,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Triangle wave in sine phase (0 -> +1 -> 0 -> -1 over one cycle) -> ``(batch, samples)``.

    Band-limited with additive synthesis (high notes) or PolyBLAMP (low notes).
    Arguments as in :func:`sawtooth`.
    """
    return _classic("triangle", f0, duration, sr, band_limited=band_limited, phase=phase,
                    amplitude=amplitude, duty=0.5, batch=batch, device=device)


_NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def noise(
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    color: str = "white",
    batch: int = 1,
    seed: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Noise ``(batch, samples)`` with power spectrum ~ 1 / f**alpha.

    Args:
        color: ``"white"`` (alpha 0: uniform samples in [-1, 1)), ``"pink"`` (alpha 1, -3 dB per
            octave) or ``"brown"`` (alpha 2, -6 dB per octave). Pink and brown are shaped in the
            frequency domain from Gaussian noise and scaled to a peak of 1 per voice.
        batch: number of voices; seed: makes the result reproducible (``None``: global RNG).
    """
    if color not in _NOISE_EXPONENT:
        raise ValueError(f"color must be one of {sorted(_NOISE_EXPONENT)}, got {color!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    samples = n_samples(duration, sr)
    dev = resolve_device(device)
    gen = make_generator(seed)
    if color == "white":
        return torch.rand(batch, samples, generator=gen).to(dev) * 2.0 - 1.0
    if samples == 0:
        return torch.zeros(batch, 0, device=dev)
    g = torch.randn(batch, samples, generator=gen).to(dev)
    spec = torch.fft.rfft(g, dim=-1)
    freqs = torch.fft.rfftfreq(samples, d=1.0 / sr).to(dev)
    shape = torch.zeros_like(freqs)
    shape[1:] = freqs[1:].pow(-_NOISE_EXPONENT[color] / 2.0)  # amplitude ~ f^(-alpha/2)
    y = torch.fft.irfft(spec * shape, n=samples, dim=-1)
    y = y - y.mean(dim=-1, keepdim=True)
    return (y / y.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)).to(torch.float32)


def oscillator(kind: str, f0: Param, duration: float, sr: int = DEFAULT_SR, **kw: Any) -> torch.Tensor:
    """Dispatch by name: ``"sine"``, ``"saw"``/``"sawtooth"``, ``"square"``/``"pulse"``, ``"triangle"``,
    ``"noise"`` (f0 ignored; ``batch`` defaults to the size implied by f0). Returns ``(batch, samples)``."""
    name = _ALIASES.get(kind, kind)
    if name == "sine":
        return sine(f0, duration, sr, **kw)
    if name == "saw":
        return sawtooth(f0, duration, sr, **kw)
    if name == "square":
        return square(f0, duration, sr, **kw)
    if name == "triangle":
        return triangle(f0, duration, sr, **kw)
    if name == "noise":
        kw.setdefault("batch", batch_size_of(f0))
        return noise(duration, sr, **kw)
    raise ValueError(f"unknown oscillator kind {kind!r}; choose from {list(WAVE_KINDS)} (or {sorted(_ALIASES)})")
