"""f0 tracking and pitch marks for TD-PSOLA (Lesson 02).

* :func:`estimate_f0` - a batched YIN (de Cheveigne & Kawahara 2002) in PyTorch: cumulative-mean-
  normalised difference function via FFT, first dip under a threshold, parabolic refinement; frames
  that are silent or have no clear dip are unvoiced. ``method="pyin"`` calls ``librosa.pyin`` instead.
* :func:`pitch_marks` - one mark per pitch period. The f0 track (unvoiced frames get a fixed
  ``unvoiced_hz``) is integrated into a running phase; the phase of the waveform's fundamental
  relative to it is measured by demodulation and smoothed, and a mark is placed each time the
  corrected phase completes a cycle - so marks sit on the same point of every period (the positive
  peak of the fundamental) without a sample-by-sample search.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from course_lib.tsm._common import ArrayLike, as_batch, check_sr


class F0Track(NamedTuple):
    """An f0 track: ``f0`` Hz ``(batch, frames)`` (0 where unvoiced), ``voiced`` bool ``(batch, frames)``;
    frame ``t`` is centred on sample ``t * hop``."""

    f0: torch.Tensor
    voiced: torch.Tensor
    hop: int


class PitchMarks(NamedTuple):
    """Pitch marks of a batch, flattened: mark ``i`` of item ``batch_index[i]`` sits at sample
    ``position[i]``, with local period ``period[i]`` (samples, float) and flag ``voiced[i]``.
    ``exact`` holds the sub-sample positions (float64) where the phase completes its cycle.
    Marks are sorted by (item, position)."""

    batch_index: torch.Tensor
    position: torch.Tensor
    period: torch.Tensor
    voiced: torch.Tensor
    exact: torch.Tensor

    def of_item(self, b: int) -> torch.Tensor:
        """Positions (samples) of the marks of batch item ``b``."""
        return self.position[self.batch_index == b]


def _check_range(fmin: float, fmax: float, sr: int) -> None:
    if not (0 < fmin < fmax):
        raise ValueError(f"fmin/fmax: need 0 < fmin < fmax, got fmin={fmin} Hz, fmax={fmax} Hz")
    if fmax >= sr / 2:
        raise ValueError(f"fmax={fmax} Hz must be below Nyquist ({sr / 2} Hz)")


def estimate_f0(x: ArrayLike, sr: int, *, fmin: float = 60.0, fmax: float = 800.0, hop: int | None = None,
                threshold: float = 0.15, silence_db: float = -45.0, method: str = "yin") -> F0Track:
    """Frame-wise f0 of mono audio ``(batch, samples)`` (or ``(samples,)``).

    Args:
        sr: sample rate in Hz. fmin, fmax: search range in Hz.
        hop: frame hop in samples (default 5 ms).
        threshold: YIN dip threshold on the normalised difference (lower = stricter voicing).
        silence_db: frames quieter than the loudest frame by more than this are unvoiced (dB).
        method: ``"yin"`` (batched torch) or ``"pyin"`` (``librosa.pyin``, slower, on CPU).
    Returns:
        :class:`F0Track` with f0 in Hz ``(batch, frames)``, 0 where unvoiced; ``frames = samples // hop + 1``.
    """
    sr = check_sr(sr)
    _check_range(fmin, fmax, sr)
    hop = int(hop or max(1, round(0.005 * sr)))
    tau_max = int(math.ceil(sr / fmin))
    tau_min = max(2, int(math.floor(sr / fmax)))
    w = tau_max  # integration window: one longest period
    xb, _ = as_batch(x, min_samples=2)
    if method == "pyin":
        import librosa

        frame_length = 1 << (2 * tau_max).bit_length()
        f0, voiced, _ = librosa.pyin(xb.detach().cpu().numpy(), fmin=fmin, fmax=fmax, sr=sr,
                                     frame_length=frame_length, hop_length=hop, center=True)
        f0t = torch.from_numpy(np.nan_to_num(f0, nan=0.0)).to(torch.float32).to(xb.device)
        vt = torch.from_numpy(voiced).to(xb.device) & (f0t > 0)
        return F0Track(f0t * vt, vt, hop)
    if method != "yin":
        raise ValueError(f"method: unknown f0 method {method!r}; use 'yin' or 'pyin'")
    width = tau_max + w
    xp = torch.nn.functional.pad(xb, (width // 2, width - width // 2 + hop))
    frames = xp.unfold(-1, width, hop)[:, : xb.shape[-1] // hop + 1]  # (batch, frames, width)
    nfft = 1 << (width - 1).bit_length()  # lags 0..tau_max of a w-long template never wrap
    spec = torch.fft.rfft(frames, nfft)
    cross = torch.fft.irfft(spec * torch.fft.rfft(frames[..., :w], nfft).conj(), nfft)[..., : tau_max + 1]
    cs = torch.nn.functional.pad(torch.cumsum(frames * frames, dim=-1), (1, 0))
    e0 = cs[..., w : w + 1]
    e_tau = cs[..., w : w + tau_max + 1] - cs[..., : tau_max + 1]
    d = (e0 + e_tau - 2.0 * cross).clamp_min(0.0)
    tau = torch.arange(tau_max + 1, device=xb.device)
    cmnd = d[..., 1:] * tau[1:] / torch.cumsum(d[..., 1:], dim=-1).clamp_min(1e-12)
    cmnd = torch.cat([torch.ones_like(d[..., :1]), cmnd], dim=-1)
    inner = cmnd[..., 1:-1]
    local_min = (inner <= cmnd[..., :-2]) & (inner < cmnd[..., 2:])
    cand = local_min & (inner < threshold)
    cand[..., : tau_min - 1] = False
    has = cand.any(dim=-1)
    first = cand.to(torch.int8).argmax(dim=-1) + 1  # index into cmnd
    t = first.clamp(1, tau_max - 1)
    a = cmnd.gather(-1, (t - 1).unsqueeze(-1)).squeeze(-1)
    b = cmnd.gather(-1, t.unsqueeze(-1)).squeeze(-1)
    c = cmnd.gather(-1, (t + 1).unsqueeze(-1)).squeeze(-1)
    denom = a - 2 * b + c
    shift = torch.where(denom.abs() > 1e-9, 0.5 * (a - c) / denom, torch.zeros_like(denom)).clamp(-0.5, 0.5)
    period = t.to(torch.float32) + shift
    level = 10.0 * torch.log10(e0.squeeze(-1).to(torch.float32) / w + 1e-12)
    loud = level > level.amax(dim=-1, keepdim=True) + silence_db
    voiced = has & loud
    f0 = torch.where(voiced, sr / period, torch.zeros_like(period))
    return F0Track(f0, voiced, hop)


def f0_per_sample(track: F0Track, samples: int, unvoiced_hz: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample-rate f0 curve ``(batch, samples)`` in Hz (linear between voiced frames, ``unvoiced_hz``
    elsewhere) and the matching voiced mask ``(batch, samples)`` (nearest frame)."""
    f0, voiced, hop = track.f0, track.voiced, track.hop
    n_frames = f0.shape[-1]
    pos = torch.arange(samples, device=f0.device, dtype=torch.float32) / hop
    i0 = pos.floor().long().clamp(max=n_frames - 1)
    i1 = (i0 + 1).clamp(max=n_frames - 1)
    frac = pos - i0.to(torch.float32)
    v0, v1 = voiced[:, i0], voiced[:, i1]
    f_a, f_b = f0[:, i0], f0[:, i1]
    both = v0 & v1
    one_side = torch.where(v0, f_a, torch.where(v1, f_b, torch.zeros_like(f_a)))
    curve = torch.where(both, f_a + (f_b - f_a) * frac, one_side)
    nearest = torch.where(frac < 0.5, v0, v1)
    voiced_s = nearest & (curve > 0)
    curve = torch.where(voiced_s, curve, torch.full_like(curve, float(unvoiced_hz)))
    return curve, voiced_s


