"""StyleGAN2 pieces: demodulation, style mixing, truncation, EMA, R1, shapes, and FAST training to audio."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.models import stylegan2 as sg
from course_lib.models.layers import minibatch_stddev
from course_lib.spectral import MelConfig, log_mel

TINY_MEL = MelConfig(n_mels=16)



def tiny_config(**kw) -> sg.StyleGAN2Config:
    base = dict(image_size=(16, 128), n_up=3, channels=(8, 8, 8, 8), z_dim=16, w_dim=16, mapping_layers=2,
                mbstd_group=2)
    return sg.StyleGAN2Config(**{**base, **kw})


def test_demodulation_keeps_unit_variance_and_fused_matches():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 64, 20, 20, generator=g)
    weight = torch.randn(32, 64, 3, 3, generator=g) * 0.37
    styles = torch.exp(torch.randn(8, 64, generator=g)) * 2.0
    y = sg.modulated_conv2d(x, weight, styles, demodulate=True, padding=0)
    assert y.shape == (8, 32, 18, 18)
    assert 0.9 < float(y.var()) < 1.1
    # per sample and per output channel, not only on average
    per = y.var(dim=(2, 3))
    assert float(per.min()) > 0.6 and float(per.max()) < 1.5
    y_mod = sg.modulated_conv2d(x, weight, styles, demodulate=False, padding=0)
    assert float(y_mod.var()) > 3.0  # without demodulation the styles' scale leaks into the output
    y_fused = sg.modulated_conv2d(x, weight, styles, demodulate=True, padding=0, fused=True)
    torch.testing.assert_close(y, y_fused, rtol=1e-4, atol=1e-4)


def test_style_mixing_uses_both_styles_at_the_switch_point():
    torch.manual_seed(0)
    G = sg.Generator(tiny_config())
    z1, z2 = torch.randn(2, 16), torch.randn(2, 16)
    seen: dict[int, torch.Tensor] = {}
    hooks = [layer.conv.affine.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, inp[0].detach()))
             for i, layer in G.style_layers()]
    switch = 3
    with torch.no_grad():
        mixed = G(z1, mix_z=z2, mix_cutoff=switch, noise_mode="const")
        w1, w2 = G.mapping_net(z1), G.mapping_net(z2)
    for h in hooks:
        h.remove()
    assert sorted(seen) == list(range(G.num_ws))
    for i, w_in in seen.items():
        torch.testing.assert_close(w_in, w1 if i < switch else w2)
    with torch.no_grad():
        pure1 = G(z1, noise_mode="const")
        pure2 = G(z2, noise_mode="const")
    assert float((mixed - pure1).abs().max()) > 1e-4 and float((mixed - pure2).abs().max()) > 1e-4
    with pytest.raises(ValueError):
        sg.mix_styles(w1, w2, G.num_ws + 1, G.num_ws)


def test_truncation_psi_zero_gives_the_mean_output():
    torch.manual_seed(1)
    G = sg.Generator(tiny_config()).eval()
    G.mapping_net.update_w_avg(G.mapping_net(torch.randn(64, 16)), beta=0.0)
    assert float(G.mapping_net.w_avg.abs().sum()) > 0
    with torch.no_grad():
        out = G(torch.randn(4, 16), truncation_psi=0.0, noise_mode="const")
        mean = G.synthesis(G.mapping_net.w_avg.expand(1, G.num_ws, -1), noise_mode="const")
        free = G(torch.randn(4, 16), truncation_psi=1.0, noise_mode="const")
    torch.testing.assert_close(out, mean.expand_as(out), rtol=1e-5, atol=1e-5)
    assert sg.sample_diversity(out) < 1e-5 < sg.sample_diversity(free)


def test_ema_parameters_move_toward_the_generator():
    torch.manual_seed(2)
    G = sg.Generator(tiny_config())
    ema = sg.make_ema(G)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        G.mapping_net.w_avg.fill_(0.5)
    before = [float((pe - p).detach().norm()) for pe, p in zip(ema.parameters(), G.parameters())]
    sg.ema_update(ema, G, beta=0.9)
    after = [float((pe - p).detach().norm()) for pe, p in zip(ema.parameters(), G.parameters())]
    for b, a in zip(before, after):
        assert a == pytest.approx(0.9 * b, rel=1e-4, abs=1e-6)
    assert torch.equal(ema.mapping_net.w_avg, G.mapping_net.w_avg)
    assert sg.ema_beta(8, 8) == pytest.approx(0.5)


def test_r1_penalty_equals_the_squared_gradient_norm():
    a = torch.tensor([[1.0, -2.0], [0.5, 3.0]]).reshape(1, 1, 2, 2)
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    logits = (x * a).flatten(1).sum(1) + (x ** 2).flatten(1).sum(1)
    r1 = sg.r1_penalty(x, logits)
    expected = ((a + 2 * x) ** 2).flatten(1).sum(1).mean()
    assert float(r1.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    with pytest.raises(ValueError):
        sg.r1_penalty(x.detach(), logits)


def test_losses_and_path_length():
    logits = torch.tensor([0.0, 2.0])
    assert float(sg.g_nonsaturating_loss(logits)) == pytest.approx((math.log(2) + math.log1p(math.exp(-2))) / 2)
    assert float(sg.d_logistic_loss(logits, logits)) == pytest.approx(
        (math.log(2) + math.log1p(math.exp(2))) / 2 + (math.log(2) + math.log1p(math.exp(-2))) / 2)
    # images linear in ws: the path length is |A^T y| / sqrt(HW), known in closed form
    ws = torch.randn(2, 3, 4, requires_grad=True)
    A = torch.randn(4, 6)
    images = (ws.mean(1) @ A).reshape(2, 1, 2, 3)
    y = torch.randn(2, 1, 2, 3)
    pen, new_mean = sg.path_length_penalty(images, ws, torch.zeros(()), decay=1.0, noise=y)
    grad_w = (y.reshape(2, 6) / math.sqrt(6)) @ A.T / 3  # d/dws of sum(images * y) per style
    lengths = (grad_w.square().sum(1)).sqrt()
    assert float(new_mean) == pytest.approx(float(lengths.mean()), rel=1e-5)
    assert float(pen) == pytest.approx(float((lengths - lengths.mean()).square().mean()), rel=1e-4, abs=1e-7)


def test_nonsquare_shapes_and_mel_image_round_trip():
    cfg = sg.StyleGAN2Config(image_size=(80, 128), n_up=4, channels=(8, 8, 8, 8, 8), z_dim=8, w_dim=8,
                             mapping_layers=1)
    assert cfg.base_size == (5, 8) and cfg.num_ws == 10
    G, D = sg.Generator(cfg), sg.Discriminator(cfg)
    img = G(torch.randn(2, 8))
    assert img.shape == (2, 1, 80, 128)
    assert D(img).shape == (2,)
    spec = sg.MelImageSpec()
    assert spec.frames == 125 and spec.size == (80, 128)
    x = 0.3 * torch.sin(2 * math.pi * 440 * torch.arange(32000) / 16000).unsqueeze(0)
    m = log_mel(x, spec.mel)
    im = spec.to_image(m)
    assert im.shape == (1, 1, 80, 128) and float(im.min()) >= -1.0 - 1e-6
    torch.testing.assert_close(spec.to_mel(im), m[..., :125])
    torch.testing.assert_close(im[..., 125:], im[..., :3])  # wrapped loop start
    with pytest.raises(ValueError):
        sg.StyleGAN2Config(image_size=(80, 126), n_up=4, channels=(8,) * 5)
    with pytest.raises(ValueError):
        D(torch.zeros(2, 1, 64, 128))
    with pytest.raises(ValueError):
        spec.to_image(m[:, :40])


def test_minibatch_stddev_measures_spread_within_groups():
    x = torch.zeros(4, 2, 3, 3)
    x[2:] = 2.0  # groups are (0, 2) and (1, 3): spread 1 each
    y = minibatch_stddev(x, group_size=2, strict=True)
    assert y.shape == (4, 3, 3, 3)
    torch.testing.assert_close(y[:, 2], torch.ones(4, 3, 3), atol=1e-3, rtol=0)
    assert float(minibatch_stddev(torch.ones(4, 2, 3, 3), 4, strict=True)[:, 2].max()) < 1e-3


def test_fast_training_produces_finite_audio_of_the_exact_loop_length(tmp_path):
    from course_lib.models.melgan import MelGANConfig, MelGANGenerator
    from course_lib.train.gan import get_config, train_gan

    g = torch.Generator().manual_seed(0)
    t = torch.arange(32000) / 16000
    data = torch.stack([0.3 * torch.sin(2 * math.pi * f * t) * (torch.rand(1, generator=g) + 0.5)
                        for f in (220.0, 330.0, 440.0, 550.0)])
    cfg = get_config("stylegan2", "fast", steps=3, batch_size=2, mel=TINY_MEL.to_dict(), progress=False,
                     arch=dict(n_up=3, channels=(8, 8, 8, 8), z_dim=16, w_dim=16, mbstd_group=2),
                     out_dir=str(tmp_path / "run"), log_every=1)
    res = train_gan(cfg, data=data)
    assert res.steps_done == 3 and len(res.history) == 3
    assert all(math.isfinite(v) for row in res.history for v in row.values())
    G = sg.load_stylegan2(tmp_path / "run" / "generator.pt")
    spec = G.spec
    torch.manual_seed(0)
    vocoder = MelGANGenerator(MelGANConfig(n_mels=16, channels=16)).eval()
    audio = sg.generate_audio(G, spec, 3, vocoder=vocoder, seed=5)
    assert audio.shape == (3, 32000) and torch.isfinite(audio).all() and float(audio.abs().max()) <= 1.0
    gl = sg.generate_audio(G, spec, 1, vocoder=None, seed=5)
    assert gl.shape == (1, 32000) and torch.isfinite(gl).all()
    paths = sg.export_loops(tmp_path / "wav", audio, 16000)
    import soundfile as sf

    assert [sf.info(str(p)).frames for p in paths] == [32000] * 3
    assert [p.name for p in paths] == ["loop_000.wav", "loop_001.wav", "loop_002.wav"]  # HW2's naming
    with pytest.raises(FileNotFoundError, match="missing.pt.*python -m course_lib.train stylegan2"):
        sg.load_stylegan2(tmp_path / "missing.pt")


def test_loop_augmentations_shift_by_whole_16ths_and_cut_out_to_silence():
    spec = sg.MelImageSpec()
    frames = spec.frames  # 125 frames = 16 sixteenth notes of 7.8125 frames
    img = torch.linspace(-1, 1, frames).repeat(2, 1, 80, 1)
    img = spec.to_image(spec.to_mel(torch.cat([img, img[..., :3]], -1)))  # a periodic loop image
    g = torch.Generator().manual_seed(0)
    out = sg.augment_loop_images(img, ("shift",), frames, g)
    for b in range(2):
        # each output row is the loop rolled by round(k * 125 / 16) frames for some k, wrapped columns rebuilt
        shifts = [round(k * frames / 16) for k in range(16)]
        assert any(torch.equal(out[b, ..., :frames], img[b, ..., :frames].roll(s, -1)) for s in shifts)
        assert torch.equal(out[b, ..., frames:], out[b, ..., : img.shape[-1] - frames])
    cut = sg.augment_loop_images(torch.zeros(3, 1, 80, 128), ("cutout",), frames, torch.Generator().manual_seed(1))
    silent = (cut[..., :frames] == -1.0).float().mean(dim=(1, 2, 3))
    # one time band (15 of 125 frames) and one mel band (10 of 80): 1 - (7/8)(110/125) = 23 % of a loop
    assert torch.allclose(silent, torch.full((3,), 1 - (70 / 80) * (110 / 125)), atol=1e-6)
    assert torch.equal(cut[..., frames:], cut[..., : 128 - frames])  # the wrapped columns agree
    x = torch.randn(2, 1, 80, 128, requires_grad=True)
    sg.augment_loop_images(x, ("shift", "cutout"), frames, torch.Generator().manual_seed(2)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: G learns through it
    with pytest.raises(ValueError, match="unknown augmentation"):
        sg.augment_loop_images(x, ("flip",), frames, g)


def test_loop_augmentations_applied_with_probability_p_leave_the_rest_untouched():
    spec = sg.MelImageSpec()
    frames, n = spec.frames, 400
    ramp = torch.linspace(-1, 1, frames)
    img = torch.cat([ramp, ramp[:3]]).repeat(n, 1, 80, 1)  # a loop image whose every shift differs
    untouched = lambda out: torch.all(out == img, dim=(1, 2, 3)).float().mean().item()  # noqa: E731
    assert untouched(sg.augment_loop_images(img, ("shift", "cutout"), frames, torch.Generator().manual_seed(0),
                                            p=0.0)) == 1.0
    # shift alone at p = 0.5: unshifted are the half not chosen plus the chosen that drew shift 0 (1/16 of them)
    share = untouched(sg.augment_loop_images(img, ("shift",), frames, torch.Generator().manual_seed(0), p=0.5))
    expected = 0.5 + 0.5 / 16
    assert abs(share - expected) < 3 * math.sqrt(expected * (1 - expected) / n)
    # cutout always changes a chosen image: the untouched share is 1 - p
    share = untouched(sg.augment_loop_images(img, ("cutout",), frames, torch.Generator().manual_seed(1), p=0.25))
    assert abs(share - 0.75) < 3 * math.sqrt(0.75 * 0.25 / n)
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="p must be in"):
            sg.augment_loop_images(img, ("shift",), frames, torch.Generator(), p=p)


# ----------------------------------------------------------------------------- class-conditional loops

def test_conditional_generator_plays_the_class_it_is_given_and_truncation_keeps_it():
    torch.manual_seed(0)
    g = sg.Generator(tiny_config(n_classes=3)).eval().requires_grad_(False)
    z = torch.randn(4, 16)
    a = g(z, noise_mode="const", labels=torch.tensor([0, 0, 0, 0]))
    b = g(z, noise_mode="const", labels=torch.tensor([2, 2, 2, 2]))
    assert float((a - b).abs().mean()) > 1e-3  # same latents, another class: another image
    # psi = 0: every latent gives its class's mean image, and the classes stay apart
    g.mapping_net.w_avg.normal_()
    same = g(z, truncation_psi=0.0, noise_mode="const", labels=torch.tensor([1, 1, 1, 1]))
    torch.testing.assert_close(same, same[:1].expand_as(same))
    other = g(z[:1], truncation_psi=0.0, noise_mode="const", labels=torch.tensor([0]))
    assert float((other - same[:1]).abs().mean()) > 1e-3
    # the running mean of w excludes the class offset
    ws = g.mapping(z, labels=torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(g.unconditioned_w(ws, torch.tensor([0, 1, 2, 0])), g.mapping_net(z))


def test_class_lr_mul_starts_at_the_same_offsets_and_slows_their_adam_steps_by_its_factor():
    moved = {}
    for mul in (1.0, 0.01):
        torch.manual_seed(0)
        g = sg.Generator(tiny_config(n_classes=3, class_lr_mul=mul))
        start = g.class_offsets.detach().clone()
        opt = torch.optim.Adam([g.class_w], lr=1e-2)
        ws = g.mapping(torch.randn(4, 16), labels=torch.tensor([0, 1, 2, 0]))
        ws.square().sum().backward()
        opt.step()
        moved[mul] = (start, (g.class_offsets - start).abs().max().item())
    torch.testing.assert_close(moved[1.0][0], moved[0.01][0])  # same random start
    assert moved[0.01][1] == pytest.approx(0.01 * moved[1.0][1], rel=1e-3)  # Adam's step (lr) scaled by the factor
    with pytest.raises(ValueError, match="class_lr_mul must be > 0"):
        tiny_config(n_classes=3, class_lr_mul=0.0)


def test_conditional_labels_are_checked_with_clear_errors():
    g = sg.Generator(tiny_config(n_classes=3))
    z = torch.randn(2, 16)
    with pytest.raises(ValueError, match="class-conditional .3 classes.: pass labels"):
        g(z)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        g(z, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"integers of shape \(2,\)"):
        g(z, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="unconditional"):
        sg.Generator(tiny_config())(z, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="n_classes must be >= 0"):
        tiny_config(n_classes=-1)


def test_projection_discriminator_adds_the_class_embedding_term():
    torch.manual_seed(0)
    d = sg.Discriminator(tiny_config(n_classes=4))
    x = torch.randn(2, 1, 16, 128)
    with torch.no_grad():
        l0, l1 = d(x, labels=torch.tensor([0, 0])), d(x, labels=torch.tensor([1, 1]))
        d.class_embed.zero_()
        base = d(x, labels=torch.tensor([1, 1]))
        d.class_embed[1] = 1.0  # projection term = sum(h) / sqrt(dim)
        h = d.fc(torch.nn.functional.leaky_relu(d.conv(minibatch_stddev(d.blocks(
            torch.nn.functional.leaky_relu(d.from_mel(x), 0.2) * math.sqrt(2.0)), 2, strict=True)), 0.2).flatten(1) * math.sqrt(2.0))
        expected = base + h.sum(1) / math.sqrt(h.shape[1])
        torch.testing.assert_close(d(x, labels=torch.tensor([1, 1])), expected, rtol=1e-4, atol=1e-4)
    assert float((l0 - l1).abs().max()) > 1e-4


def test_generate_mels_plays_every_class_in_turn_and_save_load_keeps_the_classes(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(n_classes=3)
    g = sg.Generator(cfg).eval()
    spec = sg.MelImageSpec(mel=TINY_MEL, loop_samples=125 * TINY_MEL.hop, width=128)
    z = torch.randn(5, 16)
    mels = sg.generate_mels(g, spec, 5, z=z, noise_mode="const")
    labels = sg.balanced_labels(5, 3)
    assert labels.tolist() == [0, 1, 2, 0, 1]
    expected = spec.to_mel(g(z, noise_mode="const", labels=labels).clamp(-1, 1))
    torch.testing.assert_close(mels, expected)
    path = sg.save_generator(g, spec, tmp_path / "g.pt", meta={"class_names": ["a", "b", "c"]})
    g2 = sg.load_stylegan2(path)
    assert g2.n_classes == 3 and g2.meta["class_names"] == ["a", "b", "c"]
    torch.testing.assert_close(sg.generate_mels(g2, spec, 5, z=z, noise_mode="const"), mels)


def test_label_range_is_checked_on_the_cpu_and_never_read_back_from_a_device():
    from torch.overrides import TorchFunctionMode

    from course_lib.runtime.device_guard import FakeDevice

    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        sg.check_labels(torch.tensor([0, 3]), 3, 2)

    class Reductions(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.seen.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    with FakeDevice("mps"):
        on_device = torch.tensor([0, 2]).to("mps")
        with Reductions() as seen:
            checked = sg.check_labels(on_device, 3, 2)
    assert torch.equal(checked.cpu(), torch.tensor([0, 2]))
    assert not {"min", "max"} & set(seen.seen)  # no device -> host read per forward pass
    with Reductions() as seen:
        sg.check_labels(torch.tensor([0, 2]), 3, 2)
    assert {"min", "max"} <= set(seen.seen)  # ... while CPU labels are range-checked


def test_pacgan_discriminator_judges_packs_of_one_label_as_stacked_channels():
    torch.manual_seed(0)
    d = sg.Discriminator(tiny_config(n_classes=3, pack=2))
    x = torch.randn(4, 1, 16, 128)
    labels = torch.tensor([1, 1, 2, 2])
    with torch.no_grad():
        logits = d(x, labels=labels)
        assert logits.shape == (2,)
        y = x.clone()
        y[1] += 1.0  # the second image of pack 0 moves its logit
        moved = d(y, labels=labels)
        assert float((moved[0] - logits[0]).abs()) > 1e-4
        # a pack is one 2-channel image: its first layer reads both
        assert d.from_mel.weight.shape[1] == 2
    with pytest.raises(ValueError, match="share their label"):
        d(x, labels=torch.tensor([1, 2, 2, 2]))
    with pytest.raises(ValueError, match="not a multiple of 2"):
        d(x[:3], labels=labels[:3])
    with pytest.raises(ValueError, match="pack must be >= 1"):
        tiny_config(pack=0)


def test_discriminator_channels_can_differ_from_the_generators(tmp_path):
    cfg = tiny_config(channels=(16, 16, 12, 8), d_channels=(8, 8, 6, 4))
    d, g = sg.Discriminator(cfg), sg.Generator(cfg)
    # the discriminator reads the image at the top resolution with d_channels[-1] features, ends with d_channels[0]
    assert d.from_mel.weight.shape[0] == 4 and d.fc.weight.shape[0] == 8
    assert g.to_mels[-1].conv.weight.shape[-3] == 8  # the generator keeps its own channels
    assert d(torch.randn(4, 1, 16, 128)).shape == (4,)
    mirrored = sg.Discriminator(tiny_config(channels=(16, 16, 12, 8)))
    assert mirrored.from_mel.weight.shape[0] == 8 and mirrored.fc.weight.shape[0] == 16
    path = sg.save_generator(g, sg.MelImageSpec(), tmp_path / "g.pt")
    assert sg.load_stylegan2(path).config.d_channels == (8, 8, 6, 4)
    with pytest.raises(ValueError, match="d_channels needs n_up"):
        tiny_config(d_channels=(8, 8))


def test_r1_penalty_of_a_pack_sums_the_squared_gradients_of_its_images():
    x = torch.randn(4, 1, 2, 2, requires_grad=True)
    logits = (x ** 2).reshape(2, -1).sum(1)  # two judgements of two images each
    expected = ((2 * x) ** 2).reshape(2, -1).sum(1).mean()
    assert float(sg.r1_penalty(x, logits).detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_class_mapping_feeds_a_normalised_class_embedding_to_the_mapping_network(tmp_path):
    torch.manual_seed(0)
    g = sg.Generator(tiny_config(n_classes=3, class_mapping=True)).eval().requires_grad_(False)
    assert g.mapping_net.layers[0].weight.shape[1] == 16 + 16 and not hasattr(g, "class_w")
    z = torch.randn(4, 16)
    labels = torch.tensor([0, 1, 2, 0])
    ws = g.mapping(z, labels=labels)
    e = g.class_embed[labels]
    embed = e * torch.rsqrt(e.square().mean(1, keepdim=True) + 1e-8)  # unit second moment, like z
    zn = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
    torch.testing.assert_close(ws[:, 0], g.mapping_net.layers(torch.cat([zn, embed], 1)))
    torch.testing.assert_close(g.unconditioned_w(ws, labels), ws[:, 0])  # no offset: w_avg averages w itself
    a = g(z, noise_mode="const", labels=torch.zeros(4, dtype=torch.long))
    b = g(z, noise_mode="const", labels=torch.full((4,), 2))
    assert float((a - b).abs().mean()) > 1e-3  # same latents, another class: another image
    g.class_strength.fill_(0.0)  # transitional conditioning at its start: the class is not read
    torch.testing.assert_close(g.mapping(z, labels=torch.zeros(4, dtype=torch.long)),
                               g.mapping(z, labels=torch.full((4,), 2)))
    g.class_strength.fill_(1.0)
    spec = sg.MelImageSpec(mel=TINY_MEL, width=128)
    path = sg.save_generator(g, spec, tmp_path / "g.pt", {})
    loaded = sg.load_stylegan2(path)
    torch.testing.assert_close(loaded(z, noise_mode="const", labels=labels), g(z, noise_mode="const", labels=labels))
    with pytest.raises(ValueError, match="embed must be"):
        g.mapping_net(z)


def test_input_from_w_adds_a_layout_projected_from_the_first_w_to_the_constant(tmp_path):
    torch.manual_seed(0)
    g = sg.Generator(tiny_config(input_from_w=True)).eval().requires_grad_(False)
    plain = sg.Generator(tiny_config()).eval().requires_grad_(False)
    c0, (h0, w0) = g.config.channels[0], g.config.base_size
    assert g.input_map.weight.shape == (c0 * h0 * w0, g.config.w_dim) and not hasattr(plain, "input_map")
    ws = g.mapping(torch.randn(3, 16))
    start = g.input(3) + g.input_map(ws[:, 0]).view(3, c0, h0, w0)
    first = g.conv0(start, ws[:, 0], noise_mode="const")
    seen = {}
    hook = g.conv0.register_forward_hook(lambda m, args, out: seen.update(conv0=out))
    g.synthesis(ws, noise_mode="const")
    hook.remove()
    torch.testing.assert_close(seen["conv0"], first)  # the synthesis starts from constant + projected map
    spec = sg.MelImageSpec(mel=TINY_MEL, width=128)
    loaded = sg.load_stylegan2(sg.save_generator(g, spec, tmp_path / "g.pt", {}))
    torch.testing.assert_close(loaded.synthesis(ws, noise_mode="const"), g.synthesis(ws, noise_mode="const"))


def test_input_map_init_zero_starts_from_the_plain_constant_and_still_learns():
    torch.manual_seed(0)
    g = sg.Generator(tiny_config(input_from_w=True, input_map_init=0.0))
    torch.manual_seed(0)
    plain = sg.Generator(tiny_config())
    plain_state = plain.state_dict()
    g.load_state_dict({**plain_state, **{k: v for k, v in g.state_dict().items() if k.startswith("input_map")}})
    assert float(g.input_map.weight.detach().abs().max()) == 0.0
    ws = g.mapping(torch.randn(3, 16))
    torch.testing.assert_close(g.synthesis(ws, noise_mode="const"), plain.synthesis(ws, noise_mode="const"))
    g.synthesis(ws, noise_mode="const").square().mean().backward()
    assert float(g.input_map.weight.grad.abs().max()) > 0  # the layout can grow from zero
    with pytest.raises(ValueError, match="input_map_init"):
        tiny_config(input_from_w=True, input_map_init=-1.0)
