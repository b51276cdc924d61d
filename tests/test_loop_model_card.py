"""The shipped StyleGAN2 loop generator matches its data card: same file, and its graded figures re-measured."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "course_lib" / "assets"
sys.path.insert(0, str(ROOT / "tools"))


def test_shipped_generator_matches_its_card_and_its_graded_figures_reproduce():
    from loop_model_card import N_LOOPS, score

    from course_lib.hw2 import generate_loops
    from course_lib.metrics.evaluate import ReferenceSet
    from course_lib.models.classifiers import load_loop_classifier
    from grading.reference import REFERENCE_FILE

    card = json.loads((ASSETS / "stylegan2_loops.json").read_text())
    ckpt = ASSETS / "stylegan2_loops.pt"
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == card["checkpoint"]["sha256"]
    assert card["evaluation"]["n_loops"] == N_LOOPS
    fig = score(generate_loops(ckpt, N_LOOPS, seed=card["evaluation"]["seed"]), ReferenceSet.load(REFERENCE_FILE),
                load_loop_classifier(device="cpu"))
    want = card["table"]["this generator + vocoder"]
    assert fig["fad"] == pytest.approx(want["fad"], abs=0.2)
    assert fig["is"] == pytest.approx(want["is"], abs=0.03)
    assert fig["ndb_k"] == pytest.approx(want["ndb_k"], abs=0.021)
    # the curve ends with the shipped generator itself
    assert card["curve"][-1]["steps"] == card["checkpoint"]["meta"]["steps"]
    assert card["curve"][-1]["fad"] == want["fad"]


def test_on_beat_finds_the_16th_by_which_a_loop_is_rolled():
    """The selection metric's ``on_beat`` column: a pattern rolled by k 16ths is matched back by rolling it by -k."""
    import numpy as np
    import torch
    from loop_selection_metric import STEPS_PER_BAR, best_roll, loop_features, onset_steps

    rng = np.random.default_rng(0)
    template = rng.random((3, STEPS_PER_BAR))
    rolled = np.stack([np.roll(template, k, -1) for k in range(STEPS_PER_BAR)])
    assert best_roll(rolled, template).tolist() == [(-k) % STEPS_PER_BAR for k in range(STEPS_PER_BAR)]
    # the onset part of a loop's features: a click on every beat of a log-mel shows up on steps 0, 4, 8, 12
    mels = torch.full((1, 80, 125), -5.0)
    for beat in range(4):
        mels[..., round(beat * 125 / 4) + 1] = 0.0
    steps = onset_steps(loop_features(mels, 125))
    assert steps.shape == (1, 3, STEPS_PER_BAR)
    assert set(np.flatnonzero(steps[0, 0] > 0)) == {0, 4, 8, 12}
