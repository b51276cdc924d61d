"""Layers shared by the course's GANs (progressive GAN / GANSynth; Karras et al., ICLR 2018).

* **Equalised learning rate**: a weight is stored with unit variance and scaled at run time by
  ``gain / sqrt(fan_in)`` (:class:`EqualizedLinear`, :class:`EqualizedConv2d`), so Adam takes equal-sized
  steps in every layer.
* :func:`pixel_norm`: each pixel's feature vector to unit RMS over channels.
* :func:`minibatch_stddev`: one extra feature map, the spread of features across a group of samples
  (GANSynth's group rule, or StyleGAN2's with ``strict=True``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["EqualizedLinear", "EqualizedConv2d", "pixel_norm", "minibatch_stddev"]


class EqualizedLinear(nn.Module):
    """Dense layer with equalised learning rate: ``y = x (w * gain * lr_mul / sqrt(in))^T + b * lr_mul``.

    ``w ~ N(0, 1) / lr_mul`` and ``b = bias_init / lr_mul`` are stored; ``lr_mul < 1`` slows the layer's effective
    learning rate (StyleGAN's mapping network: 0.01). ``activation="lrelu"``: leaky ReLU(0.2) times sqrt(2), which
    keeps unit variance. GANSynth uses the defaults (``gain = sqrt(2)``); StyleGAN2 ``gain=1.0``.
    ``(batch, in_features)`` -> ``(batch, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2),
                 generator: torch.Generator | None = None, *, lr_mul: float = 1.0, bias_init: float = 0.0,
                 activation: str | None = None) -> None:
        super().__init__()
        if activation not in (None, "lrelu"):
            raise ValueError(f"activation must be None or 'lrelu', got {activation!r}")
        self.weight = nn.Parameter(torch.randn(out_features, in_features, generator=generator) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.scale = gain * lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_features)`` -> ``(batch, out_features)``."""
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(y, 0.2) * math.sqrt(2.0) if self.activation == "lrelu" else y


class EqualizedConv2d(nn.Module):
    """Same-padded 2-D convolution with equalised learning rate (``w ~ N(0, 1)`` scaled by ``gain / sqrt(fan_in)``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, gain: float = math.sqrt(2),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd for same padding, got {kernel}")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel, generator=generator))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in, H, W)`` -> ``(batch, out, H, W)``."""
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit RMS over channels (dim 1)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, *, strict: bool = False) -> torch.Tensor:
    """Append one feature map: the mean standard deviation of features over groups of samples.

    ``(batch, C, H, W)`` -> ``(batch, C + 1, H, W)``. The group is the largest divisor of the
    batch not above ``group_size`` (GANSynth); ``strict=True`` (StyleGAN2's rule) takes ``min(group_size, batch)``
    and raises ``ValueError`` when it does not divide the batch.
    """
    n, c, h, w = x.shape
    if strict:
        g = min(group_size, n)
        if n % g:
            raise ValueError(f"batch {n} is not divisible by the minibatch-stddev group size {g}")
    else:
        g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    y = x.view(g, n // g, c, h, w).float()
    y = (y - y.mean(dim=0, keepdim=True)).pow(2).mean(dim=0).add(1e-8).sqrt()  # (n/g, C, H, W)
    y = y.mean(dim=(1, 2, 3)).to(x.dtype)  # (n/g,)
    y = y.view(1, n // g, 1, 1, 1).expand(g, n // g, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y], dim=1)
