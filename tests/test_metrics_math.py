"""Metric mathematics against independent references: closed forms, scipy, hand-computed cases, brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from course_lib.metrics.fad import fad_bootstrap, fad_from_embeddings, fad_infinity
from course_lib.metrics.frechet import GaussianStats, frechet_distance, gaussian_stats, psd_sqrt
from course_lib.metrics.inception_score import inception_score
from course_lib.metrics.ndb import jensen_shannon_divergence, ndb_jsd, two_proportion_z_test
from course_lib.metrics.pitch import pitch_accuracy, pitch_entropy
from course_lib.metrics.prdc import prdc


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, 2 * d))
    return a @ a.T / (2 * d) + 0.05 * np.eye(d)


def _frechet_scipy(mu1, s1, mu2, s2) -> float:
    """The classic FID code path: general sqrtm of the non-symmetric product."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _frechet_from_samples_svd(x1: np.ndarray, x2: np.ndarray) -> float:
    """Independent route for sample covariances: tr sqrt(S1 S2) = nuclear norm of Xc2 Xc1^T / sqrt((n1-1)(n2-1))."""
    c1, c2 = x1 - x1.mean(0), x2 - x2.mean(0)
    s1 = c1.T @ c1 / (len(x1) - 1)
    s2 = c2.T @ c2 / (len(x2) - 1)
    nuc = np.linalg.svd(c2 @ c1.T, compute_uv=False).sum() / math.sqrt((len(x1) - 1) * (len(x2) - 1))
    diff = x1.mean(0) - x2.mean(0)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * nuc)


# ----------------------------------------------------------------------------- Fréchet

def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(0)
    d = 50
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    v1, v2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("d", [16, 128])
def test_frechet_matches_scipy_sqrtm_full_rank(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), 0.3 * rng.standard_normal(d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    ref = _frechet_scipy(mu1, s1, mu2, s2)
    got = frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(ref, rel=1e-6)
    # symmetric in its two arguments
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-9)


def test_psd_sqrt_squares_back():
    rng = np.random.default_rng(1)
    s = _random_cov(rng, 40)
    r = psd_sqrt(s)
    assert np.allclose(r, r.T)
    assert np.allclose(r @ r, s, atol=1e-10)
    assert np.linalg.eigvalsh(r).min() >= -1e-12


def test_frechet_zero_for_identical_sets_and_positive_otherwise():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 20)) @ rng.standard_normal((20, 20))
    st = gaussian_stats(x)
    assert abs(st.distance(gaussian_stats(x.copy()))) < 1e-8 * np.trace(st.sigma)
    assert st.distance(gaussian_stats(x + 0.5)) == pytest.approx(20 * 0.25, rel=1e-6)  # pure mean shift


def test_frechet_rank_deficient_is_finite_and_matches_svd_route():
    rng = np.random.default_rng(3)
    d = 64
    x1 = rng.standard_normal((20, d))  # fewer samples than dimensions: rank 19 covariances
    x2 = rng.standard_normal((30, d)) * 1.5 + 0.2
    s1, s2 = gaussian_stats(x1), gaussian_stats(x2)
    assert np.linalg.matrix_rank(s1.sigma) < d
    got = s1.distance(s2)
    assert isinstance(got, float) and math.isfinite(got) and got > 0
    assert got == pytest.approx(_frechet_from_samples_svd(x1, x2), rel=1e-6)
    assert s2.distance(s1) == pytest.approx(got, rel=1e-6)
    assert abs(s1.distance(gaussian_stats(x1))) < 1e-7 * np.trace(s1.sigma)


def test_frechet_full_rank_samples_match_svd_route():
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((400, 32)), rng.standard_normal((300, 32)) * 0.7 + 0.1
    got = fad_from_embeddings(x1, x2)
    assert got == pytest.approx(_frechet_from_samples_svd(x1, x2), rel=1e-6)


def test_stats_npz_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(5)
    st = gaussian_stats(rng.standard_normal((50, 8)))
    path = st.save(tmp_path / "ref.npz")
    back = GaussianStats.load(path)
    assert back.n == 50 and np.array_equal(back.mu, st.mu) and np.array_equal(back.sigma, st.sigma)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        GaussianStats.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        GaussianStats.load(bad)
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


def test_fad_infinity_removes_small_sample_bias():
    rng = np.random.default_rng(6)
    d = 16
    ref = GaussianStats(np.zeros(d), np.eye(d), 10**6)  # the true distribution
    gen = rng.standard_normal((2000, d))  # same distribution: true FAD is 0
    biased = ref.distance(gaussian_stats(gen[:200]))
    res = fad_infinity(ref, gen, min_size=200, n_points=10, seed=0)
    assert biased > 0.05
    assert abs(res.value) < 0.25 * biased
    assert res.slope > 0  # the bias shrinks as 1/n


def test_fad_bootstrap_interval_brackets_mean_shift():
    rng = np.random.default_rng(7)
    d = 8
    ref = GaussianStats(np.zeros(d), np.eye(d), 10**6)
    gen = rng.standard_normal((1000, d)) + 0.5  # true FAD = 8 * 0.25 = 2.0
    ci = fad_bootstrap(ref, gen, n_boot=100, seed=0)
    assert ci.low < 2.0 < ci.high
    assert 0 < ci.high - ci.low < 1.0


def test_fad_bootstrap_interval_brackets_the_sample_fad_when_resampling_is_biased():
    """Few clips in many dimensions: resamples look less diverse, so their FAD runs high."""
    rng = np.random.default_rng(3)
    d = 64
    ref = GaussianStats(np.zeros(d), np.eye(d), 10**6)
    gen = rng.standard_normal((100, d))
    point = fad_from_embeddings(ref, gen)
    ci = fad_bootstrap(ref, gen, n_boot=60, seed=0)
    assert ci.bias > 0.1 * point  # the raw percentile interval would miss the point estimate
    assert ci.low <= point <= ci.high


