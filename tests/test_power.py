"""Exact power, thresholds and the sample-size planner (multitest/_power.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import multitest
from multitest._power import (
    bonferroni_threshold,
    certify_threshold,
    clopper_pearson_lower,
    expected_certified_fraction,
    guess_probability,
    required_samples,
    segcertify_power,
)


# ---------------------------------------------------------------------------
# Clopper–Pearson and CERTIFY's threshold
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n, alpha", [(1, 0.5), (10, 0.05), (100, 0.001), (1000, 1e-9)])
def test_clopper_pearson_matches_scipy_beta_ppf(n, alpha):
    c = np.arange(n + 1)
    ref = np.where(c == 0, 0.0, stats.beta.ppf(alpha, np.maximum(c, 1), n - c + 1))
    np.testing.assert_array_equal(clopper_pearson_lower(c, n, alpha), ref)


def test_clopper_pearson_broadcasts_and_covers():
    rng = np.random.default_rng(1)
    n, p, alpha = np.array([[20], [200]]), 0.3, 0.1
    out = clopper_pearson_lower(np.array([[0, 5, 20]]), n, alpha)
    assert out.shape == (2, 3) and out[0, 0] == 0.0
    # coverage: P(lower <= p) >= 1 - alpha
    x = rng.binomial(50, p, size=20000)
    assert np.mean(clopper_pearson_lower(x, 50, alpha) <= p) >= 1 - alpha - 0.01


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), alpha=st.floats(1e-8, 0.5))
def test_certify_threshold_is_binomial_test_at_one_half(n, alpha):
    t = certify_threshold(n, alpha)
    c = np.arange(n + 1)
    lower = clopper_pearson_lower(c, n, alpha)
    brute = next((int(i) for i in c if lower[i] > 0.5), n + 1)
    assert t == brute
    # lower > 1/2  <=>  P(Bin(n, 1/2) >= c) < alpha  (away from float ties)
    pv = stats.binom.sf(c - 1, n, 0.5)
    clear = np.abs(pv - alpha) > 1e-9 * alpha
    np.testing.assert_array_equal((lower > 0.5)[clear], (pv < alpha)[clear])


@pytest.mark.parametrize("n, tau, alpha, N", [
    (100, 0.75, 0.001, 100), (1000, 0.9, 0.1, 10**6), (50, 0.5, 0.05, 7), (10, 0.99, 0.01, 10),
])
def test_bonferroni_threshold_matches_certify_counts(n, tau, alpha, N):
    t = bonferroni_threshold(n, tau, alpha, N=N)
    counts = np.zeros(N, dtype=np.int64)
    m = min(N, n + 1)
    counts[:m] = np.arange(n + 1)[-m:]
    cert = multitest.certify_counts(counts, n, tau, alpha, method="bonferroni")
    assert np.array_equal(cert.reject, counts >= t)
    if cert.reject.any():  # certify_counts reports the smallest certified count present
        assert cert.threshold == counts[counts >= t].min()


def test_threshold_validation():
    with pytest.raises(ValueError, match="`tau`"):
        bonferroni_threshold(10, 0.4, 0.1, N=1)
    with pytest.raises(ValueError, match="`N`"):
        bonferroni_threshold(10, 0.6, 0.1, N=0)
    with pytest.raises(ValueError, match="`alpha`"):
        certify_threshold(10, 1.0)
    with pytest.raises(TypeError, match="`n`"):
        certify_threshold(10.0, 0.1)
    with pytest.raises(ValueError, match="`counts`"):
        clopper_pearson_lower([11], 10, 0.1)
    with pytest.raises(TypeError, match="`counts`"):
        clopper_pearson_lower(["a"], 10, 0.1)


# ---------------------------------------------------------------------------
# power
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n0", [1, 2, 7, 10])
def test_guess_probability_by_enumeration(n0):
    p = 0.6
    pmf = stats.binom.pmf(np.arange(n0 + 1), n0, p)
    votes = np.arange(n0 + 1)
    top_wins = pmf[2 * votes >= n0].sum()
    strict = pmf[2 * votes > n0].sum()
    assert guess_probability(p, n0) == pytest.approx(top_wins, rel=1e-12)
    assert guess_probability(p, n0, ties_to_top=False) == pytest.approx(strict, rel=1e-12)


def test_segcertify_power_is_binomial_tail():
    p = np.array([0.7, 0.8, 0.95, 1.0])
    t = bonferroni_threshold(200, 0.75, 0.01, N=1000)
    ref = stats.binom.sf(t - 1, 200, p)
    np.testing.assert_allclose(segcertify_power(p, 200, 0.75, 0.01, N=1000), ref, rtol=1e-12)
    with_guess = segcertify_power(p, 200, 0.75, 0.01, N=1000, n0=11)
    np.testing.assert_allclose(with_guess, ref * guess_probability(p, 11), rtol=1e-12)
    assert isinstance(segcertify_power(0.9, 200, 0.75, 0.01, N=10), float)


def test_segcertify_power_against_monte_carlo(rng):
    """Bonferroni decisions from certify_counts on binomial counts hit the exact power."""
    p, n, N = 0.85, 120, 500
    power = segcertify_power(p, n, 0.75, 0.01, N=N)
    hits = [multitest.certify_counts(rng.binomial(n, p, size=N), n, 0.75, 0.01,
                                     method="bonferroni").reject.mean() for _ in range(40)]
    se = np.std(hits, ddof=1) / np.sqrt(len(hits))
    assert abs(np.mean(hits) - power) < 4 * se


def test_expected_certified_fraction_weights():
    vals, w = np.array([0.999, 0.9, 0.6]), np.array([90, 8, 2])
    f = expected_certified_fraction(vals, 100, 0.75, 0.001, N=10**4, weights=w)
    per = segcertify_power(vals, 100, 0.75, 0.001, N=10**4)
    assert f == pytest.approx(np.dot(w, per) / w.sum())
    per_component = np.repeat(vals, w)  # the same distribution, one value per component
    assert expected_certified_fraction(per_component, 100, 0.75, 0.001, N=10**4) == (
        pytest.approx(f))
    with pytest.raises(ValueError, match="`weights`"):
        expected_certified_fraction(vals, 100, 0.75, 0.001, N=10, weights=[1, 2])
    with pytest.raises(TypeError, match="`weights`"):
        expected_certified_fraction([0.9, 0.8], 100, 0.75, 0.001, N=10, weights=["a", "b"])
    with pytest.raises(ValueError, match="`p_A`"):
        expected_certified_fraction([1.5], 100, 0.75, 0.001, N=10)


# ---------------------------------------------------------------------------
# the planner
# ---------------------------------------------------------------------------
def _direct(p, tau, alpha, beta, N, n0=None, n_max=3000):
    g = 1.0 if n0 is None else guess_probability(p, n0)
    for n in range(1, n_max + 1):
        t = bonferroni_threshold(n, tau, alpha, N=N)
        if g * stats.binom.sf(t - 1, n, p) >= 1 - beta:
            return n
    return None


@pytest.mark.parametrize("p, tau, alpha, beta, N, n0", [
    (0.9, 0.75, 0.001, 0.05, 1024 * 2048, None),
    (0.95, 0.75, 0.01, 0.2, 100, None),
    (0.99, 0.5, 0.1, 0.5, 1, None),
    (0.8, 0.6, 0.05, 0.1, 1000, None),
    (0.97, 0.9, 0.001, 0.1, 10**4, 5),
    (1.0, 0.75, 0.001, 0.01, 10**6, None),
])
def test_required_samples_matches_direct_search(p, tau, alpha, beta, N, n0):
    plan = required_samples(p, tau, alpha, beta, N=N, n0=n0)
    assert plan.n == _direct(p, tau, alpha, beta, N, n0)
    assert plan.threshold == bonferroni_threshold(plan.n, tau, alpha, N=N)
    assert plan.power >= 1 - beta
    assert plan.power == pytest.approx(segcertify_power(p, plan.n, tau, alpha, N=N, n0=n0))


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.8, 1.0), beta=st.floats(0.01, 0.5), logN=st.integers(0, 6))
def test_required_samples_property(p, beta, logN):
    plan = required_samples(p, 0.7, 0.01, beta, N=10**logN)
    assert plan.n == _direct(p, 0.7, 0.01, beta, 10**logN, n_max=plan.n)


def test_power_is_not_monotone_in_n():
    """The documented sawtooth: a sufficient n can be followed by an insufficient one."""
    plan = required_samples(0.9, 0.75, 0.001, 0.05, N=1024 * 2048)
    after = segcertify_power(0.9, plan.n + 2, 0.75, 0.001, N=1024 * 2048)
    assert plan.n == 394 and after < 0.95 <= plan.power


def test_required_samples_validation():
    with pytest.raises(ValueError, match="`p_A` must exceed `tau`"):
        required_samples(0.7, 0.75, 0.01, 0.1, N=10)
    with pytest.raises(ValueError, match="`beta`"):
        required_samples(0.9, 0.75, 0.01, 0.0, N=10)
    with pytest.raises(ValueError, match="`tau`"):
        required_samples(0.9, 1.0, 0.01, 0.1, N=10)
    with pytest.raises(ValueError, match="`n0`"):
        required_samples(0.6, 0.55, 0.01, 0.01, N=10, n0=3)
    with pytest.raises(ValueError, match="`n_max`"):
        required_samples(0.76, 0.75, 0.01, 0.01, N=10, n_max=100)
    with pytest.raises(TypeError, match="`N`"):
        required_samples(0.9, 0.75, 0.01, 0.1, N=10.0)
    with pytest.raises(TypeError, match="`p_A`"):
        required_samples([0.9], 0.75, 0.01, 0.1, N=10)
