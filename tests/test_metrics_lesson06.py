"""Lesson 06's helpers (FAD against N, one classifier pass, the fool-IS perturbation) and its hand-written
formulas (the notebook's cells tagged "formula") against the library on random data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist

from course_lib.metrics import (NDBBins, fad_from_embeddings, fad_versus_size, inception_score, pitch_accuracy,
                                pitch_entropy, prdc, targeted_perturbation)
from course_lib.metrics.evaluate import embed_and_proba
from course_lib.metrics.frechet import GaussianStats
from course_lib.metrics.ndb import two_proportion_z_test
from course_lib.models.classifiers import load_loop_classifier

LESSON = Path(__file__).resolve().parent.parent / "lessons" / "06_evaluating_generated_audio.ipynb"


# ----------------------------------------------------------------------------- FAD against N

def test_fad_versus_size_shows_the_bias_and_extrapolates_it_away():
    rng = np.random.default_rng(0)
    d = 8
    ref = GaussianStats(np.zeros(d), np.eye(d), 10**6)          # the true distribution
    same = rng.standard_normal((3000, d))                         # true FAD 0
    shifted = rng.standard_normal((3000, d)) + 0.5                # true FAD = 8 * 0.25 = 2.0
    sizes = [50, 100, 200, 400, 800, 3000]
    c0 = fad_versus_size(ref, same, sizes, repeats=6, seed=0)
    c1 = fad_versus_size(ref, shifted, sizes, repeats=6, seed=0)
    assert np.all(np.diff(c0.mean) < 0)                           # fewer clips, larger FAD
    assert c0.mean[0] > 0.1 and abs(c0.fad_inf) < 0.15 * c0.mean[0]
    assert c0.slope > 0 and c1.slope > 0
    assert c1.fad_inf == pytest.approx(2.0, abs=0.15)
    assert c1.mean[0] > c1.fad_inf + 0.1                          # the small set overstates the distance
    # the whole set is a single subset: its mean is the plain FAD, with no spread
    assert c1.mean[-1] == pytest.approx(fad_from_embeddings(ref, shifted), rel=1e-12) and c1.std[-1] == 0
    assert c1.std[0] > 0
    assert c1.fit(np.array([1e12]))[0] == pytest.approx(c1.fad_inf)


def test_fad_versus_size_fit_from_ignores_the_small_sizes():
    rng = np.random.default_rng(1)
    d = 32
    ref = GaussianStats(np.zeros(d), np.eye(d), 10**6)
    gen = rng.standard_normal((1200, d))
    all_sizes = fad_versus_size(ref, gen, [8, 16, 300, 600, 1200], repeats=4, seed=0)
    large = fad_versus_size(ref, gen, [8, 16, 300, 600, 1200], repeats=4, seed=0, fit_from=300)
    assert np.array_equal(all_sizes.mean, large.mean)             # same subsets, only the fit differs
    # below the dimension the covariance is singular and the curve bends: the large-N fit is the honest one
    assert abs(large.fad_inf) < abs(all_sizes.fad_inf)
    assert abs(large.fad_inf) < 0.05


def test_fad_versus_size_rejects_bad_arguments():
    gen = np.random.default_rng(2).standard_normal((40, 4))
    ref = GaussianStats(np.zeros(4), np.eye(4), 100)
    with pytest.raises(ValueError, match="sizes"):
        fad_versus_size(ref, gen, [10, 50])                      # 50 > m
    with pytest.raises(ValueError, match="sizes"):
        fad_versus_size(ref, gen, [10, 10])                      # one distinct size
    with pytest.raises(ValueError, match="fit_from"):
        fad_versus_size(ref, gen, [10, 20, 40], fit_from=30)
    with pytest.raises(ValueError, match="repeats"):
        fad_versus_size(ref, gen, [10, 40], repeats=0)
    with pytest.raises(ValueError, match=r"\(m, 4\)"):
        fad_versus_size(ref, gen[:, :3], [10, 40])


# ----------------------------------------------------------------------------- one classifier pass

@pytest.fixture(scope="module")
def loop_clf():
    return load_loop_classifier()


def test_embed_and_proba_is_the_classifier_in_batches(loop_clf):
    audio = 0.3 * torch.randn(5, 8000, generator=torch.Generator().manual_seed(0))
    emb, probs = embed_and_proba(audio, loop_clf, batch_size=2)
    with torch.no_grad():
        direct_emb = loop_clf.embed(audio).double().numpy()
        direct_probs = loop_clf.predict_proba(audio).double().numpy()
    assert emb.dtype == np.float64 and emb.shape == (5, loop_clf.embedding_dim) and probs.shape == (5, 11)
    np.testing.assert_allclose(emb, direct_emb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, direct_probs, rtol=1e-5, atol=1e-7)
    # audio at another rate is resampled to the classifier's 16 kHz: the same clip at 8 kHz lands close by
    emb_8k, _ = embed_and_proba(audio[:, ::2], loop_clf, sr=8000)
    assert emb_8k.shape == emb.shape
    with pytest.raises(ValueError, match="not a course classifier"):
        embed_and_proba(audio, torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="batch_size"):
        embed_and_proba(audio, loop_clf, batch_size=0)


# ----------------------------------------------------------------------------- fooling IS

def test_targeted_perturbation_fools_the_classifier_within_its_budget(loop_clf):
    n_classes = 11
    t = torch.arange(8000) / 16_000
    kick = torch.sin(2 * torch.pi * 60 * t) * torch.exp(-20 * t)  # 0.5 s of a decaying 60 Hz drum hit
    base = kick.repeat(n_classes, 1)                              # one clip, eleven copies
    targets = torch.arange(n_classes)
    eps = 0.02
    fooled = targeted_perturbation(loop_clf, base, targets, eps=eps, steps=20)
    assert fooled.shape == base.shape and fooled.dtype == torch.float32
    assert float((fooled - base).abs().max()) <= eps + 1e-6
    with torch.no_grad():
        before, after = loop_clf.predict_proba(base), loop_clf.predict_proba(fooled)
    rows = torch.arange(n_classes)
    gain = (after[rows, targets].log() - before[rows, targets].log())   # log-probability of each clip's target
    assert float(gain.mean()) > 1.0 and int((gain > 0).sum()) >= 8
    assert float((after.argmax(1) == targets).float().mean()) >= 0.5
    # copies of one clip: IS 1 before; the perturbed copies spread over the classes
    assert inception_score(before.numpy(), splits=1)[0] == pytest.approx(1.0, abs=1e-4)
    assert inception_score(after.numpy(), splits=1)[0] > 2.0
    assert not loop_clf.training and all(p.grad is None for p in loop_clf.parameters())


def test_targeted_perturbation_rejects_bad_input(loop_clf):
    x = torch.zeros(2, 4000)
    with pytest.raises(ValueError, match="one class per clip"):
        targeted_perturbation(loop_clf, x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="eps"):
        targeted_perturbation(loop_clf, x, torch.tensor([0, 1]), eps=0.0)
    with pytest.raises(ValueError, match="audio must be"):
        targeted_perturbation(loop_clf, torch.zeros(4000), torch.tensor([0]))


# ----------------------------------------------------------------------------- the lesson's formulas

FORMULAS = ("inception_score_by_hand", "entropy_nats", "frechet_by_hand", "ndb_by_hand", "jsd_by_hand",
            "prdc_by_hand", "pa_pe_by_hand")


@pytest.fixture(scope="module")
def lesson_formulas() -> dict:
    """The functions defined in Lesson 06's cells tagged "formula", executed with the notebook's imports."""
    cells = json.loads(LESSON.read_text(encoding="utf-8"))["cells"]
    tagged = ["".join(c["source"]) for c in cells if c["cell_type"] == "code" and "formula" in c["metadata"].get("tags", [])]
    namespace = {"np": np, "scipy": scipy, "cdist": cdist}
    for source in tagged:
        exec(compile(source, str(LESSON), "exec"), namespace)  # noqa: S102 - the repository's own notebook
    missing = [name for name in FORMULAS if not callable(namespace.get(name))]
    assert not missing, f"Lesson 06 no longer defines {missing} in its formula cells"
    return namespace


def test_lesson_inception_score_formula(lesson_formulas):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(11, 0.3), size=120)
    by_hand = lesson_formulas["inception_score_by_hand"](probs)
    assert by_hand == pytest.approx(inception_score(probs, splits=1)[0], rel=1e-10)
    h = lesson_formulas["entropy_nats"]
    assert np.exp(h(probs.mean(0)) - h(probs).mean()) == pytest.approx(by_hand, rel=1e-10)
    assert lesson_formulas["inception_score_by_hand"](np.tile(np.eye(11), (3, 1))) == pytest.approx(11.0)


def test_lesson_frechet_formula(lesson_formulas):
    rng = np.random.default_rng(1)
    real = rng.standard_normal((400, 24)) @ rng.standard_normal((24, 24)) * 0.3
    gen = rng.standard_normal((300, 24)) * 0.8 + 0.2
    assert lesson_formulas["frechet_by_hand"](real, gen) == pytest.approx(fad_from_embeddings(real, gen), rel=1e-8)


def test_lesson_ndb_and_jsd_formulas(lesson_formulas):
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((6, 4)) * 5
    real = centres[rng.integers(0, 6, 600)] + rng.standard_normal((600, 4))
    gen = centres[rng.integers(0, 3, 250)] + rng.standard_normal((250, 4))   # half of the modes
    bins = NDBBins(real, k=12, seed=0)
    gen_counts = np.bincount(bins.assign(gen), minlength=12)
    ndb, p_values = lesson_formulas["ndb_by_hand"](bins.real_counts, gen_counts)
    lib = bins.score(gen)
    assert ndb == lib.ndb and ndb > 0
    np.testing.assert_allclose(p_values, two_proportion_z_test(bins.real_counts, 600, gen_counts, 250)[1], rtol=1e-10)
    jsd = lesson_formulas["jsd_by_hand"](bins.real_counts.astype(float), gen_counts.astype(float))
    assert jsd == pytest.approx(lib.jsd, rel=1e-10)


def test_lesson_prdc_formula(lesson_formulas):
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((80, 5)), rng.standard_normal((60, 5)) * 0.7 + 0.5
    lib = prdc(real, fake, k=5)
    by_hand = lesson_formulas["prdc_by_hand"](real, fake, k=5)
    assert by_hand == pytest.approx((lib.precision, lib.recall, lib.density, lib.coverage), abs=1e-12)


def test_lesson_pa_pe_formula(lesson_formulas):
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.full(88, 0.1), size=70)
    target = rng.integers(0, 88, 70)
    target[:20] = probs[:20].argmax(1)                                       # some hits
    pa, pe = lesson_formulas["pa_pe_by_hand"](probs, target)
    assert pa == pytest.approx(pitch_accuracy(probs, target)) and pa >= 20 / 70 * 100
    assert pe == pytest.approx(pitch_entropy(probs), rel=1e-10)
