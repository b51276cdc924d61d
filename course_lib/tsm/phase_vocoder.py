"""Phase vocoder time-scale modification (Flanagan & Golden 1966; Laroche & Dolson 1999; Lesson 02).

The STFT is read at fractional frame positions ``t_j = j * rate`` (magnitudes interpolated
linearly) and written every ``hop`` samples. Each bin's phase is advanced by its measured
instantaneous frequency times the hop - a running sum over output frames, done here as one
``cumsum`` over time, so the whole method is vectorised. Horizontal phase coherence is thereby kept
(no phase jumps for steady partials) but the vertical coherence between bins is lost: the result
sounds *phasey* and transients smear over a frame. ``phase_locking=True`` applies Laroche & Dolson's
identity phase locking: bins around each spectral peak keep their phase offsets to the peak.
"""

from __future__ import annotations

import math

import torch

from course_lib.tsm._common import (ArrayLike, as_batch, batch_blocks, check_frame, check_rate, check_sr,
                                    fix_length, output_length, overlap_add, pow2_frame, restore, window_sum)

#: default phase-vocoder frame length in seconds (2048 samples at 22.05 kHz); the hop is a quarter.
PV_FRAME_SECONDS = 0.093


def _window(n: int, device: torch.device) -> torch.Tensor:
    return torch.hann_window(n, periodic=True, device=device, dtype=torch.float32)


def peak_regions(mag: torch.Tensor) -> torch.Tensor:
    """For each bin of ``mag`` ``(..., freq)`` (frequency last), the index of the nearest spectral peak.

    A peak is a bin larger than its two neighbours on each side. Bins are assigned to the closer of
    the peaks below and above them (their region of influence). Returns long ``(..., freq)``.
    """
    f = mag.shape[-1]
    padded = torch.nn.functional.pad(mag, (2, 2), value=-1.0)
    c = padded[..., 2:f + 2]
    is_peak = ((c > padded[..., 1:f + 1]) & (c > padded[..., 0:f])
               & (c >= padded[..., 3:f + 3]) & (c >= padded[..., 4:f + 4]))
    k = torch.arange(f, device=mag.device).expand_as(is_peak)
    big = f * 4
    below = torch.where(is_peak, k, torch.full_like(k, -big)).cummax(dim=-1).values
    above = torch.where(is_peak, k, torch.full_like(k, big)).flip(-1).cummin(dim=-1).values.flip(-1)
    nearest = torch.where((k - below) <= (above - k), below, above)
    # frames without any peak: every bin is its own region
    return torch.where((nearest < 0) | (nearest >= f), k, nearest)


def stretch_spectrogram(spec: torch.Tensor, rate: float, hop: int, n_fft: int, frames_out: int,
                        phase_locking: bool = False) -> torch.Tensor:
    """Phase-vocoder time stretch of a complex STFT ``(batch, n_fft//2+1, frames)``.

    Output frame ``j`` takes the magnitude at input frame ``j * rate`` (linear interpolation) and a
    phase advanced by each bin's instantaneous frequency times ``hop`` samples. Returns complex
    ``(batch, n_fft//2+1, frames_out)``; invert it with hop ``hop``.
    """
    b, nf, t_in = spec.shape
    dev = spec.device
    # time-major (batch, frames, freq): reading a frame copies one contiguous row, and phase locking
    # works along rows; the arithmetic per bin is unchanged
    spec = torch.nn.functional.pad(spec.transpose(1, 2), (0, 0, 0, 2))  # two silent frames past the end
    mag_in, ph_in = spec.abs(), torch.angle(spec)
    t = torch.arange(frames_out, dtype=torch.float64) * rate  # frame times in float64 on the CPU
    i0 = t.floor().long().clamp(max=t_in)  # reads past the end hit the silent frames
    alpha = (t - i0.to(torch.float64)).clamp(0.0, 1.0).to(dev, torch.float32).view(-1, 1)
    i0 = i0.to(dev)
    m0, m1 = mag_in.index_select(1, i0), mag_in.index_select(1, i0 + 1)
    mag = torch.lerp(m0, m1, alpha)
    ph0, ph1 = ph_in.index_select(1, i0), ph_in.index_select(1, i0 + 1)
    k = torch.arange(nf, device=dev)
    # the bin-centre advance omega_k * hop = 2 pi k hop / n_fft, kept exact with integer arithmetic
    omega = (2.0 * math.pi * hop / n_fft) * k.to(torch.float32).view(1, -1)
    deviation = ph1 - ph0 - omega
    deviation = torch.remainder(deviation + math.pi, 2.0 * math.pi) - math.pi
    # phase of output frame j: phase of frame 0 + sum_{i<j} (omega + deviation_i)
    j = torch.arange(frames_out, device=dev)
    bin_turns = torch.remainder((hop * j).view(-1, 1) * k.view(1, -1), n_fft).to(torch.float32) * (2.0 * math.pi / n_fft)
    dev_sum = torch.cumsum(deviation, dim=1) - deviation
    phase = ph0[:, :1] + bin_turns + dev_sum
    if phase_locking:
        peaks = peak_regions(mag)
        phase = torch.gather(phase, -1, peaks) + ph0 - torch.gather(ph0, -1, peaks)
    # polar form from vectorised cos / sin (torch.polar's own loop is several times slower on the CPU)
    out = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
    return out.transpose(1, 2)


