"""Synthetic one-bar loops (2.0 s at 120 BPM) with a class label: 8 drum styles and 3 pitched roles.

Each loop is first written as MIDI by :mod:`course_lib.data.patterns` (style pattern + random
variation), then rendered:

* ``backend="dsp"`` (default, fast): drum notes by a kit of :mod:`course_lib.synth.drums` voices -
  every (kit, voice) hit is rendered once, in a normal and a soft (low-passed, for ghost notes)
  version, and mixed in at the note times; a pool of ``n_kits`` random kits (``DrumKit.random``)
  is shared by all styles, so the kit does not give the style away. Pitched notes are rendered in
  batches by a subtractive voice (detuned saws + pulse from :mod:`course_lib.synth.oscillators`,
  low-pass biquads of :mod:`course_lib.synth.filters` cross-faded by a filter envelope, an
  exponential amplitude envelope) with a random patch per loop.
* ``backend="fluidsynth"``: the same MIDI through ``course_lib.synth.midi.render_midi`` with a
  General-MIDI SoundFont (needs FluidSynth installed).

Tails that ring past the bar are wrapped to its start, so every loop repeats seamlessly. Each
loop gets a random overall tone (low-pass) and level (peak -6..-1 dBFS). Loop ``i`` of class ``c``
depends only on ``(seed, c, i)``, not on how many loops are generated.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Callable, Sequence, Union

import numpy as np
import pretty_midi
import torch

from course_lib import DEFAULT_SR
from course_lib.data.config import LOOP_SECONDS, derive_seed
from course_lib.data.loop_folder import write_loop_folder
from course_lib.data.patterns import DRUM_STYLES, GM_DRUMS, PITCHED_ROLES, LoopInfo, loop_midi

Device = Union[str, torch.device, None]

LOOP_CLASSES: tuple[str, ...] = DRUM_STYLES + PITCHED_ROLES
BACKENDS: tuple[str, ...] = ("dsp", "fluidsynth")
DEFAULT_N_KITS: int = 16
_MAX_HIT_SECONDS = 1.0
_NOTE_CHUNK = 384

__all__ = ["LOOP_CLASSES", "BACKENDS", "generate_loops", "render_loops", "write_loop_folder", "loop_samples"]


def loop_samples(sr: int = DEFAULT_SR) -> int:
    """Samples in one loop (2.0 s) at ``sr`` Hz."""
    return int(round(LOOP_SECONDS * sr))


# ------------------------------------------------------------------------------------------
# drums

# pattern voice (GM key) -> DrumKit voice name; rim and shaker are built here from the same voices
_GM_TO_KIT = {36: "kick", 38: "snare", 39: "clap", 42: "closed_hat", 46: "open_hat", 45: "tom_low",
              47: "tom_low_mid", 50: "tom_high", 49: "crash", 51: "ride"}


class _HitBank:
    """Lazily rendered, cached drum hits ``(kit, voice, soft) -> np.ndarray`` for a pool of kits."""

    def __init__(self, kit_seeds: Sequence[int], sr: int) -> None:
        from course_lib.synth.drums import DrumKit

        self.kits = [DrumKit.random(int(s)) for s in kit_seeds]
        self.sr = sr
        self.cache: dict[tuple[int, int, bool], np.ndarray] = {}

    def hit(self, kit: int, gm_key: int, soft: bool) -> np.ndarray:
        key = (kit, gm_key, soft)
        if key not in self.cache:
            if soft:
                import torchaudio.functional as AF

                loud = torch.from_numpy(self.hit(kit, gm_key, False))
                y = AF.lowpass_biquad(loud, self.sr, min(2500.0, 0.4 * self.sr)).numpy()
            else:
                y = self._render(kit, gm_key)
            self.cache[key] = np.ascontiguousarray(y, dtype=np.float32)
        return self.cache[key]

    def _render(self, kit: int, gm_key: int) -> np.ndarray:
        from course_lib.synth import drums

        k = self.kits[kit]
        sr = self.sr
        if gm_key in _GM_TO_KIT:
            name = _GM_TO_KIT[gm_key]
            dur = min(_MAX_HIT_SECONDS, k.natural_duration(name))
            return k.render(name, 1.0, dur, sr).numpy()
        rng = np.random.default_rng(k.seed + gm_key)
        if gm_key == GM_DRUMS["rim"]:  # a short, high, tonal snare
            return drums.snare(0.08, sr, f0=float(rng.uniform(380, 620)), tone_decay=float(rng.uniform(0.02, 0.05)),
                               noise_decay=0.03, noise_cutoff=min(3000.0, 0.4 * sr),
                               tone_mix=float(rng.uniform(0.6, 0.85)), seed=k.seed + 37)[0].numpy()
        if gm_key == GM_DRUMS["shaker"]:  # a noise-only hat with a slow attack
            y = drums.hihat(0.12, sr, decay=float(rng.uniform(0.05, 0.1)), tone=0.0,
                            cutoff=min(5000.0, 0.4 * sr), seed=k.seed + 70)[0]
            n = int(0.012 * sr)
            y[:n] *= torch.linspace(0.0, 1.0, n)
            return (0.6 * y).numpy()
        if gm_key == GM_DRUMS["cowbell"]:
            f = float(rng.uniform(500, 600))
            t = torch.arange(int(0.3 * sr)) / sr
            y = (torch.sign(torch.sin(2 * math.pi * f * t)) + torch.sign(torch.sin(2 * math.pi * 1.48 * f * t)))
            return (0.3 * y * torch.exp(-t / 0.06)).numpy()
        raise ValueError(f"GM drum key {gm_key} has no voice in the DSP kit")


def _velocity_gain(velocity: float) -> float:
    return float((velocity / 127.0) ** 1.6)


def _add_wrapped(buf: np.ndarray, y: np.ndarray, start: int) -> None:
    """Add ``y`` into the circular buffer ``buf`` at ``start`` (tails wrap to the start)."""
    n = buf.shape[0]
    pos = start % n
    while y.shape[0]:
        take = min(y.shape[0], n - pos)
        buf[pos:pos + take] += y[:take]
        y = y[take:]
        pos = 0


# ------------------------------------------------------------------------------------------
# pitched voices

def _patch_kind(program: int) -> str:
    if 32 <= program <= 39:
        return "bass"
    if 0 <= program <= 7:
        return "keys"
    if 88 <= program <= 95:
        return "pad"
    return "lead"


def _draw_patch(kind: str, rng: np.random.Generator) -> dict:
    """Random timbre of a subtractive voice; frequencies in Hz, times in seconds."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if kind == "bass":
        return dict(pulse=u(0.0, 0.8), duty=u(0.2, 0.5), detune=u(0.0, 0.01), sub=u(0.0, 0.6),
                    cut_lo=u(150, 600), cut_hi=u(600, 3000), q=u(0.7, 4.0), f_decay=u(0.03, 0.3),
                    attack=u(0.002, 0.01), decay=u(0.1, 0.6), sustain=u(0.2, 0.9), release=u(0.02, 0.1))
    if kind == "keys":
        return dict(pulse=u(0.0, 0.5), duty=u(0.3, 0.5), detune=u(0.0, 0.006), sub=u(0.0, 0.3),
                    cut_lo=u(300, 1200), cut_hi=u(1500, 5000), q=u(0.6, 1.5), f_decay=u(0.05, 0.4),
                    attack=u(0.002, 0.01), decay=u(0.2, 0.8), sustain=u(0.0, 0.4), release=u(0.05, 0.3))
    if kind == "pad":
        return dict(pulse=u(0.0, 0.6), duty=u(0.3, 0.5), detune=u(0.004, 0.015), sub=u(0.0, 0.3),
                    cut_lo=u(400, 1500), cut_hi=u(1000, 4000), q=u(0.6, 2.0), f_decay=u(0.2, 0.8),
                    attack=u(0.03, 0.2), decay=u(0.3, 1.0), sustain=u(0.5, 1.0), release=u(0.1, 0.4))
    return dict(pulse=u(0.0, 1.0), duty=u(0.15, 0.5), detune=u(0.0, 0.012), sub=u(0.0, 0.2),
                cut_lo=u(500, 2000), cut_hi=u(2000, 6500), q=u(0.7, 5.0), f_decay=u(0.02, 0.3),
                attack=u(0.002, 0.02), decay=u(0.05, 0.4), sustain=u(0.1, 0.8), release=u(0.02, 0.2))


