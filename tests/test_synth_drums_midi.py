"""course_lib.synth.drums and .midi: drum voices, kits, and MIDI rendering (onsets, pitches, polyphony)."""

from __future__ import annotations


import librosa
import numpy as np
import pretty_midi
import pytest
import torch

from course_lib.synth import drums
from course_lib.synth.drums import GM_DRUM_NOTES, VOICE_NAMES, DrumKit
from course_lib.synth.midi import (
    DEFAULT_VOICE_FOR_FAMILY,
    find_soundfont,
    fluidsynth_available,
    render_midi,
    velocity_to_gain,
)

SR = 16000


def centroid_hz(x: np.ndarray, sr: int = SR) -> float:
    mag = np.abs(np.fft.rfft(x))
    return float((mag * np.fft.rfftfreq(len(x), 1 / sr)).sum() / mag.sum())


def peak_hz(x: np.ndarray, sr: int = SR, fmax: float | None = None) -> float:
    n = 1 << 16
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    if fmax is not None:
        mag = mag * (freqs <= fmax)
    return float(freqs[np.argmax(mag)])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


# ---------------------------------------------------------------- drum voices

VOICES = {
    "kick": lambda **kw: drums.kick(0.4, SR, **kw),
    "snare": lambda **kw: drums.snare(0.3, SR, **kw),
    "closed_hat": lambda **kw: drums.hihat(0.15, SR, **kw),
    "open_hat": lambda **kw: drums.hihat(0.5, SR, open=True, **kw),
    "clap": lambda **kw: drums.clap(0.3, SR, **kw),
    "tom": lambda **kw: drums.tom(130.0, 0.4, SR, **kw),
}


@pytest.mark.parametrize("name", sorted(VOICES))
def test_voices_finite_bounded_seeded(name):
    make = VOICES[name]
    a, b, c = make(seed=1, batch=2), make(seed=1, batch=2), make(seed=2, batch=2)
    assert a.dtype == torch.float32 and a.ndim == 2 and a.shape[0] == 2
    assert torch.isfinite(a).all() and float(a.abs().max()) <= 1.0
    assert float(a.abs().max()) > 0.5  # not silent
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_kick_pitch_falls():
    y = drums.kick(0.5, SR, f_start=160.0, f_end=45.0, pitch_decay=0.04, click=0.0)[0].numpy()
    early = peak_hz(y[: int(0.03 * SR)], fmax=400)
    late = peak_hz(y[int(0.15 * SR) : int(0.4 * SR)], fmax=400)
    assert early > 90.0
    assert abs(late - 45.0) < 5.0


def test_kick_decays():
    y = drums.kick(0.6, SR, amp_decay=0.3, seed=0)[0].numpy()
    assert rms(y[int(0.3 * SR) : int(0.4 * SR)]) < 0.05 * rms(y[:1600])


def test_hats_are_high_and_snare_has_a_body():
    closed = drums.hihat(0.15, SR, seed=0)[0].numpy()
    opened = drums.hihat(0.6, SR, open=True, seed=0)[0].numpy()
    assert centroid_hz(closed) > 5000.0 and centroid_hz(opened) > 5000.0
    # open rings longer: level 100-150 ms after the hit relative to its first 50 ms
    assert rms(opened[1600:2400]) > 0.05 * rms(opened[:800])
    assert rms(closed[1600:2400]) < 0.01 * rms(closed[:800])
    sn = drums.snare(0.3, SR, f0=200.0, tone_mix=0.6, seed=0)[0].numpy()
    assert abs(peak_hz(sn, fmax=600) - 200.0) < 8.0
    assert centroid_hz(sn) > 1000.0  # the wires


