"""Speech-like formant vowels: a glottal-pulse source through a cascade of formant resonators.

The source-filter model of the voice (Fant 1960; Klatt 1980): a periodic glottal flow pulse
(Rosenberg 1971 shape; its time derivative stands in for the flow derivative plus lip radiation)
excites the vocal tract, modelled as a cascade of second-order resonators, one per formant.
Moving f0 moves the harmonics; the formants (the spectral envelope) stay put - which is exactly
what TD-PSOLA preserves and resampling does not (Lesson 02).

``FORMANTS`` holds (frequency Hz, bandwidth Hz) for F1-F5 of five vowels: F1-F3 are Peterson &
Barney's (1952) adult male averages, F4/F5 and the bandwidths are Klatt-style typical values.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torchaudio.functional as AF

from course_lib import DEFAULT_SR
from course_lib.synth.core import Param, as_control, batch_size_of, n_samples, phase_from_frequency, resolve_device

Device = Union[str, torch.device, None]

#: vowel -> ((F1, B1), ..., (F5, B5)) in Hz. a = "father", e = "head", i = "heed", o = "bought", u = "who'd".
FORMANTS: dict[str, tuple[tuple[float, float], ...]] = {
    "a": ((730.0, 90.0), (1090.0, 110.0), (2440.0, 160.0), (3300.0, 250.0), (3750.0, 300.0)),
    "e": ((530.0, 60.0), (1840.0, 100.0), (2480.0, 120.0), (3300.0, 250.0), (3750.0, 300.0)),
    "i": ((270.0, 60.0), (2290.0, 100.0), (3010.0, 120.0), (3300.0, 250.0), (3750.0, 300.0)),
    "o": ((570.0, 70.0), (840.0, 80.0), (2410.0, 120.0), (3300.0, 250.0), (3750.0, 300.0)),
    "u": ((300.0, 60.0), (870.0, 80.0), (2240.0, 120.0), (3300.0, 250.0), (3750.0, 300.0)),
}


def glottal_pulse(phase: torch.Tensor, open_quotient: float = 0.4, closing_quotient: float = 0.16) -> torch.Tensor:
    """Rosenberg glottal flow (0..1) at a phase in cycles ``[0, 1)`` (any shape).

    Rises as a raised cosine over ``open_quotient`` of the period, falls as a quarter cosine over
    ``closing_quotient``, then stays closed (0).
    """
    tp, tn = open_quotient, closing_quotient
    rise = 0.5 * (1.0 - torch.cos(math.pi * phase / tp))
    fall = torch.cos(0.5 * math.pi * (phase - tp) / tn)
    return torch.where(phase < tp, rise, torch.where(phase < tp + tn, fall, torch.zeros_like(phase)))


def resonator_coefficients(freq_hz: float, bandwidth_hz: float, sr: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Klatt's two-pole resonator with unit gain at 0 Hz: ``(b, a)`` each of 3 taps (float64)."""
    c = -math.exp(-2.0 * math.pi * bandwidth_hz / sr)
    b = 2.0 * math.exp(-math.pi * bandwidth_hz / sr) * math.cos(2.0 * math.pi * freq_hz / sr)
    a0 = 1.0 - b - c
    return (torch.tensor([a0, 0.0, 0.0], dtype=torch.float64), torch.tensor([1.0, -b, -c], dtype=torch.float64))


def vowel(f0: Param, vowel: str = "a", duration: float = 1.0, sr: int = DEFAULT_SR, *, vibrato_cents: float = 0.0,
          vibrato_hz: float = 5.5, formants: Optional[tuple[tuple[float, float], ...]] = None,
          amplitude: float = 0.8, fade: float = 0.02, batch: Optional[int] = None,
          device: Device = None) -> torch.Tensor:
    """A sung/spoken vowel ``(batch, samples)``: glottal pulses at ``f0`` through formant resonators.

    Args:
        f0: fundamental in Hz: number, ``(batch,)`` or ``(batch, samples)`` trajectory.
        vowel: one of ``"a" "e" "i" "o" "u"`` (see ``FORMANTS``).
        duration: seconds. sr: sample rate in Hz.
        vibrato_cents: vibrato depth in cents (peak), at ``vibrato_hz`` Hz.
        formants: custom ((freq Hz, bandwidth Hz), ...) instead of the table entry.
        amplitude: output peak of each voice. fade: fade-in/out length in seconds.
        batch / device: number of voices when all parameters are numbers; where to compute.
    Returns:
        float32 ``(batch, samples)`` in [-amplitude, amplitude].
    Raises:
        ValueError: unknown vowel, f0 not in (0, sr/2), bad bandwidths.
    """
    if formants is None:
        if vowel not in FORMANTS:
            raise ValueError(f"vowel: unknown vowel {vowel!r}; choose one of {sorted(FORMANTS)}")
        formants = FORMANTS[vowel]
    if vibrato_cents < 0 or vibrato_hz <= 0:
        raise ValueError(f"vibrato: need vibrato_cents >= 0 and vibrato_hz > 0, got {vibrato_cents}, {vibrato_hz}")
    samples = n_samples(duration, sr)
    if samples == 0:
        raise ValueError(f"duration: {duration} s gives no samples at {sr} Hz")
    dev = resolve_device(device, f0)
    b = batch_size_of(f0, batch=batch)
    freq = as_control(f0, b, samples, dev)
    if not bool(((freq > 0) & (freq < sr / 2)).all()):
        raise ValueError(f"f0: must lie in (0, {sr / 2}) Hz, got values in [{float(freq.min())}, {float(freq.max())}]")
    if vibrato_cents > 0:
        t = torch.arange(samples, device=dev, dtype=torch.float32) / sr
        freq = freq * torch.pow(2.0, vibrato_cents / 1200.0 * torch.sin(2.0 * math.pi * vibrato_hz * t))
    phase = phase_from_frequency(freq, sr, samples)
    flow = glottal_pulse(phase)
    source = torch.diff(flow, dim=-1, prepend=flow[:, :1]).to(torch.float64)
    y = source
    for fc, bw in formants:
        if bw <= 0:
            raise ValueError(f"formants: bandwidth must be > 0 Hz, got {bw} Hz for the formant at {fc} Hz")
        if fc >= 0.45 * sr:
            continue  # too close to Nyquist at this sample rate
        bc, ac = resonator_coefficients(fc, bw, sr)
        y = AF.lfilter(y, ac.to(dev), bc.to(dev), clamp=False)
    y = y - y.mean(dim=-1, keepdim=True)
    nf = min(samples // 2, max(1, int(fade * sr)))
    ramp = torch.linspace(0.0, 1.0, nf, device=dev, dtype=y.dtype)
    y[:, :nf] *= ramp
    y[:, samples - nf:] *= ramp.flip(0)
    peak = y.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    return (amplitude * y / peak).to(torch.float32)
