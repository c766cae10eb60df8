"""Gavrilov–Benjamini–Sarkar (``fdr_gbs``) and the support-line procedure (``lfdr``).

Against statsmodels bit for bit (its ``multipletests`` and ``local_fdr_correction``),
against written-out exact references (fractions), against R's fdrtool values that
statsmodels' own tests hold, by statsmodels' own test functions with our
``multipletests`` swapped in, and by seeded Monte Carlo for their guarantees.
"""

import importlib
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from statsmodels.stats.multitest import local_fdr_correction
from statsmodels.stats.multitest import multipletests as sm_multipletests

import multitest as mt

ALIASES = {"fdr_gbs": mt.gavrilov_benjamini_sarkar, "lfdr": mt.support_line,
           "lfdr_sl": mt.support_line}

gridded = st.integers(1, 40).map(lambda i: i / 40)
tiny = st.sampled_from([5e-324, 1e-310, 2.2250738585072014e-308, 1e-300])
positive_pvalue = st.one_of(st.floats(5e-324, 1.0, width=64), gridded, tiny)
pvalue = st.one_of(positive_pvalue, st.just(0.0))


def statsmodels(p, alpha, method, **kw):
    with warnings.catch_warnings():
        # fdr_gbs divides by 1 - p = 0; lfdr's c / (N gap) overflows for subnormal gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        return sm_multipletests(p, alpha, method=method, **kw)


# --- statsmodels, bit for bit ---------------------------------------------------------
@given(p=hnp.arrays(np.float64, st.integers(1, 60), elements=positive_pvalue),
       alpha=st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.5]),
       method=st.sampled_from(sorted(ALIASES)))
@settings(max_examples=300, deadline=None)
def test_same_as_statsmodels_bit_for_bit(p, alpha, method):
    ours = mt.multipletests(p, alpha, method=method)
    ref = statsmodels(p, alpha, method)
    np.testing.assert_array_equal(ours.reject, ref[0])
    np.testing.assert_array_equal(ours.pvals_corrected, ref[1])
    assert ours.alphacSidak == ref[2] and ours.alphacBonf == ref[3]
    res = ALIASES[method](p, alpha)
    np.testing.assert_array_equal(res.pvalues_adjusted, ref[1])
    np.testing.assert_array_equal(res.reject, ref[0])


@pytest.mark.parametrize("method", sorted(ALIASES))
@pytest.mark.parametrize("N", [1, 2, 7, 300, 5000])
def test_same_as_statsmodels_on_larger_and_tied_inputs(rng, method, N):
    """Sizes on both sides of the sort's cut-over (PACKED_MIN_N), ties and subnormal gaps."""
    for p in (rng.uniform(size=N), rng.uniform(size=N) ** 6,
              rng.integers(1, 21, size=N) / 20,
              rng.choice([5e-324, 1e-310, 1e-300, 0.25, 0.5, 1.0], size=N)):
        for sort_flags in ({}, {"returnsorted": True}):
            ours = mt.multipletests(p, 0.1, method=method, **sort_flags)
            ref = statsmodels(p, 0.1, method, **sort_flags)
            np.testing.assert_array_equal(ours[0], ref[0])
            np.testing.assert_array_equal(ours[1], ref[1])
        s = np.sort(p)
        np.testing.assert_array_equal(mt.multipletests(s, 0.1, method=method, is_sorted=True)[1],
                                      statsmodels(s, 0.1, method, is_sorted=True)[1])


@given(p=hnp.arrays(np.float64, st.integers(1, 40), elements=positive_pvalue),
       pi0=st.floats(0.05, 1.0))
