"""The step procedures against statsmodels, brute force, and their defining properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from statsmodels.stats.multitest import multipletests as sm_multipletests

import multitest as mt

# our procedure -> statsmodels method name
SM_METHODS = {
    mt.bonferroni: "bonferroni",
    mt.sidak: "sidak",
    mt.holm_sidak: "holm-sidak",
    mt.holm: "holm",
    mt.hochberg: "simes-hochberg",
    mt.benjamini_hochberg: "fdr_bh",
    mt.benjamini_yekutieli: "fdr_by",
}
# procedures whose critical values use the very same float expression as statsmodels
BIT_EXACT = [mt.bonferroni, mt.holm, mt.hochberg, mt.benjamini_hochberg, mt.benjamini_yekutieli]
ALL = [*SM_METHODS, lambda p, a: mt.lehmann_romano(p, a, k=3),
       lambda p, a: mt.generalized_bonferroni(p, a, k=2)]


def compare_with_statsmodels(proc, p, alpha):
    """Check the adjusted p-values against statsmodels and reject <=> adjusted <= alpha;
    return (our decisions, statsmodels' decisions), flattened, for the caller to compare."""
    flat = np.asarray(p, dtype=float).reshape(-1)
    res = proc(p, alpha)
    ref_reject, ref_adj, _, _ = sm_multipletests(flat, alpha, method=SM_METHODS[proc])
    np.testing.assert_allclose(res.pvalues_adjusted.reshape(-1), ref_adj, rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_array_equal(res.reject, res.pvalues_adjusted <= alpha)
    return res.reject.reshape(-1), ref_reject


def sample_inputs(rng):
    yield rng.uniform(size=200)
    yield rng.uniform(size=1000) ** 4
    yield np.round(rng.uniform(size=300) ** 2, 2)  # many ties
    yield np.zeros(10)
    yield np.ones(10)
    yield np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    yield np.array([0.3])
    yield rng.beta(0.1, 1.0, size=(20, 30))  # 2-D, compared after flattening
    yield np.repeat(rng.uniform(size=5) * 0.01, 7)


@pytest.mark.parametrize("proc", list(SM_METHODS), ids=list(SM_METHODS.values()))
@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.3])
def test_agrees_with_statsmodels(rng, proc, alpha):
    fractions = []
    for p in sample_inputs(rng):
        ours, ref = compare_with_statsmodels(proc, p, alpha)
        np.testing.assert_array_equal(ours, ref)
        fractions.append(ours.mean())
    # the inputs exercise both outcomes: some reject everything, some nothing
    assert max(fractions) == 1.0 and min(fractions) == 0.0


def critical_values(method, N, alpha):
    j = np.arange(1, N + 1)
    if method == "holm":
        return alpha / np.arange(N, 0, -1)
    if method == "bonferroni":
        return np.full(N, alpha / N)
    if method == "fdr_bh":
        return (j / float(N)) * alpha
    raise AssertionError


@pytest.mark.parametrize("proc", [mt.holm, mt.bonferroni, mt.benjamini_hochberg,
                                  mt.hochberg])
@pytest.mark.parametrize("N", [1, 3, 7, 10, 49, 1000])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.001, 0.3])
def test_pvalue_equal_to_its_critical_value_is_rejected(proc, N, alpha):
    method = {mt.hochberg: "holm"}.get(proc, SM_METHODS[proc])
    c = critical_values(method, N, alpha)
    res = proc(c, alpha)
    assert res.reject.all()
    ours, ref = compare_with_statsmodels(proc, c, alpha)
    np.testing.assert_array_equal(ours, ref)
    # one ulp above the critical values: the procedure must not reject the first one
    above = np.nextafter(c, 1.0)
    ours, ref = compare_with_statsmodels(proc, above, alpha)
    np.testing.assert_array_equal(ours, ref)
    # shuffled order: same decisions per element
    perm = np.random.default_rng(N).permutation(N)
    np.testing.assert_array_equal(proc(c[perm], alpha).reject, res.reject[perm])