def _unwrap(phase: torch.Tensor) -> torch.Tensor:
    d = torch.diff(phase, dim=-1)
    d = d - 2 * math.pi * torch.round(d / (2 * math.pi))
    return torch.cat([phase[..., :1], phase[..., :1] + torch.cumsum(d, dim=-1)], dim=-1)


def marks_from_phase(phase_cycles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where a running phase ``(batch, samples)`` (cycles) completes a cycle.

    Returns ``(batch_index, position, exact)``: the first sample at or after each crossing and the
    crossing itself in samples (float64, linear interpolation between samples).
    """
    whole = torch.floor(phase_cycles)
    step = torch.diff(whole, dim=-1, prepend=whole[..., :1] - 1) > 0
    idx = step.nonzero()
    b, n = idx[:, 0], idx[:, 1]
    now = phase_cycles[b, n].to(torch.float64)
    before = phase_cycles[b, (n - 1).clamp_min(0)].to(torch.float64)
    frac = torch.where(n > 0, (torch.floor(now) - before) / (now - before).clamp_min(1e-12), torch.ones_like(now))
    exact = (n - 1).to(torch.float64) + frac.clamp(0.0, 1.0)
    return b, n, exact


def pitch_marks(x: ArrayLike, sr: int, track: F0Track | None = None, *, unvoiced_hz: float = 100.0,
                smooth_seconds: float = 0.02, **f0_kwargs) -> PitchMarks:
    """Pitch marks of mono audio ``(batch, samples)``: one per period in voiced parts, one every
    ``1 / unvoiced_hz`` seconds elsewhere.

    Args:
        x: audio ``(samples,)`` or ``(batch, samples)``.
        sr: sample rate in Hz.
        track: an f0 track (:func:`estimate_f0`, or your own in the same form); estimated when ``None``
            (``f0_kwargs`` go to :func:`estimate_f0`).
        unvoiced_hz: mark rate in unvoiced / silent parts (Hz).
        smooth_seconds: length of the moving average that smooths the measured phase offset (s).
    Returns:
        :class:`PitchMarks` (flattened over the batch).
    """
    sr = check_sr(sr)
    if not unvoiced_hz > 0:
        raise ValueError(f"unvoiced_hz: must be > 0 Hz, got {unvoiced_hz}")
    xb, _ = as_batch(x, min_samples=2)
    if track is None:
        track = estimate_f0(xb, sr, **f0_kwargs)
    if track.f0.shape[0] != xb.shape[0]:
        raise ValueError(f"track: f0 has {track.f0.shape[0]} rows for a batch of {xb.shape[0]}")
    samples = xb.shape[-1]
    curve, voiced = f0_per_sample(track, samples, unvoiced_hz)
    return marks_from_curve(xb, sr, curve, voiced, smooth_seconds)


def marks_from_curve(xb: torch.Tensor, sr: int, curve: torch.Tensor, voiced: torch.Tensor,
                     smooth_seconds: float = 0.02) -> PitchMarks:
    """:func:`pitch_marks` from a sample-rate f0 curve ``(batch, samples)`` Hz and voiced mask."""
    samples = xb.shape[-1]
    inc = curve.to(torch.float64) / sr
    phase = torch.cumsum(inc, dim=-1) - inc
    # demodulate the fundamental: its phase relative to the running phase, smoothed over time
    demod = xb.to(torch.float64) * torch.exp(-2j * math.pi * phase)
    k = max(1, int(smooth_seconds * sr))
    cs = torch.nn.functional.pad(torch.cumsum(demod, dim=-1), (1, 0))
    lo = (torch.arange(samples, device=xb.device) - k // 2).clamp(0, samples)
    hi = (lo + k).clamp(max=samples)
    avg = (cs[:, hi] - cs[:, lo])
    offset = _unwrap(torch.angle(avg)) / (2 * math.pi)
    # cos(2 pi (phase + offset)) peaks where phase + offset is a whole number of cycles
    b_idx, pos, exact = marks_from_phase(phase + offset)
    period = sr / curve[b_idx, pos]
    return PitchMarks(b_idx, pos, period.to(torch.float32), voiced[b_idx, pos], exact)
