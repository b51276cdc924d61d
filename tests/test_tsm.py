"""course_lib.tsm: lengths, pitch kept by time stretching, pitch moved by pitch shifting, formants kept
by TD-PSOLA, WSOLA smoother than OLA, HPTSM sharper than the phase vocoder, bad input rejected.

Every assertion is on a measured property: lengths, f0 by ``librosa.pyin``, LPC formant peaks,
Hilbert instantaneous frequency, pre-onset energy.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal as ss
import torch

from course_lib.synth import drums
from course_lib.synth.additive import harmonic_tone
from course_lib.synth.formant import vowel
from course_lib.synth.oscillators import sine
from course_lib.synth.physical import karplus_strong
from course_lib.tsm import (METHODS, estimate_f0, hpss, pitch_marks, pitch_shift, tdpsola, time_stretch)

SR = 16_000
RATES = (0.5, 0.8, 1.25, 2.0)


# ----------------------------------------------------------------------------- signals and measures
@pytest.fixture(scope="module")
def notes() -> torch.Tensor:
    """A harmonic tone at 220 Hz and a Karplus-Strong note at 196 Hz, 0.6 s each: (2, 9600)."""
    tone = 0.6 * harmonic_tone(220.0, 0.6, SR, n_harmonics=8, rolloff=1.5)
    pluck = karplus_strong(196.0, 0.6, SR, decay=0.999, seed=0)
    return torch.cat([tone, pluck])


def drum_loop(steps: int = 8, step_s: float = 0.125) -> tuple[torch.Tensor, np.ndarray]:
    """Kick / hat / snare / hat on a 16th grid at 120 BPM: audio (1, samples) and onsets (samples)."""
    n = int(round(steps * step_s * SR))
    kick = drums.kick(0.3, SR, seed=1)[0]
    snare = drums.snare(0.25, SR, seed=2)[0]
    hat = 0.5 * drums.hihat(0.05, SR, seed=3)[0]
    y = torch.zeros(n)
    onsets = []
    for i in range(steps):
        p = int(round(i * step_s * SR))
        v = kick if i % 4 == 0 else snare if i % 4 == 2 else hat
        m = min(v.shape[0], n - p)
        y[p:p + m] += v[:m]
        onsets.append(p)
    return (0.9 * y / y.abs().max()).unsqueeze(0), np.array(onsets)


def median_f0(y: torch.Tensor, fmin: float = 50.0, fmax: float = 1200.0) -> np.ndarray:
    """Median pyin f0 (Hz) over voiced frames of each row of ``y`` (batch, samples)."""
    f0, _, _ = librosa.pyin(y.numpy(), fmin=fmin, fmax=fmax, sr=SR, frame_length=1024, hop_length=256)
    return np.nanmedian(np.atleast_2d(f0), axis=1)


def cents(a, b) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(a) / np.asarray(b))


def formant_peak(y: torch.Tensor, lo: float = 300.0, hi: float = 1500.0, order: int = 18) -> float:
    """Frequency (Hz) of the largest peak of the LPC envelope between ``lo`` and ``hi``."""
    a = librosa.lpc(y.numpy().astype(np.float64), order=order)
    w, h = ss.freqz(1.0, a, worN=8192, fs=SR)
    band = (w > lo) & (w < hi)
    return float(w[band][np.argmax(np.abs(h[band]))])


def phase_jump_hz(y: torch.Tensor, f0: float, edge: int = 1000) -> float:
    """99th percentile of |instantaneous frequency - f0| (Hz) of a tone, by the Hilbert transform."""
    analytic = ss.hilbert(y.numpy())
    inst = np.diff(np.unwrap(np.angle(analytic))) * SR / (2 * np.pi)
    return float(np.percentile(np.abs(inst[edge:-edge] - f0), 99))


def pre_onset_db(y: torch.Tensor, onsets: np.ndarray, rate: float) -> float:
    """Median over hits of the energy in the 23 ms before each (moved) onset relative to the 23 ms after,
    in dB: transient smearing spreads a hit's energy ahead of it and raises this figure."""
    e = y.numpy().astype(np.float64) ** 2
    a, b = int(0.002 * SR), int(0.025 * SR)
    out = []
    for o in onsets[1:]:
        t = int(round(o / rate))
        out.append(10 * np.log10(e[t - b:t - a].sum() / e[t:t + b - a].sum()))
    return float(np.median(out))


# ----------------------------------------------------------------------------- lengths and forms
@pytest.mark.parametrize("method", sorted(METHODS))
def test_output_length_is_input_over_rate(method, notes):
    for rate in RATES:
        y = time_stretch(notes, SR, rate, method=method)
        assert y.shape == (2, round(notes.shape[-1] / rate)), (method, rate)
        assert torch.isfinite(y).all()
        assert 0.05 < float(y.abs().max()) < 1.5, (method, rate)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_numpy_1d_any_sample_rate(method):
    sr = 22_050
    x = (0.5 * harmonic_tone(330.0, 0.4, sr)[0]).numpy()
    y = time_stretch(x, sr, 1.5, method=method)
    assert isinstance(y, np.ndarray) and y.ndim == 1 and y.shape[0] == round(x.shape[0] / 1.5)


