"""FM (phase-modulation) synthesis, as in the Yamaha DX7 (Lesson 01).

Two operators: ``y = sin(2 pi fc t + I sin(2 pi fm t))`` with ``fm = ratio * fc``. Its spectrum
has lines at ``fc + n fm`` with amplitudes ``|J_n(I)|`` (Bessel functions of the first kind), see
:func:`bessel_sideband_amplitudes`. :func:`fm_operators` wires 4 or 6 operators by an
"algorithm": a modulator's output (its level is a modulation index in radians) is added to the
phase of the operators it feeds; the carriers are summed.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import scipy.special
import torch

from course_lib import DEFAULT_SR
from course_lib.synth.core import Param, as_control, batch_size_of, n_samples, phase_from_frequency, resolve_device

Device = Union[str, torch.device, None]

#: Named algorithms. Operators are numbered from 1 as on Yamaha synths; ``mods`` lists
#: ``(modulator, target)`` pairs, ``carriers`` the operators that are heard.
ALGORITHMS: dict[str, dict] = {
    # 4 -> 3 -> 2 -> 1: one stack, the brightest/most complex
    "stack": {"ops": 4, "mods": [(4, 3), (3, 2), (2, 1)], "carriers": [1]},
    # 2 -> 1 and 4 -> 3: two independent 2-op voices (e.g. DX7 electric piano style)
    "two_stacks": {"ops": 4, "mods": [(2, 1), (4, 3)], "carriers": [1, 3]},
    # 2, 3 and 4 all modulate 1
    "branch": {"ops": 4, "mods": [(2, 1), (3, 1), (4, 1)], "carriers": [1]},
    # 4 -> 3, then 3 and 2 modulate 1
    "y": {"ops": 4, "mods": [(4, 3), (3, 1), (2, 1)], "carriers": [1]},
    # 4 modulates three carriers
    "one_to_three": {"ops": 4, "mods": [(4, 1), (4, 2), (4, 3)], "carriers": [1, 2, 3]},
    # no modulation: an additive organ of four sines
    "parallel": {"ops": 4, "mods": [], "carriers": [1, 2, 3, 4]},
    # 6 operators, three 2-op stacks (DX7 algorithm 5)
    "three_stacks6": {"ops": 6, "mods": [(2, 1), (4, 3), (6, 5)], "carriers": [1, 3, 5]},
    # 6 operators, 6 -> 5 -> 4 -> 3 and 2 -> 1 (DX7 algorithm 1, without feedback)
    "dx7_1": {"ops": 6, "mods": [(2, 1), (6, 5), (5, 4), (4, 3)], "carriers": [1, 3]},
}


def bessel_sideband_amplitudes(index: Param, n_sidebands: int) -> torch.Tensor:
    """Signed amplitudes ``J_n(index)`` of the FM sidebands ``n = -N .. N`` (``J_-n = (-1)^n J_n``).

    Args:
        index: modulation index I (radians of peak phase deviation): number or ``(batch,)``.
        n_sidebands: N, the number of sidebands on each side of the carrier.
    Returns:
        float64 ``(2N + 1,)`` for a number, ``(batch, 2N + 1)`` for a tensor; column ``N + n``
        holds sideband ``n`` (column N is the carrier).
    """
    if n_sidebands < 0:
        raise ValueError(f"n_sidebands must be >= 0, got {n_sidebands}")
    idx = np.asarray(index.detach().cpu().numpy() if isinstance(index, torch.Tensor) else index, dtype=np.float64)
    n = np.arange(-n_sidebands, n_sidebands + 1)
    vals = scipy.special.jv(n, idx[..., None])
    return torch.from_numpy(np.ascontiguousarray(vals))


def fm2(
    carrier_hz: Param,
    ratio: Param,
    index: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    index_envelope: torch.Tensor | None = None,
    feedback: Param = 0.0,
    amplitude: Param = 1.0,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Two-operator FM: ``amplitude * sin(2 pi fc t + I(t) m(t))`` -> float32 ``(batch, samples)``.

    Args:
        carrier_hz: carrier frequency fc in Hz (number, ``(batch,)`` or ``(batch, samples)``).
        ratio: modulator frequency / carrier frequency (number or ``(batch,)``).
        index: modulation index I in radians (number, ``(batch,)`` or ``(batch, samples)``).
        index_envelope: optional ``(batch, samples)`` or ``(samples,)`` multiplier of the index
            (e.g. an ADSR: bright attack that mellows, the classic FM brass/bell gesture).
        feedback: modulator self-feedback beta (DX7 style, ``m[n] = sin(2 pi fm t + beta m[n-1])``);
            0 gives ``m = sin(2 pi fm t)``. Nonzero feedback runs a per-sample loop (slower).
        amplitude: output gain (number, ``(batch,)`` or ``(batch, samples)``).
    """
    params = (carrier_hz, ratio, index, feedback, amplitude)
    dev = resolve_device(device, *params, *(p for p in (index_envelope,) if p is not None))
    b = batch_size_of(*params, *((index_envelope,) if isinstance(index_envelope, torch.Tensor) and index_envelope.ndim == 2 else ()), batch=batch)
    samples = n_samples(duration, sr)
    fc = as_control(carrier_hz, b, samples, dev)
    if not torch.isfinite(fc).all() or (fc < 0).any():
        raise ValueError("carrier_hz must be finite and >= 0 Hz")
    rat = as_control(ratio, b, 1, dev)
    if (rat < 0).any():
        raise ValueError(f"ratio must be >= 0, got {ratio}")
    ind = as_control(index, b, samples, dev)
    if index_envelope is not None:
        envt = torch.as_tensor(index_envelope, dtype=torch.float32, device=dev)
        if envt.ndim == 1:
            envt = envt.reshape(1, -1)
        if envt.ndim != 2 or envt.shape[-1] != samples:
            raise ValueError(f"index_envelope must have shape (samples,) or (batch, samples) with samples={samples}, got {tuple(envt.shape)}")
        ind = ind * envt
    phase_c = phase_from_frequency(fc, sr, samples)
    phase_m = phase_from_frequency(fc * rat, sr, samples)
    fb = as_control(feedback, b, 1, dev)
    if bool((fb == 0).all()):
        mod = torch.sin(2 * math.pi * phase_m)
    else:
        mod = _feedback_sine(phase_m, fb.reshape(b))
    y = torch.sin(2 * math.pi * phase_c + ind * mod)
    return (as_control(amplitude, b, samples, dev) * y).to(torch.float32)


