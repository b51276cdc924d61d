"""course_lib.data.synthetic_notes: every family/source instrument plays the right pitch, with the
NSynth protocol (held, then released), louder at higher velocity; generation is reproducible."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from course_lib.data.nsynth import FAMILIES, load_nsynth
from course_lib.data.presets import DataPreset
from course_lib.data.synthetic_notes import (FAMILY_SOURCES, generate_notes, instrument_pitches, make_instrument,
                                             make_instruments, render_notes, write_nsynth)

SR = 16000
TINY = DataPreset("tiny", instruments_per_family=1, pitch_step=24, velocities=(50, 127), note_seconds=1.0,
                  loops_per_class=1)
COMBOS = [(f, s) for f in FAMILIES for s in FAMILY_SOURCES[f]]


def rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


@pytest.mark.parametrize("family,source", COMBOS)
def test_instrument_plays_its_pitch_held_then_released(family, source):
    inst = make_instrument(family, seed=3, source=source)
    lo, hi = inst.pitch_range
    pitch = int(np.clip(60, lo + 5, hi - 5))
    y = render_notes(inst, [pitch, pitch], [127, 25], SR, note_length=1.0)
    assert y.shape == (2, SR) and bool(torch.isfinite(y).all())
    held = y[0, int(0.1 * SR): int(0.6 * SR)].numpy()
    f0, voiced, _ = librosa.pyin(held, fmin=40, fmax=2000, sr=SR, frame_length=2048, hop_length=256)
    est = librosa.hz_to_midi(np.nanmedian(f0))
    assert abs(est - pitch) < 0.5, (inst.name, inst.engine, est)
    # velocity: the loud note is at least 6 dB louder than the soft one
    assert 20 * np.log10(rms(y[0]) / rms(y[1])) > 6.0
    # NSynth protocol: held for 3/4 of the clip, then released: the last 10 % is >= 6 dB below the held
    # part (or the sound had already died away), and the clip ends at zero
    held_rms = rms(y[0, int(0.05 * SR): int(0.7 * SR)])
    assert rms(y[0, int(0.9 * SR):]) < 0.5 * held_rms
    assert float(y[0, -1].abs()) < 1e-6


def test_instruments_reproducible_and_varied():
    a, b, c = make_instrument("string", 1), make_instrument("string", 1), make_instrument("string", 2)
    assert a.params == b.params and a.params != c.params
    insts = make_instruments(DataPreset("x", 2, 12, (127,), 1.0, 1), seed=0)
    assert len(insts) == 2 * len(FAMILIES)
    assert len({i.name for i in insts}) == len(insts)
    for i in insts:
        lo, hi = i.pitch_range
        assert all(lo <= p <= hi for p in instrument_pitches(i, 12))
    with pytest.raises(ValueError, match="family"):
        make_instrument("kazoo", 0)
    with pytest.raises(ValueError, match="plays MIDI pitches"):
        render_notes(make_instrument("flute", 0), [30], [100])


def test_generate_notes_is_deterministic_and_writes_nsynth(tmp_path):
    audio, examples = generate_notes(TINY, seed=4)
    some = ["guitar", "flute", "vocal"]
    part, part_ex = generate_notes(TINY, seed=4, families=some)
    again, _ = generate_notes(TINY, seed=4, families=some)
    other, _ = generate_notes(TINY, seed=5, families=some)
    assert torch.equal(part, again)
    assert part.shape != other.shape or float((part - other).abs().max()) > 0.05
    assert audio.shape == (len(examples), SR) and float(audio.abs().max()) <= 0.9 + 1e-6
    assert {e.instrument_family_str for e in examples} == set(FAMILIES)
    assert {e.velocity for e in examples} == {50, 127}
    write_nsynth(tmp_path / "mini", audio, examples)
    back, read, report = load_nsynth(tmp_path / "mini")
    assert report.skipped == [] and [e.note_str for e in read] == sorted(e.note_str for e in examples)
    by_name = {e.note_str: x for e, x in zip(examples, audio)}
    for e, x in zip(read, back):
        assert float((by_name[e.note_str] - x).abs().max()) < 1e-4
