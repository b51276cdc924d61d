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

Speed (``benchmarks/bench_data.py``, 2 CPU cores): the default HW2 set, 11 classes x 100 loops,
takes about 23 s of CPU time (117 s wall on a heavily shared machine), 5x faster than rendering
the same MIDI loop by loop with ``course_lib.synth.midi.render_midi``.
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
from course_lib.data.voices import exp_adsr, filter_sweep
from course_lib.synth import drums
from course_lib.synth.core import midi_to_hz
from course_lib.synth.drums import DrumKit
from course_lib.synth.filters import biquad
from course_lib.synth.fm import fm2
from course_lib.synth.midi import render_midi
from course_lib.synth.wavetable import basic_tables, wavetable_osc

Device = Union[str, torch.device, None]

LOOP_CLASSES: tuple[str, ...] = DRUM_STYLES + PITCHED_ROLES
BACKENDS: tuple[str, ...] = ("dsp", "fluidsynth")
DEFAULT_N_KITS: int = 16
_NOTE_CHUNK = 384
_TABLES: dict[str, torch.Tensor] = {}  # the band-limited basic wavetables, per device

__all__ = ["LOOP_CLASSES", "BACKENDS", "generate_loops", "render_loops", "write_loop_folder", "loop_samples",
           "clear_hit_cache"]


def loop_samples(sr: int = DEFAULT_SR) -> int:
    """Samples in one loop (2.0 s) at ``sr`` Hz."""
    return int(round(LOOP_SECONDS * sr))


# ------------------------------------------------------------------------------------------
# drums

# pattern voice (GM key) -> DrumKit voice name; rim and shaker are built here from the same voices
_GM_TO_KIT = {36: "kick", 38: "snare", 39: "clap", 42: "closed_hat", 46: "open_hat", 45: "tom_low",
              47: "tom_low_mid", 50: "tom_high", 49: "crash", 51: "ride"}


# rendered hits, shared by every call in this process: (kit seed, sr, GM key, soft) -> samples
_HIT_CACHE: dict[tuple[int, int, int, bool], np.ndarray] = {}
_HIT_CACHE_MAX = 4096
# longest rendering per voice (s); longer cymbal / open-hat tails are faded out (choked) at this length
_MAX_HIT_SECONDS: dict[str, float] = {"open_hat": 0.4, "crash": 0.5, "ride": 0.4}


def clear_hit_cache() -> None:
    """Forget the cached drum hits (the next render re-synthesises every kit voice)."""
    _HIT_CACHE.clear()


