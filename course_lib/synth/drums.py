"""Drum-machine voices (Lesson 01) and a drum kit with General-MIDI note names.

Analogue drum machines (TR-808/909 style) build every drum from a few parts:

* ``kick``: a sine whose pitch falls quickly (``f_start`` -> ``f_end``), a decaying envelope
  and a short noise click for the beater;
* ``snare``: a tuned body (two membrane modes, ratio 1 : 1.59) plus high-passed noise (the wires);
* ``hihat``: six square waves at inharmonic ratios (the 808's metallic "cymbal" oscillators)
  mixed with noise, high-passed, with a short (closed) or long (open) decay;
* ``clap``: a few noise bursts a centisecond apart, then a band-passed noise tail;
* ``tom``: a sine that settles down onto ``f0``, with a little noise.

Decays are given as T60 times: seconds for the amplitude to fall by 60 dB. Every voice
returns float32 ``(batch, samples)`` peak-normalised to ``amplitude`` and ends with a 5 ms fade.
Tonal parameters may be ``(batch,)`` tensors; filter frequencies are numbers (static filters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional, Union

import numpy as np
import torch
import torchaudio.functional as AF

from course_lib import DEFAULT_SR
from course_lib.synth.core import Param, as_control, batch_size_of, n_samples, resolve_device
from course_lib.synth.oscillators import noise, sine, square

Device = Union[str, torch.device, None]

_LN1000 = math.log(1000.0)  # -60 dB = amplitude / 1000
_END_FADE = 0.005  # seconds
#: Frequencies (Hz) of the six square-wave oscillators of the TR-808 cymbal/hi-hat circuit.
METAL_RATIOS = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)


def _setup(duration: float, sr: int, batch: Optional[int], device: Device, *params: Param):
    if duration <= 0:
        raise ValueError(f"duration must be > 0 s, got {duration}")
    samples = n_samples(duration, sr)
    dev = resolve_device(device, *params)
    b = batch_size_of(*params, batch=batch)
    t = (torch.arange(samples, device=dev, dtype=torch.float32) / sr)[None, :]  # (1, T) seconds
    return samples, dev, b, t


def _ctl(p: Param, name: str, b: int, samples: int, dev: torch.device, positive: bool = True) -> torch.Tensor:
    """A scalar / ``(batch,)`` parameter as ``(batch, 1)``, checked finite (and > 0)."""
    c = as_control(p, b, samples, dev)
    if c.shape[1] != 1:
        raise ValueError(f"{name} must be a number or a (batch,) tensor, not a control signal")
    if not torch.all(torch.isfinite(c)) or (positive and float(c.min()) <= 0):
        raise ValueError(f"{name} must be finite{' and > 0' if positive else ''}, got {c.flatten().tolist()}")
    return c


def _decay(t: torch.Tensor, t60: Union[torch.Tensor, float]) -> torch.Tensor:
    """Exponential envelope reaching -60 dB at ``t60`` seconds; ``t`` (1, T), ``t60`` (B, 1)."""
    return torch.exp(-_LN1000 * t / t60)


def _check_freq(name: str, hz: float, sr: int) -> float:
    hz = float(hz)
    if not 0 < hz < sr / 2:
        raise ValueError(f"{name} must be in (0, sr/2 = {sr / 2}) Hz, got {hz}")
    return hz


def _seed(seed: Optional[int], k: int) -> Optional[int]:
    return None if seed is None else int(seed) * 7919 + k


def _finish(y: torch.Tensor, sr: int, amplitude: float) -> torch.Tensor:
    """Fade the last 5 ms, peak-normalise each voice to ``amplitude``."""
    if not 0 < amplitude <= 1:
        raise ValueError(f"amplitude must be in (0, 1], got {amplitude}")
    fade = min(y.shape[-1], max(1, int(_END_FADE * sr)))
    y[:, -fade:] *= torch.linspace(1.0, 0.0, fade, device=y.device)
    peak = y.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    return (amplitude * y / peak).to(torch.float32)


def kick(
    duration: float = 0.5,
    sr: int = DEFAULT_SR,
    *,
    f_start: Param = 150.0,
    f_end: Param = 45.0,
    pitch_decay: Param = 0.05,
    amp_decay: Param = 0.3,
    click: Param = 0.3,
    amplitude: float = 0.9,
    batch: Optional[int] = None,
    seed: Optional[int] = None,
    device: Device = None,
) -> torch.Tensor:
    """Bass drum: sine gliding ``f_end + (f_start - f_end) exp(-t / pitch_decay)`` plus a noise click.

    Args:
        duration: seconds; sr: sample rate in Hz.
        f_start, f_end: start and resting pitch in Hz.
        pitch_decay: time constant of the pitch glide in seconds.
        amp_decay: T60 of the body in seconds.
        click: level of the 4 ms noise click relative to the body (0 = none).
        amplitude: output peak. batch / seed / device: as everywhere.

    Returns:
        ``(batch, samples)`` float32.
    """
    samples, dev, b, t = _setup(duration, sr, batch, device, f_start, f_end, pitch_decay, amp_decay, click)
    fs = _ctl(f_start, "f_start", b, samples, dev)
    fe = _ctl(f_end, "f_end", b, samples, dev)
    pd = _ctl(pitch_decay, "pitch_decay", b, samples, dev)
    ad = _ctl(amp_decay, "amp_decay", b, samples, dev)
    cl = _ctl(click, "click", b, samples, dev, positive=False)
    freq = fe + (fs - fe) * torch.exp(-t / pd)  # (B, T) Hz
    body = sine(freq, duration, sr, device=dev) * _decay(t, ad)
    burst = noise(duration, sr, batch=b, seed=_seed(seed, 0), device=dev) * torch.exp(-t / 0.004)
    return _finish(body + cl * burst, sr, amplitude)


def snare(
    duration: float = 0.3,
    sr: int = DEFAULT_SR,
    *,
    f0: Param = 185.0,
    tone_decay: Param = 0.12,
    noise_decay: Param = 0.2,
    noise_cutoff: float = 1500.0,
    tone_mix: Param = 0.4,
    amplitude: float = 0.9,
    batch: Optional[int] = None,
    seed: Optional[int] = None,
    device: Device = None,
) -> torch.Tensor:
    """Snare drum: tuned body (modes at ``f0`` and ``1.59 f0``) plus high-passed noise (the wires).

    Args:
        f0: body pitch in Hz. tone_decay / noise_decay: T60s in seconds of body and wires.
        noise_cutoff: high-pass cut-off of the wire noise in Hz (a number).
        tone_mix: share of the body in the mix, 0..1.
        Others as in :func:`kick`.

    Returns:
        ``(batch, samples)`` float32.
    """
    samples, dev, b, t = _setup(duration, sr, batch, device, f0, tone_decay, noise_decay, tone_mix)
    f = _ctl(f0, "f0", b, samples, dev)
    td = _ctl(tone_decay, "tone_decay", b, samples, dev)
    nd = _ctl(noise_decay, "noise_decay", b, samples, dev)
    mix = _ctl(tone_mix, "tone_mix", b, samples, dev, positive=False)
    cut = _check_freq("noise_cutoff", noise_cutoff, sr)
    body = (sine(f[:, 0], duration, sr, device=dev) + 0.6 * sine(1.59 * f[:, 0], duration, sr, device=dev)) / 1.6
    body = body * _decay(t, td)
    wires = AF.highpass_biquad(noise(duration, sr, batch=b, seed=_seed(seed, 1), device=dev), sr, cut)
    wires = wires * _decay(t, nd)
    return _finish(mix * body + (1 - mix) * wires, sr, amplitude)


def hihat(
    duration: Optional[float] = None,
    sr: int = DEFAULT_SR,
    *,
    open: bool = False,
    decay: Optional[Param] = None,
    metal_hz: Param = 205.3,
    tone: Param = 0.6,
    cutoff: Optional[float] = None,
    amplitude: float = 0.9,
    batch: Optional[int] = None,
    seed: Optional[int] = None,
    device: Device = None,
) -> torch.Tensor:
    """Hi-hat: six band-limited square waves at the 808's inharmonic ratios plus noise, high-passed.

    Args:
        duration: seconds (default 0.15 closed, 0.6 open).
        open: open hat (long decay) instead of closed (short).
        decay: T60 in seconds (default 0.08 closed, 0.45 open).
        metal_hz: frequency of the lowest square in Hz; the others keep the 808 ratios
            (205.3 : 304.4 : 369.6 : 522.7 : 540 : 800).
        tone: share of the metallic squares vs. white noise, 0..1.
        cutoff: high-pass cut-off in Hz (default ``min(7000, 0.42 sr)``; a number).
        Others as in :func:`kick`.

    Returns:
        ``(batch, samples)`` float32.
    """
    if duration is None:
        duration = 0.6 if open else 0.15
    if decay is None:
        decay = 0.45 if open else 0.08
    samples, dev, b, t = _setup(duration, sr, batch, device, decay, metal_hz, tone)
    dc = _ctl(decay, "decay", b, samples, dev)
    mh = _ctl(metal_hz, "metal_hz", b, samples, dev)
    mix = _ctl(tone, "tone", b, samples, dev, positive=False)
    cut = _check_freq("cutoff", min(7000.0, 0.42 * sr) if cutoff is None else cutoff, sr)
    ratios = torch.tensor(METAL_RATIOS, device=dev) / METAL_RATIOS[0]
    freqs = (mh * ratios[None, :]).reshape(-1)  # (B * 6,)
    metal = square(freqs, duration, sr, device=dev).reshape(b, len(METAL_RATIOS), samples).mean(1)
    hiss = noise(duration, sr, batch=b, seed=_seed(seed, 2), device=dev)
    y = mix * metal + (1 - mix) * hiss
    for _ in range(2):  # 4th-order high-pass
        y = AF.highpass_biquad(y, sr, cut)
    return _finish(y * _decay(t, dc), sr, amplitude)


def clap(
    duration: float = 0.35,
    sr: int = DEFAULT_SR,
    *,
    n_bursts: int = 4,
    burst_spacing: float = 0.01,
    decay: Param = 0.25,
    center_hz: float = 1200.0,
    q: float = 1.0,
    amplitude: float = 0.9,
    batch: Optional[int] = None,
    seed: Optional[int] = None,
    device: Device = None,
) -> torch.Tensor:
    """Hand clap: ``n_bursts`` short noise bursts ``burst_spacing`` s apart (+-20 % random), then a tail.

    Args:
        n_bursts: number of bursts (>= 1). burst_spacing: seconds between bursts.
        decay: T60 of the reverberant tail in seconds, starting at the last burst.
        center_hz, q: band-pass of the noise (numbers).
        Others as in :func:`kick`.

    Returns:
        ``(batch, samples)`` float32.
    """
    if n_bursts < 1 or burst_spacing <= 0:
        raise ValueError(f"need n_bursts >= 1 and burst_spacing > 0 s, got {n_bursts}, {burst_spacing}")
    if q <= 0:
        raise ValueError(f"q must be > 0, got {q}")
    samples, dev, b, t = _setup(duration, sr, batch, device, decay)
    dc = _ctl(decay, "decay", b, samples, dev)
    fc = _check_freq("center_hz", center_hz, sr)
    src = noise(duration + n_bursts * burst_spacing * 2, sr, batch=b, seed=_seed(seed, 3), device=dev)
    jitter_noise, hiss = src[:, : 2 * n_bursts], src[:, 2 * n_bursts :][:, :samples]
    onsets = (torch.arange(n_bursts, device=dev)[None, :] + 0.2 * jitter_noise[:, :n_bursts]) * burst_spacing
    onsets = onsets - onsets[:, :1]  # (B, n) seconds, the first at 0
    dt = t[:, None, :] - onsets[:, :, None]  # (B, n, T)
    bursts = (torch.exp(-dt.clamp(min=0) / 0.003) * (dt >= 0)).amax(1)
    last = onsets[:, -1:]
    tail = 0.5 * _decay((t - last).clamp(min=0), dc) * (t >= last)
    y = AF.bandpass_biquad(hiss, sr, fc, q) * torch.maximum(bursts, tail)
    return _finish(y, sr, amplitude)


def tom(
    f0: Param = 120.0,
    duration: float = 0.45,
    sr: int = DEFAULT_SR,
    *,
    pitch_drop: Param = 0.25,
    pitch_decay: Param = 0.08,
    amp_decay: Param = 0.4,
    noise_level: Param = 0.1,
    amplitude: float = 0.9,
    batch: Optional[int] = None,
    seed: Optional[int] = None,
    device: Device = None,
) -> torch.Tensor:
    """Tom: a sine starting ``pitch_drop`` above ``f0`` and settling onto it, plus a little noise.

    Args:
        f0: resting pitch in Hz (number or ``(batch,)``).
        pitch_drop: relative start offset (0.25: starts 25 % sharp).
        pitch_decay: time constant of the settling in seconds. amp_decay: T60 in seconds.
        noise_level: level of the stick noise (T60 50 ms).
        Others as in :func:`kick`.

    Returns:
        ``(batch, samples)`` float32.
    """
    samples, dev, b, t = _setup(duration, sr, batch, device, f0, pitch_drop, pitch_decay, amp_decay, noise_level)
    f = _ctl(f0, "f0", b, samples, dev)
    pdrop = _ctl(pitch_drop, "pitch_drop", b, samples, dev, positive=False)
    pd = _ctl(pitch_decay, "pitch_decay", b, samples, dev)
    ad = _ctl(amp_decay, "amp_decay", b, samples, dev)
    nl = _ctl(noise_level, "noise_level", b, samples, dev, positive=False)
    freq = f * (1 + pdrop * torch.exp(-t / pd))
    body = sine(freq, duration, sr, device=dev) * _decay(t, ad)
    stick = noise(duration, sr, batch=b, seed=_seed(seed, 4), device=dev) * _decay(t, 0.05)
    return _finish(body + nl * stick, sr, amplitude)


# ------------------------------------------------------------------------------------------
# the kit

#: General-MIDI percussion key -> voice name of :class:`DrumKit`.
GM_DRUM_NOTES: dict[int, str] = {
    35: "kick", 36: "kick",
    38: "snare", 40: "snare",
    39: "clap",
    42: "closed_hat", 44: "closed_hat",
    46: "open_hat",
    41: "tom_floor_low", 43: "tom_floor_high", 45: "tom_low",
    47: "tom_low_mid", 48: "tom_high_mid", 50: "tom_high",
    49: "crash", 57: "crash",
    51: "ride", 59: "ride",
}

TOM_NAMES = ("tom_floor_low", "tom_floor_high", "tom_low", "tom_low_mid", "tom_high_mid", "tom_high")
VOICE_NAMES = ("kick", "snare", "clap", "closed_hat", "open_hat") + TOM_NAMES + ("crash", "ride")


def _kick_default() -> dict:
    return dict(f_start=150.0, f_end=45.0, pitch_decay=0.05, amp_decay=0.3, click=0.3)


def _snare_default() -> dict:
    return dict(f0=185.0, tone_decay=0.12, noise_decay=0.2, noise_cutoff=1500.0, tone_mix=0.4)


def _clap_default() -> dict:
    return dict(n_bursts=4, burst_spacing=0.01, decay=0.25, center_hz=1200.0)


def _hat_default() -> dict:
    return dict(metal_hz=205.3, tone=0.6, closed_decay=0.08, open_decay=0.45)


def _tom_default() -> dict:
    return dict(f0=90.0, spacing_semitones=3.0, pitch_drop=0.25, pitch_decay=0.08, amp_decay=0.4)


def _cymbal_default() -> dict:
    return dict(metal_hz=260.0, tone=0.4, crash_decay=1.5, ride_decay=0.9)


@dataclass
class DrumKit:
    """Parameters of every voice of a drum machine, and ``render`` to play one hit.

    Fields are dicts of keyword arguments of the voice functions (see ``_*_default`` for the
    keys): ``kick``, ``snare``, ``clap``, ``hat`` (closed/open share ``metal_hz`` and ``tone``),
    ``tom`` (six toms ``spacing_semitones`` apart from ``f0``), ``cymbal`` (crash, ride) and
    ``seed`` (noise of every voice: the same kit always sounds the same).
    """

    kick: dict = field(default_factory=_kick_default)
    snare: dict = field(default_factory=_snare_default)
    clap: dict = field(default_factory=_clap_default)
    hat: dict = field(default_factory=_hat_default)
    tom: dict = field(default_factory=_tom_default)
    cymbal: dict = field(default_factory=_cymbal_default)
    seed: int = 0

    @classmethod
    def random(cls, seed: int) -> "DrumKit":
        """A kit with every parameter drawn uniformly from a musical range (reproducible from ``seed``)."""
        rng = np.random.default_rng(seed)

        def u(lo: float, hi: float) -> float:
            return float(rng.uniform(lo, hi))

        return cls(
            kick=dict(f_start=u(100, 250), f_end=u(38, 65), pitch_decay=u(0.02, 0.1), amp_decay=u(0.2, 0.8),
                      click=u(0.0, 0.5)),
            snare=dict(f0=u(150, 260), tone_decay=u(0.05, 0.2), noise_decay=u(0.1, 0.35),
                       noise_cutoff=u(800, 3000), tone_mix=u(0.2, 0.6)),
            clap=dict(n_bursts=int(rng.integers(3, 6)), burst_spacing=u(0.006, 0.015), decay=u(0.1, 0.4),
                      center_hz=u(800, 2000)),
            hat=dict(metal_hz=u(150, 300), tone=u(0.3, 0.8), closed_decay=u(0.04, 0.15), open_decay=u(0.25, 0.8)),
            tom=dict(f0=u(70, 130), spacing_semitones=u(2, 5), pitch_drop=u(0.05, 0.4), pitch_decay=u(0.04, 0.12),
                     amp_decay=u(0.2, 0.6)),
            cymbal=dict(metal_hz=u(200, 340), tone=u(0.2, 0.6), crash_decay=u(1.0, 2.0), ride_decay=u(0.6, 1.5)),
            seed=int(rng.integers(0, 2**31 - 1)),
        )

    def natural_duration(self, name: str) -> float:
        """How long (s) a hit of voice ``name`` rings before it is 60 dB down."""
        if name == "kick":
            return float(self.kick["amp_decay"])
        if name == "snare":
            return float(max(self.snare["tone_decay"], self.snare["noise_decay"]))
        if name == "clap":
            return float(self.clap["decay"] + self.clap["n_bursts"] * self.clap["burst_spacing"] * 1.2)
        if name in ("closed_hat", "open_hat"):
            return float(self.hat["closed_decay" if name == "closed_hat" else "open_decay"])
        if name in TOM_NAMES:
            return float(self.tom["amp_decay"])
        if name in ("crash", "ride"):
            return float(self.cymbal[f"{name}_decay"])
        raise ValueError(f"unknown drum voice {name!r}; known: {VOICE_NAMES}")

    def render(self, name: str, velocity: float = 1.0, duration: Optional[float] = None,
               sr: int = DEFAULT_SR, device: Device = None) -> torch.Tensor:
        """One hit of voice ``name`` (see ``VOICE_NAMES`` / ``GM_DRUM_NOTES``) as ``(samples,)`` float32.

        Args:
            velocity: linear gain 0..1 (the voice is peak-normalised to 0.9 before it).
            duration: seconds (default :meth:`natural_duration`, the voice's T60).
            sr: sample rate in Hz. device: torch device.
        """
        if not 0 <= velocity <= 1:
            raise ValueError(f"velocity must be in [0, 1], got {velocity}")
        dur = self.natural_duration(name) if duration is None else float(duration)
        seed = self.seed + VOICE_NAMES.index(name)
        if name == "kick":
            y = kick(dur, sr, seed=seed, device=device, **self.kick)
        elif name == "snare":
            y = snare(dur, sr, seed=seed, device=device, **self.snare)
        elif name == "clap":
            y = clap(dur, sr, seed=seed, device=device, **self.clap)
        elif name in ("closed_hat", "open_hat"):
            is_open = name == "open_hat"
            y = hihat(dur, sr, open=is_open, decay=self.hat["open_decay" if is_open else "closed_decay"],
                      metal_hz=self.hat["metal_hz"], tone=self.hat["tone"], seed=seed, device=device)
        elif name in TOM_NAMES:
            p = dict(self.tom)
            f0 = p.pop("f0") * 2.0 ** (TOM_NAMES.index(name) * p.pop("spacing_semitones") / 12.0)
            y = tom(f0, dur, sr, seed=seed, device=device, **p)
        else:  # crash / ride: open-hat circuit, lower cut-off, long decay
            y = hihat(dur, sr, open=True, decay=self.cymbal[f"{name}_decay"], metal_hz=self.cymbal["metal_hz"],
                      tone=self.cymbal["tone"], cutoff=min(4000.0 if name == "crash" else 5000.0, 0.4 * sr),
                      seed=seed, device=device)
        return y[0] * float(velocity)

    def with_updates(self, **changes: dict) -> "DrumKit":
        """A copy with some voices' parameters updated, e.g. ``kit.with_updates(kick={"f_end": 50.0})``."""
        new = {k: {**getattr(self, k), **v} for k, v in changes.items() if k != "seed"}
        if "seed" in changes:
            new["seed"] = changes["seed"]
        return replace(self, **new)
