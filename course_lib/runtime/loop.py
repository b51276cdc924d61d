"""A small, generic training loop: seeded batches, tqdm progress, gradient clipping, checkpoint and resume.

The loop knows nothing about the model: you pass ``batch_fn(step, generator)`` that returns a
batch and ``loss_fn(model, batch)`` that returns a scalar loss. The batch generator of step
``s`` is seeded from ``(seed, s)``, so a run resumed from a checkpoint at step ``s`` sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

import torch
from torch import nn

from course_lib.runtime.checkpoint import load_checkpoint, save_checkpoint

PathLike = Union[str, Path]


@dataclass
class TrainHistory:
    """What a run did: the loss of every step (``loss[i]`` is step ``i``) and the last completed step count."""

    loss: list[float] = field(default_factory=list)
    step: int = 0
    resumed_from: int = 0

    def smoothed(self, window: int = 20) -> float:
        """Mean loss of the last ``window`` steps (nan if no step ran)."""
        tail = self.loss[-window:]
        return sum(tail) / len(tail) if tail else math.nan


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The ``torch.Generator`` for the batch of ``step`` in a run seeded ``seed`` (independent of resumes)."""
    return torch.Generator(device=device).manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63 - 1))


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, batch_fn: Callable[[int, torch.Generator], Any],
        loss_fn: Callable[[nn.Module, Any], torch.Tensor], steps: int, *, seed: int = 0,
        checkpoint: PathLike | None = None, checkpoint_every: int = 0, resume: bool = True,
        config: dict | None = None, grad_clip: float | None = 1.0, progress: bool = True,
        desc: str = "train", log_every: int = 10,
        callback: Callable[[TrainHistory], bool | None] | None = None,
        lr_schedule: Callable[[int], float] | None = None) -> TrainHistory:
    """Train ``model`` for ``steps`` optimizer steps in total (counting steps done before a resume).

    Args:
        batch_fn: ``(step, generator) -> batch`` (already on the model's device).
        loss_fn: ``(model, batch) -> scalar loss tensor``.
        steps: total optimizer steps of the run.
        seed: seeds torch's global RNG (dropout etc.) and every step's batch generator.
        checkpoint: path of the checkpoint; with ``resume`` an existing file is loaded and the run
            continues from its step; saved every ``checkpoint_every`` steps (0 = only at the end).
        config: JSON-able dict stored in the checkpoint (model / data / training settings).
        grad_clip: max global gradient norm (None = no clipping).
        progress: tqdm bar with the running loss.
        callback: called with the history after every step (e.g. a live loss plot); it must not train.
            Returning True stops the run there (e.g. a time budget): the model is saved and returned.
        lr_schedule: ``step -> learning rate`` of that step, set on every parameter group before it (None =
            the optimizer's own). A function of the step alone, so a resumed run follows the same schedule.
    Returns the :class:`TrainHistory` (with the losses of earlier, resumed steps too).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
    history = TrainHistory()
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        ckpt = load_checkpoint(checkpoint, model, optimizer)
        history.step = history.resumed_from = int(ckpt["step"])
        history.loss = list(ckpt.get("history", {}).get("loss", []))[:history.step]
    torch.manual_seed(int(seed) + history.step)
    device = next(model.parameters()).device
    gen_device = device if device.type == "cuda" else torch.device("cpu")

    def save() -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, history.step, config, {"loss": history.loss})

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=history.step, desc=desc, unit="step", leave=False)
    model.train()
    try:
        while history.step < steps:
            if lr_schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = float(lr_schedule(history.step))
            batch = batch_fn(history.step, step_generator(seed, history.step, gen_device))
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise ValueError(f"loss became {loss.item()} at step {history.step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            history.loss.append(float(loss.detach()))
            history.step += 1
            if bar is not None:
                bar.update(1)
                if history.step % max(1, log_every) == 0:
                    bar.set_postfix(loss=f"{history.smoothed(log_every):.3f}")
            if checkpoint_every and history.step % checkpoint_every == 0:
                save()
            if callback is not None and callback(history):
                break
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    save()
    return history


def random_crops(clips: torch.Tensor, batch_size: int, crop: int, g: torch.Generator) -> torch.Tensor:
    """``batch_size`` random crops ``(batch_size, crop)`` of random rows of ``clips`` ``(N, samples)``, drawn from ``g``
    (rows first, then start samples), on ``clips``'s device."""
    idx = torch.randint(0, clips.shape[0], (batch_size,), generator=g)
    start = torch.randint(0, clips.shape[-1] - crop + 1, (batch_size,), generator=g)
    cols = start.unsqueeze(1) + torch.arange(crop).unsqueeze(0)
    return clips[idx.unsqueeze(1).to(clips.device), cols.to(clips.device)]


def time_budget(max_seconds: float | None, callback: Callable[["TrainHistory"], Any] | None = None
                ) -> Callable[["TrainHistory"], bool]:
    """A :func:`fit` callback that calls ``callback`` and stops once ``max_seconds`` of wall time have passed
    since it was made (None: never stops)."""
    began = time.perf_counter()

    def stop(history: "TrainHistory") -> bool:
        if callback is not None:
            callback(history)
        return max_seconds is not None and time.perf_counter() - began >= max_seconds

    return stop