def _render_notes(pitch: torch.Tensor, velocity: torch.Tensor, dur: torch.Tensor, patch: dict[str, torch.Tensor],
                  seconds: float, sr: int) -> torch.Tensor:
    """Subtractive voices, one per note -> ``(notes, samples)``; every argument is ``(notes,)``."""
    from course_lib.synth.core import midi_to_hz
    from course_lib.synth.filters import biquad
    from course_lib.synth.oscillators import sawtooth, sine, square

    dev = pitch.device
    f0 = midi_to_hz(pitch.to(torch.float32))
    f0 = f0.clamp(max=0.24 * sr)
    pulse = patch["pulse"][:, None]
    # a saw and a pulse, detuned against each other (chorus) and mixed by the patch's "pulse" share
    osc = ((1 - 0.7 * pulse) * sawtooth(f0 * (1 + patch["detune"]), seconds, sr, device=dev)
           + (0.3 + 0.7 * pulse) * square(f0 * (1 - patch["detune"]), seconds, sr, duty=patch["duty"], device=dev))
    osc = osc + patch["sub"][:, None] * sine(0.5 * f0, seconds, sr, device=dev)
    vel = velocity.to(torch.float32) / 127.0
    hi = (patch["cut_hi"] * (0.45 + 0.55 * vel)).clamp(60.0, 0.45 * sr)
    lo = torch.minimum(patch["cut_lo"].clamp(40.0, 0.45 * sr), hi)
    bright = biquad(osc, "lowpass", hi, patch["q"], sr)
    dark = biquad(osc, "lowpass", lo, patch["q"], sr)
    t = torch.arange(osc.shape[1], device=dev, dtype=torch.float32)[None, :] / sr
    fenv = torch.exp(-t / patch["f_decay"][:, None])
    y = fenv * bright + (1 - fenv) * dark
    a, d, s, r = (patch[k][:, None] for k in ("attack", "decay", "sustain", "release"))
    off = dur.to(torch.float32)[:, None]
    held = torch.where(t < a, t / a, s + (1 - s) * torch.exp(-(t - a) / d))
    at_off = torch.where(off < a, off / a, s + (1 - s) * torch.exp(-(off - a) / d))
    env = torch.where(t < off, held, at_off * torch.exp(-(t - off) / r))
    return (y * env * (vel[:, None] ** 1.5)).to(torch.float32)


