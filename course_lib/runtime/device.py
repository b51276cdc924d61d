"""Device choice, seeding and thread count for every lesson and training script."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``prefer`` if given (checked), else ``COURSE_DEVICE``, else CUDA, else CPU.

    ``COURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) forces any device, e.g. ``cpu`` to
    reproduce a CPU run on a GPU machine. Apple MPS is never chosen automatically: the course has not
    been run on a Mac GPU. What is known: MPS has no float64 or complex128; the synthesis, TSM and
    spectral code keeps float64 on the CPU and passes the CPU device guard
    (``tests/test_device_guard.py``), but the models, metrics and lessons have not been checked on
    MPS. ``COURSE_DEVICE=mps`` opts in.
    """
    choice = prefer if prefer is not None else os.environ.get("COURSE_DEVICE")
    if choice is not None:
        dev = torch.device(choice)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {choice!r} requested but CUDA is not available on this machine")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {choice!r} requested but Apple MPS is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); returns a CPU ``torch.Generator`` seeded alike."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count (``None``: ``COURSE_THREADS`` or all cores); returns it."""
    if n is None:
        env = os.environ.get("COURSE_THREADS")
        n = int(env) if env else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n
