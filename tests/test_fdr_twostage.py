"""Two-stage FDR procedures (BKY, two-stage BH) against statsmodels and their properties."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from statsmodels.stats.multitest import fdrcorrection_twostage
from statsmodels.stats.multitest import multipletests as sm_multipletests

from multitest._fdr_kernels import bh_levels_sorted
from multitest._fdr_twostage import benjamini_krieger_yekutieli, two_stage_benjamini_hochberg

PROCEDURES = {benjamini_krieger_yekutieli: "bky", two_stage_benjamini_hochberg: "bh"}
IDS = list(PROCEDURES.values())
SM_NAMES = {benjamini_krieger_yekutieli: "fdr_tsbky", two_stage_benjamini_hochberg: "fdr_tsbh"}


def statsmodels_reference(proc, flat, alpha, maxiter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # N0_hat = 0: division by zero
        rej, adj, _, _ = fdrcorrection_twostage(flat, alpha, method=PROCEDURES[proc],
                                                maxiter=maxiter)
    return rej, adj


def compare_with_statsmodels(proc, p, alpha, maxiter):
    flat = np.asarray(p, dtype=float).reshape(-1)
    res = proc(p, alpha, maxiter=maxiter)
    ref_reject, ref_adj = statsmodels_reference(proc, flat, alpha, maxiter)
    assert res.reject.shape == np.shape(p) and res.pvalues_adjusted.shape == np.shape(p)
    np.testing.assert_allclose(res.pvalues_adjusted.reshape(-1), ref_adj, rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_array_equal(res.reject, res.pvalues_adjusted <= alpha)
    return res.reject.reshape(-1), np.asarray(ref_reject)


def bh_reject(p, alpha):
    """Benjamini-Hochberg decisions written out: the R smallest, R = max{j: p_(j) <= j a/N}."""
    flat = np.asarray(p, dtype=float).reshape(-1)
    N = flat.size
    order = np.argsort(flat)
    ok = np.nonzero(flat[order] <= np.arange(1, N + 1) / N * alpha)[0]
    R = ok[-1] + 1 if ok.size else 0
    out = np.zeros(N, dtype=bool)
    out[order[:R]] = True
    return out


def sample_inputs(rng):
    yield rng.uniform(size=100)
    yield rng.uniform(size=2000) ** 4
    yield np.concatenate([rng.uniform(0, 1e-3, size=400), rng.uniform(size=1600)])
    yield np.round(rng.uniform(size=300) ** 3, 2)  # many ties
    yield np.zeros(10)
    yield np.ones(10)
    yield np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    yield np.array([0.3])
    yield np.array([0.01, 0.6])
    yield rng.uniform(size=5) * 0.2
    yield rng.beta(0.1, 1.0, size=(20, 30))  # 2-D, compared after flattening
    yield np.repeat(rng.uniform(size=5) * 0.01, 7)
    # p-values whose iterated stages reject everything (N0_hat reaches 0)
    yield np.array([0.55617036, 0.11058365, 0.01254748, 0.51561921])


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.4])
@pytest.mark.parametrize("maxiter", [0, 1, 2, 5, -1, None])
def test_agrees_with_statsmodels(rng, proc, alpha, maxiter):
    fractions = []
    for p in sample_inputs(rng):
        ours, ref = compare_with_statsmodels(proc, p, alpha, maxiter)
        np.testing.assert_array_equal(ours, ref)
        fractions.append(ours.mean())
    # the inputs exercise both outcomes: some reject everything, some nothing
    assert max(fractions) == 1.0 and min(fractions) == 0.0


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
def test_agrees_with_multipletests(rng, proc):
    p = rng.uniform(size=500) ** 3
    for maxiter in (1, 3):
        res = proc(p, 0.1, maxiter=maxiter)
        rej, adj, _, _ = sm_multipletests(p, 0.1, method=SM_NAMES[proc], maxiter=maxiter)
        np.testing.assert_array_equal(res.reject, rej)
        np.testing.assert_allclose(res.pvalues_adjusted, adj, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
def test_default_is_two_stage(rng, proc):
    p = rng.uniform(size=300) ** 3
    a, b = proc(p, 0.1), proc(p, 0.1, maxiter=1)
    np.testing.assert_array_equal(a.pvalues_adjusted, b.pvalues_adjusted)


# Exact ties where statsmodels' own decision and `adjusted <= alpha` disagree by rounding:
# we keep its decision and move the adjusted p-value by one ulp.
@pytest.mark.parametrize("proc, p, alpha", [
    (two_stage_benjamini_hochberg, [0.9, 0.17, 0.15, 0.12, 0.08, 0.53, 0.17, 0.81, 0.02], 0.3),
    (two_stage_benjamini_hochberg, [0.4, 0.25, 0.85, 0.75, 0.35, 0.5, 0.1, 0.0, 0.4], 0.4),
    (benjamini_krieger_yekutieli,
     [0.15, 0.15, 0.5, 0.8, 0.1, 0.45, 0.95, 0.25, 0.65, 0.0, 0.65], 0.6),
    (two_stage_benjamini_hochberg, [0.59, 0.44, 0.65, 0.75, 0.0], 0.6),
    (two_stage_benjamini_hochberg,
     [0.99, 0.11, 0.04, 0.79, 0.38, 0.33, 0.25, 0.24, 0.85, 0.44, 0.01], 0.33),
])
def test_regression_rounding_at_ties(proc, p, alpha):
    ref_reject, ref_adj = statsmodels_reference(proc, np.array(p), alpha, 1)
    assert not np.array_equal(ref_reject, ref_adj <= alpha)  # the statsmodels artefact
    ours, ref = compare_with_statsmodels(proc, p, alpha, 1)
    np.testing.assert_array_equal(ours, ref)  # its decisions; adjusted moved by one ulp


def test_zero_null_estimate_quirk():
    """Full iteration that rejects everything: N0_hat = 0, adjusted p-values 0 (statsmodels)."""
    p = np.array([0.55617036, 0.11058365, 0.01254748, 0.51561921])
    res = two_stage_benjamini_hochberg(p, 0.4, maxiter=-1)
    assert res.reject.all()
    np.testing.assert_array_equal(res.pvalues_adjusted, np.zeros(4))
    two = two_stage_benjamini_hochberg(p, 0.4, maxiter=1)
    assert two.pvalues_adjusted.min() > 0


def test_adjusted_depend_on_alpha():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    lo = benjamini_krieger_yekutieli(p, 0.05).pvalues_adjusted
    hi = benjamini_krieger_yekutieli(p, 0.1).pvalues_adjusted
    assert not np.allclose(lo, hi)


def test_bh_levels_kernel(rng):
    """levels[k-1] is the smallest level at which BH rejects rank k, bit for bit."""
    ps = np.sort(np.concatenate([rng.uniform(size=200) ** 3, [0.0, 0.0, 1.0]]))
    levels, adjusted = bh_levels_sorted(ps)
    assert np.all(np.diff(levels) >= 0)
    for level in np.concatenate([levels, np.nextafter(levels, -1.0), [np.inf, 3.0]]):
        level = max(level, 0.0)
        expected = bh_reject(ps, level).sum()
        assert np.searchsorted(levels, level, side="right") == expected
    N = ps.size
    ref = np.minimum.accumulate((ps / (np.arange(1, N + 1) / N))[::-1])[::-1]
    np.testing.assert_array_equal(adjusted, ref)


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
@pytest.mark.parametrize("shape", [(0,), (3, 0)])
def test_empty_input(proc, shape):
    res = proc(np.zeros(shape), 0.05, maxiter=-1)
    assert res.reject.shape == shape and res.reject.dtype == bool
    assert res.pvalues_adjusted.shape == shape and res.num_rejected == 0


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
def test_result_metadata(rng, proc):
    p = rng.uniform(size=(3, 4))
    before = p.copy()
    res = proc(p, 0.2)
    assert res.method == proc.__name__ and res.alpha == 0.2 and res.k == 1
    np.testing.assert_array_equal(p, before)


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
@pytest.mark.parametrize("bad", [[0.1, np.nan], [0.1, 1.5], [-0.1, 0.2]])
def test_bad_pvalues(proc, bad):
    with pytest.raises(ValueError, match="`pvals`"):
        proc(bad, 0.05)


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
def test_bad_dtype(proc):
    with pytest.raises(TypeError, match="`pvals`"):
        proc(np.array([0.1 + 0j, 0.2]), 0.05)


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0, np.nan])
def test_bad_alpha(proc, alpha):
    with pytest.raises(ValueError, match="`alpha`"):
        proc([0.1, 0.2], alpha)


@pytest.mark.parametrize("proc", PROCEDURES, ids=IDS)
@pytest.mark.parametrize("maxiter, error", [(True, TypeError), (False, TypeError),
                                            (1.0, TypeError), ("1", TypeError),
                                            (-2, ValueError)])
def test_bad_maxiter(proc, maxiter, error):
    with pytest.raises(error, match="`maxiter`"):
        proc([0.1, 0.2], 0.05, maxiter=maxiter)


def test_maxiter_is_keyword_only():
    with pytest.raises(TypeError):
        benjamini_krieger_yekutieli([0.1, 0.2], 0.05, 1)


# --- hypothesis properties ---------------------------------------------------------------
unit = st.floats(0.0, 1.0, allow_nan=False, width=64)
gridded = st.integers(0, 20).map(lambda i: i / 20)
pvalue_arrays = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0,
                                                         max_side=6),
                           elements=st.one_of(unit, gridded))
alphas = st.one_of(st.floats(1e-6, 1 - 1e-6, allow_nan=False), st.sampled_from([0.05, 0.25]))
maxiters = st.sampled_from([0, 1, 2, 3, -1])


@settings(max_examples=100, deadline=None)
@given(p=pvalue_arrays, alpha=alphas, maxiter=maxiters, proc=st.sampled_from(list(PROCEDURES)))
def test_property_decision_shape_range(p, alpha, maxiter, proc):
    res = proc(p, alpha, maxiter=maxiter)
    adj = res.pvalues_adjusted
    assert res.reject.shape == p.shape and adj.shape == p.shape
    np.testing.assert_array_equal(res.reject, adj <= alpha)
    assert np.all((adj >= 0.0) & (adj <= 1.0))


@settings(max_examples=100, deadline=None)
@given(p=pvalue_arrays, alpha=alphas, maxiter=maxiters, proc=st.sampled_from(list(PROCEDURES)),
       data=st.data())
def test_property_permutation_equivariance(p, alpha, maxiter, proc, data):
    flat = p.reshape(-1)
    perm = np.asarray(data.draw(st.permutations(range(flat.size))), dtype=np.intp)
    a = proc(flat, alpha, maxiter=maxiter)
    b = proc(flat[perm], alpha, maxiter=maxiter)
    np.testing.assert_array_equal(a.reject[perm], b.reject)
    np.testing.assert_array_equal(a.pvalues_adjusted[perm], b.pvalues_adjusted)


@settings(max_examples=150, deadline=None)
@given(p=hnp.arrays(np.float64, st.integers(0, 40), elements=st.one_of(unit, gridded)),
       alpha=alphas, maxiter=maxiters, proc=st.sampled_from(list(PROCEDURES)))
def test_property_agrees_with_statsmodels(p, alpha, maxiter, proc):
    ours, ref = compare_with_statsmodels(proc, p, alpha, maxiter)
    np.testing.assert_array_equal(ours, ref)


@settings(max_examples=100, deadline=None)
@given(p=pvalue_arrays, alpha=alphas, maxiter=maxiters)
def test_property_superset_of_bh(p, alpha, maxiter):
    """Two-stage BH rejects all BH does at alpha; BKY all BH does at alpha / (1 + alpha)."""
    tsbh = two_stage_benjamini_hochberg(p, alpha, maxiter=maxiter).reject.reshape(-1)
    assert np.all(tsbh[bh_reject(p, alpha)])
    bky = benjamini_krieger_yekutieli(p, alpha, maxiter=maxiter).reject.reshape(-1)
    assert np.all(bky[bh_reject(p, alpha / (1.0 + alpha))])
