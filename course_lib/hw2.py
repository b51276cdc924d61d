"""What the HW2 notebook calls to train a loop generator and to generate the loops it hands in.

Thin, reproducible wrappers over :mod:`course_lib.train.gan` (StyleGAN2 on log-mel loop
images), :mod:`course_lib.models.stylegan2` and the vocoder (:mod:`course_lib.models.istft_vocoder`:
the shipped iSTFT vocoder when present, else Griffin-Lim; MelGAN on request). Loop ``i`` of a seed depends only on
``(seed, i)`` — its latent is drawn from its own generator and the noise inputs are the
generator's constant buffers — so regenerating 8 loops while grading reproduces the first 8
loops a student handed in, bit for bit up to 16-bit rounding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from course_lib.data.config import derive_seed

PathLike = Union[str, Path]


def train_generator(checkpoint: PathLike, preset: str = "lecture", seed: int = 0, progress: bool = True,
                    **overrides) -> Path:
    """Train StyleGAN2 with a :data:`course_lib.train.gan.PRESETS` preset and save its EMA generator.

    ``overrides`` are :class:`~course_lib.train.gan.GANConfig` fields (``steps=...``, ``max_seconds=...``).
    Returns the checkpoint path (a generator file for :func:`generate_loops`).
    """
    from course_lib.models.stylegan2 import save_generator
    from course_lib.train.gan import get_config, train_gan

    cfg = get_config("stylegan2", preset, seed=seed, progress=progress, **overrides)
    result = train_gan(cfg)
    meta = {"preset": preset, "seed": seed, "steps": result.steps_done, "seconds": round(result.seconds, 1)}
    return save_generator(result.best_generator, result.spec, checkpoint, meta=meta)


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
    import warnings

    from course_lib.models.istft_vocoder import ISTFT_VOCODER_ASSET, REBUILD_COMMAND, load_istft_vocoder
    from course_lib.models.melgan import VOCODER_ASSET, griffin_lim_vocoder, load_vocoder

    def gl(mel: torch.Tensor) -> torch.Tensor:
        return griffin_lim_vocoder(mel, length=loop_samples)

    def melgan(path: Path):
        model, _ = load_vocoder(path, device=device)
        return lambda mel: model(mel)

    def istft(path: Path):
        model = load_istft_vocoder(path, device=device)
        return lambda mel: model.vocode(mel, periodic=True)

    if vocoder is None:
        if ISTFT_VOCODER_ASSET.is_file():
            return istft(ISTFT_VOCODER_ASSET)
        warnings.warn(f"{ISTFT_VOCODER_ASSET} is missing: vocoding with Griffin-Lim instead (much worse FAD); "
                      f"rebuild it with `{REBUILD_COMMAND}`", stacklevel=3)
        return gl
    if isinstance(vocoder, str) and vocoder in ("griffin_lim", "melgan", "istft"):
        return {"griffin_lim": lambda: gl, "melgan": lambda: melgan(VOCODER_ASSET),
                "istft": lambda: istft(ISTFT_VOCODER_ASSET)}[vocoder]()
    path = Path(vocoder)
    if not path.is_file():
        raise FileNotFoundError(f"vocoder: {path} is not a file (or use 'istft', 'melgan', 'griffin_lim')")
    kind = torch.load(path, map_location="cpu", weights_only=True).get("kind")
    if kind == "istft_vocoder":
        return istft(path)
    if kind == "melgan_generator":
        return melgan(path)
    raise ValueError(f"vocoder: {path} is neither an iSTFT vocoder nor a MelGAN checkpoint (kind={kind!r})")


@torch.no_grad()
def generate_loops(checkpoint: PathLike, n: int, seed: int = 0, truncation_psi: float = 1.0,
                   vocoder: PathLike | str | None = None, batch_size: int = 16,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` loops ``(n, loop_samples)`` in [-1, 1] from a generator checkpoint, peak-normalised to 0.9.

    ``vocoder``: see :func:`loop_vocoder` (default: the shipped iSTFT vocoder, else Griffin-Lim with a warning).
    """
    from course_lib.audio import peak_normalize
    from course_lib.models.stylegan2 import generate_mels, load_generator

    generator, spec = load_generator(checkpoint, device=device)
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
