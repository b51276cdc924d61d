"""Near-duplicate and memorisation checks on loops (trusted scorer).

Two loops count as copies when their waveforms correlate almost perfectly at some circular
shift (normalised cross-correlation, robust to gain, light noise and any time shift), or when
their normalised log-mels nearly coincide (a copy that changed phase but not sound). A loop is
compared through its *normalised log-mel*: the log-mel floored 40 dB below the
clip's loudest cell (light added noise disappears under it) with the clip's mean removed (a
gain change, an additive constant in log space, does not hide a copy). Distances
are RMS differences in nats. A circular time shift (a copied loop started elsewhere) is
searched explicitly over ``±max_shift`` frames for the few nearest candidates, which are
found first with a shift-invariant fingerprint: the magnitude of the temporal DFT of every mel
band (a circular shift changes only its phase).

Copies in disguise (memorisation only, :func:`find_disguised`): the waveform correlation takes
its absolute value (a loop with inverted polarity correlates at -1; the log-mel does not see
polarity at all); a **low-pass** filtered copy keeps the low mel bands, so the distance is also
taken over the lowest ``BAND_CUTOFFS`` bands only (each clip's mean re-removed over them); a
**speed change** of a few percent (pitch and tempo together) is undone by resampling the query's
audio by ``1 / f`` for each ``f`` in ``SPEED_FACTORS`` before comparing (worst frames left out:
a slowed copy's end wraps around). The smallest distance over
speeds, band cutoffs and shifts is compared with its own, separately calibrated threshold
(``disguised_logmel_rms_distance``): searching more variants brings distinct loops closer too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from course_lib import spectral

MEL = spectral.MelConfig(n_mels=64, fmax=8000.0)
SMOOTH_FRAMES = 3    # frames of temporal smoothing: a shift by a fraction of a hop barely matters
DYNAMIC_RANGE = 4.6  # nats (40 dB) below each clip's loudest cell are floored: light noise does not count
SPEED_FACTORS = tuple(round(0.96 + 0.01 * i, 2) for i in range(9))  # speed changes of a copy searched: ±4 %, 1 % steps
REFINE_SHIFT = 0                 # also try the trimmed distance +-this many frames around the best shift (2 did not help)
TRIM_FRACTION = 0.1              # worst-matching frames left out of a disguised comparison (a slowed loop's wrapped end)
BAND_CUTOFFS = (64, 48, 40)      # compare mel bands [0, k): a low-pass down to about 2 kHz keeps bands < 40
FINGERPRINT_BANDS = 32           # candidates of a disguised copy are found on the low bands (they survive a low-pass)


def normalised_logmel(audio: np.ndarray | torch.Tensor, batch: int = 64) -> torch.Tensor:
    """``(n, samples)`` audio -> ``(n, n_mels, frames)`` log-mel with each clip's mean removed."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    out = []
    for start in range(0, x.shape[0], batch):
        out.append(_normalise(spectral.log_mel(x[start : start + batch], MEL, floor=1e-8)))
    return torch.cat(out) if out else torch.zeros(0, MEL.n_mels, 0)


def _normalise(lm: torch.Tensor) -> torch.Tensor:
    """Log-mel ``(n, M, T)`` -> floored ``DYNAMIC_RANGE`` below each clip's max, smoothed, mean removed."""
    lm = torch.maximum(lm, lm.amax(dim=(1, 2), keepdim=True) - DYNAMIC_RANGE)
    lm = torch.nn.functional.avg_pool1d(lm, SMOOTH_FRAMES, stride=1, padding=SMOOTH_FRAMES // 2,
                                        count_include_pad=False)
    return lm - lm.mean(dim=(1, 2), keepdim=True)


def resample_loops(audio: torch.Tensor, factor: float) -> torch.Tensor:
    """Loops ``(n, samples)`` played ``factor`` times as fast, wrapping around (linear interpolation, float32)."""
    n = audio.shape[-1]
    pos = torch.arange(n, dtype=torch.float64) * factor % n
    i0 = pos.floor().long()
    frac = (pos - i0).float()
    return audio[..., i0] * (1 - frac) + audio[..., (i0 + 1) % n] * frac


