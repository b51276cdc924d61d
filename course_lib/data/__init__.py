"""course_lib.data: datasets that need no download (see ARCHITECTURE.md).

* :mod:`~course_lib.data.nsynth` - the NSynth format: read a real NSynth folder, write one.
* :mod:`~course_lib.data.synthetic_notes` - a "mini-NSynth" of DSP instruments (11 families).
* :mod:`~course_lib.data.patterns` - 8 drum styles and 3 pitched loop roles as one-bar MIDI.
* :mod:`~course_lib.data.synthetic_loops` - those loops rendered (DSP voices or FluidSynth).
* :mod:`~course_lib.data.loop_folder` - real loop folders brought to 120 BPM / one bar / 2 s.
* :mod:`~course_lib.data.datasets` - PyTorch datasets (waveform, course log-mel, label, metadata),
  hash-based train/valid/test splits and an on-disk cache keyed by the config.
* :mod:`~course_lib.data.card` - data cards; ``python -m course_lib.data describe loops|nsynth``.

Sizes come from :data:`~course_lib.data.presets.PRESETS` (``fast``, ``lecture``, ``full``); the mel
settings every lesson shares are :data:`~course_lib.data.config.COURSE_MEL`.
"""

from course_lib.data.config import COURSE_MEL, LOOP_BPM, LOOP_SECONDS, cache_root
from course_lib.data.datasets import LoopDataset, NSynthDataset, split_of
from course_lib.data.loop_folder import LoadReport, load_loop_folder, write_loop_folder
from course_lib.data.nsynth import FAMILIES, QUALITIES, SOURCES, NSynthExample, load_nsynth, write_nsynth
from course_lib.data.patterns import DRUM_STYLES, PITCHED_ROLES, loop_midi
from course_lib.data.presets import PRESETS, DataPreset, get_preset
from course_lib.data.synthetic_loops import LOOP_CLASSES, generate_loops, render_loops
from course_lib.data.synthetic_notes import generate_notes, make_instrument, render_note, render_notes

__all__ = [
    "COURSE_MEL", "LOOP_BPM", "LOOP_SECONDS", "cache_root", "LoopDataset", "NSynthDataset", "split_of",
    "LoadReport", "load_loop_folder", "write_loop_folder", "FAMILIES", "QUALITIES", "SOURCES", "NSynthExample",
    "load_nsynth", "write_nsynth", "DRUM_STYLES", "PITCHED_ROLES", "loop_midi", "PRESETS", "DataPreset",
    "get_preset", "LOOP_CLASSES", "generate_loops", "render_loops", "generate_notes", "make_instrument",
    "render_note", "render_notes",
]
