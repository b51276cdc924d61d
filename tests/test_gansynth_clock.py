"""GANSynth's pitch clock (issue 15): phase / IF taken relative to the requested pitch, and back."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.models.gansynth import GANSynth, GANSynthConfig
from course_lib.models.gansynth_repr import (ImageNormalizer, audio_to_image, config_for_duration,
                                             harmonic_clock_advance, pitch_clock_shift)
from course_lib.synth.core import midi_to_hz
from course_lib.synth.oscillators import sawtooth, sine
from course_lib.train.gansynth import GANSynthTrainer, TrainConfig, critic_separation

SR = 16_000


def _power_weighted_abs(second: torch.Tensor, logmag: torch.Tensor) -> float:
    """Mean |channel 1| weighted by each cell's power: how far the loud cells sit from 0."""
    w = torch.exp(2 * logmag)
    return float((second.abs() * w).sum() / w.sum())


def test_clock_advance_is_the_if_of_a_sine():
    """A 250 Hz sine (bin 8 of a 512-point STFT at 16 kHz): the IF audio_to_image measures in its bin is the
    clock's advance, wrapped, over pi; 250 Hz = 2 * 125 Hz advances by 2 * 2 pi * 250 * 128 / 16000 = 4 pi -> 0."""
    spec = config_for_duration(0.5, "if", SR, 256, high_res=True)
    for f in (250.0, 261.0):
        img = audio_to_image(sine(torch.tensor([f]), 0.5, SR), spec)
        k = round(f * spec.n_fft / SR)
        advance = float(harmonic_clock_advance(spec, torch.tensor([f]))[0, k])
        assert advance == pytest.approx(2 * math.pi * f * spec.hop / SR)
        expected = (math.remainder(advance, 2 * math.pi)) / math.pi
        measured = img[0, 1, k, 8:-8]  # frames away from the zero-padded edges
        assert float((measured - expected).abs().max()) < 0.01, (f, expected, measured[:4])


def test_clock_advance_uses_the_nearest_harmonic():
    spec = config_for_duration(0.5, "if", SR, 256, high_res=True)
    f0 = torch.tensor([100.0, 1000.0])
    adv = harmonic_clock_advance(spec, f0)
    width = SR / spec.n_fft
    assert adv.shape == (2, spec.n_freq) and adv.dtype == torch.float64
    for row in (0, 3, 10, 64, 200):
        h = max(1, round(row * width / 100.0))
        assert float(adv[0, row]) == pytest.approx(2 * math.pi * h * 100.0 * spec.hop / SR)
    assert float(adv[1, 5]) == pytest.approx(2 * math.pi * 1000.0 * spec.hop / SR)  # below f0: the fundamental


@pytest.mark.parametrize("kind", ["if", "phase"])
def test_shift_round_trip_is_exact(kind):
    spec = config_for_duration(0.5, kind, SR, 256, high_res=True)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, *spec.image_shape, generator=g) * 2 - 1
    f0 = midi_to_hz(torch.tensor([24.0, 50.0, 84.0]))
    there = pitch_clock_shift(img, f0, spec)
    back = pitch_clock_shift(there, f0, spec, sign=1.0)
    assert torch.equal(back[:, 0], img[:, 0])
    diff = torch.remainder(back[:, 1] - img[:, 1] + 1, 2) - 1  # equal modulo 2 (a full turn)
    assert float(diff.abs().max()) < 1e-5
    assert float(there[:, 1].min()) >= -1.0 and float(there[:, 1].max()) < 1.0


