"""course_lib.synth.formant: the vowels have the f0 asked for and their formants where the table says
(LPC envelope peaks), vibrato has the depth asked for, bad input is rejected."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal as ss
import torch

from course_lib.synth.formant import FORMANTS, vowel

SR = 16_000


def lpc_peaks(x: torch.Tensor, order: int = 18) -> np.ndarray:
    """Frequencies (Hz) of the local maxima of the order-``order`` LPC envelope of a clip."""
    a = librosa.lpc(x.numpy().astype(np.float64), order=order)
    w, h = ss.freqz(1.0, a, worN=8192, fs=SR)
    return w[ss.argrelmax(np.abs(h))[0]]


@pytest.mark.parametrize("name", sorted(FORMANTS))
def test_formants_sit_at_the_table_frequencies(name):
    x = vowel(90.0, name, 0.5, SR)
    assert x.shape == (1, 8000) and x.dtype == torch.float32
    assert abs(float(x.abs().max()) - 0.8) < 1e-4
    peaks = lpc_peaks(x[0])
    table = [f for f, _ in FORMANTS[name][:3]]
    # F2 and F3 within 5 % for every vowel; F1 (sampled by few harmonics when low) for the open vowels
    checked = table[1:] + (table[:1] if name in ("a", "e", "o") else [])
    for f in checked:
        nearest = peaks[np.argmin(np.abs(peaks - f))]
        assert abs(nearest - f) / f < 0.05, (name, f, nearest)


def test_f0_batch_and_vibrato():
    f0 = torch.tensor([110.0, 180.0])
    x = vowel(f0, "o", 0.8, SR, vibrato_cents=60.0)
    assert x.shape == (2, int(0.8 * SR))
    track, _, _ = librosa.pyin(x.numpy(), fmin=60, fmax=500, sr=SR, frame_length=1024, hop_length=128)
    c = 1200 * np.log2(track / f0.numpy()[:, None])
    for row in c:
        row = row[np.isfinite(row)]
        assert abs(np.median(row)) < 20
        assert np.percentile(row, 95) - np.percentile(row, 5) > 50  # the vibrato swings
    steady = vowel(f0, "o", 0.8, SR)
    track, _, _ = librosa.pyin(steady.numpy(), fmin=60, fmax=500, sr=SR, frame_length=1024, hop_length=128)
    c = 1200 * np.log2(track / f0.numpy()[:, None])
    assert np.all(np.abs(np.nanmedian(c, axis=1)) <= 10.0 + 1e-6)
    assert np.nanmax(c) - np.nanmin(c) < 25


def test_bad_input():
    with pytest.raises(ValueError, match="vowel"):
        vowel(100.0, "y", 0.1, SR)
    with pytest.raises(ValueError, match="f0"):
        vowel(9000.0, "a", 0.1, SR)
    with pytest.raises(ValueError, match="duration"):
        vowel(100.0, "a", 0.0, SR)
    with pytest.raises(ValueError, match="bandwidth"):
        vowel(100.0, "a", 0.1, SR, formants=((500.0, 0.0),))