def test_batch_equals_items_one_by_one(notes):
    for method in ("wsola", "tdpsola", "hptsm"):
        together = time_stretch(notes, SR, 0.8, method=method)
        for i in range(notes.shape[0]):
            alone = time_stretch(notes[i], SR, 0.8, method=method)
            assert torch.allclose(together[i], alone, atol=1e-4), method


def test_phase_vocoder_at_rate_one_reconstructs(notes):
    y = time_stretch(notes, SR, 1.0, method="phase_vocoder")
    err = (y - notes).pow(2).sum(-1) / notes.pow(2).sum(-1)
    assert float(err.max()) < 1e-6  # better than 60 dB SNR


# ----------------------------------------------------------------------------- pitch kept / moved
# OLA is left out on purpose: its phase jumps detune a steady tone by a predictable amount (measured in
# test_ola_phase_jumps_detune_a_tone_as_predicted), which is the point Lesson 02 makes about it.
PITCH_KEEPING = sorted(m for m in METHODS if m != "ola")


@pytest.mark.parametrize("method", PITCH_KEEPING)
def test_time_stretch_keeps_pitch(method, notes):
    f_in = median_f0(notes)
    np.testing.assert_allclose(f_in, [220.0, 196.0], rtol=0.01)
    for rate in (0.8, 1.25):
        f_out = median_f0(time_stretch(notes, SR, rate, method=method))
        # pyin's pitch grid is 10 cents: one grid step is the finest difference it can report
        assert np.all(np.abs(cents(f_out, f_in)) <= 10.0 + 1e-6), (method, rate, cents(f_out, f_in))


@pytest.mark.parametrize("method", PITCH_KEEPING)
def test_pitch_shift_moves_f0_and_keeps_duration(method, notes):
    f_in = median_f0(notes)
    for st in (-5, 7):
        y = pitch_shift(notes, SR, st, method=method)
        assert y.shape == notes.shape
        moved = cents(median_f0(y), f_in)
        assert np.all(np.abs(moved - 100 * st) <= 15.0), (method, st, moved)


def test_tdpsola_keeps_formants_resampling_does_not():
    x = vowel(110.0, "a", 0.6, SR)
    f1_in = formant_peak(x[0])
    assert abs(f1_in - 730.0) / 730.0 < 0.05  # the synth puts F1 where the table says
    y = pitch_shift(x, SR, -12, method="tdpsola")
    assert abs(cents(median_f0(y, 40, 400), median_f0(x, 40, 400))[0] + 1200) <= 15
    f1_psola = formant_peak(y[0])
    assert abs(f1_psola - f1_in) / f1_in < 0.05, (f1_in, f1_psola)
    # stretch + resample moves the whole envelope with f0: F1 drops by about an octave
    f1_pv = formant_peak(pitch_shift(x, SR, -12, method="phase_vocoder")[0], lo=200.0)
    assert f1_pv < 0.7 * f1_in, (f1_in, f1_pv)


# ----------------------------------------------------------------------------- artefacts measured
def test_ola_phase_jumps_detune_a_tone_as_predicted():
    """Frame m carries phase omega * m * Ha but sits at m * Hs: each frame jumps by
    wrap(f (Ha - Hs) / sr) cycles, so the tone's mean frequency becomes f + that * sr / Hs."""
    f, hs = 220.0, 512
    x = 0.5 * sine(f, 0.8, SR)[0]
    for rate in (0.8, 1.25):
        y = time_stretch(x, SR, rate, method="ola", frame_length=2 * hs, hop=hs)
        inst = np.diff(np.unwrap(np.angle(ss.hilbert(y.numpy())))) * SR / (2 * np.pi)
        jump = f * (round(hs * rate) - hs) / SR
        predicted = f + (jump - round(jump)) * SR / hs
        assert abs(predicted - f) > 4.0  # a real detuning at these settings (> 30 cents) ...
        assert abs(inst[1000:-1000].mean() - predicted) < 0.5, (rate, predicted)  # ... exactly as predicted


def test_wsola_has_smaller_phase_jumps_than_ola():
    x = 0.5 * sine(440.0, 0.5, SR)[0]
    for rate in (0.8, 1.25):
        jump_ola = phase_jump_hz(time_stretch(x, SR, rate, method="ola"), 440.0)
        jump_wsola = phase_jump_hz(time_stretch(x, SR, rate, method="wsola"), 440.0)
        assert jump_wsola < 0.1 * jump_ola and jump_wsola < 2.0, (rate, jump_ola, jump_wsola)


