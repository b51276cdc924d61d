"""course_lib.synth FM and additive synthesis: Bessel sidebands, operator algorithms, partials."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch

from course_lib.synth import fm, oscillators
from course_lib.synth.additive import additive, bell, harmonic_tone

SR = 16000


def line_amps(x: torch.Tensor, freqs_hz, sr: int = SR) -> np.ndarray:
    """Amplitudes of sinusoids at ``freqs_hz`` that fall exactly on DFT bins (rectangular window)."""
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x)) * 2 / len(x)
    return np.array([spec[int(round(f * len(x) / sr))] for f in np.atleast_1d(freqs_hz)])


def peak_hz(x: torch.Tensor, sr: int = SR, pad: int = 8) -> float:
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    mag = np.abs(np.fft.rfft(x * np.hanning(n), n * pad))
    mag[: int(30 * n * pad / sr)] = 0.0
    i = int(np.argmax(mag))
    a, b, c = np.log(mag[i - 1 : i + 2] + 1e-30)
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (n * pad)


def cents(f: float, ref: float) -> float:
    return 1200.0 * math.log2(f / ref)


def centroid_hz(x: np.ndarray, sr: int = SR) -> float:
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float((f * mag).sum() / mag.sum())


# ------------------------------------------------------------------------------------ FM


@pytest.mark.parametrize("index", [0.5, 1.0, 2.4, 4.0])
def test_fm2_sidebands_match_bessel_functions(index):
    fc, ratio = 4000.0, 0.125  # fm = 500 Hz: lines at 4000 + 500 n, all on 2 Hz DFT bins
    y = fm.fm2(fc, ratio, index, 0.5, SR)[0]
    n = np.arange(-5, 6)
    measured = line_amps(y, fc + n * fc * ratio)
    expected = np.abs(scipy.special.jv(n, index))
    assert np.max(np.abs(measured - expected)) < 0.01


def test_bessel_sideband_amplitudes_values_and_shapes():
    j = fm.bessel_sideband_amplitudes(1.5, 4)
    assert j.shape == (9,)
    assert abs(float(j[4]) - 0.5118276717) < 1e-9  # J0(1.5)
    n = np.arange(1, 5)
    np.testing.assert_allclose(j[:4].numpy()[::-1], ((-1.0) ** n) * j[5:].numpy(), atol=1e-12)
    big = fm.bessel_sideband_amplitudes(torch.tensor([0.5, 3.0]), 30)
    assert big.shape == (2, 61)
    np.testing.assert_allclose((big**2).sum(dim=1).numpy(), 1.0, atol=1e-9)  # power is conserved


def test_fm2_index_zero_is_a_sine_and_pitch_is_carrier():
    y = fm.fm2(440.0, 2.0, 0.0, 0.25, SR)
    torch.testing.assert_close(y, oscillators.sine(440.0, 0.25, SR), atol=1e-5, rtol=0)
    z = fm.fm2(440.0, 1.0, 0.8, 0.5, SR)[0]  # harmonic ratio: carrier is the strongest line
    assert abs(cents(peak_hz(z), 440.0)) < 5.0


def test_fm2_index_envelope_narrows_the_spectrum_over_time():
    samples = 8000
    env = torch.linspace(1.0, 0.0, samples)
    y = fm.fm2(1000.0, 1.0, 5.0, 0.5, SR, index_envelope=env)[0].numpy()
    assert centroid_hz(y[:1000]) > 1.5 * centroid_hz(y[-1000:])
    assert abs(cents(peak_hz(y[-2000:]), 1000.0)) < 10.0  # ends as a near-pure carrier


def test_fm2_feedback_adds_harmonics_and_batches():
    plain = fm.fm2(200.0, 1.0, 1.0, 0.5, SR)[0].numpy()
    fed = fm.fm2(200.0, 1.0, 1.0, 0.5, SR, feedback=1.2)[0].numpy()
    assert centroid_hz(fed) > 1.2 * centroid_hz(plain)
    fb = torch.tensor([0.0, 0.7])
    both = fm.fm2(torch.tensor([200.0, 300.0]), 1.0, 1.0, 0.1, SR, feedback=fb)
    for i, f in enumerate((200.0, 300.0)):
        torch.testing.assert_close(both[i : i + 1], fm.fm2(f, 1.0, 1.0, 0.1, SR, feedback=float(fb[i])), atol=1e-5, rtol=0)


def test_fm_operators_reduce_to_known_cases():
    f0 = 220.0
    # stack with only operator 2 sounding into 1 == two-operator FM
    stack = fm.fm_operators("stack", [1.0, 3.0, 1.0, 1.0], [1.0, 2.0, 0.0, 0.0], f0, 0.25, SR)
    torch.testing.assert_close(stack, fm.fm2(f0, 3.0, 2.0, 0.25, SR), atol=1e-4, rtol=0)
    # two stacks == average of two 2-op voices
    two = fm.fm_operators("two_stacks", [1.0, 2.0, 3.0, 1.0], [1.0, 1.5, 1.0, 0.5], f0, 0.25, SR)
    ref = 0.5 * (fm.fm2(f0, 2.0, 1.5, 0.25, SR) + fm.fm2(3 * f0, 1 / 3, 0.5, 0.25, SR))
    torch.testing.assert_close(two, ref, atol=1e-4, rtol=0)
    # parallel == additive organ: measured harmonic amplitudes are level / 4
    organ = fm.fm_operators("parallel", [1.0, 2.0, 3.0, 4.0], [1.0, 0.5, 0.25, 0.125], 250.0, 0.5, SR)[0]
    np.testing.assert_allclose(line_amps(organ, [250, 500, 750, 1000]), [0.25, 0.125, 0.0625, 0.03125], atol=1e-3)


def test_fm_operators_envelopes_batch_and_errors():
    samples = 4000
    env = torch.ones(4, samples)
    env[1] = torch.linspace(1.0, 0.0, samples)  # modulator fades out
    f0 = torch.tensor([220.0, 330.0])
    both = fm.fm_operators("stack", [1.0, 2.0, 1.0, 1.0], [1.0, 3.0, 0.0, 0.0], f0, 0.25, SR, envelopes=env)
    for i in range(2):
        one = fm.fm_operators("stack", [1.0, 2.0, 1.0, 1.0], [1.0, 3.0, 0.0, 0.0], float(f0[i]), 0.25, SR, envelopes=env)
        torch.testing.assert_close(both[i : i + 1], one, atol=1e-5, rtol=0)
    y = both[0].numpy()
    assert centroid_hz(y[:800]) > 1.5 * centroid_hz(y[-800:])
    with pytest.raises(ValueError, match="cycle"):
        fm.fm_operators({"ops": 2, "mods": [(1, 2), (2, 1)], "carriers": [1]}, [1, 1], [1, 1], 220.0, 0.1, SR)
    with pytest.raises(ValueError, match="unknown FM algorithm"):
        fm.fm_operators("dx9", [1] * 4, [1] * 4, 220.0, 0.1, SR)


# ------------------------------------------------------------------------------------ additive


def test_additive_partial_amplitudes_and_nyquist_drop():
    f0 = 1000.0
    amps = torch.tensor([1.0, 0.5, 0.25, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # partials 9, 10 >= Nyquist
    y = additive(f0, 0.5, SR, amplitudes=amps)[0]
    np.testing.assert_allclose(line_amps(y, [1000, 2000, 3000, 4000]), [1.0, 0.5, 0.25, 0.2], atol=1e-3)
    # 9 kHz and 10 kHz would alias to 7 kHz and 6 kHz: only the genuine partials remain there
    np.testing.assert_allclose(line_amps(y, [6000, 7000]), [0.1, 0.1], atol=1e-3)


def test_additive_decay_rates_measured():
    y = additive(500.0, 1.0, SR, amplitudes=[1.0], decays=[3.0])[0].numpy()
    rms = [np.sqrt(np.mean(y[i : i + 800] ** 2)) for i in (0, 8000)]  # around t = 0.025 s and 0.525 s
    assert abs(math.log(rms[0] / rms[1]) - 3.0 * 0.5) < 0.05


def test_additive_inharmonic_ratios_and_batch():
    amps = torch.tensor([[1.0, 0.5], [0.3, 1.0]])
    ratios = torch.tensor([1.0, 2.76])
    y = additive(torch.tensor([400.0, 500.0]), 0.5, SR, amplitudes=amps, ratios=ratios)
    np.testing.assert_allclose(line_amps(y[1], [500, 1380]), [0.3, 1.0], atol=1e-3)
    for i, f in enumerate((400.0, 500.0)):
        torch.testing.assert_close(y[i : i + 1], additive(f, 0.5, SR, amplitudes=amps[i], ratios=ratios), atol=1e-5, rtol=0)


@pytest.mark.parametrize("rolloff", [1.0, 2.0])
def test_harmonic_tone_pitch_rolloff_and_peak(rolloff):
    y = harmonic_tone(250.0, 0.5, SR, n_harmonics=8, rolloff=rolloff)[0]
    assert float(y.abs().max()) <= 1.0
    assert abs(cents(peak_hz(y), 250.0)) < 5.0
    a = line_amps(y, [250 * k for k in range(1, 9)])
    np.testing.assert_allclose(a / a[0], 1.0 / np.arange(1, 9) ** rolloff, atol=1e-3)


def test_bell_partials_and_decay():
    f0 = 400.0
    y = bell(f0, 1.0, SR)[0].numpy()
    assert np.abs(y).max() <= 1.0
    # at the strike, the energy sits at Risset's inharmonic ratios (bands of +-1 %)
    head = y[:4000]
    power = np.abs(np.fft.rfft(head * np.hanning(len(head)))) ** 2
    freqs = np.fft.rfftfreq(len(head), 1 / SR)
    ratios = [0.56, 0.92, 1.19, 1.7, 2.0, 2.74, 3.0, 3.76, 4.07]
    near = np.zeros_like(freqs, dtype=bool)
    for r in ratios:
        near |= np.abs(freqs - r * f0) <= 0.01 * r * f0 + 8.0  # + 2 bins of window main lobe
    assert power[near].sum() > 0.95 * power.sum()
    assert abs(cents(peak_hz(y[-4000:]), 0.56 * f0)) < 10.0  # the longest-ringing (hum) partial
    assert np.sqrt(np.mean(y[-1600:] ** 2)) < 0.05 * np.sqrt(np.mean(y[:1600] ** 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fm_additive_cuda_agree_with_cpu():
    f0 = torch.tensor([220.0, 440.0])
    torch.testing.assert_close(fm.fm2(f0.cuda(), 2.0, 1.5, 0.2, SR).cpu(), fm.fm2(f0, 2.0, 1.5, 0.2, SR), atol=1e-3, rtol=0)
    ops_cpu = fm.fm_operators("y", [1, 2, 3, 1.5], [1, 1, 1, 1], f0, 0.2, SR)
    ops_gpu = fm.fm_operators("y", [1, 2, 3, 1.5], [1, 1, 1, 1], f0.cuda(), 0.2, SR)
    torch.testing.assert_close(ops_gpu.cpu(), ops_cpu, atol=1e-3, rtol=0)
    add_cpu = harmonic_tone(f0, 0.2, SR)
    torch.testing.assert_close(harmonic_tone(f0.cuda(), 0.2, SR).cpu(), add_cpu, atol=1e-4, rtol=0)
