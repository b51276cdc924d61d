"""Shared timing helpers of the benchmarks: median of repeated runs, paired ratios, machine load.

The course's machine is shared, so one run can be slowed by a neighbour's job. Every benchmark
therefore times each candidate several times and reports the median; a ratio between two
candidates is measured on *interleaved* runs (ours, baseline, ours, baseline, ...) so that a load
spike hits both sides, and the median of the per-pair ratios is reported beside the ratio of the
medians.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from typing import Callable

import torch


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize()


def run_times(fn: Callable[[], object], repeats: int, *, warmup: int = 1,
              device: torch.device | None = None) -> list[float]:
    """Wall times in seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def median_time(fn: Callable[[], object], repeats: int, *, warmup: int = 1,
                device: torch.device | None = None) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn`` (after ``warmup`` untimed calls)."""
    return statistics.median(run_times(fn, repeats, warmup=warmup, device=device))


def _per_call(fn: Callable[[], object], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def paired_times(ours: Callable[[], object], theirs: Callable[[], object], repeats: int,
                 *, warmup: int = 1, min_seconds: float = 0.2) -> dict:
    """Interleaved timing of two candidates -> medians, the ratio of medians and the median ratio.

    A candidate faster than ``min_seconds`` is called several times per timing (time per call
    reported), so that one preemption by a neighbour's job does not decide a millisecond figure.
    Returns ``{"ours_s", "theirs_s", "ours_times", "theirs_times", "ratio_of_medians",
    "median_ratio", "min_ratio", "calls"}`` where a ratio is ``theirs / ours`` (> 1: ours is faster).
    """
    first = [_per_call(ours, 1), _per_call(theirs, 1)]
    for _ in range(warmup - 1):
        ours()
        theirs()
    calls = [max(1, math.ceil(min_seconds / max(t, 1e-6))) for t in first]
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        t_ours.append(_per_call(ours, calls[0]))
        t_theirs.append(_per_call(theirs, calls[1]))
    ratios = [b / a for a, b in zip(t_ours, t_theirs)]
    m_ours, m_theirs = statistics.median(t_ours), statistics.median(t_theirs)
    return {"ours_s": m_ours, "theirs_s": m_theirs, "ours_times": t_ours, "theirs_times": t_theirs,
            "ratio_of_medians": m_theirs / m_ours, "median_ratio": statistics.median(ratios),
            "min_ratio": min(ratios), "calls": calls}


def machine() -> dict:
    """Where the figures came from: cores, load averages (1/5/15 min), torch threads and version."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in load],
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "processor": platform.processor() or platform.machine()}


def load_note() -> str:
    """One line for the printed tables: the load averages now."""
    m = machine()
    la = m["load_average"]
    return f"{m['cpu_count']} CPU cores, load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (1 / 5 / 15 min)"
