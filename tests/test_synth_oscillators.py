"""course_lib.synth oscillators, envelopes/LFOs and wavetables: measured pitch, aliasing, timings."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from course_lib.synth import envelopes, oscillators, wavetable

SR = 16000


def peak_hz(x: torch.Tensor, sr: int = SR, lo: float = 30.0, pad: int = 8) -> float:
    """Frequency of the strongest spectral peak above ``lo`` Hz (Hann window, zero-padded FFT,
    parabolic interpolation of the log magnitude)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    mag = np.abs(np.fft.rfft(x * np.hanning(n), n * pad))
    mag[: int(lo * n * pad / sr)] = 0.0
    i = int(np.argmax(mag))
    a, b, c = np.log(mag[i - 1 : i + 2] + 1e-30)
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (n * pad)


def cents(f: float, ref: float) -> float:
    return 1200.0 * math.log2(f / ref)


def alias_db(x: torch.Tensor, f0: float, sr: int = SR, guard_bins: int = 6) -> float:
    """Energy in FFT bins that are not within ``guard_bins`` of a harmonic of f0 (or DC),
    relative to the total energy, in dB."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    power = np.abs(np.fft.rfft(x * np.hanning(n))) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    harmonic = np.zeros_like(freqs, dtype=bool)
    for k in range(int(sr / 2 / f0) + 1):
        harmonic |= np.abs(freqs - k * f0) <= guard_bins * sr / n
    return 10.0 * math.log10(power[~harmonic].sum() / power.sum() + 1e-30)


# ------------------------------------------------------------------------------------ pitch


@pytest.mark.parametrize("kind", ["sine", "saw", "square", "triangle"])
@pytest.mark.parametrize("f0", [110.0, 440.0, 1234.5])  # 110 Hz: PolyBLEP path; others: additive
def test_oscillator_sounds_at_f0_within_5_cents(kind, f0):
    x = oscillators.oscillator(kind, f0, 0.5, SR)
    assert x.shape == (1, 8000) and x.dtype == torch.float32
    assert abs(cents(peak_hz(x[0]), f0)) < 5.0


def test_saw_pitch_by_pyin():
    x = oscillators.sawtooth(261.63, 0.5, SR)[0].numpy()
    f, voiced, _ = librosa.pyin(x, fmin=100, fmax=600, sr=SR, frame_length=1024)
    assert voiced.mean() > 0.8
    assert abs(cents(float(np.nanmedian(f[voiced])), 261.63)) < 5.0


def test_f0_trajectory_glide_reaches_both_pitches():
    f = torch.linspace(220.0, 440.0, 16000).reshape(1, -1)
    f = torch.cat([torch.full((1, 4000), 220.0), f, torch.full((1, 4000), 440.0)], dim=1)
    x = oscillators.sawtooth(f, 1.5, SR)[0]
    assert abs(cents(peak_hz(x[:4000]), 220.0)) < 5.0
    assert abs(cents(peak_hz(x[-4000:]), 440.0)) < 5.0


# ------------------------------------------------------------------------------------ aliasing


@pytest.mark.parametrize("kind", ["saw", "square", "triangle"])
def test_band_limited_high_note_aliasing_30_db_below_naive(kind):
    f0 = 3000.0
    naive = oscillators.oscillator(kind, f0, 0.5, SR, band_limited=False)[0]
    clean = oscillators.oscillator(kind, f0, 0.5, SR, band_limited=True)[0]
    assert alias_db(naive, f0) > -20.0  # the naive wave really aliases
    assert alias_db(clean, f0) < alias_db(naive, f0) - 30.0


def test_polyblep_low_note_reduces_aliasing():
    f0 = 110.0  # > 64 harmonics below Nyquist: PolyBLEP path
    naive = oscillators.sawtooth(f0, 0.5, SR, band_limited=False)[0]
    clean = oscillators.sawtooth(f0, 0.5, SR, band_limited=True)[0]
    assert alias_db(clean, f0) < alias_db(naive, f0) - 12.0


def test_square_duty_sets_mean_and_band_limited_keeps_it():
    for duty in (0.25, 0.5):
        for f0 in (110.0, 1000.0):
            x = oscillators.square(f0, 0.5, SR, duty=duty)[0]
            n = int(round(SR / f0 * math.floor(0.5 * f0)))  # whole periods
            assert abs(float(x[:n].mean()) - (2 * duty - 1)) < 0.02


# ------------------------------------------------------------------------------------ batching


@pytest.mark.parametrize("kind", ["sine", "saw", "square", "triangle"])
def test_batched_equals_per_voice(kind):
    f0 = torch.tensor([110.0, 440.0, 3000.0])
    phase = torch.tensor([0.0, 1.0, 2.0])
    batch = oscillators.oscillator(kind, f0, 0.25, SR, phase=phase)
    for i in range(3):
        one = oscillators.oscillator(kind, float(f0[i]), 0.25, SR, phase=float(phase[i]))
        torch.testing.assert_close(batch[i : i + 1], one, atol=1e-5, rtol=0)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="f0"):
        oscillators.sine(-1.0, 0.1, SR)
    with pytest.raises(ValueError, match="duty"):
        oscillators.square(100.0, 0.1, SR, duty=1.5)
    with pytest.raises(ValueError, match="unknown oscillator"):
        oscillators.oscillator("organ", 100.0, 0.1, SR)
    with pytest.raises(ValueError, match="color"):
        oscillators.noise(0.1, SR, color="blue")
    with pytest.raises(ValueError, match="sustain"):
        envelopes.adsr(0.1, 0.1, 1.5, 0.1, 0.2, 0.5, SR)


# ------------------------------------------------------------------------------------ noise


def octave_slope_db(x: torch.Tensor, sr: int = SR) -> float:
    f, p = scipy.signal.welch(x.numpy(), fs=sr, nperseg=2048)
    p = p.mean(axis=0)
    sel = (f >= 100) & (f <= 4000)
    slope, _ = np.polyfit(np.log2(f[sel]), 10 * np.log10(p[sel]), 1)
    return float(slope)


@pytest.mark.parametrize("color,slope", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_noise_colour_spectral_slope(color, slope):
    x = oscillators.noise(1.0, SR, color=color, batch=4, seed=3)
    assert x.shape == (4, SR) and x.abs().max() <= 1.0
    assert abs(octave_slope_db(x) - slope) < 1.0


def test_noise_seed_reproducible():
    a = oscillators.noise(0.1, SR, color="pink", batch=2, seed=5)
    b = oscillators.noise(0.1, SR, color="pink", batch=2, seed=5)
    c = oscillators.noise(0.1, SR, color="pink", batch=2, seed=6)
    assert torch.equal(a, b) and not torch.allclose(a, c)


# ------------------------------------------------------------------------------------ envelopes

HOP = 256


def first_time(mask: torch.Tensor) -> float:
    idx = torch.nonzero(mask).flatten()
    return float(idx[0]) / SR


def test_adsr_stage_timings_within_one_hop():
    a, d, s, r, off = 0.05, 0.12, 0.4, 0.25, 0.5
    env = envelopes.adsr(a, d, s, r, off, 1.0, SR)[0]
    assert env.shape == (SR,) and float(env.min()) >= 0.0 and float(env.max()) <= 1.0
    t_peak = first_time(env >= 0.999)
    t_sustain = first_time((env <= s + 1e-3) & (torch.arange(SR) / SR > t_peak))
    t_end = first_time((env <= 1e-3) & (torch.arange(SR) / SR > off))
    tol = HOP / SR
    assert abs(t_peak - a) < tol
    assert abs(t_sustain - (a + d)) < tol
    assert abs(float(env[int(0.4 * SR)]) - s) < 1e-3  # holds the sustain level
    assert abs(t_end - (off + r)) < tol


def test_adsr_per_voice_and_early_release():
    attack = torch.tensor([0.02, 0.2])
    env = envelopes.adsr(attack, 0.05, 0.5, 0.1, 0.1, 0.5, SR)
    assert env.shape == (2, 8000)
    # voice 0 reached its peak; voice 1 was released at 0.1 s, half-way up its 0.2 s attack
    assert abs(first_time(env[0] >= 0.999) - 0.02) < HOP / SR
    assert abs(float(env[1].max()) - 0.5) < 0.01
    assert abs(first_time((env[1] <= 1e-3) & (torch.arange(8000) > 1600)) - 0.2) < HOP / SR


@pytest.mark.parametrize("shape", ["sine", "triangle", "square", "saw"])
def test_lfo_rate_and_range(shape):
    x = envelopes.lfo(4.0, 1.0, SR, shape=shape, depth=0.5, offset=1.0)[0]
    assert abs(float(x.max()) - 1.5) < 0.01 and abs(float(x.min()) - 0.5) < 0.01
    centred = (x - 1.0).numpy()
    rising = np.sum((centred[:-1] < 0) & (centred[1:] >= 0))
    falling = np.sum((centred[:-1] >= 0) & (centred[1:] < 0))
    assert max(rising, falling) in (4, 5) and abs(rising - falling) <= 1  # 4 cycles in 1 s


def test_vibrato_depth_measured_from_instantaneous_frequency():
    traj = envelopes.vibrato(440.0, 5.0, 50.0, 1.0, SR)
    x = oscillators.sine(traj, 1.0, SR)[0].numpy().astype(np.float64)
    analytic = scipy.signal.hilbert(x)
    inst = np.diff(np.unwrap(np.angle(analytic))) * SR / (2 * np.pi)
    inst = inst[800:-800]  # away from the Hilbert edge effects
    dev_cents = 1200 * np.log2(inst / 440.0)
    assert abs(dev_cents.max() - 50.0) < 3.0 and abs(dev_cents.min() + 50.0) < 3.0


def test_tremolo_gain_swings_between_one_minus_depth_and_one():
    ones = torch.ones(2, SR)
    y = envelopes.tremolo(ones, 6.0, torch.tensor([0.3, 0.8]), SR)
    assert abs(float(y[0].min()) - 0.7) < 1e-3 and abs(float(y[1].min()) - 0.2) < 1e-3
    assert abs(float(y.max()) - 1.0) < 1e-3


# ------------------------------------------------------------------------------------ wavetable


def harmonic_amps(x: torch.Tensor, f0: float, n: int, sr: int = SR) -> np.ndarray:
    """Amplitudes of harmonics 1..n (rectangular window over whole periods)."""
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x)) * 2 / len(x)
    return np.array([spec[int(round(k * f0 * len(x) / sr))] for k in range(1, n + 1)])


def test_basic_tables_have_the_textbook_harmonics():
    tabs = wavetable.basic_tables(256)
    assert tabs.shape == (4, 256) and float(tabs.abs().max()) <= 1.0 + 1e-6
    spec = np.abs(np.fft.rfft(tabs.numpy().astype(np.float64), axis=-1))
    sine, tri, saw, sq = spec / spec[:, 1:2]
    assert sine[2:].max() < 1e-6
    assert abs(tri[3] - 1 / 9) < 1e-3 and tri[2] < 1e-6
    assert abs(saw[2] - 1 / 2) < 1e-3 and abs(saw[5] - 1 / 5) < 1e-3
    assert abs(sq[3] - 1 / 3) < 1e-3 and sq[4] < 1e-6


def test_wavetable_from_harmonics_matches_the_fourier_sum():
    amps, phases = torch.tensor([1.0, 0.5, 0.0, 0.25]), torch.tensor([0.3, 1.0, 0.0, -0.5])
    tab = wavetable.wavetable_from_harmonics(amps, 64, phases=phases, normalize=False)
    i = np.arange(64)
    ref = sum(float(amps[k]) * np.sin(2 * np.pi * (k + 1) * i / 64 + float(phases[k])) for k in range(4))
    np.testing.assert_allclose(tab.numpy(), ref, atol=1e-6)
    assert abs(float(wavetable.wavetable_from_harmonics(amps, 64).abs().max()) - 1.0) < 1e-6


def test_wavetable_pitch_and_morph():
    tabs = wavetable.basic_tables(2048)
    f0 = 500.0  # 32 samples per period; 0.5 s = 250 whole periods
    for pos in (0.0, 1 / 3, 1.0):
        x = wavetable.wavetable_osc(tabs, f0, 0.5, SR, position=pos)[0]
        assert abs(cents(peak_hz(x), f0)) < 5.0
    sine = harmonic_amps(wavetable.wavetable_osc(tabs, f0, 0.5, SR, position=0.0)[0], f0, 3)
    tri = harmonic_amps(wavetable.wavetable_osc(tabs, f0, 0.5, SR, position=1 / 3)[0], f0, 3)
    half = harmonic_amps(wavetable.wavetable_osc(tabs, f0, 0.5, SR, position=1 / 6)[0], f0, 3)
    assert sine[1:].max() < 1e-3 * sine[0]
    assert abs(tri[2] / tri[0] - 1 / 9) < 0.01
    # half-way between sine and triangle: the 3rd harmonic is half the triangle's
    assert abs(half[2] - 0.5 * tri[2]) < 0.01 * tri[0]


def test_wavetable_band_limited_high_note_aliasing():
    tabs = wavetable.basic_tables(2048)
    naive = wavetable.wavetable_osc(tabs, 3000.0, 0.5, SR, position=2 / 3, band_limited=False)[0]
    clean = wavetable.wavetable_osc(tabs, 3000.0, 0.5, SR, position=2 / 3)[0]
    assert alias_db(clean, 3000.0) < alias_db(naive, 3000.0) - 30.0


def test_wavetable_batched_equals_per_voice_and_position_control():
    tabs = wavetable.basic_tables(512)
    f0 = torch.tensor([220.0, 1000.0])
    pos = torch.stack([torch.linspace(0, 1, 4000), torch.full((4000,), 0.5)])
    both = wavetable.wavetable_osc(tabs, f0, 0.25, SR, position=pos)
    for i in range(2):
        one = wavetable.wavetable_osc(tabs, float(f0[i]), 0.25, SR, position=pos[i : i + 1])
        torch.testing.assert_close(both[i : i + 1], one, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------ device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_agrees_with_cpu():
    f0 = torch.tensor([110.0, 440.0, 3000.0])
    for kind in ("sine", "saw", "square", "triangle"):
        cpu = oscillators.oscillator(kind, f0, 0.25, SR)
        gpu = oscillators.oscillator(kind, f0.cuda(), 0.25, SR)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=0)
    env = envelopes.adsr(0.01, 0.1, 0.5, 0.1, 0.2, 0.4, SR, device="cuda")
    torch.testing.assert_close(env.cpu(), envelopes.adsr(0.01, 0.1, 0.5, 0.1, 0.2, 0.4, SR), atol=1e-5, rtol=0)
    tabs = wavetable.basic_tables(512)
    wt = wavetable.wavetable_osc(tabs.cuda(), f0.cuda(), 0.25, SR, position=0.5)
    torch.testing.assert_close(wt.cpu(), wavetable.wavetable_osc(tabs, f0, 0.25, SR, position=0.5), atol=1e-3, rtol=0)
