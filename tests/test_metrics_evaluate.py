"""The shipped classifiers (data cards, held-out accuracy, FAST rebuild), calibration on real loops, evaluate()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from course_lib.metrics.calibration import calibration_table
from course_lib.metrics.evaluate import ReferenceSet, build_reference, evaluate
from course_lib.metrics.fad import fad, fad_from_embeddings
from course_lib.metrics.pitch import pitch_accuracy, pitch_entropy
from course_lib.metrics.embeddings import embed_audio
from course_lib.metrics.train_classifier import audio_hash, load_task_data
from course_lib.models.classifiers import (LOOP_CLASSIFIER_PATH, PITCH_CLASSIFIER_PATH, load_loop_classifier,
                                           load_pitch_classifier)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _data_cache(tmp_path_factory):
    """Generated data sets go to a private cache folder (the tests regenerate them from their configs)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_DATA_DIR", str(tmp_path_factory.mktemp("course_data")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def loop_card() -> dict:
    return json.loads(LOOP_CLASSIFIER_PATH.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def loop_clf():
    return load_loop_classifier()


@pytest.fixture(scope="module")
def check_loops(loop_card):
    """The card's independent check set: fast-preset loops from another seed (never seen in training)."""
    ck = loop_card["check"]
    audio, labels, names, _ = load_task_data("loops", ck["data"], "all", seed=ck["seed"])
    return audio, labels, names


def test_loop_card_complete_and_shipped_accuracy(loop_card, loop_clf, check_loops):
    assert LOOP_CLASSIFIER_PATH.stat().st_size < 5 * 2**20
    assert LOOP_CLASSIFIER_PATH.with_suffix(".md").is_file()
    assert loop_card["command"].startswith("python -m course_lib.metrics.train_classifier --task loops")
    assert len(loop_card["data"]["sha256_train"]) == 64 and loop_card["heldout_accuracy"] >= 0.85
    assert loop_clf.config.class_names == loop_card["classes"]
    audio, labels, _ = check_loops
    # the check data regenerates bit for bit, and the shipped weights score what the card says
    assert audio_hash(audio, labels) == loop_card["check"]["sha256"], (
        f"the loop generator changed since the checkpoint was trained: rebuild with `{loop_card['command']} "
        f"--fast-reference`")
    acc = float((loop_clf.predict_proba(audio).argmax(-1) == labels).double().mean())
    assert acc == pytest.approx(loop_card["check"]["accuracy"], abs=0.02)
    assert acc >= 0.85


def test_fast_rebuild_reproduces_card(loop_card, tmp_path):
    fast = loop_card["fast_rebuild"]
    out = tmp_path / "loop_fast.pt"
    cmd = [sys.executable, "-m", "course_lib.metrics.train_classifier", "--task", "loops", "--preset", "fast",
           "--out", str(out), "--quiet", "--threads", "1"]  # one thread, as the card's run (and no oversubscription)
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["data"]["sha256_train"] == fast["sha256_train"], "loop generator changed: rebuild the shipped card"
    # training is seeded but float summation order varies with threads / BLAS; 33 held-out clips
    # make one clip 3 points, hence the tolerances (the larger check set is the tighter one)
    assert card["heldout_accuracy"] == pytest.approx(fast["heldout_accuracy"], abs=0.15)
    assert card["check"]["accuracy"] == pytest.approx(fast["check_accuracy"], abs=0.1)
    assert card["check"]["accuracy"] > 0.5  # far above chance (1/11)


def test_calibration_real_vs_broken_sets(loop_clf, loop_card, check_loops):
    audio, _, names = check_loops
    table = calibration_table(audio, classifier=loop_clf, is_splits=1, seed=0)
    rows = {r.condition: r.result for r in table.rows}
    real = rows["real (disjoint split)"]
    for bad in ("white noise", "silence", "one loop repeated"):
        # (real vs real is inflated by the small-sample bias: 88 clips in 128 dims)
        assert rows[bad].fad > 5 * real.fad, (bad, rows[bad].fad, real.fad)
        assert rows[bad].ndb_k > 0.5 > real.ndb_k
    # IS of real loops is close to the number of classes; a repeated loop gives exactly 1
    assert real.is_mean > 0.65 * len(names)  # a random half is not exactly balanced, and not every clip is certain
    assert rows["one loop repeated"].is_mean == pytest.approx(1.0, abs=1e-6)
    assert real.coverage > 0.7 and rows["one loop repeated"].coverage < 0.1
    assert "FAD" in str(table)


def test_evaluate_folder_against_cached_reference(loop_clf, check_loops, tmp_path):
    audio, _, _ = check_loops
    ref = build_reference(audio[::2], loop_clf)
    path = ref.save(tmp_path / "ref.npz")
    back = ReferenceSet.load(path)
    assert np.array_equal(back.embeddings, ref.embeddings) and back.meta["clip_samples"] == audio.shape[-1]
    folder = tmp_path / "generated"
    folder.mkdir()
    gen = audio[1::2][:24]
    for i, clip in enumerate(gen):
        sf.write(folder / f"clip_{i:02d}.wav", clip.numpy(), 16_000, subtype="FLOAT")
    res = evaluate(folder, path, classifier=loop_clf, fad_boot=20, is_splits=2, device="cpu")
    direct = evaluate(gen, back, classifier=loop_clf, is_splits=2, device="cpu")
    assert res.n_generated == 24 and res.fad == pytest.approx(direct.fad, rel=1e-6)
    assert res.fad_ci[0] <= res.fad_ci[1] and res.pa is None
    # FAD from the helper agrees with the pipeline
    emb = embed_audio(gen, loop_clf)
    assert fad_from_embeddings(back.embeddings, emb) == pytest.approx(direct.fad, rel=1e-9)
    assert fad(audio[::2], gen, loop_clf) == pytest.approx(direct.fad, rel=1e-6)
    text = str(res)
    assert "FAD" in text and "NDB/K" in text and "settings:" in text
    with pytest.raises(FileNotFoundError):
        evaluate(tmp_path / "nowhere", back, classifier=loop_clf)
    with pytest.raises(ValueError, match="dims"):
        evaluate(gen, ReferenceSet(np.zeros((4, 3)) + np.arange(12).reshape(4, 3)), classifier=loop_clf)


@pytest.mark.skipif(not PITCH_CLASSIFIER_PATH.is_file(), reason="pitch classifier checkpoint not shipped yet")
def test_shipped_pitch_classifier_pa_pe(loop_clf):
    card = json.loads(PITCH_CLASSIFIER_PATH.with_suffix(".json").read_text())
    clf = load_pitch_classifier()
    assert card["heldout_accuracy"] >= 0.8 and PITCH_CLASSIFIER_PATH.with_suffix(".md").is_file()
    ck = card["check"]
    x, y, _, _ = load_task_data("pitch", ck["data"], "all", seed=ck["seed"])  # unseen instruments
    assert audio_hash(x, y) == ck["sha256"]
    with torch.no_grad():
        probs = clf.predict_proba(x)
        noise_probs = clf.predict_proba(0.1 * torch.randn(32, x.shape[-1], generator=torch.Generator().manual_seed(0)))
    pa = pitch_accuracy(probs, y)
    assert pa / 100 == pytest.approx(ck["accuracy"], abs=0.03) and pa >= 80.0
    # clear notes give confident (low-entropy) pitch predictions, noise does not
    assert pitch_entropy(probs) < 0.5 * pitch_entropy(noise_probs)
    # the same numbers through evaluate(): targets are MIDI pitches
    midi = y + clf.config.pitch_min
    ref = build_reference(x[16:64], loop_clf)
    res = evaluate(x[:16], ref, classifier=loop_clf, pitch_targets=midi[:16], pitch_classifier=clf, is_splits=1,
                   ndb_k=4, device="cpu")
    assert res.pa == pytest.approx(pitch_accuracy(probs[:16], y[:16]))
    assert res.pe == pytest.approx(pitch_entropy(probs[:16]), rel=1e-6)
    assert "PA (%)" in str(res)
