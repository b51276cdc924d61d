"""What the HW2 notebook calls to train a loop generator and to generate the loops it hands in.

Thin, reproducible wrappers over :mod:`course_lib.train.gan` (StyleGAN2 on log-mel loop
images), :mod:`course_lib.models.stylegan2` and the vocoder (:mod:`course_lib.models.istft_vocoder`:
the shipped iSTFT vocoder when present, else Griffin-Lim; MelGAN on request). Loop ``i`` of a seed depends only on
``(seed, i)`` — its latent is drawn from its own generator and the noise inputs are the
generator's constant buffers — so regenerating 8 loops while grading reproduces the first 8
loops a student handed in, bit for bit up to 16-bit rounding.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.audio import peak_normalize
from course_lib.data.config import derive_seed
from course_lib.models import stylegan2 as sg
from course_lib.models import istft_vocoder as shipped_istft  # its ISTFT_VOCODER_ASSET is read at call time
from course_lib.models.istft_vocoder import REBUILD_COMMAND, load_istft_vocoder
from course_lib.models.melgan import VOCODER_ASSET, griffin_lim_vocoder, load_melgan
from course_lib.models.stylegan2 import Generator, ModulatedConv2d, balanced_labels, generate_mels, load_stylegan2
from course_lib.train import gan

PathLike = Union[str, Path]


def train_generator(checkpoint: PathLike, preset: str = "lecture", seed: int = 0, progress: bool = True, *,
                    modulated_conv2d: Callable, mapping_network: type, r1_penalty: Callable, **overrides) -> Path:
    """Train StyleGAN2 built from **your** HW2 parts with a :data:`course_lib.train.gan.PRESETS` preset.

    ``modulated_conv2d`` runs every modulated convolution of the generator, ``mapping_network`` (your
    class, called as ``mapping_network(z_dim=, w_dim=, n_layers=, lr_mul=)``) is its mapping network
    and ``r1_penalty`` regularises the discriminator; the rest is the course's StyleGAN2 and training
    loop. The course library's own implementations are refused (:class:`ValueError`).
    ``overrides`` are :class:`~course_lib.train.gan.GANConfig` fields (``steps=...``, ``max_seconds=...``).

    The EMA generator is saved in the course's format (:func:`~course_lib.models.stylegan2.save_generator`;
    your mapping network's weights, stored as the HW2 asks, ``(out, in)`` weights and ``(out,)`` biases in
    layer order, become the course's layers), so the grader regenerates loops from it with the course's
    architecture; ``meta["course_architecture_max_diff"]`` says how closely that reproduces your model
    (about 1e-6 when your parts are right). Returns the checkpoint path.
    """

    parts = _check_parts(modulated_conv2d, mapping_network, r1_penalty)
    cfg = gan.get_config("stylegan2", preset, seed=seed, progress=progress, **overrides)
    original = gan.build_task

    def build_task(config, device):
        task = original(config, device)
        if config.model == "stylegan2":
            _install_parts(task, *parts)
        return task

    gan.build_task = build_task  # train_gan builds its task through this module attribute
    try:
        result = gan.train_gan(cfg)
    finally:
        gan.build_task = original
    student_g = result.best_generator
    course_g = to_course_generator(student_g)
    meta = {"preset": preset, "seed": seed, "steps": result.steps_done, "seconds": round(result.seconds, 1),
            "course_architecture_max_diff": _max_diff(student_g, course_g)}
    if result.class_names:
        meta["class_names"] = list(result.class_names)
    if meta["course_architecture_max_diff"] > 1e-3:
        warnings.warn(f"your generator and the course's architecture with your weights differ by up to "
                      f"{meta['course_architecture_max_diff']:.3g}: the grader's loops come from the course's "
                      "architecture, so check modulated_conv2d and MappingNetwork against their tests")
    return sg.save_generator(course_g, result.spec, checkpoint, meta=meta)


def _check_parts(modulated_conv2d: Callable, mapping_network: type, r1_penalty: Callable) -> tuple:
    """Refuse what is not callable and what is the course library's own implementation."""

    for name, given, own in (("modulated_conv2d", modulated_conv2d, sg.modulated_conv2d),
                             ("mapping_network", mapping_network, sg.MappingNetwork),
                             ("r1_penalty", r1_penalty, sg.r1_penalty)):
        if not callable(given):
            raise TypeError(f"{name} must be your function / class from the notebook, got {type(given).__name__}")
        if given is own or (isinstance(given, type) and issubclass(given, own)) \
                or str(getattr(given, "__module__", "")).startswith("course_lib"):
            raise ValueError(f"{name}: pass your own implementation from the notebook, not course_lib's")
    return modulated_conv2d, mapping_network, r1_penalty