@pytest.mark.parametrize("midi", [36, 45, 64])
def test_a_harmonic_note_is_nearly_still_on_its_own_clock(midi):
    """A sawtooth's IF on its loud cells is far from 0 (the phase ramps of its harmonics); relative to its
    pitch clock it is near 0, and its relative phase barely moves from frame to frame."""
    f0 = midi_to_hz(torch.tensor([float(midi)]))
    note = sawtooth(f0, 0.5, SR) * 0.5
    spec_if = config_for_duration(0.5, "if", SR, 256, high_res=True)
    img = audio_to_image(note, spec_if)
    rel = pitch_clock_shift(img, f0, spec_if)
    absolute = _power_weighted_abs(img[:, 1, :, 1:], img[:, 0, :, 1:])
    relative = _power_weighted_abs(rel[:, 1, :, 1:], img[:, 0, :, 1:])
    assert absolute > 0.25 and relative < 0.1 and absolute > 5 * relative, (absolute, relative)
    spec_ph = spec_if.with_kind("phase")
    ph = pitch_clock_shift(audio_to_image(note, spec_ph), f0, spec_ph)
    step = torch.remainder(torch.diff(ph[:, 1], dim=-1) + 1, 2) - 1
    assert _power_weighted_abs(step, img[:, 0, :, 1:]) < 0.1
    other = pitch_clock_shift(img, f0 * 2 ** (1 / 12), spec_if)  # a semitone off: no longer still
    assert _power_weighted_abs(other[:, 1, :, 1:], img[:, 0, :, 1:]) > 2 * relative


def test_clock_needs_a_linear_frequency_image():
    mel = config_for_duration(0.5, "mel_if", SR, 256)
    with pytest.raises(ValueError, match="pitch clock"):
        harmonic_clock_advance(mel, torch.tensor([100.0]))
    with pytest.raises(ValueError, match="pitch_clock"):
        GANSynthConfig(spec=mel.to_dict(), n_stages=2, channels=(8, 8), pitch_clock=True)
    spec = config_for_duration(0.5, "if", SR, 256, high_res=True)
    with pytest.raises(ValueError, match="> 0 Hz"):
        harmonic_clock_advance(spec, torch.tensor([0.0]))
    with pytest.raises(ValueError, match="2 pitches for 1 images"):
        pitch_clock_shift(torch.zeros(1, *spec.image_shape), torch.tensor([100.0, 200.0]), spec)


@pytest.fixture(scope="module")
def clock_model():
    spec = config_for_duration(0.25, "if", SR, 256)
    cfg = GANSynthConfig(spec=spec.to_dict(), n_stages=3, channels=(16, 16, 8), latent_dim=8, n_pitches=61,
                         pitch_min=24, pitch_comb=True, pitch_clock=True)
    midi = torch.tensor([40, 52, 64, 76] * 2)
    notes = sawtooth(midi_to_hz(midi.float()), 0.25, SR) * 0.5
    raw = audio_to_image(notes, spec)
    norm = ImageNormalizer.fit(raw, spec)
    return GANSynth(cfg, norm, seed=0), norm.normalize(raw), midi


def test_generated_images_are_put_back_on_the_clock(clock_model):
    """generate_images = the generator's relative image with the clock added back; working_images undoes it."""
    model, _, _ = clock_model
    midi = [30, 60, 84]
    z = model.sample_latents(3, seed=1)
    images = model.generate_images(midi, z=z)
    with torch.no_grad():
        painted = model.generator(z, model.midi_to_class(midi), model.stage, model.alpha)
    assert not torch.allclose(images[:, 1], painted[:, 1], atol=1e-2)
    again = model.working_images(images, midi)
    assert torch.allclose(again[:, 0], painted[:, 0], atol=1e-5)
    diff = torch.remainder(again[:, 1] - painted[:, 1] + 1, 2) - 1
    assert float(diff.abs().max()) < 1e-4
    audio = model.generate(midi, z=z)
    assert audio.shape == (3, model.spec.samples) and bool(torch.isfinite(audio).all())


