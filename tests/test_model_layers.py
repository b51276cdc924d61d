"""models/layers.py: the one equalised dense layer serves GANSynth (gain sqrt 2) and StyleGAN2 (lr_mul, bias_init)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.models import stylegan2
from course_lib.models.layers import EqualizedLinear


def test_gansynth_defaults_follow_the_formula():
    layer = EqualizedLinear(8, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(layer.weight.detach(), torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(layer.bias.detach(), torch.zeros(4))
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    expected = x @ (layer.weight * math.sqrt(2) / math.sqrt(8)).T
    assert torch.allclose(layer(x), expected, atol=1e-6)


@pytest.mark.parametrize("lr_mul,bias_init,activation", [(1.0, 0.0, None), (0.01, 1.0, "lrelu"), (0.5, 0.2, None)])
def test_stylegan2s_unit_gain_follows_the_formula(lr_mul, bias_init, activation):
    layer = EqualizedLinear(16, 5, gain=1.0, lr_mul=lr_mul, bias_init=bias_init, activation=activation,
                            generator=torch.Generator().manual_seed(3))
    assert torch.equal(layer.weight.detach(), torch.randn(5, 16, generator=torch.Generator().manual_seed(3)) / lr_mul)
    assert torch.allclose(layer.bias.detach(), torch.full((5,), bias_init / lr_mul))
    x = torch.randn(4, 16)
    pre = x @ (layer.weight * lr_mul / math.sqrt(16)).T + bias_init  # effective weight w / sqrt(in), bias b
    expected = F.leaky_relu(pre, 0.2) * math.sqrt(2.0) if activation == "lrelu" else pre
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_stylegan2_uses_the_shared_layer_with_unit_gain():
    cfg = stylegan2.StyleGAN2Config()
    dense = [m for net in (stylegan2.Generator(cfg), stylegan2.Discriminator(cfg)) for m in net.modules()
             if isinstance(m, EqualizedLinear)]
    assert dense and all(m.scale == pytest.approx(m.lr_mul / math.sqrt(m.weight.shape[1])) for m in dense)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation"):
        EqualizedLinear(2, 2, activation="relu")


def test_minibatch_stddev_strict_is_stylegan2s_rule():
    from course_lib.models.layers import minibatch_stddev

    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ours = minibatch_stddev(x, 4, strict=True)
    # the extra map is the mean over features of the std across each group (samples i and i + 2, 4, 6 for g = 4)
    expected = x.reshape(4, 2, 3, 4, 4).std(dim=0, unbiased=False).mean(dim=(1, 2, 3))
    assert torch.allclose(ours[:2, 3, 0, 0], expected, atol=1e-4)
    with pytest.raises(ValueError, match="batch 6 is not divisible"):
        minibatch_stddev(x[:6], 4, strict=True)
    assert minibatch_stddev(x[:6], 4).shape == (6, 4, 4, 4)  # GANSynth's rule: a group of 3
