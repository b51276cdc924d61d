"""Dataset sizes by preset: ``fast`` (tests, COURSE_FAST lessons), ``lecture`` (lessons, HW2), ``full``.

A preset fixes how many synthetic instruments, pitches and velocities the mini-NSynth has and how
many loops each loop class gets. Every generator takes a preset name or a :class:`DataPreset`.
The course has one preset vocabulary, for data and models alike: ``fast`` (seconds, tests), ``lecture``
(minutes on a laptop CPU) and ``full`` (a GPU). ``default``, the data presets' old name for ``lecture``,
is still accepted (:data:`PRESET_ALIASES`): cards and commands written before the rename keep working.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Mapping, TypeVar, Union

from course_lib.data.nsynth import VELOCITIES


@dataclass(frozen=True)
class DataPreset:
    """Sizes of the synthetic datasets.

    Attributes:
        name: preset name.
        instruments_per_family: synthetic instruments per NSynth family (11 families).
        pitch_step: semitones between rendered pitches within each instrument's range (1 = every note).
        velocities: MIDI velocities rendered per pitch (NSynth: 25, 50, 75, 100, 127).
        note_seconds: clip length in seconds (NSynth: 4.0 = held 3 s + released 1 s; 1.0 for quick lessons).
        loops_per_class: synthetic loops per loop class.
    """

    name: str
    instruments_per_family: int
    pitch_step: int
    velocities: tuple[int, ...]
    note_seconds: float
    loops_per_class: int

    def to_dict(self) -> dict:
        """The preset as a plain dict (hashed into cache keys)."""
        return asdict(self)

    def with_(self, **changes) -> "DataPreset":
        """A copy with some fields changed (e.g. ``PRESETS["lecture"].with_(note_seconds=1.0)``)."""
        return replace(self, **changes)


PRESETS: dict[str, DataPreset] = {
    # 279 notes of 1 s (seed 0), 11 x 16 = 176 loops: seconds on a laptop
    "fast": DataPreset("fast", instruments_per_family=1, pitch_step=6, velocities=(25, 75, 127),
                       note_seconds=1.0, loops_per_class=16),
    # 1 850 notes of 4 s (seed 0), 11 x 100 = 1 100 loops (the HW2 loop set)
    "lecture": DataPreset("lecture", instruments_per_family=2, pitch_step=3, velocities=VELOCITIES,
                          note_seconds=4.0, loops_per_class=100),
    # 16 770 notes of 4 s (seed 0), 11 x 1 000 loops
    "full": DataPreset("full", instruments_per_family=6, pitch_step=1, velocities=VELOCITIES,
                       note_seconds=4.0, loops_per_class=1000),
}


P = TypeVar("P")

#: old preset names still accepted everywhere, and the name they mean now
PRESET_ALIASES: dict[str, str] = {"default": "lecture"}


def preset_name(name: str) -> str:
    """``name`` with an old alias replaced by the current name (``"default"`` -> ``"lecture"``)."""
    return PRESET_ALIASES.get(name, name)


def choose_preset(preset: Union[str, P], presets: Mapping[str, P], kind: type, what: str) -> P:
    """``preset`` itself when it is a ``kind`` already, else ``presets[preset]``; an unknown name raises a
    :class:`ValueError` naming ``what`` (e.g. ``"data"``) and the choices. Shared by every preset table."""
    if isinstance(preset, kind):
        return preset
    preset = preset_name(preset) if isinstance(preset, str) else preset
    if preset not in presets:
        raise ValueError(f"unknown {what} preset {preset!r}; choose from {sorted(presets)}")
    return presets[preset]


def get_preset(preset: Union[str, DataPreset]) -> DataPreset:
    """The :class:`DataPreset` named ``preset`` (``"fast"``, ``"lecture"``, ``"full"``; ``"default"`` = ``"lecture"``)
    or ``preset`` itself."""
    return choose_preset(preset, PRESETS, DataPreset, "data")
