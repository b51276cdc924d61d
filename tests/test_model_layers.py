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
def test_it_is_stylegan2s_equal_linear_with_unit_gain(lr_mul, bias_init, activation):
    torch.manual_seed(3)
    theirs = stylegan2.EqualLinear(16, 5, bias_init=bias_init, lr_mul=lr_mul, activation=activation)
    torch.manual_seed(3)
    ours = EqualizedLinear(16, 5, gain=1.0, lr_mul=lr_mul, bias_init=bias_init, activation=activation)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for key in ours.state_dict():
        assert torch.equal(ours.state_dict()[key], theirs.state_dict()[key])
    x = torch.randn(4, 16)
    assert torch.equal(ours(x), theirs(x))
    if activation == "lrelu":  # the activation is applied: negative pre-activations shrink by 0.2
        pre = F.linear(x, ours.weight * ours.scale, ours.bias * lr_mul)
        assert torch.allclose(ours(x), F.leaky_relu(pre, 0.2) * math.sqrt(2.0))


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation"):
        EqualizedLinear(2, 2, activation="relu")


def test_minibatch_stddev_strict_is_stylegan2s_rule():
    from course_lib.models.layers import minibatch_stddev

    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ours = minibatch_stddev(x, 4, strict=True)
    assert torch.allclose(ours, stylegan2.minibatch_stddev(x, 4), atol=1e-6)
    # the extra map is the mean over features of the std across each group (samples i and i + 2, 4, 6 for g = 4)
    expected = x.reshape(4, 2, 3, 4, 4).std(dim=0, unbiased=False).mean(dim=(1, 2, 3))
    assert torch.allclose(ours[:2, 3, 0, 0], expected, atol=1e-4)
    with pytest.raises(ValueError, match="batch 6 is not divisible"):
        minibatch_stddev(x[:6], 4, strict=True)
    assert minibatch_stddev(x[:6], 4).shape == (6, 4, 4, 4)  # GANSynth's rule: a group of 3
