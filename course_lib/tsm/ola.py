"""OLA: overlap-add time-scale modification (the simplest TSM, Lesson 02).

Frames of ``frame_length`` samples are cut from the input every ``hop * rate`` samples (the analysis
hop) and overlap-added every ``hop`` samples (the synthesis hop) with a Hann window. Nothing aligns
the frames' waveforms, so a periodic signal gets phase jumps where frames overlap - fine for
noise-like or percussive sound (short frames keep transients sharp), bad for tones.
"""

from __future__ import annotations

import torch

from course_lib.tsm import kernels
from course_lib.tsm._common import (ArrayLike, as_batch, check_frame, check_rate, check_sr, fix_length,
                                    gather_frames, hann, output_length, overlap_add, pow2_frame, restore,
                                    window_sum)

#: default OLA frame length in seconds (1024 samples at 22.05 kHz); the hop is half of it.
OLA_FRAME_SECONDS = 0.046


def analysis_starts(rate: float, frames: int, device: torch.device) -> torch.Tensor:
    """Start sample of each analysis frame ``(frames,)`` (in the input padded by half a frame).

    Frame ``m`` is centred on input sample ``m * hop * rate`` - computed by the caller as
    ``round(m * analysis_hop)``; here ``rate`` is the analysis hop in samples.
    """
    return torch.round(torch.arange(frames, dtype=torch.float64) * rate).to(device, torch.long)  # float64 on the CPU


def synthesize(x: torch.Tensor, starts: torch.Tensor, frame_length: int, hop: int, length: int,
               pad_left: int) -> torch.Tensor:
    """Window, overlap-add and normalise frames of ``x`` ``(batch, samples)`` (already padded).

    ``starts``: ``(frames,)`` or ``(batch, frames)`` start samples of the analysis frames in ``x``;
    frames are placed every ``hop`` samples. The first ``pad_left`` output samples are dropped and the
    result is cut to ``length`` samples. Returns ``(batch, length)``.
    """
    win = hann(frame_length, x.device)
    if frame_length % hop == 0 and kernels.serves(x):
        y = kernels.windowed_overlap_add(x, starts, win, hop)  # compiled, bit-equal
    else:
        y = overlap_add(gather_frames(x, starts, frame_length) * win, hop)
    y = y[:, pad_left:pad_left + length]  # normalise only what is kept
    norm = window_sum(win, starts.shape[-1], hop)[pad_left:pad_left + length]
    return fix_length(y / norm.clamp_min(1e-3), length)


def ola(x: ArrayLike, sr: int, rate: float, *, frame_length: int | None = None,
        hop: int | None = None) -> ArrayLike:
    """Time-stretch by plain overlap-add.

    Args:
        x: mono audio ``(samples,)`` or ``(batch, samples)`` (tensor or NumPy), float in [-1, 1].
        sr: sample rate in Hz (only used for the default frame length).
        rate: speed factor; ``> 1`` = faster / shorter. Output length ``round(samples / rate)``.
        frame_length: frame length in samples (default: power of two nearest 46 ms, 1024 at 22.05 kHz).
        hop: synthesis hop in samples (default ``frame_length // 2``).
    Returns:
        audio ``(batch, round(samples / rate))`` in the input's form.
    """
    sr = check_sr(sr)
    rate = check_rate(rate)
    n = frame_length or pow2_frame(sr, OLA_FRAME_SECONDS)
    hs = hop or n // 2
    n, hs = check_frame(n, hs)
    xb, form = as_batch(x, min_samples=n // 2 + 1)
    length = output_length(xb.shape[-1], rate)
    frames = -(-length // hs) + 2
    starts = analysis_starts(hs * rate, frames, xb.device)
    need = int(starts[-1]) + n
    pad_right = max(0, need - (xb.shape[-1] + n // 2))
    xp = torch.nn.functional.pad(xb, (n // 2, pad_right))
    return restore(synthesize(xp, starts, n, hs, length, n // 2), form)
