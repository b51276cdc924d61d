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
