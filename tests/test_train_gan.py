"""The GAN training loop: DDP with 2 CPU processes equals one process with the doubled batch; resume; CLI."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.spectral import MelConfig
from course_lib.train import ddp, gan
from course_lib.train.gan import GANConfig, get_config, train_gan, train_worker

TINY = dict(mel=MelConfig(n_mels=16).to_dict(), progress=False, log_every=1,
            arch=dict(n_up=3, channels=(8, 8, 8, 8), z_dim=16, w_dim=16, mapping_layers=2, mbstd_group=0))



def loops(n: int = 8, samples: int = 32000) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    t = torch.arange(samples) / 16000
    f = 100 + 900 * torch.rand(n, 1, generator=g)
    return 0.5 * torch.sin(2 * math.pi * f * t) * torch.rand(n, 1, generator=g)


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].detach().float() - b[k].detach().float()).abs().max()) for k in a)


def test_ddp_two_processes_match_one_process_with_the_doubled_batch(tmp_path):
    data = loops()
    cfg = get_config("stylegan2", "fast", steps=3, batch_size=2, r1_interval=2, lr_g=1e-3, lr_d=1e-3, threads=1, **TINY)
    ddp.launch_local(train_worker, 2, args=(cfg, data, str(tmp_path)))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    # DDP averages gradients across ranks: both hold exactly the same weights
    assert max_diff(r0["G"], r1["G"]) == 0.0 and max_diff(r0["D"], r1["D"]) == 0.0
    single = train_gan(GANConfig(**{**cfg.to_dict(), "batch_size": 4}), data=data)
    g1, d1 = single.generator.state_dict(), single.discriminator.state_dict()
    init = train_gan(GANConfig(**{**cfg.to_dict(), "steps": 0}), data=data).generator.state_dict()
    moved = max_diff(g1, init)
    assert moved > 1e-3  # training changed the weights ...
    assert max_diff(r0["G"], g1) < 1e-4 and max_diff(r0["D"], d1) < 1e-4  # ... identically up to rounding
    for a, b in zip(r0["history"], single.history):
        assert a["d_loss"] == pytest.approx(b["d_loss"], rel=1e-4) and a["g_loss"] == pytest.approx(b["g_loss"], rel=1e-4)


def test_resume_from_checkpoint_continues_the_same_run(tmp_path):
    data = loops(4)
    cfg = get_config("stylegan2", "fast", steps=4, batch_size=2, r1_interval=2, pl_weight=1.0, pl_interval=2, **TINY)
    straight = train_gan(cfg, data=data)
    part = GANConfig(**{**cfg.to_dict(), "steps": 2, "out_dir": str(tmp_path)})
    train_gan(part, data=data)
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "history.json").is_file()
    resumed = train_gan(GANConfig(**{**part.to_dict(), "steps": 4}), data=data)
    assert resumed.steps_done == 4 and [r["step"] for r in resumed.history] == [1, 2, 3, 4]
    assert max_diff(straight.generator.state_dict(), resumed.generator.state_dict()) < 1e-6
    assert max_diff(straight.ema.state_dict(), resumed.ema.state_dict()) < 1e-6


def test_config_presets_and_errors():
    cfg = get_config("stylegan2", "lecture", steps=7, arch=dict(z_dim=64))
    assert cfg.steps == 7 and cfg.arch["z_dim"] == 64 and cfg.arch["channels"] == (96, 96, 48, 24, 12)
    assert cfg.augment == ("shift", "cutout") and cfg.ema_rampup > 0
    assert get_config("melgan", "full").adv_start > 0
    with pytest.raises(ValueError):
        get_config("stylegan3")
    with pytest.raises(ValueError):
        get_config("melgan", "fast", not_a_field=1)
    with pytest.raises(ValueError):
        train_gan(get_config("melgan", "fast", segment=1000), data=loops(4))  # not a multiple of the hop
    with pytest.raises(ValueError):
        train_gan(get_config("stylegan2", "fast", batch_size=8, **TINY), data=loops(4))  # fewer items than a batch


def test_cli_trains_and_writes_a_generator(tmp_path, capsys):
    import json

    from course_lib.train.__main__ import main
    from course_lib.train import gan

    data = loops(4)
    orig = gan.load_training_data
    gan.load_training_data = lambda cfg: data
    try:
        rc = main(["stylegan2", "--steps", "1", "--batch-size", "2", "--out", str(tmp_path), "--no-progress",
                   "--set", "mel={'n_mels': 16}", "--set", "arch.n_up=3", "--set", "arch.channels=(8, 8, 8, 8)"])
    finally:
        gan.load_training_data = orig
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 1 and (tmp_path / "generator.pt").is_file()


def test_cli_seed_comes_from_either_option_and_a_clash_is_an_error(monkeypatch, capsys):
    """``--set seed=1`` must not be overwritten by ``--seed``'s default (two runs meant as two draws were one)."""
    from course_lib.train import __main__ as cli

    seen = []

    class Stop(Exception):
        pass

    def fake_train(cfg):
        seen.append(cfg.seed)
        raise Stop

    monkeypatch.setattr(cli, "train_gan", fake_train)
    for args, seed in ((["--set", "seed=1"], 1), (["--seed", "2"], 2), ([], 0), (["--seed", "3", "--set", "seed=3"], 3)):
        with pytest.raises(Stop):
            cli.main(["stylegan2", "--no-progress", *args])
        assert seen.pop() == seed
    with pytest.raises(SystemExit):
        cli.main(["stylegan2", "--seed", "2", "--set", "seed=1"])
    assert "disagree" in capsys.readouterr().err and not seen


