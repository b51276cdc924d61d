"""Near-duplicate clips: the course's one definition, used by the data cards and by HW2's grader.

Two clips count as copies when their waveforms correlate almost perfectly at some circular
shift (normalised cross-correlation, robust to gain, light noise and any time shift), or when
their normalised log-mels nearly coincide (a copy that changed phase but not sound). A clip is
compared through its *normalised log-mel*: the log-mel floored 40 dB below the
clip's loudest cell (light added noise disappears under it) with the clip's mean removed (a
gain change, an additive constant in log space, does not hide a copy). Distances
are RMS differences in nats. A circular time shift (a copied loop started elsewhere) is
searched explicitly over ``±max_shift`` frames for the few nearest candidates, which are
found first with a shift-invariant fingerprint: the magnitude of the temporal DFT of every mel
band (a circular shift changes only its phase).

The thresholds below are the ones HW2's grader ships (``grading/thresholds.toml``, ``[dedupe]``; a test
keeps them equal); the grader's memorisation check (``grading.similarity``) adds copies in disguise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_lib import spectral

MEL = spectral.MelConfig(n_mels=64, fmax=8000.0)
SMOOTH_FRAMES = 3    # frames of temporal smoothing: a shift by a fraction of a hop barely matters
DYNAMIC_RANGE = 4.6  # nats (40 dB) below each clip's loudest cell are floored: light noise does not count
REFINE_SHIFT = 0     # also try the trimmed distance +-this many frames around the best shift (2 did not help)
NCC_THRESHOLD = 0.95      # |waveform NCC| at or above this: a copy (shifted, rescaled, inverted, lightly noisy)
LOGMEL_THRESHOLD = 0.08   # normalised log-mel RMS distance (nats) below this: a copy
MAX_SHIFT_FRAMES = 16     # circular frame shifts searched for the log-mel distance


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


def fingerprint(logmels: torch.Tensor) -> torch.Tensor:
    """Shift-invariant fingerprint ``(n, features)``: |DFT over time| of each mel band, L2-normalised."""
    spec = torch.fft.rfft(logmels, dim=-1).abs().flatten(1)
    return spec / spec.norm(dim=1, keepdim=True).clamp_min(1e-9)


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
            copies = [m for m in found if is_copy(m, ncc_threshold, logmel_threshold)]
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


def is_copy(m: Match, ncc_threshold: float, logmel_threshold: float) -> bool:
    return m.ncc >= ncc_threshold or m.distance < logmel_threshold


def find_duplicates(audio: torch.Tensor, logmels: torch.Tensor, ncc_threshold: float, logmel_threshold: float,
                    max_shift: int) -> list[Match]:
    """Loops that (nearly) repeat an earlier loop of the same submission."""
    return [m for m in nearest_matches(audio, logmels, audio, logmels, max_shift, ncc_threshold, logmel_threshold,
                                       exclude_self=True) if is_copy(m, ncc_threshold, logmel_threshold)]


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


def duplicate_stats(audio: torch.Tensor, ncc_threshold: float = NCC_THRESHOLD,
                    logmel_threshold: float = LOGMEL_THRESHOLD, max_shift: int = MAX_SHIFT_FRAMES) -> dict:
    """Near-duplicates among clips ``(N, samples)`` by :func:`find_duplicates` (a data card's figure).

    Returns ``{"item_rate", "n_duplicates", "ncc_threshold", "logmel_threshold", "max_shift_frames",
    "nn_median_ncc", "nn_median_distance", "nn_min_distance"}``: the share (and number) of clips that copy an
    earlier clip, and, over every clip but the first, its nearest earlier clip's |NCC| and log-mel distance (nats).
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 clips (N, samples) to look for duplicates, got {tuple(x.shape)}")
    logmels = normalised_logmel(x)
    nearest = nearest_matches(x, logmels, x, logmels, max_shift, ncc_threshold, logmel_threshold, exclude_self=True)
    copies = [m for m in nearest if is_copy(m, ncc_threshold, logmel_threshold)]
    ncc = torch.tensor([m.ncc for m in nearest])
    dist = torch.tensor([m.distance for m in nearest])
    return {"item_rate": len(copies) / x.shape[0], "n_duplicates": len(copies), "ncc_threshold": ncc_threshold,
            "logmel_threshold": logmel_threshold, "max_shift_frames": max_shift,
            "nn_median_ncc": float(ncc.median()), "nn_median_distance": float(dist.median()),
            "nn_min_distance": float(dist.min())}