class _HitBank:
    """Drum hits of a pool of random kits, rendered on first use and cached: ``hit(kit, gm_key, soft)``."""

    def __init__(self, kit_seeds: Sequence[int], sr: int) -> None:
        self.kit_seeds = [int(s) for s in kit_seeds]
        self.kits = [DrumKit.random(s) for s in self.kit_seeds]
        self.sr = sr

    def hit(self, kit: int, gm_key: int, soft: bool) -> np.ndarray:
        """Samples of one hit of GM key ``gm_key`` from kit ``kit`` (low-passed if ``soft``), peak 0.9."""
        key = (self.kit_seeds[kit], self.sr, int(gm_key), bool(soft))
        if key not in _HIT_CACHE:
            if soft:  # ghost notes: the same hit, low-passed (a softer stroke is darker)
                import torchaudio.functional as AF

                loud = torch.from_numpy(self.hit(kit, gm_key, False))
                y = AF.lowpass_biquad(loud, self.sr, min(2500.0, 0.4 * self.sr)).numpy()
            else:
                y = self._render(kit, gm_key)
            if len(_HIT_CACHE) >= _HIT_CACHE_MAX:
                _HIT_CACHE.clear()
            _HIT_CACHE[key] = np.ascontiguousarray(y, dtype=np.float32)
        return _HIT_CACHE[key]

    def _render(self, kit: int, gm_key: int) -> np.ndarray:
        k = self.kits[kit]
        sr = self.sr
        if gm_key in _GM_TO_KIT:
            name = _GM_TO_KIT[gm_key]
            natural = min(1.0, k.natural_duration(name))
            dur = min(natural, _MAX_HIT_SECONDS.get(name, 1.0))
            y = k.render(name, 1.0, dur, sr).numpy()
            if dur < natural:  # choke: fade the last 40 %
                n = int(0.4 * len(y))
                y[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32) ** 2
            return y
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
    """Random timbre of a loop's pitched voice; frequencies in Hz, times in seconds.

    ``morph`` is the wavetable position (0 sine, 1/3 triangle, 2/3 saw, 1 square); ``keys`` patches
    are 2-operator FM instead (``ratio``, ``index``).
    """
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    ratio, index = float(rng.choice([1.0, 2.0, 3.0, 4.0])), u(0.5, 4.0)
    if kind == "bass":
        return dict(morph=u(0.35, 1.0), ratio=ratio, index=index, cut_lo=u(150, 600), cut_hi=u(600, 3000),
                    q=u(0.7, 4.0), f_decay=u(0.03, 0.3), attack=u(0.002, 0.01), decay=u(0.1, 0.6),
                    sustain=u(0.2, 0.9), release=u(0.02, 0.1))
    if kind == "keys":
        return dict(morph=0.0, ratio=ratio, index=index, cut_lo=u(800, 2500), cut_hi=u(3000, 7000),
                    q=u(0.6, 1.2), f_decay=u(0.05, 0.4), attack=u(0.002, 0.01), decay=u(0.2, 0.8),
                    sustain=u(0.0, 0.4), release=u(0.05, 0.3))
    if kind == "pad":
        return dict(morph=u(0.3, 0.9), ratio=ratio, index=index, cut_lo=u(400, 1500), cut_hi=u(1000, 4000),
                    q=u(0.6, 2.0), f_decay=u(0.2, 0.8), attack=u(0.03, 0.2), decay=u(0.3, 1.0),
                    sustain=u(0.5, 1.0), release=u(0.1, 0.4))
    return dict(morph=u(0.5, 1.0), ratio=ratio, index=index, cut_lo=u(500, 2000), cut_hi=u(2000, 6500),
                q=u(0.7, 5.0), f_decay=u(0.02, 0.3), attack=u(0.002, 0.02), decay=u(0.05, 0.4),
                sustain=u(0.1, 0.8), release=u(0.02, 0.2))


