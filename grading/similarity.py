"""Near-duplicate and memorisation checks on loops (trusted scorer).

What counts as a copy is the course's one definition, :mod:`course_lib.data.duplicates` (waveform
circular NCC or normalised log-mel distance at the best circular shift; the data cards use it too);
its names are re-exported here for the scorer. This module adds the memorisation checks.

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

import torch

from course_lib.data.duplicates import (DYNAMIC_RANGE, MEL, SMOOTH_FRAMES, Match, band_limited_distances,  # noqa: F401
                                        batched_circular_ncc, circular_ncc, find_duplicates, fingerprint, is_copy,
                                        nearest_matches, normalised_logmel)

SPEED_FACTORS = tuple(round(0.96 + 0.01 * i, 2) for i in range(9))  # speed changes of a copy searched: ±4 %, 1 % steps
TRIM_FRACTION = 0.1              # worst-matching frames left out of a disguised comparison (a slowed loop's wrapped end)
BAND_CUTOFFS = (64, 48, 40)      # compare mel bands [0, k): a low-pass down to about 2 kHz keeps bands < 40
FINGERPRINT_BANDS = 32           # candidates of a disguised copy are found on the low bands (they survive a low-pass)


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


def find_memorised(audio: torch.Tensor, logmels: torch.Tensor, training_audio: torch.Tensor,
                   training_logmels: torch.Tensor, ncc_threshold: float, logmel_threshold: float,
                   max_shift: int, disguised_threshold: float = 0.0) -> list[Match]:
    """Loops that copy training loops: shifted, rescaled, noisy or inverted; with ``disguised_threshold``
    > 0 also low-passed and/or sped up or slowed down by a few percent (:func:`find_disguised`)."""
    found = {m.index: m for m in nearest_matches(audio, logmels, training_audio, training_logmels, max_shift,
                                                 ncc_threshold, logmel_threshold)
             if is_copy(m, ncc_threshold, logmel_threshold)}
    if disguised_threshold > 0:
        rest = [i for i in range(len(audio)) if i not in found]
        if rest:
            sub = torch.as_tensor(audio, dtype=torch.float32)[rest]
            # any circular shift: the disguise search does not lean on the waveform correlation to find far shifts
            for m in find_disguised(sub, training_logmels, disguised_threshold, training_logmels.shape[-1] // 2):
                m.index = rest[m.index]
                found[m.index] = m
    return [found[i] for i in sorted(found)]


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
