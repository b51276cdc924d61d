"""DDSP (Lesson 07): the differentiable synthesiser, its features and loss, training, timbre transfer, baselines."""

from __future__ import annotations

import json
import math

import librosa
import numpy as np
import pytest
import torch

from course_lib.models import ddsp as dd
from course_lib.models.ddsp_features import a_weighting_db, extract_features, loudness_db, pitch_pyin
from course_lib.spectral import multiscale_spectral_distance, stft
from course_lib.synth.additive import additive, harmonic_synth
from course_lib.synth.filters import filtered_noise, fir_from_magnitudes

SR = 16_000


def _numpy_harmonics(f0: np.ndarray, amps: np.ndarray, sr: int) -> np.ndarray:
    """Direct float64 sum of sinusoids: phase[n] = sum_{m<n} f0[m] / sr; harmonic k silent where k f0 >= sr / 2."""
    phase = np.concatenate([[0.0], np.cumsum(f0[:-1] / sr)])
    out = np.zeros_like(f0)
    for k in range(1, amps.shape[0] + 1):
        out += np.where(k * f0 < sr / 2, amps[k - 1], 0.0) * np.sin(2 * np.pi * k * phase)
    return out


# ------------------------------------------------------------------------------------------------
# the synthesiser
# ------------------------------------------------------------------------------------------------
def test_harmonic_synth_matches_a_direct_numpy_sum_of_sinusoids():
    rng = np.random.default_rng(0)
    n, k = 4000, 12
    f0 = 200.0 * 2 ** (np.linspace(0, 1.5, n) + 0.05 * np.sin(np.linspace(0, 20, n)))  # glide + vibrato
    amps = np.abs(rng.normal(size=(k, 1))) * (0.5 + 0.5 * np.cos(np.linspace(0, 3, n)))[None]
    ref = _numpy_harmonics(f0, amps, SR)
    y = harmonic_synth(torch.tensor(f0, dtype=torch.float32)[None], torch.tensor(amps, dtype=torch.float32)[None], SR)
    assert y.shape == (1, n)
    assert np.abs(y[0].numpy() - ref).max() < 2e-4 * np.abs(amps).sum(0).max()


def test_harmonic_synth_with_constant_amplitudes_equals_lesson01_additive():
    amps = torch.tensor([1.0, 0.5, 0.25, 0.125])
    a = additive(220.0, 0.25, SR, amplitudes=amps)
    b = harmonic_synth(torch.full((1, a.shape[-1]), 220.0), amps.reshape(1, -1, 1).expand(1, 4, a.shape[-1]), SR)
    assert torch.allclose(a, b, atol=1e-5)


def test_harmonics_at_or_above_nyquist_are_silent():
    n = 8000
    amps = torch.ones(1, 10, n)
    y = harmonic_synth(torch.full((1, n), 3000.0), amps, SR)  # only 3 and 6 kHz fit below 8 kHz
    spec = np.abs(np.fft.rfft(y[0].numpy() * np.hanning(n)))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    on = (np.abs(freqs - 3000) < 20) | (np.abs(freqs - 6000) < 20)
    assert 10 * np.log10((spec[~on] ** 2).sum() / (spec[on] ** 2).sum()) < -80
    # a glide: harmonic 3 must stop where 3 f0 reaches Nyquist, sample by sample
    f0 = torch.linspace(2000.0, 3000.0, n)[None]
    g = harmonic_synth(f0, torch.ones(1, 3, n), SR)
    ref = _numpy_harmonics(f0[0].double().numpy(), np.ones((3, n)), SR)
    assert np.abs(g[0].numpy() - ref).max() < 1e-3
    cross = int((f0[0] * 3 >= SR / 2).nonzero()[0])
    two_only = _numpy_harmonics(f0[0].double().numpy(), np.ones((2, n)), SR)
    assert np.abs(g[0, cross:].numpy() - two_only[cross:]).max() < 1e-3


def test_ddsp_controls_drop_harmonics_above_nyquist_and_normalise_the_distribution():
    torch.manual_seed(0)
    model = dd.DDSP(dd.DDSPConfig(hidden=16, n_harmonics=20))
    f0 = torch.tensor([[100.0, 1000.0, 3000.0]])
    c = model.controls(f0, torch.full_like(f0, -30.0))
    dist = c["harmonic_distribution"][0].detach()
    k = torch.arange(1, 21)
    for t, f in enumerate(f0[0]):
        assert torch.all(dist[t][k * f >= SR / 2] == 0)
        assert math.isclose(float(dist[t].sum()), 1.0, rel_tol=1e-5)
    assert (c["amplitude"] > 0).all() and (c["noise_magnitudes"] > 0).all()


