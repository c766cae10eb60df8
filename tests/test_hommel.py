"""Hommel's procedure against statsmodels, brute-force closed testing, and its properties."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from statsmodels.stats.multitest import multipletests as sm_multipletests

from multitest._hommel import hommel
from multitest._hommel_kernels import hommel_adjusted_sorted


# --- references written here ----------------------------------------------------------
def simes(p):
    """Simes p-value of a set: min_j |I| p_(j) / j."""
    p = np.sort(p)
    return float(np.min(len(p) * p / np.arange(1, len(p) + 1)))


def closed_testing_adjusted(p):
    """Hommel by definition: max over all intersections I containing i of Simes(I)."""
    p = np.asarray(p, dtype=float)
    N = p.size
    adj = np.zeros(N)
    for size in range(1, N + 1):
        for subset in itertools.combinations(range(N), size):
            s = simes(p[list(subset)])
            for i in subset:
                adj[i] = max(adj[i], s)
    return adj


def hochberg_adjusted(p):
    """Reverse cumulative minimum of (N - j + 1) p_(j), back in the input order."""
    flat = np.asarray(p, dtype=float).reshape(-1)
    order = np.argsort(flat)
    N = flat.size
    sorted_adj = np.minimum.accumulate(((N - np.arange(N)) * flat[order])[::-1])[::-1]
    out = np.empty(N)
    out[order] = np.minimum(sorted_adj, 1.0)
    return out


def holm_adjusted(p):
    """Cumulative maximum of (N - j + 1) p_(j), back in the input order."""
    flat = np.asarray(p, dtype=float).reshape(-1)
    order = np.argsort(flat)
    N = flat.size
    out = np.empty(N)
    out[order] = np.minimum(np.maximum.accumulate((N - np.arange(N)) * flat[order]), 1.0)
    return out


def compare_with_statsmodels(p, alpha):
    """Check shapes, the adjusted p-values against statsmodels and reject <=> adjusted
    <= alpha; return (our decisions, statsmodels' decisions), flattened."""
    flat = np.asarray(p, dtype=float).reshape(-1)
    res = hommel(p, alpha)
    ref_reject, ref_adj, _, _ = sm_multipletests(flat, alpha, method="hommel")
    assert res.reject.shape == np.shape(p)
    assert res.pvalues_adjusted.shape == np.shape(p)
    np.testing.assert_allclose(res.pvalues_adjusted.reshape(-1), ref_adj, rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_array_equal(res.reject, res.pvalues_adjusted <= alpha)
    return res.reject.reshape(-1), ref_reject


def sample_inputs(rng):
    yield rng.uniform(size=100)
    yield rng.uniform(size=2000) ** 4
    yield np.concatenate([rng.uniform(0, 1e-3, size=50), rng.uniform(size=1950)])
    yield np.round(rng.uniform(size=300) ** 2, 2)  # many ties
    yield np.zeros(10)
    yield np.ones(10)
    yield np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    yield np.array([1e-300, 5e-324, 0.0, 1e-200])
    yield np.array([0.3])
    yield np.array([0.02, 0.01])
    yield rng.uniform(size=5) * 0.1
    yield rng.beta(0.1, 1.0, size=(20, 30))  # 2-D, compared after flattening
    yield rng.uniform(size=(2, 3, 4)) ** 3
    yield np.repeat(rng.uniform(size=5) * 0.01, 7)


@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.3])
def test_agrees_with_statsmodels(rng, alpha):
    fractions = []
    for p in sample_inputs(rng):
        ours, ref = compare_with_statsmodels(p, alpha)
        np.testing.assert_array_equal(ours, ref)
        fractions.append(ours.mean())
    # the inputs exercise both outcomes and partial rejections
    assert max(fractions) == 1.0 and min(fractions) == 0.0
    assert any(0.0 < f < 1.0 for f in fractions)


@pytest.mark.parametrize("N", [1, 2, 3, 5, 8])
def test_closed_testing_definition(rng, N):
    for _ in range(20):
        for p in (rng.uniform(size=N), rng.uniform(size=N) ** 5,
                  np.round(rng.uniform(size=N), 1)):
            np.testing.assert_allclose(hommel(p, 0.05).pvalues_adjusted,
                                       closed_testing_adjusted(p), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 0, 2)])
def test_empty_input(shape):
    res = hommel(np.zeros(shape), 0.05)
    assert res.reject.shape == shape and res.reject.dtype == bool
    assert res.pvalues_adjusted.shape == shape
    assert res.num_rejected == 0


def test_kernel_on_empty_and_single():
    assert hommel_adjusted_sorted(np.zeros(0)).shape == (0,)
    np.testing.assert_array_equal(hommel_adjusted_sorted(np.array([0.25])), [0.25])


def test_result_metadata_and_input_untouched(rng):
    p = rng.uniform(size=(4, 5))
    before = p.copy()
    res = hommel(p, 0.1)
    assert res.method == "hommel" and res.alpha == 0.1 and res.k == 1
    np.testing.assert_array_equal(p, before)
    assert hommel(p.tolist(), 0.1).reject.shape == (4, 5)
    assert hommel(np.float32(p), 0.1).pvalues_adjusted.dtype == np.float64


def test_integer_input():
    res = hommel(np.array([0, 1, 0, 1]), 0.05)
    np.testing.assert_array_equal(res.reject, [True, False, True, False])
    np.testing.assert_array_equal(res.pvalues_adjusted, [0.0, 1.0, 0.0, 1.0])