def brute_force_lehmann_romano(p, alpha, k):
    """Sort-based k-FWER step-down of Lehmann & Romano (2005), Thm 2.2."""
    p = np.asarray(p, dtype=float).reshape(-1)
    N = p.size
    order = np.argsort(p, kind="stable")
    reject = np.zeros(N, dtype=bool)
    for j in range(1, N + 1):
        denom = N if j <= k else N + k - j
        if p[order[j - 1]] <= (k * alpha) / denom:
            reject[order[j - 1]] = True
        else:
            break
    a = np.array([(N - max(j - k, 0)) / k for j in range(1, N + 1)])
    adj_sorted = np.minimum(1.0, np.maximum.accumulate(a * p[order]))
    adj = np.empty(N)
    adj[order] = adj_sorted
    return reject, adj


@pytest.mark.parametrize("k", [1, 2, 5, 40, 300])
@pytest.mark.parametrize("alpha", [0.01, 0.1])
def test_lehmann_romano_against_brute_force(rng, k, alpha):
    for p in sample_inputs(rng):
        res = mt.lehmann_romano(p, alpha, k=k)
        ref_reject, ref_adj = brute_force_lehmann_romano(p, alpha, k)
        np.testing.assert_array_equal(res.reject.reshape(-1), ref_reject)
        np.testing.assert_allclose(res.pvalues_adjusted.reshape(-1), ref_adj, rtol=1e-12,
                                   atol=1e-300)


@pytest.mark.parametrize("k", [1, 2, 7])
def test_generalized_bonferroni_brute_force(rng, k):
    p = rng.uniform(size=500) ** 3
    res = mt.generalized_bonferroni(p, 0.05, k=k)
    np.testing.assert_array_equal(res.reject, p <= (k * 0.05) / 500)
    np.testing.assert_allclose(res.pvalues_adjusted, np.minimum(1, p * 500 / k), rtol=1e-12)


# ---------------------------------------------------------------- properties
pvals_strategy = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12),
    elements=st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 1e-3, 5e-3, 0.05, 1e-300])),
)
alphas = st.sampled_from([1e-3, 0.01, 0.05, 0.2, 0.5])


@given(p=pvals_strategy, alpha=alphas)
@settings(max_examples=150, deadline=None)
def test_reject_iff_adjusted_le_alpha_and_shape(p, alpha):
    for proc in ALL:
        res = proc(p, alpha)
        assert res.reject.shape == p.shape and res.pvalues_adjusted.shape == p.shape
        adj = res.pvalues_adjusted
        assert np.all((adj >= 0) & (adj <= 1))
        np.testing.assert_array_equal(res.reject, adj <= alpha)


@given(p=pvals_strategy, alpha=alphas)
@settings(max_examples=100, deadline=None)
def test_holm_superset_of_bonferroni_and_lr_k1_is_holm(p, alpha):
    h = mt.holm(p, alpha)
    b = mt.bonferroni(p, alpha)
    assert np.all(h.reject[b.reject])
    lr = mt.lehmann_romano(p, alpha, k=1)
    np.testing.assert_array_equal(lr.reject, h.reject)
    np.testing.assert_array_equal(lr.pvalues_adjusted, h.pvalues_adjusted)
    assert np.all(mt.hochberg(p, alpha).reject[h.reject])
    assert np.all(mt.holm_sidak(p, alpha).reject[h.reject])


@given(p=pvals_strategy, alpha=alphas)
@settings(max_examples=100, deadline=None)
def test_kfwer_rejections_grow_with_k(p, alpha):
    prev = mt.lehmann_romano(p, alpha, k=1).reject
    for k in (2, 3, 5, 20):
        cur = mt.lehmann_romano(p, alpha, k=k).reject
        assert np.all(cur[prev])
        prev = cur
    assert np.all(mt.lehmann_romano(p, alpha, k=4).reject[
        mt.generalized_bonferroni(p, alpha, k=4).reject])


