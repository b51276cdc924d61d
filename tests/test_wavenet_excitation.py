"""The pitch excitation of Lesson 03's WaveNet (issue 15): a per-sample clock at the note's f0 in every gate,
trained in phase with each note's fundamental."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from course_lib.models.wavenet import (AutoencoderConfig, WaveNet, WaveNetAutoencoder, WaveNetConfig, build_model,
                                       excitation, generate, generate_tokens, phase_of_f0, pitch_phase)
from course_lib.models.wavenet_eval import contour_cents_error
from course_lib.models.wavenet_presets import TrainPreset
from course_lib.train.wavenet import NoteData, note_clocks, random_crops, train_wavenet

SR = 16000
SMALL = dict(residual_channels=8, gate_channels=8, skip_channels=16)


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def test_excitation_is_sines_and_cosines_of_the_harmonics_of_the_phase():
    pitch = torch.tensor([69.0, 60.5, 112.0])  # A4 = 440 Hz, a quarter tone above C4, and E8 (5,274 Hz)
    phase = pitch_phase(pitch, 4000, SR)
    e = excitation(phase, harmonics=3)
    assert phase.shape == (3, 4000) and e.shape == (3, 6, 4000) and e.dtype == torch.float32
    t = np.arange(4000)
    for row, midi in enumerate(pitch.tolist()):
        f0 = _hz(midi)
        for k in (1, 2, 3):
            if k * f0 >= SR / 2:  # harmonics at or above Nyquist are silent (no aliased clock)
                assert torch.all(e[row, k - 1] == 0) and torch.all(e[row, 3 + k - 1] == 0)
                continue
            np.testing.assert_allclose(e[row, k - 1].numpy(), np.sin(2 * np.pi * k * f0 * t / SR), atol=1e-4)
            np.testing.assert_allclose(e[row, 3 + k - 1].numpy(), np.cos(2 * np.pi * k * f0 * t / SR), atol=1e-4)
    # the first harmonic's spectrum peaks at f0 (277.18 Hz for MIDI 61; 0.25 Hz bins)
    spectrum = np.abs(np.fft.rfft(excitation(pitch_phase(torch.tensor([61.0]), 64000, SR), 1)[0, 0].numpy()))
    assert abs(np.argmax(spectrum) * SR / 64000 - 277.18) < 0.25


def test_note_clocks_find_each_notes_frequency_and_phase():
    t = torch.arange(SR) / SR
    f0 = torch.tensor([_hz(50) * 2 ** (7 / 1200), _hz(70) * 2 ** (-23 / 1200)])  # 7 and -23 cents off the MIDI pitch
    phase = torch.tensor([0.4, -2.5])
    audio = torch.stack([0.6 * torch.cos(2 * math.pi * f * t + p) + 0.2 * torch.cos(4 * math.pi * f * t)
                         for f, p in zip(f0, phase)]) * torch.exp(-3 * t)  # decaying, with an octave partial
    data = NoteData(audio, torch.tensor([50, 70]), torch.zeros(2, dtype=torch.long), SR, {"kind": "test"})
    got_f0, got_phase = note_clocks(data)
    np.testing.assert_allclose(1200 * np.log2(got_f0.numpy() / f0.numpy()), 0, atol=0.05)  # cents
    np.testing.assert_allclose(np.angle(np.exp(1j * (got_phase - phase).numpy())), 0, atol=0.02)  # radians
    # every crop's phase track is the phase of its note at the samples it holds: cos(track) is its fundamental
    audio_c, pitch_c, _, track = random_crops(data, 6, 400, torch.Generator().manual_seed(0), lead_in=100,
                                              clocks=(got_f0, got_phase))
    assert track.shape == (6, 400)
    for crop, tr, p in zip(audio_c, track, pitch_c):
        sounding = crop != 0  # a crop starting before the onset: check the sounding part only
        crop, tr = crop[sounding], tr[sounding]
        assert torch.corrcoef(torch.stack([crop, torch.cos(tr)]))[0, 1] > 0.9, f"MIDI {int(p)}"


def test_excitation_config_is_checked_and_stored():
    with pytest.raises(ValueError, match="n_pitches"):
        WaveNetConfig(**SMALL, excitation_harmonics=2)  # no pitch to build it from
    with pytest.raises(ValueError, match="excitation_harmonics"):
        WaveNetConfig(**SMALL, n_pitches=128, excitation_harmonics=-1)
    cfg = WaveNetConfig(**SMALL, n_pitches=128, pitch_sigma=1.0, excitation_harmonics=2)
    model = build_model({"kind": "wavenet", **cfg.to_dict()})
    assert model.config == cfg and model.layers[0].excitation_proj.weight.shape == (16, 4, 1)
    with pytest.raises(ValueError, match="phase must be"):
        model(torch.zeros(2, 10, dtype=torch.long), torch.tensor([60, 61]), phase=torch.zeros(2, 9))
    with pytest.raises(ValueError, match="no pitch excitation"):
        WaveNet(WaveNetConfig(**SMALL, n_pitches=128))(torch.zeros(1, 10, dtype=torch.long), 60,
                                                       phase=torch.zeros(1, 10))
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("excitation_harmonics", "sample_rate")}
    assert build_model({"kind": "wavenet", **old}).layers[0].excitation_proj is None  # older checkpoints: none


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_fast_generation_with_excitation_equals_naive(monkeypatch, temperature):
    torch.manual_seed(3)
    cfg = WaveNetConfig(**SMALL, layers_per_cycle=4, cycles=2, n_pitches=128, pitch_sigma=1.0, excitation_harmonics=3)
    m = WaveNet(cfg).eval()
    with torch.no_grad():  # larger weights than the default init, so the excitation moves the logits
        for p in m.parameters():
            p.mul_(2.0)
    pitch = torch.tensor([57.0, 64.5])
    n = 2 * cfg.receptive_field + 40
    prime = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(2))
    fast = generate_tokens(m, n, pitch=pitch, prime=prime, temperature=temperature, seed=3, method="fast")
    naive = generate_tokens(m, n, pitch=pitch, prime=prime, temperature=temperature, seed=3, method="naive")
    monkeypatch.setenv("COURSE_NO_NUMBA", "1")  # the torch loop (CUDA's path) too
    torch_fast = generate_tokens(m, n, pitch=pitch, prime=prime, temperature=temperature, seed=3, method="fast")
    assert torch.equal(fast, naive) and torch.equal(fast, torch_fast)
    # the default phase track is the pitch's; another track (here shifted by a quarter period) changes the output
    phase = pitch_phase(pitch, n + 5, SR)
    assert torch.equal(generate_tokens(m, n, pitch=pitch, prime=prime, temperature=temperature, seed=3,
                                       phase=phase), fast)
    other = generate_tokens(m, n, pitch=pitch, prime=prime, temperature=temperature, seed=3, phase=phase + math.pi / 2)
    assert not torch.equal(fast, other)


def _harmonic_notes(midis: list[int], seconds: float = 0.3) -> NoteData:
    t = torch.arange(int(seconds * SR)) / SR
    rows = [0.5 * torch.sin(2 * math.pi * _hz(m) * t) + 0.2 * torch.sin(2 * math.pi * 2 * _hz(m) * t) for m in midis]
    return NoteData(torch.stack(rows), torch.tensor(midis), torch.zeros(len(midis), dtype=torch.long), SR,
                    {"kind": "test_harmonic_notes", "midis": midis})


def test_an_excited_wavenet_plays_pitches_it_never_heard():
    """Trained on four notes in phase with their clocks, it plays pitches between and beyond them (pYIN, 50 cents)."""
    torch.manual_seed(0)
    cfg = WaveNetConfig(residual_channels=16, gate_channels=16, skip_channels=32, layers_per_cycle=6, cycles=1,
                        n_pitches=128, pitch_sigma=1.0, excitation_harmonics=2)
    model = WaveNet(cfg)
    hist = train_wavenet(model, _harmonic_notes([55, 60, 64, 67]),
                         TrainPreset(steps=600, batch_size=8, crop=256, lr=1e-2, lr_final=1e-4), seed=0, progress=False)
    assert hist.smoothed(20) < 0.2 * hist.loss[0]
    for midi in (62.0, 58.5, 52.0, 70.0):  # between the training pitches, a quarter tone, below and above them
        y = generate(model, 6000, pitch=midi, temperature=0.7, seed=1)[0].numpy()
        f, voiced, _ = librosa.pyin(y, fmin=100, fmax=1000, sr=SR, frame_length=1024)
        assert voiced.mean() > 0.8, f"MIDI {midi}: {voiced.mean():.2f} of the frames voiced"
        cents = 1200 * math.log2(np.nanmedian(f[voiced]) / _hz(midi))
        assert abs(cents) < 50, f"MIDI {midi}: {cents:.0f} cents off"
    # and a glide it never heard: MIDI 55 -> 67 in half a second, as a phase track
    contour = torch.tensor([_hz(m) for m in np.linspace(55, 67, 8000)])
    y = generate(model, 8000, pitch=61.0, phase=phase_of_f0(contour.view(1, -1), SR), temperature=0.7, seed=1)[0]
    glide = contour_cents_error(y, contour, SR)
    assert glide["voiced_fraction"] > 0.8 and glide["median_abs_cents"] < 25, glide["cents"]


def test_phase_of_a_steady_contour_is_the_pitch_phase_and_a_contour_check_measures_cents():
    steady = phase_of_f0(torch.full((1, 5000), _hz(60.3)), SR)
    wrapped = torch.remainder(steady - pitch_phase(torch.tensor([60.3]), 5000, SR) + math.pi, 2 * math.pi) - math.pi
    assert wrapped.abs().max() < 1e-3
    # a sine 30 cents above a glide's target reads as +30 cents on every voiced frame
    target = torch.tensor([_hz(m) for m in np.linspace(57, 64, 12000)])
    sung = torch.sin(phase_of_f0(target.view(1, -1) * 2 ** (30 / 1200), SR))[0] * 0.5
    check = contour_cents_error(sung, target, SR)
    assert check["voiced_fraction"] > 0.9 and abs(check["median_abs_cents"] - 30) < 6
    with pytest.raises(ValueError, match="samples"):
        contour_cents_error(sung, target[:-1], SR)


def test_an_autoencoder_with_an_excited_decoder_reconstructs_notes_at_pitches_it_never_heard():
    torch.manual_seed(0)
    decoder = WaveNetConfig(residual_channels=16, gate_channels=16, skip_channels=32, layers_per_cycle=6, cycles=1,
                            n_pitches=128, pitch_sigma=1.0, excitation_harmonics=2)
    model = WaveNetAutoencoder(AutoencoderConfig(encoder_channels=8, encoder_layers_per_cycle=4, encoder_cycles=1,
                                                 latent_channels=2, hop=64, decoder=decoder))
    hist = train_wavenet(model, _harmonic_notes([55, 60, 64, 67]),
                         TrainPreset(steps=400, batch_size=8, crop=256, lr=1e-2, lr_final=1e-4), seed=0, progress=False)
    assert hist.smoothed(20) < 0.25 * hist.loss[0]
    notes = _harmonic_notes([62, 52, 70])  # between, below and above the training pitches
    recon = model.reconstruct(notes.audio, pitch=notes.pitch.float(), temperature=0.7, seed=1)
    for midi, y in zip(notes.pitch.tolist(), recon):
        f, voiced, _ = librosa.pyin(y.numpy(), fmin=100, fmax=1000, sr=SR, frame_length=1024)
        assert voiced.mean() > 0.8, f"MIDI {midi}: {voiced.mean():.2f} of the frames voiced"
        cents = 1200 * math.log2(np.nanmedian(f[voiced]) / _hz(midi))
        assert abs(cents) < 50, f"MIDI {midi}: {cents:.0f} cents off"
