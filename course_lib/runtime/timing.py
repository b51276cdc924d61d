"""Wall-clock timing that waits for the device: GPU work is asynchronous, so a timer must synchronise."""

from __future__ import annotations

import time
from typing import Union

import torch

Device = Union[str, torch.device, None]


def synchronize(device: Device = None) -> None:
    """Wait until every queued kernel on ``device`` has finished (a no-op on the CPU).

    ``None`` synchronises whatever accelerator is in use (CUDA if available, else Apple MPS).
    """
    dev = torch.device(device) if device is not None else None
    kind = dev.type if dev is not None else ("cuda" if torch.cuda.is_available() else "mps")
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(dev if dev is not None and dev.index is not None else None)
    elif kind == "mps" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.synchronize()


class Stopwatch:
    """``with Stopwatch(device) as sw: ...`` then ``sw.seconds``: the block's wall time in seconds,
    with the device synchronised on entry and exit (so queued GPU work is counted, and only it)."""

    def __init__(self, device: Device = None) -> None:
        self.device = device
        self.seconds = float("nan")
        self._start = 0.0

    def __enter__(self) -> "Stopwatch":
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