def test_time_budget_stops_early_and_logs_the_last_step():
    cfg = get_config("stylegan2", "fast", steps=50, batch_size=2, max_seconds=0.0, **{**TINY, "log_every": 10})
    res = train_gan(cfg, data=loops(4))
    assert res.steps_done == 1 and [r["step"] for r in res.history] == [1]
    assert res.history[0]["g_grad"] > 0


def test_augmentation_ema_rampup_and_exported_curve_points(tmp_path):
    """DiffAugment changes the trajectory (D sees other images) but stays reproducible; the EMA ramp-up makes
    the average track a short run; generators are exported at the requested steps with summed training time."""
    data = loops(4)
    base = get_config("stylegan2", "fast", steps=4, batch_size=2, **{**TINY, "log_every": 2})
    plain = train_gan(base, data=data)
    aug = GANConfig(**{**base.to_dict(), "augment": ("shift", "cutout")})
    a1, a2 = train_gan(aug, data=data), train_gan(aug, data=data)
    assert max_diff(a1.generator.state_dict(), a2.generator.state_dict()) == 0.0
    assert max_diff(a1.generator.state_dict(), plain.generator.state_dict()) > 1e-6
    # augment_p reaches the augmentation (p = 0 leaves every image as it is: another run); a command line's
    # "shift,cutout" is the policy's two names
    never = GANConfig(**{**aug.to_dict(), "augment_p": 0.0})
    assert max_diff(train_gan(never, data=data).generator.state_dict(), a1.generator.state_dict()) > 1e-6
    assert get_config("stylegan2", "fast", augment="shift, cutout").augment == ("shift", "cutout")
    with pytest.raises(ValueError, match="augment_p"):
        get_config("stylegan2", "fast", augment_p=1.2)
    slow = GANConfig(**{**base.to_dict(), "ema_half_life": 1e6})
    ramped = GANConfig(**{**slow.to_dict(), "ema_rampup": 0.05})
    def weights(model):  # parameters only: the EMA copies buffers (w_avg) from G at every step
        return dict(model.named_parameters())

    init = weights(train_gan(GANConfig(**{**base.to_dict(), "steps": 0}), data=data).generator)
    r_slow, r_ramp = train_gan(slow, data=data), train_gan(ramped, data=data)
    # without ramp-up a huge half-life leaves the EMA at the initial weights; with it the EMA follows G
    assert max_diff(weights(r_slow.ema), init) < 1e-4
    assert max_diff(weights(r_ramp.ema), weights(r_ramp.generator)) < max_diff(init, weights(r_ramp.generator))
    out = GANConfig(**{**base.to_dict(), "out_dir": str(tmp_path), "export_steps": (2,), "steps": 2})
    train_gan(out, data=data)
    train_gan(GANConfig(**{**out.to_dict(), "steps": 4}), data=data)  # resumed: a second session
    from course_lib.models.stylegan2 import load_stylegan2
    from course_lib.train.gan import _training_seconds

    g2 = load_stylegan2(tmp_path / "generator_0000002.pt")
    g4 = load_stylegan2(tmp_path / "generator.pt")
    assert g2.meta["steps"] == 2 and g4.meta["steps"] == 4
    hist = [{"seconds": 1.0}, {"seconds": 2.0}, {"seconds": 0.5}, {"seconds": 1.5}]
    assert _training_seconds(hist) == pytest.approx(3.5)  # two sessions: 2.0 + 1.5