class StudentMapping(nn.Module):
    """A student's mapping network with the interface of :class:`~course_lib.models.stylegan2.MappingNetwork`
    (``z_dim``, ``w_dim``, the ``w_avg`` buffer and :meth:`update_w_avg`)."""

    def __init__(self, net: nn.Module, z_dim: int, w_dim: int) -> None:
        super().__init__()
        self.net, self.z_dim, self.w_dim = net, z_dim, w_dim
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, beta: float = 0.995) -> None:
        """``w_avg <- beta * w_avg + (1 - beta) * mean(w)``."""
        self.w_avg.copy_(torch.lerp(w.detach().mean(0).to(self.w_avg.dtype), self.w_avg, beta))


def _student_modconv_class():
    class StudentModulatedConv2d(ModulatedConv2d):
        """:class:`~course_lib.models.stylegan2.ModulatedConv2d` calling the student's ``modconv_fn``."""

        def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            if self.upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            return self.modconv_fn(x, self.weight * self.scale, self.affine(w), self.demodulate)

    return StudentModulatedConv2d


def use_student_parts(generator: nn.Module, modulated_conv2d: Callable, mapping_network: type) -> nn.Module:
    """Make a course :class:`~course_lib.models.stylegan2.Generator` run the student's parts (in place):
    every modulated convolution calls ``modulated_conv2d``, the mapping network is a fresh ``mapping_network``."""

    cls = _student_modconv_class()
    for module in generator.modules():
        if isinstance(module, ModulatedConv2d):
            module.__class__ = cls
            module.modconv_fn = modulated_conv2d
    c = generator.config
    net = mapping_network(z_dim=c.z_dim, w_dim=c.w_dim, n_layers=c.mapping_layers, lr_mul=c.mapping_lr_mul)
    generator.mapping_net = StudentMapping(net, c.z_dim, c.w_dim).to(generator.input.const.device)
    return generator


def _install_parts(task, modulated_conv2d: Callable, mapping_network: type, r1_penalty: Callable) -> None:
    """Put the student's parts into a fresh :class:`~course_lib.train.gan.StyleGAN2Task` (before any step)."""
    import types


    cfg = task.cfg
    use_student_parts(task.G, modulated_conv2d, mapping_network)
    task.G_ema = sg.make_ema(task.G) if cfg.ema_half_life > 0 else None
    task.opt_g = gan._lazy_adam(task.G.parameters(), cfg.lr_g, cfg.betas, cfg.pl_interval if cfg.pl_weight > 0 else 0)
    losses = types.SimpleNamespace(**vars(sg))  # the course's losses, with the student's R1 ...
    losses.r1_penalty = r1_penalty
    # ... and any generator the loop exports is saved in the course's format
    losses.save_generator = lambda g, spec, path, meta=None: sg.save_generator(to_course_generator(g), spec, path, meta)
    task.sg = losses


def to_course_generator(generator: nn.Module) -> nn.Module:
    """The course's :class:`~course_lib.models.stylegan2.Generator` with the weights of ``generator``
    (a generator with student parts: its mapping weights are the 2-D parameters, its biases the 1-D
    ones, in order). A course generator is returned unchanged. Raises :class:`ValueError` when the
    student's mapping network does not store one ``(out, in)`` weight and one ``(out,)`` bias per layer."""

    mapping = generator.mapping_net
    if not isinstance(mapping, StudentMapping):
        return generator
    c = generator.config
    params = list(mapping.net.parameters())
    weights, biases = [p for p in params if p.ndim == 2], [p for p in params if p.ndim == 1]
    dims = [c.z_dim] + [c.w_dim] * c.mapping_layers
    if [tuple(w.shape) for w in weights] != [(o, i) for i, o in zip(dims, dims[1:])] \
            or [tuple(b.shape) for b in biases] != [(c.w_dim,)] * c.mapping_layers or len(params) != 2 * c.mapping_layers:
        raise ValueError(f"MappingNetwork parameters {[tuple(p.shape) for p in params]}: expected an (out, in) weight "
                         f"and an (out,) bias per layer ({c.mapping_layers} layers), as the notebook asks")
    state = {k: v for k, v in generator.state_dict().items() if not k.startswith("mapping_net.")}
    for i, (w, b) in enumerate(zip(weights, biases)):
        state[f"mapping_net.layers.{i}.weight"] = w.detach()
        state[f"mapping_net.layers.{i}.bias"] = b.detach()
    state["mapping_net.w_avg"] = mapping.w_avg.detach()
    course = Generator(c)
    course.load_state_dict({k: v.cpu() for k, v in state.items()})
    return course.eval()