def phase_vocoder(x: ArrayLike, sr: int, rate: float, *, frame_length: int | None = None,
                  hop: int | None = None, phase_locking: bool = False) -> ArrayLike:
    """Time-stretch by the phase vocoder.

    Args:
        x: mono audio ``(samples,)`` or ``(batch, samples)`` (tensor or NumPy), float in [-1, 1].
        sr: sample rate in Hz (only used for the default frame length).
        rate: speed factor; ``> 1`` = faster / shorter. Output length ``round(samples / rate)``.
        frame_length: FFT size in samples (default: power of two nearest 93 ms, 2048 at 22.05 kHz).
        hop: STFT hop in samples, analysis and synthesis (default ``frame_length // 4``).
        phase_locking: identity phase locking around spectral peaks (less phasiness).
    Returns:
        audio ``(batch, round(samples / rate))`` in the input's form.
    """
    sr = check_sr(sr)
    rate = check_rate(rate)
    n = frame_length or pow2_frame(sr, PV_FRAME_SECONDS)
    h = hop or n // 4
    n, h = check_frame(n, h)
    xb, form = as_batch(x, min_samples=n // 2 + 1)
    length = output_length(xb.shape[-1], rate)
    return restore(_stretch(xb, rate, n, h, length, phase_locking), form)


def _stretch(xb: torch.Tensor, rate: float, n: int, h: int, length: int, phase_locking: bool) -> torch.Tensor:
    blocks = batch_blocks(xb)
    if len(blocks) > 1:
        return torch.cat([_stretch(xb[blk], rate, n, h, length, phase_locking) for blk in blocks])
    win = _window(n, xb.device)
    # extra silence on the right so that frames centred past the last sample exist
    xpad = torch.nn.functional.pad(xb, (0, n // 2))
    spec = torch.stft(xpad, n, h, window=win, center=True, pad_mode="constant", return_complex=True)
    frames_out = length // h + 2
    out = stretch_spectrogram(spec, rate, h, n, frames_out, phase_locking)
    return inverse_stft(out, win, h, length)


def inverse_stft(spec: torch.Tensor, window: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """Weighted overlap-add inverse of a centred STFT ``(batch, freq, frames)`` -> ``(batch, length)``.

    Frames are windowed again and normalised by the overlap-added squared window (fast slab adds).
    """
    n = window.shape[0]
    frames = torch.fft.irfft(spec.transpose(1, 2), n) * window
    y = overlap_add(frames, hop)
    norm = window_sum(window * window, frames.shape[1], hop)
    y = y[:, n // 2:n // 2 + length] / norm[n // 2:n // 2 + length].clamp_min(1e-3)
    return fix_length(y, length)