def test_conditional_training_draws_fake_classes_from_the_training_labels(tmp_path):
    torch.manual_seed(0)
    data = torch.randn(8, 32_000) * 0.1
    labels = torch.tensor([2] * 8)  # one class present: every fake must be of that class
    cfg = gan.get_config("stylegan2", "fast", steps=2, progress=False, arch=dict(n_classes=3))
    task = gan.build_task(cfg, torch.device("cpu"))
    task.set_labels(labels)
    rnd = gan.BatchRandom(0, 0, "g", ddp.init_distributed("cpu"), 4)
    assert task._latents(rnd, task.G, step=0)["labels"].tolist() == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="needs the training labels"):
        gan.build_task(cfg, torch.device("cpu")).set_labels(None)
    with pytest.raises(ValueError, match=r"labels must be \(8,\)"):
        gan.train_gan(cfg, data=data, labels=torch.tensor([0, 1]))
    res = gan.train_gan(cfg, data=data, labels=labels)
    assert res.steps_done == 2 and all(math.isfinite(v) for v in res.history[-1].values())


def test_resuming_a_folder_trained_with_another_architecture_is_a_clear_error(tmp_path):
    data = torch.randn(8, 32_000) * 0.1
    train_gan(get_config("stylegan2", "fast", steps=1, progress=False, out_dir=str(tmp_path)), data=data)
    other = get_config("stylegan2", "fast", steps=2, progress=False, out_dir=str(tmp_path), arch=dict(z_dim=8))
    with pytest.raises(ValueError, match=r"checkpoint\.pt: its weights do not fit this Generator .*another configuration"):
        train_gan(other, data=data)



