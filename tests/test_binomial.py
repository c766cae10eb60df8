"""binomial_pvalues against scipy (bit-equal), mpmath-free exact references, and errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

import multitest as mt
from multitest import binomial_pvalue_table, binomial_pvalues
from multitest._binomial import pvalue_of_count, pvalues_of_counts, uses_table


@pytest.mark.parametrize("n", [1, 2, 7, 100])
@pytest.mark.parametrize("tau", [0.5, 0.75, 0.9, 0.999])
def test_equals_binomtest_for_every_count(n, tau):
    counts = np.arange(n + 1)
    ours = binomial_pvalues(counts, n, tau)
    ref = np.array([stats.binomtest(int(c), n, tau, alternative="greater").pvalue
                    for c in counts])
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("n", [1000, 10_000, 1_000_000])
@pytest.mark.parametrize("tau", [0.5, 0.75, 0.99])
def test_bit_equal_to_binom_sf_large_n(rng, n, tau):
    counts = rng.integers(0, n + 1, size=20_000)
    counts[:50] = n  # the smallest p-values
    counts[50:60] = 0
    ours = binomial_pvalues(counts, n, tau)
    ref = stats.binom.sf(counts - 1, n, tau)
    np.testing.assert_array_equal(ours, ref)


def test_exact_small_cases_against_closed_form():
    # P(X >= n) = tau**n and P(X >= 1) = 1 - (1 - tau)**n
    for n in (1, 5, 50):
        for tau in (0.6, 0.75):
            p = binomial_pvalues([n, 1, 0], n, tau)
            np.testing.assert_allclose(p[0], tau**n, rtol=1e-13)
            np.testing.assert_allclose(p[1], -np.expm1(n * np.log1p(-tau)), rtol=1e-13)
            assert p[2] == 1.0


@pytest.mark.parametrize(("n", "tau"), [(1000, 0.49), (1050, 0.5), (2000, 0.75), (1074, 0.5)])
def test_tiny_pvalues_are_not_flushed_to_zero(n, tau):
    # P(X >= n) = tau**n, computed in log space; representable values must come back
    true_log = n * np.log(tau)
    p = binomial_pvalues([n], n, tau)[0]
    assert p > 0.0
    rel = 1e-12 if true_log > np.log(np.finfo(float).tiny) else 1e-3  # subnormal spacing
    np.testing.assert_allclose(np.log(p), true_log, rtol=rel)


def test_underflow_only_where_unrepresentable():
    assert binomial_pvalues([1000], 1000, 0.3)[0] == 0.0  # 0.3**1000 ~ 1e-523


def test_shape_and_broadcasting():
    counts = np.array([[1, 2, 3], [4, 5, 6]])
    p = binomial_pvalues(counts, 10, 0.5)
    assert p.shape == (2, 3)
    n = np.array([6, 7, 8])
    q = binomial_pvalues(counts, n, 0.5)
    ref = stats.binom.sf(counts - 1, n, 0.5)
    np.testing.assert_array_equal(q, ref)
    assert binomial_pvalues(np.zeros((0, 3), dtype=int), 5, 0.5).shape == (0, 3)


def test_float_counts_with_integral_values_accepted():
    np.testing.assert_array_equal(binomial_pvalues([3.0, 4.0], 5, 0.5),
                                  binomial_pvalues([3, 4], 5, 0.5))


def test_table_matches_gather():
    t = binomial_pvalue_table(30, 0.8)
    np.testing.assert_array_equal(t, binomial_pvalues(np.arange(31), 30, 0.8))


@pytest.mark.parametrize(("n", "tau"), [(1, 0.5), (100, 0.75), (10_000, 0.9), (10**6, 0.5)])
def test_scalar_pvalue_of_count_is_the_table_entry(rng, n, tau):
    counts = np.unique(np.r_[0, n, rng.integers(0, n + 1, size=50)])
    table = pvalues_of_counts(n, tau, counts)
    assert [pvalue_of_count(n, tau, int(c)) for c in counts] == table.tolist()


@pytest.mark.parametrize(("n", "tau"), [(10_000, 0.75), (200_000, 0.5)])
def test_monotone_in_count_large_n(n, tau):
    """certify_counts maps critical values to count thresholds by bisection: it needs
    the computed p-values to fall with the count, as the true ones do."""
    counts = np.arange(int(n * tau), n + 1)
    p = pvalues_of_counts(n, tau, counts)
    assert np.all(np.diff(p) <= 0)


@given(n=st.integers(1, 300), tau=st.floats(0.01, 0.99),
       data=st.data())
@settings(max_examples=60, deadline=None)
def test_monotone_in_count_and_bounded(n, tau, data):
    counts = np.arange(n + 1)
    p = binomial_pvalues(counts, n, tau)
    assert np.all(np.diff(p) <= 0)
    assert p[0] == 1.0 and np.all((p >= 0) & (p <= 1))
    c = data.draw(st.integers(0, n))
    assert p[c] == stats.binom.sf(c - 1, n, tau)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"counts": [1, 11], "n": 10, "tau": 0.5}, ValueError, "counts"),
        ({"counts": [-1], "n": 10, "tau": 0.5}, ValueError, "counts"),
        ({"counts": [1.5], "n": 10, "tau": 0.5}, ValueError, "counts"),
        ({"counts": [np.nan], "n": 10, "tau": 0.5}, ValueError, "counts"),
        ({"counts": ["a"], "n": 10, "tau": 0.5}, TypeError, "counts"),
        ({"counts": [1 + 1j], "n": 10, "tau": 0.5}, TypeError, "counts"),
        ({"counts": [1], "n": 0, "tau": 0.5}, ValueError, "`n`"),
        ({"counts": [1], "n": 2.5, "tau": 0.5}, TypeError, "`n`"),
        ({"counts": [1], "n": True, "tau": 0.5}, TypeError, "`n`"),
        ({"counts": [1], "n": 10, "tau": 0.0}, ValueError, "`tau`"),
        ({"counts": [1], "n": 10, "tau": 1.0}, ValueError, "`tau`"),
        ({"counts": [1], "n": 10, "tau": np.nan}, ValueError, "`tau`"),
        ({"counts": [1, 5], "n": np.array([3, 4]), "tau": 0.5}, ValueError, "counts"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        binomial_pvalues(**kwargs)


@pytest.mark.parametrize(
    ("counts", "n", "match"),
    [
        ([1e20, 3.0], 5, r"`counts` must lie in \[0, n\] = \[0, 5\]; got 1e\+20"),
        ([3.0, -1e20], 5, r"`counts` must lie in \[0, n\] = \[0, 5\]; got -1e\+20"),
        ([2.0**63], np.array([5]), r"`counts` must lie in \[0, n\]; got 9.2\d*e\+18"),
        ([2.0, 2.5], 5, r"`counts` must be integers; got 2.5"),
        ([2.0, np.inf], 5, r"`counts` must be finite integers; got inf"),
        ([1, 9], np.array([10, 8]), r"got a count of 9 with n = 8"),
    ],
)
def test_bad_counts_reported_as_given(counts, n, match):
    """Range and integrality are checked before the cast (issue 14.10)."""
    with pytest.raises(ValueError, match=match):
        binomial_pvalues(counts, n, 0.5)
    if isinstance(n, int):
        with pytest.raises(ValueError, match=match):
            mt.certify_counts(counts, n, 0.5, 0.05)


@pytest.mark.parametrize(
    ("which", "exc", "match"),
    [
        ([1, 2], TypeError, "`which` must be a boolean mask"),
        (np.array([0, 1, 1, 0, 0, 0]), TypeError, "`which`"),
        ([0.0, 1.0], TypeError, "`which`"),
        ([True, False], ValueError, r"`which` must have shape \(n \+ 1,\) = \(6,\)"),
        (np.ones((2, 3), dtype=bool), ValueError, "`which`"),
    ],
)
def test_table_which_must_be_a_boolean_mask_of_length_n_plus_one(which, exc, match):
    with pytest.raises(exc, match=match):
        binomial_pvalue_table(5, 0.5, which=which)


def test_table_which_mask():
    which = np.zeros(6, dtype=bool)
    which[[1, 2]] = True
    table = binomial_pvalue_table(5, 0.5, which=which)
    np.testing.assert_array_equal(np.isnan(table), ~which)
    np.testing.assert_array_equal(table[[1, 2]], binomial_pvalues([1, 2], 5, 0.5))


def test_huge_n_scalar_evaluates_directly():
    """A table over 0..n would need 8 TB here; the array-`n` route answers (issue 14.11)."""
    counts = [2**39 + 10**6, 0, 2**40]
    scalar = binomial_pvalues(counts, 2**40, 0.5)
    array_n = binomial_pvalues(counts, np.array([2**40]), 0.5)
    np.testing.assert_array_equal(scalar, array_n)
    assert scalar[0] == pytest.approx(0.0282, abs=1e-4) and scalar[1] == 1.0
    cert = mt.certify_counts(counts, 2**40, 0.5, 0.05, method="bonferroni")
    np.testing.assert_array_equal(cert.pvalues, scalar)


@given(
    counts=hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(0, 10**5)),
    n=st.integers(1, 10**5),
    tau=st.floats(0.01, 0.99),
)
@settings(max_examples=100, deadline=None)
def test_table_and_direct_routes_are_bitwise_equal(counts, n, tau):
    counts = np.minimum(counts, n)
    with_table = binomial_pvalue_table(n, tau)[counts]
    direct = binomial_pvalues(counts, np.full(counts.shape, n), tau)  # never tabulated
    np.testing.assert_array_equal(binomial_pvalues(counts, n, tau), direct)
    np.testing.assert_array_equal(with_table, direct)
    assert uses_table(n, counts.size) == (n + 1 <= min(16 * counts.size, 2**24))
