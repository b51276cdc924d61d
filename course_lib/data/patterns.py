"""One-bar 4/4 loops at 120 BPM written as MIDI (``pretty_midi``): drum styles and pitched loop roles.

Drum styles are 16-step patterns (one step = a 16th note = 0.125 s at 120 BPM). Each pattern cell
is one character: ``X`` accent, ``o`` normal hit, ``g`` ghost note, ``?`` a hit that is played
half of the time, ``.`` rest. Every loop draws one of its style's variants and then varies it:
hits dropped or added, ghost notes, a fill in the last beat, swing (odd 16ths delayed by a
fraction of a step), velocity humanisation and a few milliseconds of timing jitter.

The pitched roles (``bass``, ``chords``, ``arp``) draw a key, a scale, a chord progression and a
rhythm. Every function is deterministic given its ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pretty_midi

from course_lib.data.config import LOOP_BPM, LOOP_SECONDS, STEP_SECONDS, STEPS_PER_BAR

# General MIDI percussion keys (channel 10) used by the patterns.
GM_DRUMS: dict[str, int] = {
    "kick": 36, "rim": 37, "snare": 38, "clap": 39, "hihat_closed": 42, "hihat_open": 46,
    "tom_low": 45, "tom_mid": 47, "tom_high": 50, "crash": 49, "ride": 51, "cowbell": 56, "shaker": 70,
}

# style -> list of variants; a variant maps a drum voice to a 16-character step string.
DRUM_PATTERNS: dict[str, list[dict[str, str]]] = {
    "house": [
        {"kick": "X...X...X...X...", "clap": "....X.......X...", "hihat_open": "..o...o...o...o.",
         "hihat_closed": "o.?.o.?.o.?.o.?."},
        {"kick": "X...X...X...X..?", "snare": "....o.......o...", "clap": "....X.......X...",
         "hihat_open": "..X...X...X...X.", "shaker": "?g?g?g?g?g?g?g?g"},
    ],
    "techno": [
        {"kick": "X...X...X...X...", "hihat_closed": "oXooo?ooXooo?ooo", "rim": "..?....o..?...o.",
         "clap": "?...o.......o..."},
        {"kick": "X...X...X...X...", "hihat_open": "..X...X...X...X.", "hihat_closed": "gogogogogogogogo",
         "ride": "o.o.o.o.o.o.o.o.", "tom_low": "......?.......?."},
    ],
    "hiphop": [
        {"kick": "X......o..o.....", "snare": "....X.......X...", "hihat_closed": "o.o.o.o.o.o.o.o."},
        {"kick": "X.o......oX....?", "snare": "....X..g....X...", "hihat_closed": "o.o.o.o.o.o.o.?o"},
        {"kick": "X......X.?X.....", "snare": "....X.......X.g.", "hihat_closed": "o.o.o?o.o.o.o?o.",
         "hihat_open": "..............?."},
    ],
    "trap": [
        {"kick": "X.......o.?.....", "clap": "........X.......", "snare": "........o.......",
         "hihat_closed": "ogogoooooggoooXo"},
        {"kick": "X..o......X.....", "clap": "........X.......", "hihat_closed": "ooooooogooooXooo",
         "hihat_open": "..............?.", "tom_low": "...........?...."},
    ],
    "rock": [
        {"kick": "X.....o.X.......", "snare": "....X.......X...", "hihat_closed": "X.o.o.o.X.o.o.o.",
         "crash": "?..............."},
        {"kick": "X.......X.o.....", "snare": "....X.......X..?", "hihat_closed": "o.o.o.o.o.o.o.o.",
         "crash": "X..............."},
        {"kick": "X.o...o.X.o.....", "snare": "....X.......X...", "ride": "X.o.o.o.X.o.o.o."},
    ],
    "funk": [
        {"kick": "X..o..o...o..o..", "snare": "....X..g.g..X..g", "hihat_closed": "oooooooooooooooo"},
        {"kick": "X.o...o..o.o....", "snare": "....X..g.g.gX...", "hihat_closed": "XoooXoooXoooXooo",
         "hihat_open": "..........?....."},
    ],
    "breakbeat": [
        {"kick": "X.o.......oo....", "snare": "....X..o.o..X..o", "ride": "o.o.o.o.o.o.o.o.",
         "hihat_closed": "?.?.?.?.?.?.?.?."},
        {"kick": "X.X.......X.....", "snare": "....X.......X...", "hihat_closed": "o.o.o.o.o.o.o.o.",
         "clap": "....o.......o..?"},
        {"kick": "X.........X..o..", "snare": "....X..o.o..X...", "hihat_closed": "oXoooXoooXoooXoo"},
    ],
    "reggaeton": [
        {"kick": "X...X...X...X...", "snare": "...o..o....o..o.", "hihat_closed": "o.o.o.o.o.o.o.o."},
        {"kick": "X...X...X...X...", "rim": "...X..X....X..X.", "clap": "...?..o....?..o.",
         "shaker": "gogogogogogogogo"},
    ],
}
DRUM_STYLES: tuple[str, ...] = tuple(DRUM_PATTERNS)
PITCHED_ROLES: tuple[str, ...] = ("bass", "chords", "arp")

# Swing (delay of odd 16ths as a fraction of a step) range per style; others play straight.
SWING_RANGE: dict[str, tuple[float, float]] = {"hiphop": (0.08, 0.3), "funk": (0.0, 0.16)}
_CELL_VELOCITY = {"X": 115, "o": 90, "g": 42, "?": 80}
MAX_JITTER_S: float = 0.003  # timing humanisation, seconds (kept under the 5 ms grid tolerance)

# GM programs for the pitched roles (used by the FluidSynth backend; the DSP backend maps roles to voices).
ROLE_PROGRAMS: dict[str, tuple[int, ...]] = {
    "bass": (38, 39, 33, 34),  # synth bass 1/2, electric bass finger/pick
    "chords": (4, 5, 88, 89, 61),  # electric pianos, pads, brass section
    "arp": (80, 81, 84, 87),  # square / saw leads, charang, bass+lead
}

SCALES: dict[str, tuple[int, ...]] = {
    "minor": (0, 2, 3, 5, 7, 8, 10), "dorian": (0, 2, 3, 5, 7, 9, 10), "major": (0, 2, 4, 5, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10), "phrygian": (0, 1, 3, 5, 7, 8, 10),
}


@dataclass
class LoopInfo:
    """How a loop was drawn: its class, the pattern variant and the random variation applied."""

    class_name: str
    seed: int
    variant: int = 0
    swing: float = 0.0
    fill: bool = False
    key: int | None = None  # tonic MIDI pitch class for pitched roles
    scale: str | None = None
    program: int | None = None
    extras: dict = field(default_factory=dict)


def step_time(step: int, swing: float = 0.0) -> float:
    """Onset time in seconds of 16th step ``step`` (0..15) at 120 BPM; odd steps delayed by ``swing`` steps."""
    return step * STEP_SECONDS + (swing * STEP_SECONDS if step % 2 else 0.0)


def _empty_midi() -> pretty_midi.PrettyMIDI:
    return pretty_midi.PrettyMIDI(initial_tempo=LOOP_BPM)


def _add_note(inst: pretty_midi.Instrument, pitch: int, velocity: int, start: float, dur: float) -> None:
    start = min(max(start, 0.0), LOOP_SECONDS - 1e-3)
    end = min(start + dur, LOOP_SECONDS)
    inst.notes.append(pretty_midi.Note(velocity=int(np.clip(velocity, 1, 127)), pitch=int(pitch),
                                       start=float(start), end=float(end)))


def drum_loop_midi(style: str, seed: int, humanize: bool = True) -> tuple[pretty_midi.PrettyMIDI, LoopInfo]:
    """A one-bar drum loop of ``style`` as MIDI (drum track, GM keys), and how it was drawn.

    ``humanize=False`` plays the drawn pattern exactly on the straight 16th grid (no swing, no
    jitter, fixed velocities per cell type) - useful for tests and demos.
    """
    if style not in DRUM_PATTERNS:
        raise ValueError(f"unknown drum style {style!r}; choose from {DRUM_STYLES}")
    rng = np.random.default_rng(seed)
    variant = int(rng.integers(len(DRUM_PATTERNS[style])))
    pattern = DRUM_PATTERNS[style][variant]
    lo, hi = SWING_RANGE.get(style, (0.0, 0.0))
    swing = float(rng.uniform(lo, hi)) if humanize and hi > 0 else 0.0
    fill = humanize and rng.random() < 0.3
    drop_p = float(rng.uniform(0.0, 0.12)) if humanize else 0.0
    ghost_p = float(rng.uniform(0.0, 0.12)) if humanize else 0.0
    vel_jitter = float(rng.uniform(4, 14)) if humanize else 0.0
    accent_shift = int(rng.integers(-15, 10)) if humanize else 0

    hits: list[tuple[str, int, int]] = []  # (voice, step, velocity)
    for voice, cells in pattern.items():
        if len(cells) != STEPS_PER_BAR:
            raise ValueError(f"pattern {style}/{voice} has {len(cells)} steps, expected {STEPS_PER_BAR}")
        for step, c in enumerate(cells):
            if c == ".":
                if voice in ("snare", "hihat_closed") and rng.random() < ghost_p:
                    hits.append((voice, step, _CELL_VELOCITY["g"]))
                continue
            if c == "?" and rng.random() < 0.5:
                continue
            essential = c == "X" or (voice == "kick" and step == 0)
            if not essential and rng.random() < drop_p:
                continue
            hits.append((voice, step, _CELL_VELOCITY[c] + (accent_shift if c == "X" else 0)))
    if fill:
        hits = [h for h in hits if h[1] < 12 or h[0] not in ("snare", "clap", "tom_low", "tom_mid", "tom_high")]
        fill_voices = ("snare", "tom_high", "tom_mid", "tom_low")
        kind = int(rng.integers(3))
        for step in range(12, 16):
            if kind == 0 or rng.random() < 0.7:
                voice = "snare" if kind == 1 else fill_voices[step - 12] if kind == 0 else str(rng.choice(fill_voices))
                hits.append((voice, step, int(70 + 12 * (step - 12))))

    pm = _empty_midi()
    drums = pretty_midi.Instrument(program=0, is_drum=True, name=f"drums:{style}")
    for voice, step, vel in hits:
        v = vel + (rng.normal(0.0, vel_jitter) if humanize else 0.0)
        t = step_time(step, swing) + (rng.uniform(-MAX_JITTER_S, MAX_JITTER_S) if humanize else 0.0)
        _add_note(drums, GM_DRUMS[voice], int(round(v)), t, STEP_SECONDS)
    drums.notes.sort(key=lambda n: (n.start, n.pitch))
    pm.instruments.append(drums)
    return pm, LoopInfo(class_name=style, seed=seed, variant=variant, swing=swing, fill=bool(fill))


def _progression(rng: np.random.Generator, scale: tuple[int, ...]) -> list[int]:
    """Scale degrees (0-based) of 1, 2 or 4 chords for the bar."""
    n = int(rng.choice([1, 2, 2, 4]))
    degrees = [0] + [int(d) for d in rng.choice([1, 2, 3, 4, 5, 6], size=n - 1)]
    return degrees


def _chord(scale: tuple[int, ...], degree: int, size: int = 3) -> list[int]:
    """Semitone offsets (from the tonic) of a diatonic chord of ``size`` stacked thirds on ``degree``."""
    out = []
    for k in range(size):
        idx = degree + 2 * k
        out.append(scale[idx % 7] + 12 * (idx // 7))
    return out


def pitched_loop_midi(role: str, seed: int, humanize: bool = True) -> tuple[pretty_midi.PrettyMIDI, LoopInfo]:
    """A one-bar pitched loop (``"bass"``, ``"chords"`` or ``"arp"``) as MIDI, and how it was drawn."""
    if role not in PITCHED_ROLES:
        raise ValueError(f"unknown loop role {role!r}; choose from {PITCHED_ROLES}")
    rng = np.random.default_rng(seed)
    scale_name = str(rng.choice(list(SCALES)))
    scale = SCALES[scale_name]
    key = int(rng.integers(12))
    program = int(rng.choice(ROLE_PROGRAMS[role]))
    degrees = _progression(rng, scale)
    chord_steps = STEPS_PER_BAR // len(degrees)
    vel_jitter = float(rng.uniform(3, 12)) if humanize else 0.0
    jitter = MAX_JITTER_S if humanize else 0.0
    pm = _empty_midi()
    inst = pretty_midi.Instrument(program=program, is_drum=False, name=f"{role}")

    def add(pitch: int, vel: float, step: int, steps: float) -> None:
        v = vel + (rng.normal(0.0, vel_jitter) if humanize else 0.0)
        t = step_time(step) + rng.uniform(-jitter, jitter) if humanize else step_time(step)
        _add_note(inst, pitch, int(round(v)), t, steps * STEP_SECONDS)

    extras: dict = {"degrees": degrees}
    if role == "bass":
        base = 28 + (key - 4) % 12  # tonic in E1..D#2
        density = float(rng.uniform(0.25, 0.7))
        rhythm = rng.random(STEPS_PER_BAR) < density
        rhythm[0] = True
        starts = np.flatnonzero(rhythm)
        for i, step in enumerate(starts):
            nxt = starts[i + 1] if i + 1 < len(starts) else STEPS_PER_BAR
            deg = degrees[min(step // chord_steps, len(degrees) - 1)]
            choice = rng.choice(["root", "root", "fifth", "octave", "scale"])
            root = base + _chord(scale, deg)[0]
            pitch = {"root": root, "fifth": root + 7, "octave": root + 12,
                     "scale": base + scale[int(rng.integers(7))]}[str(choice)]
            length = max(1, min(int(nxt - step), int(rng.integers(1, 4))))
            add(pitch, 100 if step % 4 == 0 else 85, int(step), length * 0.9)
        extras["density"] = density
    elif role == "chords":
        base = 55 + (key - 7) % 12  # tonic in G3..F#4
        size = int(rng.choice([3, 4]))
        stab_patterns = ["X..X..X...X..X..", "..X...X...X...X.", "X.......X.......", "X..X....X..X....",
                         "X...X...X...X...", "...X..X....X..X."]
        cells = stab_patterns[int(rng.integers(len(stab_patterns)))]
        length = float(rng.choice([0.5, 1.0, 1.5, 3.0]))
        for step, c in enumerate(cells):
            if c == ".":
                continue
            deg = degrees[min(step // chord_steps, len(degrees) - 1)]
            for off in _chord(scale, deg, size):
                add(base + off, 90, step, length)
        extras.update(chord_size=size, stab_length_steps=length)
    else:  # arp
        base = 60 + (key - 0) % 12  # tonic in C4..B4
        order = str(rng.choice(["up", "down", "updown", "random"]))
        rate = int(rng.choice([1, 2]))  # 16ths or 8ths
        octaves = int(rng.integers(1, 3))
        length = float(rng.uniform(0.4, 0.95)) * rate
        for step in range(0, STEPS_PER_BAR, rate):
            deg = degrees[min(step // chord_steps, len(degrees) - 1)]
            tones = [o + 12 * k for k in range(octaves) for o in _chord(scale, deg, 3)]
            i = step // rate
            if order == "up":
                off = tones[i % len(tones)]
            elif order == "down":
                off = tones[::-1][i % len(tones)]
            elif order == "updown":
                cyc = tones + tones[-2:0:-1]
                off = cyc[i % len(cyc)]
            else:
                off = tones[int(rng.integers(len(tones)))]
            add(base + off, 95 if step % 4 == 0 else 78, step, length)
        extras.update(order=order, rate_steps=rate, octaves=octaves)
    inst.notes.sort(key=lambda n: (n.start, n.pitch))
    pm.instruments.append(inst)
    return pm, LoopInfo(class_name=role, seed=seed, key=key, scale=scale_name, program=program, extras=extras)


def loop_midi(class_name: str, seed: int, humanize: bool = True) -> tuple[pretty_midi.PrettyMIDI, LoopInfo]:
    """A one-bar loop of any loop class (a drum style or a pitched role) as MIDI."""
    if class_name in DRUM_PATTERNS:
        return drum_loop_midi(class_name, seed, humanize)
    if class_name in PITCHED_ROLES:
        return pitched_loop_midi(class_name, seed, humanize)
    raise ValueError(f"unknown loop class {class_name!r}; choose from {DRUM_STYLES + PITCHED_ROLES}")
