"""The small-input path decides exactly as the pass-based path (issue 13, item 6).

Below ``multitest._step.SMALL_N`` a step procedure is decided by one fused kernel
call (the rank iteration inside it, a sort where it settles slowly) and its
adjusted p-values by another; ``certify_counts`` then takes the p-value path.
Setting ``SMALL_N`` to 0 forces the passes, to a large value the fused kernel, so
both are compared on the same inputs around the cut-over.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import multitest as mt
from multitest import _step

PROCEDURES = {
    "bonferroni": (mt.bonferroni, {}),
    "generalized_bonferroni": (mt.generalized_bonferroni, {"k": 3}),
    "holm": (mt.holm, {}),
    "lehmann_romano": (mt.lehmann_romano, {"k": 3}),
    "lehmann_romano_k_ge_N": (mt.lehmann_romano, {"k": 10_000}),
    "sidak": (mt.sidak, {}),
    "holm_sidak": (mt.holm_sidak, {}),
    "hochberg": (mt.hochberg, {}),
    "benjamini_hochberg": (mt.benjamini_hochberg, {}),
    "benjamini_yekutieli": (mt.benjamini_yekutieli, {}),
}

P_VALUE = st.sampled_from([0.0, 1e-9, 1e-6, 1e-4, 1e-3, 0.004, 0.01, 0.02, 0.05, 0.2, 1.0]) \
    | st.floats(0, 1)


def both_paths(procedure, p, alpha, kwargs, passes=None):
    old = _step.SMALL_N, _step.SMALL_PASSES
    try:
        _step.SMALL_N = 10**9
        if passes is not None:  # 0: the small kernel sorts unless the first count settles
            _step.SMALL_PASSES = passes
        small = procedure(p, alpha, **kwargs)
        small_adj = small.pvalues_adjusted
        _step.SMALL_N = 0
        large = procedure(p, alpha, **kwargs)
        large_adj = large.pvalues_adjusted
    finally:
        _step.SMALL_N, _step.SMALL_PASSES = old
    return small, small_adj, large, large_adj


@given(p=hnp.arrays(np.float64, st.integers(1, 200), elements=P_VALUE),
       alpha=st.sampled_from([0.001, 0.05, 0.3]),
       name=st.sampled_from(list(PROCEDURES)),
       passes=st.integers(0, 5))
@settings(max_examples=300, deadline=None)
def test_small_and_large_paths_agree_exactly(p, alpha, name, passes):
    procedure, kwargs = PROCEDURES[name]
    small, small_adj, large, large_adj = both_paths(procedure, p, alpha, kwargs, passes)
    np.testing.assert_array_equal(small.reject, large.reject)
    np.testing.assert_array_equal(small_adj, large_adj)  # bit for bit
    np.testing.assert_array_equal(small.reject, small_adj <= alpha)


@pytest.mark.parametrize("name", list(PROCEDURES))
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_paths_agree_at_the_cut_over(rng, name, offset):
    """Either side of the real SMALL_N, on inputs where the passes settle slowly."""
    procedure, kwargs = PROCEDURES[name]
    N = _step.SMALL_N + offset
    alpha = 0.05
    for p in (rng.uniform(size=N) ** 6, rng.permutation(alpha / (N - np.arange(N))),
              np.round(rng.uniform(size=N) ** 4, 3)):
        small, small_adj, large, large_adj = both_paths(procedure, p, alpha, kwargs, 0)
        np.testing.assert_array_equal(small.reject, large.reject)
        np.testing.assert_array_equal(small_adj, large_adj)
        default = procedure(p, alpha, **kwargs)
        np.testing.assert_array_equal(default.reject, large.reject)


@pytest.mark.parametrize("bad", [np.nan, -0.1, 1.5])
def test_small_path_validates(bad):
    p = np.array([0.01, 0.2, bad])
    with pytest.raises(ValueError, match="pvals"):
        mt.holm(p, 0.05)


@given(counts=hnp.arrays(np.int64, st.integers(1, 120), elements=st.integers(0, 60)),
       tau=st.sampled_from([0.5, 0.75, 0.9]),
       alpha=st.sampled_from([0.001, 0.05]),
       method=st.sampled_from([m for m, s in mt.COUNT_METHODS.items() if s.code is not None]))
@settings(max_examples=150, deadline=None)
def test_certify_counts_small_and_large_paths_agree(counts, tau, alpha, method):
    k = 2 if mt.COUNT_METHODS[method].takes_k else 1
    old = _step.SMALL_N
    try:
        _step.SMALL_N = 10**9
        small = mt.certify_counts(counts, 60, tau, alpha, method=method, k=k)
        small_p, small_adj = small.pvalues, small.pvalues_adjusted
        _step.SMALL_N = 0
        large = mt.certify_counts(counts, 60, tau, alpha, method=method, k=k)
        large_p, large_adj = large.pvalues, large.pvalues_adjusted
    finally:
        _step.SMALL_N = old
    np.testing.assert_array_equal(small.reject, large.reject)
    assert small.threshold == large.threshold
    np.testing.assert_array_equal(small_p, large_p)
    np.testing.assert_array_equal(small_adj, large_adj)


@given(p=hnp.arrays(np.float64, st.integers(1, 200), elements=P_VALUE),
       alpha=st.sampled_from([0.001, 0.05, 0.1, 0.3]),
       maxiter=st.sampled_from([0, 1, 2, 5, -1, None]),
       name=st.sampled_from(["two_stage_benjamini_hochberg", "benjamini_krieger_yekutieli"]))
@settings(max_examples=300, deadline=None)
def test_two_stage_small_and_large_paths_agree_exactly(p, alpha, maxiter, name):
    procedure = getattr(mt, name)
    small, small_adj, large, large_adj = both_paths(procedure, p, alpha, {"maxiter": maxiter})
    np.testing.assert_array_equal(small.reject, large.reject)
    np.testing.assert_array_equal(small_adj, large_adj)
    np.testing.assert_array_equal(small.reject, small_adj <= alpha)
