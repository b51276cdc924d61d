"""course_lib.tsm: time-scale modification and pitch shifting (Lesson 02; see ARCHITECTURE.md).

``time_stretch(x, sr, rate, method=...)`` and ``pitch_shift(x, sr, semitones, method=...)`` run any
of the methods below on mono audio ``(batch, samples)`` or ``(samples,)`` (tensor or NumPy).
``rate > 1`` = faster / shorter, output length ``round(samples / rate)``.

* :func:`ola` - overlap-add (phase jumps on tones; fine for clicks with short frames)
* :func:`wsola` - waveform-similarity OLA (frames shifted to line up in phase)
* :func:`tdpsola` - pitch-synchronous OLA on pitch marks (time and pitch, formants kept)
* :func:`phase_vocoder` - STFT phase propagation, optional identity phase locking
* :func:`hptsm` - HPSS, then phase vocoder on the harmonic and OLA on the percussive part

f0 tracking and pitch marks live in :mod:`course_lib.tsm.pitch_marks`; the measurements Lesson 02
uses to compare methods (instantaneous frequency, onset alignment, transient smearing) in
:mod:`course_lib.tsm.measure`.
"""

from course_lib.tsm.api import METHODS, pitch_shift, time_stretch
from course_lib.tsm.hptsm import hpss, hptsm
from course_lib.tsm.ola import ola
from course_lib.tsm.phase_vocoder import phase_vocoder
from course_lib.tsm.pitch_marks import F0Track, PitchMarks, estimate_f0, pitch_marks
from course_lib.tsm.tdpsola import tdpsola
from course_lib.tsm.wsola import wsola

__all__ = [
    "METHODS", "time_stretch", "pitch_shift", "ola", "wsola", "tdpsola", "phase_vocoder", "hptsm", "hpss",
    "estimate_f0", "pitch_marks", "F0Track", "PitchMarks",
]
