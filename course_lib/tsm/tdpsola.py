"""TD-PSOLA: time-domain pitch-synchronous overlap-add (Moulines & Charpentier 1990; Lesson 02).

Grains two periods long, Hann-windowed and centred on the input's pitch marks, are overlap-added
at *synthesis marks*. The synthesis marks are spaced by the wanted output period (the input period
divided by the pitch factor) and each one takes the grain of the analysis mark nearest to the
corresponding input time (output time times ``rate``): grains are repeated to slow down, skipped
to speed up. Each grain carries one period's impulse response of the vocal tract or instrument
body, so the spectral envelope (formants) stays where it was while f0 moves.

Unvoiced and silent parts get marks at a fixed rate and are copied with their spacing unchanged,
which keeps noise from turning into a buzz at the mark rate.

Everything is vectorised over grains and over the batch: marks come from a running phase
(see :mod:`course_lib.tsm.pitch_marks`), grains are gathered in one indexing step and added with
``index_add_``.
"""

from __future__ import annotations

import math

import torch

from course_lib.tsm._common import (ArrayLike, as_batch, batch_blocks, check_rate, check_sr, output_length,
                                    restore)
from course_lib.tsm.pitch_marks import F0Track, estimate_f0, f0_per_sample, marks_from_curve, marks_from_phase


