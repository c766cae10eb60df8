"""multitest at the edges of its inputs (issue 19, item 10, and the audit that followed).

Huge integers, bools, strings, ragged lists and negative seeds get a ValueError or
TypeError that names the argument and the accepted range; a huge ``n`` with few
counts is computed without a table sized by ``n``; the alternative code paths for
a huge ``n`` give the doubles of the ordinary ones.
"""

from __future__ import annotations

import contextlib
import math
import signal

import numpy as np
import pytest
from scipy import special

import multitest as mt
from multitest import _counts, _lower, _step

BIG = 10**30


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (rather than hang) where the old code looped for hours."""
    def expire(*_):
        raise TimeoutError(f"took more than {seconds} s")

    before = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


# ---------------------------------------------------------------------------
# min_certifying_samples
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("N", [BIG, 2**63])
def test_min_certifying_samples_huge_N_is_a_named_error(N):
    # was a numba TypingError (10**30) or OverflowError
    with pytest.raises(ValueError, match=r"`N` must be an integer in \[1, 2\*\*63 - 1\]"):
        mt.min_certifying_samples(N, 0.9, 0.001)


def test_min_certifying_samples_largest_N_works():
    n = mt.min_certifying_samples(2**63 - 1, 0.9, 0.001)
    # Holm with N equal p-values tau**n: rejected iff tau**n <= alpha / N
    assert 0.9**n <= 0.001 / (2**63 - 1) < 0.9 ** (n - 1)


def test_min_certifying_samples_numpy_integers():
    assert (mt.min_certifying_samples(np.int64(8192), 0.95, 0.001, k=np.int32(1))
            == mt.min_certifying_samples(8192, 0.95, 0.001) == 311)


def test_min_certifying_samples_by_at_huge_N_is_quick():
    # the harmonic number was a Python sum over 1..N: hours at N = 10**12
    with deadline(10):
        n = mt.min_certifying_samples(10**12, 0.9, 0.001, correction="benjamini_yekutieli")
    level = 0.001 / (math.log(10**12) + 0.5772156649015329)
    assert 0.9**n <= level < 0.9 ** (n - 1)


def test_harmonic_expansion_continues_the_sum():
    from multitest._fdr import harmonic_number
    from multitest._planning import _HARMONIC_SUM_MAX, _harmonic

    N = _HARMONIC_SUM_MAX
    assert _harmonic(N + 1) == pytest.approx(harmonic_number(N + 1), rel=1e-14)


@pytest.mark.parametrize(("kwargs", "err", "match"), [
    ({"correction": ["holm"]}, ValueError, "`correction`"),  # was: unhashable type
    ({"n_max": BIG}, ValueError, r"`n_max` must be an integer in \[1, 2\*\*53\]"),
    ({"N": True}, TypeError, "`N`"),
    ({"randomized": "yes"}, TypeError, "`randomized`"),
])
def test_min_certifying_samples_bad_arguments(kwargs, err, match):
    args = {"N": 100, "tau": 0.9, "alpha": 0.001, **kwargs}
    with pytest.raises(err, match=match):
        mt.min_certifying_samples(**args)


# ---------------------------------------------------------------------------
# n: at most 2**53 (float64 holds the incomplete beta's arguments exactly)
# ---------------------------------------------------------------------------
N_TOO_BIG = [2**53 + 1, 2**63 - 1, 2**63, BIG]
N_MESSAGE = r"`n` must be an integer in \[1, 2\*\*53\]"


@pytest.mark.parametrize("n", N_TOO_BIG)
@pytest.mark.parametrize("call", [
    lambda n: mt.binomial_pvalues([5], n, 0.5),
    lambda n: mt.binomial_pvalues([5], n, 0.5, randomized=True, rng=0),
    lambda n: mt.certify_counts([5], n, 0.5, 0.01),
    lambda n: mt.simultaneous_lower_bounds([5], n, 0.001),
    lambda n: mt.clopper_pearson_lower([5], n, 0.01),
    lambda n: mt.ladder_levels(n, 10, 0.01),
    lambda n: mt.certify_threshold(n, 0.01),
    lambda n: mt.bonferroni_threshold(n, 0.75, 0.01, N=10),
    lambda n: mt.segcertify_power(0.9, n, 0.75, 0.01, N=10),
], ids=["pvalues", "randomized", "certify_counts", "lower", "clopper_pearson",
        "ladder_levels", "certify_threshold", "bonferroni_threshold", "power"])
def test_n_above_2_53_is_a_named_error(call, n):
    # was OverflowError (>= 2**63), MemoryError, or silently rounded p-values
    with pytest.raises(ValueError, match=N_MESSAGE):
        call(n)


@pytest.mark.parametrize("n", [np.array([2**64 - 1], dtype=np.uint64), [BIG],
                               np.array([2**53 + 1])])
def test_n_arrays_out_of_range_are_named(n):
    # a uint64 n was wrapped to -1 ("... with n = -1"), a Python int array was "not integers"
    with pytest.raises(ValueError, match=r"`n` must lie in \[1, 2\*\*53\]"):
        mt.binomial_pvalues([5], n, 0.5)


def test_huge_count_is_out_of_range_not_a_type_error():
    with pytest.raises(ValueError, match=r"`counts` must lie in \[0, 10\]"):
        mt.binomial_pvalues([BIG], 10, 0.5)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: mt.guess_probability(0.6, BIG), "`n0`"),
    (lambda: mt.required_samples(0.9, 0.75, 0.01, 0.05, N=10, n_max=BIG), "`n_max`"),
    (lambda: mt.required_samples(0.9, 0.75, 0.01, 0.05, N=10, n0=BIG), "`n0`"),
    (lambda: mt.required_samples(0.9, 0.75, 0.01, 0.05, N=BIG), "`N`"),
    (lambda: mt.bonferroni_threshold(100, 0.75, 0.01, N=BIG), "`N`"),
    (lambda: mt.ladder_levels(10, BIG, 0.01), "`num_components`"),
    (lambda: mt.ladder_levels(10, 10, 0.01, num=10**9), r"`num` must be an integer in \[1, 2"),
    (lambda: mt.binomial_pvalue_table(10**12, 0.5), r"`n` must be an integer in \[1, 2\*\*28\]"),
])
def test_planning_integers_are_bounded(call, match):
    # were OverflowError, MemoryError or (ladder_levels) levels of exactly 1.0
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------
# Nothing sized by n when the counts are few
# ---------------------------------------------------------------------------
HUGE_N = 10**15


@pytest.mark.parametrize("method", ["bonferroni", "ladder"])
def test_lower_bounds_with_huge_n_and_one_count(method):
    # was a MemoryError: a table over 0..n whatever N
    res = mt.simultaneous_lower_bounds([5, HUGE_N], HUGE_N, 0.001, method=method)
    assert res.p_lower.shape == (2,)
    if method == "bonferroni":
        expected = special.betaincinv(5, HUGE_N - 4, 0.0005)
        assert res.p_lower[0] == pytest.approx(expected, rel=1e-9)
        assert res.p_lower[1] == pytest.approx(0.0005 ** (1 / HUGE_N), rel=1e-12)


def test_randomized_pvalues_with_huge_n_and_few_counts():
    # were a MemoryError (tables over 0..n)
    counts = np.array([3, HUGE_N - 1, HUGE_N])
    p = mt.binomial_pvalues(counts, HUGE_N, 0.5, randomized=True, rng=0)
    assert p.shape == (3,) and p[0] == 1.0 and p[1] == p[2] == 0.0
    cert = mt.certify_counts(counts, HUGE_N, 0.5, 0.01, randomized=True, rng=0)
    assert cert.reject.tolist() == [False, True, True] and cert.threshold == HUGE_N - 1


def test_certify_threshold_and_bonferroni_threshold_at_huge_n():
    # were MemoryErrors (arrays over 0..n); now bisections
    n = 10**12
    t = mt.certify_threshold(n, 0.001)
    assert special.betaincinv(t, n - t + 1, 0.001) > 0.5 >= special.betaincinv(t - 1, n - t + 2,
                                                                              0.001)
    b = mt.bonferroni_threshold(n, 0.75, 0.001, N=10)
    assert special.betainc(b, n - b + 1, 0.75) <= 1e-4 < special.betainc(b - 1, n - b + 2, 0.75)
    assert mt.segcertify_power(0.76, n, 0.75, 0.001, N=10) == 1.0


@pytest.mark.parametrize("alpha", [0.5, 0.01, 1e-6])
def test_thresholds_match_the_tables_for_small_n(alpha):
    """The bisections return what the tables over 0..n returned."""
    for n in range(1, 300, 7):
        lower = mt.clopper_pearson_lower(np.arange(n + 1), n, alpha)
        above = np.flatnonzero(lower > 0.5)
        assert mt.certify_threshold(n, alpha) == (above[0] if above.size else n + 1)
        table = mt.binomial_pvalue_table(n, 0.75)
        hits = np.flatnonzero(table <= alpha / 20)
        assert mt.bonferroni_threshold(n, 0.75, alpha, N=20) == (hits[0] if hits.size
                                                                 else n + 1)


def test_certify_counts_at_huge_n_matches_the_pvalue_path(rng):
    # the count thresholds of Holm's levels span ~10**7 counts: bisected, not tabulated
    n, tau = 2**50, 0.75
    sd = math.sqrt(n * tau * (1 - tau))
    counts = (n * tau + sd * rng.uniform(2, 6, size=3000)).astype(np.int64)
    cert = mt.certify_counts(counts, n, tau, 0.001)
    ref = mt.holm(mt.binomial_pvalues(counts, n, tau), 0.001).reject
    assert np.array_equal(cert.reject, ref) and 0 < ref.sum() < counts.size
    assert cert.threshold == counts[ref].min()


@pytest.mark.parametrize("method", ["holm", "hochberg", "benjamini_hochberg",
                                    "lehmann_romano"])
def test_huge_n_routes_give_the_ordinary_doubles(rng, monkeypatch, method):
    """The count levels bisected per critical value, and the p-value fallback of
    the slow-settling case, decide exactly as the tabulated paths."""
    n, tau = 500, 0.8
    counts = np.clip(rng.binomial(n, rng.uniform(0.75, 0.9, size=3000)), 0, n)
    kw = {"k": 3} if method == "lehmann_romano" else {}
    ref = mt.certify_counts(counts, n, tau, 0.05, method=method, **kw)
    monkeypatch.setattr(_counts, "LEVELS_TABLE_MAX", 0)
    bisected = mt.certify_counts(counts, n, tau, 0.05, method=method, **kw)
    monkeypatch.setattr(_step, "PLAIN_PASSES", 0)
    monkeypatch.setattr(_counts, "uses_table", lambda n, N: False)
    fallback = mt.certify_counts(counts, n, tau, 0.05, method=method, **kw)
    for got in (bisected, fallback):
        assert np.array_equal(got.reject, ref.reject) and got.threshold == ref.threshold


def test_randomized_per_count_route_gives_the_table_doubles(rng, monkeypatch):
    from multitest import _binomial

    n = 300
    counts = rng.binomial(n, 0.8, size=(40, 50))
    ref = mt.binomial_pvalues(counts, n, 0.75, randomized=True, rng=5)
    monkeypatch.setattr(_binomial, "uses_table", lambda n, N: False)
    got = mt.binomial_pvalues(counts, n, 0.75, randomized=True, rng=5)
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("method", ["bonferroni", "ladder"])
def test_lower_bounds_sort_route_gives_the_table_doubles(rng, monkeypatch, method):
    n = 200
    counts = rng.binomial(n, 0.9, size=(30, 7))
    ref = mt.simultaneous_lower_bounds(counts, n, 0.01, method=method).p_lower
    monkeypatch.setattr(_lower, "uses_table", lambda n, N: False)
    got = mt.simultaneous_lower_bounds(counts, n, 0.01, method=method).p_lower
    assert np.array_equal(got, ref)


# ---------------------------------------------------------------------------
# levels of the ladder
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(("levels", "err"), [
    ([[0.5, 0.6]], ValueError),  # was accepted (flattened)
    (0.6, ValueError),  # a scalar is not a ladder
    (["0.5"], TypeError),  # was accepted (parsed)
    ([True], TypeError),
    ([[0.5], [0.6, 0.7]], ValueError),  # ragged
])
def test_levels_must_be_a_1d_sequence_of_reals(levels, err):
    with pytest.raises(err, match="`levels`"):
        mt.simultaneous_lower_bounds([5, 6], 10, 0.01, method="ladder", levels=levels)


# ---------------------------------------------------------------------------
# Ragged lists name their argument
# ---------------------------------------------------------------------------
RAGGED = [[0.1, 0.2], [0.3]]
RAGGED_INT = [[1, 2], [3]]


@pytest.mark.parametrize(("call", "name"), [
    (lambda: mt.holm(RAGGED, 0.05), "pvals"),
    (lambda: mt.benjamini_hochberg(RAGGED, 0.05), "pvals"),
    (lambda: mt.hommel(RAGGED, 0.05), "pvals"),
    (lambda: mt.two_stage_benjamini_hochberg(RAGGED, 0.05), "pvals"),
    (lambda: mt.holm(RAGGED, 0.05, axis=0), "pvals"),
    (lambda: mt.multipletests(RAGGED), "pvals"),
    (lambda: mt.binomial_pvalues(RAGGED_INT, 10, 0.5), "counts"),
    (lambda: mt.binomial_pvalues([1, 2], RAGGED_INT, 0.5), "n"),
    (lambda: mt.certify_counts(RAGGED_INT, 10, 0.5, 0.01), "counts"),
    (lambda: mt.simultaneous_lower_bounds(RAGGED_INT, 10, 0.01), "counts"),
    (lambda: mt.clopper_pearson_lower(RAGGED_INT, 10, 0.01), "counts"),
    (lambda: mt.binomial_pvalue_table(2, 0.5, which=[[True], [False, True]]), "which"),
    (lambda: mt.guess_probability(RAGGED, 10), "p_A"),
    (lambda: mt.expected_certified_fraction([0.9, 0.8], 100, 0.75, 0.01, N=10,
                                            weights=RAGGED), "weights"),
])
def test_ragged_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=f"`{name}` must be a rectangular array"):
        call()


# ---------------------------------------------------------------------------
# Seeds, flags and iteration counts
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [-1, np.int64(-1)])
def test_negative_seed_names_rng(seed):
    # was numpy's "expected non-negative integer"
    with pytest.raises(ValueError, match=r"`rng` .* integer seed >= 0; got"):
        mt.binomial_pvalues([1], 10, 0.5, randomized=True, rng=seed)
    with pytest.raises(ValueError, match="`rng`"):
        mt.certify_counts([1], 10, 0.5, 0.01, randomized=True, rng=seed)


@pytest.mark.parametrize("maxiter", [2**63, BIG])
def test_two_stage_huge_maxiter_iterates_to_convergence(rng, maxiter):
    # was a numba TypingError; more stages than N change nothing
    p = rng.uniform(size=50) ** 3
    for proc in (mt.two_stage_benjamini_hochberg, mt.benjamini_krieger_yekutieli):
        ref = proc(p, 0.1, maxiter=-1)
        got = proc(p, 0.1, maxiter=maxiter)
        assert np.array_equal(got.reject, ref.reject)
        assert np.array_equal(got.pvalues_adjusted, ref.pvalues_adjusted)
    adapted = mt.multipletests(p, 0.1, method="fdr_tsbh", maxiter=maxiter)
    assert np.array_equal(adapted[0], mt.two_stage_benjamini_hochberg(p, 0.1,
                                                                      maxiter=-1).reject)


@pytest.mark.parametrize(("call", "name"), [
    (lambda: mt.multipletests([0.1, 0.01], returnsorted="no"), "returnsorted"),
    (lambda: mt.multipletests([0.1, 0.01], is_sorted="yes"), "is_sorted"),
    (lambda: mt.guess_probability(0.6, 10, ties_to_top="no"), "ties_to_top"),
])
def test_string_flags_are_refused_not_truthy(call, name):
    # a string was read as True: returnsorted="no" sorted, ties_to_top="no" kept ties
    with pytest.raises(TypeError, match=f"`{name}` must be a bool"):
        call()


def test_statsmodels_flags_still_take_bools_and_01():
    p = [0.1, 0.01, 0.03]
    a = mt.multipletests(p, method="holm", returnsorted=1, is_sorted=np.False_)
    b = mt.multipletests(p, method="holm", returnsorted=True)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[1], np.sort(a[1]))


def test_lower_bounds_method_must_be_a_string():
    with pytest.raises(ValueError, match="`method`"):
        mt.simultaneous_lower_bounds([5], 10, 0.01, method=np.array(["ladder"]))