# ----------------------------------------------------------------------------- IS

def test_inception_score_extremes():
    c = 7
    confident_uniform = np.tile(np.eye(c), (10, 1))  # 70 clips, every class equally often, one-hot
    mean, std = inception_score(confident_uniform, splits=10)
    assert mean == pytest.approx(c, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    p = np.random.default_rng(0).dirichlet(np.ones(c))
    same = np.tile(p, (50, 1))
    assert inception_score(same, splits=5)[0] == pytest.approx(1.0, abs=1e-12)


def test_inception_score_hand_computed():
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    marg = np.array([0.75, 0.25])
    kl1 = math.log(1 / marg[0])
    kl2 = 0.5 * math.log(0.5 / marg[0]) + 0.5 * math.log(0.5 / marg[1])
    assert inception_score(probs, splits=1)[0] == pytest.approx(math.exp((kl1 + kl2) / 2), rel=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.array([[2.0, 1.0], [0.2, 0.1]]), splits=1)
    with pytest.raises(ValueError, match="splits"):
        inception_score(probs, splits=3)


# ----------------------------------------------------------------------------- NDB / JSD

def test_two_proportion_z_matches_chi_square():
    z, p = two_proportion_z_test(np.array([30]), 100, np.array([50]), 100)
    chi2, p_chi, _, _ = chi2_contingency(np.array([[30, 70], [50, 50]]), correction=False)
    assert z[0] ** 2 == pytest.approx(chi2, rel=1e-10)
    assert p[0] == pytest.approx(p_chi, rel=1e-8)


def test_jsd_matches_scipy():
    rng = np.random.default_rng(0)
    p, q = rng.random(12), rng.random(12)
    assert jensen_shannon_divergence(p, q) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-10)
    assert jensen_shannon_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    assert jensen_shannon_divergence([1, 0], [0, 1]) == pytest.approx(math.log(2), rel=1e-12)


def _mixture(rng, n, d=6, modes=8, shift=0.0):
    centres = np.random.default_rng(123).standard_normal((modes, d)) * 4
    return centres[rng.integers(0, modes, n)] + rng.standard_normal((n, d)) + shift


def test_ndb_same_vs_disjoint():
    rng = np.random.default_rng(1)
    real, same = _mixture(rng, 1500), _mixture(rng, 1500)
    disjoint = _mixture(rng, 1500, shift=40.0)
    r_same = ndb_jsd(real, same, k=20, seed=0)
    r_far = ndb_jsd(real, disjoint, k=20, seed=0)
    assert r_same.ndb_k <= 0.2 and r_same.jsd < 0.02
    assert r_far.ndb_k >= 0.9 and r_far.jsd > 0.5
    assert r_same.real_proportions.sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- PRDC

def _prdc_brute_force(x, y, k):
    def radii(a):
        out = []
        for i in range(len(a)):
            ds = sorted(np.linalg.norm(a[i] - a[j]) for j in range(len(a)) if j != i)
            out.append(ds[k - 1])
        return np.array(out)
    rx, ry = radii(x), radii(y)
    dist = lambda a, b: float(np.linalg.norm(a - b))  # noqa: E731
    precision = np.mean([any(dist(yj, x[i]) <= rx[i] for i in range(len(x))) for yj in y])
    recall = np.mean([any(dist(xi, y[j]) <= ry[j] for j in range(len(y))) for xi in x])
    density = sum(dist(yj, x[i]) <= rx[i] for yj in y for i in range(len(x))) / (k * len(y))
    coverage = np.mean([min(dist(x[i], yj) for yj in y) <= rx[i] for i in range(len(x))])
    return precision, recall, density, coverage


def test_prdc_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 3)), rng.standard_normal((25, 3)) * 1.3 + 0.4
    got = prdc(x, y, k=3)
    ref = _prdc_brute_force(x, y, 3)
    assert (got.precision, got.recall, got.density, got.coverage) == pytest.approx(ref, rel=1e-12)


def test_prdc_gaussian_sanity_cases():
    rng = np.random.default_rng(0)
    d, n = 32, 1000
    real = rng.standard_normal((n, d))
    same = prdc(real, rng.standard_normal((n, d)), k=5)
    shifted = prdc(real, rng.standard_normal((n, d)) + 1.0, k=5)
    collapsed = prdc(real, real[0] + 0.1 * rng.standard_normal((n, d)), k=5)  # one mode, like a repeated loop
    assert same.precision > 0.7 and same.recall > 0.7 and same.coverage > 0.9 and 0.7 < same.density < 1.3
    assert shifted.precision < 0.5 * same.precision and shifted.density < 0.5 * same.density
    assert collapsed.recall < 0.3 * same.recall and collapsed.coverage < 0.1 * same.coverage
    assert collapsed.precision > 0.9  # every collapsed sample is still realistic


# ----------------------------------------------------------------------------- PA / PE

def test_pitch_accuracy_and_entropy():
    c = 5
    probs = np.full((4, c), 0.1)
    probs[np.arange(4), [0, 1, 2, 2]] = 0.6
    assert pitch_accuracy(probs, np.array([0, 1, 2, 3])) == pytest.approx(75.0)
    expected_h = -(0.6 * math.log(0.6) + 4 * 0.1 * math.log(0.1))
    assert pitch_entropy(probs) == pytest.approx(expected_h, rel=1e-12)
    assert pitch_entropy(np.full((3, c), 1 / c)) == pytest.approx(math.log(c), rel=1e-12)
    assert pitch_entropy(np.eye(c)) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="target"):
        pitch_accuracy(probs, np.array([0, 1, 2, 9]))