def test_hptsm_keeps_drum_onsets_sharper_than_phase_vocoder():
    x, onsets = drum_loop()
    for rate in (0.8, 1.25):
        hp = pre_onset_db(time_stretch(x, SR, rate, method="hptsm")[0], onsets, rate)
        for locking in (False, True):
            pv = pre_onset_db(time_stretch(x, SR, rate, method="phase_vocoder", phase_locking=locking)[0],
                              onsets, rate)
            assert hp < pv - 3.0, (rate, locking, hp, pv)


def test_hpss_splits_tone_from_clicks():
    tone = 0.5 * sine(300.0, 0.5, SR)
    clicks = torch.zeros_like(tone)
    clicks[0, 2000::2000] = 0.9
    h, p = hpss(tone + clicks, SR)
    assert torch.allclose(h + p, tone + clicks, atol=1e-5)
    # most of the tone's energy lands in the harmonic part, most of the clicks' in the percussive part
    tone_in_h = float((h * tone).sum() / tone.pow(2).sum())
    click_in_p = float((p[0, 2000::2000]).sum() / clicks[0, 2000::2000].sum())
    assert tone_in_h > 0.9 and click_in_p > 0.5, (tone_in_h, click_in_p)


# ----------------------------------------------------------------------------- f0 and pitch marks
def test_estimate_f0_accuracy_and_voicing():
    f = torch.tensor([123.4, 311.0])
    x = 0.5 * harmonic_tone(f, 0.5, SR)
    x[:, 4000:] = 0.0  # second half silent
    track = estimate_f0(x, SR)
    frames = track.f0.shape[-1]
    assert frames == x.shape[-1] // track.hop + 1
    first = slice(5, frames // 2 - 5)
    est = track.f0[:, first].median(dim=1).values
    assert np.all(np.abs(cents(est.numpy(), f.numpy())) < 3.0), est
    assert bool(track.voiced[:, first].all())
    assert not bool(track.voiced[:, frames // 2 + 5:].any())
    noise = 0.3 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    assert float(estimate_f0(noise, SR).voiced.float().mean()) < 0.2


def test_pitch_marks_one_per_period():
    x = 0.5 * harmonic_tone(200.0, 0.5, SR)
    marks = pitch_marks(x, SR)
    pos = marks.of_item(0).numpy()
    inner = np.diff(pos[(pos > 1000) & (pos < 7000)])
    assert np.all(np.abs(inner - SR / 200.0) <= 1), inner
    # every mark sits on the same point of the waveform: the samples there agree
    vals = x[0, marks.of_item(0)[(marks.of_item(0) > 1000) & (marks.of_item(0) < 7000)]]
    assert float(vals.std()) < 0.05


def test_tdpsola_leaves_unvoiced_noise_unpitched():
    noise = 0.3 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(1))
    y = tdpsola(noise, SR, 1.0, semitones=12)
    # noise is copied with its mark spacing kept: no buzz at a mark rate appears
    track = estimate_f0(y, SR)
    assert float(track.voiced.float().mean()) < 0.2
    ratio = float(y.pow(2).mean() / noise.pow(2).mean())
    assert 0.5 < ratio < 2.0


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_rate_raises(rate, notes):
    with pytest.raises(ValueError, match="rate"):
        time_stretch(notes, SR, rate, method="ola")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_bad_audio_raises(method):
    with pytest.raises(ValueError, match="empty"):
        time_stretch(torch.zeros(1, 0), SR, 1.5, method=method)
    with pytest.raises(ValueError, match="too short"):
        time_stretch(torch.zeros(1, 3), SR, 1.5, method=method)
    bad = torch.zeros(1, 4000)
    bad[0, 100] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        time_stretch(bad, SR, 1.5, method=method)
    with pytest.raises(ValueError, match="mono"):
        time_stretch(np.zeros((4000, 2), dtype=np.float32), SR, 1.5, method=method)
    with pytest.raises(ValueError, match="mono"):
        time_stretch(torch.zeros(3, 2, 4000), SR, 1.5, method=method)


def test_bad_options_raise(notes):
    with pytest.raises(ValueError, match="method"):
        time_stretch(notes, SR, 1.5, method="rubberband")
    with pytest.raises(ValueError, match="semitones"):
        pitch_shift(notes, SR, float("nan"))
    with pytest.raises(ValueError, match="sr"):
        time_stretch(notes, 0, 1.5)
    with pytest.raises(ValueError, match="hop"):
        time_stretch(notes, SR, 1.5, method="ola", frame_length=256, hop=512)
    with pytest.raises(ValueError, match="rate"):
        time_stretch(notes, SR, torch.tensor([1.0, 2.0]))