def _render_notes(kind: str, pitch: torch.Tensor, velocity: torch.Tensor, dur: torch.Tensor,
                  patch: dict[str, torch.Tensor], seconds: float, sr: int) -> torch.Tensor:
    """Pitched voices, one per note -> ``(notes, samples)``; every argument is ``(notes,)``.

    ``keys``: 2-operator FM whose index decays with the filter envelope (electric piano). Others: a
    band-limited wavetable oscillator (sine..square morph) through two low-pass biquads, bright
    and dark, cross-faded by an exponential filter envelope. Then an exponential ADSR and velocity.
    """
    dev = pitch.device
    f0 = midi_to_hz(pitch.to(torch.float32)).clamp(max=0.24 * sr)
    samples = int(round(seconds * sr))
    vel = velocity.to(torch.float32) / 127.0
    if kind == "keys":
        t = torch.arange(samples, device=dev, dtype=torch.float32)[None, :] / sr
        fenv = torch.exp(-t / patch["f_decay"][:, None])
        y = fm2(f0, patch["ratio"], patch["index"] * (0.4 + 0.6 * vel), seconds, sr, index_envelope=fenv, device=dev)
    else:
        key = str(dev)
        if key not in _TABLES:
            _TABLES[key] = basic_tables(1024).to(dev)
        osc = wavetable_osc(_TABLES[key], f0, seconds, sr, position=patch["morph"], device=dev)
        y = filter_sweep(osc, sr, patch["cut_lo"], patch["cut_hi"] * (0.45 + 0.55 * vel), patch["q"], patch["f_decay"])
    env = exp_adsr(samples, sr, patch["attack"], patch["decay"], patch["sustain"], patch["release"], dur)
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
                else:
                    kind = _patch_kind(inst.program)
                    patch = _draw_patch(kind, rng)
                    pitched.setdefault(kind, []).extend((i, nt, patch) for nt in inst.notes)
            if progress:
                progress(i)
        for kind, items in pitched.items():
            _render_pitched(buf, kind, items, sr, dev)
        out = out.to(dev)
    # loop-level tone and level
    cut = torch.tensor([r.uniform(0.25, 0.45) * sr for r in rngs], device=dev)
    toned = biquad(out, "lowpass", cut, 0.707, sr)
    amount = torch.tensor([r.uniform(0.0, 1.0) for r in rngs], device=dev)[:, None]
    out = (1 - amount) * out + amount * toned
    peak = torch.tensor([10 ** (r.uniform(-6.0, -1.0) / 20) for r in rngs], device=dev)[:, None]
    m = out.abs().amax(dim=1, keepdim=True)
    out = torch.where(m > 1e-9, out * (peak / m.clamp_min(1e-9)), out)
    return out.to(torch.float32)


def _render_pitched(buf: np.ndarray, kind: str, items: list, sr: int, dev: torch.device) -> None:
    """Render notes ``(loop, pretty_midi.Note, patch)`` in batches and add them into ``buf`` (N, T)."""
    # similar pitches and lengths share a chunk, so the buffers are no longer than the notes need
    items = sorted(items, key=lambda it: (it[1].pitch, it[1].end - it[1].start + 3 * it[2]["release"]))
    for c in range(0, len(items), _NOTE_CHUNK):
        chunk = items[c:c + _NOTE_CHUNK]
        durs = [nt.end - nt.start for _, nt, _ in chunk]
        seconds = min(LOOP_SECONDS, max(d + 3 * p["release"] for d, (_, _, p) in zip(durs, chunk)) + 0.01)
        keys = chunk[0][2].keys()
        patch = {k: torch.tensor([p[k] for _, _, p in chunk], dtype=torch.float32, device=dev) for k in keys}
        y = _render_notes(kind, torch.tensor([nt.pitch for _, nt, _ in chunk], device=dev),
                          torch.tensor([nt.velocity for _, nt, _ in chunk], device=dev),
                          torch.tensor(durs, device=dev), patch, seconds, sr)
        y = y.cpu().numpy()
        fade = int(0.01 * sr)
        ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
        for (i, nt, p), row in zip(chunk, y):
            # each note's length depends on the note only (not on its chunk): reproducible sets
            n = min(row.shape[0], int(round((nt.end - nt.start + 3 * p["release"] + 0.01) * sr)))
            row = row[:n].copy()
            row[-min(fade, n):] *= ramp[-min(fade, n):]
            _add_wrapped(buf[i], row, int(round(nt.start * sr)))


def _render_fluidsynth(pm: pretty_midi.PrettyMIDI, sr: int, T: int) -> torch.Tensor:
    y = torch.as_tensor(render_midi(pm, sr, backend="fluidsynth"), dtype=torch.float32).reshape(-1).cpu()
    buf = np.zeros(T, dtype=np.float32)
    _add_wrapped(buf, y.numpy(), 0)
    return torch.from_numpy(buf)


def generate_loops(n_per_class: int, sr: int = DEFAULT_SR, seed: int = 0, backend: str = "dsp",
                   device: Device = None, classes: Sequence[str] | None = None, humanize: bool = True,
                   n_kits: int = DEFAULT_N_KITS, return_info: bool = False, progress: bool = False,
                   ) -> tuple:
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