def tdpsola(x: ArrayLike, sr: int, rate: float = 1.0, semitones: float = 0.0, *,
            track: F0Track | None = None, fmin: float = 60.0, fmax: float = 800.0, f0_method: str = "yin",
            unvoiced_hz: float = 100.0) -> ArrayLike:
    """Time-stretch and/or pitch-shift monophonic audio by TD-PSOLA.

    Args:
        x: mono audio ``(samples,)`` or ``(batch, samples)`` (tensor or NumPy), float in [-1, 1].
        sr: sample rate in Hz.
        rate: speed factor; ``> 1`` = faster / shorter. Output length ``round(samples / rate)``.
        semitones: pitch shift in semitones (voiced parts only; formants stay in place).
        track: the input's f0 track (:class:`~course_lib.tsm.pitch_marks.F0Track`); estimated with
            ``f0_method`` (``"yin"`` or ``"pyin"``) between ``fmin`` and ``fmax`` Hz when ``None``.
        unvoiced_hz: mark rate in unvoiced parts (Hz).
    Returns:
        audio ``(batch, round(samples / rate))`` in the input's form.
    """
    sr = check_sr(sr)
    rate = check_rate(rate)
    try:
        semitones = float(semitones)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"semitones: must be a number, got {semitones!r}") from exc
    if not math.isfinite(semitones) or abs(semitones) > 48:
        raise ValueError(f"semitones: must be finite and within +-48, got {semitones}")
    if not unvoiced_hz > 0:
        raise ValueError(f"unvoiced_hz: must be > 0 Hz, got {unvoiced_hz}")
    beta = 2.0 ** (semitones / 12.0)
    xb, form = as_batch(x, min_samples=int(2 * sr / unvoiced_hz) + 1)  # at least two unvoiced marks
    bsz, samples = xb.shape
    if track is not None and track.f0.shape[0] != bsz:
        raise ValueError(f"track: f0 has {track.f0.shape[0]} rows for a batch of {bsz}")
    if xb.device.type != "cpu":  # pitch marks need float64 positions: TD-PSOLA runs on the CPU
        out = tdpsola(xb.cpu(), sr, rate, semitones, fmin=fmin, fmax=fmax, f0_method=f0_method, unvoiced_hz=unvoiced_hz,
                      track=None if track is None else F0Track(track.f0.cpu(), track.voiced.cpu(), track.hop))
        return restore(out.to(xb.device), form)
    blocks = batch_blocks(xb)
    if len(blocks) > 1:  # cache-sized blocks on the CPU
        return restore(torch.cat([
            tdpsola(xb[blk], sr, rate, semitones, fmin=fmin, fmax=fmax, f0_method=f0_method, unvoiced_hz=unvoiced_hz,
                    track=None if track is None else F0Track(track.f0[blk], track.voiced[blk], track.hop))
            for blk in blocks]), form)
    if track is None:
        track = estimate_f0(xb, sr, fmin=fmin, fmax=fmax, method=f0_method)
    curve, voiced = f0_per_sample(track, samples, unvoiced_hz)
    marks = marks_from_curve(xb, sr, curve, voiced)
    length = output_length(samples, rate)
    dev = xb.device

    # synthesis marks: a running phase at the output's pitch, read through the time map n_in = n_out * rate
    t_in = (torch.arange(length, device=dev, dtype=torch.float64) * rate).round().long().clamp(max=samples - 1)
    f_out = torch.where(voiced[:, t_in], curve[:, t_in] * beta, curve[:, t_in]).to(torch.float64)
    inc = f_out / sr
    s_b, s_pos, s_exact = marks_from_phase(torch.cumsum(inc, dim=-1) - inc)

    # nearest analysis mark (same item) to each synthesis mark's input time
    big = 3 * (samples + 1)  # items far apart: the nearest mark is always one of the same item
    key_a = marks.batch_index * big + marks.position
    target = s_b * big + (s_pos.to(torch.float64) * rate).round().long().clamp(max=samples - 1)
    j = torch.searchsorted(key_a, target).clamp(1, key_a.numel() - 1)
    left, right = j - 1, j
    pick = torch.where((target - key_a[left]).abs() <= (key_a[right] - target).abs(), left, right)
    ok = marks.batch_index[pick] == s_b
    pick, s_b, s_pos, s_exact = pick[ok], s_b[ok], s_pos[ok], s_exact[ok]
    a_exact, period = marks.exact[pick], marks.period[pick]

    # Hann-windowed grains of two periods around the analysis marks, read with sub-sample precision
    # (linear interpolation) so that grain centres land exactly on the synthesis marks. Grains are
    # gathered in groups of similar length (powers of two) so short periods do not pay for long ones.
    pad = int(math.ceil(float(period.max()))) + 2 if period.numel() else 2
    xp = torch.nn.functional.pad(xb, (pad, pad + 1)).reshape(-1)
    centre = a_exact - (s_exact - s_pos.to(torch.float64))  # source point that lands on output sample s_pos
    base = torch.floor(centre)
    frac_all = (centre - base).to(torch.float32)
    src_all = s_b * (samples + 2 * pad + 1) + base.long() + pad
    shift_all = (s_pos.to(torch.float64) - s_exact).to(torch.float32)
    out_len = length + 2 * pad
    dst_all = s_b * out_len + s_pos + pad
    y = torch.zeros(bsz * out_len, device=dev)
    wsum = torch.zeros(bsz * out_len, device=dev)
    group = torch.ceil(torch.log2(period.clamp_min(1.0) + 1.0)).long()
    for g in torch.unique(group).tolist():
        sel = (group == g).nonzero().squeeze(1)
        half = min(2 ** g, pad - 1)
        k = torch.arange(-half, half + 1, device=dev)
        src = src_all[sel].unsqueeze(1) + k
        rel = (k.to(torch.float32) + shift_all[sel].unsqueeze(1)) / period[sel].unsqueeze(1)
        win = torch.where(rel.abs() < 1.0, 0.5 + 0.5 * torch.cos(math.pi * rel), torch.zeros_like(rel))
        grains = torch.lerp(xp[src], xp[src + 1], frac_all[sel].unsqueeze(1)) * win
        dst = (dst_all[sel].unsqueeze(1) + k).reshape(-1)
        y.index_add_(0, dst, grains.reshape(-1))
        wsum.index_add_(0, dst, win.reshape(-1))
    y = (y / wsum.clamp_min(1.0)).reshape(bsz, out_len)[:, pad:pad + length]
    return restore(y, form)