@given(p=pvals_strategy)
@settings(max_examples=80, deadline=None)
def test_monotone_in_alpha(p):
    for proc in ALL:
        prev = proc(p, 0.001).reject
        for alpha in (0.01, 0.05, 0.2, 0.6):
            cur = proc(p, alpha).reject
            assert np.all(cur[prev])
            prev = cur


@given(p=hnp.arrays(np.float64, st.integers(1, 60), elements=st.floats(0, 1)),
       alpha=alphas, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_permutation_equivariance(p, alpha, seed):
    perm = np.random.default_rng(seed).permutation(p.size)
    for proc in ALL:
        a, b = proc(p, alpha), proc(p[perm], alpha)
        np.testing.assert_array_equal(a.reject[perm], b.reject)
        np.testing.assert_array_equal(a.pvalues_adjusted[perm], b.pvalues_adjusted)


@given(p=hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1)), alpha=alphas)
@settings(max_examples=100, deadline=None)
def test_statsmodels_agreement_property(p, alpha):
    for proc in SM_METHODS:
        res = proc(p, alpha)
        ref_reject, ref_adj, _, _ = sm_multipletests(p, alpha, method=SM_METHODS[proc])
        if proc in BIT_EXACT:
            np.testing.assert_array_equal(res.reject, ref_reject)
        np.testing.assert_allclose(res.pvalues_adjusted, ref_adj, rtol=1e-12, atol=1e-300)


# ------------------------------------------------------------ bad input and edge cases
@pytest.mark.parametrize("proc", ALL)
def test_empty_input_returns_empty(proc):
    res = proc(np.array([]), 0.05)
    assert res.reject.shape == (0,) and res.pvalues_adjusted.shape == (0,)
    res = proc(np.zeros((0, 4)), 0.05)
    assert res.reject.shape == (0, 4)


@pytest.mark.parametrize("proc", ALL)
@pytest.mark.parametrize(
    ("p", "alpha", "exc", "match"),
    [
        ([0.1, np.nan], 0.05, ValueError, "NaN"),
        ([0.1, 1.5], 0.05, ValueError, r"\[0, 1\]"),
        ([-0.1], 0.05, ValueError, r"\[0, 1\]"),
        ([0.1], 0.0, ValueError, "`alpha`"),
        ([0.1], 1.0, ValueError, "`alpha`"),
        ([0.1], -1, ValueError, "`alpha`"),
        ([0.1], np.nan, ValueError, "`alpha`"),
        ([0.1], "0.05", TypeError, "`alpha`"),
        ([1 + 0j], 0.05, TypeError, "pvals"),
        (np.array(["0.1"]), 0.05, TypeError, "pvals"),
        (np.array([0.1], dtype=object), 0.05, TypeError, "pvals"),
    ],
)
def test_bad_input(proc, p, alpha, exc, match):
    with pytest.raises(exc, match=match):
        proc(p, alpha)


@pytest.mark.parametrize("k", [0, -1, 2**63, 10**30])
def test_bad_k_value(k):
    with pytest.raises(ValueError, match="`k`"):
        mt.lehmann_romano([0.1], 0.05, k=k)
    with pytest.raises(ValueError, match="`k`"):
        mt.generalized_bonferroni([0.1], 0.05, k=k)
    with pytest.raises(ValueError, match="`k`"):
        mt.certify_counts([1], 5, 0.5, 0.05, method="lehmann_romano", k=k)


def test_largest_k_is_accepted_and_rejects_like_any_k_at_least_n_over_alpha():
    p = [0.01, 0.2, 0.6, 1.0]
    for proc in (mt.lehmann_romano, mt.generalized_bonferroni):
        res = proc(p, 0.05, k=2**63 - 1)
        assert res.reject.all() and (res.pvalues_adjusted <= 0.05).all()


