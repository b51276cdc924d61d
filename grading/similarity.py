"""Near-duplicate and memorisation checks on loops, in log-mel space (trusted scorer).

A loop is compared through its *normalised log-mel*: the log-mel floored 40 dB below the
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


@dataclass
class Match:
    """A submitted loop's closest reference loop."""

    index: int          # submitted loop index
    ref_index: int      # index into the reference set
    distance: float     # RMS log-mel distance at the best shift (nats)
    shift: int          # best circular shift in frames


def nearest_matches(query: torch.Tensor, reference: torch.Tensor, max_shift: int, candidates: int = 5,
                    exclude_self: bool = False) -> list[Match]:
    """For each normalised log-mel in ``query`` ``(n, mels, frames)``, its closest loop in ``reference``.

    The ``candidates`` nearest by fingerprint are re-ranked by :func:`shifted_rms_distance`.
    ``exclude_self``: query and reference are the same set; a loop is not its own match and
    only earlier loops are considered (so the first of two duplicates is kept).
    """
    if len(reference) == 0 or len(query) == 0:
        return []
    fq, fr = fingerprint(query), fingerprint(reference)
    dist = torch.cdist(fq, fr)
    if exclude_self:
        n = dist.shape[0]
        dist = dist.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(), float("inf"))
    k = min(candidates, dist.shape[1])
    matches = []
    for i in range(len(query)):
        best = Match(i, -1, float("inf"), 0)
        order = torch.topk(dist[i], k, largest=False).indices
        for j in order.tolist():
            if not torch.isfinite(dist[i, j]):
                continue
            d, s = shifted_rms_distance(query[i], reference[j], max_shift)
            if d < best.distance:
                best = Match(i, j, d, s)
        if best.ref_index >= 0:
            matches.append(best)
    return matches


def find_duplicates(logmels: torch.Tensor, threshold: float, max_shift: int) -> list[Match]:
    """Loops that nearly repeat an earlier loop of the same submission (distance < threshold)."""
    return [m for m in nearest_matches(logmels, logmels, max_shift, exclude_self=True) if m.distance < threshold]


def find_memorised(logmels: torch.Tensor, training_logmels: torch.Tensor, threshold: float,
                   max_shift: int) -> list[Match]:
    """Submitted loops that are (possibly shifted, rescaled or noisy) copies of training loops."""
    return [m for m in nearest_matches(logmels, training_logmels, max_shift) if m.distance < threshold]
