"""course_lib.synth.granular and .sampler: durations, transpositions, determinism, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from course_lib.synth.granular import grain_window, granulate
from course_lib.synth.sampler import Sampler, read_resampled, repitch

SR = 16000


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    return (amp * torch.sin(2 * math.pi * freq * t)).to(torch.float32)


def peak_hz(x: torch.Tensor | np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return float(np.argmax(spec) * SR / (8 * len(x)))


def welch_peak_hz(x: torch.Tensor) -> float:
    f, p = scipy.signal.welch(x.numpy(), fs=SR, nperseg=4096)
    return float(f[np.argmax(p)])


def cents(f: float, ref: float) -> float:
    return 1200 * math.log2(f / ref)


# ---------------------------------------------------------------- granular


def test_granulate_has_requested_duration_and_range():
    src = tone(440.0)
    for dur in (0.3, 1.25):
        y = granulate(src, SR, dur, seed=0)
        assert y.shape == (1, int(round(dur * SR))) and y.dtype == torch.float32
        assert torch.isfinite(y).all() and float(y.abs().max()) <= 0.9 + 1e-6
        # the cloud covers the whole duration: no silent quarter
        for q in y[0].reshape(4, -1)[:, : y.shape[1] // 4]:
            assert float(q.pow(2).mean().sqrt()) > 0.05


def test_grains_up_an_octave_move_the_spectral_peak_an_octave():
    src = tone(440.0)
    base = granulate(src, SR, 1.0, pitch_semitones=0.0, seed=1)[0]
    up = granulate(src, SR, 1.0, pitch_semitones=12.0, seed=1)[0]
    f_base, f_up = welch_peak_hz(base), welch_peak_hz(up)
    assert abs(cents(f_base, 440.0)) < 30  # Welch bins are 3.9 Hz wide
    assert abs(cents(f_up / f_base, 2.0)) < 30


def test_per_voice_pitch_trajectories_in_a_batch():
    src = torch.stack([tone(300.0), tone(300.0)])
    pitch = torch.tensor([[0.0], [7.0]])  # per-voice constant trajectories
    y = granulate(src, SR, 0.8, pitch_semitones=pitch, seed=2)
    assert y.shape == (2, 12800)
    assert abs(cents(welch_peak_hz(y[1]) / welch_peak_hz(y[0]), 2 ** (7 / 12))) < 40


def test_position_trajectory_scans_the_source():
    # source: 200 Hz for its first half, 1000 Hz for its second half; scanning 0 -> 1 plays both in order
    src = torch.cat([tone(200.0, 1.0), tone(1000.0, 1.0)])
    y = granulate(src, SR, 1.0, position=[0.0, 1.0], position_jitter=0.0, seed=3)[0]
    assert abs(peak_hz(y[:4000]) - 200.0) < 20
    assert abs(peak_hz(y[-4000:]) - 1000.0) < 40


def test_granulate_is_seeded():
    src = tone(440.0, 0.5)
    a = granulate(src, SR, 0.3, pitch_jitter=1.0, seed=4)
    b = granulate(src, SR, 0.3, pitch_jitter=1.0, seed=4)
    c = granulate(src, SR, 0.3, pitch_jitter=1.0, seed=5)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_grain_windows_peak_at_one_and_vanish_at_edges():
    for name in ("hann", "triangle", "tukey", "gaussian"):
        w = grain_window(name, 801)
        assert abs(float(w.max()) - 1.0) < 1e-3 and float(w[0]) < 0.05 and float(w[-1]) < 0.05


def test_granulate_bad_input():
    with pytest.raises(ValueError, match="position"):
        granulate(tone(440.0), SR, 0.5, position=1.5)
    with pytest.raises(ValueError, match="window"):
        granulate(tone(440.0), SR, 0.5, window="square")
    with pytest.raises(ValueError, match="density"):
        granulate(tone(440.0), SR, 0.5, density=0.0)
    with pytest.raises(ValueError, match="source"):
        granulate(torch.zeros(2, 3, 4), SR, 0.5)


# ---------------------------------------------------------------- sampler


def test_repitch_up_an_octave_halves_duration_and_doubles_f0():
    x = tone(440.0)
    y = repitch(x, SR, 12.0)
    assert y.shape == (8000,)
    assert abs(cents(peak_hz(y), 880.0)) < 2.0


def test_repitch_down_a_fifth_and_batch():
    x = torch.stack([tone(440.0), tone(300.0)])
    y = repitch(x, SR, -7.0)
    ratio = 2 ** (-7 / 12)
    assert y.shape == (2, round(16000 / ratio))
    assert abs(cents(peak_hz(y[0]), 440 * ratio)) < 2.0
    assert abs(cents(peak_hz(y[1]), 300 * ratio)) < 2.0


def test_repitch_up_does_not_alias():
    # 6.5 kHz up a fifth would be 9.74 kHz > Nyquist: the band-limited reader removes it
    x = tone(6500.0, 0.5) + tone(500.0, 0.5)
    y = repitch(x, SR, 7.0).numpy()
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    wanted = mag[np.abs(freqs - 500 * 2 ** (7 / 12)) < 10].max()
    alias = mag[np.abs(freqs - (SR - 6500 * 2 ** (7 / 12))) < 30].max()  # folded image near 6.3 kHz
    assert 20 * np.log10(alias / wanted) < -40


def test_read_resampled_identity():
    x = tone(1234.0, 0.2)[None]
    y = read_resampled(x, torch.tensor([1.0]), x.shape[1])
    assert torch.allclose(y, x, atol=1e-4)


def test_sampler_plays_notes_at_the_right_pitch_and_length():
    s = Sampler(tone(261.63, 1.5), SR, root_midi=60)
    midis = torch.tensor([55.0, 60.0, 64.0, 72.0])
    y = s.notes(midis, 0.5)
    assert y.shape == (4, 8000)
    for row, m in zip(y, midis.tolist()):
        f = 440.0 * 2 ** ((m - 69) / 12)
        assert abs(cents(peak_hz(row[:6000]), f)) < 3.0
        assert float(row[-1].abs()) < 1e-3  # release fade ends at zero


def test_sampler_velocity_and_note():
    s = Sampler(tone(261.63, 1.0), SR, root_midi=60, release=0.01)
    loud = s.note(67, 0.3, velocity=1.0)
    soft = s.note(67, 0.3, velocity=0.25)
    assert loud.shape == (4800,)
    assert abs(float(soft.pow(2).mean().sqrt() / loud.pow(2).mean().sqrt()) - 0.25) < 1e-3


def test_sampler_from_file(tmp_path):
    path = tmp_path / "c4.wav"
    sf.write(path, tone(261.63, 0.5).numpy(), SR)
    s = Sampler.from_file(path, root_midi=60, sr=SR)
    assert abs(cents(peak_hz(s.note(72, 0.2)), 523.25)) < 3.0
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        Sampler.from_file(tmp_path / "missing.wav", root_midi=60)


def test_sampler_bad_input():
    with pytest.raises(ValueError, match="mono"):
        Sampler(torch.zeros(2, 100), SR, 60)
    with pytest.raises(ValueError, match="velocity"):
        Sampler(tone(200.0, 0.1), SR, 60).note(60, 0.1, velocity=2.0)
