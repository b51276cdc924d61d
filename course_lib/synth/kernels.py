"""Optional compiled kernels (numba) for the per-sample recursions of :mod:`course_lib.synth`.

A nonlinear recursion such as the ladder filter cannot be vectorised over time, and a Python loop
over samples pays the interpreter's overhead (and a dozen small tensor ops) per sample. These
kernels run the same equations as compiled loops over plain float arrays: the torch code stays
the reference implementation (and the only one for autograd and CUDA tensors); tests compare the
two on random inputs.

numba is not a course dependency of its own (librosa brings it). If it cannot be imported, or
``COURSE_NO_NUMBA=1`` is set, :func:`available` is ``False`` and the callers keep their torch path.
Kernels compile on first use (about a second, cached on disk by numba where it may write).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
import os
import warnings

import numpy as np
import torch

#: ``tanh(v) ~ v P(v^2) / Q(v^2)`` on ``|v| <= TANH_CLIP``, saturated beyond: a rational least-squares
#: fit (degree 9 over 8 in ``v``; weighted linear fit refined to near-minimax, computed once with
#: numpy). Max abs error 3.4e-8 on [-9, 9] (tests/test_synth_kernels.py checks it against
#: ``numpy.tanh``), below float32 resolution at 1. Unlike ``math.tanh`` it is plain arithmetic, so
#: the compiler vectorises it across voices (``math.tanh`` alone cost 3x the rest of the ladder).
TANH_P = (0.9999999162892111, 0.13379402102819815, 0.003493909018123498, 2.0590741107606227e-05,
          1.3345797840244854e-08)
TANH_Q = (1.0, 0.4671270257393393, 0.025869961476321483, 0.00032832965958451356, 7.769473474632512e-07)
TANH_CLIP = 9.0


def available() -> bool:
    """True when the compiled kernels can be used (numba imports and ``COURSE_NO_NUMBA`` is unset)."""
    if os.environ.get("COURSE_NO_NUMBA", "") not in ("", "0"):
        return False
    return _compiled() is not None


def serves(*tensors: torch.Tensor) -> bool:
    """True when a kernel may replace the torch path for these inputs: all on the CPU, none needing
    a gradient (autograd and CUDA keep the torch reference), and :func:`available`."""
    if any(t.device.type != "cpu" for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return available()


@functools.lru_cache(maxsize=1)
def _compiled():
    """Build the kernels once -> a namespace of jitted functions, or ``None`` without numba."""
    try:
        import numba
    except Exception:  # noqa: BLE001 - any import problem means "use the torch path"
        return None
    try:
        return _build(numba, cache=True)
    except Exception as exc:  # noqa: BLE001 - e.g. a read-only tree where numba cannot cache
        warnings.warn(f"numba kernels built without an on-disk cache ({type(exc).__name__}: {exc})")
        try:
            return _build(numba, cache=False)
        except Exception:  # noqa: BLE001
            return None


def _build(numba, cache: bool):
    p0, p1, p2, p3, p4 = TANH_P
    _, q1, q2, q3, q4 = TANH_Q
    clip = TANH_CLIP
    jit = functools.partial(numba.njit, cache=cache, fastmath=True, nogil=True)

    @jit(inline="always")
    def tanh_rational(v):
        if v > clip:
            v = clip
        if v < -clip:
            v = -clip
        z = v * v
        return v * (p0 + z * (p1 + z * (p2 + z * (p3 + z * p4)))) / (1.0 + z * (q1 + z * (q2 + z * (q3 + z * q4))))

    @jit
    def tanh_array(v):
        out = np.empty_like(v)
        for i in range(v.shape[0]):
            out[i] = tanh_rational(v[i])
        return out

    @jit
    def ladder_time_major(x, gain, k, drive, out):
        """ZDF ladder over ``x`` (samples, voices) float32 -> ``out`` (samples, voices).

        gain: TPT stage gain G, (1|samples, voices); k: feedback 4 resonance, (1|samples, voices);
        drive: (voices,). The state is float64; voices are the inner loop (independent, vectorised).
        """
        n_samples, n_voices = x.shape
        vary_g = gain.shape[0] > 1
        vary_k = k.shape[0] > 1
        s0 = np.zeros(n_voices)
        s1 = np.zeros(n_voices)
        s2 = np.zeros(n_voices)
        s3 = np.zeros(n_voices)
        for n in range(n_samples):
            g_row = gain[n] if vary_g else gain[0]
            k_row = k[n] if vary_k else k[0]
            x_row = x[n]
            o_row = out[n]
            for b in range(n_voices):
                g = np.float64(g_row[b])
                kk = np.float64(k_row[b])
                g2 = g * g
                a0, a1, a2, a3 = s0[b], s1[b], s2[b], s3[b]
                omg = 1.0 - g
                # u = tanh((x - k Sigma) / (1 + k G^4)), Sigma = sum_i G^(4-i) (1 - G) s_i
                sigma = omg * (g2 * g * a0 + g2 * a1 + g * a2 + a3)
                u = tanh_rational((drive[b] * np.float64(x_row[b]) - kk * sigma) / (1.0 + kk * g2 * g2))
                y1 = g * u + omg * a0
                y2 = g * y1 + omg * a1
                y3 = g * y2 + omg * a2
                y4 = g * y3 + omg * a3
                s0[b] = 2.0 * y1 - a0
                s1[b] = 2.0 * y2 - a1
                s2[b] = 2.0 * y3 - a2
                s3[b] = 2.0 * y4 - a3
                o_row[b] = y4

    exact = functools.partial(numba.njit, cache=cache, nogil=True)  # IEEE order kept: bit-equal to torch
    f32 = np.float32

    @exact
    def before_release(t, ab, ac, ad, dc, sb, sus_drop):
        """The attack-decay-sustain level at time ``t`` (float32; ``envelopes.adsr``'s order)."""
        if t < ab:
            return t / ac
        if t < ad:
            return f32(1.0) - sus_drop * (t - ab) / dc
        return sb

    @exact
    def adsr_envelope(a, d, s, r, off, sr, out):
        """Linear ADSR in float32, the operations of ``envelopes.adsr`` in its order (bit-equal).

        a, d, s, r, off: (voices,) float32 (attack, decay, sustain, release, note-off); out (voices, samples).
        """
        n_voices, n_samples = out.shape
        eps = f32(1e-9)
        one = f32(1.0)
        zero = f32(0.0)
        srf = f32(sr)
        for b in range(n_voices):
            ab, db, sb, rb, ob = a[b], d[b], s[b], r[b], off[b]
            ac, dc, rc = max(ab, eps), max(db, eps), max(rb, eps)
            ad = ab + db
            sus_drop = one - sb
            at_off = before_release(ob, ab, ac, ad, dc, sb, sus_drop)  # the level at note-off
            row = out[b]
            for n in range(n_samples):
                t = f32(n) / srf
                if t < ob:
                    v = before_release(t, ab, ac, ad, dc, sb, sus_drop)
                else:
                    frac = one - (t - ob) / rc
                    frac = min(max(frac, zero), one)
                    v = at_off * frac
                row[n] = min(max(v, zero), one)

    @exact
    def polyblep_saw(freq, phase0, sr, out):
        """PolyBLEP sawtooth, the operations of ``oscillators`` (phase accumulated in float64, as
        ``core.phase_from_frequency``; wave and correction in float32) -> out (voices, samples).

        freq: (voices, 1|samples) float32 Hz; phase0: (voices,) float64 cycles.
        """
        n_voices, n_samples = out.shape
        vary = freq.shape[1] > 1
        one = f32(1.0)
        two = f32(2.0)
        srf = f32(sr)
        for b in range(n_voices):
            acc = 0.0
            p0 = phase0[b]
            row = out[b]
            for n in range(n_samples):
                f = freq[b, n if vary else 0]
                inc = np.float64(f) / sr
                acc += inc
                ph = (acc - inc) + p0
                t = f32(ph - np.floor(ph))
                dt = min(max(f / srf, f32(1e-9)), f32(0.5))
                if t < dt:
                    x1 = t / dt
                    blep = two * x1 - x1 * x1 - one
                elif t > one - dt:
                    x2 = (t - one) / dt
                    blep = x2 * x2 + two * x2 + one
                else:
                    blep = f32(0.0)
                row[n] = (two * t - one) - blep

    return SimpleNamespace(
        tanh_array=tanh_array,
        ladder_time_major=ladder_time_major,
        adsr_envelope=adsr_envelope,
        polyblep_saw=polyblep_saw,
    )


def tanh(v: np.ndarray) -> np.ndarray:
    """The kernels' rational ``tanh`` of a float64 1-D array (for tests)."""
    return _compiled().tanh_array(np.ascontiguousarray(v, dtype=np.float64))


def ladder_time_major(x: np.ndarray, gain: np.ndarray, k: np.ndarray, drive: np.ndarray) -> np.ndarray:
    """Ladder recursion, time-major: ``x`` (samples, voices) float32, ``gain`` and ``k`` (1|samples,
    voices) float32, ``drive`` (voices,) -> float32 (samples, voices). See ``filters.ladder``."""
    out = np.empty(x.shape, dtype=np.float32)
    _compiled().ladder_time_major(x, gain, k, np.ascontiguousarray(drive, dtype=np.float64), out)
    return out


def adsr_envelope(attack: np.ndarray, decay: np.ndarray, sustain: np.ndarray, release: np.ndarray,
                  note_off: np.ndarray, samples: int, sr: int) -> np.ndarray:
    """Linear ADSR: per-voice float32 (voices,) stage times (s), sustain level, note-off (s)
    -> float32 (voices, samples), bit-equal to ``envelopes.adsr``'s torch path."""
    args = [np.ascontiguousarray(v, dtype=np.float32) for v in (attack, decay, sustain, release, note_off)]
    out = np.empty((args[0].shape[0], samples), dtype=np.float32)
    _compiled().adsr_envelope(*args, sr, out)
    return out


def polyblep_saw(freq: np.ndarray, phase0: np.ndarray, samples: int, sr: int) -> np.ndarray:
    """PolyBLEP saw: ``freq`` float32 (voices, 1|samples) in Hz, ``phase0`` float64 (voices,) in
    cycles -> float32 (voices, samples), as ``oscillators``' PolyBLEP branch renders it."""
    out = np.empty((freq.shape[0], samples), dtype=np.float32)
    _compiled().polyblep_saw(np.ascontiguousarray(freq, dtype=np.float32),
                             np.ascontiguousarray(phase0, dtype=np.float64), sr, out)
    return out
