"""Vocoders side by side: Griffin-Lim, MelGAN and the iSTFT vocoder on the same log-mels.

* :func:`compare_vocoders`: one call for Lesson 05 - log-mels ``(batch, 80, T)`` -> ``{name: audio (batch, T * hop)}``.
* :func:`held_out_loops`: the real held-out loops the grader's calibration uses (seed
  :data:`HELD_OUT_SEED`, shuffled with seed 0, first ``n``) and their loop log-mels (125 frames).

The vocoder's data card (FAD / IS with the grader's reference, speed) is measured by
:mod:`course_lib.metrics.vocoder_card`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, Union

import torch

from course_lib.data.config import COURSE_MEL
from course_lib.data.datasets import LoopDataset
from course_lib.models.istft_vocoder import load_istft_vocoder
from course_lib.models.melgan import griffin_lim_vocoder, load_melgan
from course_lib.spectral import MelConfig, log_mel

PathLike = Union[str, Path]
HELD_OUT_SEED = 2   # grading/demo.py and grading/calibrate.py: "real loops (held out)"
VOCODERS: tuple[str, ...] = ("griffin_lim", "melgan", "istft")

__all__ = ["HELD_OUT_SEED", "VOCODERS", "held_out_loops", "vocoder_functions", "compare_vocoders"]


def held_out_loops(n: int = 200, preset: str = "lecture") -> tuple[torch.Tensor, torch.Tensor]:
    """The grader's held-out real loops: audio ``(n, loop_samples)`` and log-mels ``(n, 80, loop_samples // hop)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    audio = LoopDataset(split="all", preset=preset, seed=HELD_OUT_SEED, precompute_mel=False).audio
    audio = audio[torch.randperm(audio.shape[0], generator=torch.Generator().manual_seed(0))][:n].float()
    frames = audio.shape[-1] // COURSE_MEL.hop
    mels = torch.cat([log_mel(audio[i:i + 50], COURSE_MEL)[..., :frames] for i in range(0, audio.shape[0], 50)])
    return audio, mels


def vocoder_functions(which: Sequence[str] = VOCODERS, periodic: bool = True, n_iter: int = 32,
                      istft_path: PathLike | None = None, melgan_path: PathLike | None = None,
                      device: torch.device | str | None = None) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """``{name: f}`` with ``f(log_mel (batch, 80, T)) -> audio (batch, T * hop)`` in [-1, 1] on the CPU.

    ``which``: any of ``"griffin_lim"`` (``n_iter`` iterations), ``"melgan"`` (shipped or ``melgan_path``),
    ``"istft"`` (shipped or ``istft_path``). ``periodic``: treat clips as loops (Griffin-Lim and iSTFT).
    """
    unknown = [w for w in which if w not in VOCODERS]
    if unknown:
        raise ValueError(f"which: unknown vocoder(s) {unknown}; choose from {VOCODERS}")
    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for name in which:
        if name == "griffin_lim":
            def gl(m: torch.Tensor) -> torch.Tensor:
                if periodic:
                    return griffin_lim_vocoder(m, n_iter=n_iter, periodic=True).cpu()
                # not a loop: repeat the last frame, as the iSTFT vocoder does, so T frames give T * hop samples
                padded = torch.cat([m, m[..., -1:]], dim=-1)
                return griffin_lim_vocoder(padded, n_iter=n_iter, periodic=False, length=m.shape[-1] * MelConfig().hop).cpu()
            out[name] = gl
        elif name == "melgan":
            mg = load_melgan(melgan_path, device=device)

            def f(m: torch.Tensor, mg=mg) -> torch.Tensor:
                with torch.no_grad():
                    return mg(m.to(next(mg.parameters()).device)).clamp(-1, 1).float().cpu()
            out[name] = f
        else:
            voc = load_istft_vocoder(istft_path, device=device)
            out[name] = lambda m, voc=voc: voc.vocode(m, periodic=periodic)
    return out


def compare_vocoders(log_mels: torch.Tensor, which: Sequence[str] = VOCODERS, periodic: bool = True,
                     n_iter: int = 32, batch_size: int = 16, device: torch.device | str | None = None,
                     **paths) -> dict[str, torch.Tensor]:
    """Vocode the same log-mels ``(batch, 80, T)`` (natural log) with each vocoder.

    Returns ``{name: audio (batch, T * hop)}`` float32 in [-1, 1]. ``paths``: ``istft_path`` /
    ``melgan_path`` to use other checkpoints than the shipped ones.
    """
    if not isinstance(log_mels, torch.Tensor) or log_mels.ndim not in (2, 3):
        raise ValueError(f"log_mels must be a tensor (batch, n_mels, frames), got "
                         f"{tuple(log_mels.shape) if isinstance(log_mels, torch.Tensor) else type(log_mels).__name__}")
    if log_mels.ndim == 2:
        log_mels = log_mels.unsqueeze(0)
    fns = vocoder_functions(which, periodic, n_iter, device=device, **paths)
    return {name: torch.cat([f(log_mels[i:i + batch_size]) for i in range(0, log_mels.shape[0], batch_size)])
            for name, f in fns.items()}