def speed_undone_logmels(audio: torch.Tensor, factors: tuple[float, ...]) -> dict[float, torch.Tensor]:
    """Normalised log-mels ``(n, M, T)`` of loops ``(n, samples)`` resampled by ``1 / f`` for each ``f`` in ``factors``.

    Undoes a copy played ``f`` times as fast (:func:`resample_loops`, wrapping around the loop);
    one STFT per speed.
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    return {f: normalised_logmel(x if f == 1.0 else resample_loops(x, 1.0 / f)) for f in factors}


def fingerprint(logmels: torch.Tensor) -> torch.Tensor:
    """Shift-invariant fingerprint ``(n, features)``: |DFT over time| of each mel band, L2-normalised."""
    spec = torch.fft.rfft(logmels, dim=-1).abs().flatten(1)
    return spec / spec.norm(dim=1, keepdim=True).clamp_min(1e-9)


def shifted_rms_distance(a: torch.Tensor, b: torch.Tensor, max_shift: int) -> tuple[float, int]:
    """Smallest RMS difference between log-mel ``a`` and circular shifts of ``b`` by ``±max_shift`` frames."""
    best, best_shift = float("inf"), 0
    for shift in range(-max_shift, max_shift + 1):
        d = float((a - torch.roll(b, shift, dims=-1)).pow(2).mean().sqrt())
        if d < best:
            best, best_shift = d, shift
    return best, best_shift


def circular_ncc(query: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best normalised circular cross-correlation of a waveform ``(samples,)`` with each candidate ``(k, samples)``.

    Returns ``(|ncc| (k,), lag (k,))``: 1.0 means a candidate is the query shifted (and rescaled, or inverted);
    unrelated loops of the same style stay far below (about 0.8 at most on the course's loop set).
    """
    n = query.shape[-1]
    spectrum = torch.fft.rfft(query.to(torch.float64)).unsqueeze(0) * torch.fft.rfft(candidates.to(torch.float64)).conj()
    corr = torch.fft.irfft(spectrum, n=n)
    best, lag = corr.abs().max(dim=1)  # |correlation|: a copy with inverted polarity correlates at -1
    norms = query.to(torch.float64).norm() * candidates.to(torch.float64).norm(dim=1)
    return (best / norms.clamp_min(1e-12)).to(torch.float32), lag


@dataclass
class Match:
    """A loop's closest loop in a reference set (or earlier in its own set)."""

    index: int          # query loop index
    ref_index: int      # index into the reference set
    ncc: float          # best normalised circular cross-correlation of the waveforms
    distance: float     # RMS normalised-log-mel distance at the best frame shift (nats)
    shift: int          # that best circular shift in frames
    disguise: str = ""  # how the copy was found: "" (as is), "polarity", "low-pass", "speed x0.97", ...


def nearest_matches(query_audio: torch.Tensor, query_mels: torch.Tensor, ref_audio: torch.Tensor,
                    ref_mels: torch.Tensor, max_shift: int, ncc_threshold: float, logmel_threshold: float,
                    candidates: int = 8, exclude_self: bool = False, chunk: int = 16) -> list[Match]:
    """For each query loop, its closest reference loop among the ``candidates`` nearest by fingerprint.

    Each candidate is compared by waveform (circular NCC) and by normalised log-mel (shifted RMS
    distance). The match reported is a candidate that counts as a copy (NCC at or above
    ``ncc_threshold``, or distance below ``logmel_threshold``) with the highest NCC, else the
    candidate with the highest NCC. ``exclude_self``: query and reference are the same set, and
    only *earlier* loops count (so the first of two duplicates is kept).
    """
    if len(ref_mels) == 0 or len(query_mels) == 0:
        return []
    dist = torch.cdist(fingerprint(query_mels), fingerprint(ref_mels))
    if exclude_self:
        n = dist.shape[0]
        dist = dist.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(), float("inf"))
    k = min(candidates, dist.shape[1])
    qa, ra = torch.as_tensor(query_audio, dtype=torch.float32), torch.as_tensor(ref_audio, dtype=torch.float32)
    top = torch.topk(dist, k, largest=False)
    matches = []
    for start in range(0, len(query_mels), chunk):  # queries in chunks: one FFT / distance call per chunk
        rows = slice(start, start + chunk)
        idx, valid = top.indices[rows], torch.isfinite(top.values[rows])                 # (c, k)
        ncc = batched_circular_ncc(qa[rows], ra[idx])                                       # (c, k)
        d, sh, _ = band_limited_distances(query_mels[rows], ref_mels[idx], (query_mels.shape[1],), max_shift)
        for r in range(idx.shape[0]):
            found = [Match(start + r, int(idx[r, j]), float(ncc[r, j]), float(d[r, j]), int(sh[r, j]))
                     for j in range(k) if valid[r, j]]
            if not found:
                continue
            copies = [m for m in found if _is_copy(m, ncc_threshold, logmel_threshold)]
            matches.append(max(copies or found, key=lambda m: m.ncc))
    return matches