# Cases where statsmodels' adjusted p-value exceeds max(p) by one ulp (so that its
# Hommel would not reject a superset of Hochberg at alpha = max(p)); ours is capped.
@pytest.mark.parametrize("p", [
    [0.69, 0.39, 0.14, 0.72, 0.53, 0.31, 0.49],
    [0.8, 0.23, 0.05, 0.4, 0.2, 0.09, 0.58],
    [0.968, 0.015, 0.864, 0.981, 0.957, 0.149, 0.973],
])
def test_regression_capped_at_max_p(p):
    p = np.array(p)
    alpha = float(p.max())
    res = hommel(p, alpha)
    assert res.pvalues_adjusted.max() == alpha
    assert res.reject.all()  # Hochberg rejects everything at alpha = max(p)
    ref = sm_multipletests(p, method="hommel")[1]
    np.testing.assert_allclose(res.pvalues_adjusted, ref, rtol=1e-15)


def test_hommel_beats_holm_in_docstring_example():
    p = [0.01, 0.04, 0.03, 0.005]
    assert hommel(p, 0.05).num_rejected == 4
    assert np.count_nonzero(holm_adjusted(p) <= 0.05) == 2


@pytest.mark.parametrize("bad", [[0.1, np.nan], [0.1, 1.5], [-0.1, 0.2], [np.inf],
                                 np.array([0.1, -0.0 - 1e-300])])
def test_bad_pvalues_raise_value_error(bad):
    with pytest.raises(ValueError, match="`pvals`"):
        hommel(bad, 0.05)


@pytest.mark.parametrize("bad", [np.array([0.1 + 0j]), np.array(["0.1"]),
                                 np.array([object()], dtype=object)])
def test_bad_dtypes_raise_type_error(bad):
    with pytest.raises(TypeError, match="`pvals`"):
        hommel(bad, 0.05)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5, -0.1, np.nan, np.inf])
def test_bad_alpha_raises_value_error(alpha):
    with pytest.raises(ValueError, match="`alpha`"):
        hommel([0.1, 0.2], alpha)


@pytest.mark.parametrize("alpha", [True, "0.05", 0.05 + 0j])
def test_bad_alpha_type_raises_type_error(alpha):
    with pytest.raises(TypeError, match="`alpha`"):
        hommel([0.1, 0.2], alpha)


def test_alpha_none_gives_adjusted_pvalues_only():
    res = hommel([0.1, 0.2], None)
    np.testing.assert_array_equal(res.pvalues_adjusted, hommel([0.1, 0.2], 0.05).pvalues_adjusted)
    with pytest.raises(ValueError, match="`alpha=None`"):
        _ = res.reject


# --- hypothesis properties ---------------------------------------------------------------
unit = st.floats(0.0, 1.0, allow_nan=False, width=64)
# values on a coarse grid make ties and exact boundary cases likely
gridded = st.integers(0, 20).map(lambda i: i / 20)
pvalue_arrays = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0,
                                                         max_side=6),
                           elements=st.one_of(unit, gridded))
alphas = st.floats(1e-6, 1 - 1e-6, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(p=pvalue_arrays, alpha=alphas)
def test_property_decision_shape_range(p, alpha):
    res = hommel(p, alpha)
    adj = res.pvalues_adjusted
    assert res.reject.shape == p.shape and adj.shape == p.shape
    np.testing.assert_array_equal(res.reject, adj <= alpha)
    assert np.all(adj >= p) and np.all(adj <= 1.0)
    if p.size:
        assert np.all(adj <= p.max())
        # the adjusted p-values are a nondecreasing function of the p-value
        order = np.argsort(p, axis=None, kind="stable")
        assert np.all(np.diff(adj.reshape(-1)[order]) >= 0)


@settings(max_examples=100, deadline=None)
@given(p=pvalue_arrays, data=st.data())
def test_property_permutation_equivariance(p, data):
    flat = p.reshape(-1)
    perm = data.draw(st.permutations(range(flat.size)))
    perm = np.asarray(perm, dtype=np.intp)
    a = hommel(flat, 0.05).pvalues_adjusted
    b = hommel(flat[perm], 0.05).pvalues_adjusted
    np.testing.assert_array_equal(a[perm], b)


@settings(max_examples=150, deadline=None)
@given(p=pvalue_arrays, data=st.data())
def test_property_superset_of_hochberg_and_holm(p, data):
    hoch = hochberg_adjusted(p)
    holm = holm_adjusted(p)
    hom = hommel(p, 0.5).pvalues_adjusted.reshape(-1)
    assert np.all(hom <= hoch) and np.all(hoch <= holm)
    # also at adversarial levels: alpha equal to one of the adjusted p-values
    candidates = [a for a in np.concatenate([hoch, hom]) if 0.0 < a < 1.0] or [0.05]
    alpha = data.draw(st.sampled_from(candidates))
    reject = hommel(p, alpha).reject.reshape(-1)
    assert np.all(reject[hoch <= alpha]) and np.all(reject[holm <= alpha])


@settings(max_examples=150, deadline=None)
@given(p=hnp.arrays(np.float64, st.integers(0, 40), elements=st.one_of(unit, gridded)),
       alpha=alphas)
def test_property_agrees_with_statsmodels(p, alpha):
    res = hommel(p, alpha)
    ref = sm_multipletests(p, alpha, method="hommel")[1]
    np.testing.assert_allclose(res.pvalues_adjusted, ref, rtol=1e-12, atol=1e-300)


@settings(max_examples=60, deadline=None)
@given(p=hnp.arrays(np.float64, st.integers(1, 7), elements=st.one_of(unit, gridded)))
def test_property_closed_testing(p):
    np.testing.assert_allclose(hommel(p, 0.05).pvalues_adjusted, closed_testing_adjusted(p),
                               rtol=1e-12, atol=1e-300)
