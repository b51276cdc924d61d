"""course_lib.data loops: patterns as MIDI, rendered loops (length, tempo grid, level, determinism),
and the loop-folder loader (tempo from metadata / name / estimate, stretch to 2 s, skip reasons)."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from course_lib.data.config import STEP_SECONDS
from course_lib.data.loop_folder import bpm_from_filename, load_loop_folder, write_loop_folder
from course_lib.data.patterns import DRUM_STYLES, MAX_JITTER_S, PITCHED_ROLES, loop_midi, step_time
from course_lib.data.synthetic_loops import LOOP_CLASSES, clear_hit_cache, generate_loops

SR = 16000
LOOP = 32000


def detected_onsets(y: np.ndarray, sr: int) -> np.ndarray:
    """Onset times (s) of clear hits: spectral flux peaks with a 1 ms hop (about 1-2 ms late)."""
    hop = 16
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, n_fft=256, n_mels=40)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop, delta=0.2,
                                        wait=int(0.06 * sr / hop))
    return frames * hop / sr


def grid_error_ms(times: np.ndarray, swing: float = 0.0) -> np.ndarray:
    grid = np.array([step_time(k, swing) for k in range(16)] + [2.0])
    return np.abs(np.asarray(times)[:, None] - grid[None, :]).min(axis=1) * 1000


@pytest.fixture(scope="module")
def straight_loops():
    """One loop per class played exactly on the grid (no swing / jitter), two kits."""
    return generate_loops(1, seed=5, humanize=False, n_kits=2)


@pytest.fixture(scope="module")
def human_loops():
    return generate_loops(1, seed=11, n_kits=2, return_info=True)


def test_there_are_8_drum_styles_and_pitched_roles():
    assert len(DRUM_STYLES) >= 8 and len(PITCHED_ROLES) >= 2
    assert LOOP_CLASSES == DRUM_STYLES + PITCHED_ROLES


def test_midi_onsets_lie_on_the_16th_grid_at_120_bpm():
    for c in LOOP_CLASSES:
        for seed in range(6):
            pm, info = loop_midi(c, seed)
            starts = np.array([n.start for inst in pm.instruments for n in inst.notes])
            assert len(starts) >= 4, c
            # humanised: within the jitter of the (swung) grid, so well within 5 ms
            assert grid_error_ms(starts, info.swing).max() <= MAX_JITTER_S * 1000 + 1e-6, (c, seed)
            assert pm.get_end_time() <= 2.0 + 1e-6
            straight, _ = loop_midi(c, seed, humanize=False)
            t = np.array([n.start for inst in straight.instruments for n in inst.notes])
            assert grid_error_ms(t).max() < 1e-6
    # swing really delays the odd 16ths of the swung styles
    swings = [loop_midi("hiphop", s)[1].swing for s in range(5)]
    assert min(swings) > 0.05


def test_every_class_has_loop_length_no_clipping_no_nan(straight_loops, human_loops):
    for audio, labels, names in (straight_loops, human_loops[:3]):
        assert audio.shape == (len(labels), LOOP) and audio.dtype == torch.float32
        assert names == list(LOOP_CLASSES) and sorted(set(labels.tolist())) == list(range(len(LOOP_CLASSES)))
        assert bool(torch.isfinite(audio).all())
        peak = audio.abs().amax(dim=1)
        assert float(peak.max()) < 0.95 and float(peak.min()) > 0.4  # peak -6..-1 dBFS by design
        rms = audio.pow(2).mean(1).sqrt()
        assert float(rms.min()) > 0.01  # every loop actually sounds


def test_rendered_drum_onsets_are_on_the_grid_within_5ms(straight_loops):
    audio, labels, names = straight_loops
    for i, c in enumerate(names):
        if c not in DRUM_STYLES:
            continue
        on = detected_onsets(audio[i].numpy(), SR)
        assert len(on) >= 2, c
        assert grid_error_ms(on).max() < 5.0, (c, on)


def test_swung_loops_have_onsets_on_the_swung_grid():
    audio, _, _, infos = generate_loops(3, seed=11, classes=["hiphop"], n_kits=2, return_info=True)
    late_hits = 0
    for x, info in zip(audio, infos):
        assert info.swing > 0.05
        on = detected_onsets(x.numpy(), SR)
        assert grid_error_ms(on, info.swing).max() < 6.0, on  # jitter 3 ms + detector lag
        pm, _ = loop_midi("hiphop", info.seed)
        odd = [n.start for n in pm.instruments[0].notes if round(n.start / STEP_SECONDS) % 2 == 1]
        # off-beat 16ths are heard swing x 125 ms late, off the straight grid
        late_hits += int(np.sum(grid_error_ms(on) > info.swing * 125 - 6)) if odd else 0
    assert late_hits >= 1


def test_pitched_loops_play_their_midi_pitches():
    # the bass role rendered alone: pyin of the first note matches its MIDI pitch
    audio, labels, names, infos = generate_loops(1, seed=2, classes=["bass"], humanize=False, return_info=True)
    pm, _ = loop_midi("bass", infos[0].seed, humanize=False)
    first = pm.instruments[0].notes[0]
    seg = audio[0, : int(0.1 * SR)].numpy() if first.end - first.start < 0.1 else \
        audio[0, : int((first.end - first.start) * SR)].numpy()
    f0, voiced, _ = librosa.pyin(seg, fmin=40, fmax=400, sr=SR, frame_length=1024, hop_length=128)
    assert np.nanmedian(f0) == pytest.approx(librosa.midi_to_hz(first.pitch), rel=0.03)


def test_same_seed_is_bit_identical_and_seeds_differ():
    a, la, _ = generate_loops(1, seed=7, classes=["techno", "arp"], n_kits=1)
    clear_hit_cache()  # the second run re-synthesises every drum hit
    b, lb, _ = generate_loops(1, seed=7, classes=["techno", "arp"], n_kits=1)
    c, _, _ = generate_loops(1, seed=8, classes=["techno", "arp"], n_kits=1)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert float((a - c).abs().amax(dim=1).min()) > 0.05
    # loop i depends on (seed, class, i) only: a bigger set starts with the same loops
    d, _, _ = generate_loops(2, seed=7, classes=["techno", "arp"], n_kits=1)
    assert torch.equal(d[0], a[0]) and torch.equal(d[2], a[1])


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown loop class"):
        generate_loops(1, classes=["polka"])
    with pytest.raises(ValueError, match="backend"):
        generate_loops(1, classes=["rock"], backend="sampler")
    with pytest.raises(ValueError, match="n_per_class"):
        generate_loops(0)


# ------------------------------------------------------------------------------------------
# loop folders

def click_loop(bpm: float, sr: int, bars: float = 1.0) -> np.ndarray:
    """Short decaying noise clicks on every 16th of ``bars`` bars at ``bpm``."""
    step = 60.0 / bpm / 4
    n = int(round(bars * 16 * step * sr))
    y = np.zeros(n, dtype=np.float32)
    rng = np.random.default_rng(0)
    click = (rng.uniform(-1, 1, int(0.02 * sr)) * np.exp(-np.arange(int(0.02 * sr)) / (0.003 * sr))).astype(np.float32)
    for k in range(int(bars * 16)):
        s = int(round(k * step * sr))
        y[s:s + len(click)] += (0.8 if k % 4 == 0 else 0.4) * click[: n - s]
    return y


def test_loop_folder_stretches_a_100_bpm_loop_to_2_seconds(tmp_path):
    folder = tmp_path / "loops"
    folder.mkdir()
    sf.write(str(folder / "funk_100bpm_take1.wav"), click_loop(100, 22050), 22050)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped, nothing to warn about
        audio, records, report = load_loop_folder(folder)
    assert audio.shape == (1, LOOP) and report.skipped == []
    rec = records[0]
    assert rec.bpm == 100 and rec.tempo_source == "filename" and rec.rate == pytest.approx(1.2)
    assert rec.orig_seconds == pytest.approx(2.4, abs=1e-3)
    on = detected_onsets(audio[0].numpy(), SR)
    assert len(on) >= 12
    # the clicks were every 150 ms at 100 BPM; after stretching they sit on the 125 ms grid
    assert np.median(np.diff(on)) == pytest.approx(0.125, abs=0.004)
    assert grid_error_ms(on).max() < 5.0


def test_loop_folder_metadata_estimate_and_skip_reasons(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    sf.write(str(folder / "a.wav"), click_loop(110, 16000), 16000)  # tempo from metadata
    sf.write(str(folder / "slow_60bpm.wav"), click_loop(60, 16000), 16000)  # too far from 120
    sf.write(str(folder / "b.flac"), click_loop(125, 44100), 44100)  # tempo estimated (no metadata, no name)
    (folder / "broken.wav").write_bytes(b"RIFF....not really")
    nan = click_loop(120, 16000)
    nan[5] = np.nan
    sf.write(str(folder / "nan_120bpm.wav"), nan, 16000, subtype="FLOAT")
    (folder / "metadata.csv").write_text("file,bpm,label\na.wav,110,funk\n")
    with pytest.warns(UserWarning, match="skipped 3"):
        audio, records, report = load_loop_folder(folder)
    by_name = {r.path.name: r for r in records}
    assert set(by_name) == {"a.wav", "b.flac"} and audio.shape == (2, LOOP)
    assert by_name["a.wav"].tempo_source == "metadata" and by_name["a.wav"].label == "funk"
    assert by_name["b.flac"].tempo_source == "estimated" and by_name["b.flac"].bpm == pytest.approx(125, rel=0.04)
    reasons = {p.name: why for p, why in report.skipped}
    assert "too far" in reasons["slow_60bpm.wav"] and "60.0 BPM" in reasons["slow_60bpm.wav"]
    assert "unreadable" in reasons["broken.wav"] and "NaN" in reasons["nan_120bpm.wav"]


def test_loop_folder_errors_and_round_trip(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_loop_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio file"):
        load_loop_folder(tmp_path / "empty")
    assert bpm_from_filename("Drum Loop 128 BPM.wav") == 128 and bpm_from_filename("kick_01.wav") is None
    audio, labels, names = generate_loops(1, seed=1, classes=["rock", "bass"], n_kits=1)
    write_loop_folder(tmp_path / "out", audio, labels.tolist(), names)
    back, records, report = load_loop_folder(tmp_path / "out")
    assert back.shape == audio.shape and sorted(r.label for r in records) == ["bass", "rock"]
    assert all(r.rate == 1.0 for r in records)
    order = [names.index(r.label) for r in records]
    assert float((back - audio[order]).abs().max()) < 1e-3  # 16-bit, no stretch at 120 BPM


def test_fluidsynth_backend_renders_the_same_patterns():
    from course_lib.synth.midi import fluidsynth_available

    if not fluidsynth_available():
        pytest.skip("FluidSynth is not installed (optional backend)")
    audio, labels, names = generate_loops(1, seed=5, classes=["rock", "bass"], backend="fluidsynth", humanize=False)
    assert audio.shape == (2, LOOP) and bool(torch.isfinite(audio).all()) and float(audio.abs().max()) < 0.95
    assert float(audio.pow(2).mean(1).sqrt().min()) > 0.01
    on = detected_onsets(audio[0].numpy(), SR)
    assert len(on) >= 3
    assert grid_error_ms(on).max() < 10.0  # SoundFont samples start a few ms after the note-on
