"""A sampler (Lesson 01): play a recorded note at other pitches by resampling it.

Reading a recording ``ratio = 2 ** (semitones / 12)`` times faster raises its pitch by that
many semitones *and* shortens it by the same factor: the classic sampler (and the
"chipmunk" effect that time-scale modification in Lesson 02 undoes). The reader is a
band-limited (windowed-sinc) interpolator whose cut-off drops to ``1 / ratio`` when reading
faster, so transposing up does not alias.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Union

import numpy as np
import torch

from course_lib import DEFAULT_SR
from course_lib.audio import load
from course_lib.synth.core import Param, n_samples

ArrayLike = Union[torch.Tensor, np.ndarray]
Device = Union[str, torch.device, None]

_HALF_TAPS = 8  # half-width of the interpolation kernel, in output-rate zero crossings
_CHUNK = 8192  # output samples interpolated at once (bounds memory)
_ROLLOFF = 0.95  # pass band edge as a fraction of the (output) Nyquist: room for the transition band


def read_resampled(source: torch.Tensor, ratio: torch.Tensor, length: int) -> torch.Tensor:
    """Read ``source`` at ``ratio`` source samples per output sample with windowed-sinc interpolation.

    Args:
        source: ``(batch|1, samples)`` audio.
        ratio: ``(batch,)`` playback-rate ratios (> 0); 2 = twice as fast, an octave up.
        length: number of output samples; reads past the end of the source give silence.

    Returns:
        ``(batch, length)`` float32: ``out[b, n] = source[b, n * ratio[b]]`` (band-limited to
        ``0.95 / ratio`` of the source Nyquist when ``ratio > 1``).
    """
    if source.ndim != 2:
        raise ValueError(f"source must be (batch, samples), got shape {tuple(source.shape)}")
    # read positions in float64 (exact over long samples) where the device has it (not Apple MPS)
    hp = torch.float32 if source.device.type == "mps" else torch.float64
    ratio = ratio.to(device=source.device, dtype=hp).reshape(-1)
    if float(ratio.min()) <= 0:
        raise ValueError(f"playback ratio must be > 0, got {ratio.tolist()}")
    batch = max(source.shape[0], ratio.shape[0])
    dev = source.device
    # fraction of the source Nyquist kept: all of it when reading slower (nothing can alias)
    cutoff = torch.where(ratio > 1.0, _ROLLOFF / ratio, torch.ones_like(ratio))
    half = int(math.ceil(_HALF_TAPS / float(cutoff.min())))  # kernel half-width in source samples
    src = torch.nn.functional.pad(source.to(torch.float32), (half + 1, half + 2)).expand(batch, -1)
    offs = torch.arange(-half + 1, half + 1, device=dev)  # (K,)
    out = torch.empty(batch, length, device=dev)
    for c0 in range(0, length, _CHUNK):
        n = torch.arange(c0, min(length, c0 + _CHUNK), device=dev, dtype=hp)
        pos = n[None, :] * ratio[:, None]  # (B, T) source positions
        base = torch.floor(pos).long()
        frac = (pos - base).to(torch.float32)
        taps = base[..., None] + offs  # (B, T, K) integer source indices
        dist = frac[..., None] - offs.to(torch.float32)  # pos - tap, in source samples
        fc = cutoff.to(torch.float32)[:, None, None]
        kernel = fc * torch.special.sinc(fc * dist)
        win = 0.5 + 0.5 * torch.cos(math.pi * (dist * fc / _HALF_TAPS).clamp(-1, 1))
        idx = (taps + half + 1).clamp(0, src.shape[1] - 1).reshape(batch, -1)
        vals = src.gather(1, idx).reshape(taps.shape)
        out[:, c0 : c0 + n.numel()] = (vals * kernel * win).sum(-1)
    return out


def repitch(sample: ArrayLike, sr: int, semitones: float, device: Device = None) -> torch.Tensor:
    """Transpose ``sample`` by resampling: pitch up ``semitones`` and duration divided by ``2 ** (semitones/12)``.

    Args:
        sample: ``(samples,)`` or ``(batch, samples)`` audio at ``sr`` Hz.
        sr: sample rate in Hz (unchanged: the output plays at the same rate).
        semitones: transposition; +12 gives an octave up at half the duration.
        device: where to compute (default: the sample's device).

    Returns:
        same layout as ``sample`` with ``round(samples / ratio)`` samples, float32.
    """
    x = torch.as_tensor(sample, dtype=torch.float32)
    if device is not None:
        x = x.to(device)
    if sr <= 0:
        raise ValueError(f"sr must be > 0 Hz, got {sr}")
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"sample must be (samples,) or (batch, samples) and non-empty, got {tuple(x.shape)}")
    if not math.isfinite(semitones):
        raise ValueError(f"semitones must be finite, got {semitones}")
    ratio = 2.0 ** (semitones / 12.0)
    length = max(1, int(round(x.shape[-1] / ratio)))
    x2 = x if x.ndim == 2 else x[None]
    r = torch.full((x2.shape[0],), ratio, device=x.device)
    y = read_resampled(x2, r, length)
    return y if x.ndim == 2 else y[0]


class Sampler:
    """A one-sample instrument: a recording of note ``root_midi`` transposed to any note.

    Args:
        sample: ``(samples,)`` mono recording at ``sr`` Hz (float in [-1, 1]).
        sr: its sample rate in Hz (also the output rate).
        root_midi: the MIDI note the recording plays (60 = middle C).
        release: fade-out at the end of each note, in seconds (avoids clicks when a note is cut).
        device: where the sample is kept and notes are rendered (default: the sample's device).
    """

    def __init__(self, sample: ArrayLike, sr: int = DEFAULT_SR, root_midi: float = 60.0, release: float = 0.02,
                 device: Device = None):
        x = torch.as_tensor(sample, dtype=torch.float32)
        if device is not None:
            x = x.to(device)
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 1 or x.numel() < 2:
            raise ValueError(f"sample must be a mono (samples,) recording, got shape {tuple(x.shape)}")
        if not torch.all(torch.isfinite(x)):
            raise ValueError("sample contains NaN or inf")
        if sr <= 0:
            raise ValueError(f"sr must be > 0 Hz, got {sr}")
        if release < 0:
            raise ValueError(f"release must be >= 0 s, got {release}")
        self.sample = x
        self.sr = int(sr)
        self.root_midi = float(root_midi)
        self.release = float(release)

    @classmethod
    def from_file(cls, path: Union[str, Path], root_midi: float, sr: int = DEFAULT_SR,
                  release: float = 0.02, device: Device = None) -> "Sampler":
        """Load a sample from an audio file (resampled to ``sr``, mixed to mono)."""
        x, rate = load(path, sr=sr, mono=True)
        return cls(x, rate, root_midi, release, device=device)

    def notes(self, midis: Param, duration: float, velocity: Param = 1.0) -> torch.Tensor:
        """Play notes ``midis`` (``(batch,)`` MIDI numbers, fractional allowed) for ``duration`` seconds.

        ``velocity`` (number or ``(batch,)``, 0..1) is a linear gain. Each note lasts exactly
        ``n_samples(duration, sr)`` samples, fading out over its last ``release`` seconds;
        it is silent after the (transposed) recording ends.

        Returns:
            ``(batch, samples)`` float32.
        """
        dev = self.sample.device
        m = torch.as_tensor(midis, dtype=torch.float32, device=dev).reshape(-1)
        if m.numel() == 0 or not torch.all(torch.isfinite(m)):
            raise ValueError(f"midis must be a non-empty set of finite note numbers, got {midis}")
        vel = torch.as_tensor(velocity, dtype=torch.float32, device=dev).reshape(-1, 1)
        if vel.shape[0] not in (1, m.numel()):
            raise ValueError(f"velocity has {vel.shape[0]} values for {m.numel()} notes")
        if float(vel.min()) < 0 or float(vel.max()) > 1:
            raise ValueError(f"velocity must be in [0, 1], got {vel.flatten().tolist()}")
        length = n_samples(duration, self.sr)
        ratio = torch.pow(2.0, (m - self.root_midi) / 12.0)
        y = read_resampled(self.sample[None], ratio, length)
        fade = min(length, int(round(self.release * self.sr)))
        if fade > 0:
            ramp = torch.linspace(1.0, 0.0, fade, device=dev)
            y[:, length - fade :] *= ramp
        return (y * vel).clamp(-1, 1)

    def note(self, midi: float, duration: float, velocity: float = 1.0) -> torch.Tensor:
        """One note (see :meth:`notes`) as ``(samples,)`` float32."""
        return self.notes(torch.tensor([float(midi)]), duration, velocity)[0]
