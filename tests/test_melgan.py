"""MelGAN vocoder: output length, losses, a FAST fit that lowers the MR-STFT loss, and the Griffin-Lim baseline."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.models import melgan as mg
from course_lib.spectral import MelConfig, log_mel

TINY_MEL = MelConfig(n_mels=16)



def tone(freq: float, samples: int, sr: int = 16000) -> torch.Tensor:
    t = torch.arange(samples) / sr
    return 0.4 * torch.sin(2 * math.pi * freq * t)


@pytest.mark.parametrize("ratios", [(8, 8, 2, 2), (4, 4), (5, 1)])
def test_generator_maps_T_frames_to_T_times_hop_samples(ratios):
    if 5 in ratios:
        with pytest.raises(ValueError):
            mg.MelGANConfig(ratios=ratios)
        return
    cfg = mg.MelGANConfig(n_mels=16, ratios=ratios, channels=16)
    G = mg.MelGANGenerator(cfg)
    for T in (4, 7, 20):
        with torch.no_grad():
            y = G(torch.randn(2, 16, T))
        assert y.shape == (2, T * math.prod(ratios))
        assert float(y.abs().max()) <= 1.0
    with pytest.raises(ValueError):
        G(torch.randn(2, 15, 7))
    with pytest.raises(ValueError):
        G(torch.randn(2, 16, 2))


def test_multiscale_discriminator_and_losses():
    cfg = mg.MelGANConfig(n_mels=16, channels=16, disc_channels=8, disc_max_channels=64, disc_downsamples=3)
    D = mg.MultiScaleDiscriminator(cfg)
    x = tone(440, 2048).repeat(2, 1)
    feats = D(x)
    assert len(feats) == 3 and all(len(f) == 3 + 3 for f in feats)
    # every scale halves the time resolution of its logits
    lens = [f[-1].shape[-1] for f in feats]
    assert lens[0] == 2048 // 4 ** 3 and lens[1] == lens[0] // 2 and lens[2] == lens[1] // 2
    assert float(mg.feature_matching_loss(feats, feats).detach()) == 0.0
    ones = [[torch.ones(2, 1, 4)]]
    assert float(mg.d_hinge_loss(ones, [[-torch.ones(2, 1, 4)]])) == 0.0  # both beyond the margin
    assert float(mg.d_hinge_loss([[torch.zeros(2, 1, 4)]], [[torch.zeros(2, 1, 4)]])) == pytest.approx(2.0)
    assert float(mg.g_hinge_loss(ones)) == pytest.approx(-1.0)


def test_multi_resolution_stft_loss_is_zero_only_for_matching_magnitudes():
    x = tone(440, 4096).unsqueeze(0)
    assert float(mg.multi_resolution_stft_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    # a sign flip keeps every magnitude: still (numerically) zero
    assert float(mg.multi_resolution_stft_loss(-x, x)) == pytest.approx(0.0, abs=1e-5)
    near, far = tone(450, 4096).unsqueeze(0), tone(2000, 4096).unsqueeze(0)
    assert 0 < float(mg.multi_resolution_stft_loss(near, x)) < float(mg.multi_resolution_stft_loss(far, x))
    with pytest.raises(ValueError):
        mg.multi_resolution_stft_loss(x[:, :100], x)


def test_fast_vocoder_fit_reduces_the_mr_stft_loss_on_a_fixed_clip():
    from course_lib.train.gan import build_task, get_config, train_gan

    t = torch.arange(4096) / 16000
    clip = (tone(330, 4096) + 0.5 * tone(660, 4096)) * torch.exp(-((t * 16000) % 1024) / 400)
    cfg = get_config("melgan", "fast", steps=30, batch_size=2, segment=2048, loop_samples=4096,
                     mel=TINY_MEL.to_dict(), adv_start=10**9, arch=dict(channels=16), lr_g=5e-3, progress=False)

    def score(G: torch.nn.Module) -> float:
        with torch.no_grad():
            y = G(log_mel(clip[None], TINY_MEL)[..., :16])
        assert y.shape == (1, 4096)
        return float(mg.multi_resolution_stft_loss(y, clip[None]))

    before = score(build_task(cfg, torch.device("cpu")).G)
    res = train_gan(cfg, data=clip.repeat(2, 1))
    after = score(res.generator.eval())
    assert after < 0.85 * before, (before, after)
    assert res.history[-1]["stft"] < res.history[0]["stft"]


def test_adversarial_melgan_steps_run_and_save(tmp_path):
    from course_lib.train.gan import get_config, train_gan

    cfg = get_config("melgan", "fast", steps=2, batch_size=2, segment=2048, loop_samples=4096,
                     mel=TINY_MEL.to_dict(), adv_start=0, log_every=1, progress=False, out_dir=str(tmp_path),
                     arch=dict(channels=16, disc_channels=4, disc_max_channels=16, disc_downsamples=2))
    res = train_gan(cfg, data=torch.stack([tone(300, 4096), tone(500, 4096)]))
    assert {"d_loss", "g_loss", "fm", "stft"} <= set(res.history[-1])
    assert all(math.isfinite(v) for v in res.history[-1].values())
    G = mg.load_melgan(tmp_path / "generator.pt")
    mel = G.mel
    assert mel == TINY_MEL and G(torch.zeros(1, 16, 5)).shape == (1, 5 * 256)


def test_griffin_lim_baseline_keeps_the_pitch_and_loop_length():
    sr = 16000
    x = tone(880, 32000).unsqueeze(0)
    mel = MelConfig()
    y = mg.griffin_lim_vocoder(log_mel(x, mel)[..., :125], mel, n_iter=16)
    assert y.shape == (1, 32000)
    spec = torch.fft.rfft(y[0] * torch.hann_window(32000))
    peak_hz = float(spec.abs().argmax()) * sr / 32000
    assert abs(peak_hz - 880) < 40  # within about one mel band at 880 Hz
    assert float(y.abs().max()) <= 1.0