def test_upsample_frames_interpolates_linearly_between_frame_centres():
    frames = torch.randn(2, 3, 6)
    up = dd.upsample_frames(frames, 8, 50)
    assert up.shape == (2, 3, 50)
    assert torch.allclose(up[..., ::8][..., :6], frames, atol=1e-6)
    assert torch.allclose(up[..., 4], 0.5 * (frames[..., 0] + frames[..., 1]), atol=1e-6)
    assert torch.allclose(up[..., 40:], frames[..., -1:].expand(2, 3, 10))  # held after the last centre


def test_gradients_reach_every_control_and_f0():
    torch.manual_seed(0)
    model = dd.DDSP(dd.DDSPConfig(hidden=16, n_harmonics=8, n_noise_bands=9))
    frames, samples = 11, 10 * 64
    f0 = torch.full((2, frames), 220.0, requires_grad=True)
    controls = {k: v.detach().requires_grad_() for k, v in
                model.controls(f0.detach(), torch.full((2, frames), -20.0)).items()}
    out = model.synthesize(f0, controls, samples, seed=0)["audio"]
    target = 0.3 * torch.sin(torch.arange(samples) / 5.0).expand(2, -1)
    multiscale_spectral_distance(target, out, fft_sizes=(256, 64)).sum().backward()
    for name, t in [("f0", f0), *controls.items()]:
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0, name


def test_gradients_reach_every_parameter_including_the_reverb():
    torch.manual_seed(0)
    model = dd.DDSP(dd.DDSPConfig(hidden=16, n_harmonics=8, n_noise_bands=9, reverb_seconds=0.05))
    frames = 41
    f0 = torch.linspace(150, 300, frames).reshape(1, -1).expand(2, -1)
    ld = torch.linspace(-40, -10, frames).reshape(1, -1).expand(2, -1)
    audio = 0.3 * torch.randn(2, 40 * 64, generator=torch.Generator().manual_seed(1))
    model.loss(audio, f0, ld, seed=0).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------------------------------------
# filtered noise, loss, features
# ------------------------------------------------------------------------------------------------
def test_flat_magnitudes_leave_the_noise_unchanged():
    white = torch.rand(2, 20 * 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = filtered_noise(torch.ones(2, 20, 33), 64, SR, white=white)
    assert torch.allclose(y, white, atol=1e-5)


def test_fir_from_magnitudes_has_the_requested_response():
    bands = 65
    mags = torch.linspace(1.0, 0.1, bands) ** 2  # smooth: frequency sampling reproduces it closely
    ir = fir_from_magnitudes(mags)
    assert ir.shape == (2 * (bands - 1),)
    assert torch.allclose(ir[1:], ir[1:].flip(0), atol=1e-7)  # symmetric about its centre: linear phase
    response = torch.fft.rfft(ir).abs()
    assert torch.allclose(response, mags, atol=0.02)


def test_filtered_noise_follows_a_lowpass_shape_and_is_seeded():
    mags = torch.zeros(1, 100, 65)
    mags[..., :17] = 1.0  # pass 0 .. 2 kHz
    a = filtered_noise(mags, 64, SR, seed=3)
    assert torch.equal(a, filtered_noise(mags, 64, SR, seed=3))
    assert not torch.equal(a, filtered_noise(mags, 64, SR, seed=4))
    spec = (stft(a, 512, 128).abs() ** 2).mean(dim=(0, 2))
    freqs = torch.fft.rfftfreq(512, 1 / SR)
    ratio = spec[freqs > 3000].mean() / spec[freqs < 1500].mean()
    assert 10 * math.log10(float(ratio)) < -30


def test_multiscale_spectral_distance_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3000, generator=g), torch.randn(2, 3000, generator=g)
    assert torch.allclose(multiscale_spectral_distance(x, x), torch.zeros(2))
    sx = torch.stft(x, 256, 64, window=torch.hann_window(256), center=True, pad_mode="reflect",
                    return_complex=True).abs()
    sy = torch.stft(y, 256, 64, window=torch.hann_window(256), center=True, pad_mode="reflect",
                    return_complex=True).abs()
    expected = (sx - sy).abs().mean(dim=(1, 2)) + 0.5 * (torch.log(sx + 1e-7) - torch.log(sy + 1e-7)).abs().mean(dim=(1, 2))
    got = multiscale_spectral_distance(x, y, fft_sizes=(256,), log_weight=0.5)
    assert torch.allclose(got, expected, rtol=1e-5)
    assert torch.allclose(multiscale_spectral_distance(x, y), multiscale_spectral_distance(y, x))


def test_a_weighting_matches_librosa():
    f = np.array([31.5, 100.0, 500.0, 1000.0, 4000.0, 8000.0])
    assert np.allclose(a_weighting_db(f).numpy(), librosa.A_weighting(f), atol=0.01)