def test_trainer_shows_the_critic_relative_images(clock_model):
    model, images, midi = clock_model
    trainer = GANSynthTrainer(model, images, midi, TrainConfig(steps_per_stage=(2, 2, 2), batch_size=4, seed=0))
    assert torch.equal(trainer.images, model.working_images(images, midi))
    loud = images[:, 0] > 0
    assert float(trainer.images[:, 1][loud].abs().mean()) < 0.5 * float(images[:, 1][loud].abs().mean())
    trainer.train(progress=False)
    auc = critic_separation(model, images[:4], midi[:4], model.sample_latents(4, seed=2))
    assert 0.0 <= auc <= 1.0


def test_train_takes_model_overrides():
    """The lesson trains the shipped recipe (clock and harmonic loss) through gs_train.train."""
    from course_lib.train.gansynth import train

    midi = torch.tensor([40, 52, 64, 76])
    notes = sawtooth(midi_to_hz(midi.float()), 0.25, SR) * 0.5
    model, history = train("fast", notes, midi, kind="phase", progress=False, model_overrides={"pitch_clock": True},
                           steps_per_stage=(1, 1, 1, 1), batch_size=4, harmonic_weight=10.0)
    assert model.cfg.pitch_clock and model.spec.kind == "phase" and len(history) == 4
    assert all("g_harm" in h for h in history)  # the harmonic loss ran


def test_clock_motion_reads_how_far_a_note_drifts_off_its_clock():
    """clock_motion (no network): a steady sawtooth at its pitch stays on the clock, in both representations;
    a semitone off it drifts; the hinge costs nothing below its target and only moves channel 1."""
    from course_lib.train.gansynth_losses import clock_motion, clock_motion_loss

    midi = torch.tensor([45.0, 64.0])
    notes = sawtooth(midi_to_hz(midi), 0.5, SR) * 0.5
    for kind in ("if", "phase"):
        spec = config_for_duration(0.5, kind, SR, 256, high_res=True)
        raw = audio_to_image(notes, spec)
        norm = ImageNormalizer.fit(raw, spec)
        on = pitch_clock_shift(norm.normalize(raw), midi_to_hz(midi), spec)
        off = pitch_clock_shift(norm.normalize(raw), midi_to_hz(midi + 1), spec)
        steady, drift = clock_motion(on, kind, norm), clock_motion(off, kind, norm)
        assert bool((steady < 0.05).all()) and bool((drift > 3 * steady).all()), (kind, steady, drift)
        cfg = GANSynthConfig(spec=spec.to_dict(), n_stages=2, channels=(8, 8), pitch_clock=True)
        loss, stats = clock_motion_loss(on, cfg, norm, target=0.05)
        assert float(loss) == 0.0 and stats["g_clock_motion"] == pytest.approx(float(steady.mean()), rel=1e-5)
        x = off.clone().requires_grad_(True)
        loss, _ = clock_motion_loss(x, cfg, norm, target=0.05)
        loss.backward()
        assert float(loss.detach()) > 0 and float(x.grad[:, 0].abs().max()) == 0.0 and float(x.grad[:, 1].abs().max()) > 0
    plain = GANSynthConfig(spec=spec.to_dict(), n_stages=2, channels=(8, 8))
    with pytest.raises(ValueError, match="pitch_clock"):
        clock_motion_loss(on, plain, norm)


def test_clock_weight_without_the_clock_is_refused_early(clock_model):
    from course_lib.train.gansynth import main

    _, images, midi = clock_model
    spec = config_for_duration(0.25, "if", SR, 256)
    plain = GANSynth(GANSynthConfig(spec=spec.to_dict(), n_stages=3, channels=(16, 16, 8), latent_dim=8),
                     ImageNormalizer.fit(audio_to_image(torch.zeros(1, 4000), spec), spec))
    with pytest.raises(ValueError, match="pitch_clock"):
        GANSynthTrainer(plain, images, midi, TrainConfig(steps_per_stage=(1, 1, 1), clock_weight=10.0))
    with pytest.raises(SystemExit):
        main(["--preset", "fast", "--clock-weight", "10", "--out", "unused.pt"])
