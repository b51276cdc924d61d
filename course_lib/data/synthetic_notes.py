"""A synthetic "mini-NSynth": single notes of DSP instruments, recorded with the NSynth protocol.

NSynth holds every note of an instrument for 3 s and releases it for 1 s (4 s at 16 kHz), at
MIDI pitches over the instrument's range and velocities 25, 50, 75, 100, 127. Here each of the
11 NSynth families gets one or more synthetic instruments, each with random timbre parameters
drawn from a family-specific recipe and a source (acoustic / electronic / synthetic) that picks
the synthesis engine:

=========== ================================================================================
engine      course_lib.synth voice
=========== ================================================================================
pluck       Karplus-Strong (``physical.karplus_strong``), optional ``tanh`` drive (guitar, bass, piano)
fm          2-operator FM (``fm.fm2``) with a decaying or swelling index (EP, FM bass, brass, mallets)
wavetable   a wavetable from random harmonic amplitudes (``wavetable``), vibrato, breath noise
            (flute, reed, string, organ)
subtractive band-limited wavetable saw..square through a low-pass "sweep" (synth bass/lead/keys)
vowel       glottal pulses through formants (``formant.vowel``) (vocal)
=========== ================================================================================

``generate_notes`` renders a whole preset; ``write_nsynth`` stores it in the real NSynth layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from course_lib.data.config import NSYNTH_SR, derive_seed
from course_lib.data.nsynth import FAMILIES, SOURCES, NSynthExample, write_nsynth
from course_lib.data.presets import DataPreset, get_preset
from course_lib.data.voices import exp_adsr, filter_sweep
from course_lib.synth.core import midi_to_hz
from course_lib.synth.filters import biquad
from course_lib.synth.fm import fm2
from course_lib.synth.formant import vowel
from course_lib.synth.oscillators import noise
from course_lib.synth.physical import karplus_strong
from course_lib.synth.wavetable import basic_tables, wavetable_from_harmonics, wavetable_osc

Device = Union[str, torch.device, None]
PathLike = Union[str, Path]

#: MIDI pitch range (inclusive) of each family's instruments.
FAMILY_RANGES: dict[str, tuple[int, int]] = {
    "bass": (28, 64), "brass": (40, 82), "flute": (60, 96), "guitar": (40, 86), "keyboard": (21, 105),
    "mallet": (53, 100), "organ": (36, 96), "reed": (45, 84), "string": (28, 96), "synth_lead": (36, 96),
    "vocal": (48, 81),
}
#: Sources each family's instruments come from (NSynth's table: e.g. no acoustic synth leads).
FAMILY_SOURCES: dict[str, tuple[str, ...]] = {
    "bass": ("synthetic", "electronic", "acoustic"), "brass": ("acoustic",), "flute": ("acoustic", "synthetic"),
    "guitar": ("acoustic", "electronic", "synthetic"), "keyboard": ("electronic", "acoustic", "synthetic"),
    "mallet": ("acoustic", "electronic", "synthetic"), "organ": ("electronic",), "reed": ("acoustic", "synthetic"),
    "string": ("acoustic",), "synth_lead": ("synthetic",), "vocal": ("acoustic", "synthetic", "electronic"),
}
_ENGINE: dict[tuple[str, str], str] = {
    ("bass", "acoustic"): "pluck", ("bass", "electronic"): "fm", ("bass", "synthetic"): "subtractive",
    ("brass", "acoustic"): "fm", ("flute", "acoustic"): "wavetable", ("flute", "synthetic"): "wavetable",
    ("guitar", "acoustic"): "pluck", ("guitar", "electronic"): "pluck", ("guitar", "synthetic"): "subtractive",
    ("keyboard", "acoustic"): "pluck", ("keyboard", "electronic"): "fm", ("keyboard", "synthetic"): "subtractive",
    ("mallet", "acoustic"): "fm", ("mallet", "electronic"): "fm", ("mallet", "synthetic"): "fm",
    ("organ", "electronic"): "wavetable", ("reed", "acoustic"): "wavetable", ("reed", "synthetic"): "subtractive",
    ("string", "acoustic"): "wavetable", ("synth_lead", "synthetic"): "subtractive",
    ("vocal", "acoustic"): "vowel", ("vocal", "synthetic"): "vowel", ("vocal", "electronic"): "vowel",
}
HOLD_FRACTION: float = 0.75  # NSynth: held 3 s of 4 s
_N_HARMONICS = 24


@dataclass
class Instrument:
    """A synthetic instrument: family, source, NSynth index, engine and its random timbre parameters.

    ``params`` holds numbers (times in s, frequencies in Hz, levels 0..1); ``pitch_range`` the
    MIDI pitches it plays (inclusive); ``qualities`` NSynth quality names derived from the params.
    """

    family: str
    source: str
    index: int
    engine: str
    seed: int
    pitch_range: tuple[int, int]
    params: dict = field(default_factory=dict)
    qualities: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """NSynth instrument name, e.g. ``"guitar_acoustic_000"``."""
        return f"{self.family}_{self.source}_{self.index:03d}"


def make_instrument(family: str, seed: int, source: str | None = None, index: int = 0) -> Instrument:
    """A random instrument of NSynth ``family`` (reproducible from ``seed``).

    ``source`` (``"acoustic"``, ``"electronic"``, ``"synthetic"``) picks the engine; by default it is
    drawn from the family's sources. ``index`` is the NSynth instrument number in the name.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    rng = np.random.default_rng(seed)
    if source is None:
        source = str(rng.choice(FAMILY_SOURCES[family]))
    if source not in FAMILY_SOURCES[family]:
        raise ValueError(f"family {family!r} has no {source!r} instruments here; sources: {FAMILY_SOURCES[family]}")
    engine = _ENGINE[(family, source)]
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    p: dict = dict(attack=u(0.003, 0.02), decay=u(0.3, 1.5), sustain=u(0.3, 0.9), release=u(0.05, 0.4),
                   brightness=u(0.0, 1.0), vibrato_cents=0.0, vibrato_hz=u(4.5, 6.5), drive=0.0, tremolo=0.0)
    if engine == "pluck":
        p.update(t60=u(0.8, 3.0) if family != "keyboard" else u(2.0, 5.0), attack=0.001, sustain=1.0, decay=10.0,
                 release=u(0.05, 0.25))
        if source == "electronic":
            p["drive"] = u(1.5, 6.0)
    elif engine == "fm":
        if family == "mallet":
            p.update(ratio=float(rng.choice([3.5, 4.0, 2.76, 5.4, 1.41])), index=u(1.0, 5.0), index_decay=u(0.02, 0.2),
                     attack=0.001, decay=u(0.15, 1.0), sustain=0.0, release=u(0.05, 0.3))
        elif family == "brass":
            p.update(ratio=1.0, index=u(1.5, 5.0), index_decay=-u(0.03, 0.15), attack=u(0.03, 0.1), decay=u(0.3, 1.0),
                     sustain=u(0.6, 0.95), release=u(0.05, 0.2), vibrato_cents=u(0.0, 20.0))
        elif family == "bass":
            p.update(ratio=float(rng.choice([1.0, 2.0, 3.0])), index=u(0.5, 3.0), index_decay=u(0.05, 0.5),
                     attack=0.002, decay=u(0.3, 1.5), sustain=u(0.2, 0.8), release=u(0.03, 0.15))
        else:  # electric piano
            p.update(ratio=float(rng.choice([1.0, 2.0, 3.0, 14.0])), index=u(0.5, 3.5), index_decay=u(0.1, 1.0),
                     attack=0.002, decay=u(0.8, 3.0), sustain=u(0.0, 0.2), release=u(0.1, 0.5),
                     tremolo=u(0.0, 0.4))
    elif engine == "wavetable":
        rolloff = u(0.6, 2.2)
        odd_only = family == "reed" or (family == "flute" and rng.random() < 0.3)
        k = np.arange(1, _N_HARMONICS + 1)
        amps = k ** (-rolloff) * rng.uniform(0.5, 1.5, _N_HARMONICS)
        if odd_only:
            amps = amps * np.where(k % 2 == 1, 1.0, u(0.0, 0.25))
        if family == "organ":  # drawbars: a few strong harmonics, no decay
            amps = np.zeros(_N_HARMONICS)
            for h in (1, 2, 3, 4, 6, 8):
                amps[h - 1] = rng.choice([0.0, 0.3, 0.6, 1.0])
            amps[0] = max(amps[0], 0.6)
            p.update(attack=u(0.005, 0.02), decay=10.0, sustain=1.0, release=u(0.03, 0.15), tremolo=u(0.0, 0.3))
        if family == "flute":
            amps = amps * np.exp(-0.35 * (k - 1))
        p.update(harmonics=[float(a) for a in amps], breath=u(0.02, 0.12) if family in ("flute", "reed") else 0.0)
        if family in ("string", "reed", "flute"):
            p.update(attack=u(0.04, 0.25), sustain=u(0.7, 1.0), decay=u(0.5, 2.0), release=u(0.15, 0.6),
                     vibrato_cents=u(5.0, 25.0))
    elif engine == "subtractive":
        p.update(morph=u(0.4, 1.0), cut_lo=u(150, 1200), cut_hi=u(1200, 7000), q=u(0.7, 5.0), f_decay=u(0.03, 0.6))
        if family == "guitar":
            p.update(sustain=0.0, decay=u(0.3, 1.2))
        if family == "synth_lead":
            p.update(vibrato_cents=u(0.0, 15.0))
    elif engine == "vowel":
        p.update(vowel=str(rng.choice(["a", "e", "i", "o", "u"])), vibrato_cents=u(10.0, 40.0),
                 attack=u(0.05, 0.2), sustain=u(0.7, 1.0), release=u(0.1, 0.4))
    lo, hi = FAMILY_RANGES[family]
    if engine == "pluck":
        hi = min(hi, 96)  # Karplus-Strong needs f0 <= sr / 4
    inst = Instrument(family=family, source=source, index=int(index), engine=engine, seed=int(seed),
                      pitch_range=(lo, hi), params=p)
    inst.qualities = _qualities(inst)
    return inst


