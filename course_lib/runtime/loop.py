"""The course's one training loop, ``run_steps``, and the small seeded trainer ``fit`` built on it.

``run_steps`` owns what every trainer shares: the step counter (from a resumed step to the last one), the
progress bar, the wall-time budget (agreed by all processes under DDP), when a step logs, the per-step hook
that writes history, checkpoints, snapshots and exports, and early stops. A task brings only its step:
``train_step(step, log)`` does one optimizer step (or one critic + generator step) and returns its losses.
Every trainer of the course runs on it: ``fit`` (WaveNet, DDSP, the spectral autoencoder, RAVE-lite),
``course_lib.train.gan.train_gan`` (StyleGAN2, MelGAN), ``course_lib.train.gansynth.GANSynthTrainer``,
``course_lib.train.vocoder.train_vocoder`` and ``course_lib.metrics.train_classifier.fit``.

``fit`` knows nothing about the model: you pass ``batch_fn(step, generator)`` that returns a
batch and ``loss_fn(model, batch)`` that returns a scalar loss. The batch generator of step
``s`` is seeded from ``(seed, s)``, so a run resumed from a checkpoint at step ``s`` sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch
from torch import nn

from course_lib.runtime.checkpoint import load_checkpoint, save_checkpoint

PathLike = Union[str, Path]
StepLogs = Optional[Mapping[str, Any]]


@dataclass
class LoopRun:
    """What :func:`run_steps` did: the step count it started from and reached, its wall seconds, and why it
    stopped (``None``: every step ran; ``"time"``: the ``max_seconds`` budget; ``"hook"``: ``after_step``)."""

    start: int
    step: int
    seconds: float
    stopped_by: str | None = None


def run_steps(train_step: Callable[[int, bool], StepLogs], start: int, steps: int, *, log_every: int = 1,
              max_seconds: float | None = None, agree: Callable[[bool], bool] | None = None,
              after_step: Callable[[int, StepLogs], bool | None] | None = None,
              progress: bool = True, desc: str = "train",
              postfix: Callable[[int, StepLogs], Mapping[str, Any] | None] | None = None,
              bar_options: Mapping[str, Any] | None = None) -> LoopRun:
    """Run steps ``start .. steps - 1``: the one loop every course trainer uses.

    For each step: it is the last one when it is step ``steps - 1`` or when ``max_seconds`` of wall time have
    passed since the call began (a budget spent before a step starts makes that step the last, so every call
    with steps left makes at least one). ``agree(out_of_time)`` (DDP) returns the flag every process uses (rank
    0's).
    Then ``train_step(step, log)`` runs it, with ``log`` True on every ``log_every``-th step (counting steps
    done) and on the last; it returns the step's losses (or None). Then ``after_step(done, logs)`` with
    ``done = step + 1`` writes history, checkpoints, snapshots; returning True stops the run after it.

    Args:
        postfix: ``(done, logs) -> dict`` shown on the progress bar (None: leave it).
        bar_options: extra ``tqdm`` options (``unit``, ``leave``, ``mininterval``...).
    Returns a :class:`LoopRun` (``step`` = steps done when it returned).
    """
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    began = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc=desc, **dict(bar_options or {}))
    run = LoopRun(start=start, step=start, seconds=0.0)
    try:
        for step in range(start, steps):
            done = step + 1
            out_of_time = max_seconds is not None and time.perf_counter() - began >= max_seconds
            if agree is not None:
                out_of_time = agree(out_of_time)
            logs = train_step(step, done % log_every == 0 or done == steps or out_of_time)
            run.step = done
            stop = after_step(done, logs) if after_step is not None else False
            if bar is not None:
                bar.update(1)
                shown = postfix(done, logs) if postfix is not None else None
                if shown:
                    bar.set_postfix(shown)
            if out_of_time or stop:
                run.stopped_by = "time" if out_of_time else "hook"
                if bar is not None and out_of_time:
                    bar.set_description(f"{desc} (stopped after {max_seconds:g} s)")
                break
    finally:
        if bar is not None:
            bar.close()
    run.seconds = time.perf_counter() - began
    return run


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

    def train_step(step: int, log: bool) -> StepLogs:
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = float(lr_schedule(step))
        batch = batch_fn(step, step_generator(seed, step, gen_device))
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise ValueError(f"loss became {loss.item()} at step {step}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        history.loss.append(float(loss.detach()))
        history.step = step + 1
        return None

    def after_step(done: int, logs: StepLogs) -> bool:
        if checkpoint_every and done % checkpoint_every == 0:
            save()
        return bool(callback is not None and callback(history))

    def shown(done: int, logs: StepLogs) -> dict | None:
        return {"loss": f"{history.smoothed(log_every):.3f}"} if done % max(1, log_every) == 0 else None

    model.train()
    run_steps(train_step, history.step, steps, after_step=after_step, progress=progress, desc=desc, postfix=shown,
              bar_options={"unit": "step", "leave": False})
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
