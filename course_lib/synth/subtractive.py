"""Subtractive synthesis: one complete analogue-style patch (Lesson 01).

    oscillator (saw / square / triangle / sine / noise)
        -> lowpass (ladder or RBJ biquad) whose cutoff opens with the envelope
        -> amplifier driven by the same ADSR envelope
"""

from __future__ import annotations

import math
from typing import Union

import torch

from course_lib import DEFAULT_SR
from course_lib.synth.core import Param, as_control, batch_size_of, make_generator, n_samples, resolve_device
from course_lib.synth.envelopes import adsr
from course_lib.synth.filters import biquad, ladder
from course_lib.synth.oscillators import oscillator

Device = Union[str, torch.device, None]

#: Lowest and highest cutoff (Hz, and fraction of the sample rate) the envelope may sweep to.
MIN_CUTOFF_HZ: float = 20.0
MAX_CUTOFF_FRACTION: float = 0.45


def subtractive_voice(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    wave: str = "saw",
    cutoff_hz: Param = 2000.0,
    resonance: Param = 0.3,
    filter_env_amount: Param = 0.0,
    attack: Param = 0.01,
    decay: Param = 0.1,
    sustain: Param = 0.7,
    release: Param = 0.2,
    note_duration: Param | None = None,
    filter: str = "ladder",
    batch: int | None = None,
    device: Device = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Render a subtractive-synth note -> float32 ``(batch, samples)``.

    Args:
        f0: pitch in Hz: number, ``(batch,)`` or ``(batch, samples)`` (e.g. from ``vibrato``).
        duration: total length in seconds (the release tail must fit inside it).
        wave: oscillator, ``"saw"``, ``"square"``, ``"triangle"``, ``"sine"`` or ``"noise"``.
        cutoff_hz: base filter cutoff in Hz: number, ``(batch,)`` or a ``(batch, samples)`` sweep.
        resonance: 0..1 (number or ``(batch,)``); ladder feedback (1 self-oscillates) or, for ``filter="lowpass"``,
            mapped to the biquad Q = 0.7071 * 2**(4 * resonance) (0.71 .. 11.3).
        filter_env_amount: how far the envelope opens the filter, in octaves above ``cutoff_hz``
            (negative closes it); the cutoff is ``cutoff_hz * 2**(amount * env)``, clamped to
            [20 Hz, 0.45 sr].
        attack, decay, sustain, release: the ADSR (seconds, level 0..1) shared by amp and filter.
        note_duration: note-off time in seconds; default ``duration - release`` (at least 0).
        filter: ``"ladder"`` (24 dB/oct Moog-style) or ``"lowpass"`` (12 dB/oct RBJ biquad).
        seed: if given, each voice starts its oscillator at a random phase (and seeds the noise).

    The output is not normalised: a resonant biquad can peak above 1 (the ladder's pass band
    instead drops as resonance rises); use ``course_lib.audio.peak_normalize`` before saving.
    """
    if filter not in ("ladder", "lowpass"):
        raise ValueError(f"filter must be 'ladder' or 'lowpass', got {filter!r}")
    samples = n_samples(duration, sr)
    params = (f0, cutoff_hz, resonance, filter_env_amount, attack, decay, sustain, release)
    dev = resolve_device(device, *params)
    b = batch_size_of(*params, batch=batch)
    if note_duration is None:
        note_duration = torch.clamp(
            torch.as_tensor(duration, dtype=torch.float32, device=dev)
            - torch.as_tensor(release, dtype=torch.float32, device=dev),
            min=0.0,
        )
    env = adsr(attack, decay, sustain, release, note_duration, duration, sr, batch=b, device=dev)

    gen = make_generator(seed)
    if wave == "noise":
        src = oscillator("noise", f0, duration, sr, batch=b, seed=seed, device=dev)
    else:
        phase = 0.0
        if gen is not None:
            phase = torch.rand(b, generator=gen).to(dev) * (2 * math.pi)
        src = oscillator(wave, f0, duration, sr, phase=phase, batch=b, device=dev)

    base = as_control(cutoff_hz, b, samples, dev)
    amount = as_control(filter_env_amount, b, 1, dev)
    top = MAX_CUTOFF_FRACTION * sr
    if bool((amount == 0).all()):
        cutoff = base.clamp(MIN_CUTOFF_HZ, top)
        if cutoff.shape[1] == 1:
            cutoff = cutoff.reshape(b)  # one fixed filter per voice: the cheap path
    else:
        cutoff = amount * env  # then in place (no 16 MB temporaries per step for 256 voices x 1 s)
        torch.pow(2.0, cutoff, out=cutoff)
        cutoff.mul_(base).clamp_(MIN_CUTOFF_HZ, top)
    if filter == "ladder":
        y = ladder(src, cutoff, resonance, sr)
    else:
        res = torch.as_tensor(resonance, dtype=torch.float32, device=dev)
        q = 0.7071 * torch.pow(2.0, 4.0 * res)
        y = biquad(src, "lowpass", cutoff, q, sr)
    return (y * env).to(torch.float32)