def _qualities(inst: Instrument) -> list[str]:
    """NSynth quality labels implied by the timbre parameters."""
    p, q = inst.params, []
    bright = p.get("brightness", 0.5)
    if inst.engine == "subtractive":
        bright = (p["cut_hi"] - 1200) / 5800
    if bright > 0.75:
        q.append("bright")
    elif bright < 0.2:
        q.append("dark")
    if p.get("drive", 0.0) > 0:
        q.append("distortion")
    if p.get("sustain", 1.0) < 0.1 and p.get("decay", 1.0) < 0.5 or (inst.engine == "pluck" and p["t60"] < 1.2):
        q.append("fast_decay")
    if p.get("release", 0.0) > 0.35:
        q.append("long_release")
    if p.get("tremolo", 0.0) > 0.2 or p.get("vibrato_cents", 0.0) > 20:
        q.append("nonlinear_env")
    if inst.engine == "pluck" or inst.family == "mallet":
        q.append("percussive")
    order = ["bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env",
             "percussive", "reverb", "tempo-synced"]
    return [x for x in order if x in q]


def render_notes(instrument: Instrument, pitches: Sequence[int] | torch.Tensor, velocities: Sequence[int] | torch.Tensor,
                 sr: int = NSYNTH_SR, note_length: float = 4.0, device: Device = None) -> torch.Tensor:
    """Render notes of one instrument with the NSynth protocol -> ``(notes, note_length * sr)`` float32.

    Each note is held for 3/4 of ``note_length`` seconds (NSynth: 3 s of 4 s) and then released.
    ``pitches`` are MIDI numbers, ``velocities`` MIDI velocities 1..127 (louder and brighter).
    The level is relative (an instrument's loudest note is scaled by :func:`generate_notes`).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    pitch = torch.as_tensor(pitches, dtype=torch.float32, device=dev).reshape(-1)
    vel_i = torch.as_tensor(velocities, dtype=torch.float32, device=dev).reshape(-1)
    if pitch.shape != vel_i.shape:
        raise ValueError(f"pitches ({pitch.shape[0]}) and velocities ({vel_i.shape[0]}) differ in length")
    if note_length <= 0:
        raise ValueError(f"note_length must be > 0 s, got {note_length}")
    lo, hi = instrument.pitch_range
    if pitch.numel() and (float(pitch.min()) < lo or float(pitch.max()) > hi):
        raise ValueError(f"{instrument.name} plays MIDI pitches {lo}..{hi}, got {pitch.min():.0f}..{pitch.max():.0f}")
    if vel_i.numel() and (float(vel_i.min()) < 1 or float(vel_i.max()) > 127):
        raise ValueError("velocities must be MIDI velocities in 1..127")
    b = pitch.shape[0]
    samples = int(round(note_length * sr))
    p = instrument.params
    f0 = midi_to_hz(pitch)
    vel = vel_i / 127.0
    t = torch.arange(samples, device=dev, dtype=torch.float32)[None, :] / sr
    hold = HOLD_FRACTION * note_length
    ones = torch.ones(b, device=dev)
    seed = derive_seed(instrument.seed, "noise")
    f0_traj = f0[:, None]
    if p["vibrato_cents"] > 0:  # vibrato fading in over the first half second
        depth = p["vibrato_cents"] / 1200.0 * torch.clamp(t / 0.5, max=1.0)
        f0_traj = f0[:, None] * torch.pow(2.0, depth * torch.sin(2 * math.pi * p["vibrato_hz"] * t))
    eng = instrument.engine
    if eng == "pluck":
        bright = (0.25 + 0.5 * p["brightness"]) * (0.6 + 0.4 * vel)
        y = karplus_strong(f0, note_length, sr, t60=p["t60"] * ones, brightness=bright.clamp(0, 1), amplitude=1.0,
                           seed=seed, device=dev)
        if p["drive"] > 0:
            y = torch.tanh(p["drive"] * y * (0.5 + vel[:, None])) / math.tanh(p["drive"])
    elif eng == "fm":
        tau = p["index_decay"]
        ienv = torch.exp(-t / tau) if tau > 0 else 1.0 - torch.exp(t / tau)  # decaying (EP, mallet) or swelling (brass)
        ienv = ienv.expand(b, samples)
        y = fm2(f0_traj if f0_traj.shape[1] > 1 else f0, p["ratio"], p["index"] * (0.3 + 0.7 * vel), note_length, sr,
                index_envelope=ienv, device=dev)
    elif eng == "wavetable":
        table = wavetable_from_harmonics(torch.tensor(p["harmonics"]), 1024).to(dev)
        y = wavetable_osc(table, f0_traj.expand(b, samples) if f0_traj.shape[1] > 1 else f0, note_length, sr,
                          device=dev)
        cut = (f0 * (2.0 + 10.0 * p["brightness"]) * (0.4 + 0.6 * vel)).clamp(200.0, 0.45 * sr)
        y = filter_sweep(y, sr, cut, cut * 1.5, 0.707 * ones, 0.2 * ones)
        if p["breath"] > 0:
            n = noise(note_length, sr, batch=b, seed=seed, device=dev)
            n = biquad(n, "bandpass", (2.5 * f0).clamp(300.0, 0.4 * sr), 1.5 * ones, sr)
            y = y + p["breath"] * 4.0 * n
    elif eng == "subtractive":
        y = wavetable_osc(basic_tables(1024).to(dev), f0_traj.expand(b, samples) if f0_traj.shape[1] > 1 else f0,
                          note_length, sr, position=p["morph"], device=dev)
        y = filter_sweep(y, sr, p["cut_lo"] * ones, p["cut_hi"] * (0.4 + 0.6 * vel), p["q"] * ones,
                         p["f_decay"] * ones)
    elif eng == "vowel":
        y = vowel(f0, p["vowel"], note_length, sr, vibrato_cents=p["vibrato_cents"], vibrato_hz=p["vibrato_hz"],
                  amplitude=1.0, fade=0.005, device=dev)
        y = y * (0.5 + 0.5 * vel[:, None])  # extra velocity gain: the vowel voice is peak-normalised
    else:  # pragma: no cover - engines are fixed above
        raise ValueError(f"unknown engine {eng!r}")
    if p["tremolo"] > 0:
        y = y * (1.0 - p["tremolo"] * 0.5 * (1 + torch.sin(2 * math.pi * p["vibrato_hz"] * t)))
    # the release must fit into the released part of the clip (about -26 dB by its end)
    release = min(p["release"], (note_length - hold) / 3.0)
    env = exp_adsr(samples, sr, p["attack"] * ones, p["decay"] * ones, p["sustain"] * ones, release * ones,
                   hold * ones)
    fade = max(1, int(0.005 * sr))
    env[:, -fade:] *= torch.linspace(1.0, 0.0, fade, device=dev)
    return (y * env * (vel[:, None] ** 1.2)).to(torch.float32)


def render_note(instrument: Instrument, pitch: int, velocity: int, sr: int = NSYNTH_SR, note_length: float = 4.0,
                device: Device = None) -> torch.Tensor:
    """One note of ``instrument`` (MIDI ``pitch``, ``velocity``) -> ``(note_length * sr,)`` float32."""
    return render_notes(instrument, [pitch], [velocity], sr, note_length, device)[0]


def make_instruments(preset: Union[str, DataPreset] = "lecture", seed: int = 0,
                     families: Sequence[str] | None = None) -> list[Instrument]:
    """The preset's instruments: ``instruments_per_family`` per family, sources cycling through the family's."""
    p = get_preset(preset)
    fams = list(families) if families is not None else list(FAMILIES)
    bad = [f for f in fams if f not in FAMILIES]
    if bad:
        raise ValueError(f"unknown families {bad}; choose from {FAMILIES}")
    out, counters = [], {}
    for fam in fams:
        srcs = FAMILY_SOURCES[fam]
        start = int(derive_seed(seed, fam, "source") % len(srcs))
        for k in range(p.instruments_per_family):
            src = srcs[(start + k) % len(srcs)]
            idx = counters.get((fam, src), 0)
            counters[(fam, src)] = idx + 1
            out.append(make_instrument(fam, derive_seed(seed, fam, k), source=src, index=idx))
    return out


def instrument_pitches(inst: Instrument, step: int) -> list[int]:
    """The pitches an instrument is recorded at: every ``step`` semitones over its range (offset per instrument)."""
    lo, hi = inst.pitch_range
    offset = int(derive_seed(inst.seed, "offset") % step) if step > 1 else 0
    return list(range(lo + offset, hi + 1, step))


def generate_notes(preset: Union[str, DataPreset] = "lecture", seed: int = 0, sr: int = NSYNTH_SR,
                   families: Sequence[str] | None = None, device: Device = None, progress: bool = False,
                   ) -> tuple[torch.Tensor, list[NSynthExample]]:
    """Render the synthetic NSynth set of a preset -> ``(audio (N, note_seconds * sr) float32, examples)``.

    Every instrument is scaled so that its loudest note peaks at 0.9 (velocity keeps its effect).
    Examples are ``NSynthExample`` records with NSynth names, codes and qualities.
    """
    p = get_preset(preset)
    if sr != NSYNTH_SR:
        raise ValueError(f"NSynth audio is {NSYNTH_SR} Hz, got sr={sr}")
    insts = make_instruments(p, seed, families)
    it = insts
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(insts, desc="instruments", unit="inst")
    clips, examples = [], []
    note_id = 0
    for inst_id, inst in enumerate(it):
        pitches = instrument_pitches(inst, p.pitch_step)
        grid = [(pt, v) for pt in pitches for v in p.velocities]
        y = render_notes(inst, [g[0] for g in grid], [g[1] for g in grid], sr, p.note_seconds, device)
        peak = float(y.abs().max())
        y = y * (0.9 / max(peak, 1e-9))
        clips.append(y.cpu())
        for pt, v in grid:
            examples.append(NSynthExample.create(note=note_id, family=inst.family, source=inst.source,
                                                 instrument_index=inst.index, instrument=inst_id, pitch=pt,
                                                 velocity=v, qualities=inst.qualities, sample_rate=sr))
            note_id += 1
    return torch.cat(clips), examples


def write_synthetic_nsynth(root: PathLike, preset: Union[str, DataPreset] = "fast", seed: int = 0,
                           device: Device = None, progress: bool = False) -> Path:
    """Generate a preset's notes and write them as an NSynth folder; returns the ``examples.json`` path."""
    audio, examples = generate_notes(preset, seed, device=device, progress=progress)
    return write_nsynth(root, audio, examples)


__all__ = ["FAMILY_RANGES", "FAMILY_SOURCES", "Instrument", "make_instrument", "render_note", "render_notes",
           "make_instruments", "instrument_pitches", "generate_notes", "write_nsynth", "write_synthetic_nsynth",
           "SOURCES"]
