"""The kernels behind the adjusted p-values (issue 21, speed), against plain references.

Every fast route must give the plain definition's doubles bit for bit:

* a step procedure's adjusted p-value is the running extreme (max from the left,
  step-down; min from the right, step-up) of the hypotheses' own levels
  ``smallest_alpha(code, j, N, k, extra, p_(j))``; the own levels now come from a
  vectorised closed form (``_adjust_kernels``), the running extreme of Šidák's from a
  loop that skips the test where the extreme keeps moving;
* Bonferroni's from one vectorised loop, BH's levels (two-stage procedures) likewise;
* ``multipletests`` answers small inputs from one kernel call, and large step
  procedures decide on first access (from the adjusted p-values when computed first).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

import multitest as mt
from multitest import _adapter, _step
from multitest import _adjust_kernels as AK
from multitest import _fdr_kernels as FK
from multitest import _kernels as K

NO_POSITIONS = np.empty(0, dtype=np.int64)
SPECIAL = [0.0, 5e-324, 1e-310, 2.2250738585072014e-308, 1e-300, 1e-20, 1e-9, 1e-4, 0.01,
           0.05, 0.5, float(np.nextafter(1.0, 0.0)), 1.0]
P_VALUE = st.sampled_from(SPECIAL) | st.floats(0, 1)
P_ARRAYS = hnp.arrays(np.float64, st.integers(1, 300), elements=P_VALUE)
# code -> (name, step-up)
STEP_CODES = [(K.STEPDOWN_K, False), (K.STEPDOWN_K, True), (K.BH, True), (K.BY, True),
              (K.HOLM_SIDAK, False)]


def own_level(code, j, N, k, extra, p):
    return K.smallest_alpha(code, j, N, k, extra, p)


def plain_adjusted(ps, code, k, extra, step_up, N):
    """The running extreme of every own level: the definition, in Python."""
    levels = np.array([own_level(code, j + 1, N, k, extra, x) for j, x in enumerate(ps)])
    if step_up:
        return np.minimum.accumulate(levels[::-1])[::-1]
    return np.maximum.accumulate(levels)


def bits(a):
    return np.asarray(a, dtype=np.float64).view(np.uint64)


def inputs(rng, N):
    yield rng.uniform(size=N) ** 4
    yield stats.norm.sf(rng.normal(size=N) + 6.5 * (rng.uniform(size=N) < 0.9))
    yield np.round(rng.uniform(size=N) ** 3, 3)  # ties
    yield np.where(rng.uniform(size=N) < 0.3, rng.choice(SPECIAL, size=N), rng.uniform(size=N))
    yield rng.permutation(0.05 / (N - np.arange(N)))  # on Holm's critical values
    yield rng.permutation(np.arange(1, N + 1) / N * 0.05)  # on BH's


# --- own levels ---------------------------------------------------------------------
@pytest.mark.parametrize("code, kernel, k", [(K.BH, AK.own_levels_bh, 1),
                                             (K.BY, AK.own_levels_by, 1),
                                             (K.STEPDOWN_K, AK.own_levels_stepdown_k, 1),
                                             (K.STEPDOWN_K, AK.own_levels_stepdown_k, 7)])
def test_own_levels_are_smallest_alpha(rng, code, kernel, k):
    """Where the closed form settles an own level it is smallest_alpha's double; it
    settles nearly all of them (else the fast loop would be pointless)."""
    for N in (1, 2, 513, 3000):
        extra = float(np.sum(1.0 / np.arange(1, N + 1)))
        for p in inputs(rng, N):
            ps = np.sort(p)
            got = kernel(ps, N, k, extra, np.empty(N))
            want = np.array([own_level(code, j + 1, N, k, extra, x) for j, x in enumerate(ps)])
            settled = ~np.isnan(got)
            np.testing.assert_array_equal(bits(got[settled]), bits(want[settled]))
            if N > 100:
                assert settled.mean() > 0.9
            # in place: the same doubles
            inplace = ps.copy()
            kernel(inplace, N, k, extra, inplace)
            np.testing.assert_array_equal(bits(inplace), bits(got))


@given(p=P_ARRAYS, k=st.sampled_from([1, 2, 50]))
@settings(max_examples=200, deadline=None)
def test_own_levels_property(p, k):
    ps = np.sort(p)
    N = ps.size
    extra = float(np.sum(1.0 / np.arange(1, N + 1)))
    for code, kernel in ((K.BH, AK.own_levels_bh), (K.BY, AK.own_levels_by),
                         (K.STEPDOWN_K, AK.own_levels_stepdown_k)):
        got = kernel(ps, N, k, extra, np.empty(N))
        for j, (x, a) in enumerate(zip(ps, got, strict=True)):
            if a == a:
                assert bits(a) == bits(own_level(code, j + 1, N, k, extra, x))


# --- the running extreme, scattered ---------------------------------------------------
@pytest.mark.parametrize("code, step_up", STEP_CODES)
def test_adjusted_from_sorted_is_the_plain_running_extreme(rng, code, step_up):
    k = 1
    for N in (1, 2, 300, 2000):
        extra = float(np.sum(1.0 / np.arange(1, N + 1)))
        for p in inputs(rng, N):
            order = np.argsort(p, kind="stable")
            ps = p[order]
            want = np.empty(N)
            want[order] = plain_adjusted(ps, code, k, extra, step_up, N)
            got = _step.adjusted_from_sorted(ps.copy(), order, p, NO_POSITIONS, np.empty(N),
                                             code, k, extra, step_up)
            np.testing.assert_array_equal(bits(got), bits(want))
            small = AK.small_step_adjusted(p, code, k, extra, step_up)
            np.testing.assert_array_equal(bits(small), bits(want))


def test_scatter_through_positions(rng):
    """The partial route: the sorted values are a subset, written through positions."""
    N = 1000
    p = rng.uniform(size=N) ** 4
    positions = np.flatnonzero(p < 0.01)
    sub = p[positions]
    order = np.argsort(sub, kind="stable")
    levels = AK.own_levels_stepdown_k(sub[order], N, 1, 0.0, np.empty(positions.size))
    levels[::7] = np.nan  # computed by the scatter loop instead
    out = AK.scatter_running_extreme(levels, p, order, positions, np.ones(N), K.STEPDOWN_K,
                                     1, 0.0, False)
    want = np.ones(N)
    want[positions[order]] = plain_adjusted(sub[order], K.STEPDOWN_K, 1, 0.0, False, N)
    np.testing.assert_array_equal(bits(out), bits(want))


@given(p=P_ARRAYS, code_step=st.sampled_from(STEP_CODES))
@settings(max_examples=200, deadline=None)
def test_step_adjusted_sorted_property(p, code_step):
    """The running extreme that skips the test while the extreme keeps moving (Šidák's
    route) equals the plain one, for every critical value."""
    code, step_up = code_step
    ps = np.sort(p)
    N = ps.size
    extra = float(np.sum(1.0 / np.arange(1, N + 1)))
    got = K.step_adjusted_sorted(ps, code, 1, extra, step_up, N, np.empty(N))
    np.testing.assert_array_equal(bits(got), bits(plain_adjusted(ps, code, 1, extra,
                                                                 step_up, N)))


# --- single-step ------------------------------------------------------------------------
@given(p=P_ARRAYS, k=st.sampled_from([1, 3, 1000]))
@settings(max_examples=200, deadline=None)
def test_bonferroni_vectorised_equals_single_step_adjusted(p, k):
    np.testing.assert_array_equal(bits(AK.bonferroni_adjusted(p, k)),
                                  bits(K.single_step_adjusted(p, K.BONFERRONI, k, 0.0)))


@pytest.mark.parametrize("N", [1, 10, 1000])
def test_sidak_adjusted_is_the_smallest_level_and_close_to_the_exact_inverse(rng, N):
    """Šidák's adjusted p-value a is the smallest double with p <= c(a) (so the skipped
    test of the level 1 changed nothing), and within a few ulps of the exact
    1 - (1 - p)^N (mpmath, 50 digits), as is statsmodels' -expm1(N log1p(-p))."""
    p = rng.uniform(size=N) ** 6 / N
    p[:3] = [1e-300, 1e-17, 0.0][:N]
    adjusted = mt.sidak(p, 0.05).pvalues_adjusted
    mpmath.mp.dps = 50
    for x, a in zip(p[:60], adjusted[:60], strict=True):
        c = K.crit(K.SIDAK, 1, N, a, 1, 0.0)
        assert x <= c
        if a > 0.0:
            assert K.crit(K.SIDAK, 1, N, float(np.nextafter(a, 0.0)), 1, 0.0) < x
        exact = 1 - (1 - mpmath.mpf(float(x))) ** N
        if exact > 0 and a < 1.0:
            assert abs(mpmath.mpf(float(a)) - exact) <= 1e-14 * exact
            sm = -np.expm1(N * np.log1p(-x))
            assert abs(mpmath.mpf(float(sm)) - exact) <= 1e-14 * exact


