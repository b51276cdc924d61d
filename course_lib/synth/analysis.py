"""Measurements used to check synthesizers by ear *and* by number (Lesson 01).

Spectral peak pitch, amplitudes of given partials, and the aliasing measure that compares a
naive oscillator with a band-limited one: energy that is not at a harmonic of f0.
"""

from __future__ import annotations

import numpy as np
import torch


def _np1d(x) -> np.ndarray:
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim == 2:
        if t.shape[0] != 1:
            raise ValueError(f"expected one clip, got a batch of {t.shape[0]}")
        t = t[0]
    return t.numpy()


def magnitude_spectrum(x, sr: int, zero_pad: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Blackman-Harris windowed magnitude spectrum of a clip ``(samples,)``: ``(freqs_hz, amplitude)``.

    Amplitudes are scaled so that a sinusoid of amplitude A reads A at its peak.
    """
    y = _np1d(x)
    n = len(y)
    w = np.blackman(n)
    spec = np.abs(np.fft.rfft(y * w, n=zero_pad * n)) * 2.0 / w.sum()
    freqs = np.fft.rfftfreq(zero_pad * n, 1.0 / sr)
    return freqs, spec


def peak_frequency(x, sr: int, fmin: float = 20.0, fmax: float | None = None) -> float:
    """Frequency in Hz of the strongest spectral peak in ``[fmin, fmax]`` (parabolic interpolation)."""
    freqs, spec = magnitude_spectrum(x, sr, zero_pad=8)
    fmax = sr / 2 if fmax is None else fmax
    band = np.where((freqs >= fmin) & (freqs <= fmax))[0]
    k = band[np.argmax(spec[band])]
    if 0 < k < len(spec) - 1:
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-20)
        offset = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        return float((k + offset) * (freqs[1] - freqs[0]))
    return float(freqs[k])


def partial_amplitudes(x, sr: int, freqs_hz, search_hz: float = 3.0) -> np.ndarray:
    """Amplitude of the spectrum's peak within ``search_hz`` of each frequency in ``freqs_hz``."""
    freqs, spec = magnitude_spectrum(x, sr, zero_pad=8)
    out = []
    for f in np.atleast_1d(freqs_hz):
        band = (freqs >= f - search_hz) & (freqs <= f + search_hz)
        out.append(spec[band].max() if band.any() else 0.0)
    return np.asarray(out)


def alias_to_harmonic_db(x, f0: float, sr: int, tolerance_hz: float | None = None) -> float:
    """Energy away from the harmonics of ``f0`` relative to the energy on them, in dB.

    A perfectly band-limited periodic tone has only harmonic energy (a very negative figure);
    a naive sawtooth folds its partials above Nyquist back onto non-harmonic frequencies.
    """
    y = _np1d(x)
    n = len(y)
    spec = np.abs(np.fft.rfft(y * np.blackman(n))) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    tol = tolerance_hz if tolerance_hz is not None else 4.0 * sr / n
    distance = np.abs(freqs - f0 * np.round(freqs / f0))
    harmonic = (distance <= tol) & (freqs >= f0 - tol)
    return float(10 * np.log10(spec[~harmonic].sum() / spec[harmonic].sum() + 1e-30))
