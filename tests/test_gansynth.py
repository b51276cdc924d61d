"""GANSynth (Lesson 04): representations round-trip, progressive networks, conditioning, training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from course_lib.models.gansynth import GANSynth, GANSynthConfig, load_gansynth, resize_real
from course_lib.models.layers import EqualizedConv2d, EqualizedLinear, minibatch_stddev, pixel_norm
from course_lib.models.gansynth_repr import (ImageNormalizer, SpecImageConfig, audio_to_image, config_for_duration,
                                             image_to_audio, paper_config, round_trip_quality)
from course_lib.synth.analysis import peak_frequency
from course_lib.synth.core import midi_to_hz
from course_lib.synth.oscillators import sawtooth, sine
from course_lib.synth.physical import karplus_strong
from course_lib.train.gansynth import GANSynthTrainer, TrainConfig, build, critic_separation, get_preset

SR = 16_000



@pytest.fixture(scope="module")
def notes() -> torch.Tensor:
    """Six 0.25 s notes: two sines, two sawtooths, two plucked strings ``(6, 4000)``."""
    d = 0.25
    return torch.cat([sine(torch.tensor([300.0, 440.0]), d, SR) * 0.5,
                      sawtooth(torch.tensor([220.0, 330.0]), d, SR) * 0.5,
                      karplus_strong(torch.tensor([196.0, 392.0]), d, SR, seed=0)])


# --------------------------------------------------------------------------- representations

def test_paper_geometry():
    assert paper_config("if", high_res=False).image_shape == (2, 512, 256)
    plus_h = paper_config("if", high_res=True)
    assert plus_h.image_shape == (2, 1024, 128) and plus_h.n_fft == 2048 and plus_h.hop == 512
    assert plus_h.samples >= 64_000 and paper_config("if", False).samples >= 64_000
    assert paper_config("if", False).plus_h() == plus_h


def test_image_shape_and_ranges(notes):
    cfg = config_for_duration(0.25, "if", SR, 256)
    img = audio_to_image(notes, cfg)
    assert img.shape == (6, 2, 128, 64)
    assert float(img[:, 1].abs().max()) <= 1.0 + 1e-6  # IF in [-1, 1]
    assert float(img[:, 0].min()) >= math.log(1e-6) - 1e-4  # log(|X| + 1e-6)


@pytest.mark.parametrize("kind", ["if", "phase"])
def test_if_and_phase_round_trip_snr(notes, kind):
    q = round_trip_quality(notes, config_for_duration(0.25, kind, SR, 256))
    assert float(q["snr_db"].min()) > 30.0, q["snr_db"]
    assert float(q["lsd_db"].max()) < 1.0, q["lsd_db"]


def test_plus_h_round_trip(notes):
    clip = notes[:, :3840]  # 0.24 s: 64 frames of hop 64, or 32 frames of hop 128 (+H)
    assert config_for_duration(0.24, "if", SR, 256).image_shape == (2, 128, 64)
    cfg = config_for_duration(0.24, "if", SR, 256, high_res=True)
    assert cfg.image_shape == (2, 256, 32)
    assert float(round_trip_quality(clip, cfg)["snr_db"].min()) > 30.0


def test_mel_if_round_trip_within_stated_tolerance(notes):
    """mel-IF is lossy by design: SNR >= 5 dB, LSD <= 10 dB, the spectral peak kept within 1 %;
    a low sine (mel bands finer than the FFT bins there) comes back almost exactly (> 30 dB)."""
    cfg = config_for_duration(0.25, "mel_if", SR, 256)
    q = round_trip_quality(notes, cfg)
    assert float(q["snr_db"].min()) >= 5.0, q["snr_db"]
    assert float(q["lsd_db"].max()) <= 10.0, q["lsd_db"]
    assert float(q["snr_db"][:2].min()) > 30.0
    y = image_to_audio(audio_to_image(notes, cfg), cfg, notes.shape[-1])
    for i in range(notes.shape[0]):
        f_in, f_out = peak_frequency(notes[i], SR), peak_frequency(y[i], SR)
        assert abs(f_out - f_in) / f_in < 0.01


def test_mel_if_is_worse_than_if_on_rich_notes(notes):
    base = config_for_duration(0.25, "if", SR, 256)
    snr_if = round_trip_quality(notes[2:], base)["snr_db"]
    snr_mel = round_trip_quality(notes[2:], base.with_kind("mel_if"))["snr_db"]
    assert bool((snr_mel < snr_if - 10).all())


def test_normalizer_is_exact_and_in_range(notes):
    cfg = config_for_duration(0.25, "if", SR, 256)
    raw = audio_to_image(notes, cfg)
    norm = ImageNormalizer.fit(raw, cfg)
    n = norm.normalize(raw)
    assert float(n.min()) >= -1.0 - 1e-5 and float(n.max()) <= 1.0 + 1e-5
    assert float(n[:, 0].min()) < -0.99 and float(n[:, 0].max()) > 0.99
    assert torch.allclose(norm.denormalize(n), raw, atol=1e-4)
    assert ImageNormalizer.from_dict(norm.to_dict()) == norm


def test_representation_errors(notes):
    with pytest.raises(ValueError, match="kind"):
        SpecImageConfig(kind="wavelet")
    with pytest.raises(ValueError, match="n_fft"):
        SpecImageConfig(n_fft=1000)
    with pytest.raises(ValueError, match="n_frames"):
        SpecImageConfig(n_frames=100)
    small = SpecImageConfig("if", SR, 256, 16)
    with pytest.raises(ValueError, match="longer"):
        audio_to_image(notes, small)
    with pytest.raises(ValueError, match="image must be"):
        image_to_audio(torch.zeros(1, 2, 10, 16), small)


# --------------------------------------------------------------------------- networks

def _tiny_cfg(**kw) -> GANSynthConfig:
    spec = SpecImageConfig("if", SR, 64, 32)  # 32 x 32 images, 496 samples
    d = dict(spec=spec.to_dict(), n_stages=3, channels=(16, 8, 8), latent_dim=16)
    d.update(kw)
    return GANSynthConfig(**d)


@torch.no_grad()
def test_shapes_at_every_stage_and_during_fade_in():
    cfg = _tiny_cfg()
    model = GANSynth(cfg, seed=0)
    z = torch.randn(4, cfg.latent_dim, generator=torch.Generator().manual_seed(0))
    pitch = torch.tensor([0, 10, 20, 60])
    expected = [(8, 8), (16, 16), (32, 32)]
    for stage, size in enumerate(expected):
        for alpha in (1.0, 0.5):
            img = model.generator(z, pitch, stage, alpha)
            assert img.shape == (4, 2, *size)
            assert float(img.abs().max()) <= 1.0
            score, logits = model.discriminator(img, stage, alpha)
            assert score.shape == (4,) and logits.shape == (4, 61)
            assert resize_real(torch.rand(4, 2, 32, 32), cfg, stage, alpha).shape == (4, 2, *size)
    with pytest.raises(ValueError, match="stage 1 expects"):
        model.discriminator(torch.zeros(4, 2, 32, 32), 1)


@torch.no_grad()
def test_fade_in_starts_from_the_previous_stage():
    """At alpha = 0 the new stage's output is exactly the previous stage's output upsampled 2x."""
    cfg = _tiny_cfg()
    g = GANSynth(cfg, seed=3).generator
    z = torch.randn(3, cfg.latent_dim, generator=torch.Generator().manual_seed(1))
    pitch = torch.tensor([5, 30, 50])
    low = g(z, pitch, stage=1)
    faded = g(z, pitch, stage=2, alpha=0.0)
    assert torch.allclose(faded, torch.nn.functional.interpolate(low, scale_factor=2), atol=1e-6)
    half = g(z, pitch, stage=2, alpha=0.5)
    assert not torch.allclose(half, faded, atol=1e-3)


@torch.no_grad()
def test_pitch_condition_changes_the_output():
    cfg = _tiny_cfg()
    g = GANSynth(cfg, seed=0).generator
    z = torch.randn(1, cfg.latent_dim, generator=torch.Generator().manual_seed(2)).expand(2, -1)
    out = g(z, torch.tensor([12, 48]))
    diff = (out[0] - out[1]).abs().mean()
    assert float(diff) > 0.05 * float(out.std())
    same = g(z, torch.tensor([12, 12]))
    assert torch.allclose(same[0], same[1], atol=1e-5)


@torch.no_grad()
def test_conditional_critic_scores_the_label_and_the_unconditional_one_ignores_it():
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 2, 16, 16, generator=g) * 2 - 1  # stage 1 of the tiny config
    image = images[:1].expand(2, -1, -1, -1)
    for alpha in (1.0, 0.5):  # both fade-in paths see the pitch channels
        cond = GANSynth(_tiny_cfg(critic_pitch_comb=True), seed=0).discriminator
        score, logits = cond(image, stage=1, alpha=alpha, pitch=torch.tensor([10, 40]))
        assert float((score[0] - score[1]).abs()) > 1e-3 * float(score.abs().max()), alpha
        same, _ = cond(image, stage=1, alpha=alpha, pitch=torch.tensor([10, 10]))
        assert torch.allclose(same[0], same[1], atol=1e-6)
        assert logits.shape == (2, 61)
    plain = GANSynth(_tiny_cfg(), seed=0).discriminator
    a, _ = plain(image, stage=1, pitch=torch.tensor([10, 40]))
    b, _ = plain(image, stage=1)
    assert torch.allclose(a, b) and torch.allclose(a[0], a[1], atol=1e-6)
    with pytest.raises(ValueError, match="conditional"):
        cond(image, stage=1)
    with pytest.raises(ValueError, match="3 pitches for a batch of 2"):
        cond(image, stage=1, pitch=torch.tensor([1, 2, 3]))
    # an option: every preset keeps the paper's unconditional critic (the shipped checkpoints' recipe)
    for name in ("fast", "lecture", "full"):
        cfg = get_preset(name).model_config("if")
        assert (cfg.critic_pitch_comb, cfg.aux_on_fake) == (False, True), name


def test_pitch_path_curve_is_the_windowed_mean_and_logged_in_training():
    from course_lib.train.gansynth import pitch_path_curve

    hist = [{"step": i, "stage": i // 4, "d_pitch_acc": i / 10, "d_pitch_acc_fake": 0.5, "d_aux": 1.0, "g_aux": 2.0}
            for i in range(10)]
    curve = pitch_path_curve(hist, every=4, window=3)
    assert [r["step"] for r in curve] == [4, 8, 10] and [r["stage"] for r in curve] == [0, 1, 2]
    assert curve[0]["d_pitch_acc"] == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert curve[2]["d_pitch_acc"] == pytest.approx((0.7 + 0.8 + 0.9) / 3) and curve[2]["g_aux"] == 2.0
    with pytest.raises(ValueError, match="every and window"):
        pitch_path_curve(hist, every=0)
    # a real training step records the critic's pitch head on the generator's notes
    cfg = _tiny_cfg(critic_pitch_comb=True, aux_on_fake=False)
    images, pitches, norm = _tiny_data(cfg)
    trainer = GANSynthTrainer(GANSynth(cfg, norm, seed=0), images, pitches,
                              TrainConfig(steps_per_stage=(2, 1, 1), batch_size=4))
    stats = trainer.train(progress=False)
    assert all(0.0 <= h["d_pitch_acc_fake"] <= 1.0 for h in stats)
    assert pitch_path_curve(trainer.history, every=2)[-1]["step"] == 4


def test_harmonic_energy_is_high_at_the_notes_pitch_and_low_elsewhere():
    from course_lib.metrics.gansynth_card import harmonic_energy_db

    spec = get_preset("lecture").spec("if", high_res=True)  # 31.25 Hz bins
    tone = sawtooth(torch.tensor([midi_to_hz(57)]), 0.5, SR) * 0.5  # 220 Hz, all harmonics
    at_pitch, off_pitch = harmonic_energy_db(tone.expand(2, -1), [57, 54], spec)  # 54: 185 Hz
    assert at_pitch > 5.0 and off_pitch < -3.0 and at_pitch - off_pitch > 10.0, (at_pitch, off_pitch)
    noise = torch.randn(1, tone.shape[-1], generator=torch.Generator().manual_seed(0)) * 0.1
    assert abs(float(harmonic_energy_db(noise, [57], spec)[0]) - (-2.0)) < 2.5  # ~ share of harmonic bins
    with pytest.raises(ValueError, match="2 pitches for 1 notes"):
        harmonic_energy_db(noise, [57, 60], spec)


def test_harmonic_loss_is_low_at_the_notes_pitch_high_elsewhere_and_its_gradient_points_to_the_harmonics():
    from course_lib.train.gansynth_losses import harmonic_loss

    cfg = get_preset("lecture").model_config("if", high_res=True)  # 256 rows of 31.25 Hz
    spec = cfg.spec_config
    tone = sawtooth(torch.tensor([midi_to_hz(57)]), 0.5, SR) * 0.5  # 220 Hz, all harmonics
    raw = audio_to_image(tone, spec)
    norm = ImageNormalizer.fit(raw, spec)
    image = norm.normalize(raw).expand(2, -1, -1, -1)
    right, wrong = torch.tensor([57 - cfg.pitch_min]), torch.tensor([54 - cfg.pitch_min])  # 54: 185 Hz
    at_pitch, st_at = harmonic_loss(image[:1], right, cfg, norm, target_db=10.0)
    off_pitch, st_off = harmonic_loss(image[:1], wrong, cfg, norm, target_db=10.0)
    assert st_at["g_harm_db"] > 10.0 and st_off["g_harm_db"] < 0.0, (st_at, st_off)  # dB over a pitch-blind spectrum
    assert float(at_pitch) == 0.0 and float(off_pitch) > 1.0  # the hinge: no cost once at the target
    # the same holds on a coarser stage image (rows = pairs of bins, 62.5 Hz)
    coarse = resize_real(image[:1], cfg, cfg.n_stages - 2)
    assert harmonic_loss(coarse, right, cfg, norm)[1]["g_harm_db"] > harmonic_loss(coarse, wrong, cfg, norm)[1]["g_harm_db"] + 10
    # its gradient is finite and non-zero, and a step down it moves power onto the wrong pitch's harmonics
    x = image[:1].clone().requires_grad_(True)
    loss, _ = harmonic_loss(x, wrong, cfg, norm)
    (grad,) = torch.autograd.grad(loss, x)
    assert bool(torch.isfinite(grad).all()) and float(grad[:, 0].abs().sum()) > 0 and float(grad[:, 1].abs().sum()) == 0
    stepped = (x - 0.05 * grad / grad.abs().max()).detach()
    assert harmonic_loss(stepped, wrong, cfg, norm)[1]["g_harm_db"] > st_off["g_harm_db"] + 1.0
    # rows too coarse for a low note's harmonics: left out (MIDI 24, 32.7 Hz, 31.25 Hz rows)
    low, st_low = harmonic_loss(image[:1], torch.tensor([0]), cfg, norm)
    assert float(low) == 0.0 and st_low["g_harm_resolved"] == 0.0 and "g_harm_db" not in st_low
    with pytest.raises(ValueError, match="do not group"):
        harmonic_loss(image[:1], right, _tiny_cfg(), norm)
    with pytest.raises(ValueError, match="mel bands"):
        harmonic_loss(image[:1], right, _tiny_cfg(spec=SpecImageConfig("mel_if", SR, 64, 32).to_dict()), norm)


def test_harmonic_weight_default_leaves_training_unchanged_and_a_weight_trains_toward_the_harmonics():
    cfg = _tiny_cfg(n_stages=1, channels=(16,))  # 32 rows of 250 Hz: MIDI 72 and 79 are resolved
    images, pitches, norm = _tiny_data(cfg)
    runs = {}
    for name, extra in (("default", {}), ("zero", {"harmonic_weight": 0.0}), ("on", {"harmonic_weight": 10.0})):
        model = GANSynth(cfg, norm, seed=0)
        trainer = GANSynthTrainer(model, images, pitches, TrainConfig(steps_per_stage=(6,), batch_size=8, seed=0, **extra))
        runs[name] = (model, trainer.train(progress=False))
    assert TrainConfig().harmonic_weight == 0.0
    assert all("g_harm" not in h for h in runs["default"][1])  # nothing computed when off
    for a, b in zip(runs["default"][0].generator.parameters(), runs["zero"][0].generator.parameters()):
        assert torch.equal(a, b)
    on = runs["on"][1]
    assert all(math.isfinite(h["g_harm"]) and math.isfinite(h["g_loss"]) for h in on)
    assert any(h["g_harm_resolved"] > 0 for h in on)
    assert any(not torch.equal(a, b) for a, b in zip(runs["default"][0].generator.parameters(),
                                                    runs["on"][0].generator.parameters()))


def test_pitch_comb_channels_mark_the_harmonics_of_the_requested_pitch():
    from course_lib.models.gansynth import pitch_comb_channels, row_frequencies

    cfg = get_preset("lecture").model_config("if", high_res=True)  # 256 rows of 31.25 Hz
    assert cfg.pitch_comb and not get_preset("full").model_config("if").pitch_comb  # the paper's preset: off
    centre, width = row_frequencies(cfg.spec_config)
    assert centre[8] == 250.0 and float(width[0]) == 31.25
    c = pitch_comb_channels(cfg, cfg.n_stages - 1, torch.tensor([250.0]), frames=3)
    assert c.shape == (1, 2, 256, 3)
    comb, where = c[0, 0, :, 0], c[0, 1, :, 0]
    assert torch.allclose(comb[[8, 16, 24, 80]], torch.ones(4), atol=1e-5)  # harmonics 1, 2, 3, 10
    assert torch.allclose(comb[[4, 12, 20]], -torch.ones(3), atol=1e-5)     # half-way between them
    assert abs(float(where[8])) < 1e-6 and where[16] > 0 > where[4]
    # a stage too coarse to resolve 40 Hz harmonics gets no comb, only the "where" channel
    coarse = pitch_comb_channels(cfg, 0, torch.tensor([40.0]), frames=1)
    assert coarse.shape == (1, 2, 16, 1) and not coarse[0, 0].any() and coarse[0, 1].abs().max() > 0.5
    mel = pitch_comb_channels(cfg.__class__(**{**cfg.to_dict(), "spec": cfg.spec_config.with_kind("mel_if").to_dict()}),
                              cfg.n_stages - 1, torch.tensor([250.0]), frames=1)
    assert mel.shape == (1, 2, 256, 1) and torch.isfinite(mel).all()


@torch.no_grad()
def test_equalized_layers_have_unit_variance_init():
    gen = torch.Generator().manual_seed(0)
    conv = EqualizedConv2d(64, 64, 3, generator=gen)
    dense = EqualizedLinear(512, 256, generator=gen)
    for layer, fan_in in ((conv, 64 * 9), (dense, 512)):
        assert abs(float(layer.weight.std()) - 1.0) < 0.03
        assert abs(float(layer.weight.mean())) < 0.03
        assert layer.scale == pytest.approx(math.sqrt(2) / math.sqrt(fan_in))
        assert float(layer.bias.abs().max()) == 0.0
    # the runtime scaling keeps activations at gain^2 = 2 times the input variance
    x = torch.randn(16, 64, 16, 16, generator=gen)
    assert float(conv(x).var()) == pytest.approx(2.0, rel=0.15)
    assert float(dense(torch.randn(512, 512, generator=gen)).var()) == pytest.approx(2.0, rel=0.15)


def test_pixel_norm_and_minibatch_stddev():
    x = torch.randn(8, 5, 3, 3, generator=torch.Generator().manual_seed(0)) * 7
    assert torch.allclose(pixel_norm(x).pow(2).mean(dim=1), torch.ones(8, 3, 3), atol=1e-4)
    same = torch.ones(4, 3, 2, 2)
    y = minibatch_stddev(same, group_size=4)
    assert y.shape == (4, 4, 2, 2) and float(y[:, 3].max()) < 1e-3  # identical samples: no spread
    spread = torch.zeros(4, 1, 1, 1)
    spread[:2] = 1.0  # values 1, 1, 0, 0: population std 0.5
    assert torch.allclose(minibatch_stddev(spread, 4)[:, 1], torch.full((4, 1, 1), 0.5), atol=1e-3)


def test_config_errors():
    with pytest.raises(ValueError, match="loss"):
        _tiny_cfg(loss="hinge")
    with pytest.raises(ValueError, match="channel count per stage"):
        _tiny_cfg(channels=(8, 8))
    with pytest.raises(ValueError, match="halved"):
        _tiny_cfg(n_stages=7, channels=(8,) * 7)
    model = GANSynth(_tiny_cfg())
    with pytest.raises(ValueError, match="MIDI pitches"):
        model.generate([23])
    with pytest.raises(ValueError, match="unknown GANSynth preset"):
        get_preset("huge")


# --------------------------------------------------------------------------- training

def _tiny_data(cfg: GANSynthConfig) -> tuple[torch.Tensor, torch.Tensor, ImageNormalizer]:
    spec = cfg.spec_config
    pitches = torch.tensor([48, 55, 60, 67, 72, 79] * 4)
    level = torch.linspace(0.2, 0.8, pitches.shape[0])[:, None]
    audio = sawtooth(midi_to_hz(pitches), spec.samples / SR, SR) * level
    raw = audio_to_image(audio, spec)
    norm = ImageNormalizer.fit(raw, spec)
    return norm.normalize(raw), pitches, norm


def test_fast_training_lowers_discriminator_separation_and_gives_finite_audio():
    cfg = _tiny_cfg(n_stages=1, channels=(16,), aux_weight=1.0)  # the adversarial game, pitch head light
    images, pitches, norm = _tiny_data(cfg)
    model = GANSynth(cfg, norm, seed=0)
    trainer = GANSynthTrainer(model, images, pitches, TrainConfig(steps_per_stage=(30,), batch_size=8, seed=0))
    z = model.sample_latents(12, seed=99)
    trainer.warmup_discriminator(15)
    before = critic_separation(model, images[:12], pitches[:12], z)
    history = trainer.train(progress=False)
    after = critic_separation(model, images[:12], pitches[:12], z)
    assert before > 0.7, before  # the warmed-up critic separates the fixed real batch
    assert after < before - 0.3, (before, after)
    assert len(history) == 30 and all(math.isfinite(h["d_loss"]) and math.isfinite(h["g_loss"]) for h in history)
    audio = model.generate(pitches[:4].tolist())
    assert audio.shape == (4, cfg.spec_config.samples)
    assert bool(torch.isfinite(audio).all()) and float(audio.abs().max()) <= 1.0


def test_progressive_schedule_and_ns_r1_loss():
    cfg = _tiny_cfg(loss="ns-r1")
    images, pitches, norm = _tiny_data(cfg)
    model = GANSynth(cfg, norm, seed=1)
    trainer = GANSynthTrainer(model, images, pitches, TrainConfig(steps_per_stage=(2, 4, 4), batch_size=4))
    assert [trainer.schedule(s) for s in (0, 1, 2, 3, 4, 6, 9)] == \
        [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (2, 0.0), (2, 1.0)]
    hist = trainer.train(progress=False)
    assert [h["stage"] for h in hist] == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert all(math.isfinite(h["d_loss"]) for h in hist)
    assert model.stage == 2 and model.alpha == 1.0


def test_max_seconds_stops_training_early_and_the_early_model_still_plays_full_length_notes():
    cfg = _tiny_cfg()
    images, pitches, norm = _tiny_data(cfg)
    model = GANSynth(cfg, norm, seed=1)
    trainer = GANSynthTrainer(model, images, pitches,
                              TrainConfig(steps_per_stage=(2, 4, 4), batch_size=4, max_seconds=0.0))
    hist = trainer.train(progress=False)
    assert len(hist) == 1 and trainer.step == 1 and model.meta["steps"] == 1  # one step, then the budget is spent
    audio = model.generate(pitches[:2].tolist())  # still at stage 0: upsampled to the full image
    assert audio.shape == (2, cfg.spec_config.samples) and bool(torch.isfinite(audio).all())
    trainer.tc.max_seconds = None
    assert len(trainer.train(progress=False)) == 9 and model.stage == 2  # resumes the rest of the schedule


@pytest.mark.parametrize("loss", ["wgan-gp", "ns-r1"])
def test_critic_pitch_head_learns_from_fakes_only_with_aux_on_fake(loss):
    from course_lib.train.gansynth_losses import discriminator_loss

    stats, losses = {}, {}
    for on in (True, False):
        cfg = _tiny_cfg(loss=loss, aux_on_fake=on)
        model = GANSynth(cfg, seed=0)
        g = torch.Generator().manual_seed(0)
        real = torch.rand(4, 2, 32, 32, generator=g) * 2 - 1
        pitch = torch.tensor([0, 5, 9, 30])
        with torch.no_grad():
            fake = model.generator(torch.randn(4, cfg.latent_dim, generator=g), pitch)
        loss_value, stats[on] = discriminator_loss(model.discriminator, real, fake, pitch, cfg, 2, 1.0,
                                                   torch.Generator().manual_seed(1))
        losses[on] = loss_value.item()
    # same critic, same batch: the only difference is aux_weight x the cross-entropy on the fakes
    assert stats[True]["d_aux_fake"] == pytest.approx(stats[False]["d_aux_fake"])
    assert stats[True]["d_aux_fake"] > 1.0
    assert losses[True] - losses[False] == pytest.approx(10.0 * stats[True]["d_aux_fake"], rel=1e-4)


def test_checkpoint_round_trip_and_generation_helpers(tmp_path):
    cfg = _tiny_cfg()
    images, pitches, norm = _tiny_data(cfg)
    model = GANSynth(cfg, norm, seed=4)
    path = model.save(tmp_path / "g.pt")
    loaded = load_gansynth(path)
    a = model.generate([60, 72], seed=5)
    assert torch.allclose(loaded.generate([60, 72], seed=5), a)
    path_notes = loaded.interpolate(60, n=3, seed=7)
    z = loaded.sample_latents(2, seed=7)
    assert torch.allclose(path_notes[0], loaded.generate([60], z=z[:1])[0], atol=1e-4)
    assert torch.allclose(path_notes[-1], loaded.generate([60], z=z[1:])[0], atol=1e-4)
    sweep = loaded.pitch_sweep([48, 60, 72], seed=1)
    assert sweep.shape == (3, cfg.spec_config.samples)
    with pytest.raises(FileNotFoundError):
        load_gansynth(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_gansynth(bad)


def test_build_fits_the_normaliser_on_the_preset_geometry():
    pitches = torch.tensor([40, 52, 64, 76])
    audio = sawtooth(midi_to_hz(pitches), 0.3, SR) * 0.5  # longer than the preset: cut to 0.25 s
    model, images = build("fast", audio, kind="mel_if")
    assert images.shape == (4, *model.spec.image_shape) == (4, 2, 128, 64)
    assert float(images.abs().max()) <= 1.0 + 1e-5
    assert model.spec.kind == "mel_if" and model.cfg.n_stages == len(model.cfg.channels)


def test_resume_continues_exactly_and_generator_only_files_are_smaller(tmp_path):
    cfg = _tiny_cfg(n_stages=2, channels=(8, 8))
    images, pitches, norm = _tiny_data(cfg)
    tc = TrainConfig(steps_per_stage=(3, 3), batch_size=4, seed=3)
    model = GANSynth(cfg, norm, seed=2)
    trainer = GANSynthTrainer(model, images, pitches, tc)
    trainer.train(3, progress=False)
    path = trainer.save(tmp_path / "run.pt")
    trainer.train(progress=False)
    fresh = GANSynth(cfg, norm, seed=9)
    again = GANSynthTrainer(fresh, images, pitches, tc)
    again.resume(path)
    assert again.step == 3 and len(again.history) == 3
    saved_seconds = load_gansynth(path).meta["train_seconds"]
    assert saved_seconds > 0 and again.model.meta["train_seconds"] == pytest.approx(saved_seconds)
    again.train(progress=False)
    for a, b in zip(model.generator.parameters(), fresh.generator.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    small = model.save(tmp_path / "g_only.pt", include_discriminator=False)
    assert small.stat().st_size < path.stat().st_size
    loaded = load_gansynth(small)
    assert not loaded.has_discriminator
    assert torch.allclose(loaded.generate([60], seed=0), model.generate([60], seed=0), atol=1e-6)


def test_training_notes_keep_the_gansynth_pitch_range_and_splits():
    from course_lib.train.gansynth import training_notes

    audio, pitches, examples = training_notes(0.1, "all", pitch_step=7)
    assert audio.shape == (len(examples), 1600) and pitches.shape == (len(examples),)
    assert int(pitches.min()) >= 24 and int(pitches.max()) <= 84
    assert float(audio.abs().max()) > 0.05  # notes, not silence
    train_audio, _, train_ex = training_notes(0.1, "train", pitch_step=7)
    test_audio, _, test_ex = training_notes(0.1, "test", pitch_step=7)
    assert 0 < len(test_ex) < len(train_ex) < len(examples)
    assert not {e.note_str for e in train_ex} & {e.note_str for e in test_ex}
    with pytest.raises(ValueError, match="split"):
        training_notes(0.1, "holdout")


# --------------------------------------------------------------------------- shipped checkpoints

def test_shipped_checkpoints_match_their_cards_and_if_beats_phase():
    import hashlib
    import json

    from course_lib.models.gansynth import ASSETS
    from course_lib.train.gansynth import training_notes
    from course_lib.metrics.gansynth_card import evaluate_checkpoint, notes_hash

    paths = {kind: Path(ASSETS) / f"gansynth_{kind}.pt" for kind in ("if", "phase")}
    if not all(p.is_file() for p in paths.values()):
        pytest.skip("GANSynth assets not installed")
    audio, pitches, _ = training_notes(0.5, "train")
    measured = {}
    for kind, path in paths.items():
        card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == card["sha256"], f"{path}: card is not for this file"
        # the card's recipe rebuilds the exact training notes (fails when the note generator changed: retrain)
        assert notes_hash(audio, pitches) == card["data"]["sha256_audio_and_pitches"], f"stale asset {path.name}"
        measured[kind] = evaluate_checkpoint(path)  # the lesson's table: 156 generated notes vs 394 real
        for key in ("FD (pitch-classifier features)", "IS", "NDB/K"):
            assert measured[kind][key] == pytest.approx(card["evaluation"][key], rel=0.05, abs=0.02), (kind, key)
        # PA moves in steps of 1/156 = 0.64 points: allow two notes classified differently on another BLAS
        assert measured[kind]["PA (%)"] == pytest.approx(card["evaluation"]["PA (%)"], abs=1.3), kind
        assert measured[kind]["PA (%)"] >= 70.0, kind  # issue 15's goal: the notes play the pitch asked for
    # the lecture's claim where our CPU-sized models reproduce it: IF notes are closer to the real ones
    assert measured["if"]["FD (pitch-classifier features)"] < measured["phase"]["FD (pitch-classifier features)"]
