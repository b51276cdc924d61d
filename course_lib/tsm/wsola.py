"""WSOLA: waveform-similarity overlap-add (Verhelst & Roelands 1993; Lesson 02).

Like OLA, but each analysis frame may move by up to ``tolerance`` samples from its nominal position:
it moves to where its waveform best matches the *natural continuation* of the previous frame
(the input one synthesis hop after the previous frame), measured by cross-correlation normalised by
the candidate's energy, over the part where the two frames overlap. Overlapping
frames then add in phase, so tones keep a smooth waveform.

Only the choice of frame ``m`` depends on frame ``m - 1``, so the search is one short loop over
frames. On the CPU (numba present) that loop is compiled (:mod:`course_lib.tsm.kernels`: direct
float64 dot products, the same frames chosen); otherwise each step is a batched FFT
cross-correlation against precomputed spectra of the search regions.
"""

from __future__ import annotations

import torch

from course_lib.tsm import kernels
from course_lib.tsm._common import (ArrayLike, as_batch, check_frame, check_rate, check_sr, gather_frames,
                                    output_length, pow2_frame, restore)
from course_lib.tsm.ola import OLA_FRAME_SECONDS, synthesize


def wsola(x: ArrayLike, sr: int, rate: float, *, frame_length: int | None = None, hop: int | None = None,
          tolerance: int | None = None) -> ArrayLike:
    """Time-stretch by WSOLA.

    Args:
        x: mono audio ``(samples,)`` or ``(batch, samples)`` (tensor or NumPy), float in [-1, 1].
        sr: sample rate in Hz (only used for the default frame length).
        rate: speed factor; ``> 1`` = faster / shorter. Output length ``round(samples / rate)``.
        frame_length: frame length in samples (default: power of two nearest 46 ms, 1024 at 22.05 kHz).
        hop: synthesis hop in samples (default ``frame_length // 2``).
        tolerance: largest shift of an analysis frame in samples, either way (default ``hop // 2``;
            should exceed half the longest period in the signal).
    Returns:
        audio ``(batch, round(samples / rate))`` in the input's form.
    """
    sr = check_sr(sr)
    rate = check_rate(rate)
    n = frame_length or pow2_frame(sr, OLA_FRAME_SECONDS)
    hs = hop or n // 2
    n, hs = check_frame(n, hs)
    tol = hs // 2 if tolerance is None else int(tolerance)
    if tol < 0:
        raise ValueError(f"tolerance: must be >= 0 samples, got {tolerance}")
    xb, form = as_batch(x, min_samples=n // 2 + 1)
    b, samples = xb.shape
    length = output_length(samples, rate)
    frames = -(-length // hs) + 2
    dev = xb.device
    # nominal frame starts in the input padded by n//2 + tol on the left
    nominal = torch.round(torch.arange(frames, dtype=torch.float64) * (hs * rate)).to(dev, torch.long) + tol
    need = int(nominal[-1]) + n + 2 * tol + hs + 1
    left = n // 2 + tol
    xp = torch.nn.functional.pad(xb, (left, max(0, need - (samples + left))))
    if tol == 0 or frames < 2:
        return restore(synthesize(xp, nominal, n, hs, length, n // 2), form)

    # Only the part of a frame that overlaps its predecessor (its first n - hs samples) is compared.
    lc = n - hs if n > hs else n
    span = lc + 2 * tol  # search region of frame m: [nominal - tol, nominal + tol + lc)
    nfft = 1 << (span - 1).bit_length()  # lags 0..2*tol never wrap around when nfft >= span
    compiled = kernels.serves(xp)
    # energy of every candidate, to normalise the correlation: a loud candidate must not win just by
    # being loud (e.g. a drum hit pulling frames towards it). ``floor`` keeps silence finite.
    floor = 1e-3 * (xb.pow(2).mean(dim=-1, keepdim=True) * lc).sqrt() + 1e-9  # (batch, 1)
    if not compiled:  # (the compiled search computes the same norms, bit for bit, frame by frame)
        regions = gather_frames(xp, nominal - tol, span)
        # spectra of every search region at once: (batch, frames, nfft // 2 + 1)
        reg_spec = torch.fft.rfft(regions, nfft)
        # running energy in float64 on the CPU (differences of a float32 cumsum cancel; MPS has no float64)
        cs = torch.nn.functional.pad(torch.cumsum(regions.to("cpu", torch.float64) ** 2, dim=-1), (1, 0))
        cand_norm = (cs[..., lc:lc + 2 * tol + 1] - cs[..., :2 * tol + 1]).clamp_min(0.0).sqrt().to(dev, torch.float32)
        inv_norm = 1.0 / (cand_norm + floor.unsqueeze(-1))
    # a small pull towards the nominal position: ties (silence, equally good periods) resolve to the
    # least drift, so the output keeps its timing. Scores are correlation / |candidate| minus the pull
    # scaled by |template| (estimated at the nominal continuation, which saves a norm per step).
    t_norm = gather_frames(xp, nominal + hs, lc).pow(2).sum(dim=-1).sqrt() + floor  # (batch, frames)
    pull = 1e-3 * (torch.arange(2 * tol + 1, device=dev) - tol).abs().to(torch.float32) / max(tol, 1)
    # frame m continues frame m - 1, whose nominal continuation norm is t_norm[:, m - 1]
    neg_penalty = -pull * t_norm.roll(1, dims=1).unsqueeze(-1)  # (batch, frames, 2 tol + 1)
    starts = torch.empty(b, frames, dtype=torch.long, device=dev)
    starts[:, 0] = nominal[0]
    if compiled:
        # the same scores as direct dot products in a compiled loop (course_lib.tsm.kernels)
        starts = kernels.wsola_search(xp, nominal, hs, lc, tol, floor.reshape(b), neg_penalty.contiguous())
    elif dev.type == "cpu":
        # on the CPU plain slices with Python integers are the cheapest way to read the templates
        prev = [int(nominal[0])] * b
        lo = (nominal - tol).tolist()
        for m in range(1, frames):
            template = torch.stack([xp[i, p + hs:p + hs + lc] for i, p in enumerate(prev)])
            corr = torch.fft.irfft(reg_spec[:, m] * torch.fft.rfft(template, nfft).conj(), nfft)
            best = torch.addcmul(neg_penalty[:, m], corr[:, :2 * tol + 1], inv_norm[:, m]).argmax(dim=1)
            prev = [lo[m] + j for j in best.tolist()]
            starts[:, m] = torch.tensor(prev)
    else:
        # on an accelerator everything stays on the device (no host round trip per frame)
        prev = starts[:, 0]
        offs = torch.arange(lc, device=dev)
        rows = torch.arange(b, device=dev).unsqueeze(1)
        for m in range(1, frames):
            template = xp[rows, (prev + hs).unsqueeze(1) + offs]  # natural continuation, (batch, lc)
            corr = torch.fft.irfft(reg_spec[:, m] * torch.fft.rfft(template, nfft).conj(), nfft)
            best = torch.addcmul(neg_penalty[:, m], corr[:, :2 * tol + 1], inv_norm[:, m]).argmax(dim=1)
            prev = nominal[m] - tol + best
            starts[:, m] = prev
    return restore(synthesize(xp, starts, n, hs, length, n // 2), form)
