"""Small building blocks shared by the synthetic-note and synthetic-loop renderers.

Both renderers play many notes at once with :mod:`course_lib.synth` oscillators; what they add is
an exponential ADSR (natural-sounding decays, with per-note note-off times) and a cheap "filter
envelope": two fixed low-pass biquads (bright, dark) cross-faded by a decaying envelope, which
sounds like a sweeping filter at the cost of two static filters (a swept biquad is much slower).
"""

from __future__ import annotations

import torch

from course_lib.synth.filters import biquad


def exp_adsr(samples: int, sr: int, attack: torch.Tensor, decay: torch.Tensor, sustain: torch.Tensor,
             release: torch.Tensor, note_off: torch.Tensor) -> torch.Tensor:
    """Exponential ADSR ``(batch, samples)`` in [0, 1]; every parameter is ``(batch,)`` (seconds / level).

    Linear rise over ``attack`` s, then ``sustain + (1 - sustain) exp(-(t - attack) / decay)``; after
    ``note_off`` s the level at note-off falls as ``exp(-(t - note_off) / release)`` (``decay`` and
    ``release`` are time constants: -8.7 dB per constant).
    """
    dev = attack.device
    t = torch.arange(samples, device=dev, dtype=torch.float32)[None, :] / sr
    a, d, s, r = (p.to(torch.float32).reshape(-1, 1).clamp_min(1e-4) if p is not sustain
                  else p.to(torch.float32).reshape(-1, 1) for p in (attack, decay, sustain, release))
    off = note_off.to(torch.float32).reshape(-1, 1)
    held = torch.where(t < a, t / a, s + (1 - s) * torch.exp(-(t - a) / d))
    at_off = torch.where(off < a, off / a, s + (1 - s) * torch.exp(-(off - a) / d))
    return torch.where(t < off, held, at_off * torch.exp(-(t - off) / r))


def filter_sweep(x: torch.Tensor, sr: int, cut_lo: torch.Tensor, cut_hi: torch.Tensor, q: torch.Tensor,
                 f_decay: torch.Tensor) -> torch.Tensor:
    """Low-pass ``x`` ``(batch, samples)``: bright (``cut_hi`` Hz) at the onset, fading to dark (``cut_lo`` Hz)
    with time constant ``f_decay`` s; all parameters ``(batch,)``."""
    hi = cut_hi.clamp(40.0, 0.45 * sr)
    lo = torch.minimum(cut_lo.clamp(30.0, 0.45 * sr), hi)
    t = torch.arange(x.shape[-1], device=x.device, dtype=torch.float32)[None, :] / sr
    fenv = torch.exp(-t / f_decay.reshape(-1, 1).clamp_min(1e-3))
    return fenv * biquad(x, "lowpass", hi, q, sr) + (1 - fenv) * biquad(x, "lowpass", lo, q, sr)
