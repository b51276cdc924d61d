"""Wavetable synthesis: single-cycle tables, played back and morphed (Lesson 01).

A table holds one period of a waveform (``size`` samples). :func:`wavetable_osc` reads it at
the phase of ``f0`` with linear interpolation between neighbouring table samples, and morphs
between tables with linear interpolation across ``position`` (0 = first table, 1 = last).
To avoid aliasing, each voice first gets a copy of the tables with the harmonics that would
exceed Nyquist at that voice's highest f0 removed (an FFT "mip-map" per voice).
"""

from __future__ import annotations

import math
from typing import Union

import torch

from course_lib import DEFAULT_SR
from course_lib.synth.core import Param, as_control, batch_size_of, n_samples, phase_from_frequency, resolve_device

Device = Union[str, torch.device, None]

BASIC_TABLE_NAMES = ("sine", "triangle", "saw", "square")


def wavetable_from_harmonics(
    amplitudes: Param, size: int = 2048, *, phases: Param | None = None, normalize: bool = True
) -> torch.Tensor:
    """One period built from harmonic ``k = 1..N`` amplitudes: ``sum a_k sin(2 pi k i / size + p_k)``.

    Args:
        amplitudes: ``(N,)`` for one table or ``(n_tables, N)``; harmonics at or above
            ``size / 2`` are dropped (they cannot be represented in the table).
        size: samples per period. phases: radians, same shape as ``amplitudes`` (default 0).
        normalize: scale each table to a peak of 1.
    Returns:
        float32 ``(size,)`` or ``(n_tables, size)``.
    """
    if size < 4:
        raise ValueError(f"table size must be >= 4 samples, got {size}")
    amps = torch.as_tensor(amplitudes, dtype=torch.float64)
    if amps.ndim not in (1, 2):
        raise ValueError(f"amplitudes must be (N,) or (n_tables, N), got shape {tuple(amps.shape)}")
    single = amps.ndim == 1
    amps = amps.reshape(-1, amps.shape[-1])
    ph = torch.zeros_like(amps) if phases is None else torch.as_tensor(phases, dtype=torch.float64).reshape(amps.shape)
    n_h = min(amps.shape[1], size // 2 - 1)
    # a sin(2 pi k i / size + p) is bin k of an inverse real FFT with value (size / 2) a e^{j (p - pi/2)}
    spec = torch.zeros(amps.shape[0], size // 2 + 1, dtype=torch.complex128)
    spec[:, 1 : n_h + 1] = (size / 2) * amps[:, :n_h] * torch.exp(1j * (ph[:, :n_h] - math.pi / 2))
    tab = torch.fft.irfft(spec, n=size, dim=-1)
    if normalize:
        tab = tab / tab.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    tab = tab.to(torch.float32)
    return tab[0] if single else tab


def basic_tables(size: int = 2048, n_harmonics: int | None = None) -> torch.Tensor:
    """The four classic shapes as band-limited tables ``(4, size)``: sine, triangle, saw, square.

    Built from their Fourier series truncated at ``n_harmonics`` (default ``size // 2 - 1``, all
    that fit) and peak-normalised; phases match :mod:`course_lib.synth.oscillators`.
    """
    n_h = size // 2 - 1 if n_harmonics is None else int(n_harmonics)
    if n_h < 1:
        raise ValueError(f"n_harmonics must be >= 1, got {n_harmonics}")
    k = torch.arange(1, n_h + 1, dtype=torch.float64)
    sine = torch.zeros(n_h, dtype=torch.float64)
    sine[0] = 1.0
    odd = (k % 2 == 1).to(torch.float64)
    tri = odd * (8 / math.pi**2) / k**2 * torch.where(((k - 1) / 2) % 2 == 0, 1.0, -1.0).to(torch.float64)
    saw = -2 / (math.pi * k)
    sq = odd * 4 / (math.pi * k)
    return wavetable_from_harmonics(torch.stack([sine, tri, saw, sq]), size)


def _band_limit_tables(tables: torch.Tensor, max_harmonic: torch.Tensor) -> torch.Tensor:
    """Per voice copy of ``tables (n, size)`` without harmonics above ``max_harmonic (batch,)``."""
    spec = torch.fft.rfft(tables.to("cpu", torch.float64), dim=-1)  # (n, size//2+1), float64 on the CPU
    k = torch.arange(spec.shape[-1]).reshape(1, 1, -1)
    keep = k <= max_harmonic.cpu().reshape(-1, 1, 1)
    out = torch.fft.irfft(spec.unsqueeze(0) * keep, n=tables.shape[-1], dim=-1)
    return out.to(tables.device, torch.float32)  # (batch, n, size)


def wavetable_osc(
    tables: torch.Tensor,
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    position: Param = 0.0,
    band_limited: bool = True,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Play (and morph) wavetables -> float32 ``(batch, samples)``.

    Args:
        tables: ``(n_tables, size)`` single-cycle tables (or ``(size,)`` for one).
        f0: frequency in Hz: number, ``(batch,)`` or ``(batch, samples)``.
        position: morph position in [0, 1] across the tables: number, ``(batch,)`` or
            ``(batch, samples)`` (e.g. an LFO or envelope sweeping the timbre).
        band_limited: drop, per voice, table harmonics above Nyquist at its highest f0.
    """
    tab = torch.as_tensor(tables, dtype=torch.float32)
    if tab.ndim == 1:
        tab = tab.unsqueeze(0)
    if tab.ndim != 2 or tab.shape[1] < 2:
        raise ValueError(f"tables must have shape (n_tables, size), got {tuple(torch.as_tensor(tables).shape)}")
    dev = resolve_device(device, f0, position, tables)
    b = batch_size_of(f0, position, batch=batch)
    samples = n_samples(duration, sr)
    freq = as_control(f0, b, samples, dev)
    if not torch.isfinite(freq).all() or (freq < 0).any():
        raise ValueError("f0 must be finite and >= 0 Hz")
    pos = as_control(position, b, samples, dev)
    if ((pos < 0) | (pos > 1)).any():
        raise ValueError(f"position must lie in [0, 1], got values in [{float(pos.min())}, {float(pos.max())}]")
    tab = tab.to(dev)
    n_tab, size = tab.shape
    if band_limited:
        fmax = freq.amax(dim=-1).clamp(min=1e-6)
        max_h = torch.floor((0.5 * sr - 1e-9) / fmax).clamp(max=size // 2)
        vt = _band_limit_tables(tab, max_h)  # (batch, n_tab, size)
    else:
        vt = tab.unsqueeze(0).expand(b, n_tab, size)
    flat = vt.reshape(b, n_tab * size)

    ph = phase_from_frequency(freq, sr, samples) * size  # (batch, samples) in table samples
    i0 = torch.floor(ph).long().clamp(max=size - 1)
    frac = ph - i0
    i1 = (i0 + 1) % size
    tpos = pos * (n_tab - 1)
    j0 = torch.floor(tpos).long().clamp(max=max(n_tab - 2, 0))
    w = (tpos - j0).expand(b, samples)
    j0 = j0.expand(b, samples)
    j1 = (j0 + 1).clamp(max=n_tab - 1)

    def read(j: torch.Tensor) -> torch.Tensor:
        base = j * size
        a = torch.gather(flat, 1, base + i0)
        c = torch.gather(flat, 1, base + i1)
        return a + frac * (c - a)

    lo = read(j0)
    y = lo if n_tab == 1 else lo + w * (read(j1) - lo)
    return y.to(torch.float32)
