"""Shared plumbing for the DSP synthesizers (Lesson 01).

Every synth function produces a batch of voices as a float32 tensor ``(batch, samples)``.
Any numeric parameter may be a Python number, a ``(batch,)`` tensor (one value per voice) or
a ``(batch, samples)`` tensor (a per-sample control signal, e.g. an f0 trajectory in Hz).
The helpers here turn such parameters into tensors of one common shape, so that the
synthesizers can be written once for all three cases.
"""

from __future__ import annotations

import math
from typing import Union

import torch

Param = Union[float, int, torch.Tensor]


def n_samples(duration: float, sr: int) -> int:
    """Number of samples of ``duration`` seconds at ``sr`` Hz (rounded)."""
    if duration < 0:
        raise ValueError(f"duration must be >= 0 s, got {duration}")
    if sr <= 0:
        raise ValueError(f"sample rate must be > 0 Hz, got {sr}")
    return int(round(duration * sr))


def resolve_device(device: Union[str, torch.device, None], *params: Param) -> torch.device:
    """The device to synthesise on: ``device`` if given, else that of the first tensor param, else CPU."""
    if device is not None:
        return torch.device(device)
    for p in params:
        if isinstance(p, torch.Tensor):
            return p.device
    return torch.device("cpu")


def batch_size_of(*params: Param, batch: int | None = None) -> int:
    """The batch size implied by the parameters (1 if all are scalars), checked for consistency."""
    sizes = {int(p.shape[0]) for p in params if isinstance(p, torch.Tensor) and p.ndim >= 1}
    if batch is not None:
        sizes.add(int(batch))
    sizes.discard(1)
    if len(sizes) > 1:
        raise ValueError(f"parameters disagree on the batch size: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def as_control(p: Param, batch: int, samples: int, device: torch.device) -> torch.Tensor:
    """Broadcast a parameter to a float32 control tensor ``(batch, samples)`` or ``(batch, 1)``.

    Scalars and ``(batch,)`` tensors become ``(batch, 1)`` (cheap, broadcastable);
    ``(batch, samples)`` tensors are returned as they are (checked).
    """
    t = torch.as_tensor(p, dtype=torch.float32, device=device)
    if t.ndim == 0:
        return t.reshape(1, 1).expand(batch, 1)
    if t.ndim == 1:
        if t.shape[0] not in (1, batch):
            raise ValueError(f"per-voice parameter has {t.shape[0]} values for a batch of {batch}")
        return t.reshape(-1, 1).expand(batch, 1)
    if t.ndim == 2:
        if t.shape[0] not in (1, batch) or t.shape[1] not in (1, samples):
            raise ValueError(
                f"control signal has shape {tuple(t.shape)}, expected ({batch}, {samples}) or ({batch}, 1)"
            )
        return t.expand(batch, t.shape[1])
    raise ValueError(f"parameter must be a scalar, (batch,) or (batch, samples); got shape {tuple(t.shape)}")


def phase_from_frequency(freq_hz: torch.Tensor, sr: int, samples: int, phase0: Param = 0.0) -> torch.Tensor:
    """Running phase in cycles (not wrapped) for a frequency ``(batch, 1|samples)`` in Hz.

    Returns ``(batch, samples)``; sample ``n`` holds ``phase0 + sum_{k<n} f[k] / sr`` so that
    the first sample starts exactly at ``phase0`` (in cycles). Accumulated in float64 on the CPU
    so long notes keep their pitch (Apple MPS has no float64), then wrapped to [0, 1) and returned
    as float32 on ``freq_hz``'s device.
    """
    batch = freq_hz.shape[0]
    inc = (freq_hz.to("cpu", torch.float64) / sr).expand(batch, samples)
    phase = torch.cumsum(inc, dim=-1) - inc
    p0 = torch.as_tensor(phase0, dtype=torch.float64, device="cpu").reshape(-1, 1)
    phase = phase + p0
    return torch.remainder(phase, 1.0).to(freq_hz.device, torch.float32)


def make_generator(seed: int | None) -> torch.Generator | None:
    """A CPU ``torch.Generator`` seeded with ``seed`` (``None`` for the global RNG).

    Always on the CPU, whatever device the sound is made on: callers draw on the CPU and move the
    numbers, so a seed gives the same sound on every device (a CUDA generator draws other numbers).
    """
    if seed is None:
        return None
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def midi_to_hz(midi: Param, dtype: torch.dtype = torch.float32) -> Param:
    """MIDI note number to frequency in Hz (A4 = 69 = 440 Hz); works on numbers and tensors (computed in ``dtype``:
    float64 where long phases are accumulated from it)."""
    if isinstance(midi, torch.Tensor):
        return 440.0 * torch.pow(2.0, (midi.to(dtype) - 69.0) / 12.0)
    return 440.0 * 2.0 ** ((float(midi) - 69.0) / 12.0)


def hz_to_midi(hz: Param) -> Param:
    """Frequency in Hz to (fractional) MIDI note number."""
    if isinstance(hz, torch.Tensor):
        return 69.0 + 12.0 * torch.log2(hz.to(torch.float32) / 440.0)
    return 69.0 + 12.0 * math.log2(float(hz) / 440.0)