@settings(max_examples=100, deadline=None)
def test_null_proportion_like_local_fdr_correction(p, pi0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # c / (N gap) overflows: inf
        ref = local_fdr_correction(p, null_proportion=pi0).lfdr
    np.testing.assert_array_equal(mt.support_line(p, 0.1, null_proportion=pi0).pvalues_adjusted,
                                  ref)


# --- exact references written out ---------------------------------------------------------
def gbs_reference(p, alpha):
    """Step down with c_j = j a / (N + 1 - j (1 - a)), in exact rational arithmetic."""
    p = [Fraction(x) for x in p]
    a, N = Fraction(alpha), len(p)
    order = sorted(range(N), key=lambda i: p[i])
    R = 0
    while R < N and p[order[R]] <= (R + 1) * a / (N + 1 - (R + 1) * (1 - a)):
        R += 1
    reject = np.zeros(N, dtype=bool)
    reject[order[:R]] = True
    return reject


def grenander_reference(p, pi0=1):
    """min(1, pi0 / left slope of the least concave majorant of the ecdf), exactly.

    The majorant is the upper hull of (0, 0) and (u, F(u)) for the distinct values u;
    a mass at 0 is a vertical first segment (infinite slope, local FDR 0).
    """
    N = len(p)
    values = sorted(set(Fraction(x) for x in p))
    height = {u: Fraction(sum(Fraction(x) <= u for x in p), N) for u in values}
    hull = [(Fraction(0), Fraction(0))]
    for u in values:
        point = (u, height[u])
        while len(hull) >= 2:  # drop the last vertex if it lies on or below the chord
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (y1 - y0) * (point[0] - x0) <= (point[1] - y0) * (x1 - x0):
                hull.pop()
            else:
                break
        hull.append(point)
    lfdr = {}
    for (x0, y0), (x1, y1) in zip(hull[:-1], hull[1:], strict=True):
        local = 0 if x1 == x0 else min(Fraction(1), pi0 * (x1 - x0) / (y1 - y0))
        for u in values:
            if x0 < u <= x1 or (u == x1 == 0):
                lfdr[u] = local
    return np.array([float(lfdr[Fraction(x)]) for x in p]), [lfdr[Fraction(x)] for x in p]


@given(p=hnp.arrays(np.float64, st.integers(1, 25),
                    elements=st.one_of(gridded, st.floats(1e-6, 1.0), st.just(0.0))),
       alpha=st.sampled_from([0.01, 0.05, 0.1, 0.3]))
@settings(max_examples=200, deadline=None)
def test_gbs_decisions_are_the_exact_step_down(p, alpha):
    """Agree with the exact step-down wherever no p-value is within 1e-9 of its critical
    value (there the float expression decides, as statsmodels')."""
    N, a = p.size, alpha
    s = np.sort(p)
    j = np.arange(1, N + 1)
    crit = j * a / (N + 1 - j * (1 - a))
    if np.any(np.abs(s - crit) <= 1e-9 * np.maximum(crit, 1e-300)):
        return
    np.testing.assert_array_equal(mt.gavrilov_benjamini_sarkar(p, alpha).reject,
                                  gbs_reference(p, alpha))


@given(p=hnp.arrays(np.float64, st.integers(1, 25),
                    elements=st.one_of(gridded, st.floats(1e-6, 1.0), st.just(0.0))),
       alpha=st.sampled_from([0.05, 0.1, 0.3]),
       pi0=st.sampled_from([1.0, 0.8]))
@settings(max_examples=200, deadline=None)
def test_support_line_is_the_exact_grenander_lfdr_and_the_support_line(p, alpha, pi0):
    """The local FDRs are the exact Grenander ones (to rounding, zeros included), and the
    rejections are those of the support line: the R smallest p-values, R the largest
    maximiser of R / N - p_(R) / alpha (docs/multitest.md), whenever that is not decided
    by rounding."""
    res = mt.support_line(p, alpha, null_proportion=pi0)
    approx, exact = grenander_reference(p, Fraction(pi0))
    np.testing.assert_allclose(res.pvalues_adjusted, approx, rtol=1e-12, atol=0)
    if pi0 != 1.0 or any(abs(e - Fraction(alpha)) < Fraction(1, 10**9) for e in exact):
        return
    s = sorted(Fraction(x) for x in p)
    gain = [Fraction(0)] + [Fraction(R, p.size) - s[R - 1] / Fraction(alpha)
                            for R in range(1, p.size + 1)]
    R = max(r for r in range(p.size + 1) if gain[r] == max(gain))
    np.testing.assert_array_equal(res.reject, np.array([e <= Fraction(alpha) for e in exact]))
    assert res.num_rejected == R


# R 4.6.1, fdrtool::grenander, as held by statsmodels' test_multi.py
FDRTOOL = [
    ([0.0005, 0.003, 0.012, 0.02, 0.031, 0.045, 0.09, 0.14, 0.31, 0.52, 0.61, 0.77, 0.83,
      0.91, 0.98], 1.0,
     [0.0075, 0.0375, 0.1275, 0.1275, 0.165, 0.21, 0.675, 0.75] + [1.0] * 7),
    ([0.0005, 0.003, 0.012, 0.02, 0.031, 0.045, 0.09, 0.14, 0.31, 0.52, 0.61, 0.77, 0.83,
      0.91, 0.98], 0.7,
     [0.00525, 0.02625, 0.08925, 0.08925, 0.1155, 0.147, 0.4725, 0.525] + [1.0] * 7),
    ([0.001, 0.02, 0.02, 0.02, 0.15, 0.15, 0.4, 0.4, 0.4, 0.4, 0.8, 0.95], 0.9,
     [0.0108, 0.0684, 0.0684, 0.0684] + [0.684] * 6 + [1.0, 1.0]),
    ([0.0005, 0.031, 0.98, 0.31, 0.52, 0.02, 0.003, 0.77, 0.83, 0.61, 0.09, 0.91, 0.14,
      0.012, 0.045], 1.0,
     [0.0075, 0.165, 1, 1, 1, 0.1275, 0.0375, 1, 1, 1, 0.675, 1, 0.75, 0.1275, 0.21]),
]


@pytest.mark.parametrize(("p", "pi0", "expected"), FDRTOOL)
def test_support_line_matches_r_fdrtool(p, pi0, expected):
    res = mt.support_line(p, null_proportion=pi0)
    np.testing.assert_allclose(res.pvalues_adjusted, expected, rtol=0, atol=1e-10)


def test_lfdr_reference_column_of_statsmodels_tests():
    """statsmodels' res_multtest1[:, 8]: local FDRs of its pval0 (8 decimals)."""
    pval0 = [0.838541367553, 0.642193923795, 0.680845947633, 0.967833824309, 0.71626938238,
             0.177096952723, 5.23656777208e-005, 0.0202732688798, 0.00028140506198,
             0.0149877310796]
    expected = [5.23656777e-04, 2.29039384e-03, 9.99593191e-02, 9.99593191e-02, 1, 1, 1, 1,
                1, 1]
    np.testing.assert_almost_equal(np.sort(mt.support_line(pval0).pvalues_adjusted),
                                   expected, 8)


# --- what statsmodels cannot do ---------------------------------------------------------
def test_a_pvalue_of_zero_is_a_point_mass():
    """statsmodels raises for an exact 0 (zero-width gap); here its local FDR is 0 and the
    others are the Grenander fit from u_0 = 0 with N counting the zeros."""
    p = np.array([0.0, 0.2, 0.0, 0.6, 0.05])
    with pytest.raises(ValueError, match="positive"):
        statsmodels(p, 0.1, "lfdr")
    res = mt.support_line(p, 0.1)
    approx, _ = grenander_reference(p)
    np.testing.assert_allclose(res.pvalues_adjusted, approx, rtol=1e-15)
    assert res.pvalues_adjusted[0] == res.pvalues_adjusted[2] == 0.0
    np.testing.assert_array_equal(mt.support_line(np.zeros(4), 0.05).pvalues_adjusted, 0.0)


@pytest.mark.parametrize("procedure", [mt.gavrilov_benjamini_sarkar, mt.support_line])
def test_bad_input(procedure):
    with pytest.raises(ValueError, match="NaN"):
        procedure([0.1, np.nan], 0.05)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        procedure([0.1, 1.5], 0.05)
    with pytest.raises(ValueError, match="`alpha`"):
        procedure([0.1], 1.0)
    with pytest.raises(TypeError, match="`pvals`"):
        procedure(np.array([0.1j]), 0.05)


@pytest.mark.parametrize(("pi0", "exc"), [(0.0, ValueError), (1.5, ValueError),
                                          (np.nan, ValueError), ("1", TypeError)])
def test_null_proportion_is_validated(pi0, exc):
    with pytest.raises(exc, match="`null_proportion`"):
        mt.support_line([0.1, 0.2], 0.05, null_proportion=pi0)


def test_empty_and_shapes(rng):
    for procedure in (mt.gavrilov_benjamini_sarkar, mt.support_line):
        empty = procedure(np.empty((0, 3)), 0.05)
        assert empty.reject.shape == empty.pvalues_adjusted.shape == (0, 3)
        p = rng.uniform(size=(6, 7)) ** 3
        res = procedure(p, 0.1)
        flat = procedure(p.reshape(-1), 0.1)
        np.testing.assert_array_equal(res.pvalues_adjusted.reshape(-1), flat.pvalues_adjusted)
        assert res.reject.shape == (6, 7)


# --- statsmodels' own tests, with our multipletests swapped in ------------------------------
try:
    SM_TESTS = importlib.import_module("statsmodels.stats.tests.test_multi")
except ImportError:  # pragma: no cover - a statsmodels built without its tests
    SM_TESTS = None
needs_sm_tests = pytest.mark.skipif(SM_TESTS is None, reason="statsmodels' tests not installed")


@pytest.fixture
def swapped(monkeypatch):
    monkeypatch.setattr(SM_TESTS, "multipletests", mt.multipletests)
    return SM_TESTS


@needs_sm_tests
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("ii", range(11))
def test_statsmodels_pvalcorrection_reject_gbs(swapped, alpha, ii):
    """statsmodels' own test (it raises AssertionError on a mismatch), run on OUR
    multipletests: the swap must be in effect, or it would test statsmodels itself."""
    assert swapped.multipletests is mt.multipletests
    swapped.test_pvalcorrection_reject(alpha, "fdr_gbs", ii)


@needs_sm_tests
@pytest.mark.parametrize("method", ["fdr_gbs", "lfdr"])
def test_statsmodels_issorted_precision_empty(swapped, method):
    """As above: statsmodels' assertions, on our multipletests."""
    assert swapped.multipletests is mt.multipletests
    swapped.test_issorted(method)
    swapped.test_floating_precision(method)
    swapped.test_multipletests_empty(method)


# the same cases written out, for a statsmodels without its tests
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("ii", range(11))
def test_reject_is_adjusted_at_most_alpha(alpha, ii):
    p = np.hstack((np.linspace(0.0001, 0.0100, ii), np.linspace(0.05001, 0.11, 10 - ii)))
    for method in ALIASES:
        reject, adjusted, _, _ = mt.multipletests(p, alpha=alpha, method=method)
        np.testing.assert_array_equal(reject, adjusted <= alpha)
        np.testing.assert_array_equal(adjusted, statsmodels(p, alpha, method)[1])


@pytest.mark.parametrize("method", sorted(ALIASES))
def test_is_sorted_precision_and_empty_written_out(method):
    p = np.array([31, 9958111, 7430818, 8653643, 9892855, 876, 2651691, 145836, 9931,
                  6174747]) * 1e-7
    order = np.argsort(p)
    unsorted = mt.multipletests(p, method=method)
    in_order = mt.multipletests(p[order], method=method, is_sorted=True)
    np.testing.assert_array_equal(in_order[0][order.argsort()], unsorted[0])
    np.testing.assert_array_equal(in_order[1][order.argsort()], unsorted[1])
    tiny = np.full(6000, 0.99)
    tiny[0] = 1.138569e-56
    assert mt.multipletests(tiny, method=method)[1][0] > 1e-60
    reject, adjusted, a_sidak, a_bonf = mt.multipletests([], method=method)
    assert reject.shape == adjusted.shape == (0,) and np.isnan(a_sidak) and np.isnan(a_bonf)


# --- the guarantees, by seeded Monte Carlo ------------------------------------------------
def test_gbs_controls_the_fdr_under_independence():
    """Gavrilov et al. (2009): FDR <= alpha for independent p-values; N = 40, N0 = 24,
    alternatives z-tests with mean 2.5, 4000 replications (one family per row),
    tolerance 3 standard errors."""
    from scipy import stats

    rng = np.random.default_rng(2009)
    N, N0, alpha, reps = 40, 24, 0.1, 4000
    shift = np.r_[np.zeros(N0), np.full(N - N0, 2.5)]
    p = stats.norm.sf(rng.normal(size=(reps, N)) + shift)
    reject = mt.gavrilov_benjamini_sarkar(p, alpha, axis=1).reject
    fdp = reject[:, :N0].sum(axis=1) / np.maximum(reject.sum(axis=1), 1)
    assert fdp.mean() <= alpha + 3 * fdp.std() / np.sqrt(reps)
    assert fdp.mean() > 0.2 * alpha  # not vacuous: it does make false discoveries


def test_support_line_controls_the_last_rejection_under_independence():
    """Soloff et al. (2024): P(the rejection with the largest p-value is a true null) <=
    alpha N0 / N for independent p-values, uniform nulls and a nonincreasing alternative
    density (here Beta(0.1, 1)); 4000 replications, tolerance 3 standard errors."""
    rng = np.random.default_rng(2024)
    N, N0, alpha, reps = 30, 20, 0.3, 4000
    p = np.hstack([rng.uniform(size=(reps, N0)), rng.beta(0.1, 1.0, size=(reps, N - N0))])
    reject = mt.support_line(p, alpha, axis=1).reject
    last = np.argmax(np.where(reject, p, -1.0), axis=1)
    last_null = reject.any(axis=1) & (last < N0)
    bound = alpha * N0 / N
    assert last_null.mean() <= bound + 3 * np.sqrt(bound * (1 - bound) / reps)
    assert last_null.mean() > 0.2 * bound  # not vacuous
