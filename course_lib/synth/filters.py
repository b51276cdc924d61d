"""Synthesizer filters: RBJ biquads (static or swept) and a 4-pole Moog-style ladder (Lesson 01).

* :func:`biquad_coefficients` designs second-order sections with the formulas of R. Bristow-Johnson's
  "Audio EQ Cookbook" (lowpass, highpass, bandpass, notch, peak); :func:`frequency_response`
  evaluates any ``(b, a)`` on the unit circle.
* :func:`biquad` filters a batch. A fixed cutoff per voice runs through
  ``torchaudio.functional.lfilter`` in one call. A swept cutoff ``(batch, samples)`` is processed
  in blocks of ``block`` samples with coefficients held per block: every block is filtered from
  rest in one batched ``lfilter`` call and the state carried over from the previous block is added
  afterwards as the filter's free response (a short scan over blocks), so the result equals a
  direct-form-I filter whose coefficients change every ``block`` samples.
* :func:`ladder` is a zero-delay-feedback (topology-preserving transform) model of the Moog
  transistor ladder: four one-pole lowpass stages (24 dB/octave) in a feedback loop with a
  ``tanh`` saturator at its input. :func:`ladder_response` gives its small-signal response.

  Speed: the recursion is nonlinear, so it cannot be vectorised over time (no FFT, no linear scan).
  On the CPU, when no input needs a gradient, it runs as a numba kernel
  (:mod:`course_lib.synth.kernels`): the same equations compiled, voices as the inner loop so the
  compiler vectorises across them, float64 state, and a rational ``tanh`` accurate to 3.4e-8
  (``math.tanh`` is a library call the compiler cannot vectorise). Chosen over a C++ extension
  (a compiler at install time, a build per platform) and a compiled scan (``torch.compile`` or
  ``associative_scan`` need an associative, i.e. linear, step): numba is already installed with
  librosa and compiles on first use. It agrees with the torch path to float32 rounding
  (tests/test_synth_kernels.py, 2e-6 on swept cutoffs). The torch loop over samples
  (vectorised over the batch) stays the reference and the only path for autograd and CUDA
  tensors; it is also used whenever numba is missing or ``COURSE_NO_NUMBA=1``.
* :func:`fir_from_magnitudes` designs linear-phase FIR filters by frequency sampling (a Hann-windowed
  inverse FFT of a magnitude response) and :func:`filtered_noise` shapes white noise frame by frame
  with them: the differentiable noise synthesiser of DDSP (Lesson 07).
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF

from course_lib.synth import kernels
from course_lib.synth.core import Param, as_control, batch_size_of
from course_lib.synth.oscillators import noise

FILTER_KINDS = ("lowpass", "highpass", "bandpass", "notch", "peak")


def _validate_cutoff(cutoff: torch.Tensor, sr: int, name: str = "cutoff_hz") -> None:
    if sr <= 0:
        raise ValueError(f"sample rate must be > 0 Hz, got {sr}")
    if cutoff.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(cutoff.detach()))  # one pass; NaN propagates into both
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or inf")
    if lo <= 0 or hi >= 0.5 * sr:
        raise ValueError(
            f"{name} must lie strictly between 0 and Nyquist ({0.5 * sr:g} Hz); "
            f"got values in [{lo:g}, {hi:g}] Hz"
        )


def biquad_coefficients(
    kind: str, cutoff_hz: Param, q: Param, sr: int, gain_db: Param = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """RBJ-cookbook biquad design, normalised so that ``a[..., 0] == 1``.

    Args:
        kind: ``"lowpass"``, ``"highpass"``, ``"bandpass"`` (0 dB peak), ``"notch"`` or ``"peak"``.
        cutoff_hz: cutoff / centre frequency in Hz, in (0, sr/2); number or tensor of any shape.
        q: quality factor (> 0); 0.7071 gives a Butterworth low/highpass.
        sr: sample rate in Hz. gain_db: boost/cut in dB (``"peak"`` only).
    Returns:
        ``(b, a)``, each float64 ``(batch, 3)`` for numbers / ``(batch,)`` inputs, or
        ``(*shape, 3)`` for inputs broadcasting to ``shape``; on the CPU (designed in float64,
        which Apple MPS lacks: callers move them to the audio's device as float32).
    """
    if kind not in FILTER_KINDS:
        raise ValueError(f"filter kind must be one of {FILTER_KINDS}, got {kind!r}")
    dev = torch.device("cpu")
    fc = torch.as_tensor(cutoff_hz, dtype=torch.float64, device=dev)
    qq = torch.as_tensor(q, dtype=torch.float64, device=dev)
    gd = torch.as_tensor(gain_db, dtype=torch.float64, device=dev)
    _validate_cutoff(fc, sr)
    if (qq <= 0).any() or not torch.isfinite(qq).all():
        raise ValueError(f"q must be a finite number > 0, got {q}")
    fc, qq, gd = torch.broadcast_tensors(fc, qq, gd)
    if fc.ndim == 0:
        fc, qq, gd = fc.reshape(1), qq.reshape(1), gd.reshape(1)
    w0 = 2 * math.pi * fc / sr
    cw, sw = torch.cos(w0), torch.sin(w0)
    alpha = sw / (2 * qq)
    one = torch.ones_like(w0)
    if kind == "lowpass":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "bandpass":
        b = [alpha, 0 * w0, -alpha]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "notch":
        b = [one, -2 * cw, one]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    else:  # peak
        amp = torch.pow(10.0, gd / 40.0)
        b = [1 + alpha * amp, -2 * cw, 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * cw, 1 - alpha / amp]
    bt, at = torch.stack(b, dim=-1), torch.stack(a, dim=-1)
    a0 = at[..., :1]
    return bt / a0, at / a0


def frequency_response(b: torch.Tensor, a: torch.Tensor, freqs_hz: Param, sr: int) -> torch.Tensor:
    """Complex response ``H(e^{j w}) = B(z) / A(z)`` of filters ``(batch, order+1)`` at ``freqs_hz``.

    Args:
        b, a: numerator / denominator coefficients ``(batch, n)`` or ``(n,)``.
        freqs_hz: frequencies in Hz, ``(n_freqs,)`` or a number.
    Returns:
        complex128 ``(batch, n_freqs)``.
    """
    b = torch.as_tensor(b, dtype=torch.float64, device="cpu")  # analysis: float64 on the CPU
    a = torch.as_tensor(a, dtype=torch.float64, device="cpu")
    b, a = b.reshape(-1, b.shape[-1]), a.reshape(-1, a.shape[-1])
    f = torch.as_tensor(freqs_hz, dtype=torch.float64, device=b.device).reshape(1, -1)
    w = 2 * math.pi * f / sr
    def poly(c: torch.Tensor) -> torch.Tensor:
        k = torch.arange(c.shape[-1], dtype=torch.float64, device=b.device).reshape(1, -1, 1)
        zk = torch.exp(-1j * w.unsqueeze(1) * k)  # (1, n, n_freqs)
        return (c.to(torch.complex128).unsqueeze(-1) * zk).sum(dim=1)
    return poly(b) / poly(a)


def _as_batch_audio(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of audio, got {type(x).__name__}")
    if x.ndim == 1:
        return x.reshape(1, -1), True
    if x.ndim != 2:
        raise ValueError(f"x must have shape (batch, samples), got {tuple(x.shape)}")
    return x, False


def _is_control(p: Param) -> bool:
    return isinstance(p, torch.Tensor) and p.ndim == 2 and p.shape[1] > 1


def biquad(
    x: torch.Tensor,
    kind: str,
    cutoff_hz: Param,
    q: Param,
    sr: int,
    gain_db: Param = 0.0,
    *,
    block: int = 32,
) -> torch.Tensor:
    """Filter ``x`` ``(batch, samples)`` with an RBJ biquad -> float32 ``(batch, samples)``.

    Args:
        kind: see :func:`biquad_coefficients`.
        cutoff_hz: Hz; a number or ``(batch,)`` (fixed filter) or a ``(batch, samples)`` sweep.
        q: quality factor; number, ``(batch,)`` or ``(batch, samples)``.
        sr: sample rate in Hz. gain_db: for ``"peak"``.
        block: for swept filters, samples per coefficient update (>= 3).
    """
    xb, one_d = _as_batch_audio(x)
    if block < 3:
        raise ValueError(f"block must be >= 3 samples, got {block}")
    batch = batch_size_of(xb, cutoff_hz, q, gain_db)
    samples = xb.shape[1]
    dev = xb.device
    xb = xb.expand(batch, samples).to(torch.float32)
    if samples == 0:
        return xb.to(torch.float32)
    if not (_is_control(cutoff_hz) or _is_control(q) or _is_control(gain_db)):
        fc, qq, gd = (as_control(p, batch, 1, dev).reshape(batch) for p in (cutoff_hz, q, gain_db))
        b, a = biquad_coefficients(kind, fc, qq, sr, gd)
        y = AF.lfilter(xb, a.to(dev, torch.float32), b.to(dev, torch.float32), clamp=False, batching=True)
    else:
        y = _swept_biquad(xb, kind, cutoff_hz, q, gain_db, sr, block)
    y = y.to(torch.float32)
    return y.reshape(-1) if one_d else y


def _block_values(p: Param, batch: int, samples: int, n_blocks: int, block: int, dev: torch.device) -> torch.Tensor:
    """Control (batch, 1|samples) -> one value per block (batch, n_blocks): the block mean."""
    c = as_control(p, batch, samples, dev).to("cpu", torch.float64)
    if c.shape[1] == 1:
        return c.expand(batch, n_blocks)
    pad = n_blocks * block - samples
    c = torch.nn.functional.pad(c, (0, pad), mode="replicate") if pad else c
    return c.reshape(batch, n_blocks, block).mean(dim=-1)


def _swept_biquad(
    x: torch.Tensor, kind: str, cutoff_hz: Param, q: Param, gain_db: Param, sr: int, block: int
) -> torch.Tensor:
    batch, samples = x.shape
    dev = x.device
    nb = -(-samples // block)
    fc, qq, gd = (_block_values(p, batch, samples, nb, block, dev) for p in (cutoff_hz, q, gain_db))
    b, a = biquad_coefficients(kind, fc, qq, sr, gd)  # (batch, nb, 3)
    b, a = b.to(dev, torch.float32), a.to(dev, torch.float32)
    xp = torch.nn.functional.pad(x, (0, nb * block - samples))
    xs = xp.reshape(batch * nb, block)
    bf, af = b.reshape(-1, 3), a.reshape(-1, 3)
    # 1) every block filtered from rest, all blocks at once
    ys = AF.lfilter(xs, af, bf, clamp=False, batching=True).reshape(batch, nb, block)
    # 2) impulse response of each block's all-pole part 1 / A(z)
    imp = torch.zeros(batch * nb, block, dtype=torch.float32, device=dev)
    imp[:, 0] = 1.0
    unit_b = torch.zeros_like(bf)
    unit_b[:, 0] = 1.0
    h = AF.lfilter(imp, af, unit_b, clamp=False, batching=True).reshape(batch, nb, block)
    # 3) scan over blocks: the state (x[-1], x[-2], y[-1], y[-2]) enters each block as extra input
    #    e0 at n = 0 and e1 at n = 1 of the all-pole recursion
    xr = xp.reshape(batch, nb, block)
    x1 = torch.zeros(batch, nb, dtype=torch.float32, device=dev)
    x2 = torch.zeros_like(x1)
    x1[:, 1:] = xr[:, :-1, -1]
    x2[:, 1:] = xr[:, :-1, -2]
    b1, b2, a1, a2 = b[..., 1], b[..., 2], a[..., 1], a[..., 2]
    fixed0 = (b1 * x1 + b2 * x2).T.contiguous()  # (nb, batch)
    fixed1 = (b2 * x1).T.contiguous()
    a1t, a2t = a1.T.contiguous(), a2.T.contiguous()
    ys_last, ys_prev = ys[..., -1].T.contiguous(), ys[..., -2].T.contiguous()
    h_last, h_prev, h_prev2 = (h[..., i].T.contiguous() for i in (-1, -2, -3))
    e0 = torch.zeros(nb, batch, dtype=torch.float32, device=dev)
    e1 = torch.zeros_like(e0)
    y1 = torch.zeros(batch, dtype=torch.float32, device=dev)  # y[-1] of the previous block
    y2 = torch.zeros_like(y1)
    for j in range(nb):
        e0[j] = fixed0[j] - a1t[j] * y1 - a2t[j] * y2
        e1[j] = fixed1[j] - a2t[j] * y1
        new_y1 = ys_last[j] + e0[j] * h_last[j] + e1[j] * h_prev[j]
        y2 = ys_prev[j] + e0[j] * h_prev[j] + e1[j] * h_prev2[j]
        y1 = new_y1
    h_shift = torch.nn.functional.pad(h[..., :-1], (1, 0))
    y = ys + e0.T.unsqueeze(-1) * h + e1.T.unsqueeze(-1) * h_shift
    return y.reshape(batch, nb * block)[:, :samples]


# --------------------------------------------------------------------------------------------
# Moog-style ladder


def _ladder_gain(cutoff: torch.Tensor, sr: int) -> torch.Tensor:
    """Per-stage TPT gain G = g / (1 + g) with the prewarped g = tan(pi fc / sr)."""
    g = torch.tan(math.pi * cutoff / sr)
    return g / (1.0 + g)


def _ladder_compiled(
    x: torch.Tensor, fc: torch.Tensor, res: torch.Tensor, drv: torch.Tensor, sr: int
) -> torch.Tensor:
    """:func:`ladder` through the numba kernel: same equations, time-major arrays, float64 state.

    A swept cutoff's stage gain is computed in float32 (``tan`` of ``(batch, samples)`` in float64
    costs more than the whole filter); a fixed one in float64 as in the torch path.
    """
    batch, samples = x.shape
    if fc.shape[1] == 1:
        gain = _ladder_gain(fc.to(torch.float64), sr).to(torch.float32).T.contiguous()
    else:  # time-major first, then in place: G = g / (1 + g), g = tan(pi fc / sr)
        gain = fc.T.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        gain.mul_(math.pi / sr).tan_()
        gain.div_(gain + 1.0)
    k = (4.0 * res.to(torch.float32)).T.contiguous()
    y = kernels.ladder_time_major(
        x.T.contiguous().numpy(), gain.numpy(), k.numpy(), drv.reshape(batch).to(torch.float64).numpy()
    )
    return torch.from_numpy(y).T  # (batch, samples) view, like the torch path


def ladder(
    x: torch.Tensor,
    cutoff_hz: Param,
    resonance: Param,
    sr: int,
    *,
    drive: Param = 1.0,
) -> torch.Tensor:
    """4-pole (24 dB/octave) Moog-style ladder lowpass -> float32 ``(batch, samples)``.

    Zero-delay-feedback model: four TPT one-pole stages, feedback ``k = 4 * resonance`` from
    the last stage to the input, and ``tanh`` saturation of the stage-1 input (so self-oscillation
    stays bounded). Small signals see :func:`ladder_response`; at ``resonance`` ~ 1 the filter
    rings / self-oscillates at the cutoff. As in the analogue circuit the pass-band gain falls as
    ``1 / (1 + 4 resonance)``. The recursion is nonlinear, so it runs as a loop over samples:
    compiled (numba) on the CPU when nothing needs a gradient, else a torch loop vectorised over the
    batch (autograd, CUDA; its cost grows with the number of samples, hardly with the batch).

    Args:
        x: audio ``(batch, samples)`` or ``(samples,)``.
        cutoff_hz: Hz in (0, sr/2): number, ``(batch,)`` or ``(batch, samples)`` sweep.
        resonance: 0 (none) .. 1 (self-oscillation); number, ``(batch,)`` or ``(batch, samples)``.
        sr: sample rate in Hz.
        drive: input gain into the saturator (> 0); number or ``(batch,)``. Larger is dirtier.
    """
    xb, one_d = _as_batch_audio(x)
    batch = batch_size_of(xb, cutoff_hz, resonance, drive)
    samples = xb.shape[1]
    dev = xb.device
    xb = xb.expand(batch, samples).to(torch.float32)
    fc = as_control(cutoff_hz, batch, samples, dev)
    _validate_cutoff(fc, sr)
    res = as_control(resonance, batch, samples, dev)
    if ((res < 0) | (res > 1.2)).any():
        raise ValueError(f"resonance must lie in [0, 1.2], got values up to {float(res.max()):g}")
    drv = as_control(drive, batch, 1, dev)
    if (drv <= 0).any():
        raise ValueError(f"drive must be > 0, got {drive}")

    if kernels.serves(xb, fc, res, drv):
        out = _ladder_compiled(xb, fc, res, drv, sr)
        return out.reshape(-1) if one_d else out
    G = _ladder_gain(fc.to("cpu", torch.float64), sr).to(dev, torch.float32)  # (batch, 1|samples), float64 on the CPU
    k = 4.0 * res
    G, k = torch.broadcast_tensors(G, k)
    # u = (x - k Sigma) / (1 + k G^4) with Sigma = sum_i G^(4-i) (1 - G) s_i  (zero-delay feedback)
    gpow = torch.stack([G**3, G**2, G, torch.ones_like(G)], dim=-1) * (1.0 - G).unsqueeze(-1)
    inv_den = 1.0 / (1.0 + k * G**4)
    # time-first layouts so that sample n is one contiguous row
    G_r, omg_r, k_r, inv_r = (t.T.contiguous() for t in (G, 1.0 - G, k, inv_den))
    gp_r = gpow.transpose(0, 1).contiguous()  # (1|samples, batch, 4)
    varying = G_r.shape[0] > 1
    xin = (drv * xb).T.contiguous()  # (samples, batch)
    s = torch.zeros(batch, 4, dtype=torch.float32, device=dev)
    y = torch.empty(samples, batch, dtype=torch.float32, device=dev)
    g, omg, kk, inv, gp = G_r[0], omg_r[0].unsqueeze(-1), k_r[0], inv_r[0], gp_r[0]
    for n in range(samples):
        if varying:
            g, omg, kk, inv, gp = G_r[n], omg_r[n].unsqueeze(-1), k_r[n], inv_r[n], gp_r[n]
        sigma = (gp * s).sum(dim=-1)
        u = torch.tanh((xin[n] - kk * sigma) * inv)
        big_s = omg * s  # S_i = (1 - G) s_i
        # stage i: y_i = G y_{i-1} + S_i, then the trapezoidal state update s_i <- 2 y_i - s_i
        y1 = torch.addcmul(big_s[:, 0], g, u)
        y2 = torch.addcmul(big_s[:, 1], g, y1)
        y3 = torch.addcmul(big_s[:, 2], g, y2)
        y4 = torch.addcmul(big_s[:, 3], g, y3)
        s = torch.stack([y1, y2, y3, y4], dim=-1).mul_(2.0).sub_(s)
        y[n] = y4
    out = y.T
    return out.reshape(-1) if one_d else out


def ladder_response(freqs_hz: Param, cutoff_hz: Param, resonance: Param, sr: int) -> torch.Tensor:
    """Small-signal complex response of :func:`ladder` (bilinear transform of the analogue ladder).

    ``H = H1**4 / (1 + 4 resonance H1**4)`` with the prewarped one-pole
    ``H1 = g (1 + z^-1) / (g (1 + z^-1) + 1 - z^-1)``, ``g = tan(pi cutoff / sr)``.

    Args:
        freqs_hz: ``(n_freqs,)`` in Hz; cutoff_hz, resonance: numbers or ``(batch,)``.
    Returns:
        complex128 ``(batch, n_freqs)``.
    """
    fc = torch.as_tensor(cutoff_hz, dtype=torch.float64, device="cpu").reshape(-1, 1)
    _validate_cutoff(fc, sr)
    r = torch.as_tensor(resonance, dtype=torch.float64, device="cpu").reshape(-1, 1)
    f = torch.as_tensor(freqs_hz, dtype=torch.float64, device="cpu").reshape(1, -1)
    g = torch.tan(math.pi * fc / sr)
    zi = torch.exp(-2j * math.pi * f / sr)
    h1 = g * (1 + zi) / (g * (1 + zi) + 1 - zi)
    h4 = h1**4
    return h4 / (1 + 4.0 * r * h4)


def fir_from_magnitudes(magnitudes: torch.Tensor) -> torch.Tensor:
    """Linear-phase FIR filters ``(..., 2 (n_bands - 1))`` from magnitude responses ``(..., n_bands)``.

    ``magnitudes[..., i]`` is the desired gain at ``i / (n_bands - 1)`` of Nyquist (0 Hz .. sr/2).
    Frequency sampling: the zero-phase impulse response (inverse real FFT), shifted to the middle and
    Hann-windowed, so each filter is symmetric and delays by ``n_bands - 1`` samples. Differentiable.
    """
    if magnitudes.ndim < 1 or magnitudes.shape[-1] < 2:
        raise ValueError(f"magnitudes must be (..., n_bands >= 2), got shape {tuple(magnitudes.shape)}")
    n_taps = 2 * (magnitudes.shape[-1] - 1)
    zero_phase = torch.fft.irfft(magnitudes.to(torch.float32), n=n_taps, dim=-1)
    centred = torch.roll(zero_phase, n_taps // 2, dims=-1)
    window = torch.hann_window(n_taps, periodic=True, dtype=torch.float32, device=magnitudes.device)
    return centred * window


def filtered_noise(magnitudes: torch.Tensor, hop: int, sr: int, *, seed: int | None = None,
                   white: torch.Tensor | None = None) -> torch.Tensor:
    """White noise shaped frame by frame by FIR filters: ``(batch, frames, n_bands)`` -> ``(batch, frames * hop)``.

    Frame ``t`` (samples ``t * hop .. (t + 1) * hop - 1``) of uniform white noise in [-1, 1)
    (:func:`~course_lib.synth.oscillators.noise`, ``seed``) is convolved with the filter of
    :func:`fir_from_magnitudes` ``(magnitudes[:, t])``; the filtered frames are overlap-added and the
    filters' delay removed. Differentiable in ``magnitudes``. ``white`` ``(batch, frames * hop)``
    replaces the generated noise (tests, or a fixed excitation).
    """
    if magnitudes.ndim != 3:
        raise ValueError(f"magnitudes must be (batch, frames, n_bands), got shape {tuple(magnitudes.shape)}")
    if hop < 1:
        raise ValueError(f"hop must be >= 1 sample, got {hop}")
    batch, frames, _ = magnitudes.shape
    samples = frames * hop
    if white is None:
        white = noise(samples / sr, sr, batch=batch, seed=seed, device=magnitudes.device)[:, :samples]
    if white.shape != (batch, samples):
        raise ValueError(f"white noise must be ({batch}, {samples}), got shape {tuple(white.shape)}")
    ir = fir_from_magnitudes(magnitudes)  # (batch, frames, taps)
    taps = ir.shape[-1]
    length = hop + taps - 1
    n_fft = 1 << (length - 1).bit_length()
    spec = torch.fft.rfft(white.reshape(batch, frames, hop), n=n_fft) * torch.fft.rfft(ir, n=n_fft)
    pieces = torch.fft.irfft(spec, n=n_fft)[..., :length]  # (batch, frames, length)
    out = torch.nn.functional.fold(pieces.transpose(1, 2), output_size=(1, (frames - 1) * hop + length),
                                   kernel_size=(1, length), stride=(1, hop))
    return out.reshape(batch, -1)[:, taps // 2: taps // 2 + samples]
