"""HPTSM: time-scale modification via harmonic-percussive separation (Driedger, Mueller & Ewert 2014).

The phase vocoder keeps tones smooth but smears drum hits; OLA with short frames keeps hits sharp
but breaks tones. HPTSM separates the two with median-filtering HPSS (Fitzgerald 2010): on the
STFT magnitude a median along time favours steady partials (harmonic), a median along frequency
favours broadband clicks (percussive); a binary mask assigns each bin to the larger. The harmonic
part is stretched by the phase vocoder (with phase locking), the percussive residual by short-frame
OLA, and the two are added.
"""

from __future__ import annotations

import torch

from course_lib.tsm import kernels
from course_lib.tsm._common import (ArrayLike, as_batch, batch_blocks, check_frame, check_rate, check_sr,
                                    output_length, pow2_frame, restore)
from course_lib.tsm.ola import ola
from course_lib.tsm.phase_vocoder import PV_FRAME_SECONDS, _stretch as _pv_stretch, inverse_stft

#: HPSS analysis frame (1024 samples at 22.05 kHz), the median lengths, and the OLA frame for the
#: percussive part (256 samples at 22.05 kHz), in seconds / Hz.
HPSS_FRAME_SECONDS = 0.046
HARMONIC_MEDIAN_SECONDS = 0.2
PERCUSSIVE_MEDIAN_HZ = 500.0
PERCUSSIVE_OLA_SECONDS = 0.0116


def _odd(n: float) -> int:
    k = max(1, int(round(n)))
    return k if k % 2 else k + 1


def median_filter(mag: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Running median of odd length ``size`` along ``dim`` (-1 = time, -2 = frequency), edges padded by
    replication; same shape as ``mag`` ``(batch, freq, frames)``. CPU tensors without gradient go
    through a compiled sorted-window median (:mod:`course_lib.tsm.kernels`, bit-equal)."""
    if size <= 1:
        return mag
    if kernels.serves(mag):  # compiled sorted-window median: bit-equal, ~20x faster on the CPU
        return kernels.running_median(mag, size, dim)
    half = size // 2
    m = mag.transpose(dim, -1) if dim != -1 else mag
    lead = m.shape[:-1]
    flat = m.reshape(-1, 1, m.shape[-1])
    padded = torch.nn.functional.pad(flat, (half, half), mode="replicate")[:, 0]
    # in blocks of rows, so the (rows, frames, size) copy stays cache-sized however large the batch
    rows = max(1, (1 << 20) // max(1, m.shape[-1] * size))
    med = torch.cat([padded[i:i + rows].unfold(-1, size, 1).contiguous().median(dim=-1).values
                     for i in range(0, padded.shape[0], rows)]).reshape(*lead, -1)
    return med.transpose(dim, -1) if dim != -1 else med


def hpss(x: ArrayLike, sr: int, *, frame_length: int | None = None, hop: int | None = None,
         harmonic_seconds: float = HARMONIC_MEDIAN_SECONDS,
         percussive_hz: float = PERCUSSIVE_MEDIAN_HZ) -> tuple[torch.Tensor, torch.Tensor]:
    """Split audio ``(batch, samples)`` into harmonic and percussive parts (binary median-filter masks).

    Args:
        x: mono audio ``(samples,)`` or ``(batch, samples)``.
        sr: sample rate in Hz.
        frame_length: STFT size in samples (default: power of two nearest 46 ms); hop default a half.
        harmonic_seconds: length of the median along time (seconds).
        percussive_hz: length of the median along frequency (Hz).
    Returns:
        ``(harmonic, percussive)``, each ``(batch, samples)`` float32; they sum to the input exactly.
    """
    sr = check_sr(sr)
    n = frame_length or pow2_frame(sr, HPSS_FRAME_SECONDS)
    h = hop or n // 2
    n, h = check_frame(n, h)
    xb, _ = as_batch(x, min_samples=n // 2 + 1)
    win = torch.hann_window(n, periodic=True, device=xb.device)
    padded = torch.nn.functional.pad(xb, (0, n // 2))  # frames centred past the last sample exist
    spec = torch.stft(padded, n, h, window=win, center=True, pad_mode="constant", return_complex=True)
    mag = spec.abs()
    med_t = median_filter(mag, _odd(harmonic_seconds * sr / h), dim=-1)
    med_f = median_filter(mag, _odd(percussive_hz * n / sr), dim=-2)
    harmonic = inverse_stft(spec * (med_t >= med_f), win, h, xb.shape[-1])
    return harmonic, xb - harmonic


def hptsm(x: ArrayLike, sr: int, rate: float, *, frame_length: int | None = None, hop: int | None = None,
          hpss_frame_length: int | None = None, ola_frame_length: int | None = None,
          phase_locking: bool = True) -> ArrayLike:
    """Time-stretch by HPSS + phase vocoder (harmonic) + OLA (percussive).

    Args:
        x: mono audio ``(samples,)`` or ``(batch, samples)`` (tensor or NumPy), float in [-1, 1].
        sr: sample rate in Hz.
        rate: speed factor; ``> 1`` = faster / shorter. Output length ``round(samples / rate)``.
        frame_length, hop: phase-vocoder FFT size and hop in samples (defaults: ~93 ms and a quarter of it).
        hpss_frame_length: STFT size for the separation (default ~46 ms).
        ola_frame_length: OLA frame for the percussive part (default ~12 ms, 256 at 22.05 kHz).
        phase_locking: use identity phase locking in the phase vocoder.
    Returns:
        audio ``(batch, round(samples / rate))`` in the input's form.
    """
    sr = check_sr(sr)
    rate = check_rate(rate)
    n = frame_length or pow2_frame(sr, PV_FRAME_SECONDS)
    h = hop or n // 4
    n, h = check_frame(n, h)
    n_ola = ola_frame_length or pow2_frame(sr, PERCUSSIVE_OLA_SECONDS)
    xb, form = as_batch(x, min_samples=n // 2 + 1)
    length = output_length(xb.shape[-1], rate)
    parts = []
    for blk in batch_blocks(xb):
        harmonic, percussive = hpss(xb[blk], sr, frame_length=hpss_frame_length)
        parts.append(_pv_stretch(harmonic, rate, n, h, length, phase_locking)
                     + ola(percussive, sr, rate, frame_length=n_ola))
    return restore(torch.cat(parts), form)