def test_tom_settles_on_its_pitch_and_clap_has_bursts():
    y = drums.tom(150.0, 0.5, SR, noise_level=0.0)[0].numpy()
    assert abs(peak_hz(y[int(0.15 * SR) : int(0.45 * SR)]) - 150.0) < 4.0
    c = drums.clap(0.3, SR, n_bursts=4, burst_spacing=0.012, seed=0)[0].numpy()
    env = np.abs(c[: int(0.06 * SR)]).reshape(-1, 32).max(1)  # 2 ms frames
    peaks = [i for i in range(1, len(env) - 1) if env[i] >= env[i - 1] and env[i] > env[i + 1] and env[i] > 0.4]
    assert len(peaks) >= 3


def test_drumkit_random_is_reproducible_and_varied():
    a, b, c = DrumKit.random(7), DrumKit.random(7), DrumKit.random(8)
    assert a == b and a != c
    for name in VOICE_NAMES:
        x, y = a.render(name, 0.8, 0.2, SR), b.render(name, 0.8, 0.2, SR)
        assert torch.equal(x, y) and x.ndim == 1 and torch.isfinite(x).all()
        assert 0.5 < float(x.abs().max()) <= 0.8 + 1e-6
    assert not torch.allclose(a.render("kick", sr=SR, duration=0.3), c.render("kick", sr=SR, duration=0.3))
    # velocity is a linear gain
    k = DrumKit()
    assert abs(rms(k.render("snare", 0.5).numpy()) / rms(k.render("snare", 1.0).numpy()) - 0.5) < 1e-4


def test_gm_drum_notes_cover_the_kit():
    for note in (35, 36, 38, 40, 39, 42, 44, 46, 41, 43, 45, 47, 48, 50):
        assert GM_DRUM_NOTES[note] in VOICE_NAMES
    kit = DrumKit(tom=dict(f0=80.0, spacing_semitones=4.0, pitch_drop=0.0, pitch_decay=0.05, amp_decay=0.5))
    low = peak_hz(kit.render(GM_DRUM_NOTES[41], duration=0.3).numpy())
    high = peak_hz(kit.render(GM_DRUM_NOTES[50], duration=0.3).numpy())
    assert abs(low - 80.0) < 4 and abs(high - 80.0 * 2 ** (20 / 12)) < 8


def test_drum_bad_input():
    with pytest.raises(ValueError, match="f_start"):
        drums.kick(0.2, SR, f_start=-5.0)
    with pytest.raises(ValueError, match="cutoff"):
        drums.hihat(0.1, SR, cutoff=9000.0)
    with pytest.raises(ValueError, match="unknown drum voice"):
        DrumKit().render("cowbell")


# ---------------------------------------------------------------- MIDI rendering


def make_midi(notes, program=0, is_drum=False, tempo=120.0) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
    for pitch, start, end, vel in notes:
        inst.notes.append(pretty_midi.Note(velocity=vel, pitch=pitch, start=start, end=end))
    pm.instruments.append(inst)
    return pm


ARPEGGIO = [(60, 0.1, 0.4), (64, 0.5, 0.8), (67, 0.9, 1.2), (72, 1.3, 1.6)]


@pytest.mark.parametrize("program", [0, 24, 81])  # piano -> keys, guitar -> pluck, saw lead -> lead
def test_arpeggio_onsets_and_pitches(program):
    pm = make_midi([(p, s, e, 100) for p, s, e in ARPEGGIO], program=program)
    y = render_midi(pm, SR).numpy()
    assert y.ndim == 1 and np.isfinite(y).all() and np.abs(y).max() <= 1.0
    onsets = librosa.onset.onset_detect(y=y, sr=SR, hop_length=128, units="time", backtrack=False)
    for _, start, _ in ARPEGGIO:
        assert np.min(np.abs(onsets - start)) < 0.02, (start, onsets)
    for pitch, start, end in ARPEGGIO:
        seg = y[int((start + 0.05) * SR) : int((end - 0.02) * SR)]
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        f, _, _ = librosa.pyin(seg, fmin=f0 / 1.3, fmax=f0 * 1.3, sr=SR, frame_length=1024, resolution=0.02)
        assert abs(1200 * np.log2(np.nanmedian(f) / f0)) < 10.0, (program, pitch)


