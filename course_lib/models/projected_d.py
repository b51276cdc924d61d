"""A projected discriminator for loop images (Sauer et al., NeurIPS 2021; Yeh et al., ISMIR 2022 for loops).

Instead of learning its features from scratch, the discriminator reads the feature maps of a *frozen*
network (here the self-supervised :class:`~course_lib.models.loop_encoder.LoopEncoder`, which never saw a
label nor the grader), mixes them with fixed random projections, and trains only small heads on top:

* cross-channel mixing (CCM): a fixed random 1x1 projection of each stage's features to ``proj_channels``;
* cross-scale mixing (CSM): each projected map plus the upsampled sum from the coarser stages (top-down);
* one head per scale: 2x pooling and 3x3 convolutions (equalised learning rate, leaky ReLU) down to the
  discriminator's base size, a 1x1 convolution to a map of logits, averaged; a class-conditional head adds the
  projection term ``<embed(label), h> / sqrt(dim)`` of its pooled features (Miyato & Koyama, 2018).

The logits of the heads are summed (with ``residual=True`` also the logit of StyleGAN2's own residual
discriminator, which learns its features from the pixels: the two judge together): ``(batch, 1, H, W)`` images
-> ``(batch,)`` logits, like :class:`~course_lib.models.stylegan2.Discriminator`, so the same losses, R1 and
DiffAugment apply. The frozen
network stays frozen: ``requires_grad_(True)`` (which trainers call after a generator step) re-freezes it.

The buffer ``projected_weight`` (1 by default; trainers may fade it) scales the heads' logits; at 0 the frozen
network and the heads are skipped and only the residual discriminator judges.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.models.loop_encoder import LoopEncoder
from course_lib.models.stylegan2 import Discriminator, EqualConv2d, StyleGAN2Config, check_labels

__all__ = ["ProjectedDiscriminator"]


class _Head(nn.Module):
    """From one feature scale down to the base size (2x average pooling, then a 3x3 convolution, per halving),
    then a 1x1 logit map."""

    def __init__(self, in_channels: int, channels: int, downs: int) -> None:
        super().__init__()
        layers, c = [], in_channels
        for _ in range(downs):
            layers.append(EqualConv2d(c, channels, 3))
            c = channels
        self.convs = nn.ModuleList(layers)
        self.channels = c
        self.out = EqualConv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for conv in self.convs:
            x = F.leaky_relu(conv(F.avg_pool2d(x, 2)), 0.2) * math.sqrt(2.0)
        return self.out(x).mean(dim=(1, 2, 3)), x


class ProjectedDiscriminator(nn.Module):
    """Frozen ``encoder`` + random CCM / CSM + trained heads: images ``(batch, 1, H, W)`` -> logits ``(batch,)``.

    Args:
        encoder: the frozen feature network (its stages' maps are read; its weights are never trained).
        config: the StyleGAN2 sizes (``image_size``, ``n_up`` for the base size, ``n_classes``); ``pack`` must be 1.
        proj_channels: channels of the random projections. head_channels: channels of the heads' convolutions.
        seed: seed of the fixed random projections.
        residual: also judge with a :class:`~course_lib.models.stylegan2.Discriminator` of ``config`` (trained
            from scratch) and add its logit.
    """

    def __init__(self, encoder: LoopEncoder, config: StyleGAN2Config, proj_channels: int = 64,
                 head_channels: int = 96, seed: int = 0, residual: bool = False) -> None:
        super().__init__()
        if config.pack != 1:
            raise ValueError(f"the projected discriminator judges one image at a time (pack=1), got pack={config.pack}")
        self.config = config
        self.features = encoder.eval().requires_grad_(False)
        g = torch.Generator().manual_seed(seed)
        stages = encoder.config.channels
        for k, c in enumerate(stages):  # CCM: fixed random 1x1 projections, unit gain
            self.register_buffer(f"ccm{k}", torch.randn(proj_channels, c, 1, 1, generator=g) / math.sqrt(c))
        base_h = config.image_size[0] // 2 ** config.n_up
        heads = []
        for k in range(len(stages)):
            h = config.image_size[0] // 2 ** (k + 1)
            downs = max(0, round(math.log2(max(1, h // base_h))))
            heads.append(_Head(proj_channels, head_channels, downs))
        self.heads = nn.ModuleList(heads)
        if config.n_classes > 0:
            self.class_embed = nn.ParameterList([nn.Parameter(torch.randn(config.n_classes, hd.channels))
                                                 for hd in heads])
            self.register_buffer("class_strength", torch.ones(()), persistent=False)
        self.residual = Discriminator(config) if residual else None
        self.register_buffer("projected_weight", torch.ones(()), persistent=False)

    def requires_grad_(self, requires_grad: bool = True) -> "ProjectedDiscriminator":
        super().requires_grad_(requires_grad)
        self.features.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "ProjectedDiscriminator":
        super().train(mode)
        self.features.eval()
        return self

    def projected(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The mixed feature maps, finest first: CCM of each stage plus the upsampled coarser ones (CSM)."""
        feats = self.features(image)
        maps = [F.conv2d(f, getattr(self, f"ccm{k}")) for k, f in enumerate(feats)]
        for k in range(len(maps) - 2, -1, -1):
            maps[k] = maps[k] + F.interpolate(maps[k + 1], size=maps[k].shape[2:], mode="bilinear",
                                              align_corners=False)
        return maps

    def forward(self, image: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if image.ndim != 4 or tuple(image.shape[1:]) != (1, *self.config.image_size):
            raise ValueError(f"image must be (batch, 1, {self.config.image_size[0]}, {self.config.image_size[1]}), "
                             f"got {tuple(image.shape)}")
        labels = check_labels(labels, self.config.n_classes, image.shape[0])
        logits = image.new_zeros(image.shape[0])
        weight = float(self.projected_weight)
        if weight == 0.0 and self.residual is not None:
            return self.residual(image, labels)
        for k, (head, x) in enumerate(zip(self.heads, self.projected(image))):
            logit, h = head(x)
            if labels is not None:
                pooled = h.mean(dim=(2, 3))
                e = self.class_embed[k][labels.to(h.device)]
                logit = logit + self.class_strength * (pooled * e).sum(1) / math.sqrt(pooled.shape[1])
            logits = logits + logit
        if weight != 1.0:
            logits = weight * logits
        if self.residual is not None:
            logits = logits + self.residual(image, labels)
        return logits
