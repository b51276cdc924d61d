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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_lib import spectral

MEL = spectral.MelConfig(n_mels=64, fmax=8000.0)
SMOOTH_FRAMES = 3    # frames of temporal smoothing: a shift by a fraction of a hop barely matters
DYNAMIC_RANGE = 4.6  # nats (40 dB) below each clip's loudest cell are floored: light noise does not count


def normalised_logmel(audio: np.ndarray | torch.Tensor, batch: int = 64) -> torch.Tensor:
    """``(n, samples)`` audio -> ``(n, n_mels, frames)`` log-mel with each clip's mean removed."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    out = []
    for start in range(0, x.shape[0], batch):
        lm = spectral.log_mel(x[start : start + batch], MEL, floor=1e-8)
        lm = torch.maximum(lm, lm.amax(dim=(1, 2), keepdim=True) - DYNAMIC_RANGE)
        lm = torch.nn.functional.avg_pool1d(lm, SMOOTH_FRAMES, stride=1, padding=SMOOTH_FRAMES // 2,
                                            count_include_pad=False)
        out.append(lm - lm.mean(dim=(1, 2), keepdim=True))
    return torch.cat(out) if out else torch.zeros(0, MEL.n_mels, 0)


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

    Returns ``(ncc (k,), lag (k,))``: 1.0 means a candidate is the query shifted (and rescaled);
    unrelated loops of the same style stay far below (about 0.8 at most on the course's loop set).
    """
    n = query.shape[-1]
    spectrum = torch.fft.rfft(query.to(torch.float64)).unsqueeze(0) * torch.fft.rfft(candidates.to(torch.float64)).conj()
    corr = torch.fft.irfft(spectrum, n=n)
    best, lag = corr.max(dim=1)
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
                    candidates: int = 8, exclude_self: bool = False) -> list[Match]:
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
    matches = []
    for i in range(len(query_mels)):
        order = [j for j in torch.topk(dist[i], k, largest=False).indices.tolist() if torch.isfinite(dist[i, j])]
        if not order:
            continue
        nccs, _ = circular_ncc(qa[i], ra[order])
        found = []
        for c, ncc in zip(order, nccs.tolist()):
            d, shift = shifted_rms_distance(query_mels[i], ref_mels[c], max_shift)
            found.append(Match(i, c, ncc, d, shift))
        copies = [m for m in found if _is_copy(m, ncc_threshold, logmel_threshold)]
        matches.append(max(copies or found, key=lambda m: m.ncc))
    return matches


def _is_copy(m: Match, ncc_threshold: float, logmel_threshold: float) -> bool:
    return m.ncc >= ncc_threshold or m.distance < logmel_threshold


def find_duplicates(audio: torch.Tensor, logmels: torch.Tensor, ncc_threshold: float, logmel_threshold: float,
                    max_shift: int) -> list[Match]:
    """Loops that (nearly) repeat an earlier loop of the same submission."""
    return [m for m in nearest_matches(audio, logmels, audio, logmels, max_shift, ncc_threshold, logmel_threshold,
                                       exclude_self=True) if _is_copy(m, ncc_threshold, logmel_threshold)]


def find_memorised(audio: torch.Tensor, logmels: torch.Tensor, training_audio: torch.Tensor,
                   training_logmels: torch.Tensor, ncc_threshold: float, logmel_threshold: float,
                   max_shift: int) -> list[Match]:
    """Submitted loops that are (shifted, rescaled or noisy) copies of training loops."""
    return [m for m in nearest_matches(audio, logmels, training_audio, training_logmels, max_shift, ncc_threshold,
                                       logmel_threshold) if _is_copy(m, ncc_threshold, logmel_threshold)]
