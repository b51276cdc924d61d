"""Ways to disguise a copied loop, used to calibrate and test the memorisation check.

Each takes loops ``(n, samples)`` (float, NumPy or torch) and returns float32 ``(n, samples)``:
``invert`` (polarity), ``lowpass`` (zero-phase Butterworth), ``speed`` (played faster or slower,
pitch and tempo together, wrapped around the loop so the length stays the same).
"""

from __future__ import annotations

import numpy as np
import torch


def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)


def invert(x) -> np.ndarray:
    """Polarity inverted: ``-x``."""
    return (-_np(x)).astype(np.float32)


def lowpass(x, cutoff_hz: float = 4000.0, sr: int = 16000, order: int = 6) -> np.ndarray:
    """Zero-phase Butterworth low-pass of ``order`` (applied forward and backward) at ``cutoff_hz`` Hz."""
    from scipy.signal import butter, sosfiltfilt

    if not 0 < cutoff_hz < sr / 2:
        raise ValueError(f"cutoff_hz must be in (0, {sr / 2}), got {cutoff_hz}")
    sos = butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
    return sosfiltfilt(sos, _np(x), axis=-1).astype(np.float32)


def speed(x, factor: float) -> np.ndarray:
    """Played ``factor`` times as fast (``1.03`` = 3 % faster and higher), wrapping around the loop.

    Output sample ``n`` is input position ``n * factor`` modulo the loop length (linear interpolation).
    """
    a = _np(x)
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    n = a.shape[-1]
    pos = (np.arange(n) * factor) % n
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0
    i1 = (i0 + 1) % n
    return (a[..., i0] * (1 - frac) + a[..., i1] * frac).astype(np.float32)
