"""Physical models of plucked strings (Lesson 01): Karplus-Strong and a digital waveguide.

Both models are one feedback loop: a delay line of ``P = sr / f0`` samples whose output is
filtered (a little high-frequency loss), scaled (the decay) and fed back::

    y[n] = x[n] + rho * sum_j h[j] * y[n - N - j]

``N`` is the integer part of the delay, ``h`` the loop filter: a symmetric 3-tap low-pass
``[a, 1 - 2a, a]`` (linear phase, exactly one sample of delay at every frequency) convolved
with a 3rd-order Lagrange fractional delay. The fractional part is tuned so that the *phase
delay of the whole loop at f0* equals ``P`` exactly, so the string holds its pitch even at
high f0 where a whole-sample delay would be out of tune by tens of cents.

Because every tap of the loop reaches back at least ``N`` samples, ``N`` output samples can
be computed at once from samples already known: the time loop advances one (shortest)
period per step and is vectorised over the batch and over the samples of that period.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch

from course_lib import DEFAULT_SR
from course_lib.spectral import precise_dtype
from course_lib.synth.core import Param, batch_size_of, make_generator, n_samples, resolve_device

Device = Union[str, torch.device, None]

_LAGRANGE_ORDER = 3
# the loop is designed in float64 on the CPU (a few numbers per voice; float64 is not available
# on every accelerator, e.g. Apple MPS) and only the synthesis runs on the requested device
_CPU = torch.device("cpu")


def _per_voice(p: Param, name: str, batch: int, device: torch.device) -> torch.Tensor:
    """A scalar or ``(batch,)`` parameter as a float64 ``(batch,)`` tensor (no per-sample controls)."""
    t = torch.as_tensor(p, dtype=torch.float64, device=device)
    if t.ndim == 0:
        return t.expand(batch).clone()
    if t.ndim == 1 and t.shape[0] in (1, batch):
        return t.expand(batch).clone()
    raise ValueError(f"{name} must be a number or a (batch,) tensor, got shape {tuple(t.shape)}")


def _lagrange_taps(d: torch.Tensor) -> torch.Tensor:
    """3rd-order Lagrange fractional-delay taps for delays ``d`` (batch,) -> (batch, 4)."""
    ks = range(_LAGRANGE_ORDER + 1)
    taps = []
    for k in ks:
        h = torch.ones_like(d)
        for m in ks:
            if m != k:
                h = h * (d - m) / (k - m)
        taps.append(h)
    return torch.stack(taps, dim=-1)


def _loop_taps(period: torch.Tensor, a: torch.Tensor, sr: int, f0: torch.Tensor):
    """Integer delay ``N`` (batch,) and loop filter taps ``h`` (batch, 6) with phase delay ``period`` at f0.

    The loop delay is ``N + 1 (low-pass) + d (Lagrange)``; ``d`` starts in [1, 2) (the
    well-behaved middle of the 4-tap interpolator) and is refined by a few fixed-point steps
    on the exact phase delay of the combined filter at ``f0``.
    """
    lowpass = torch.stack([a, 1 - 2 * a, a], dim=-1)  # (B, 3), delay 1 sample, DC gain 1
    n_int = torch.floor(period - 2.0)
    target = period - n_int  # wanted delay of the filter part, in [2, 3)
    d = target - 1.0
    omega = 2 * math.pi * f0 / sr
    j = torch.arange(3 + _LAGRANGE_ORDER, dtype=torch.float64, device=period.device)
    for _ in range(4):
        lag = _lagrange_taps(d)
        h = _conv_taps(lowpass, lag)
        tau_nom = 1.0 + d
        # residual phase of H(e^{jw}) e^{jw tau_nom}: small, so no phase unwrapping problem
        ph = omega[:, None] * (tau_nom[:, None] - j)
        resid = torch.atan2((h * torch.sin(ph)).sum(-1), (h * torch.cos(ph)).sum(-1))
        tau = tau_nom - resid / omega
        d = d + (target - tau)
    h = _conv_taps(lowpass, _lagrange_taps(d))
    return n_int.long(), h, omega


def _conv_taps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full convolution of two batches of FIR taps ``(B, n)``, ``(B, m)`` -> ``(B, n + m - 1)``."""
    out = torch.zeros(a.shape[0], a.shape[1] + b.shape[1] - 1, dtype=a.dtype, device=a.device)
    for i in range(a.shape[1]):
        out[:, i : i + b.shape[1]] += a[:, i : i + 1] * b
    return out