def _feedback_sine(phase: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``m[n] = sin(2 pi phase[n] + beta * (m[n-1] + m[n-2]) / 2)`` (DX7 averages two samples)."""
    b, samples = phase.shape
    ang = (2 * math.pi * phase).T.contiguous()
    out = torch.empty(samples, b, dtype=torch.float32, device=phase.device)
    m1 = torch.zeros(b, dtype=torch.float32, device=phase.device)
    m2 = torch.zeros_like(m1)
    half_beta = 0.5 * beta
    for n in range(samples):
        m = torch.sin(torch.addcmul(ang[n], half_beta, m1 + m2))
        out[n] = m
        m2, m1 = m1, m
    return out.T


def _topological_order(n_ops: int, mods: list[tuple[int, int]]) -> list[int]:
    """Operators (1-based) ordered so that every modulator comes before its targets."""
    deps = {op: {src for src, dst in mods if dst == op} for op in range(1, n_ops + 1)}
    order: list[int] = []
    while len(order) < n_ops:
        ready = [op for op in range(n_ops, 0, -1) if op not in order and deps[op] <= set(order)]
        if not ready:
            raise ValueError(f"algorithm has a modulation cycle: {mods}")
        order.extend(ready)
    return order


def fm_operators(
    algorithm: Union[str, dict],
    frequencies_ratio: Param,
    levels: Param,
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    envelopes: torch.Tensor | None = None,
    batch: int | None = None,
    device: Device = None,
) -> torch.Tensor:
    """DX7-style multi-operator FM -> float32 ``(batch, samples)``.

    Operator ``i`` computes ``o_i = L_i env_i(t) sin(2 pi r_i phi(t) + sum_{j -> i} o_j)``: a
    modulator's level is a modulation index (radians), a carrier's level an output amplitude.
    The output is the sum of the carriers divided by their number.

    Args:
        algorithm: a name from :data:`ALGORITHMS` or a dict ``{"ops": n, "mods": [(src, dst), ...],
            "carriers": [...]}`` (operators numbered from 1).
        frequencies_ratio: ``(n_ops,)`` or ``(batch, n_ops)`` operator frequency / f0.
        levels: ``(n_ops,)`` or ``(batch, n_ops)``.
        f0: note frequency in Hz (number, ``(batch,)`` or ``(batch, samples)``).
        envelopes: optional ``(n_ops, samples)`` or ``(batch, n_ops, samples)`` level multipliers.
    """
    if isinstance(algorithm, str):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown FM algorithm {algorithm!r}; choose from {sorted(ALGORITHMS)} or pass a dict")
        algo = ALGORITHMS[algorithm]
    else:
        algo = algorithm
    try:
        n_ops, mods, carriers = int(algo["ops"]), [tuple(m) for m in algo["mods"]], list(algo["carriers"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"algorithm dict needs keys 'ops', 'mods', 'carriers': {exc}") from None
    for op in [o for m in mods for o in m] + carriers:
        if not 1 <= op <= n_ops:
            raise ValueError(f"operator {op} out of range 1..{n_ops} in algorithm {algorithm}")
    if not carriers:
        raise ValueError("algorithm needs at least one carrier")
    order = _topological_order(n_ops, mods)

    samples = n_samples(duration, sr)
    rat = torch.as_tensor(frequencies_ratio, dtype=torch.float32)
    lev = torch.as_tensor(levels, dtype=torch.float32)
    for name, t in (("frequencies_ratio", rat), ("levels", lev)):
        if t.shape[-1] != n_ops or t.ndim not in (1, 2):
            raise ValueError(f"{name} must have shape ({n_ops},) or (batch, {n_ops}), got {tuple(t.shape)}")
    extra = [t for t in (frequencies_ratio, levels) if isinstance(t, torch.Tensor) and t.ndim == 2]
    if isinstance(envelopes, torch.Tensor) and envelopes.ndim == 3:
        extra.append(envelopes)
    dev = resolve_device(device, f0, frequencies_ratio, levels)
    b = batch_size_of(f0, *extra, batch=batch)
    rat = rat.to(dev).reshape(-1, n_ops).expand(b, n_ops)
    lev = lev.to(dev).reshape(-1, n_ops).expand(b, n_ops)
    env = None
    if envelopes is not None:
        env = torch.as_tensor(envelopes, dtype=torch.float32, device=dev)
        if env.ndim == 2:
            env = env.unsqueeze(0)
        if env.ndim != 3 or env.shape[1] != n_ops or env.shape[2] != samples:
            raise ValueError(f"envelopes must have shape ({n_ops}, {samples}) or (batch, {n_ops}, {samples}), got {tuple(envelopes.shape)}")
        env = env.expand(b, n_ops, samples)
    freq = as_control(f0, b, samples, dev)
    if not torch.isfinite(freq).all() or (freq < 0).any():
        raise ValueError("f0 must be finite and >= 0 Hz")

    outputs: dict[int, torch.Tensor] = {}
    for op in order:
        i = op - 1
        ph = phase_from_frequency(freq * rat[:, i : i + 1], sr, samples)
        arg = 2 * math.pi * ph
        for src, dst in mods:
            if dst == op:
                arg = arg + outputs[src]
        level = lev[:, i : i + 1]
        if env is not None:
            level = level * env[:, i]
        outputs[op] = level * torch.sin(arg)
    y = sum(outputs[c] for c in carriers) / len(carriers)
    return y.to(torch.float32)