# --- BH levels (two-stage procedures) -----------------------------------------------------
@given(p=P_ARRAYS)
@settings(max_examples=200, deadline=None)
def test_bh_levels_equal_the_walk(p):
    """The vectorised levels equal the walk from the rounded quotient, the previous
    kernel's definition, before and after the suffix minimum."""
    ps = np.sort(p)
    N = ps.size
    levels, adjusted = FK.bh_levels_sorted(ps)
    own = np.array([FK._bh_level_exact(x, (j + 1) / N) for j, x in enumerate(ps)])
    np.testing.assert_array_equal(bits(levels), bits(np.minimum.accumulate(own[::-1])[::-1]))
    quotients = ps / (np.arange(1, N + 1) / N)
    np.testing.assert_array_equal(bits(adjusted),
                                  bits(np.minimum.accumulate(quotients[::-1])[::-1]))


# --- multipletests on small inputs: one kernel call -------------------------------------
SMALL_METHODS = ["bonferroni", "sidak", "holm", "holm-sidak", "simes-hochberg", "fdr_bh",
                 "fdr_by", "fdr_gbs"]


def general_path(monkeypatch, p, alpha, method):
    with monkeypatch.context() as m:
        m.setattr(_adapter, "_small", lambda *args: None)
        return mt.multipletests(p, alpha, method=method)


