"""course_lib.audio: I/O round trips, resampling, normalisation, mu-law, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from course_lib import audio


def tone(freq: float, sr: int, seconds: float = 0.5, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).to(torch.float32)


def peak_hz(x: torch.Tensor, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x.numpy() * np.hanning(len(x)), n=8 * len(x)))
    return float(np.argmax(spec) * sr / (8 * len(x)))


def test_save_load_round_trip_is_16_bit_exact(tmp_path):
    x = tone(440, 16000)
    path = audio.save(tmp_path / "sub" / "a.wav", x, 16000)
    y, sr = audio.load(path)
    assert sr == 16000 and y.shape == x.shape
    assert float(audio.snr_db(x, y)) > 80.0  # 16-bit quantisation of a -6 dBFS tone is ~92 dB


def test_load_resamples_keeping_pitch_and_duration(tmp_path):
    x = tone(1000, 44100, seconds=1.0)
    sf.write(tmp_path / "a.wav", x.numpy(), 44100)
    y, sr = audio.load(tmp_path / "a.wav", sr=16000)
    assert sr == 16000
    assert abs(len(y) - 16000) <= 1
    assert abs(peak_hz(y, sr) - 1000) < 2.0


def test_mono_mixdown_and_keep_channels(tmp_path):
    left, right = tone(440, 16000), tone(660, 16000, amp=0.25)
    sf.write(tmp_path / "st.wav", np.stack([left.numpy(), right.numpy()], axis=1), 16000, subtype="FLOAT")
    mono, _ = audio.load(tmp_path / "st.wav")
    both, _ = audio.load(tmp_path / "st.wav", mono=False)
    assert both.shape == (2, 8000)
    torch.testing.assert_close(mono, (left + right) / 2, atol=1e-6, rtol=0)
    torch.testing.assert_close(both[1], right, atol=1e-6, rtol=0)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"this is not audio at all, just text" * 10, "not a readable audio file"),
])
def test_bad_files_raise_with_path(tmp_path, content, reason):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=reason) as err:
        audio.load(bad)
    assert "bad.wav" in str(err.value)


def test_truncated_wav_with_header_only_is_rejected(tmp_path):
    path = audio.save(tmp_path / "t.wav", tone(440, 16000), 16000)
    path.write_bytes(path.read_bytes()[:44])  # RIFF header, no sample data
    with pytest.raises(ValueError, match="t.wav"):
        audio.load(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        audio.load(tmp_path / "nope.wav")


def test_nan_audio_is_refused_on_save_and_load(tmp_path):
    x = tone(440, 16000)
    x[100] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        audio.save(tmp_path / "n.wav", x, 16000)
    sf.write(tmp_path / "n.wav", x.numpy(), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN"):
        audio.load(tmp_path / "n.wav")


def test_normalisers_hit_their_targets_and_keep_silence():
    batch = torch.stack([tone(440, 16000, amp=0.1), tone(220, 16000, amp=0.9), torch.zeros(8000)])
    peaked = audio.peak_normalize(batch, peak=0.5)
    assert torch.allclose(peaked[:2].abs().amax(-1), torch.tensor([0.5, 0.5]), atol=1e-6)
    assert peaked[2].abs().max() == 0
    levelled = audio.rms_normalize(batch, target_db=-20.0)
    assert torch.allclose(audio.rms_db(levelled[:2]), torch.tensor([-20.0, -20.0]), atol=1e-3)
    assert levelled[2].abs().max() == 0


def test_mu_law_formula_and_classes():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.01, 1.0])
    cont = audio.mu_law_encode(x, quantize=False)
    expected = torch.sign(x) * torch.log1p(255 * x.abs()) / math.log(256)
    torch.testing.assert_close(cont, expected)
    q = audio.mu_law_encode(x)
    assert q.dtype == torch.long and q[0] == 0 and q[-1] == 255 and q[2] == 128
    torch.testing.assert_close(audio.mu_law_decode(cont, quantized=False), x, atol=1e-5, rtol=0)


def test_mu_law_beats_linear_8_bit_on_quiet_audio():
    """The Lesson 03 claim: at 8 bits, mu-law keeps far more SNR than linear on quiet music."""
    x = tone(220, 16000, amp=0.05) + tone(330, 16000, amp=0.02)
    mu = audio.mu_law_decode(audio.mu_law_encode(x))
    linear = torch.round((x + 1) / 2 * 255) / 255 * 2 - 1
    assert float(audio.snr_db(x, mu)) > float(audio.snr_db(x, linear)) + 10.0


def test_play_returns_an_audio_player():
    import io

    player = audio.play(tone(440, 16000), 16000)
    embedded, sr = sf.read(io.BytesIO(player.data))  # the WAV bytes the notebook will embed
    assert sr == 16000 and len(embedded) == 8000
    assert abs(peak_hz(torch.from_numpy(embedded).float(), sr) - 440) < 2.0