def test_mode_seeking_term_is_latent_distance_over_image_distance_for_pairs_of_one_class():
    cfg = gan.get_config("stylegan2", "fast", batch_size=4, steps=2, progress=False, mode_seeking=1.0,
                         arch=dict(n_classes=3))
    task = gan.build_task(cfg, torch.device("cpu"))
    task.set_labels(torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    lat = task._latents(gan.BatchRandom(0, 0, "g", ddp.init_distributed("cpu"), 4), task.G, step=0)
    assert lat["labels"][:2].tolist() == lat["labels"][2:].tolist()  # pairs (i, i + 2) share a class
    assert all(torch.equal(n[:2], n[2:]) for n in lat["noise"]) and torch.equal(lat["mix_z"][:2], lat["mix_z"][2:])
    assert not torch.equal(lat["z"][:2], lat["z"][2:])  # ... and differ only in z
    z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]])
    img = torch.zeros(4, 1, 2, 2)
    img[2] += 0.5
    img[3] += 4.0
    # pair 0: |dz| = 1, |dimg| = 0.5 -> 2; pair 1: |dz| = 1, |dimg| = 4 -> 0.25
    assert task.mode_seeking_loss(img, z).item() == pytest.approx((2.0 + 0.25) / 2, rel=1e-4)
    res = train_gan(cfg, data=torch.randn(8, 32_000) * 0.1, labels=torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    assert math.isfinite(res.history[-1]["ms"]) and res.history[-1]["ms"] > 0
    with pytest.raises(ValueError, match="needs a class-conditional"):
        gan.build_task(gan.get_config("stylegan2", "fast", mode_seeking=1.0), torch.device("cpu"))


def test_mode_seeking_until_ends_the_term_and_the_pairing_at_that_step():
    cfg = gan.get_config("stylegan2", "fast", batch_size=4, steps=4, progress=False, mode_seeking=0.5,
                         mode_seeking_until=2, log_every=1, arch=dict(n_classes=3))
    task = gan.build_task(cfg, torch.device("cpu"))
    assert [task.mode_seeking_weight(s) for s in range(4)] == [0.5, 0.5, 0.0, 0.0]
    task.set_labels(torch.arange(30) % 3)
    rnd = gan.BatchRandom(0, 2, "g", ddp.init_distributed("cpu"), 4)
    lat = task._latents(rnd, task.G, step=2)
    assert not all(torch.equal(n[:2], n[2:]) for n in lat["noise"])  # independent noise again after the end
    res = train_gan(cfg, data=torch.randn(8, 32_000) * 0.1, labels=torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    assert ["ms" in row for row in res.history] == [True, True, False, False]
    with pytest.raises(ValueError, match="mode_seeking_until"):
        gan.get_config("stylegan2", "fast", mode_seeking_until=-1)
    late = gan.build_task(gan.get_config("stylegan2", "fast", batch_size=4, mode_seeking=0.5, mode_seeking_until=2,
                                         mode_seeking_late=0.1, arch=dict(n_classes=3)), torch.device("cpu"))
    assert [late.mode_seeking_weight(s) for s in range(4)] == [0.5, 0.5, 0.1, 0.1]


def test_transitional_conditioning_ramps_the_class_offsets_and_the_projection_in(tmp_path):
    cfg = gan.get_config("stylegan2", "fast", batch_size=4, steps=5, progress=False, cond_start=1, cond_end=3,
                         log_every=1, arch=dict(n_classes=3), out_dir=str(tmp_path), export_steps=(3,))
    task = gan.build_task(cfg, torch.device("cpu"))
    assert [task.class_strength(s) for s in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    # the generator's w and the discriminator's logit move with the strength, linearly
    G, D = task.G.eval(), task.D
    z, labels = torch.randn(2, G.z_dim), torch.tensor([0, 2])
    image = torch.randn(2, 1, *task.arch.image_size)
    ws, logits = {}, {}
    for lam in (0.0, 0.5, 1.0):
        G.class_strength.fill_(lam)
        D.class_strength.fill_(lam)
        ws[lam] = G.mapping(z, labels=labels)
        logits[lam] = D(image, labels=labels)
    assert torch.allclose(ws[0.0], G.mapping_net(z).unsqueeze(1).expand_as(ws[0.0]))  # unconditional at 0
    assert torch.allclose(ws[0.5], (ws[0.0] + ws[1.0]) / 2, atol=1e-5)
    assert torch.allclose(logits[0.5], (logits[0.0] + logits[1.0]) / 2, atol=1e-5)
    assert not torch.allclose(ws[0.0], ws[1.0])
    res = train_gan(cfg, data=torch.randn(8, 32_000) * 0.1, labels=torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    assert [row["cond"] for row in res.history] == [0.0, 0.0, 0.5, 1.0, 1.0]
    # an export taken mid-ramp keeps its strength; the final model is fully conditional
    from course_lib.models import stylegan2 as sg

    assert float(sg.load_stylegan2(tmp_path / "generator_0000003.pt").class_strength) == 0.5
    assert float(res.ema.class_strength) == 1.0
    for bad in (dict(cond_start=3, cond_end=2), dict(cond_start=-1, cond_end=2)):
        with pytest.raises(ValueError, match="cond_start <= cond_end"):
            gan.get_config("stylegan2", "fast", **bad)
    with pytest.raises(ValueError, match="need a class-conditional"):
        gan.build_task(gan.get_config("stylegan2", "fast", cond_end=2), torch.device("cpu"))


def test_learning_rate_decay_is_linear_from_its_start_to_the_last_step_and_resumes_exactly(tmp_path):
    cfg = gan.get_config("stylegan2", "fast", steps=5, lr_decay_start=1, lr_final=0.2)
    assert [gan.lr_multiplier(cfg, s) for s in range(5)] == pytest.approx([1.0, 1.0, 0.7333333, 0.4666667, 0.2])
    assert gan.lr_multiplier(gan.get_config("stylegan2", "fast", steps=5), 4) == 1.0  # 0 = constant
    for bad in (dict(lr_final=1.5), dict(lr_decay_start=-1)):
        with pytest.raises(ValueError, match="lr_decay_start"):
            gan.get_config("stylegan2", "fast", **bad)
    data = loops(4)
    cfg = get_config("stylegan2", "fast", steps=5, batch_size=2, lr_decay_start=2, lr_final=0.2, **TINY)
    straight = train_gan(cfg, data=data)
    constant = train_gan(GANConfig(**{**cfg.to_dict(), "lr_decay_start": 0}), data=data)
    assert max_diff(straight.generator.state_dict(), constant.generator.state_dict()) > 1e-6  # the decay acts
    part = GANConfig(**{**cfg.to_dict(), "steps": 2, "out_dir": str(tmp_path)})
    train_gan(part, data=data)
    resumed = train_gan(GANConfig(**{**part.to_dict(), "steps": 5}), data=data)
    assert max_diff(straight.generator.state_dict(), resumed.generator.state_dict()) < 1e-6
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    groups = [g for v in saved.values() if isinstance(v, dict) for g in v.get("param_groups", [])]
    groups += [g for v in saved.get("extra", {}).values() if isinstance(v, dict) for g in v.get("param_groups", [])]
    assert groups and all(g["lr"] == pytest.approx(0.2 * g["base_lr"]) for g in groups)  # the last step's rate


def test_pacgan_packs_hold_one_label_for_reals_and_fakes_and_train():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    idx = torch.tensor([3, 9, 7, 1, 5, 0])
    rows = gan.same_label_packs(idx, labels, 2, torch.Generator().manual_seed(0), 10)
    assert rows[::2].tolist() == [3, 7, 5]  # every other sampler row starts a pack
    assert (labels[rows[0::2]] == labels[rows[1::2]]).all() and (rows[0::2] != rows[1::2]).all()
    again = gan.same_label_packs(idx, labels, 2, torch.Generator().manual_seed(0), 10)
    assert torch.equal(rows, again)
    assert torch.equal(gan.same_label_packs(idx, labels, 1, torch.Generator(), 10), idx)
    cfg = gan.get_config("stylegan2", "fast", steps=2, progress=False, arch=dict(n_classes=3, pack=2))
    task = gan.build_task(cfg, torch.device("cpu"))
    task.set_labels(labels)
    fake = task._latents(gan.BatchRandom(0, 0, "g", ddp.init_distributed("cpu"), 4), task.G, step=0)["labels"]
    assert torch.equal(fake[0::2], fake[1::2])
    with pytest.raises(ValueError, match="multiple of it"):
        gan.build_task(gan.get_config("stylegan2", "fast", batch_size=3, arch=dict(pack=2)), torch.device("cpu"))
    with pytest.raises(ValueError, match="use one of them"):
        gan.build_task(gan.get_config("stylegan2", "fast", mode_seeking=1.0, arch=dict(n_classes=3, pack=2)),
                       torch.device("cpu"))
    torch.manual_seed(0)
    res = gan.train_gan(cfg, data=torch.randn(10, 32_000) * 0.1, labels=labels)
    assert res.steps_done == 2 and all(math.isfinite(v) for v in res.history[-1].values())
    assert res.discriminator(torch.zeros(4, 1, *task.spec.size), labels=torch.tensor([0, 0, 1, 1])).shape == (2,)


@pytest.mark.parametrize("clamp", [True, False])
def test_clamp_fakes_shows_the_discriminator_generated_images_in_the_range_of_real_ones(clamp):
    """A generator whose pixels overshoot [-1, 1] (forced here by a hook): with ``clamp_fakes`` the discriminator sees
    them clamped in both steps (a fake no longer tells itself by a pixel under the mel floor), without it the raw
    values; the generator still gets a gradient through the pixels inside the range."""
    cfg = gan.get_config("stylegan2", "fast", batch_size=4, progress=False, augment=("shift", "cutout"),
                         clamp_fakes=clamp)
    task = gan.build_task(cfg, torch.device("cpu"))

    def overshoot(module, args, out):  # the generator returns (images, ws) in its training step
        return (out[0] * 4.0 - 1.5, out[1]) if isinstance(out, tuple) else out * 4.0 - 1.5

    task.G.register_forward_hook(overshoot)
    seen = []
    task.D.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    info = ddp.init_distributed("cpu")
    reals = torch.rand(4, 1, *task.spec.size) * 2 - 1
    task.d_step(task.G, task.D, reals, 0, gan.BatchRandom(0, 0, "d", info, 4))
    task.G.zero_grad()
    task.g_step(task.G, task.D, reals, 0, gan.BatchRandom(0, 0, "g", info, 4))
    fakes_d, fakes_g = seen[1], seen[2]  # d_step judges the reals first
    for fakes in (fakes_d, fakes_g):
        assert (fakes.min() >= -1.0 and fakes.max() <= 1.0) == clamp
        assert fakes.min() < -1.0 if not clamp else (fakes == -1.0).float().mean() > 0.2  # overshoot below the floor
    grads = [p.grad for p in task.G.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_class_pair_distances_is_the_mean_absolute_difference_of_two_images_of_a_class():
    images = torch.zeros(5, 1, 2, 2)
    images[1] += 1.0   # class 0: images 0, 1, 2 -> |0-1| = 1, |0-3| = 3, |1-3| = 2: mean 2
    images[2] += 3.0
    images[4] -= 0.5   # class 1: images 3, 4 -> 0.5
    d = gan.class_pair_distances(images, torch.tensor([0, 0, 0, 1, 1]), 2)
    assert d.tolist() == pytest.approx([2.0, 0.5])
    with pytest.raises(ValueError, match="class 2 has 0 training image"):
        gan.class_pair_distances(images, torch.tensor([0, 0, 0, 1, 1]), 3)


def test_variety_floor_asks_pairs_of_a_class_to_differ_as_much_as_real_loops_of_it_and_no_more():
    cfg = gan.get_config("stylegan2", "fast", batch_size=4, steps=2, progress=False, variety_floor=1.0,
                         log_every=1, arch=dict(n_classes=3))
    task = gan.build_task(cfg, torch.device("cpu"))
    task.set_labels(torch.tensor([0, 1, 2, 0, 1, 2]))
    lat = task._latents(gan.BatchRandom(0, 0, "g", ddp.init_distributed("cpu"), 4), task.G, step=0)
    assert lat["labels"][:2].tolist() == lat["labels"][2:].tolist()  # paired as for mode seeking
    assert all(torch.equal(n[:2], n[2:]) for n in lat["noise"])
    real = torch.zeros(6, 1, 2, 2)
    real[3:] += 0.5  # each class holds one image at 0 and one at 0.5
    task.set_real_variety(real)
    assert task.real_pair_distance.tolist() == pytest.approx([0.5, 0.5, 0.5])
    fakes = torch.zeros(4, 1, 2, 2)
    fakes[2] += 0.25  # pair 0 differs by half the real distance: pays 0.5
    fakes[3] += 3.0   # pair 1 differs by more than real (clamped to 1): pays 0, not rewarded further
    floor, ratio = task.variety_floor_loss(fakes, torch.tensor([0, 1, 0, 1]))
    assert floor.item() == pytest.approx(0.25) and ratio.item() == pytest.approx((0.5 + 2.0) / 2)
    res = train_gan(cfg, data=torch.randn(8, 32_000) * 0.1, labels=torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    assert all(math.isfinite(row["variety"]) and row["variety"] > 0 for row in res.history)
    with pytest.raises(ValueError, match="variety_floor needs a class-conditional"):
        gan.build_task(gan.get_config("stylegan2", "fast", variety_floor=1.0), torch.device("cpu"))
    with pytest.raises(ValueError, match="variety_floor must be >= 0"):
        gan.get_config("stylegan2", "fast", variety_floor=-1.0)


def test_variety_pool_measures_coarse_differences_so_speckle_does_not_count():
    flat, speckle = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    speckle[..., 0::2, 0::2] += 0.5   # a checkerboard-ish texture with the same mean over each 2x2 block ...
    speckle[..., 1::2, 1::2] -= 0.5
    brighter = flat + 0.25            # ... and a level change
    images = torch.cat([flat, speckle, flat, brighter])
    labels = torch.tensor([0, 0, 1, 1])
    assert gan.class_pair_distances(images, labels, 2).tolist() == pytest.approx([0.25, 0.25])
    assert gan.class_pair_distances(images, labels, 2, pool=2).tolist() == pytest.approx([0.0, 0.25])
    cfg = gan.get_config("stylegan2", "fast", batch_size=4, variety_floor=1.0, variety_pool=2, arch=dict(n_classes=2))
    task = gan.build_task(cfg, torch.device("cpu"))
    task.set_labels(labels)
    task.set_real_variety(torch.cat([flat, brighter, flat, brighter]))
    floor, ratio = task.variety_floor_loss(torch.cat([flat, flat, speckle, brighter]), torch.tensor([0, 1, 0, 1]))
    assert ratio.item() == pytest.approx((0.0 + 1.0) / 2) and floor.item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="variety_pool must be >= 1"):
        gan.get_config("stylegan2", "fast", variety_pool=0)
