"""course_lib.synth.physical: plucked strings hold their pitch exactly, decay, and behave physically."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from course_lib.synth.physical import feedback_loop, karplus_strong, waveguide_string

SR = 16000


def cents(f: float, ref: float) -> float:
    return float(1200 * np.log2(f / ref))


def pyin_median(x: np.ndarray, f0: float, sr: int = SR) -> float:
    # 2-cent pitch bins, +-4 semitones around f0: fine enough for a 5-cent test, and fast
    f, _, _ = librosa.pyin(x[: int(0.4 * sr)], fmin=f0 / 1.26, fmax=f0 * 1.26, sr=sr, frame_length=1024,
                           resolution=0.02)
    return float(np.nanmedian(f))


def fine_peak_hz(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    """Strongest spectral peak in [lo, hi] Hz (zero-padded FFT plus parabolic interpolation)."""
    n = 1 << 20
    mag = np.log(np.abs(np.fft.rfft(x * np.hanning(len(x)), n)) + 1e-12)
    freqs = np.fft.rfftfreq(n, 1 / sr)
    band = np.where((freqs > lo) & (freqs < hi))[0]
    i = band[np.argmax(mag[band])]
    a, b, c = mag[i - 1], mag[i], mag[i + 1]
    return float(freqs[i] + 0.5 * (a - c) / (a - 2 * b + c) * sr / n)


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12))


@pytest.mark.parametrize("f0", [110.0, 261.63, 880.0])
def test_karplus_strong_holds_pitch_within_5_cents(f0):
    y = karplus_strong(f0, 0.5, SR, seed=0)[0].numpy()
    assert abs(cents(pyin_median(y, f0), f0)) < 5.0
    # a sharper look: the spectral peak of the fundamental is within 1 cent
    assert abs(cents(fine_peak_hz(y, f0 / 1.2, f0 * 1.2), f0)) < 1.0


def test_fractional_delay_matters_at_high_pitch():
    # 880 Hz at 16 kHz is a loop of 18.18 samples; an integer delay of 18 would be 17 cents sharp.
    # A batch with three nearby pitches must resolve all three (each within 1 cent).
    f0s = torch.tensor([880.0, 884.0, 890.0])
    y = karplus_strong(f0s, 0.5, SR, seed=1)
    for row, f0 in zip(y.numpy(), f0s.tolist()):
        assert abs(cents(fine_peak_hz(row, f0 / 1.1, f0 * 1.1), f0)) < 1.0


def test_karplus_strong_decays_and_is_normalised():
    y = karplus_strong(220.0, 1.0, SR, seed=0, decay=0.996)[0].numpy()
    assert np.isfinite(y).all() and np.abs(y).max() <= 0.8 + 1e-6
    assert rms_db(y[-1600:]) < rms_db(y[:1600]) - 15.0


def test_t60_sets_the_decay_rate():
    f0 = 196.0
    y = karplus_strong(f0, 1.0, SR, t60=0.5, brightness=1.0, seed=0)[0].numpy()
    # energy of the fundamental between 0.2 s and 0.4 s: a 0.5 s T60 means -24 dB in 0.2 s
    t = np.arange(len(y)) / SR
    ref = np.exp(-2j * np.pi * f0 * t)
    win = np.hanning(1600)

    def level(t0: float) -> float:
        i = int(t0 * SR)
        return 20 * np.log10(abs(np.sum(y[i : i + 1600] * ref[i : i + 1600] * win)))

    drop = level(0.2) - level(0.4)
    assert 20.0 < drop < 28.0


def test_brightness_controls_high_harmonics():
    dull = karplus_strong(220.0, 0.5, SR, brightness=0.0, seed=3)[0].numpy()
    bright = karplus_strong(220.0, 0.5, SR, brightness=1.0, seed=3)[0].numpy()

    def centroid(x: np.ndarray) -> float:
        mag = np.abs(np.fft.rfft(x[2000:6000]))
        return float((mag * np.fft.rfftfreq(4000, 1 / SR)).sum() / mag.sum())

    assert centroid(bright) > 1.5 * centroid(dull)


def test_karplus_strong_seed_is_deterministic():
    a = karplus_strong(330.0, 0.2, SR, seed=5)
    b = karplus_strong(330.0, 0.2, SR, seed=5)
    c = karplus_strong(330.0, 0.2, SR, seed=6)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (1, 3200) and a.dtype == torch.float32


@pytest.mark.parametrize("f0", [146.83, 659.25])
def test_waveguide_string_pitch(f0):
    y = waveguide_string(f0, 0.5, SR)[0].numpy()
    assert abs(cents(pyin_median(y, f0), f0)) < 5.0
    assert abs(cents(fine_peak_hz(y, f0 / 1.2, f0 * 1.2), f0)) < 1.0


def test_waveguide_pluck_position_removes_harmonics():
    # plucked at 1/4 of the length, harmonics 4, 8, ... are (nearly) missing; at 0.13 they are not
    f0 = 200.0
    t = np.arange(4000) / SR

    def harmonic_db(y: np.ndarray, k: int) -> float:
        seg = y[:4000] * np.hanning(4000)
        return 20 * np.log10(abs(np.sum(seg * np.exp(-2j * np.pi * k * f0 * t))) + 1e-12)

    quarter = waveguide_string(f0, 0.3, SR, pluck_position=0.25, damping=0.0)[0].numpy()
    other = waveguide_string(f0, 0.3, SR, pluck_position=0.13, damping=0.0)[0].numpy()
    # relative to the neighbouring harmonics 3 and 5
    notch_q = harmonic_db(quarter, 4) - 0.5 * (harmonic_db(quarter, 3) + harmonic_db(quarter, 5))
    notch_o = harmonic_db(other, 4) - 0.5 * (harmonic_db(other, 3) + harmonic_db(other, 5))
    assert notch_q < -12.0
    assert notch_o > -6.0


def test_waveguide_batch_and_pickup():
    f0 = torch.tensor([110.0, 220.0])
    y = waveguide_string(f0, 0.4, SR, pickup_position=0.3, t60=0.3)
    assert y.shape == (2, 6400) and torch.isfinite(y).all()
    for row, f in zip(y.numpy(), f0.tolist()):
        assert abs(cents(fine_peak_hz(row, f / 1.2, f * 1.2), f)) < 1.0
        assert rms_db(row[-1600:]) < rms_db(row[:1600]) - 20.0


def test_feedback_loop_matches_direct_recursion():
    # the block-wise loop equals a plain sample-by-sample recursion
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 300, generator=g)
    delay = torch.tensor([7, 11])
    taps = torch.tensor([[0.3, 0.4, 0.2], [0.5, -0.2, 0.1]])
    fast = feedback_loop(x, delay, taps)
    slow = x.clone().double()
    for b in range(2):
        for n in range(300):
            for j in range(3):
                m = n - int(delay[b]) - j
                if m >= 0:
                    slow[b, n] += float(taps[b, j]) * slow[b, m]
    assert torch.allclose(fast.double(), slow, atol=1e-5)


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="f0"):
        karplus_strong(5000.0, 0.1, SR)
    with pytest.raises(ValueError, match="f0"):
        karplus_strong(-1.0, 0.1, SR)
    with pytest.raises(ValueError, match="decay"):
        karplus_strong(220.0, 0.1, SR, decay=1.5)
    with pytest.raises(ValueError, match="brightness"):
        karplus_strong(220.0, 0.1, SR, brightness=2.0)
    with pytest.raises(ValueError, match="pluck_position"):
        waveguide_string(220.0, 0.1, SR, pluck_position=1.0)
    with pytest.raises(ValueError, match="f0"):
        karplus_strong(torch.full((2, 100), 220.0), 0.1, SR)