def test_loudness_of_sines():
    from course_lib.synth import sine

    x = torch.cat([sine(1000.0, 0.5, SR, amplitude=0.5), sine(100.0, 0.5, SR, amplitude=0.5)])
    ld = loudness_db(x, SR, hop=64)[:, 20:-20]
    half = 20 * math.log10(0.5 / math.sqrt(2))  # mean square of a sine of amplitude 0.5, in dB
    assert torch.allclose(ld[0], torch.full_like(ld[0], half), atol=0.05)
    assert torch.allclose(ld[1], torch.full_like(ld[1], half + float(a_weighting_db(np.array([100.0]))[0])), atol=0.1)
    assert float(loudness_db(torch.zeros(1, 4000)).max()) == pytest.approx(-100.0)


def test_pitch_pyin_on_a_sine_and_on_silence():
    from course_lib.synth import sine

    x = torch.cat([sine(330.0, 0.6, SR, amplitude=0.5), torch.zeros(1, int(0.6 * SR))])
    f0, voiced = pitch_pyin(x, SR, hop=64)
    assert f0.shape == voiced.shape == (2, int(0.6 * SR) // 64 + 1)
    cents = 1200 * torch.log2(f0[0, voiced[0]] / 330.0)
    assert voiced[0].float().mean() > 0.8 and float(cents.abs().median()) < 5
    assert not voiced[1].any() and torch.isnan(f0[1]).all()


# ------------------------------------------------------------------------------------------------
# training, checkpoints, timbre transfer
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    from course_lib.train.ddsp import note_features, train_ddsp, training_notes

    data = training_notes("fast")
    feats = note_features(data, 64, cache=False)
    ckpt = tmp_path_factory.mktemp("ddsp") / "fast.pt"
    model, hist = train_ddsp("fast", data=data, features=feats, seed=0, checkpoint=ckpt, progress=False)
    return model, hist, ckpt, data, feats


def test_fast_preset_fit_lowers_the_loss(fast_run):
    _, hist, _, data, _ = fast_run
    assert hist.step == 40 and data.audio.shape[0] == 8
    first, last = np.mean(hist.loss[:8]), np.mean(hist.loss[-8:])
    assert last < 0.8 * first, (first, last)


def test_checkpoint_round_trip_gives_the_same_audio(fast_run):
    model, _, ckpt, data, feats = fast_run
    loaded = dd.load_ddsp(ckpt)
    assert loaded.meta["config"]["data"]["hash"] == data.content_hash()
    a = model.reconstruct(data.audio[:2], feats[:2], seed=1)
    b = loaded.reconstruct(data.audio[:2], feats[:2], seed=1)
    assert torch.allclose(a, b, atol=1e-6)


def test_training_features_are_cached_by_the_notes_hash(tmp_path, monkeypatch):
    from course_lib.train.ddsp import instrument_notes, note_features

    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    data = instrument_notes([60], [100], seconds=0.3)
    first = note_features(data, 64)
    assert len(list(tmp_path.glob("ddsp-features-*.pt"))) == 1
    again = note_features(data, 64)
    assert torch.equal(first.f0_hz, again.f0_hz) and torch.equal(first.loudness_db, again.loudness_db)
    assert abs(float(1200 * torch.log2(first.f0_hz[0, 10:-10].median() / 261.63))) < 10


def test_fit_callback_can_stop_training(fast_run):
    from course_lib.train.loop import fit

    model = dd.DDSP(dd.DDSPConfig(hidden=8, n_harmonics=4, n_noise_bands=5))
    seen = []
    hist = fit(model, torch.optim.SGD(model.parameters(), lr=0.0), lambda s, g: None,
               lambda m, b: sum(p.sum() for p in m.parameters()) * 0.0 + 1.0, 10, progress=False,
               callback=lambda h: seen.append(h.step) or h.step >= 3)
    assert hist.step == 3 and seen == [1, 2, 3]


def test_shipped_checkpoint_is_small_and_has_a_card():
    path = dd.pretrained_path()
    if not path.is_file():
        pytest.skip("shipped DDSP checkpoint not installed")
    assert path.stat().st_size <= 5 * 1024 * 1024
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["rebuild"].startswith("python -m course_lib.train.ddsp")
    assert card["data"]["hash"] and card["steps"] > 0 and card["train_wall_seconds"] > 0
    assert path.with_suffix(".md").is_file()


def test_resynthesize_keeps_the_pitch_of_a_held_out_glide():
    from course_lib.metrics.ddsp_card import glide_check

    model = dd.load_ddsp()  # the shipped organ
    check = glide_check(model, sr=22_050, seconds=1.5)
    assert check["frames_voiced_in_both"] > 0.8
    assert check["median_abs_cents"] <= 25.0


def test_resynthesize_keeps_rate_and_length_and_rejects_bad_input(fast_run):
    from course_lib.synth import sine

    model = fast_run[0]
    x = sine(440.0, 0.4, 44_100, amplitude=0.5)
    y = dd.resynthesize(x, 44_100, model)
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all() and y.abs().max() > 0
    with pytest.raises(ValueError, match="silent"):
        dd.resynthesize(torch.zeros(1, 8000), 16_000, model)
    with pytest.raises(ValueError, match="stereo"):
        dd.resynthesize(torch.randn(8000, 2), 16_000, model)
    with pytest.raises(ValueError, match="multichannel"):
        dd.resynthesize(torch.randn(1, 2, 8000), 16_000, model)
    for bad in (4_000, 44_100.5, 400_000):
        with pytest.raises(ValueError, match="sample rate"):
            dd.resynthesize(x, bad, model)
    with pytest.raises(ValueError, match="unsqueeze"):
        dd.resynthesize(x[0], 44_100, model)
    with pytest.raises(ValueError, match="pitched"):
        dd.resynthesize(0.5 * torch.rand(1, 8000, generator=torch.Generator().manual_seed(0)) - 0.25, 16_000, model)
    with pytest.raises(FileNotFoundError):
        dd.resynthesize(x, 44_100, "no/such/ddsp.pt")


def test_extract_features_rejects_short_or_misshaped_audio():
    with pytest.raises(ValueError):
        extract_features(torch.zeros(100))
    with pytest.raises(ValueError):
        extract_features(torch.zeros(1, 100))


# ------------------------------------------------------------------------------------------------
# baselines: the spectral autoencoder and RAVE's PQMF
# ------------------------------------------------------------------------------------------------
def test_spectral_autoencoder_trains_and_reconstructs_at_the_input_length():
    from course_lib.models.spectral_ae import SpectralAEConfig, SpectralAutoencoder, train_spectral_ae
    from course_lib.synth import harmonic_tone

    notes = torch.cat([harmonic_tone(f, 0.5, SR, n_harmonics=8) * 0.5 for f in (220.0, 330.0, 440.0)])
    torch.manual_seed(0)
    model = SpectralAutoencoder(SpectralAEConfig(hidden=32, latent=4))
    model, hist = train_spectral_ae(notes, 30, model=model, batch_size=4, crop_frames=16, lr=3e-3, progress=False)
    assert np.mean(hist.loss[-5:]) < 0.7 * np.mean(hist.loss[:5])
    out = model.reconstruct(notes[:1, :7000], n_iter=4)
    assert out.shape == (1, 7000) and torch.isfinite(out).all()
    _, short = train_spectral_ae(notes, 10_000, model=model, batch_size=2, crop_frames=16, progress=False,
                                 max_seconds=0.0)
    assert short.step == 1  # a time budget of 0 s stops after the first step


@pytest.mark.parametrize("bands", [4, 16])
def test_pqmf_round_trip_is_near_perfect_and_bands_are_band_limited(bands):
    from course_lib.models.pqmf import PQMF, round_trip
    from course_lib.synth import sine

    pqmf = PQMF(bands)
    x = 0.3 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    r = round_trip(pqmf, x)
    assert r["audio"].shape == x.shape and (r["snr_db"] > 55).all()
    k = bands // 2 + 1
    centre = (k + 0.5) * (SR / 2) / bands
    sub = pqmf.analysis(sine(centre, 0.5, SR, amplitude=0.5))
    energy = sub.pow(2).sum(dim=-1)[0]
    assert sub.shape == (1, bands, 8000 // bands)
    assert float(energy[k] / energy.sum()) > 0.99


def test_rave_lite_shapes_kl_and_a_few_steps_lower_the_loss():
    from course_lib.models.rave_lite import RaveLite, RaveLiteConfig, train_rave_lite
    from course_lib.synth import harmonic_tone

    notes = torch.cat([harmonic_tone(f, 0.6, SR, n_harmonics=6) * 0.5 for f in (220.0, 330.0)])
    torch.manual_seed(0)
    model = RaveLite(RaveLiteConfig(n_bands=4, hidden=16, latent=4))
    mean, logvar = model.encode(notes[:, :4096])
    assert mean.shape == logvar.shape == (2, 4, 4096 // 16)
    _, kl = model(notes[:, :4096])
    assert kl.shape == (2,) and (kl >= 0).all()
    model, hist = train_rave_lite(notes, 25, model=model, batch_size=2, crop=2048, lr=3e-3, progress=False)
    assert np.mean(hist.loss[-5:]) < 0.8 * np.mean(hist.loss[:5])
    out = model.reconstruct(notes[:1, :5000])
    assert out.shape == (1, 5000) and torch.isfinite(out).all()
