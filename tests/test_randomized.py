"""The exact randomized binomial test (issue 15.2): multitest and SegCertify."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import multitest
from multitest._randomized import randomized_pvalues
from samplers import GaussianL2
from smoothing import SegCertify
from smoothing.distributed import DistributedSegCertify


def exact_rejection_probability(n: int, tau: float, a: float) -> float:
    """P(P(X > c) + U P(X = c) <= a) under X ~ Bin(n, tau), U ~ U(0, 1): an exact sum."""
    c = np.arange(n + 1)
    upper = stats.binom.sf(c, n, tau)
    atom = stats.binom.pmf(c, n, tau)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        frac = np.clip((a - upper) / atom, 0.0, 1.0)  # P(U <= (a - upper) / atom)
    frac[atom == 0] = 0.0
    return float(np.sum(atom * frac))


@pytest.mark.parametrize("n", [1, 7, 50, 100, 300])
@pytest.mark.parametrize("tau", [0.5, 0.75, 0.9, 0.99])
def test_exactly_uniform_under_boundary_null(n, tau):
    for a in (1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.77, 0.999):
        assert exact_rejection_probability(n, tau, a) == pytest.approx(a, rel=1e-9, abs=1e-15)


def test_conservative_pvalue_is_not_uniform():
    # the contrast that the randomized test removes: P(P(X >= c) <= a) < a
    n, tau, a = 100, 0.75, 0.01
    c = np.arange(n + 1)
    p = multitest.binomial_pvalues(c, n, tau)
    assert stats.binom.pmf(c, n, tau)[p <= a].sum() < 0.8 * a


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), tau=st.floats(0.05, 0.995), seed=st.integers(0, 2**32 - 1))
def test_randomized_at_most_conservative_and_matches_formula(n, tau, seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, n + 1, size=37)
    p = multitest.binomial_pvalues(counts, n, tau, randomized=True, rng=seed)
    u = np.random.default_rng(seed).random(counts.shape)
    ref = stats.binom.sf(counts, n, tau) + u * stats.binom.pmf(counts, n, tau)
    np.testing.assert_allclose(p, ref, rtol=1e-10, atol=1e-300)
    cons = multitest.binomial_pvalues(counts, n, tau)
    # below ~1e-290 scipy's betainc (the conservative path) underflows to 0 before the pmf
    assert np.all(p <= cons * (1 + 1e-12) + 1e-280)
    assert np.all((p >= 0) & (p <= 1))


@pytest.mark.parametrize("n,tau,seed", [(263, 0.0546875, 1), (290, 0.0625, 32)])  # hypothesis
def test_regression_subnormal_pvalues(n, tau, seed):
    counts = np.random.default_rng(seed).integers(0, n + 1, size=37)
    p = multitest.binomial_pvalues(counts, n, tau, randomized=True, rng=seed)
    assert np.all(p <= multitest.binomial_pvalues(counts, n, tau) + 1e-280)


def test_array_n_matches_scalar_n():
    counts = np.array([[3, 50], [99, 100]])
    a = multitest.binomial_pvalues(counts, np.full((2, 2), 100), 0.8, randomized=True, rng=4)
    b = multitest.binomial_pvalues(counts, 100, 0.8, randomized=True, rng=4)
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_reproducible_and_rng_consumed():
    counts = np.arange(0, 101)
    a = multitest.binomial_pvalues(counts, 100, 0.75, randomized=True, rng=11)
    b = multitest.binomial_pvalues(counts, 100, 0.75, randomized=True,
                                   rng=np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(11)
    first = multitest.binomial_pvalues(counts, 100, 0.75, randomized=True, rng=g)
    second = multitest.binomial_pvalues(counts, 100, 0.75, randomized=True, rng=g)
    assert not np.array_equal(first, second)  # a fresh U per call from one generator


def test_nonrandomized_path_untouched():
    counts = [100, 90, 75, 0]
    np.testing.assert_array_equal(
        multitest.binomial_pvalues(counts, 100, 0.75, randomized=False, rng=3),
        multitest.binomial_pvalues(counts, 100, 0.75))


@pytest.mark.parametrize("method,k", [("holm", 1), ("bonferroni", 1), ("lehmann_romano", 3),
                                      ("generalized_bonferroni", 2), ("hochberg", 1),
                                      ("benjamini_hochberg", 1), ("hommel", 1)])
def test_certify_counts_agrees_with_procedure(method, k):
    rng = np.random.default_rng(2)
    counts = rng.binomial(100, rng.uniform(0.6, 1.0, size=(30, 20)))
    kw = {"k": k} if multitest.COUNT_METHODS[method].takes_k else {}
    cert = multitest.certify_counts(counts, 100, 0.75, 0.05, method=method,
                                    randomized=True, rng=9, **kw)
    p = multitest.binomial_pvalues(counts, 100, 0.75, randomized=True, rng=9)
    ref = multitest.COUNT_METHODS[method].procedure(p, 0.05, **kw)
    np.testing.assert_array_equal(cert.reject, ref.reject)
    np.testing.assert_array_equal(cert.pvalues, p)
    np.testing.assert_allclose(cert.pvalues_adjusted, ref.pvalues_adjusted)
    # every count above the threshold is certified; the threshold's own count may split
    assert np.all(cert.reject[counts > cert.threshold])
    assert not np.any(cert.reject[counts < cert.threshold])
    # never fewer certified than the conservative test, for step-down FWER methods
    if method in ("holm", "bonferroni", "lehmann_romano", "generalized_bonferroni"):
        cons = multitest.certify_counts(counts, 100, 0.75, 0.05, method=method, **kw)
        assert np.all(cert.reject[cons.reject])


def test_empty_and_errors():
    cert = multitest.certify_counts(np.zeros(0, dtype=int), 10, 0.75, 0.01,
                                    randomized=True, rng=0)
    assert cert.reject.shape == (0,) and cert.threshold == 11
    with pytest.raises(ValueError, match="`rng` is required"):
        multitest.certify_counts([1, 2], 10, 0.75, 0.01, randomized=True)
    with pytest.raises(ValueError, match="`rng` is required"):
        multitest.binomial_pvalues([1, 2], 10, 0.75, randomized=True)
    with pytest.raises(TypeError, match="`rng`"):
        multitest.binomial_pvalues([1, 2], 10, 0.75, randomized=True, rng="seed")
    with pytest.raises(TypeError, match="`randomized`"):
        multitest.binomial_pvalues([1, 2], 10, 0.75, randomized=1, rng=0)
    with pytest.raises(ValueError, match=r"\[0, n\]"):
        multitest.certify_counts([1, 12], 10, 0.75, 0.01, randomized=True, rng=0)


@pytest.mark.parametrize("method", ["holm", "bonferroni"])
def test_fwer_at_null_boundary_monte_carlo(method):
    """Seeded Monte Carlo: every component at the boundary p_i = tau (all nulls true).

    2000 repetitions of N = 50 components, n = 50, tau = 0.75, alpha = 0.1. The
    randomized p-values are exactly uniform, so Bonferroni's FWER is
    1 - (1 - alpha/N)^N = 0.0956 and Holm's the same (its first step is
    Bonferroni's). Tolerance: the estimate must be <= alpha + 3 SE with
    SE = sqrt(alpha (1 - alpha) / reps) = 0.0067; and, to show the test is not
    conservative, >= 1 - (1 - alpha/N)^N - 4 SE.
    """
    reps, N, n, tau, alpha = 2000, 50, 50, 0.75, 0.1
    rng = np.random.default_rng(20261203)
    counts = rng.binomial(n, tau, size=(reps, N))
    errors = 0
    for r in range(reps):
        errors += bool(multitest.certify_counts(counts[r], n, tau, alpha, method=method,
                                                randomized=True, rng=rng).reject.any())
    fwer = errors / reps
    se = np.sqrt(alpha * (1 - alpha) / reps)
    assert fwer <= alpha + 3 * se
    assert fwer >= 1 - (1 - alpha / N) ** N - 4 * se


def test_kernel_count_n_gives_upper_zero():
    p = randomized_pvalues(np.array([5, 5]), 5, 0.5, np.array([0.0, 0.5]))
    np.testing.assert_allclose(p, [0.0, 0.5 * 0.5 ** 5])


@pytest.fixture(scope="module")
def toy():
    model = torch.nn.Conv2d(3, 2, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[1, 0] = 3.0
        model.bias[1] = -1.5
    x = torch.zeros(3, 6, 6)
    x[0, :, 3:] = 1.0
    return model, x


def test_segcertify_randomized(toy, torch_one_thread):
    model, x = toy
    kw = dict(num_classes=2, n0=10, n=60, tau=0.75, alpha=0.01, batch_size=30)
    seg = SegCertify(model, GaussianL2(0.5), randomized=True, **kw)
    a = seg.certify(x, generator=torch.Generator().manual_seed(0), rng=1)
    b = seg.certify(x, generator=torch.Generator().manual_seed(0), rng=1)
    assert torch.equal(a.labels, b.labels)
    assert a.params["randomized"] is True and "randomized=True" in repr(seg)
    ref = multitest.certify_counts(a.counts.numpy(), 60, 0.75, 0.01, randomized=True, rng=1)
    assert np.array_equal(a.certified.numpy(), ref.reject)
    cons = SegCertify(model, GaussianL2(0.5), **kw).certify(
        x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cons.counts, a.counts)
    assert bool((a.certified | ~cons.certified).all())  # superset of the conservative
    pred = seg.predict(x, n=30, generator=torch.Generator().manual_seed(0), rng=1)
    assert pred.params["n"] == 30 and pred.params["randomized"] is True
    with pytest.raises(ValueError, match="`rng` is required"):
        seg.predict(x, n=30)
    again = seg.retest(a, 0.75, rng=1)
    assert torch.equal(again.labels, a.labels)
    with pytest.raises(ValueError, match="`rng` is required"):
        seg.certify(x)
    with pytest.raises(ValueError, match="`rng` is required"):
        seg.retest(a, 0.8)
    with pytest.raises(TypeError, match="`randomized`"):
        SegCertify(model, GaussianL2(0.5), randomized="yes", **kw)
    with pytest.raises(ValueError, match="randomized"):
        DistributedSegCertify(seg)


def _rng_of(params):
    """The snippet of docs/certificates.md: the generator a certificate's U came from."""
    bits = getattr(np.random, params["rng_state"]["bit_generator"])()
    bits.state = params["rng_state"]
    return np.random.Generator(bits)