@pytest.mark.parametrize("method", SMALL_METHODS)
def test_small_multipletests_equals_the_procedure(rng, monkeypatch, method):
    for N in (1, 2, 10, 255, 256, 1000, 1024, 1025):
        for p in inputs(rng, N):
            for alpha in (0.001, 0.05, 0.5):
                fast = mt.multipletests(p, alpha, method=method)
                slow = general_path(monkeypatch, p, alpha, method)
                np.testing.assert_array_equal(fast.reject, slow.reject)
                np.testing.assert_array_equal(bits(fast.pvals_corrected),
                                              bits(slow.pvals_corrected))
                assert fast.reject.flags.writeable and fast.pvals_corrected.flags.writeable
                assert bits(fast.alphacSidak) == bits(slow.alphacSidak)
                assert fast.alphacBonf == slow.alphacBonf
                assert type(fast.alphacSidak) is np.float64 and type(fast.alphacBonf) is float


@given(p=hnp.arrays(np.float64, st.integers(1, 40), elements=P_VALUE),
       alpha=st.sampled_from([0.001, 0.05, 0.3]), method=st.sampled_from(SMALL_METHODS))
@settings(max_examples=200, deadline=None)
def test_small_multipletests_property(p, alpha, method):
    reject, adjusted, _, _ = mt.multipletests(p, alpha, method=method)
    name = mt.METHOD_ALIASES[method]
    res = getattr(mt, name)(p, alpha)
    np.testing.assert_array_equal(reject, res.reject)
    np.testing.assert_array_equal(bits(adjusted), bits(res.pvalues_adjusted))


@pytest.mark.parametrize("method", SMALL_METHODS)
@pytest.mark.parametrize("bad, match", [(np.nan, "NaN"), (-0.1, "lie in"), (1.5, "lie in")])
def test_small_multipletests_refuses_invalid_pvalues(method, bad, match):
    with pytest.raises(ValueError, match=match):
        mt.multipletests([0.01, bad, 0.2], 0.05, method=method)


