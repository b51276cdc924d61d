"""The self-supervised loop encoder (SimCLR) and the projected discriminator built on it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.models import loop_encoder as le
from course_lib.models.projected_d import ProjectedDiscriminator
from course_lib.models.stylegan2 import StyleGAN2Config
from course_lib.spectral import MelConfig
from course_lib.train.gan import get_config, train_gan
from course_lib.train.loop_encoder import EncoderTrainConfig, train_loop_encoder

SMALL = le.LoopEncoderConfig(channels=(8, 16, 16), proj_dim=8)


def test_nt_xent_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    z1 = F.normalize(torch.randn(3, 4, generator=g), dim=1)
    z2 = F.normalize(torch.randn(3, 4, generator=g), dim=1)
    tau = 0.5
    z = torch.cat([z1, z2])
    expected = 0.0
    for i in range(6):
        j = (i + 3) % 6  # the other view of the same loop
        others = [k for k in range(6) if k != i]
        expected += -math.log(math.exp(float(z[i] @ z[j]) / tau) / sum(math.exp(float(z[i] @ z[k]) / tau) for k in others))
    assert float(le.nt_xent_loss(z1, z2, tau)) == pytest.approx(expected / 6, rel=1e-5)


def test_nt_xent_is_low_when_the_views_agree_and_chance_when_they_do_not():
    z = F.normalize(torch.eye(8), dim=1)
    assert float(le.nt_xent_loss(z, z, 0.1)) < 0.01
    same = F.normalize(torch.ones(8, 8), dim=1)  # every view alike: the pair is one of 15 equal choices
    assert float(le.nt_xent_loss(same, same, 0.1)) == pytest.approx(math.log(15), rel=1e-5)


def test_ssl_views_keep_shape_and_range_and_are_reproducible():
    x = torch.rand(4, 1, 16, 128) * 2 - 1
    a = le.ssl_views(x, 125, torch.Generator().manual_seed(1))
    b = le.ssl_views(x, 125, torch.Generator().manual_seed(1))
    c = le.ssl_views(x, 125, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_encoder_stages_halve_the_image_and_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    enc = le.LoopEncoder(SMALL)
    x = torch.rand(2, 1, 80, 128) * 2 - 1
    shapes = [tuple(f.shape) for f in enc(x)]
    assert shapes == [(2, 8, 40, 64), (2, 16, 20, 32), (2, 16, 10, 16)]
    path = le.save_loop_encoder(enc, tmp_path / "enc.pt", {"note": "test"})
    back = le.load_loop_encoder(path)
    assert torch.equal(back.embed(x), enc.eval().embed(x))
    assert back.meta == {"note": "test"} and not any(p.requires_grad for p in back.parameters())


def test_loading_something_else_names_the_file(tmp_path):
    bad = tmp_path / "not_an_encoder.pt"
    torch.save({"kind": "stylegan2"}, bad)
    with pytest.raises(ValueError, match="not_an_encoder.pt"):
        le.load_loop_encoder(bad)
    with pytest.raises(FileNotFoundError, match="course_lib.train.loop_encoder"):
        le.load_loop_encoder(tmp_path / "missing.pt")


def test_simclr_learns_to_pair_the_views_of_a_loop():
    """Chance level for a batch of 32 is log(63) = 4.14; a few epochs on the fast loop set must beat it clearly."""
    cfg = EncoderTrainConfig(epochs=6, batch_size=32, data_preset="fast", arch=SMALL.to_dict(), lr=3e-3)
    _, record = train_loop_encoder(cfg, log=lambda *_: None)
    assert record["losses"][0] > record["losses"][-1]
    assert record["losses"][-1] < math.log(2 * 32 - 1) - 0.5


def _projected(n_classes: int = 3, pack: int = 1, residual: bool = False) -> ProjectedDiscriminator:
    torch.manual_seed(0)
    cfg = StyleGAN2Config(image_size=(80, 128), n_up=4, n_classes=n_classes, pack=pack, channels=(16, 16, 8, 8, 8))
    return ProjectedDiscriminator(le.LoopEncoder(SMALL).eval().requires_grad_(False), cfg, proj_channels=8,
                                  head_channels=8, residual=residual)


def test_projected_discriminator_keeps_its_encoder_frozen_and_passes_gradients_to_the_image():
    d = _projected()
    d.requires_grad_(False)
    d.requires_grad_(True)  # what a trainer does after a generator step
    assert not any(p.requires_grad for p in d.features.parameters())
    assert all(p.requires_grad for n, p in d.named_parameters() if not n.startswith("features."))
    x = (torch.rand(4, 1, 80, 128) * 2 - 1).requires_grad_(True)
    logits = d(x, torch.tensor([0, 1, 2, 0]))
    assert logits.shape == (4,)
    logits.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in d.features.parameters())


def test_with_the_residual_discriminator_the_logits_add_up():
    d = _projected(residual=True)
    x, labels = torch.rand(4, 1, 80, 128) * 2 - 1, torch.tensor([0, 1, 2, 0])
    both = d(x, labels)
    residual = d.residual(x, labels)
    d.residual = None
    assert torch.allclose(both, d(x, labels) + residual, atol=1e-5)
    assert not torch.allclose(both, d(x, labels))


def test_projected_weight_scales_the_heads_and_at_zero_leaves_the_residual_judging_alone():
    d = _projected(residual=True)
    x, labels = torch.rand(4, 1, 80, 128) * 2 - 1, torch.tensor([0, 1, 2, 0])
    both, residual = d(x, labels), d.residual(x, labels)
    d.projected_weight.fill_(0.25)
    assert torch.allclose(d(x, labels), 0.25 * (both - residual) + residual, atol=1e-5)
    calls = []
    hook = d.features.register_forward_hook(lambda *a: calls.append(1))
    d.projected_weight.fill_(0.0)
    assert torch.allclose(d(x, labels), residual) and not calls  # the frozen network is not even run
    hook.remove()


def test_projected_discriminator_class_term_and_checks():
    d = _projected()
    x = torch.rand(2, 1, 80, 128) * 2 - 1
    a, b = d(x, torch.tensor([0, 0])), d(x, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    d.class_strength.fill_(0.0)
    assert torch.allclose(d(x, torch.tensor([0, 0])), d(x, torch.tensor([1, 1])))
    with pytest.raises(ValueError, match="pack"):
        _projected(pack=2)
    with pytest.raises(ValueError, match="image must be"):
        d(torch.zeros(2, 1, 40, 128), torch.tensor([0, 0]))


@pytest.mark.parametrize("residual", [False, True])
def test_training_with_a_projected_discriminator_trains_its_heads_only(tmp_path, residual):
    torch.manual_seed(0)
    enc_path = le.save_loop_encoder(le.LoopEncoder(SMALL), tmp_path / "enc.pt")
    frozen = {k: v.clone() for k, v in le.load_loop_encoder(enc_path).state_dict().items()}
    g = torch.Generator().manual_seed(3)
    data = torch.sin(2 * math.pi * 200 * torch.arange(32000) / 16000) * torch.rand(4, 1, generator=g)
    cfg = get_config("stylegan2", "fast", steps=3, batch_size=2, r1_interval=2, progress=False, log_every=1,
                     d_encoder=str(enc_path), d_residual=residual, mel=MelConfig(n_mels=16).to_dict(),
                     arch=dict(n_up=3, channels=(8, 8, 8, 8), z_dim=16, w_dim=16, mapping_layers=2, mbstd_group=0))
    start = train_gan(get_config(**{**cfg.to_dict(), "steps": 0}), data=data).discriminator.state_dict()
    result = train_gan(cfg, data=data)
    d = result.discriminator.state_dict()
    assert all(torch.equal(d["features." + k], v) for k, v in frozen.items())
    heads = [k for k in d if k.startswith("heads.")]
    assert heads and any(not torch.equal(d[k], start[k]) for k in heads)
    assert all(math.isfinite(row["d_loss"]) for row in result.history)
    trained = [k for k in d if not k.startswith("features.") and not torch.equal(d[k], start[k])]
    assert any(k.startswith("residual.") for k in trained) == residual
    with pytest.raises(ValueError, match="d_encoder"):
        get_config("stylegan2", "fast", d_residual=True)


def test_projected_heads_switched_off_part_way_stop_training_and_the_residual_goes_on(tmp_path):
    from course_lib.train.gan import StyleGAN2Task
    torch.manual_seed(0)
    enc_path = le.save_loop_encoder(le.LoopEncoder(SMALL), tmp_path / "enc.pt")
    g = torch.Generator().manual_seed(3)
    data = torch.sin(2 * math.pi * 200 * torch.arange(32000) / 16000) * torch.rand(4, 1, generator=g)
    base = dict(batch_size=2, r1_interval=2, progress=False, log_every=1, d_encoder=str(enc_path), d_residual=True,
                mel=MelConfig(n_mels=16).to_dict(), d_projected_until=2, d_projected_fade=2,
                arch=dict(n_up=3, channels=(8, 8, 8, 8), z_dim=16, w_dim=16, mapping_layers=2, mbstd_group=0))
    task = StyleGAN2Task.__new__(StyleGAN2Task)
    task.cfg = get_config("stylegan2", "fast", **base)
    assert [task.projected_weight(s) for s in range(6)] == [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    at4 = train_gan(get_config("stylegan2", "fast", steps=4, **base), data=data).discriminator.state_dict()
    at6 = train_gan(get_config("stylegan2", "fast", steps=6, **base), data=data).discriminator.state_dict()
    heads = [k for k in at4 if k.startswith(("heads.", "class_embed."))]
    assert heads and all(torch.equal(at4[k], at6[k]) for k in heads)
    assert any(not torch.equal(at4[k], at6[k]) for k in at4 if k.startswith("residual."))
    for bad in (dict(d_projected_until=-1), dict(d_projected_fade=-2)):
        with pytest.raises(ValueError, match=">= 0"):
            get_config("stylegan2", "fast", **{**base, **bad})
    with pytest.raises(ValueError, match="d_projected_until > 0"):  # a fade that never starts is refused
        get_config("stylegan2", "fast", **{**base, "d_projected_until": 0, "d_projected_fade": 3})
    with pytest.raises(ValueError, match="d_residual=True"):
        get_config("stylegan2", "fast", **{**base, "d_residual": False})


def test_command_line_writes_the_encoder_and_a_card_with_its_own_figures(tmp_path):
    from course_lib.train.loop_encoder import main
    import hashlib

    out = tmp_path / "enc.pt"
    assert main(["--out", str(out), "--epochs", "1", "--batch-size", "32", "--data-preset", "fast"]) == 0
    enc = le.load_loop_encoder(out)
    card = out.with_suffix(".md").read_text()
    assert hashlib.sha256(out.read_bytes()).hexdigest()[:16] in card
    assert f"{enc.meta['losses'][-1]:.2f} after the last" in card
    assert f"**{enc.meta['probe']['encoder']:.3f}**" in card and "--data-preset fast" in card
    assert 0.0 <= enc.meta["probe"]["random"] <= 1.0
    assert enc.card["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() and enc.card["losses"] == enc.meta["losses"]
