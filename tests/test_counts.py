"""certify_counts (histogram fast path) equals procedure(binomial_pvalues(...))."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import multitest as mt

METHODS = [m for m in mt.COUNT_METHODS]


def generic(counts, n, tau, alpha, method, k):
    spec = mt.COUNT_METHODS[method]
    kwargs = {"k": k} if spec.takes_k else {}
    return spec.procedure(mt.binomial_pvalues(counts, n, tau), alpha, **kwargs)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [1, 10, 100, 1000])
def test_fast_path_equals_generic(rng, method, n):
    k = 3 if mt.COUNT_METHODS[method].takes_k else 1
    for tau, alpha in [(0.5, 0.05), (0.75, 0.001), (0.9, 0.1)]:
        for counts in (rng.binomial(n, 0.95, size=500), rng.binomial(n, tau, size=(10, 20)),
                       np.full(30, n), np.zeros(5, dtype=int)):
            cert = mt.certify_counts(counts, n, tau, alpha, method=method, k=k)
            ref = generic(counts, n, tau, alpha, method, k)
            np.testing.assert_array_equal(cert.reject, ref.reject)
            np.testing.assert_array_equal(cert.pvalues, mt.binomial_pvalues(counts, n, tau))
            np.testing.assert_array_equal(cert.pvalues_adjusted, ref.pvalues_adjusted)
            np.testing.assert_array_equal(cert.reject, counts >= cert.threshold)
            # the threshold is the smallest certified count that occurs
            assert cert.threshold == (counts[cert.reject].min() if cert.reject.any() else n + 1)
            assert cert.reject.shape == np.shape(counts)


@given(
    counts=hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=30),
                      elements=st.integers(0, 60)),
    tau=st.sampled_from([0.5, 0.6, 0.75, 0.9]),
    alpha=st.sampled_from([0.001, 0.05, 0.3]),
    method=st.sampled_from(METHODS),
    k=st.integers(1, 5),
)
@settings(max_examples=200, deadline=None)
def test_fast_path_property(counts, tau, alpha, method, k):
    if not mt.COUNT_METHODS[method].takes_k:
        k = 1
    cert = mt.certify_counts(counts, 60, tau, alpha, method=method, k=k)
    ref = generic(counts, 60, tau, alpha, method, k)
    np.testing.assert_array_equal(cert.reject, ref.reject)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64, np.float64])
def test_count_dtypes(dtype):
    counts = np.array([100, 99, 90, 50], dtype=dtype)
    cert = mt.certify_counts(counts, 100, 0.75, 0.01)
    np.testing.assert_array_equal(cert.reject, [True, True, True, False])


def test_large_n_uses_wide_compact_copy(rng):
    n = 70_000
    counts = rng.binomial(n, 0.8, size=1000)
    cert = mt.certify_counts(counts, n, 0.79, 0.01)
    ref = mt.holm(mt.binomial_pvalues(counts, n, 0.79), 0.01)
    np.testing.assert_array_equal(cert.reject, ref.reject)
    np.testing.assert_array_equal(cert.pvalues, mt.binomial_pvalues(counts, n, 0.79))


def test_caller_buffer_reuse_does_not_change_lazy_pvalues(rng):
    counts = rng.binomial(50, 0.9, size=100)
    cert = mt.certify_counts(counts, 50, 0.75, 0.05)
    expected = mt.binomial_pvalues(counts.copy(), 50, 0.75)
    counts[:] = 0
    np.testing.assert_array_equal(cert.pvalues, expected)


def test_nothing_certified_threshold_is_n_plus_one():
    cert = mt.certify_counts([1, 2, 3], 10, 0.75, 0.05)
    assert cert.threshold == 11 and not cert.reject.any()


def test_empty_counts():
    cert = mt.certify_counts(np.zeros(0, dtype=int), 10, 0.75, 0.05)
    assert cert.reject.shape == (0,) and cert.threshold == 11


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"counts": [11], "n": 10}, ValueError, "counts"),
        ({"counts": [-1], "n": 10}, ValueError, "counts"),
        ({"counts": [1.5], "n": 10}, ValueError, "counts"),
        ({"counts": [1], "n": np.array([10])}, TypeError, "`n`"),
        ({"counts": [1], "n": 0}, ValueError, "`n`"),
        ({"counts": [1], "n": 10, "tau": 1.0}, ValueError, "`tau`"),
        ({"counts": [1], "n": 10, "alpha": 0.0}, ValueError, "`alpha`"),
        ({"counts": [1], "n": 10, "method": "holmes"}, ValueError, "`method`"),
        ({"counts": [1], "n": 10, "k": 0, "method": "lehmann_romano"}, ValueError, "`k`"),
        ({"counts": [1], "n": 10, "k": 2, "method": "holm"}, ValueError, "`k`"),
        ({"counts": [1], "n": 10, "k": 2.0, "method": "lehmann_romano"}, TypeError, "`k`"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = {"tau": 0.75, "alpha": 0.05, **kwargs}
    with pytest.raises(exc, match=match):
        mt.certify_counts(**args)


def test_count_zero_is_certified_when_the_critical_value_reaches_one():
    # k alpha / N = 1: the p-value 1 of count 0 is at its critical value (issue 14.8)
    cert = mt.certify_counts([0], n=1, tau=0.3, alpha=0.5, method="lehmann_romano", k=2)
    ref = mt.lehmann_romano(mt.binomial_pvalues([0], 1, 0.3), 0.5, k=2)
    assert ref.reject.tolist() == [True]
    np.testing.assert_array_equal(cert.reject, ref.reject)
    assert cert.threshold == 0


@given(
    counts=hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=12),
                      elements=st.integers(0, 40)),
    n=st.integers(1, 40),
    tau=st.floats(0.05, 0.95),
    alpha=st.sampled_from([1e-6, 0.01, 0.05, 0.3, 0.5, 0.9]),
    method=st.sampled_from(METHODS),
    k=st.one_of(st.integers(1, 6), st.integers(100, 10**6), st.just(2**62)),
)
@settings(max_examples=300, deadline=None)
def test_count_path_agrees_with_pvalue_path_including_count_zero(counts, n, tau, alpha,
                                                                  method, k):
    """Every method, count 0 included, k alpha / N from tiny to huge."""
    counts = np.minimum(counts, n)
    if not mt.COUNT_METHODS[method].takes_k:
        k = 1
    cert = mt.certify_counts(counts, n, tau, alpha, method=method, k=k)
    ref = generic(counts, n, tau, alpha, method, k)
    np.testing.assert_array_equal(cert.reject, ref.reject)
    np.testing.assert_array_equal(cert.reject, cert.pvalues_adjusted <= alpha)
    np.testing.assert_array_equal(cert.reject, counts >= cert.threshold)
    assert cert.threshold == (counts[cert.reject].min() if cert.reject.any() else n + 1)
