"""course_lib.data.nsynth: the real NSynth layout, read and written; bad folders give clear reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from course_lib.data import nsynth
from course_lib.data.nsynth import FIELDS, NSynthExample, load_nsynth, read_examples_json, write_nsynth

SR = 16000


def tone(freq: float, seconds: float = 0.25, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def real_entry(family: str, fam_id: int, source: str, src_id: int, idx: int, inst: int, pitch: int, vel: int,
               note: int, quals: list[str]) -> tuple[str, dict]:
    """An examples.json entry written by hand exactly as the real dataset spells it."""
    all_q = ["bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env",
             "percussive", "reverb", "tempo-synced"]
    inst_str = f"{family}_{source}_{idx:03d}"
    key = f"{inst_str}-{pitch:03d}-{vel:03d}"
    return key, {
        "qualities": [int(q in quals) for q in all_q], "pitch": pitch, "note": note,
        "instrument_source_str": source, "velocity": vel, "instrument_str": inst_str, "instrument": inst,
        "sample_rate": 16000, "qualities_str": quals, "instrument_source": src_id, "note_str": key,
        "instrument_family": fam_id, "instrument_family_str": family,
    }


def write_real_folder(root, entries: dict, audio: dict, sr: int = SR) -> None:
    (root / "audio").mkdir(parents=True)
    (root / "examples.json").write_text(json.dumps(entries))
    for key, x in audio.items():
        sf.write(str(root / "audio" / f"{key}.wav"), x, sr, subtype="PCM_16")


@pytest.fixture
def real_folder(tmp_path):
    entries, audio = {}, {}
    specs = [("bass", 0, "synthetic", 2, 33, 417, 45, 50, 201034, ["dark"]),
             ("guitar", 3, "acoustic", 0, 10, 219, 60, 100, 12, ["bright", "percussive"]),
             ("vocal", 10, "electronic", 1, 3, 900, 69, 127, 7, [])]
    for s in specs:
        key, e = real_entry(*s)
        entries[key] = e
        audio[key] = tone(440.0 * 2 ** ((s[6] - 69) / 12))
    root = tmp_path / "nsynth-mini"
    write_real_folder(root, entries, audio)
    return root, entries


def test_reads_a_hand_made_real_format_folder(real_folder):
    root, entries = real_folder
    audio, examples, report = load_nsynth(root)
    assert audio.shape == (3, SR // 4) and audio.dtype == torch.float32
    assert report.loaded == 3 and report.skipped == []
    for ex, x in zip(examples, audio):
        ref = entries[ex.note_str]
        for f in FIELDS:
            assert getattr(ex, f) == ref[f], f
        # the audio is the tone at the note's pitch: measured spectral peak within 1 % of MIDI pitch
        spec = np.abs(np.fft.rfft(x.numpy() * np.hanning(len(x)), n=8 * len(x)))
        peak = np.argmax(spec) * SR / (8 * len(x))
        assert peak == pytest.approx(440.0 * 2 ** ((ex.pitch - 69) / 12), rel=0.01)


def test_write_read_round_trip_field_by_field(tmp_path):
    exs = [NSynthExample.create(note=i, family=f, source=s, instrument_index=k, instrument=10 + k, pitch=p,
                                velocity=v, qualities=q)
           for i, (f, s, k, p, v, q) in enumerate([
               ("organ", "electronic", 1, 48, 25, ["long_release"]),
               ("mallet", "acoustic", 7, 84, 127, ["percussive", "fast_decay", "bright"]),
               ("synth_lead", "synthetic", 0, 60, 75, [])])]
    g = torch.Generator().manual_seed(0)
    audio = (torch.rand(3, 4000, generator=g) - 0.5)
    write_nsynth(tmp_path / "out", audio, exs)
    on_disk = json.loads((tmp_path / "out" / "examples.json").read_text())
    assert set(on_disk) == {e.note_str for e in exs}
    assert exs[1].note_str == "mallet_acoustic_007-084-127"
    for e in exs:
        assert set(on_disk[e.note_str]) == set(FIELDS)
    back, read, report = load_nsynth(tmp_path / "out")
    by_name = {e.note_str: (e, x) for e, x in zip(exs, audio)}
    for r, y in zip(read, back):
        e, x = by_name[r.note_str]
        for f in FIELDS:
            assert getattr(r, f) == getattr(e, f), f
        assert r.qualities_str == [q for q in nsynth.QUALITIES if q in r.qualities_str]
        assert float((y - x).abs().max()) <= 1.0 / 32768 + 1e-6  # 16-bit PCM
        info = sf.info(str(r.audio_path))
        assert info.samplerate == 16000 and info.subtype == "PCM_16" and info.channels == 1


def test_missing_examples_json_and_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="examples.json"):
        read_examples_json(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_nsynth(tmp_path / "nope")
    (tmp_path / "empty" / "examples.json").write_text("{}")
    with pytest.raises(ValueError, match="no examples"):
        load_nsynth(tmp_path / "empty")


def test_bad_entries_are_skipped_with_reasons(real_folder):
    root, entries = real_folder
    keys = sorted(entries)
    (root / "audio" / f"{keys[0]}.wav").unlink()  # missing wav
    (root / "audio" / f"{keys[1]}.wav").write_bytes(b"this is not audio")  # unreadable
    with pytest.warns(UserWarning, match="skipped 2"):
        audio, examples, report = load_nsynth(root)
    assert [e.note_str for e in examples] == [keys[2]] and audio.shape[0] == 1
    reasons = dict(report.skipped)
    assert "missing" in reasons[keys[0]] and "unreadable" in reasons[keys[1]]
    with pytest.raises(ValueError, match="missing"):
        load_nsynth(root, strict=True)


def test_wrong_rate_nan_and_broken_json_are_reported(tmp_path):
    entries, audio = {}, {}
    for i, p in enumerate((50, 52, 54)):
        key, e = real_entry("brass", 1, "acoustic", 0, 1, 5, p, 75, i, [])
        entries[key] = e
        audio[key] = tone(300)
    root = tmp_path / "bad"
    write_real_folder(root, entries, audio)
    keys = sorted(entries)
    sf.write(str(root / "audio" / f"{keys[0]}.wav"), tone(300), 22050)  # wrong rate
    nan = tone(300)
    nan[10] = np.nan
    sf.write(str(root / "audio" / f"{keys[1]}.wav"), nan, SR, subtype="FLOAT")
    with pytest.warns(UserWarning):
        _, examples, report = load_nsynth(root)
    reasons = dict(report.skipped)
    assert "22050" in reasons[keys[0]] and "NaN" in reasons[keys[1]]
    assert [e.note_str for e in examples] == [keys[2]]
    # an entry lacking a field, or an inconsistent one, is a clear error naming the key
    broken = dict(entries)
    broken[keys[2]] = {k: v for k, v in entries[keys[2]].items() if k != "pitch"}
    (root / "examples.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="pitch"):
        load_nsynth(root)
    broken[keys[2]] = {**entries[keys[2]], "instrument_family": 4}
    (root / "examples.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="inconsistent family"):
        load_nsynth(root)


def test_writer_rejects_bad_input(tmp_path):
    ex = NSynthExample.create(0, "flute", "acoustic", 0, 0, 72, 50)
    with pytest.raises(ValueError, match="NaN"):
        write_nsynth(tmp_path, torch.full((1, 100), float("nan")), [ex])
    with pytest.raises(ValueError, match="16000"):
        write_nsynth(tmp_path, torch.zeros(1, 100), [ex], sr=22050)
    with pytest.raises(ValueError, match="family"):
        NSynthExample.create(0, "banjo", "acoustic", 0, 0, 72, 50)
