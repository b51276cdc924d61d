"""Granular synthesis (Lesson 01): clouds of short windowed grains read from a source sound.

Each grain is a few tens of milliseconds of the source, read from a position (a fraction
0..1 of the source, with random jitter), at a playback-rate ratio ``2 ** (semitones / 12)``
(pitch and speed change together inside the grain), shaped by a window and added at its onset
in the output. Onsets are spread evenly at ``density`` grains per second with random jitter
inside each slot (an asynchronous cloud). Everything is vectorised: one matrix of read
positions ``(batch, grains, grain_samples)``, one ``gather`` with linear interpolation, one
window multiplication and one ``scatter_add`` into the output.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

from course_lib.synth.core import make_generator, n_samples

Device = Union[str, torch.device, None]

_WINDOWS = ("hann", "triangle", "tukey", "gaussian", "rect")


def grain_window(name: str, length: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """A grain envelope ``(length,)`` peaking at 1: ``hann``, ``triangle``, ``tukey`` (25% tapers),
    ``gaussian`` (sigma = length / 6) or ``rect``."""
    if length < 1:
        raise ValueError(f"grain length must be >= 1 sample, got {length}")
    t = (torch.arange(length, device=device, dtype=torch.float32) + 0.5) / length  # (0, 1)
    if name == "hann":
        return 0.5 - 0.5 * torch.cos(2 * math.pi * t)
    if name == "triangle":
        return 1 - torch.abs(2 * t - 1)
    if name == "tukey":
        ramp = 0.25
        w = torch.ones_like(t)
        edge = torch.minimum(t, 1 - t) < ramp / 2
        w[edge] = 0.5 - 0.5 * torch.cos(2 * math.pi * torch.minimum(t, 1 - t)[edge] / ramp)
        return w
    if name == "gaussian":
        return torch.exp(-0.5 * ((t - 0.5) * 6) ** 2)
    if name == "rect":
        return torch.ones_like(t)
    raise ValueError(f"window must be one of {_WINDOWS}, got {name!r}")


def _trajectory(p: Union[float, Sequence[float], torch.Tensor], name: str, batch: int,
                device: torch.device) -> torch.Tensor:
    """A parameter as ``(batch|1, points)``: scalars -> 1 point; 1-D -> a trajectory shared by all voices."""
    t = torch.as_tensor(p, dtype=torch.float32, device=device)
    if t.ndim == 0:
        return t.reshape(1, 1)
    if t.ndim == 1:
        if t.numel() == 0:
            raise ValueError(f"{name} trajectory is empty")
        return t.reshape(1, -1)
    if t.ndim == 2 and t.shape[0] in (1, batch) and t.shape[1] >= 1:
        return t
    raise ValueError(f"{name} must be a number, a 1-D trajectory or (batch, points); got shape {tuple(t.shape)}")


def _sample_trajectory(traj: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Linearly interpolate trajectories ``(B|1, P)`` at times ``u`` in [0, 1] ``(B, G)`` -> ``(B, G)``."""
    points = traj.shape[1]
    if points == 1:
        return traj.expand(u.shape[0], 1).expand_as(u)
    x = u.clamp(0, 1) * (points - 1)
    i0 = x.floor().long().clamp(max=points - 2)
    frac = x - i0
    tr = traj.expand(u.shape[0], points)
    return tr.gather(1, i0) * (1 - frac) + tr.gather(1, i0 + 1) * frac


