"""course_lib.spectral: STFT round trip, mel filters vs librosa, IF and its exact inverse, Griffin-Lim."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from course_lib import audio, spectral

SR = 16000


def harmonic_test_tone(f0: float = 220.0, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    x = sum(torch.sin(2 * math.pi * f0 * k * t + k) / k for k in range(1, 12))
    return (0.3 * x).to(torch.float32).unsqueeze(0)


def plucked_test_note() -> torch.Tensor:
    from course_lib.synth.physical import karplus_strong

    return karplus_strong(196.0, 1.0, SR, seed=0)


def test_stft_istft_perfect_reconstruction():
    x = harmonic_test_tone()
    y = spectral.istft(spectral.stft(x), length=x.shape[-1])
    assert float(audio.snr_db(x, y)) > 100.0


@pytest.mark.parametrize("make", [harmonic_test_tone, plucked_test_note], ids=["harmonic", "karplus_strong"])
@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (512, 128)])
def test_logmag_if_round_trip_snr_above_40_db(make, n_fft, hop):
    x = make()
    logmag, inst_freq = spectral.audio_to_logmag_if(x, n_fft, hop)
    assert inst_freq.abs().max() <= 1.0 + 1e-6
    y = spectral.logmag_if_to_audio(logmag, inst_freq, n_fft, hop, length=x.shape[-1])
    assert float(audio.snr_db(x, y).min()) > 40.0


def test_if_of_a_stationary_sine_is_its_wrapped_phase_advance():
    f = 1000.0
    hop, n_fft = 256, 1024
    t = torch.arange(SR, dtype=torch.float64) / SR
    x = torch.sin(2 * math.pi * f * t).to(torch.float32).unsqueeze(0)
    _, inst_freq = spectral.audio_to_logmag_if(x, n_fft, hop)
    k = round(f * n_fft / SR)  # 64: the sine sits on a bin centre
    advance = 2 * math.pi * f * hop / SR
    expected = (math.remainder(advance, 2 * math.pi)) / math.pi
    measured = inst_freq[0, k, 3:-3]
    assert torch.allclose(measured, torch.full_like(measured, expected), atol=1e-3)


def test_unwrap_matches_numpy():
    rng = np.random.default_rng(0)
    phase = np.angle(np.exp(1j * np.cumsum(rng.uniform(-3, 3, size=(4, 200)), axis=1)))
    ours = spectral._unwrap(torch.from_numpy(phase), dim=-1).numpy()
    np.testing.assert_allclose(ours, np.unwrap(phase, axis=-1), atol=1e-9)


@pytest.mark.parametrize("htk", [False, True])
def test_mel_filterbank_matches_librosa(htk):
    cfg = spectral.MelConfig(n_mels=64, fmax=8000.0, htk=htk)
    ours = spectral.mel_filterbank(cfg).numpy()
    ref = librosa.filters.mel(sr=cfg.sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
                              htk=htk, norm="slaney")
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=1e-3)


def test_log_mel_shape_floor_and_peak_band():
    cfg = spectral.MelConfig()
    t = torch.arange(SR, dtype=torch.float32) / SR
    x = torch.stack([torch.sin(2 * math.pi * 440 * t), torch.zeros(SR)])
    lm = spectral.log_mel(x, cfg)
    assert lm.shape == (2, cfg.n_mels, cfg.frames(SR))
    assert torch.allclose(lm[1], torch.full_like(lm[1], math.log(1e-5)))  # silence sits on the floor
    peak_band = int(lm[0].mean(-1).argmax())
    centres = librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)[1:-1]
    assert abs(centres[peak_band] - 440) < 60


def test_griffin_lim_converges():
    x = harmonic_test_tone()
    mag = spectral.stft(x).abs()

    def spectral_convergence(n_iter: int) -> float:
        y = spectral.griffin_lim(mag, n_iter=n_iter, length=x.shape[-1])
        return float((spectral.stft(y).abs() - mag).norm() / mag.norm())

    early, late = spectral_convergence(2), spectral_convergence(48)
    assert late < early and late < 0.1


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="samples"):
        spectral.stft(torch.zeros(2, 2, 100))
    with pytest.raises(ValueError, match="too short"):
        spectral.stft(torch.zeros(1, 100), n_fft=1024)
    with pytest.raises(ValueError, match="Nyquist"):
        spectral.mel_filterbank(spectral.MelConfig(fmax=12000.0))
