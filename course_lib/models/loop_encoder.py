"""A self-supervised encoder of loop mel images: the frozen feature network of a projected discriminator.

Projected GANs (Sauer et al., NeurIPS 2021; for loops Yeh et al., ISMIR 2022) judge images in the feature
space of a frozen, pretrained network: the discriminator starts from features that already tell a drum hit
from a smear, and learns in a fraction of the steps. The course may not borrow the network that grades HW2
(the loop classifier) nor one trained to imitate it, so this encoder learns its features *without labels*
from the training split alone, by SimCLR (Chen et al., ICML 2020): two random views of one loop (a circular
shift by whole 16th notes, a cut-out band, a gain change, a little noise) must map close together, and away
from the views of every other loop in the batch (:func:`nt_xent_loss`).

Shapes: images ``(batch, 1, n_mels, width)`` in about [-1, 1] (:class:`~course_lib.models.stylegan2.MelImageSpec`);
:meth:`LoopEncoder.forward` returns one feature map per stage, each ``(batch, channels[k], n_mels / 2**(k+1),
width / 2**(k+1))``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.models.stylegan2 import augment_loop_images
from course_lib.runtime.checkpoint import atomic_save, load_plain_checkpoint
from course_lib.runtime.model_card import read_model_card

PathLike = Union[str, Path]
ASSETS = Path(__file__).resolve().parent.parent / "assets"
ENCODER_ASSET = ASSETS / "loop_encoder.pt"
REBUILD_COMMAND = "python -m course_lib.train.loop_encoder --out course_lib/assets/loop_encoder.pt"

__all__ = ["LoopEncoderConfig", "LoopEncoder", "nt_xent_loss", "ssl_views", "save_loop_encoder",
           "load_loop_encoder", "ENCODER_ASSET"]


@dataclass(frozen=True)
class LoopEncoderConfig:
    """Sizes of a :class:`LoopEncoder`.

    Attributes:
        channels: feature channels of the stages; each stage halves height and width (a stride-2 3x3
            convolution, then a 3x3 one), so ``len(channels)`` stages give maps at 1/2, 1/4, ... of the image.
        proj_dim: size of the SimCLR projection head's output (used only while training the encoder).
        groups: GroupNorm groups (per-sample normalisation: the same features in training and eval mode).
    """

    channels: tuple[int, ...] = (32, 64, 128)
    proj_dim: int = 64
    groups: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if not self.channels or min(self.channels) < 1 or any(c % self.groups for c in self.channels):
            raise ValueError(f"channels must be positive multiples of groups={self.groups}, got {self.channels}")

    def to_dict(self) -> dict:
        return asdict(self)


class LoopEncoder(nn.Module):
    """Mel images ``(batch, 1, H, W)`` -> feature maps, one per stage (see the module docstring)."""

    def __init__(self, config: LoopEncoderConfig = LoopEncoderConfig()) -> None:
        super().__init__()
        self.config = config
        stages, c_in = [], 1
        for c in config.channels:
            stages.append(nn.Sequential(
                nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(config.groups, c), nn.LeakyReLU(0.2),
                nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(config.groups, c), nn.LeakyReLU(0.2)))
            c_in = c
        self.stages = nn.ModuleList(stages)
        c = config.channels[-1]
        self.head = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, config.proj_dim))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images must be (batch, 1, n_mels, width), got {tuple(images.shape)}")
        feats, x = [], images
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Global average of the last stage ``(batch, channels[-1])``."""
        return self(images)[-1].mean(dim=(2, 3))

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """The SimCLR projection ``(batch, proj_dim)``, unit length."""
        return F.normalize(self.head(self.embed(images)), dim=1)


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy for unit projections ``z1``, ``z2`` ``(batch, dim)``:
    row i of ``z1`` must pick row i of ``z2`` (and back) among the other ``2 * batch - 2`` views."""
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] < 2:
        raise ValueError(f"need two (batch >= 2, dim) projections of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}")
    b = z1.shape[0]
    z = torch.cat([z1, z2])
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def ssl_views(images: torch.Tensor, frames: int, generator: torch.Generator, gain: float = 0.15,
              noise: float = 0.03) -> torch.Tensor:
    """One random view of each loop image ``(batch, 1, H, W)``: circular shift by whole 16th notes and a cut-out
    band (:func:`~course_lib.models.stylegan2.augment_loop_images`), an offset of up to ``gain`` (image units,
    i.e. a level change) and Gaussian noise of std ``noise``; clamped to [-1, 1]."""
    x = augment_loop_images(images, ("shift", "cutout"), frames, generator)
    b = x.shape[0]
    offset = (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * gain
    eps = torch.randn(x.shape, generator=generator) * noise
    return (x + offset.to(x.device) + eps.to(x.device)).clamp(-1.0, 1.0)


def save_loop_encoder(model: LoopEncoder, path: PathLike, meta: dict | None = None) -> Path:
    """Write weights, config and ``meta`` (how it was trained) as a plain checkpoint."""
    path = Path(path)
    atomic_save({"kind": "loop_encoder", "config": model.config.to_dict(), "state_dict": model.state_dict(),
                 "meta": dict(meta or {})}, path)
    return path


def load_loop_encoder(path: PathLike | None = None, device: torch.device | str | None = None) -> LoopEncoder:
    """The encoder at ``path`` (default: the shipped ``assets/loop_encoder.pt``), in eval mode, frozen, with
    ``.meta`` (how it was trained) and ``.card`` (the data card ``.json`` beside the file, ``{}`` if none)."""
    path = Path(path) if path is not None else ENCODER_ASSET
    ckpt = load_plain_checkpoint(path, "loop_encoder", "loop encoder", REBUILD_COMMAND)
    model = LoopEncoder(LoopEncoderConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.meta, model.card = ckpt.get("meta", {}), read_model_card(path)
    return model.to(device or "cpu").eval().requires_grad_(False)