def granulate(
    source: Union[torch.Tensor, np.ndarray],
    sr: int,
    duration: float,
    *,
    grain_duration: float = 0.05,
    density: float = 100.0,
    position: Union[float, Sequence[float], torch.Tensor] = 0.5,
    position_jitter: float = 0.05,
    pitch_semitones: Union[float, Sequence[float], torch.Tensor] = 0.0,
    pitch_jitter: float = 0.0,
    window: str = "hann",
    normalize: bool = True,
    seed: Optional[int] = None,
    device: Device = None,
) -> torch.Tensor:
    """A grain cloud of ``duration`` seconds made from ``source``.

    Args:
        source: ``(samples,)`` or ``(batch, samples)`` audio at ``sr`` Hz (one cloud per row).
        sr: sample rate of source and output in Hz.
        duration: output length in seconds.
        grain_duration: length of each grain in seconds (output time).
        density: grains per second (overlap = density * grain_duration).
        position: where grains are read, 0 = start .. 1 = end of the source (the grain's start
            slides from the source start to the last start that still fits). A number, a 1-D
            trajectory (spread evenly over the output duration, shared by all voices) or
            ``(batch, points)`` per-voice trajectories.
        position_jitter: uniform random offset of each grain's position, +- this fraction of the source.
        pitch_semitones: transposition of every grain (number or trajectory like ``position``);
            +12 reads the source twice as fast, an octave up.
        pitch_jitter: uniform random transposition of each grain, +- this many semitones.
        window: grain envelope, see :func:`grain_window`.
        normalize: scale each voice to a peak of 0.9 (else divide by the mean grain overlap and
            clip to [-1, 1]).
        seed: seed for onsets and jitter (``None``: global RNG).
        device: torch device (default: the source's).

    Returns:
        ``(batch, n_samples(duration, sr))`` float32.
    """
    src = torch.as_tensor(source, dtype=torch.float32)
    if device is not None:
        src = src.to(device)
    dev = src.device
    if src.ndim == 1:
        src = src[None, :]
    if src.ndim != 2 or src.shape[1] < 2:
        raise ValueError(f"source must be (samples,) or (batch, samples) with >= 2 samples, got {tuple(src.shape)}")
    if sr <= 0:
        raise ValueError(f"sr must be > 0 Hz, got {sr}")
    if grain_duration <= 0:
        raise ValueError(f"grain_duration must be > 0 s, got {grain_duration}")
    if density <= 0:
        raise ValueError(f"density must be > 0 grains/s, got {density}")
    if position_jitter < 0 or pitch_jitter < 0:
        raise ValueError("position_jitter and pitch_jitter must be >= 0")
    pos_traj = _trajectory(position, "position", src.shape[0], dev)
    pitch_traj = _trajectory(pitch_semitones, "pitch_semitones", src.shape[0], dev)
    if float(pos_traj.min()) < 0 or float(pos_traj.max()) > 1:
        raise ValueError(f"position must lie in [0, 1], got range [{float(pos_traj.min())}, {float(pos_traj.max())}]")
    batch = max(src.shape[0], pos_traj.shape[0], pitch_traj.shape[0])
    if src.shape[0] not in (1, batch):
        raise ValueError(f"source batch {src.shape[0]} does not match parameter batch {batch}")
    src = src.expand(batch, -1)
    total = n_samples(duration, sr)
    glen = max(1, int(round(grain_duration * sr)))
    n_grains = max(1, int(math.ceil(density * duration)))
    gen = make_generator(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen).to(dev)

    # onsets: one grain per slot of 1/density s, at a random point in its slot
    onset_s = (torch.arange(n_grains, device=dev)[None, :] + rand(batch, n_grains)) / density
    onset = (onset_s * sr).long().clamp(max=max(total - 1, 0))  # (B, G)
    u = onset_s / max(duration, 1e-9)  # time along the output in [0, 1]
    pos = _sample_trajectory(pos_traj, u) + position_jitter * (2 * rand(batch, n_grains) - 1)
    semis = _sample_trajectory(pitch_traj, u) + pitch_jitter * (2 * rand(batch, n_grains) - 1)
    ratio = torch.pow(2.0, semis / 12.0)  # (B, G)

    # read positions in the source: start + ratio * k, linear interpolation
    src_len = src.shape[1]
    span = ratio * (glen - 1)
    start = pos.clamp(0, 1) * (src_len - 1 - span).clamp(min=0)
    k = torch.arange(glen, device=dev, dtype=torch.float32)
    read = start[..., None] + ratio[..., None] * k  # (B, G, L)
    i0 = read.floor().long()
    frac = read - i0
    padded = torch.cat([src, torch.zeros(batch, 2, device=dev)], dim=1)  # reads past the end are silent
    i0 = i0.clamp(0, src_len).reshape(batch, -1)
    a = padded.gather(1, i0)
    b = padded.gather(1, i0 + 1)
    grains = (a + (b - a) * frac.reshape(batch, -1)).reshape(batch, n_grains, glen)
    grains = grains * grain_window(window, glen, dev)

    out = torch.zeros(batch, total + glen, device=dev)
    idx = (onset[..., None] + k.long()).reshape(batch, -1)
    out.scatter_add_(1, idx, grains.reshape(batch, -1))
    out = out[:, :total]
    if normalize:
        peak = out.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) if total else 1.0
        return (0.9 * out / peak).to(torch.float32)
    overlap = max(1.0, density * grain_duration * float(grain_window(window, glen, dev).mean()))
    return (out / overlap).clamp(-1, 1)