def test_segcertify_records_the_rng_it_used(toy, torch_one_thread):
    """Issue 21.2: params carried ``randomized: True`` but not the seed the docs
    tell users to report; now the seed and the generator state before the draws."""
    import json

    model, x = toy
    kw = dict(num_classes=2, n0=10, n=60, tau=0.75, alpha=0.01, batch_size=30)
    seg = SegCertify(model, GaussianL2(0.5), randomized=True, **kw)
    a = seg.certify(x, generator=torch.Generator().manual_seed(0), rng=7)
    assert a.params["rng_seed"] == 7
    assert a.params["rng_state"] == np.random.default_rng(7).bit_generator.state
    json.dumps(dict(a.params))  # a run record can hold it
    g = np.random.Generator(np.random.MT19937(3))
    before = g.bit_generator.state
    b = seg.certify(x, generator=torch.Generator().manual_seed(0), rng=g)
    assert b.params["rng_seed"] is None
    assert json.loads(json.dumps(b.params["rng_state"]))["state"]["key"] == before["state"][
        "key"].tolist()
    for cert in (a, b):  # the record reproduces the certificate from its counts
        again = seg.retest(cert, cert.params["tau"], rng=_rng_of(cert.params))
        assert torch.equal(again.labels, cert.labels)
    retested = seg.retest(a, 0.8, rng=11)
    assert retested.params["rng_seed"] == 11 and retested.params["tau"] == 0.8
    pred = seg.predict(x, n=30, generator=torch.Generator().manual_seed(0), rng=5)
    assert pred.params["rng_seed"] == 5
    conservative = SegCertify(model, GaussianL2(0.5), **kw).certify(
        x, generator=torch.Generator().manual_seed(0))
    assert "rng_seed" not in conservative.params and "rng_state" not in conservative.params


def test_randomized_threshold_is_the_smallest_certified_count():
    """With randomized=True ``threshold`` is no count threshold: every larger count
    is certified, a count equal to it only where its U allowed (docs/smoothing.md)."""
    n, tau, alpha, N = 60, 0.75, 0.05, 400
    # count c: P(X > c) <= alpha / N < P(X >= c), certified iff its U is small enough
    c = multitest.bonferroni_threshold(n, tau, alpha, N=N) - 1
    share = (alpha / N - stats.binom.sf(c, n, tau)) / stats.binom.pmf(c, n, tau)
    assert 0.05 < share < 0.95
    counts = np.full(N, c)
    counts[:50] = n
    cert = multitest.certify_counts(counts, n, tau, alpha, method="bonferroni",
                                    randomized=True, rng=3)
    t = cert.threshold
    assert (cert.reject[counts > t]).all()
    at = cert.reject[counts == t]
    assert at.any() and not at.all()  # not "certified exactly where counts >= threshold"
    assert not cert.reject[counts < t].any()