@torch.no_grad()
def _max_diff(a: nn.Module, b: nn.Module, n: int = 4) -> float:
    """Largest difference of the images two generators make from the same latents (constant noise)."""

    device = next(a.parameters()).device
    z = torch.randn(n, a.config.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    labels = balanced_labels(n, a.config.n_classes)
    cond = {} if labels is None else {"labels": labels.to(device)}
    ya, yb = a.eval()(z, noise_mode="const", **cond), b.to(device).eval()(z, noise_mode="const", **cond)
    b.cpu()
    return float((ya - yb).abs().max())


def loop_latents(n: int, z_dim: int, seed: int = 0) -> torch.Tensor:
    """Latents ``(n, z_dim)``: row ``i`` drawn from its own generator seeded by ``(seed, i)``."""
    rows = [torch.randn(z_dim, generator=torch.Generator().manual_seed(derive_seed("hw2-loop", seed, i)))
            for i in range(n)]
    return torch.stack(rows) if rows else torch.zeros(0, z_dim)


def loop_vocoder(vocoder: PathLike | str | None = None, device: torch.device | str | None = None,
                 loop_samples: int | None = None):
    """The function ``log_mel (batch, n_mels, frames) -> audio (batch, frames * hop)`` that turns loop mels into audio.

    ``vocoder``: ``None`` = the shipped iSTFT vocoder (``assets/istft_vocoder_loops.pt``; Griffin-Lim,
    32 iterations, with a warning if that file is missing), ``"istft"``, ``"melgan"`` (the shipped
    MelGAN of Lesson 05), ``"griffin_lim"``, or the path of an iSTFT-vocoder or MelGAN checkpoint
    (told apart by the file's ``kind``). Loops are vocoded as periodic clips.
    """
    def gl(mel: torch.Tensor) -> torch.Tensor:
        return griffin_lim_vocoder(mel, length=loop_samples)

    def melgan(path: Path):
        model = load_melgan(path, device=device)
        return lambda mel: model(mel)

    def istft(path: Path):
        model = load_istft_vocoder(path, device=device)
        return lambda mel: model.vocode(mel, periodic=True)

    asset = shipped_istft.ISTFT_VOCODER_ASSET
    if vocoder is None:
        if asset.is_file():
            return istft(asset)
        warnings.warn(f"{asset} is missing: vocoding with Griffin-Lim instead (much worse FAD); "
                      f"rebuild it with `{REBUILD_COMMAND}`", stacklevel=3)
        return gl
    if isinstance(vocoder, str) and vocoder in ("griffin_lim", "melgan", "istft"):
        return {"griffin_lim": lambda: gl, "melgan": lambda: melgan(VOCODER_ASSET),
                "istft": lambda: istft(asset)}[vocoder]()
    path = Path(vocoder)
    if not path.is_file():
        raise FileNotFoundError(f"vocoder: {path} is not a file (or use 'istft', 'melgan', 'griffin_lim')")
    kind = torch.load(path, map_location="cpu", weights_only=True).get("kind")
    if kind == "istft_vocoder":
        return istft(path)
    if kind == "melgan_generator":
        return melgan(path)
    raise ValueError(f"vocoder: {path} is neither an iSTFT vocoder nor a MelGAN checkpoint (kind={kind!r})")


def set_truncation_psi(checkpoint: PathLike, psi: float) -> Path:
    """Record the truncation ``psi`` the grader should generate with in ``meta["truncation_psi"]`` of a
    generator checkpoint (rewritten atomically). The grading policy clamps it to its documented range."""
    import os

    path = Path(checkpoint)
    if not 0.0 <= float(psi) <= 1.0:
        raise ValueError(f"truncation psi must be in [0, 1], got {psi}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("kind") != "stylegan2_generator":
        raise ValueError(f"{path}: not a StyleGAN2 generator checkpoint (kind={blob.get('kind')!r})")
    blob.setdefault("meta", {})["truncation_psi"] = float(psi)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


@torch.no_grad()
def generate_loops(checkpoint: PathLike, n: int, seed: int = 0, truncation_psi: float = 1.0,
                   vocoder: PathLike | str | None = None, batch_size: int = 16,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` loops ``(n, loop_samples)`` in [-1, 1] from a generator checkpoint, peak-normalised to 0.9.

    ``vocoder``: see :func:`loop_vocoder` (default: the shipped iSTFT vocoder, else Griffin-Lim with a warning).
    """

    generator = load_stylegan2(checkpoint, device=device)
    spec = generator.spec
    voc = loop_vocoder(vocoder, device=device, loop_samples=spec.loop_samples)
    # per-loop latents and the generator's constant noise: loop i depends only on (seed, i)
    mels = generate_mels(generator, spec, n, truncation_psi=truncation_psi, batch_size=batch_size,
                         noise_mode="const", z=loop_latents(n, generator.z_dim, seed), device=device)
    out = []
    for start in range(0, n, batch_size):
        audio = voc(mels[start:start + batch_size])
        if audio.ndim == 3:
            audio = audio[:, 0]
        out.append(audio[..., : spec.loop_samples].float().cpu())
    audio = torch.cat(out) if out else torch.zeros(0, spec.loop_samples)
    return peak_normalize(audio, 0.9).clamp(-1.0, 1.0)
