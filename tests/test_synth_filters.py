"""course_lib.synth filters and the subtractive voice: measured responses, slopes, sweeps, pitch."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from course_lib.synth import filters, oscillators, subtractive

SR = 16000


def measured_response(x: torch.Tensor, y: torch.Tensor, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """|H(f)| estimated from input/output noise: |S_xy| / S_xx averaged over the batch (Welch)."""
    f, pxy = scipy.signal.csd(x.numpy(), y.numpy(), fs=sr, nperseg=1024)
    _, pxx = scipy.signal.welch(x.numpy(), fs=sr, nperseg=1024)
    return f, np.abs(pxy.mean(axis=0) / pxx.mean(axis=0))


def db(v) -> np.ndarray:
    return 20 * np.log10(np.asarray(v))


def at(f: np.ndarray, h: np.ndarray, hz: float) -> float:
    return float(h[int(np.argmin(np.abs(f - hz)))])


def white(batch: int = 8, seconds: float = 0.5, scale: float = 0.01, seed: int = 0) -> torch.Tensor:
    # small level keeps the ladder's tanh in its linear range
    return oscillators.noise(seconds, SR, batch=batch, seed=seed) * scale


def centroid_hz(x: np.ndarray, sr: int = SR) -> float:
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float((f * mag).sum() / mag.sum())


def peak_hz(x: torch.Tensor, sr: int = SR, pad: int = 8) -> float:
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    mag = np.abs(np.fft.rfft(x * np.hanning(n), n * pad))
    mag[: int(30 * n * pad / sr)] = 0.0
    i = int(np.argmax(mag))
    a, b, c = np.log(mag[i - 1 : i + 2] + 1e-30)
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (n * pad)


# ------------------------------------------------------------------------------------ design


def test_rbj_design_formula_values():
    fc, q = 1000.0, 2.0
    b, a = filters.biquad_coefficients("lowpass", fc, q, SR)
    assert b.shape == (1, 3) and a.shape == (1, 3) and float(a[0, 0]) == 1.0
    h = filters.frequency_response(b, a, [0.0, fc, SR / 2 - 1e-6], SR).abs()[0]
    assert abs(float(h[0]) - 1.0) < 1e-9  # unity at DC
    assert abs(float(h[1]) - q) < 1e-9  # |H(fc)| = Q for the RBJ lowpass
    assert float(h[2]) < 1e-6  # zero at Nyquist
    bp, ap = filters.biquad_coefficients("peak", fc, q, SR, gain_db=9.0)
    assert abs(20 * math.log10(float(filters.frequency_response(bp, ap, [fc], SR).abs())) - 9.0) < 1e-9
    bn, an = filters.biquad_coefficients("notch", torch.tensor([500.0, 2000.0]), q, SR)
    assert bn.shape == (2, 3)
    assert float(filters.frequency_response(bn, an, [500.0], SR).abs()[0, 0]) < 1e-9


@pytest.mark.parametrize("kind", ["lowpass", "highpass", "bandpass", "notch", "peak"])
def test_biquad_measured_response_matches_design(kind):
    fc, q = 1000.0, 2.0
    x = white()
    y = filters.biquad(x, kind, fc, q, SR, gain_db=6.0)
    f, h = measured_response(x, y)
    b, a = filters.biquad_coefficients(kind, fc, q, SR, 6.0)
    design = filters.frequency_response(b, a, f, SR).abs()[0].numpy()
    band = (f > 100) & (f < 7000) & (design > 0.05)  # skip stop-band floors (estimation noise)
    assert np.max(np.abs(db(h[band]) - db(design[band]))) < 1.0
    if kind != "notch":
        assert abs(db(at(f, h, fc)) - db(at(f, design, fc))) < 1.0


def test_slopes_12_db_biquad_and_24_db_ladder_per_octave():
    x = white(batch=16)
    fc = 250.0
    f, h_bq = measured_response(x, filters.biquad(x, "lowpass", fc, 0.7071, SR))
    _, h_ld = measured_response(x, filters.ladder(x, fc, 0.0, SR))
    drop_bq = db(at(f, h_bq, 4 * fc)) - db(at(f, h_bq, 8 * fc))
    drop_ld = db(at(f, h_ld, 4 * fc)) - db(at(f, h_ld, 8 * fc))
    assert abs(drop_bq - 12.0) < 1.5
    assert abs(drop_ld - 24.0) < 1.5


def test_ladder_small_signal_response_matches_model():
    fc, resonances, per = 1000.0, (0.0, 0.5, 0.8), 8
    x = white(batch=per * len(resonances))
    res = torch.tensor(resonances).repeat_interleave(per)  # one batch, three settings
    y = filters.ladder(x, fc, res, SR)
    for j, r in enumerate(resonances):
        group = slice(j * per, (j + 1) * per)
        f, h = measured_response(x[group], y[group])
        design = filters.ladder_response(f, fc, r, SR).abs()[0].numpy()
        assert abs(db(at(f, h, fc)) - db(at(f, design, fc))) < 1.0, r
        band = (f > 50) & (f < 3000)
        assert np.max(np.abs(db(h[band]) - db(design[band]))) < 1.0, r
        if r == 0.0:
            assert abs(db(at(f, h, fc)) + 12.0) < 1.0  # four one-poles, each -3 dB at cutoff


def test_ladder_self_oscillates_at_cutoff_and_decays_below():
    kick = torch.zeros(2, 8000)
    kick[:, :50] = 0.5
    ringing, damped = filters.ladder(kick, 1000.0, torch.tensor([1.1, 0.5]), SR)
    assert float(ringing[-1000:].abs().max()) > 0.05  # still sounding 0.5 s later
    assert abs(1200 * math.log2(peak_hz(ringing[4000:]) / 1000.0)) < 10.0
    assert float(damped[-1000:].abs().max()) < 1e-4


# ------------------------------------------------------------------------------------ time variation


def reference_block_df1(x: np.ndarray, b: np.ndarray, a: np.ndarray, block: int) -> np.ndarray:
    """Plain direct-form-I loop; coefficient set j applies to samples [j*block, (j+1)*block)."""
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for n in range(len(x)):
        bb, aa = b[n // block], a[n // block]
        y[n] = bb[0] * x[n] + bb[1] * x1 + bb[2] * x2 - aa[1] * y1 - aa[2] * y2
        x2, x1, y2, y1 = x1, x[n], y1, y[n]
    return y


def test_swept_biquad_equals_direct_form_recursion():
    n, block = 1600, 32
    x = white(batch=1, seconds=n / SR, scale=0.5)
    sweep = torch.linspace(300.0, 3000.0, n).reshape(1, -1)
    y = filters.biquad(x, "lowpass", sweep, 4.0, SR, block=block)[0].numpy()
    block_fc = sweep.reshape(n // block, block).mean(dim=1)
    b, a = filters.biquad_coefficients("lowpass", block_fc, 4.0, SR)
    ref = reference_block_df1(x[0].double().numpy(), b.numpy(), a.numpy(), block)
    assert np.max(np.abs(y - ref)) < 1e-4 * np.max(np.abs(ref))


@pytest.mark.parametrize("which", ["biquad", "ladder"])
def test_cutoff_sweep_moves_spectral_centroid_up(which):
    x = white(batch=1, seconds=0.5, scale=0.1)
    sweep = torch.logspace(math.log10(200.0), math.log10(4000.0), SR // 2).reshape(1, -1)
    if which == "biquad":
        y = filters.biquad(x, "lowpass", sweep, 0.7071, SR)[0].numpy()
    else:
        y = filters.ladder(x, sweep, 0.2, SR)[0].numpy()
    cents_ = [centroid_hz(seg) for seg in np.split(y, 4)]
    assert all(c1 < c2 for c1, c2 in zip(cents_, cents_[1:]))
    assert cents_[-1] > 3 * cents_[0]


def test_filters_batched_equal_per_voice():
    x = white(batch=3, seconds=0.1, scale=0.3)
    fc = torch.tensor([300.0, 1000.0, 3000.0])
    res = torch.tensor([0.0, 0.5, 0.9])
    bq = filters.biquad(x, "bandpass", fc, 3.0, SR)
    ld = filters.ladder(x, fc, res, SR)
    for i in range(3):
        torch.testing.assert_close(bq[i : i + 1], filters.biquad(x[i : i + 1], "bandpass", float(fc[i]), 3.0, SR), atol=1e-6, rtol=0)
        torch.testing.assert_close(ld[i : i + 1], filters.ladder(x[i : i + 1], float(fc[i]), float(res[i]), SR), atol=1e-6, rtol=0)


def test_filter_bad_inputs_raise_value_error():
    x = torch.zeros(1, 100)
    with pytest.raises(ValueError, match="cutoff_hz"):
        filters.biquad(x, "lowpass", 9000.0, 0.7, SR)
    with pytest.raises(ValueError, match="kind"):
        filters.biquad(x, "comb", 1000.0, 0.7, SR)
    with pytest.raises(ValueError, match="q"):
        filters.biquad_coefficients("lowpass", 1000.0, 0.0, SR)
    with pytest.raises(ValueError, match="resonance"):
        filters.ladder(x, 1000.0, 3.0, SR)


# ------------------------------------------------------------------------------------ subtractive voice


@pytest.mark.parametrize("filt", ["ladder", "lowpass"])
def test_subtractive_voice_pitch_by_pyin(filt):
    y = subtractive.subtractive_voice(220.0, 0.5, SR, filter=filt, cutoff_hz=1500.0, filter_env_amount=1.0)
    assert y.shape == (1, 8000) and y.dtype == torch.float32
    f, voiced, _ = librosa.pyin(y[0].numpy()[:6000], fmin=100, fmax=500, sr=SR, frame_length=1024)
    assert voiced.mean() > 0.7
    assert abs(1200 * math.log2(float(np.nanmedian(f[voiced])) / 220.0)) < 5.0


def test_subtractive_filter_envelope_brightens_attack_and_amp_envelope_ends_silent():
    kw = dict(cutoff_hz=300.0, filter_env_amount=3.0, attack=0.01, decay=0.15, sustain=0.1, release=0.1)
    y = subtractive.subtractive_voice(110.0, 0.5, SR, **kw)[0].numpy()
    early = centroid_hz(y[160:1760])  # around the envelope peak
    late = centroid_hz(y[4800:6400])  # sustain: cutoff ~ 300 * 2**0.3 Hz
    assert early > 1.5 * late
    assert np.abs(y[-16:]).max() < 1e-3  # released by the end (note-off at 0.4 s, release 0.1 s)
    flat = subtractive.subtractive_voice(110.0, 0.5, SR, **{**kw, "filter_env_amount": 0.0})[0].numpy()
    assert centroid_hz(flat[160:1760]) < 0.8 * early


def test_subtractive_batched_equals_per_voice():
    f0 = torch.tensor([110.0, 330.0])
    cutoff = torch.tensor([800.0, 2500.0])
    both = subtractive.subtractive_voice(f0, 0.2, SR, cutoff_hz=cutoff, filter_env_amount=1.5, release=0.05)
    for i in range(2):
        one = subtractive.subtractive_voice(float(f0[i]), 0.2, SR, cutoff_hz=float(cutoff[i]), filter_env_amount=1.5, release=0.05)
        torch.testing.assert_close(both[i : i + 1], one, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_filters_cuda_agree_with_cpu():
    x = white(batch=2, seconds=0.1, scale=0.3)
    sweep = torch.linspace(300.0, 3000.0, x.shape[1]).expand(2, -1)
    for fc in (torch.tensor([500.0, 2000.0]), sweep):
        cpu = filters.biquad(x, "lowpass", fc, 2.0, SR)
        gpu = filters.biquad(x.cuda(), "lowpass", fc.cuda(), 2.0, SR)
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)
        torch.testing.assert_close(filters.ladder(x.cuda(), fc.cuda(), 0.5, SR).cpu(), filters.ladder(x, fc, 0.5, SR), atol=1e-4, rtol=0)
    v_cpu = subtractive.subtractive_voice(220.0, 0.1, SR, filter_env_amount=1.0)
    v_gpu = subtractive.subtractive_voice(220.0, 0.1, SR, filter_env_amount=1.0, device="cuda")
    torch.testing.assert_close(v_gpu.cpu(), v_cpu, atol=1e-3, rtol=0)