@pytest.mark.parametrize("k", [1.0, 2.5, "2", True, None])
def test_bad_k_type(k):
    with pytest.raises(TypeError, match="`k`"):
        mt.generalized_bonferroni([0.1], 0.05, k=k)


def test_nan_is_an_error_where_statsmodels_silently_decides():
    # statsmodels' Holm treats a NaN as "not rejected" once all others are rejected
    p = np.array([0.001, 0.002, np.nan])
    sm_reject = sm_multipletests(p, 0.05, method="holm")[0]
    assert sm_reject[:2].all()  # statsmodels decides anyway
    with pytest.raises(ValueError, match="NaN"):
        mt.holm(p, 0.05)


def test_2d_input_handled_where_statsmodels_is_wrong(rng):
    p = rng.uniform(size=(25, 4)) ** 3
    ours = mt.bonferroni(p, 0.1)
    np.testing.assert_array_equal(ours.reject, p <= 0.1 / p.size)  # N counts every entry
    flat_ref = sm_multipletests(p.reshape(-1), 0.1, method="bonferroni")[0].reshape(p.shape)
    np.testing.assert_array_equal(ours.reject, flat_ref)
    # statsmodels on the 2-D array takes N = len(p) = 25 rows and silently over-rejects
    sm_2d = sm_multipletests(p, 0.1, method="bonferroni", returnsorted=True)[0]
    assert sm_2d.sum() > flat_ref.sum()
    assert mt.holm(p, 0.1).reject.shape == p.shape  # statsmodels' Holm raises on 2-D


def test_result_does_not_alias_caller_memory(rng):
    p = rng.uniform(size=50) ** 4
    res = mt.holm(p, 0.05)
    expected = mt.holm(p.copy(), 0.05).pvalues_adjusted
    p[:] = 1.0  # the caller reuses the buffer before reading the adjusted p-values
    np.testing.assert_array_equal(res.pvalues_adjusted, expected)


def test_integer_pvalues_accepted():
    res = mt.holm(np.array([0, 1, 0]), 0.05)
    np.testing.assert_array_equal(res.reject, [True, False, True])


@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("N", [5, 60, 20_000])  # 20 000: several blocks of the kernel
def test_lehmann_romano_at_its_critical_values(k, N):
    alpha = 0.05
    j = np.arange(1, N + 1)
    c = (k * alpha) / (N + k - np.maximum(j, k))
    perm = np.random.default_rng(k).permutation(N)
    for p in (c, np.nextafter(c, 1.0), np.nextafter(c, 0.0)):
        res = mt.lehmann_romano(p[perm], alpha, k=k)
        ref_reject, ref_adj = brute_force_lehmann_romano(p[perm], alpha, k)
        np.testing.assert_array_equal(res.reject, ref_reject)
        np.testing.assert_array_equal(res.reject, res.pvalues_adjusted <= alpha)
    assert mt.lehmann_romano(c, alpha, k=k).reject.all()


@pytest.mark.parametrize("proc", [mt.holm, mt.benjamini_hochberg, mt.hochberg])
def test_many_boundary_values_take_the_exact_path(proc):
    N, alpha = 30_000, 0.05
    method = {mt.hochberg: "holm"}.get(proc, SM_METHODS[proc])
    c = critical_values(method, N, alpha)
    rng = np.random.default_rng(3)
    mixed = np.where(rng.uniform(size=N) < 0.5, c, np.nextafter(c, 1.0))
    ours, ref = compare_with_statsmodels(proc, mixed, alpha)
    np.testing.assert_array_equal(ours, ref)
    assert 0 < ours.sum() < N  # the cut falls among the boundary values
    ours, ref = compare_with_statsmodels(proc, c[::-1].copy(), alpha)
    np.testing.assert_array_equal(ours, ref)
    assert ours.all()  # every p-value equals its own critical value