def test_chord_has_all_three_fundamentals():
    chord = [(60, 0.0, 0.8, 100), (64, 0.0, 0.8, 100), (67, 0.0, 0.8, 100)]
    y = render_midi(make_midi(chord, program=88), SR).numpy()[int(0.1 * SR) : int(0.7 * SR)]
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    floor = np.median(mag[(freqs > 200) & (freqs < 450)])
    for p in (60, 64, 67):
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        assert mag[np.abs(freqs - f0) < 4].max() > 30 * floor, p


def test_velocity_scales_loudness():
    loud = render_midi(make_midi([(64, 0.0, 0.5, 120)], program=0), SR).numpy()
    soft = render_midi(make_midi([(64, 0.0, 0.5, 60)], program=0), SR).numpy()
    expected = velocity_to_gain(60) / velocity_to_gain(120)
    assert abs(rms(soft) / rms(loud) - expected) < 0.01


def test_drum_track_hits_at_gm_notes(tmp_path):
    hits = [(36, 0.1, 0.2, 110), (42, 0.6, 0.7, 110), (38, 1.1, 1.2, 110)]
    pm = make_midi(hits, is_drum=True)
    path = tmp_path / "beat.mid"
    pm.write(str(path))
    y = render_midi(path, SR).numpy()  # from a file path
    onsets = librosa.onset.onset_detect(y=y, sr=SR, hop_length=128, units="time")
    for _, start, _, _ in hits:
        assert np.min(np.abs(onsets - start)) < 0.02
    # the kick is low, the hat high
    assert centroid_hz(y[int(0.1 * SR) : int(0.3 * SR)]) < 1500 < 5000 < centroid_hz(y[int(0.6 * SR) : int(0.7 * SR)])


def test_voice_mapping_and_errors(tmp_path):
    assert set(DEFAULT_VOICE_FOR_FAMILY) == set(range(16))
    pm = make_midi([(60, 0.0, 0.3, 100)], program=0)
    a = render_midi(pm, SR, voice_for_program=lambda program: "pluck")
    b = render_midi(make_midi([(60, 0.0, 0.3, 100)], program=25), SR)
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="voice"):
        render_midi(pm, SR, voice_for_program={0: "theremin"})
    with pytest.raises(FileNotFoundError, match="nope.mid"):
        render_midi(tmp_path / "nope.mid", SR)
    (tmp_path / "garbage.mid").write_bytes(b"not midi at all")
    with pytest.raises(ValueError, match="garbage.mid: not a readable MIDI file"):
        render_midi(tmp_path / "garbage.mid", SR)
    with pytest.raises(ValueError, match="backend"):
        render_midi(pm, SR, backend="csound")


def test_fluidsynth_backend_missing_or_working():
    pm = make_midi([(69, 0.0, 0.5, 100)], program=0)
    if not (fluidsynth_available() and find_soundfont() is not None):
        with pytest.raises(RuntimeError, match="apt-get install fluidsynth"):
            render_midi(pm, SR, backend="fluidsynth")
        pytest.skip("fluidsynth or a GM SoundFont is not installed")
    y = render_midi(pm, SR, backend="fluidsynth").numpy()
    assert y.ndim == 1 and np.isfinite(y).all() and np.abs(y).max() <= 1.0
    f, _, _ = librosa.pyin(y[1600:7200], fmin=300, fmax=600, sr=SR, frame_length=1024, resolution=0.02)
    assert abs(1200 * np.log2(np.nanmedian(f) / 440.0)) < 20.0


def test_fluidsynth_missing_gives_install_hint(monkeypatch):
    import course_lib.synth.midi as midi_mod

    monkeypatch.setattr(midi_mod.shutil, "which", lambda name: None)
    assert not fluidsynth_available()
    with pytest.raises(RuntimeError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        render_midi(make_midi([(60, 0.0, 0.2, 100)]), SR, backend="fluidsynth")
    with pytest.raises(FileNotFoundError, match="missing.sf2"):
        find_soundfont("/nonexistent/missing.sf2")
