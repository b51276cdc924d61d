"""One GAN training loop for StyleGAN2 (log-mel loop images) and MelGAN (the vocoder).

``train_gan(GANConfig(model="stylegan2", preset="fast"))`` trains on the synthetic loop set
(or on audio you pass) and returns a :class:`TrainResult`. The loop is the same for both
models; what differs lives in a small *task* object (:class:`StyleGAN2Task`, :class:`MelGANTask`)
with a discriminator step and a generator step that each compute a loss and call ``backward``.
The steps run on the course's one loop, :func:`course_lib.runtime.loop.run_steps` (step counter, progress,
time budget, per-step hooks); this module adds what GANs share around it.

Around that loop it provides: presets (``fast`` for tests / FAST lessons, ``lecture`` for minutes on a laptop
CPU, ``full`` for a GPU), seeding, a tqdm bar, a loss history, an exponential moving average of the
generator, periodic snapshots (figure + audio) and checkpoints with resume, and data-parallel
training under ``torchrun`` (DDP; :mod:`course_lib.train.ddp`).

Reproducibility across process counts: every random tensor of a step (latents, noise, crops) is
drawn for the *global* batch from a generator seeded by ``(seed, step, phase)`` and each process
keeps its samples (positions ``rank::world_size``, the same interleaving as ``DistributedSampler``).
So N processes with batch B follow the same trajectory as one process with batch N * B (up to
floating-point summation order), which the tests check.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from course_lib.audio import save
from course_lib.data.config import COURSE_MEL, derive_seed
from course_lib.data.datasets import LoopDataset
from course_lib.models import melgan as mg
from course_lib.models import stylegan2 as sg
from course_lib.models.loop_encoder import load_loop_encoder
from course_lib.models.melgan import griffin_lim_vocoder
from course_lib.models.projected_d import ProjectedDiscriminator
from course_lib.models.stylegan2 import ema_beta, ema_update, make_ema
from course_lib.runtime.checkpoint import load_checkpoint, save_checkpoint
from course_lib.runtime.device import set_threads
from course_lib.runtime.loop import run_steps
from course_lib.spectral import MelConfig, log_mel
from course_lib.train import ddp

PathLike = Union[str, Path]
MODELS: tuple[str, ...] = ("stylegan2", "melgan")
PRESET_NAMES: tuple[str, ...] = ("fast", "lecture", "full")

__all__ = ["GANConfig", "PRESETS", "get_config", "BatchRandom", "StyleGAN2Task", "MelGANTask", "build_task",
           "TrainResult", "train_gan", "train_worker", "load_training_data", "same_label_packs",
           "class_pair_distances"]


@dataclass
class GANConfig:
    """Everything one GAN training run needs (sizes in samples / frames, learning rates, intervals in steps).

    Generic: ``model`` (``"stylegan2"`` or ``"melgan"``), ``preset``, ``steps``, ``batch_size`` (per
    process), ``lr_g``, ``lr_d``, ``betas``, ``seed``, ``ema_half_life`` (in training images; 0 = no EMA),
    ``data_preset`` / ``data_seed`` (synthetic loop set), ``mel`` (log-mel settings, default the
    course's), ``loop_samples``, ``out_dir`` (checkpoints, snapshots, history; None = nothing written),
    ``log_every``, ``snapshot_every``, ``checkpoint_every`` (0 = only at the end), ``export_steps``
    (steps after which the exported model is also written as ``generator_<step>.pt``: the points of a
    quality-versus-compute curve), ``resume``,
    ``max_seconds`` (stop early after this wall time), ``progress``, ``device``, ``threads``.

    ``arch``: keyword arguments of :class:`~course_lib.models.stylegan2.StyleGAN2Config` or
    :class:`~course_lib.models.melgan.MelGANConfig`.

    StyleGAN2: ``r1_gamma`` and ``r1_interval`` (lazy R1), ``pl_weight`` / ``pl_interval`` (path
    length; 0 = off), ``mixing_prob``, ``g_loss`` (``"nonsaturating"`` or ``"saturating"``), ``image_width``.
    MelGAN: ``segment`` (samples per training crop, a multiple of the hop), ``fm_weight``,
    ``stft_weight``, ``adv_start`` (steps of MR-STFT-only warm-up before the discriminator joins).

    The history (one row every ``log_every`` steps, averaged over processes) holds ``d_loss``,
    ``g_loss``, ``g_grad`` (L2 norm of the generator's gradient), and ``d_real`` / ``d_fake`` / ``r1`` /
    ``pl`` (StyleGAN2) or ``stft`` / ``fm`` (MelGAN).

    ``ema_rampup``: when > 0, the EMA half-life is ``min(ema_half_life, ema_rampup * images seen)``
    (StyleGAN2-ADA), so that a short run's average is not dominated by the random initial weights.

    ``augment`` (StyleGAN2): DiffAugment policy, names from
    :data:`~course_lib.models.stylegan2.AUGMENTATIONS` applied to the images the discriminator sees, each transform
    to an image with probability ``augment_p`` (1: every image; then the circular shift leaks, see
    :func:`~course_lib.models.stylegan2.augment_loop_images`).

    Variety within a class (conditional StyleGAN2): ``mode_seeking`` weighs the mode-seeking term of MSGAN
    (Mao et al., CVPR 2019, off in every preset: see the StyleGAN2 card for what it did): the batch's two halves
    share their labels, noise inputs and mixing latents, and the generator is rewarded for images that differ
    as much as their latents z do (with independent noise it learned to make pairs differ by louder noise).
    ``mode_seeking_until`` > 0 switches the weight to ``mode_seeking_late`` at that step (0: the term and the
    pairing end): it helps most before the styles are learned and pulls the images apart once they are.

    ``variety_floor`` (conditional StyleGAN2; 0 = off, 1 in the lecture preset) weighs a floor on the variety
    inside a class: the batch is paired as for ``mode_seeking`` (same labels, noise and mixing latents, different
    z) and the generator pays ``relu(1 - d(a, b) / d_real[c])`` per pair, where ``d`` is the mean absolute pixel
    difference of the two images (clamped to [-1, 1]) and ``d_real[c]`` that of two real training images of the class
    (:func:`class_pair_distances`). Unlike mode seeking, which rewards any difference however large, the term is 0
    once a pair differs as much as real loops of its style do: it asks for the data's variety, not for more (the
    history logs ``variety``, the pairs' mean distance over the real one; the StyleGAN2 card has the runs).
    ``variety_pool`` > 1 measures both distances on images average-pooled by that factor in both axes, so that
    fine texture (speckle, a noisy floor) cannot pay for the variety; what is left is level, brightness and rhythm.

    Transitional conditioning (after Shahbazi et al., ICLR 2022, "Collapse by conditioning": class-conditional GANs on
    little data lose the variety within a class, unconditional ones keep it): with ``cond_end`` > 0 the class
    offsets of the generator and the projection term of the discriminator are scaled by
    ``clamp((step - cond_start) / (cond_end - cond_start), 0, 1)``: the run starts unconditional and the styles
    are brought in from ``cond_start`` to ``cond_end``. 0 (every preset): conditional from the first step. On the
    course's loops it did not keep the variety (the StyleGAN2 card has the runs).

    PacGAN (``arch pack`` = m > 1, Lin et al., NeurIPS 2018): the discriminator judges m images of one style at
    once (:func:`same_label_packs` for the reals, fakes drawn m to a label), so a generator that plays one loop per
    style is told apart by the likeness of a pack's images; a batch of ``batch_size`` images makes
    ``batch_size / m`` judgements, and R1 is taken per judgement.

    ``clamp_fakes`` (StyleGAN2): the discriminator judges generated images clamped to [-1, 1], the range of real
    loop images and of what :func:`~course_lib.models.stylegan2.generate_mels` hands out. A quarter of a real loop
    image sits exactly on the mel floor (-1, silence); unclamped, the generator's silences wander below it and the
    discriminator can tell a fake by any pixel under -1, however good the loop. False (every preset): the raw
    images; on the lecture preset the clamp helped at 500 steps and not after (the StyleGAN2 card has the runs).

    Projected discriminator (StyleGAN2; Sauer et al., NeurIPS 2021): ``d_encoder`` names a frozen
    :class:`~course_lib.models.loop_encoder.LoopEncoder` checkpoint (``"shipped"``: ``assets/loop_encoder.pt``,
    self-supervised on the training split) whose feature maps the discriminator reads
    (:class:`~course_lib.models.projected_d.ProjectedDiscriminator`); ``""``: StyleGAN2's residual discriminator.
    ``d_residual`` (with ``d_encoder``): the residual discriminator judges beside the projected heads (logits summed).
    ``d_projected_until`` > 0 (with ``d_residual``): the projected heads judge only the start of the run; their
    weight falls linearly from 1 at that step to 0 at ``d_projected_until + d_projected_fade``, from where the
    residual discriminator judges alone (and a step costs what the plain recipe's does). 0: the whole run.

    Learning-rate decay (both networks): with ``lr_decay_start`` > 0 the learning rates fall linearly from their
    value at that step to ``lr_final`` times it at the last step (:func:`lr_multiplier`); 0: constant.
    """

    model: str = "stylegan2"
    preset: str = "fast"
    steps: int = 20
    batch_size: int = 4
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    seed: int = 0
    ema_half_life: float = 200.0
    ema_rampup: float = 0.0
    data_preset: str = "fast"
    data_seed: int = 0
    mel: dict = field(default_factory=COURSE_MEL.to_dict)
    loop_samples: int = 32_000
    out_dir: str | None = None
    log_every: int = 10
    snapshot_every: int = 0
    checkpoint_every: int = 0
    export_steps: tuple[int, ...] = ()
    resume: bool = True
    max_seconds: float | None = None
    progress: bool = True
    device: str | None = None
    threads: int | None = None
    arch: dict = field(default_factory=dict)
    # StyleGAN2
    r1_gamma: float = 1.0
    r1_interval: int = 4
    pl_weight: float = 0.0
    pl_interval: int = 4
    mixing_prob: float = 0.9
    g_loss: str = "nonsaturating"
    image_width: int = 128
    augment: tuple[str, ...] = ()
    augment_p: float = 1.0
    mode_seeking: float = 0.0
    mode_seeking_until: int = 0
    mode_seeking_late: float = 0.0
    variety_floor: float = 0.0
    variety_pool: int = 1
    cond_start: int = 0
    cond_end: int = 0
    lr_decay_start: int = 0
    lr_final: float = 1.0
    clamp_fakes: bool = False
    d_encoder: str = ""
    d_residual: bool = False
    d_projected_until: int = 0
    d_projected_fade: int = 0
    # MelGAN
    segment: int = 4096
    fm_weight: float = 10.0
    stft_weight: float = 2.5
    adv_start: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if self.mode_seeking < 0:
            raise ValueError(f"mode_seeking must be >= 0, got {self.mode_seeking}")
        if self.variety_floor < 0:
            raise ValueError(f"variety_floor must be >= 0, got {self.variety_floor}")
        if self.variety_pool < 1:
            raise ValueError(f"variety_pool must be >= 1 (1 = pixels), got {self.variety_pool}")
        if self.mode_seeking_late < 0:
            raise ValueError(f"mode_seeking_late must be >= 0, got {self.mode_seeking_late}")
        if self.mode_seeking_until < 0:
            raise ValueError(f"mode_seeking_until must be >= 0 (0 = the whole run), got {self.mode_seeking_until}")
        if self.cond_start < 0 or self.cond_end < 0 or (self.cond_end > 0 and self.cond_end < self.cond_start):
            raise ValueError(f"need 0 <= cond_start <= cond_end (0 = conditional from the start), got "
                             f"cond_start={self.cond_start}, cond_end={self.cond_end}")
        if self.lr_decay_start < 0 or not 0.0 <= self.lr_final <= 1.0:
            raise ValueError(f"need lr_decay_start >= 0 and 0 <= lr_final <= 1, got {self.lr_decay_start}, {self.lr_final}")
        if self.d_residual and not self.d_encoder:
            raise ValueError("d_residual keeps the residual discriminator beside a projected one: it needs d_encoder")
        if self.d_projected_until < 0 or self.d_projected_fade < 0:
            raise ValueError(f"d_projected_until and d_projected_fade must be >= 0, got {self.d_projected_until}, "
                             f"{self.d_projected_fade}")
        if self.d_projected_fade > 0 and self.d_projected_until == 0:
            raise ValueError(f"d_projected_fade={self.d_projected_fade} fades the projected heads out from step "
                             f"d_projected_until, which is 0 (never): set d_projected_until > 0 too")
        if (self.d_projected_until > 0 or self.d_projected_fade > 0) and not self.d_residual:
            raise ValueError("d_projected_until / d_projected_fade switch the projected heads off part-way: the "
                             "residual discriminator must judge beside them (d_residual=True)")
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"augment_p must be in [0, 1], got {self.augment_p}")
        if self.g_loss not in ("nonsaturating", "saturating"):
            raise ValueError(f"g_loss must be 'nonsaturating' or 'saturating', got {self.g_loss!r}")
        self.betas = tuple(self.betas)
        if isinstance(self.augment, str):  # "shift,cutout" from a command line
            self.augment = tuple(a.strip() for a in self.augment.split(",") if a.strip())
        self.augment = tuple(self.augment)
        self.export_steps = tuple(int(k) for k in self.export_steps)

    @property
    def mel_config(self) -> MelConfig:
        return MelConfig(**self.mel)

    def to_dict(self) -> dict:
        return asdict(self)


# Presets: "fast" runs in seconds (tests, COURSE_FAST lessons); "lecture" is the scaled-down LoopTest
# recipe for a laptop CPU (minutes); "full" is the reference-sized run for a GPU.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "stylegan2": {
        "fast": dict(steps=20, batch_size=4, arch=dict(channels=(16, 16, 16, 8, 8), z_dim=32, w_dim=32,
                                                     mapping_layers=2), ema_half_life=100.0, r1_interval=4),
        # ~26 min on 2 quiet CPU cores (0.73-0.79 s/step measured): small-data GAN practice on a laptop budget
        # (DiffAugment, lazy R1, EMA ramp-up, little style mixing, class-conditional); see the card.
        # class-conditional (the 11 loop styles): the unconditional recipe collapsed onto a few styles in 30 min
        # augment_p 0.5: with every image rolled the 16th shift leaked and the loops left the downbeat
        # variety_floor on 8x8-pooled images: without it the loops of a style collapsed onto each other
        "lecture": dict(steps=2000, batch_size=16, data_preset="lecture", lr_g=2.5e-3, lr_d=2.5e-3,
                        arch=dict(channels=(96, 96, 48, 24, 12), z_dim=128, w_dim=128, mapping_layers=2,
                                  n_classes=11),
                        ema_half_life=5000.0, ema_rampup=0.05, r1_gamma=1.0, r1_interval=16, mixing_prob=0.25,
                        augment=("shift", "cutout"), augment_p=0.5, variety_floor=1.0, variety_pool=8,
                        log_every=25, snapshot_every=275,
                        checkpoint_every=250, export_steps=(500, 1000, 1500)),
        "full": dict(steps=100_000, batch_size=16, data_preset="full", lr_g=2e-3, lr_d=2e-3,
                     arch=dict(channels=(256, 256, 256, 128, 64), z_dim=256, w_dim=256, mapping_layers=8,
                               n_classes=11),
                     ema_half_life=10_000.0, r1_gamma=0.5, r1_interval=16, pl_weight=2.0, log_every=100,
                     snapshot_every=2000, checkpoint_every=2000),
    },
    "melgan": {
        "fast": dict(steps=20, batch_size=4, lr_g=1e-3, lr_d=2e-4, betas=(0.5, 0.9), segment=4096, ema_half_life=0.0,
                     arch=dict(channels=32, disc_channels=8, disc_max_channels=64, disc_downsamples=3)),
        "lecture": dict(steps=3000, batch_size=8, lr_g=5e-4, lr_d=2e-4, betas=(0.5, 0.9), segment=8192,
                        data_preset="lecture", adv_start=1000, ema_half_life=0.0, log_every=25,
                        snapshot_every=500, checkpoint_every=500,
                        arch=dict(channels=128, disc_channels=16, disc_max_channels=256)),
        "full": dict(steps=200_000, batch_size=16, lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.9), segment=8192,
                     data_preset="full", adv_start=20_000, ema_half_life=0.0, log_every=100,
                     snapshot_every=5000, checkpoint_every=5000, arch=dict(channels=512)),
    },
}


def get_config(model: str = "stylegan2", preset: str = "fast", **overrides: Any) -> GANConfig:
    """The :class:`GANConfig` of a model's preset, with ``overrides`` (any field; ``arch`` is merged)."""
    if model not in PRESETS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if preset not in PRESETS[model]:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    names = {f.name for f in fields(GANConfig)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"unknown GANConfig field(s) {bad}")
    base = dict(PRESETS[model][preset])
    arch = {**base.pop("arch", {}), **overrides.pop("arch", {})}
    return GANConfig(model=model, preset=preset, **{**base, **overrides, "arch": arch})


# --------------------------------------------------------------------------- per-step randomness

class BatchRandom:
    """Random tensors for one phase of one step, drawn for the global batch and sliced to this process.

    ``randn(*shape)`` -> ``(local_batch, *shape)``: the rows ``rank::world_size`` of a
    ``(local_batch * world_size, *shape)`` draw from a CPU generator seeded by ``(seed, step, phase)``.
    ``uniform()`` gives one number shared by all processes.
    """

    def __init__(self, seed: int, step: int, phase: str, info: ddp.DistInfo, local_batch: int) -> None:
        self.g = torch.Generator().manual_seed(derive_seed(seed, step, phase))
        self.info, self.local_batch, self.device = info, local_batch, info.device

    def _slice(self, full: torch.Tensor) -> torch.Tensor:
        return full[self.info.rank::self.info.world_size].to(self.device)

    def randn(self, *shape: int) -> torch.Tensor:
        return self._slice(torch.randn(self.local_batch * self.info.world_size, *shape, generator=self.g))

    def randint(self, high: int) -> torch.Tensor:
        """Integers in ``[0, high)``, ``(local_batch,)``."""
        return self._slice(torch.randint(0, max(1, high), (self.local_batch * self.info.world_size,), generator=self.g))

    def uniform(self) -> float:
        return float(torch.rand((), generator=self.g))

    def integer(self, low: int, high: int) -> int:
        """One integer in ``[low, high)``, shared by all processes."""
        return int(torch.randint(low, high, (), generator=self.g))


def lr_multiplier(cfg: GANConfig, step: int) -> float:
    """Factor on the learning rates at ``step`` (0-based): 1 before ``cfg.lr_decay_start`` (or always, when it is
    0), then linear down to ``cfg.lr_final`` at the last step ``cfg.steps - 1``."""
    start = cfg.lr_decay_start
    if start == 0 or step < start or cfg.steps - 1 <= start:
        return 1.0
    frac = min(1.0, (step - start) / (cfg.steps - 1 - start))
    return 1.0 - (1.0 - cfg.lr_final) * frac


def _set_learning_rates(optimizers: Sequence[torch.optim.Optimizer], factor: float) -> None:
    """Each param group's lr = its starting lr (kept as ``base_lr``, saved with the optimizer) times ``factor``."""
    for opt in optimizers:
        for group in opt.param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = group["base_lr"] * factor


def same_label_packs(idx: torch.Tensor, labels: torch.Tensor | None, pack: int, generator: torch.Generator,
                     n_items: int) -> torch.Tensor:
    """Rows of real packs for a PacGAN discriminator: every ``pack``-th row of ``idx`` ``(batch,)`` (the sampler's
    shuffled order) is kept as a pack's first image and followed by ``pack - 1`` other training rows of the same
    label, drawn with ``generator`` (any other row when ``labels`` is None: an unconditional model).

    Returns ``(batch,)`` rows of the training set (``n_items`` rows, labels ``(n_items,)``): rows ``m*i ..
    m*i + m - 1`` share a label. A label with one training item repeats it.
    """
    if pack == 1:
        return idx
    anchors = idx[::pack].cpu()
    labels = None if labels is None else labels.cpu()
    out = []
    for a in anchors.tolist():
        pool = torch.arange(n_items) if labels is None else torch.nonzero(labels == labels[a]).flatten()
        others = pool[pool != a] if pool.numel() > 1 else pool
        pick = torch.randint(0, others.numel(), (pack - 1,), generator=generator)
        out.append(torch.cat([torch.tensor([a]), others[pick]]))
    return torch.cat(out).to(idx.device)


def pooled(images: torch.Tensor, pool: int) -> torch.Tensor:
    """``(N, C, H, W)`` images average-pooled by ``pool`` in both axes (``pool`` = 1: unchanged; ragged edges dropped)."""
    return images if pool == 1 else F.avg_pool2d(images, pool)


def class_pair_distances(images: torch.Tensor, labels: torch.Tensor, n_classes: int, pool: int = 1) -> torch.Tensor:
    """``(n_classes,)``: per class, the mean absolute pixel difference between two distinct images of it.

    ``images`` ``(N, C, H, W)``, ``labels`` ``(N,)``; every class needs at least two images (``ValueError``);
    ``pool``: measured on :func:`pooled` images.
    """
    flat = pooled(images.float(), pool).reshape(images.shape[0], -1)
    out = torch.empty(n_classes)
    for c in range(n_classes):
        x = flat[labels.to(flat.device) == c]
        if x.shape[0] < 2:
            raise ValueError(f"class {c} has {x.shape[0]} training image(s): variety_floor needs two or more per class")
        d = torch.cdist(x, x, p=1.0) / x.shape[1]
        out[c] = d.sum() / (x.shape[0] * (x.shape[0] - 1))
    return out


# --------------------------------------------------------------------------- tasks

def _lazy_adam(params, lr: float, betas: tuple[float, float], interval: int) -> torch.optim.Adam:
    """Adam with StyleGAN2's correction for a regulariser applied every ``interval`` steps."""
    c = interval / (interval + 1) if interval > 0 else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c))


class StyleGAN2Task:
    """StyleGAN2 on log-mel images: logistic D loss + lazy R1, non-saturating G loss (+ path length), mixing."""

    def __init__(self, cfg: GANConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.spec = sg.MelImageSpec(mel=cfg.mel_config, loop_samples=cfg.loop_samples, width=cfg.image_width)
        self.arch = sg.StyleGAN2Config(**{"image_size": self.spec.size, **cfg.arch})
        torch.manual_seed(cfg.seed)
        self.G = sg.Generator(self.arch).to(device)
        self.D = self._discriminator().to(device)
        self.G_ema = sg.make_ema(self.G) if cfg.ema_half_life > 0 else None
        self.opt_g = _lazy_adam(self.G.parameters(), cfg.lr_g, cfg.betas, cfg.pl_interval if cfg.pl_weight > 0 else 0)
        trained_d = [p for p in self.D.parameters() if p.requires_grad]  # not a projected D's frozen encoder
        self.opt_d = _lazy_adam(trained_d, cfg.lr_d, cfg.betas, cfg.r1_interval if cfg.r1_gamma > 0 else 0)
        self.pl_mean = torch.zeros((), device=device)
        self.sg = sg
        self.class_labels: torch.Tensor | None = None  # the training set's labels (conditional models)
        self.class_names: list[str] | None = None
        self.real_pair_distance: torch.Tensor | None = None  # (n_classes,) for variety_floor, from the training set
        pairing = [name for name, weight in (("mode_seeking", max(cfg.mode_seeking, cfg.mode_seeking_late)),
                                             ("variety_floor", cfg.variety_floor)) if weight > 0]
        for name in pairing:
            if not self.conditional:
                raise ValueError(f"{name} needs a class-conditional StyleGAN2 (arch n_classes > 0)")
            if cfg.batch_size % 2:
                raise ValueError(f"{name} pairs the two halves of a batch: batch_size must be even, got {cfg.batch_size}")
        if self.arch.pack > 1 and cfg.batch_size % self.arch.pack:
            raise ValueError(f"the discriminator judges packs of {self.arch.pack} images (arch pack): batch_size "
                             f"must be a multiple of it, got {cfg.batch_size}")
        if self.arch.pack > 1 and pairing:
            raise ValueError(f"{pairing[0]} pairs a batch's halves and arch pack groups its neighbours: use one of them")
        if cfg.cond_end > 0 and not self.conditional:
            raise ValueError("cond_start / cond_end ramp the class conditioning in: they need a class-conditional "
                             "StyleGAN2 (arch n_classes > 0)")

    def _discriminator(self) -> nn.Module:
        """StyleGAN2's residual discriminator, or a projected one on the frozen encoder ``cfg.d_encoder``."""
        if not self.cfg.d_encoder:
            return sg.Discriminator(self.arch)
        path = None if self.cfg.d_encoder == "shipped" else self.cfg.d_encoder
        return ProjectedDiscriminator(load_loop_encoder(path), self.arch, seed=self.cfg.seed,
                                      residual=self.cfg.d_residual)

    @property
    def conditional(self) -> bool:
        return self.arch.n_classes > 0

    def set_labels(self, labels: torch.Tensor | None) -> None:
        """Give a conditional task the training labels ``(N,)``: fakes are drawn with the data's class frequencies
        (an unconditional task ignores them)."""
        if not self.conditional:
            return
        if labels is None:
            raise ValueError(f"a conditional StyleGAN2 (n_classes={self.arch.n_classes}) needs the training labels")
        self.class_labels = self.sg.check_labels(labels, self.arch.n_classes, labels.shape[0]).to(self.device)

    def set_real_variety(self, images: torch.Tensor) -> None:
        """With ``cfg.variety_floor`` > 0: measure :func:`class_pair_distances` of the training images
        ``(N, 1, n_mels, width)`` (labels from :meth:`set_labels`); otherwise nothing to do."""
        if self.cfg.variety_floor > 0:
            self.real_pair_distance = class_pair_distances(images, self.class_labels, self.arch.n_classes,
                                                           self.cfg.variety_pool).to(self.device)

    def variety_floor_loss(self, fakes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For pairs ``(i, i + batch/2)`` of one class: ``(mean relu(1 - ratio), mean ratio)`` with ratio = the pair's
        mean absolute pixel difference (images clamped to [-1, 1], :func:`pooled` by ``cfg.variety_pool``) over
        ``real_pair_distance`` of its class."""
        if self.real_pair_distance is None:
            raise RuntimeError("variety_floor needs the real pair distances: call set_real_variety(images) first")
        h = fakes.shape[0] // 2
        x = pooled(fakes.clamp(-1.0, 1.0), self.cfg.variety_pool)
        ratio = (x[:h] - x[h:2 * h]).abs().mean(dim=(1, 2, 3)) / self.real_pair_distance[labels[:h]]
        return torch.relu(1.0 - ratio).mean(), ratio.mean()

    def _split(self, reals) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch is images, or ``(images, labels)`` for a conditional model."""
        return (reals[0], reals[1]) if isinstance(reals, (tuple, list)) else (reals, None)

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        """Loops ``(N, loop_samples)`` -> images ``(N, 1, n_mels, width)``."""
        return self.spec.audio_to_image(audio)

    def mode_seeking_weight(self, step: int) -> float:
        """Weight of the mode-seeking term at ``step`` (0-based): ``mode_seeking`` before ``mode_seeking_until``,
        ``mode_seeking_late`` from then on."""
        until = self.cfg.mode_seeking_until
        return self.cfg.mode_seeking if until == 0 or step < until else self.cfg.mode_seeking_late

    def class_strength(self, step: int) -> float:
        """Weight of the class conditioning at ``step`` (0-based): 1 unless ``cond_end`` > 0, then a linear ramp
        from 0 at ``cond_start`` to 1 at ``cond_end``."""
        start, end = self.cfg.cond_start, self.cfg.cond_end
        if end == 0:
            return 1.0
        if end == start:
            return 1.0 if step >= end else 0.0
        return min(1.0, max(0.0, (step - start) / (end - start)))

    def _set_class_strength(self, G: nn.Module, D: nn.Module, step: int) -> float:
        """Write :meth:`class_strength` into the generator's and discriminator's buffers (the EMA copies it)."""
        lam = self.class_strength(step)
        if self.conditional:
            for net in (ddp.unwrap(G), ddp.unwrap(D)):
                for m in net.modules():  # a projected discriminator holds a residual one with its own
                    if hasattr(m, "class_strength"):
                        m.class_strength.fill_(lam)
        return lam

    def projected_weight(self, step: int) -> float:
        """Weight of a projected discriminator's heads at ``step`` (0-based): 1 unless ``d_projected_until`` > 0,
        then 1 before it, a linear fade over ``d_projected_fade`` steps, 0 after."""
        until, fade = self.cfg.d_projected_until, self.cfg.d_projected_fade
        if until == 0 or step < until:
            return 1.0
        if fade == 0:
            return 0.0
        return max(0.0, 1.0 - (step - until) / fade)

    def _set_projected_weight(self, D: nn.Module, step: int) -> None:
        """Write :meth:`projected_weight` into a projected discriminator's buffer (no-op for the residual one)."""
        d = ddp.unwrap(D)
        if hasattr(d, "projected_weight"):
            d.projected_weight.fill_(self.projected_weight(step))

    def _latents(self, rnd: BatchRandom, G: nn.Module, step: int) -> dict:
        g = ddp.unwrap(G)
        paired = self.mode_seeking_weight(step) > 0 or self.cfg.variety_floor > 0
        z = rnd.randn(g.z_dim)
        z2 = rnd.randn(g.z_dim)
        noise = [rnd.randn(1, h, w) for h, w in g.noise_sizes()]
        mix = rnd.uniform() < self.cfg.mixing_prob
        cutoff = rnd.integer(1, g.num_ws) if mix else g.num_ws
        if paired:  # pairs (i, i + batch/2) differ only in z: no credit for louder noise
            h = z.shape[0] // 2
            noise = [n[:h].repeat(2, 1, 1, 1) for n in noise]
            z2 = z2[:h].repeat(2, 1)
        out = dict(z=z, noise=noise, mix_z=z2, mix_cutoff=cutoff)
        if self.conditional:
            labels = self.class_labels[rnd.randint(self.class_labels.shape[0]).to(self.device)]
            b = labels.shape[0]
            if paired:  # the two halves of the batch share their labels
                labels = labels[: b // 2].repeat(2)
            m = self.arch.pack
            if m > 1:  # the images of a discriminator pack share their label
                labels = labels[::m].repeat_interleave(m)
            out["labels"] = labels
        return out

    def pack_indices(self, idx: torch.Tensor, n_items: int, rnd: BatchRandom) -> torch.Tensor:
        """Training rows for one batch of real packs (PacGAN, ``arch pack`` = m): :func:`same_label_packs` of
        the sampler's rows ``idx`` ``(batch,)``."""
        return same_label_packs(idx, self.class_labels, self.arch.pack, rnd.g, n_items)

    def mode_seeking_loss(self, fakes: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """MSGAN's term for pairs ``(i, i + batch/2)`` (same labels): mean of ``|z_a - z_b| / |G(z_a) - G(z_b)|``
        (mean absolute differences); small when images differ as much as their latents."""
        h = fakes.shape[0] // 2
        d_img = (fakes[:h] - fakes[h:2 * h]).abs().mean(dim=(1, 2, 3))
        d_z = (z[:h] - z[h:2 * h]).abs().mean(dim=1)
        return (d_z / (d_img + 1e-5)).mean()

    def judged(self, fakes: torch.Tensor) -> torch.Tensor:
        """Generated images as the discriminator sees them (before augmentation): clamped to [-1, 1] with
        ``cfg.clamp_fakes``, else unchanged."""
        return fakes.clamp(-1.0, 1.0) if self.cfg.clamp_fakes else fakes

    def _augment(self, images: torch.Tensor, rnd: BatchRandom) -> torch.Tensor:
        """The DiffAugment policy ``cfg.augment`` (identity when empty), random draws from ``rnd``."""
        if not self.cfg.augment:
            return images
        return self.sg.augment_loop_images(images, self.cfg.augment, self.spec.frames, rnd.g,
                                           rank=rnd.info.rank, world_size=rnd.info.world_size,
                                           p=self.cfg.augment_p)

    def d_step(self, G: nn.Module, D: nn.Module, reals: torch.Tensor, step: int, rnd: BatchRandom) -> dict:
        """Discriminator loss (+ lazy R1 every ``r1_interval`` steps) and its backward; returns logs."""
        reals, real_labels = self._split(reals)
        lam = self._set_class_strength(G, D, step)
        self._set_projected_weight(D, step)
        lat = self._latents(rnd, G, step)
        with torch.no_grad():
            fakes = self._augment(self.judged(ddp.unwrap(G)(**lat)), rnd)
        do_r1 = self.cfg.r1_gamma > 0 and step % self.cfg.r1_interval == 0
        real_in = self._augment(reals.detach(), rnd).detach().requires_grad_(do_r1)
        cond_real = {} if real_labels is None else {"labels": real_labels}
        cond_fake = {k: v for k, v in lat.items() if k == "labels"}
        real_logits = D(real_in, **cond_real)
        fake_logits = D(fakes, **cond_fake)
        loss = self.sg.d_logistic_loss(real_logits, fake_logits)
        logs = {"d_loss": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        if self.cfg.cond_end > 0:
            logs["cond"] = torch.tensor(lam)
        if do_r1:
            r1 = self.sg.r1_penalty(real_in, real_logits)
            loss = loss + self.cfg.r1_gamma / 2 * r1 * self.cfg.r1_interval
            logs["r1"] = r1.detach()
        loss.backward()
        return logs

    def g_step(self, G: nn.Module, D: nn.Module, reals: torch.Tensor, step: int, rnd: BatchRandom) -> dict:
        """Generator loss (+ path length every ``pl_interval`` steps) through a frozen D; backward; returns logs."""
        Dm = ddp.unwrap(D)
        Dm.requires_grad_(False)
        try:
            self._set_class_strength(G, D, step)
            self._set_projected_weight(D, step)
            lat = self._latents(rnd, G, step)
            fakes, ws = G(**lat, return_ws=True)
            cond = {k: v for k, v in lat.items() if k == "labels"}
            logits = Dm(self._augment(self.judged(fakes), rnd), **cond)
            loss_fn = self.sg.g_nonsaturating_loss if self.cfg.g_loss == "nonsaturating" else self.sg.g_saturating_loss
            loss = loss_fn(logits)
            logs = {"g_loss": loss.detach()}
            ms_weight = self.mode_seeking_weight(step)
            if ms_weight > 0:
                ms = self.mode_seeking_loss(fakes, lat["z"])
                loss = loss + ms_weight * ms
                logs["ms"] = ms.detach()
            if self.cfg.variety_floor > 0:
                floor, ratio = self.variety_floor_loss(fakes, lat["labels"])
                loss = loss + self.cfg.variety_floor * floor
                logs["variety"] = ratio.detach()
            if self.cfg.pl_weight > 0 and step % self.cfg.pl_interval == 0:
                pl_noise = rnd.randn(*fakes.shape[1:])
                pen, self.pl_mean = self.sg.path_length_penalty(fakes, ws, self.pl_mean, noise=pl_noise)
                loss = loss + self.cfg.pl_weight * self.cfg.pl_interval * pen
                logs["pl"] = pen.detach()
            loss.backward()
            g = ddp.unwrap(G)
            g.mapping_net.update_w_avg(g.unconditioned_w(ws.detach(), lat.get("labels")), g.config.w_avg_beta)
        finally:
            Dm.requires_grad_(True)
        return logs

    def extra_state(self) -> dict:
        return {"pl_mean": self.pl_mean.cpu()}

    def load_extra_state(self, state: dict) -> None:
        self.pl_mean = state.get("pl_mean", torch.zeros(())).to(self.device)

    def export(self, path: Path, meta: dict) -> Path:
        g = self.G_ema if self.G_ema is not None else self.G
        if self.conditional and self.class_names:
            meta = {**meta, "class_names": list(self.class_names)}
        return self.sg.save_generator(g, self.spec, path, meta)

    @torch.no_grad()
    def snapshot(self, folder: Path, step: int) -> None:
        """A mel grid figure and two Griffin-Lim-vocoded loops of the current (EMA) generator."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        g = (self.G_ema if self.G_ema is not None else self.G).eval()
        mels = self.sg.generate_mels(g, self.spec, 8, seed=1234, noise_mode="const").cpu()  # classes 0..7 if conditional
        fig, axes = plt.subplots(2, 4, figsize=(12, 4))
        for ax, m in zip(axes.flat, mels):
            ax.imshow(m.numpy(), origin="lower", aspect="auto", vmin=self.spec.lo, vmax=self.spec.hi)
            ax.axis("off")
        fig.suptitle(f"step {step}")
        fig.savefig(folder / f"mels_{step:07d}.png", dpi=80)
        plt.close(fig)
        audio = griffin_lim_vocoder(mels[:2], self.spec.mel, self.spec.loop_samples, n_iter=16)
        for i, a in enumerate(audio):
            save(folder / f"loop_{step:07d}_{i}.wav", a, self.spec.mel.sr)
        self.G.train()


class MelGANTask:
    """MelGAN: hinge loss of a multi-scale D, feature matching and multi-resolution STFT loss on random crops."""

    def __init__(self, cfg: GANConfig, device: torch.device) -> None:
        self.cfg, self.device, self.mg = cfg, device, mg
        self.mel = cfg.mel_config
        self.arch = mg.MelGANConfig(**{"n_mels": self.mel.n_mels, **cfg.arch})
        if self.arch.hop != self.mel.hop:
            raise ValueError(f"MelGAN ratios {self.arch.ratios} give hop {self.arch.hop}, but the mel hop is {self.mel.hop}")
        if cfg.segment % self.mel.hop or cfg.segment > cfg.loop_samples:
            raise ValueError(f"segment={cfg.segment} must be a multiple of the hop ({self.mel.hop}) and <= loop_samples")
        torch.manual_seed(cfg.seed)
        self.G = mg.MelGANGenerator(self.arch).to(device)
        self.D = mg.MultiScaleDiscriminator(self.arch).to(device)

        self.G_ema = make_ema(self.G) if cfg.ema_half_life > 0 else None
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas)

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        """Loops ``(N, samples)`` stay audio; crops are taken per step."""
        return audio.float()

    def crops(self, audio: torch.Tensor, rnd: BatchRandom) -> tuple[torch.Tensor, torch.Tensor]:
        """Random ``segment``-sample crops ``(B, segment)`` and their log-mels ``(B, n_mels, segment // hop)``."""
        seg = self.cfg.segment
        start = rnd.randint(audio.shape[-1] - seg + 1)
        idx = start.unsqueeze(1) + torch.arange(seg, device=audio.device)
        x = torch.gather(audio, 1, idx)
        return x, log_mel(x, self.mel)[..., : seg // self.mel.hop]

    def d_step(self, G: nn.Module, D: nn.Module, audio: torch.Tensor, step: int, rnd: BatchRandom) -> dict:
        self._batch = self.crops(audio, rnd)
        if step < self.cfg.adv_start:
            return {}
        x, m = self._batch
        with torch.no_grad():
            fake = ddp.unwrap(G)(m)
        loss = self.mg.d_hinge_loss(D(x), D(fake))
        loss.backward()
        return {"d_loss": loss.detach()}

    def g_step(self, G: nn.Module, D: nn.Module, audio: torch.Tensor, step: int, rnd: BatchRandom) -> dict:
        x, m = self._batch
        fake = G(m)
        stft = self.mg.multi_resolution_stft_loss(fake, x)
        loss = self.cfg.stft_weight * stft
        logs = {"stft": stft.detach()}
        if step >= self.cfg.adv_start:
            Dm = ddp.unwrap(D)
            Dm.requires_grad_(False)
            try:
                with torch.no_grad():
                    real_feats = Dm(x)
                fake_feats = Dm(fake)
                adv = self.mg.g_hinge_loss(fake_feats)
                fm = self.mg.feature_matching_loss(real_feats, fake_feats)
                loss = loss + adv + self.cfg.fm_weight * fm
                logs.update(g_loss=adv.detach(), fm=fm.detach())
            finally:
                Dm.requires_grad_(True)
        loss.backward()
        return logs

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def export(self, path: Path, meta: dict) -> Path:
        g = self.G_ema if self.G_ema is not None else self.G
        return self.mg.save_vocoder(g, path, self.mel, meta)

    @torch.no_grad()
    def snapshot(self, folder: Path, step: int) -> None:
        """Vocodes the first training loop's mel and writes it (and the original)."""

        if getattr(self, "_snap_clip", None) is None:
            return
        g = (self.G_ema if self.G_ema is not None else self.G).eval()
        y = g(log_mel(self._snap_clip, self.mel)[..., : self._snap_clip.shape[-1] // self.mel.hop])
        save(folder / f"vocoded_{step:07d}.wav", y[0].clamp(-1, 1), self.mel.sr)
        self.G.train()


def build_task(cfg: GANConfig, device: torch.device) -> StyleGAN2Task | MelGANTask:
    """The task object (models, optimizers, steps) for ``cfg.model``."""
    return StyleGAN2Task(cfg, device) if cfg.model == "stylegan2" else MelGANTask(cfg, device)


# --------------------------------------------------------------------------- loop

@dataclass
class TrainResult:
    """What :func:`train_gan` returns: the trained models, the loss history and where files went."""

    generator: nn.Module
    discriminator: nn.Module
    ema: nn.Module | None
    history: list[dict]
    config: GANConfig
    steps_done: int
    seconds: float
    out_dir: Path | None
    spec: Any = None
    class_names: list[str] | None = None  # a class-conditional StyleGAN2's label names (label i = class_names[i])

    @property
    def best_generator(self) -> nn.Module:
        """The EMA generator if kept, else the raw one (eval mode)."""
        return (self.ema if self.ema is not None else self.generator).eval()


def load_training_data(cfg: GANConfig) -> torch.Tensor:
    """The training split of the synthetic loop set of ``cfg.data_preset`` as audio ``(N, loop_samples)``."""
    return load_training_set(cfg)[0]


def load_training_set(cfg: GANConfig) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The training split of the synthetic loop set: audio ``(N, loop_samples)``, labels ``(N,)``, class names."""
    ds = LoopDataset(split="train", preset=cfg.data_preset, seed=cfg.data_seed, sr=cfg.mel_config.sr,
                     precompute_mel=False)
    return ds.audio[:, : cfg.loop_samples].float(), ds.labels.long(), list(ds.class_names)


def _checkpoint_path(out_dir: Path) -> Path:
    return out_dir / "checkpoint.pt"


def _save_checkpoint(path: Path, task, step: int, history: list[dict], cfg: GANConfig) -> None:
    """The course checkpoint format (:mod:`course_lib.train.checkpoint`): G and its optimizer as the model,
    D, its optimizer, the EMA and running means in ``extra``."""

    extra = {"D": {k: v.detach().cpu() for k, v in task.D.state_dict().items()}, "opt_d": task.opt_d.state_dict(),
             "G_ema": task.G_ema.state_dict() if task.G_ema is not None else None, **task.extra_state()}
    save_checkpoint(path, task.G, task.opt_g, step=step, config=cfg.to_dict(), history={"rows": history}, extra=extra)


def _load_checkpoint(path: Path, task, device: torch.device) -> tuple[int, list[dict]]:
    state = load_checkpoint(path, task.G, task.opt_g, map_location=device)
    extra = state["extra"]
    task.D.load_state_dict(extra["D"])
    task.opt_d.load_state_dict(extra["opt_d"])
    if task.G_ema is not None and extra.get("G_ema") is not None:
        task.G_ema.load_state_dict(extra["G_ema"])
    task.load_extra_state(extra)
    return int(state["step"]), list(state.get("history", {}).get("rows", []))


def _scalar(v: torch.Tensor | float) -> float:
    return float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float(v)


def _export_meta(cfg: GANConfig, step: int, history: list[dict], info: ddp.DistInfo) -> dict:
    """What an exported model records about its run: steps, training seconds (summed over resumed
    sessions, from the history), preset, batch, processes and threads."""
    seconds = _training_seconds(history)
    return {"steps": step, "seconds": round(seconds, 1), "preset": cfg.preset, "world_size": info.world_size,
            "batch_size": cfg.batch_size, "threads": torch.get_num_threads()}


def _training_seconds(history: list[dict]) -> float:
    """Wall seconds of training in ``history`` (each resumed session restarts its clock: sum the sessions)."""
    total, last = 0.0, 0.0
    for row in history:
        t = float(row.get("seconds", 0.0))
        if t < last:
            total += last
        last = t
    return total + last


def train_gan(cfg: GANConfig, data: torch.Tensor | None = None, info: ddp.DistInfo | None = None,
              labels: torch.Tensor | None = None) -> TrainResult:
    """Train a StyleGAN2 or MelGAN with ``cfg``; data-parallel when launched by ``torchrun``.

    Args:
        cfg: the run's settings (:func:`get_config` builds one from a preset).
        data: training loops ``(N, loop_samples)`` at ``cfg.mel["sr"]`` Hz (default: the synthetic
            loop set's training split for ``cfg.data_preset``).
        info: distributed setup (default: :func:`course_lib.train.ddp.init_distributed`, which reads
            torchrun's environment and is a no-op for a single process).
        labels: class labels ``(N,)`` of ``data`` for a class-conditional StyleGAN2 (``arch["n_classes"]`` > 0;
            default with ``data=None``: the synthetic set's labels); other models ignore them.
    Returns:
        :class:`TrainResult`. With ``cfg.out_dir`` set, rank 0 also writes ``checkpoint.pt`` (resumed
        from when present and ``cfg.resume``), ``history.json``, ``generator.pt`` (the exported
        model) and ``snapshots/``.
    """
    info = info or ddp.init_distributed(cfg.device)
    if cfg.threads is not None or info.distributed:
        set_threads(cfg.threads or max(1, (os.cpu_count() or 1) // info.world_size))
    dev = info.device
    class_names = None
    if data is None:
        data, labels, class_names = load_training_set(cfg)  # labels: used by a conditional StyleGAN2 only
    if data.ndim != 2 or data.shape[-1] < cfg.loop_samples:
        raise ValueError(f"data must be loops (N, >= {cfg.loop_samples}) samples, got {tuple(data.shape)}")
    if labels is not None and tuple(labels.shape) != (data.shape[0],):
        raise ValueError(f"labels must be ({data.shape[0]},) (one per loop), got {tuple(labels.shape)}")
    data = data[:, : cfg.loop_samples]
    task = build_task(cfg, dev)
    if cfg.model == "stylegan2":
        task.set_labels(labels)
        task.class_names = class_names
    dataset = task.prepare(data).to(dev)
    if cfg.model == "stylegan2":
        task.set_real_variety(dataset)
    label_set = task.class_labels if cfg.model == "stylegan2" else None
    n = dataset.shape[0]
    sampler = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    per_epoch = len(sampler) // cfg.batch_size
    if per_epoch < 1:
        raise ValueError(f"{n} training items are fewer than one global batch "
                         f"({cfg.batch_size} x {info.world_size} processes)")
    if cfg.model == "melgan":
        task._snap_clip = data[:1].to(dev)

    out_dir = Path(cfg.out_dir) if cfg.out_dir else None
    start, history = 0, []
    if out_dir is not None:
        if cfg.resume and _checkpoint_path(out_dir).is_file():
            start, history = _load_checkpoint(_checkpoint_path(out_dir), task, dev)
        if info.is_main:
            (out_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    G, D = ddp.wrap(task.G, info), ddp.wrap(task.D, info)
    global_batch = cfg.batch_size * info.world_size
    beta = ema_beta(global_batch, cfg.ema_half_life)

    def train_step(step: int, log: bool) -> dict | None:
        nonlocal beta, epoch, order
        e, j = divmod(step, per_epoch)
        if e != epoch:
            sampler.set_epoch(e)
            order, epoch = torch.tensor(list(sampler), device=dev), e
        idx = order[j * cfg.batch_size:(j + 1) * cfg.batch_size]
        if cfg.model == "stylegan2" and task.arch.pack > 1:  # PacGAN: real packs of one label
            idx = task.pack_indices(idx, n, BatchRandom(cfg.seed, step, "pack", info, cfg.batch_size))
        batch = dataset[idx] if label_set is None else (dataset[idx], label_set[idx])
        if cfg.lr_decay_start > 0:
            _set_learning_rates((task.opt_d, task.opt_g), lr_multiplier(cfg, step))

        task.opt_d.zero_grad(set_to_none=True)
        logs = task.d_step(G, D, batch, step, BatchRandom(cfg.seed, step, "d", info, cfg.batch_size))
        if logs:
            task.opt_d.step()
        task.opt_g.zero_grad(set_to_none=True)
        logs.update(task.g_step(G, D, batch, step, BatchRandom(cfg.seed, step, "g", info, cfg.batch_size)))
        if log:  # how much signal G gets (vanishing gradients)
            logs["g_grad"] = torch.sqrt(sum(p.grad.square().sum() for p in task.G.parameters() if p.grad is not None))
        task.opt_g.step()
        if task.G_ema is not None:
            if cfg.ema_rampup > 0:
                beta = ema_beta(global_batch, min(cfg.ema_half_life, cfg.ema_rampup * (step + 1) * global_batch))
            ema_update(task.G_ema, task.G, beta)
        if cfg.model == "stylegan2" and info.distributed:  # keep the running means identical on every rank
            task.pl_mean = ddp.all_reduce_mean(task.pl_mean, info)
            w_avg = task.G.mapping_net.w_avg
            w_avg.copy_(ddp.all_reduce_mean(w_avg, info))
        return logs if log else None

    def agree(stop: bool) -> bool:  # rank 0's clock decides for everyone
        if not info.distributed:
            return stop
        flag = torch.tensor(float(stop), device=dev)
        torch.distributed.broadcast(flag, 0)
        return bool(flag.item())

    def after_step(done: int, logs: dict | None) -> bool:
        if logs is not None:
            row = {"step": done, "seconds": round(time.perf_counter() - t0, 3)}
            row.update({k: _scalar(ddp.all_reduce_mean(v, info)) for k, v in sorted(logs.items())})
            history.append(row)
        if out_dir is not None and info.is_main:
            if cfg.snapshot_every and done % cfg.snapshot_every == 0:
                task.snapshot(out_dir / "snapshots", done)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                _save_checkpoint(_checkpoint_path(out_dir), task, done, history, cfg)
                (out_dir / "history.json").write_text(json.dumps(history, indent=1))
            if done in cfg.export_steps:
                task.export(out_dir / f"generator_{done:07d}.pt", _export_meta(cfg, done, history, info))
        return False

    def shown(done: int, logs: dict | None) -> dict | None:
        if logs is None:
            return None
        return {k: f"{v:.3g}" for k, v in history[-1].items() if k not in ("step", "seconds")}

    t0 = time.perf_counter()
    epoch, order = None, None
    run = run_steps(train_step, start, cfg.steps, log_every=cfg.log_every,
                    max_seconds=cfg.max_seconds, agree=agree if cfg.max_seconds is not None else None,
                    after_step=after_step, progress=cfg.progress and info.is_main, desc=cfg.model, postfix=shown)
    step = run.step if run.stopped_by else cfg.steps
    seconds = run.seconds
    if out_dir is not None and info.is_main:
        _save_checkpoint(_checkpoint_path(out_dir), task, step, history, cfg)
        (out_dir / "history.json").write_text(json.dumps(history, indent=1))
        task.export(out_dir / "generator.pt", _export_meta(cfg, step, history, info))
    ddp.barrier(info)
    return TrainResult(generator=task.G, discriminator=task.D, ema=task.G_ema, history=history, config=cfg,
                       steps_done=step, seconds=seconds, out_dir=out_dir,
                       spec=task.spec if cfg.model == "stylegan2" else task.mel,
                       class_names=getattr(task, "class_names", None) if cfg.model == "stylegan2" and task.conditional
                       else None)


def train_worker(info: ddp.DistInfo, cfg: GANConfig, data: torch.Tensor, result_dir: str) -> None:
    """Entry point for :func:`course_lib.train.ddp.launch_local`: train, then save this rank's
    ``{"G", "D", "history"}`` to ``<result_dir>/rank<r>.pt`` (for tests and the lesson's DDP demo)."""
    res = train_gan(cfg, data=data, info=info)
    torch.save({"G": res.generator.state_dict(), "D": res.discriminator.state_dict(), "history": res.history},
               Path(result_dir) / f"rank{info.rank}.pt")