def test_small_multipletests_keeps_the_shape():
    p = np.linspace(0.0, 1.0, 12).reshape(3, 4) ** 3
    reject, adjusted, _, _ = mt.multipletests(p, 0.05, method="fdr_bh")
    assert reject.shape == adjusted.shape == (3, 4)
    np.testing.assert_array_equal(adjusted, mt.benjamini_hochberg(p).pvalues_adjusted)


# --- decisions on first access ----------------------------------------------------------
STEPWISE = [mt.holm, mt.hochberg, mt.holm_sidak, mt.benjamini_hochberg,
            mt.benjamini_yekutieli, lambda p, a: mt.lehmann_romano(p, a, k=4)]


@pytest.mark.parametrize("proc", STEPWISE)
def test_decisions_read_before_or_after_the_adjusted_pvalues(rng, monkeypatch, proc):
    monkeypatch.setattr(_step, "SMALL_N", 0)  # the passes, lazy decisions
    for p in inputs(rng, 2000):
        for alpha in (0.001, 0.05, 0.5):
            first = proc(p, alpha)
            reject = first.reject.copy()
            adjusted_after = first.pvalues_adjusted
            second = proc(p, alpha)
            adjusted = second.pvalues_adjusted
            np.testing.assert_array_equal(second.reject, reject)
            np.testing.assert_array_equal(reject, adjusted <= alpha)
            np.testing.assert_array_equal(bits(adjusted), bits(adjusted_after))


def test_monotone_procedures_read_their_decisions_off_the_adjusted_pvalues(rng, monkeypatch):
    """After the adjusted p-values, Holm/Hochberg/BH/BY decide without the passes;
    Holm-Šidák (log1p and expm1 in its critical values) by the passes."""
    monkeypatch.setattr(_step, "SMALL_N", 0)
    p = rng.uniform(size=3000) ** 3
    passes = []
    decide = _step._decide

    def counting(*args):
        passes.append(args[3])
        return decide(*args)

    monkeypatch.setattr(_step, "_decide", counting)
    for proc in (mt.holm, mt.hochberg, mt.benjamini_hochberg, mt.benjamini_yekutieli,
                 mt.holm_sidak):
        res = proc(p, 0.05)
        adjusted = res.pvalues_adjusted
        np.testing.assert_array_equal(res.reject, adjusted <= 0.05)
    assert passes == [K.HOLM_SIDAK]


@pytest.mark.parametrize("proc", STEPWISE)
def test_lazy_decisions_still_refuse_invalid_pvalues_at_the_call(monkeypatch, proc):
    monkeypatch.setattr(_step, "SMALL_N", 0)
    p = np.linspace(0.0, 1.0, 5000)
    p[1234] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        proc(p, 0.05)


def test_lazy_decisions_do_not_see_later_changes_to_the_input(rng):
    p = rng.uniform(size=5000) ** 4
    expected = mt.holm(p.copy(), 0.05).reject
    res = mt.holm(p, 0.05)
    p[:] = 1.0
    np.testing.assert_array_equal(res.reject, expected)


# --- step-down: only the p-values below 1 sorted, when they are few ----------------------
def test_partial_sort_only_where_few_are_below_one(rng, monkeypatch):
    sizes = []
    sorted_order = _step.sorted_order

    def recording(x):
        sizes.append(x.size)
        return sorted_order(x)

    monkeypatch.setattr(_step, "sorted_order", recording)
    N = 20_000
    few = rng.uniform(size=N) ** 4  # Holm: about 5% below 1
    many = stats.norm.sf(rng.normal(size=N) + 6.5 * (rng.uniform(size=N) < 0.9))
    a_few = mt.holm(few, 0.05).pvalues_adjusted
    a_many = mt.holm(many, 0.05).pvalues_adjusted
    assert sizes[0] == np.count_nonzero(a_few < 1.0) < _step.PARTIAL_MAX_SHARE * N
    assert sizes[1] == N  # 90% below 1: all sorted, without the passes that find them
    monkeypatch.setattr(_step, "PARTIAL_MIN_N", 10**9)
    for p, got in ((few, a_few), (many, a_many)):
        np.testing.assert_array_equal(bits(mt.holm(p, 0.05).pvalues_adjusted), bits(got))
