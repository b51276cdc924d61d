"""Distributed data parallel (DDP) plumbing for the course's training loops, via ``torch.distributed``.

Launch any training command under ``torchrun`` and it runs on every process::

    torchrun --nproc_per_node 2 -m course_lib.train stylegan2 --preset lecture      # 2 CPU processes (gloo)
    torchrun --nproc_per_node 4 -m course_lib.train stylegan2 --preset full         # 4 GPUs (nccl)

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them (or takes them explicitly, as the tests' spawned processes
do), picks ``nccl`` on CUDA and ``gloo`` otherwise, and gives each process its device. Models
are wrapped in :class:`torch.nn.parallel.DistributedDataParallel` (gradients averaged across
processes during ``backward``); data is split with :class:`torch.utils.data.DistributedSampler`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from course_lib.runtime.device import pick_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``local_rank`` and ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that logs, snapshots and writes checkpoints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | torch.device | None = None, backend: str | None = None,
                     rank: int | None = None, world_size: int | None = None,
                     init_method: str | None = None) -> DistInfo:
    """Join the process group if this process was launched as one of several (else a no-op).

    Args:
        device: ``None`` picks ``cuda:<local_rank>`` when CUDA is available, else CPU (``COURSE_DEVICE``
            and :func:`course_lib.train.device.pick_device` rules for a single process).
        backend: ``"gloo"`` / ``"nccl"`` (default: nccl on CUDA, gloo otherwise).
        rank, world_size: default from ``RANK`` / ``WORLD_SIZE`` (torchrun).
        init_method: e.g. ``"tcp://127.0.0.1:29511"`` or ``"file:///tmp/x"``; default ``env://``.
    Returns:
        :class:`DistInfo`.
    """
    world = int(world_size if world_size is not None else os.environ.get("WORLD_SIZE", 1))
    r = int(rank if rank is not None else os.environ.get("RANK", 0))
    local = int(os.environ.get("LOCAL_RANK", r))
    if world < 1 or not 0 <= r < world:
        raise ValueError(f"invalid rank {r} for world_size {world}")
    if world == 1:
        return DistInfo(0, 1, 0, pick_device(device))
    if device is None:
        dev = torch.device(f"cuda:{local % torch.cuda.device_count()}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    be = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(be, init_method=init_method or "env://", rank=r, world_size=world)
    return DistInfo(r, world, local, dev)


def cleanup() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` when distributed, else ``model`` itself."""
    if not info.distributed:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over all processes (a copy; unchanged when not distributed). For logging."""
    if not info.distributed:
        return value
    v = value.detach().clone()
    dist.all_reduce(v, op=dist.ReduceOp.SUM)
    return v / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when not distributed)."""
    if info.distributed:
        dist.barrier()


def _spawn_entry(rank: int, fn, world_size: int, init_method: str, backend: str, args: tuple) -> None:
    info = init_distributed(device="cpu", backend=backend, rank=rank, world_size=world_size, init_method=init_method)
    try:
        fn(info, *args)
    finally:
        cleanup()


def launch_local(fn, world_size: int, args: tuple = (), backend: str = "gloo") -> None:
    """Run ``fn(info, *args)`` in ``world_size`` local CPU processes joined in one process group.

    What ``torchrun --nproc_per_node N`` does for a script, for code that must start from Python
    (tests, notebooks): ``torch.multiprocessing.spawn`` plus a file rendezvous in a temporary folder.
    ``fn`` must be importable (a module-level function), as must ``args`` be picklable.
    """
    import tempfile

    import torch.multiprocessing as mp

    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_spawn_entry, args=(fn, world_size, f"file://{tmp}/rendezvous", backend, args),
                 nprocs=world_size, join=True)
