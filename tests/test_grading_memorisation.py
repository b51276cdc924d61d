"""The memorisation check finds copies of training loops in disguise, and leaves distinct loops alone.

Disguises (:mod:`grading.disguises`): inverted polarity, a low-pass, a speed change of +-3 %.
Copies are made of training loops of the fast loop set; the distinct loops are an independent
draw of the same set (what a good generator's loops look like to the check).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grading import disguises, similarity
from grading.policy import load_policy

POLICY = load_policy()
pytestmark = pytest.mark.slow  # child processes / the disguise search: seconds each
N_COPIES = 12


@pytest.fixture(scope="module")
def training():
    from grading.reference import training_logmels

    audio, logmels, names = training_logmels("fast")
    pick = torch.randperm(audio.shape[0], generator=torch.Generator().manual_seed(0))[:N_COPIES]
    return audio, logmels, names, pick


def memorised(loops, training):
    audio, logmels, _, _ = training
    x = torch.as_tensor(np.asarray(loops), dtype=torch.float32)
    return similarity.find_memorised(x, similarity.normalised_logmel(x), audio, logmels, POLICY.memo_ncc,
                                     POLICY.memo_logmel_rms, POLICY.memo_max_shift_frames,
                                     POLICY.memo_disguised_logmel_rms)


def test_disguises_do_what_they_say():
    x = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)[None]
    assert np.allclose(disguises.invert(x), -x, atol=1e-6)
    spec = np.abs(np.fft.rfft(disguises.lowpass(np.random.default_rng(0).standard_normal((1, 16000)), 2000)))[0]
    assert spec[3000:].mean() < 1e-2 * spec[:1500].mean()  # 1 Hz bins: -40 dB from 1.5 x the cutoff up
    fast = disguises.speed(x, 1.03)                        # 440 Hz played 3 % faster: 453.2 Hz
    assert np.argmax(np.abs(np.fft.rfft(fast[0]))) == pytest.approx(453, abs=1)


# measured on these 12 copies at the shipped threshold: 12, 12, 12, 12, 5 and 5 caught (the default set's
# rates over 48 copies are in CALIBRATION.md); slowed-down copies are the weak spot; bounds allow one less
@pytest.mark.parametrize("name,disguise,min_caught", [
    ("polarity inverted", disguises.invert, N_COPIES),
    ("low-pass 4 kHz", lambda a: disguises.lowpass(a, 4000), N_COPIES),
    ("low-pass 2 kHz", lambda a: disguises.lowpass(a, 2000), N_COPIES - 1),
    ("3 % faster", lambda a: disguises.speed(a, 1.03), N_COPIES - 1),
    ("3 % slower", lambda a: disguises.speed(a, 0.97), 4),
    ("3 % slower, shifted, 0.5 gain", lambda a: 0.5 * np.roll(disguises.speed(a, 0.97), 5000, axis=1), 4),
])
def test_disguised_copies_of_training_loops_are_found(training, name, disguise, min_caught):
    audio, _, names, pick = training
    found = memorised(disguise(audio[pick]), training)
    right = [m for m in found if m.ref_index == int(pick[m.index])]
    assert len(right) == len(found), f"{name}: a copy attributed to the wrong training loop"
    assert len(right) >= min_caught, f"{name}: {len(right)} of {N_COPIES} caught"


def test_distinct_loops_are_not_taken_for_copies(training):
    from course_lib.data.datasets import LoopDataset

    held_out = LoopDataset(split="all", preset="fast", seed=2, precompute_mel=False).audio
    assert memorised(held_out, training) == []
    nearest = similarity.nearest_disguised(held_out, training[1], POLICY.memo_max_shift_frames)
    closest = min(m.distance for m in nearest)
    assert closest > 1.3 * POLICY.memo_disguised_logmel_rms  # the margin recorded in thresholds.toml


def test_a_generator_reproducing_training_mels_is_caught_through_the_grading_vocoder(training):
    """Graded loops are vocoded: a memorised loop is a training loop's mel through the grading vocoder."""
    import dataclasses

    from grading.reference import load_reference_assets, through_grading_vocoder
    from grading.score import score_audio

    audio, _, names, pick = training
    copies = through_grading_vocoder(audio[pick]).numpy()
    assets = load_reference_assets(preset="fast")
    policy = dataclasses.replace(POLICY, submission=dataclasses.replace(POLICY.submission, n_loops=N_COPIES,
                                                                        min_usable=4))
    rep = score_audio(copies, [f"g{i}" for i in range(N_COPIES)], policy, assets)
    assert len(rep.memorised) == N_COPIES and rep.points == 0
    assert {m["training_loop"] for m in rep.memorised} == {names[int(i)] for i in pick}