def batched_circular_ncc(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """:func:`circular_ncc` for queries ``(c, samples)`` and their candidates ``(c, k, samples)`` -> ``|ncc| (c, k)``.

    float32 FFTs (the thresholds are far from float32 rounding); 1.0 = a shifted, rescaled or inverted copy.
    """
    n = queries.shape[-1]
    corr = torch.fft.irfft(torch.fft.rfft(queries).unsqueeze(1) * torch.fft.rfft(candidates).conj(), n=n)
    norms = queries.norm(dim=-1, keepdim=True) * candidates.norm(dim=-1)
    return corr.abs().amax(-1) / norms.clamp_min(1e-12)


def _is_copy(m: Match, ncc_threshold: float, logmel_threshold: float) -> bool:
    return m.ncc >= ncc_threshold or m.distance < logmel_threshold


def find_duplicates(audio: torch.Tensor, logmels: torch.Tensor, ncc_threshold: float, logmel_threshold: float,
                    max_shift: int) -> list[Match]:
    """Loops that (nearly) repeat an earlier loop of the same submission."""
    return [m for m in nearest_matches(audio, logmels, audio, logmels, max_shift, ncc_threshold, logmel_threshold,
                                       exclude_self=True) if _is_copy(m, ncc_threshold, logmel_threshold)]


def find_memorised(audio: torch.Tensor, logmels: torch.Tensor, training_audio: torch.Tensor,
                   training_logmels: torch.Tensor, ncc_threshold: float, logmel_threshold: float,
                   max_shift: int, disguised_threshold: float = 0.0) -> list[Match]:
    """Loops that copy training loops: shifted, rescaled, noisy or inverted; with ``disguised_threshold``
    > 0 also low-passed and/or sped up or slowed down by a few percent (:func:`find_disguised`)."""
    found = {m.index: m for m in nearest_matches(audio, logmels, training_audio, training_logmels, max_shift,
                                                 ncc_threshold, logmel_threshold)
             if _is_copy(m, ncc_threshold, logmel_threshold)}
    if disguised_threshold > 0:
        rest = [i for i in range(len(audio)) if i not in found]
        if rest:
            sub = torch.as_tensor(audio, dtype=torch.float32)[rest]
            # any circular shift: the disguise search does not lean on the waveform correlation to find far shifts
            for m in find_disguised(sub, training_logmels, disguised_threshold, training_logmels.shape[-1] // 2):
                m.index = rest[m.index]
                found[m.index] = m
    return [found[i] for i in sorted(found)]


def band_limited_distances(query: torch.Tensor, refs: torch.Tensor, cutoffs: tuple[int, ...], max_shift: int,
                           trim_frames: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Smallest RMS distance (nats) of log-mels ``query`` ``(n, M, T)`` to their candidates ``refs`` ``(n, k, M, T)``.

    Searched over circular shifts of the candidate within ``±max_shift`` frames and over the band
    sets ``[0, c)`` for ``c`` in ``cutoffs``; on each band set both clips' means over it are removed.
    All shifts at once by FFT: ``sum_t q[t] r[t - s]`` is ``irfft(Q * conj(R))[s]``, and
    ``sum (q - r_s - (mean q - mean r))^2 = sum q^2 + sum r^2 - 2 corr[s] - (sum q - sum r)^2 / N``.
    At the best shift and band set, the ``trim_frames`` worst-matching frames are then left out
    (the end of a loop slowed down and wrapped around does not match); float32. Returns
    ``(distance (n, k), shift (n, k), cutoff (n, k))``.
    """
    n, k, m, t = refs.shape
    q, r = query.to(torch.float32).unsqueeze(1), refs.to(torch.float32)             # (n, 1, M, T), (n, k, M, T)
    corr = torch.fft.irfft(torch.fft.rfft(q, dim=-1) * torch.fft.rfft(r, dim=-1).conj(), n=t, dim=-1)
    shifts = torch.arange(-max_shift, max_shift + 1)
    corr = corr[..., shifts % t].cumsum(2)                                           # (n, k, M, S) over bands [0, b]
    q2, qs = q.pow(2).sum(-1).cumsum(2), q.sum(-1).cumsum(2)                          # (n, 1, M)
    r2, rs = r.pow(2).sum(-1).cumsum(2), r.sum(-1).cumsum(2)                          # (n, k, M)
    cuts = [min(int(c), m) for c in cutoffs]
    dists = []
    for c in cuts:
        size = c * t
        sse = (q2[..., c - 1, None] + r2[..., c - 1, None] - 2 * corr[:, :, c - 1]
               - ((qs[..., c - 1] - rs[..., c - 1]) ** 2 / size)[..., None])
        dists.append((sse.clamp_min(0) / size).sqrt())                                # (n, k, S)
    d = torch.stack(dists, 2)                                                        # (n, k, C, S)
    flat = d.flatten(2).min(2)
    ci, si = flat.indices // d.shape[3], flat.indices % d.shape[3]
    cut = torch.tensor(cuts)[ci]                                                     # (n, k)
    shift = shifts[si]
    if trim_frames <= 0:
        return flat.values.float(), shift, cut
    band = (torch.arange(m).view(1, 1, m, 1) < cut.view(n, k, 1, 1)).to(torch.float32)
    size = (cut * t).to(torch.float32).view(n, k, 1, 1)
    best_d, best_s = None, shift
    for delta in range(-REFINE_SHIFT, REFINE_SHIFT + 1):  # the untrimmed best shift can be pulled off by the trimmed frames
        sh = shift + delta
        idx = (torch.arange(t).view(1, 1, 1, t) - sh.view(n, k, 1, 1)) % t          # roll(r, s)[t] = r[t - s]
        rolled = torch.gather(r, 3, idx.expand(n, k, m, t))
        diff = (q - rolled) * band
        diff = (diff - diff.sum(dim=(2, 3), keepdim=True) / size) * band              # means over the band set removed
        per_frame = diff.pow(2).sum(2) / cut.view(n, k, 1)                            # (n, k, T)
        d_trim = per_frame.sort(dim=-1).values[..., : t - trim_frames].mean(-1).sqrt()
        if best_d is None:
            best_d, best_s = d_trim, sh.clone()
        else:
            better = d_trim < best_d
            best_d, best_s = torch.where(better, d_trim, best_d), torch.where(better, sh, best_s)
    return best_d.float(), best_s, cut


def _lowband_fingerprint(logmels: torch.Tensor) -> torch.Tensor:
    """Like :func:`fingerprint` on the lowest ``FINGERPRINT_BANDS`` bands, without the DC term (a low-pass moves it)."""
    spec = torch.fft.rfft(logmels[:, :FINGERPRINT_BANDS], dim=-1).abs()[..., 1:].flatten(1)
    return spec / spec.norm(dim=1, keepdim=True).clamp_min(1e-9)


def find_disguised(audio: torch.Tensor, training_logmels: torch.Tensor, threshold: float, max_shift: int,
                   candidates: int = 4, speeds: tuple[float, ...] = SPEED_FACTORS,
                   cutoffs: tuple[int, ...] = BAND_CUTOFFS, trim: float = TRIM_FRACTION) -> list[Match]:
    """Loops ``(n, samples)`` that copy a training loop through a low-pass and/or a small speed change.

    For each speed ``f`` the query is resampled by ``1 / f`` (undoing a copy played ``f`` times as
    fast), its low-band fingerprint picks ``candidates`` training loops, and
    :func:`band_limited_distances` compares them (leaving out the ``trim`` fraction of worst frames).
    A match is reported when the smallest distance is below ``threshold``; its ``ncc`` is NaN (not
    measured) and ``disguise`` names the speed and the bands compared.
    """
    matches = nearest_disguised(audio, training_logmels, max_shift, candidates, speeds, cutoffs, trim)
    return [m for m in matches if m.distance < threshold]


def nearest_disguised(audio: torch.Tensor, training_logmels: torch.Tensor, max_shift: int, candidates: int = 4,
                      speeds: tuple[float, ...] = SPEED_FACTORS, cutoffs: tuple[int, ...] = BAND_CUTOFFS,
                      trim: float = TRIM_FRACTION) -> list[Match]:
    """Each loop's nearest training loop under the disguise search of :func:`find_disguised` (one Match each)."""
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if len(training_logmels) == 0 or len(audio) == 0:
        return []
    ref_fp = _lowband_fingerprint(training_logmels)
    variants = speed_undone_logmels(audio, speeds)
    best_d = torch.full((len(audio),), float("inf"))
    best: list[Match | None] = [None] * len(audio)
    for f in speeds:
        lm = variants[f]
        dist = torch.cdist(_lowband_fingerprint(lm), ref_fp)
        top = torch.topk(dist, min(candidates, dist.shape[1]), largest=False).indices          # (n, k)
        trim_frames = int(round(trim * lm.shape[-1]))
        d, sh, cut = band_limited_distances(lm, training_logmels[top], cutoffs, max_shift, trim_frames)
        j = d.argmin(1)
        rows = torch.arange(len(lm))
        for i in torch.nonzero(d[rows, j] < best_d).flatten().tolist():
            c = int(cut[i, j[i]])
            parts = ([] if f == 1.0 else [f"speed x{f:g}"]) + ([] if c >= lm.shape[1] else [f"low-pass (bands < {c})"])
            best_d[i] = d[i, j[i]]
            best[i] = Match(i, int(top[i, j[i]]), float("nan"), float(d[i, j[i]]), int(sh[i, j[i]]),
                            ", ".join(parts) or "as is")
    return [m for m in best if m is not None]