# ------------------------------------------------------------------------------------------
# rendering

def render_loops(midis: Sequence[pretty_midi.PrettyMIDI], sr: int = DEFAULT_SR, seed: int = 0,
                 backend: str = "dsp", n_kits: int = DEFAULT_N_KITS, loop_seeds: Sequence[int] | None = None,
                 device: Device = None, progress: Callable | None = None) -> torch.Tensor:
    """Render one-bar loop MIDIs to audio ``(N, 2 s * sr)`` float32, peak -6..-1 dBFS, tails wrapped.

    Args:
        midis: loops as ``pretty_midi.PrettyMIDI`` (notes within the first 2 s).
        sr: sample rate in Hz. seed: seeds the kit pool. backend: ``"dsp"`` or ``"fluidsynth"``.
        n_kits: size of the pool of random drum kits (DSP backend).
        loop_seeds: one seed per loop for its kit choice, patch, tone and level (default from ``seed``).
        device: where the pitched voices and the final tone filter run.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if sr <= 0:
        raise ValueError(f"sample rate must be > 0 Hz, got {sr}")
    n = len(midis)
    T = loop_samples(sr)
    if loop_seeds is None:
        loop_seeds = [derive_seed(seed, "loop", i) for i in range(n)]
    rngs = [np.random.default_rng(int(s)) for s in loop_seeds]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if backend == "fluidsynth":
        out = torch.stack([_render_fluidsynth(pm, sr, T) for pm in midis]).to(dev)
    else:
        out = torch.zeros(n, T, dtype=torch.float32)
        buf = out.numpy()
        bank = _HitBank([derive_seed(seed, "kit", k) for k in range(max(1, n_kits))], sr)
        pitched: dict[str, list] = {}  # patch kind -> list of (loop, note, patch)
        for i, pm in enumerate(midis):
            rng = rngs[i]
            kit = int(rng.integers(len(bank.kits)))
            levels = {key: 10 ** (rng.uniform(-4, 4) / 20) for key in GM_DRUMS.values()}
            for inst in pm.instruments:
                if inst.is_drum:
                    for note in inst.notes:
                        hit = bank.hit(kit, note.pitch, soft=note.velocity < 60)
                        g = _velocity_gain(note.velocity) * levels.get(note.pitch, 1.0)
                        _add_wrapped(buf[i], g * hit, int(round(note.start * sr)))
                    if progress:
                        progress(0)
                else:
                    kind = _patch_kind(inst.program)
                    patch = _draw_patch(kind, rng)
                    pitched.setdefault(kind, []).extend((i, nt, patch) for nt in inst.notes)
        for kind, items in pitched.items():
            _render_pitched(buf, items, sr, dev)
        out = out.to(dev)
    # loop-level tone and level
    cut = torch.tensor([r.uniform(0.25, 0.45) * sr for r in rngs], device=dev)
    from course_lib.synth.filters import biquad

    toned = biquad(out, "lowpass", cut, 0.707, sr)
    amount = torch.tensor([r.uniform(0.0, 1.0) for r in rngs], device=dev)[:, None]
    out = (1 - amount) * out + amount * toned
    peak = torch.tensor([10 ** (r.uniform(-6.0, -1.0) / 20) for r in rngs], device=dev)[:, None]
    m = out.abs().amax(dim=1, keepdim=True)
    out = torch.where(m > 1e-9, out * (peak / m.clamp_min(1e-9)), out)
    return out.to(torch.float32)


def _render_pitched(buf: np.ndarray, items: list, sr: int, dev: torch.device) -> None:
    """Render notes ``(loop, pretty_midi.Note, patch)`` in batches and add them into ``buf`` (N, T)."""
    # similar pitches and lengths share a chunk: the additive oscillators then need fewer harmonics
    # and the buffers are no longer than the notes need
    items = sorted(items, key=lambda it: (it[1].pitch, it[1].end - it[1].start + 4 * it[2]["release"]))
    for c in range(0, len(items), _NOTE_CHUNK):
        chunk = items[c:c + _NOTE_CHUNK]
        durs = [nt.end - nt.start for _, nt, _ in chunk]
        seconds = min(LOOP_SECONDS, max(d + 4 * p["release"] for d, (_, _, p) in zip(durs, chunk)) + 0.01)
        keys = chunk[0][2].keys()
        patch = {k: torch.tensor([p[k] for _, _, p in chunk], dtype=torch.float32, device=dev) for k in keys}
        y = _render_notes(torch.tensor([nt.pitch for _, nt, _ in chunk], device=dev),
                          torch.tensor([nt.velocity for _, nt, _ in chunk], device=dev),
                          torch.tensor(durs, device=dev), patch, seconds, sr)
        y = y.cpu().numpy()
        fade = min(y.shape[1], int(0.01 * sr))
        y[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        for (i, nt, _), row in zip(chunk, y):
            _add_wrapped(buf[i], row, int(round(nt.start * sr)))


def _render_fluidsynth(pm: pretty_midi.PrettyMIDI, sr: int, T: int) -> torch.Tensor:
    try:
        from course_lib.synth.midi import render_midi
    except ImportError as exc:  # pragma: no cover - depends on the synth package
        raise ValueError("backend='fluidsynth' needs course_lib.synth.midi.render_midi") from exc
    y = torch.as_tensor(render_midi(pm, sr, backend="fluidsynth"), dtype=torch.float32).reshape(-1).cpu()
    buf = np.zeros(T, dtype=np.float32)
    _add_wrapped(buf, y.numpy(), 0)
    return torch.from_numpy(buf)


def generate_loops(n_per_class: int, sr: int = DEFAULT_SR, seed: int = 0, backend: str = "dsp",
                   device: Device = None, classes: Sequence[str] | None = None, humanize: bool = True,
                   n_kits: int = DEFAULT_N_KITS, return_info: bool = False, progress: bool = False,
                   ) -> tuple[torch.Tensor, torch.Tensor, list[str]] | tuple[torch.Tensor, torch.Tensor, list[str], list[LoopInfo]]:
    """Generate ``n_per_class`` one-bar loops of every class.

    Args:
        n_per_class: loops per class (>= 1).
        sr: sample rate in Hz. seed: dataset seed (same seed -> bit-identical audio).
        backend: ``"dsp"`` or ``"fluidsynth"``. device: torch device for rendering.
        classes: subset of :data:`LOOP_CLASSES` (default all, in that order).
        humanize: apply swing / jitter / random velocities (``False``: exact grid, for tests).
        n_kits: pool of random drum kits. return_info: also return each loop's :class:`LoopInfo`.
        progress: show a tqdm bar.
    Returns:
        ``(audio (N, 2 s * sr) float32, labels (N,) long, class_names)`` (+ ``infos``), ordered
        class by class; ``labels`` index ``class_names``.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    names = list(classes) if classes is not None else list(LOOP_CLASSES)
    bad = [c for c in names if c not in LOOP_CLASSES]
    if bad or not names:
        raise ValueError(f"unknown loop class(es) {bad}; choose from {LOOP_CLASSES}")
    midis, infos, labels, seeds = [], [], [], []
    for ci, c in enumerate(names):
        for i in range(n_per_class):
            pm, info = loop_midi(c, derive_seed(seed, c, i), humanize=humanize)
            midis.append(pm)
            infos.append(info)
            labels.append(ci)
            seeds.append(derive_seed(seed, c, i, "render"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(midis), desc="loops", unit="loop")
    audio = render_loops(midis, sr=sr, seed=seed, backend=backend, n_kits=n_kits, loop_seeds=seeds, device=device,
                         progress=(lambda _: bar.update(1)) if bar else None)
    if bar:
        bar.update(bar.total - bar.n)
        bar.close()
    labels_t = torch.tensor(labels, dtype=torch.long)
    if return_info:
        return audio, labels_t, names, infos
    return audio, labels_t, names


def loop_info_dict(info: LoopInfo) -> dict:
    """A :class:`LoopInfo` as a plain dict (JSON-friendly)."""
    return asdict(info)
