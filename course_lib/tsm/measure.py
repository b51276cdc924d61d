"""Measurements used to compare TSM methods in Lesson 02 (not needed to run the methods).

* :func:`instantaneous_frequency_hz` - a tone's frequency sample by sample (analytic signal), which
  shows OLA's phase jumps as spikes.
* :func:`onset_times` and :func:`onset_alignment_error` - where the hits of a stretched loop land
  compared with where they should (the FSLD 120 BPM step).
* :func:`pre_onset_energy_db` - energy smeared ahead of each hit (transient smearing).
"""

from __future__ import annotations

import numpy as np

from course_lib.tsm._common import ArrayLike, as_batch, check_sr


def _clip(x: ArrayLike) -> np.ndarray:
    xb, _ = as_batch(x, min_samples=2)
    if xb.shape[0] != 1:
        raise ValueError(f"x: expected one clip, got a batch of {xb.shape[0]}")
    return xb[0].detach().cpu().numpy().astype(np.float64)


def instantaneous_frequency_hz(x: ArrayLike, sr: int) -> np.ndarray:
    """Instantaneous frequency (Hz) of a one-component clip ``(samples,)``: the derivative of the
    unwrapped phase of its analytic signal (FFT Hilbert transform). Returns ``(samples - 1,)``."""
    sr = check_sr(sr)
    y = _clip(x)
    n = y.shape[0]
    spec = np.fft.fft(y)
    h = np.zeros(n)
    h[0] = 1.0
    h[1:(n + 1) // 2] = 2.0
    if n % 2 == 0:
        h[n // 2] = 1.0
    analytic = np.fft.ifft(spec * h)
    return np.diff(np.unwrap(np.angle(analytic))) * sr / (2.0 * np.pi)


def onset_times(x: ArrayLike, sr: int, hop: int = 64) -> np.ndarray:
    """Onset times in seconds of a clip ``(samples,)``: librosa's spectral-flux onset detector with a
    hop of ``hop`` samples (peaks of the onset strength, no backtracking)."""
    import librosa

    sr = check_sr(sr)
    y = _clip(x).astype(np.float32)
    frames = librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop, units="frames")
    return frames * hop / sr


def onset_alignment_error(x: ArrayLike, sr: int, expected_s: ArrayLike, hop: int = 64) -> dict:
    """How well the detected onsets of ``x`` match ``expected_s`` (seconds).

    Returns ``{"mean_ms": mean |error| over expected onsets (to the nearest detected one), "max_ms",
    "missed": expected onsets with no detection within 50 ms, "extra": detections further than 50 ms
    from every expected onset}``.
    """
    exp = np.asarray(expected_s, dtype=np.float64).reshape(-1)
    det = onset_times(x, sr, hop)
    if det.size == 0:
        return {"mean_ms": float("nan"), "max_ms": float("nan"), "missed": int(exp.size), "extra": 0}
    err = np.abs(exp[:, None] - det[None, :])
    nearest = err.min(axis=1)
    hit = nearest < 0.05
    return {
        "mean_ms": float(1e3 * nearest[hit].mean()) if hit.any() else float("nan"),
        "max_ms": float(1e3 * nearest[hit].max()) if hit.any() else float("nan"),
        "missed": int((~hit).sum()),
        "extra": int((err.min(axis=0) >= 0.05).sum()),
    }


def pre_onset_energy_db(x: ArrayLike, sr: int, onsets_s: ArrayLike, window_s: float = 0.023,
                        guard_s: float = 0.002) -> float:
    """Median over hits of the energy in the ``window_s`` before each onset relative to the same
    length after it (dB). A sharp hit has little energy ahead of it (very negative); transient
    smearing pushes energy ahead of the hit and raises the figure."""
    sr = check_sr(sr)
    e = _clip(x) ** 2
    a, b = int(guard_s * sr), int((window_s + guard_s) * sr)
    out = []
    for t in np.asarray(onsets_s, dtype=np.float64).reshape(-1):
        n = int(round(t * sr))
        if n - b < 0 or n + b - a > e.shape[0]:
            continue
        out.append(10.0 * np.log10((e[n - b:n - a].sum() + 1e-12) / (e[n:n + b - a].sum() + 1e-12)))
    if not out:
        raise ValueError("onsets_s: no onset has a full window inside the clip")
    return float(np.median(out))