def _gain_at(h: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """Magnitude of FIR taps ``h`` (B, K) at angular frequency ``omega`` (B,) in rad/sample."""
    j = torch.arange(h.shape[1], dtype=h.dtype, device=h.device)
    ph = omega[:, None] * j
    return torch.hypot((h * torch.cos(ph)).sum(-1), (h * torch.sin(ph)).sum(-1))


def feedback_loop(excitation: torch.Tensor, delay: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Run ``y[n] = x[n] + sum_j taps[:, j] * y[n - delay - j]`` over a batch, one period per step.

    Args:
        excitation: ``(batch, samples)`` input ``x``.
        delay: ``(batch,)`` integer delays in samples (>= 1).
        taps: ``(batch, K)`` loop filter taps (the loop gain is folded in).

    Returns:
        ``(batch, samples)`` float32 output ``y``.
    """
    if excitation.ndim != 2:
        raise ValueError(f"excitation must be (batch, samples), got shape {tuple(excitation.shape)}")
    if int(delay.min()) < 1:
        raise ValueError(f"loop delay must be >= 1 sample, got {int(delay.min())}")
    batch, total = excitation.shape
    dev = excitation.device
    k = taps.shape[1]
    block = int(delay.min())
    pad = int(delay.max()) + k
    buf = torch.zeros(batch, pad + total, dtype=torch.float32, device=dev)
    buf[:, pad:] = excitation.to(torch.float32)
    offsets = delay.to(dev).long()[:, None] + torch.arange(k, device=dev)[None, :]  # (B, K)
    base = pad + torch.arange(block, device=dev)[None, None, :] - offsets[:, :, None]  # (B, K, L)
    base = base.reshape(batch, -1)
    w = taps.to(device=dev, dtype=torch.float32)[:, None, :]  # (B, 1, K)
    for t in range(0, total, block):
        n = min(block, total - t)
        idx = base if n == block else (base.reshape(batch, k, block)[:, :, :n].reshape(batch, -1))
        past = buf.gather(1, idx + t).reshape(batch, k, n)
        buf[:, pad + t : pad + t + n] += torch.bmm(w, past).squeeze(1)
    return buf[:, pad:]


def _check_pitch(f0: torch.Tensor, sr: int) -> None:
    if not torch.all(torch.isfinite(f0)) or float(f0.min()) <= 0:
        raise ValueError(f"f0 must be finite and > 0 Hz, got min {float(f0.min())}")
    if float(f0.max()) > sr / 4:
        raise ValueError(f"f0 must be <= sr/4 = {sr / 4} Hz for a string model, got {float(f0.max())} Hz")


def _loop_gain(decay: torch.Tensor, t60: Optional[Param], f0: torch.Tensor, filt_gain: torch.Tensor,
               batch: int, device: torch.device) -> torch.Tensor:
    """Per-period loop gain ``rho`` from ``decay`` or, when given, from ``t60`` seconds at f0."""
    if t60 is None:
        if float(decay.min()) <= 0 or float(decay.max()) > 1:
            raise ValueError(f"decay (per-period loop gain) must be in (0, 1], got {decay.tolist()}")
        return decay
    t60v = _per_voice(t60, "t60", batch, device)
    if float(t60v.min()) <= 0:
        raise ValueError(f"t60 must be > 0 s, got {t60v.tolist()}")
    per_period = torch.pow(10.0, -3.0 / (t60v * f0))  # -60 dB after t60 * f0 periods
    # a loop gain of 1 would let any DC offset ring forever: stay just below it
    return torch.clamp(per_period / filt_gain, max=0.9999)


def karplus_strong(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    decay: Param = 0.996,
    t60: Optional[Param] = None,
    brightness: Param = 0.5,
    amplitude: float = 0.8,
    seed: Optional[int] = None,
    batch: Optional[int] = None,
    device: Device = None,
) -> torch.Tensor:
    """Karplus-Strong plucked string: a noise burst recirculating through a tuned, lossy delay loop.

    Args:
        f0: fundamental in Hz, a number or ``(batch,)`` tensor (0 < f0 <= sr/4); the pitch is exact
            (fractional delay with the loop filter's delay compensated at f0).
        duration: length in seconds.
        sr: sample rate in Hz.
        decay: per-period loop gain in (0, 1] (classic 0.996); each period the wave loses
            ``1 - decay`` of its amplitude on top of the low-pass loss. Ignored if ``t60`` is given.
        t60: if given, the time in seconds for the fundamental to decay by 60 dB (overrides ``decay``);
            a T60 longer than the loop low-pass allows at that pitch is capped (decays faster).
        brightness: 0..1; 1 = no low-pass in the loop (long, bright ring), 0 = strongest damping
            of high harmonics (dull). Also colours the initial noise burst.
        amplitude: peak of each output voice (each voice is peak-normalised to it).
        seed: seed of the noise burst (``None``: global RNG).
        batch: number of voices when all parameters are scalars.
        device: torch device (default: that of a tensor parameter, else CPU).

    Returns:
        ``(batch, n_samples(duration, sr))`` float32 in [-amplitude, amplitude].
    """
    dev = resolve_device(device, f0, decay, brightness)
    b = batch_size_of(f0, decay, brightness, batch=batch)
    f0v = _per_voice(f0, "f0", b, _CPU)
    _check_pitch(f0v, sr)
    br = _per_voice(brightness, "brightness", b, _CPU)
    if float(br.min()) < 0 or float(br.max()) > 1:
        raise ValueError(f"brightness must be in [0, 1], got {br.tolist()}")
    dec = _per_voice(decay, "decay", b, _CPU)
    total = n_samples(duration, sr)
    if total == 0:
        return torch.zeros(b, 0, device=dev)
    period = sr / f0v
    n_int, h, omega = _loop_taps(period, 0.25 * (1 - br), sr, f0v)
    rho = _loop_gain(dec, t60, f0v, _gain_at(h, omega), b, _CPU)
    taps = (rho[:, None] * h).to(dev, precise_dtype(dev))
    n_int = n_int.to(dev)
    br = br.to(dev, precise_dtype(dev))

    # excitation: one period (the integer part) of zero-mean noise, low-passed by (1 - brightness)
    gen = make_generator(seed)
    burst_len = int(n_int.max())
    noise = torch.rand(b, burst_len, generator=gen, dtype=torch.float32).to(dev) * 2 - 1
    smooth = noise
    for _ in range(2):  # two passes of the [1/4, 1/2, 1/4] smoother: a gentle low-pass
        padded = torch.nn.functional.pad(smooth, (1, 1))
        smooth = 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]
    w = br.to(torch.float32)[:, None]
    noise = w * noise + (1 - w) * smooth
    mask = torch.arange(burst_len, device=dev)[None, :] < n_int[:, None]
    noise = noise * mask
    noise = noise - (noise.sum(-1, keepdim=True) / n_int[:, None].to(torch.float32)) * mask
    exc = torch.zeros(b, max(total, 1), device=dev)
    m = min(burst_len, total)
    exc[:, :m] = noise[:, :m]
    y = feedback_loop(exc, n_int, taps)[:, :total]
    return _normalise(y, amplitude)


def _normalise(y: torch.Tensor, amplitude: float) -> torch.Tensor:
    if not 0 < amplitude <= 1:
        raise ValueError(f"amplitude must be in (0, 1], got {amplitude}")
    peak = y.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    return (amplitude * y / peak).to(torch.float32)


def waveguide_string(
    f0: Param,
    duration: float,
    sr: int = DEFAULT_SR,
    *,
    pluck_position: Param = 0.2,
    damping: Param = 0.3,
    t60: Param = 2.0,
    pickup_position: Optional[float] = None,
    amplitude: float = 0.8,
    batch: Optional[int] = None,
    device: Device = None,
) -> torch.Tensor:
    """Digital waveguide string: two travelling waves on a string fixed at both ends, plucked.

    The string (``sr / f0 / 2`` samples long) starts at rest with a triangular displacement
    peaking at ``pluck_position``; half of it travels each way. Both ends reflect with a sign
    flip; the bridge end also low-passes (``damping``) and attenuates (``t60``). The two
    directions are simulated as one round-trip loop of ``sr / f0`` samples (same tuned loop as
    :func:`karplus_strong`), so the spectrum shows the pluck comb: harmonics ``k`` with
    ``k * pluck_position`` an integer are missing.

    Args:
        f0: fundamental in Hz, number or ``(batch,)`` tensor (0 < f0 <= sr/4).
        duration: length in seconds.
        sr: sample rate in Hz.
        pluck_position: where the string is plucked, as a fraction (0, 1) of its length from the bridge.
        damping: 0..1, loss of high harmonics per round trip (0 = none, 1 = strongest).
        t60: time in seconds for the fundamental to decay by 60 dB.
        pickup_position: if given (0..1 from the bridge), output the displacement at that point
            (an electric-guitar pickup, adding its own comb); default: the wave arriving at the bridge.
        amplitude: peak of each output voice.
        batch: number of voices when all parameters are scalars.
        device: torch device.

    Returns:
        ``(batch, n_samples(duration, sr))`` float32.
    """
    dev = resolve_device(device, f0, pluck_position, damping, t60)
    b = batch_size_of(f0, pluck_position, damping, t60, batch=batch)
    f0v = _per_voice(f0, "f0", b, _CPU)
    _check_pitch(f0v, sr)
    beta = _per_voice(pluck_position, "pluck_position", b, _CPU)
    if float(beta.min()) <= 0 or float(beta.max()) >= 1:
        raise ValueError(f"pluck_position must be in (0, 1), got {beta.tolist()}")
    damp = _per_voice(damping, "damping", b, _CPU)
    if float(damp.min()) < 0 or float(damp.max()) > 1:
        raise ValueError(f"damping must be in [0, 1], got {damp.tolist()}")
    if pickup_position is not None and not 0 < pickup_position < 1:
        raise ValueError(f"pickup_position must be in (0, 1) or None, got {pickup_position}")
    total = n_samples(duration, sr)
    if total == 0:
        return torch.zeros(b, 0, device=dev)
    period = sr / f0v
    n_int, h, omega = _loop_taps(period, 0.25 * damp, sr, f0v)
    rho = _loop_gain(torch.ones_like(f0v), t60, f0v, _gain_at(h, omega), b, _CPU)

    # initial loop content, in the order it arrives at the bridge (k samples from now):
    # k < P/2: left-going wave at x = k, inverted by the bridge; k >= P/2: right-going wave at
    # x = P - k, inverted twice (nut, then bridge). Both carry half the triangular shape.
    half = period / 2
    k = torch.arange(int(n_int.max()), dtype=torch.float64)[None, :]  # designed on the CPU
    x = torch.where(k < half[:, None], k, period[:, None] - k)  # string position, samples from bridge
    peak_at = beta[:, None] * half[:, None]
    shape = torch.where(x <= peak_at, x / peak_at, (half[:, None] - x) / (half[:, None] - peak_at))
    shape = shape.clamp(min=0) * 0.5
    valid = k < n_int[:, None]
    exc_head = torch.where(k < half[:, None], -shape, shape) * valid
    # the loop is truncated to its integer part: remove the small DC offset that leaves behind
    exc_head = (exc_head - exc_head.sum(-1, keepdim=True) / n_int[:, None]) * valid
    extra = 0 if pickup_position is None else int(math.ceil(pickup_position * float(half.max()) * 2)) + 1
    exc = torch.zeros(b, max(total + extra, 1), device=dev)
    m = min(exc_head.shape[1], exc.shape[1])
    exc[:, :m] = exc_head[:, :m].to(device=dev, dtype=torch.float32)
    y = feedback_loop(exc, n_int, rho[:, None] * h)
    if pickup_position is not None:
        # displacement at x_p: right-going y[n - x_p] plus left-going -y[n + x_p] (delayed by x_p)
        shift = torch.round(pickup_position * half).long().to(dev)  # (B,)
        idx = torch.arange(total, device=dev)[None, :] + 2 * shift[:, None]
        y = y[:, :total] - y.gather(1, idx)
    return _normalise(y[:, :total], amplitude)
