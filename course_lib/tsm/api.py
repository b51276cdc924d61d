"""One entry point for every TSM method: :func:`time_stretch` and :func:`pitch_shift` (Lesson 02).

``rate > 1`` means faster / shorter (output length ``round(samples / rate)``), as in librosa.
Pitch shifting by a TSM method stretches by the pitch factor and resamples back to the original
length (which moves formants along with f0); ``method="tdpsola"`` shifts pitch directly and keeps
the formants in place.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

from course_lib.audio import resample
from course_lib.tsm._common import ArrayLike, as_batch, check_rate, check_sr, fix_length, restore
from course_lib.tsm.hptsm import hptsm
from course_lib.tsm.ola import ola
from course_lib.tsm.phase_vocoder import phase_vocoder
from course_lib.tsm.tdpsola import tdpsola
from course_lib.tsm.wsola import wsola

#: method name -> function ``f(x, sr, rate, **kwargs)``
METHODS: dict[str, Callable] = {
    "ola": ola,
    "wsola": wsola,
    "tdpsola": tdpsola,
    "phase_vocoder": phase_vocoder,
    "hptsm": hptsm,
}


def _method(method: str) -> Callable:
    if method not in METHODS:
        raise ValueError(f"method: unknown TSM method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method]


def time_stretch(x: ArrayLike, sr: int, rate: float, method: str = "wsola", **kwargs) -> ArrayLike:
    """Change the tempo of mono audio without changing its pitch.

    Args:
        x: ``(samples,)`` or ``(batch, samples)``, tensor or NumPy, float in [-1, 1].
        sr: sample rate in Hz.
        rate: speed factor, ``> 1`` = faster / shorter; output length ``round(samples / rate)``.
        method: ``"ola"``, ``"wsola"``, ``"tdpsola"``, ``"phase_vocoder"`` or ``"hptsm"``.
        **kwargs: method options, e.g. ``frame_length``, ``hop`` (samples), ``tolerance`` (WSOLA),
            ``phase_locking`` (phase vocoder / HPTSM), ``track`` (TD-PSOLA f0 track).
    Returns:
        the stretched audio, in the input's form.
    """
    return _method(method)(x, sr, rate, **kwargs)


def pitch_ratio_fraction(semitones: float, max_denominator: int = 200) -> Fraction:
    """The pitch factor ``2 ** (semitones / 12)`` as a small fraction ``p / q`` for polyphase resampling
    (error below 0.1 cent for ``max_denominator=200`` within +-2 octaves)."""
    return Fraction(2.0 ** (semitones / 12.0)).limit_denominator(max_denominator)


def pitch_shift(x: ArrayLike, sr: int, semitones: float, method: str = "wsola", **kwargs) -> ArrayLike:
    """Transpose mono audio by ``semitones`` keeping its duration.

    TSM methods: stretch by the pitch factor ``p / q``, then resample by ``q / p`` (band-limited,
    ``torchaudio``); the spectral envelope moves with f0. ``"tdpsola"``: pitch-synchronous grains are
    re-spaced directly, formants stay in place (voiced parts only).

    Args:
        x: ``(samples,)`` or ``(batch, samples)``, tensor or NumPy, float in [-1, 1].
        sr: sample rate in Hz.
        semitones: transposition (positive = up); limited to +-48.
        method: as for :func:`time_stretch`. **kwargs: method options.
    Returns:
        audio of the input's length and form.
    """
    sr = check_sr(sr)
    try:
        st = float(semitones)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"semitones: must be a number, got {semitones!r}") from exc
    if not math.isfinite(st) or abs(st) > 48:
        raise ValueError(f"semitones: must be finite and within +-48, got {semitones}")
    fn = _method(method)
    if method == "tdpsola":
        return tdpsola(x, sr, 1.0, st, **kwargs)
    xb, form = as_batch(x, min_samples=2)
    samples = xb.shape[-1]
    if st == 0:
        return restore(xb.clone(), form)
    ratio = pitch_ratio_fraction(st)
    p, q = ratio.numerator, ratio.denominator
    stretched = fn(xb, sr, check_rate(q / p), **kwargs)
    y = resample(stretched, p, q)
    return restore(fix_length(y, samples), form)
