"""multitest.simultaneous_lower_bounds: brute force, scipy, properties, soundness, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import multitest as mt
from multitest import simultaneous_lower_bounds as slb


def ladder_brute(counts, n, alpha, levels):
    """Holm over the N x L p-values, materialised; the highest rejected level."""
    counts = np.asarray(counts).reshape(-1)
    P = np.stack([mt.binomial_pvalues(counts, n, t) for t in levels], axis=1)
    rej = mt.holm(P.reshape(-1), alpha).reject.reshape(P.shape)
    return np.where(rej, np.asarray(levels)[None, :], 0.0).max(axis=1)


counts_strategy = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), min_size=1, max_size=40)))


@settings(max_examples=60, deadline=None)
@given(counts_strategy, st.sampled_from([0.001, 0.05, 0.3]))
def test_bonferroni_is_clopper_pearson_at_alpha_over_n(nc, alpha):
    n, counts = nc
    c = np.array(counts)
    got = slb(c, n, alpha).p_lower
    ref = np.where(c > 0, stats.beta.ppf(alpha / c.size, np.maximum(c, 1), n - c + 1), 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=0)


@settings(max_examples=60, deadline=None)
@given(counts_strategy, st.sampled_from([0.001, 0.05, 0.3]),
       st.lists(st.floats(0.05, 0.99), min_size=1, max_size=6, unique=True))
def test_ladder_equals_holm_over_all_component_level_pairs(nc, alpha, levels):
    n, counts = nc
    levels = sorted(levels)
    got = slb(counts, n, alpha, method="ladder", levels=levels).p_lower
    np.testing.assert_array_equal(got, ladder_brute(counts, n, alpha, levels))


@settings(max_examples=60, deadline=None)
@given(counts_strategy, st.sampled_from(["bonferroni", "ladder"]))
def test_monotone_in_the_count(nc, method):
    n, counts = nc
    c = np.sort(np.array(counts))
    lo = slb(c, n, 0.01, method=method).p_lower
    assert np.all(np.diff(lo) >= 0)
    assert lo[c == 0].sum() == 0 and np.all((lo >= 0) & (lo < 1))


@settings(max_examples=80, deadline=None)
@given(counts_strategy, st.floats(0.5, 0.999), st.sampled_from([2.0 ** -10, 0.0625, 0.25]))
def test_bonferroni_bound_reaches_tau_exactly_where_bonferroni_certifies(nc, tau, alpha):
    # same family budget: the radius map and the fixed-tau Bonferroni certificate
    n, counts = nc
    lo = slb(counts, n, alpha).p_lower
    cert = mt.certify_counts(counts, n, tau, alpha, method="bonferroni")
    np.testing.assert_array_equal(lo >= tau, cert.reject)


@settings(max_examples=80, deadline=None)
@given(counts_strategy, st.sampled_from([1, 2, 4, 8]), st.integers(0, 7),
       st.sampled_from([2.0 ** -10, 0.0625, 0.25]))
def test_ladder_dominates_the_fixed_tau_grid_at_alpha_over_levels(nc, L, pick, alpha):
    # L fixed-tau certificates at alpha / L each (simultaneous by the union bound)
    # versus one ladder at alpha: the ladder certifies every level the Bonferroni
    # certificates do, and the top level wherever Holm's does.
    n, counts = nc
    levels = np.linspace(0.5, 0.97, L + 1)[1:]
    lo = slb(counts, n, alpha, method="ladder", levels=levels).p_lower
    tau = levels[pick % L]
    bonf = mt.certify_counts(counts, n, tau, alpha / L, method="bonferroni")
    assert np.all(lo[bonf.reject] >= tau)
    top = mt.certify_counts(counts, n, levels[-1], alpha / L, method="holm")
    assert np.all(lo[top.reject] >= levels[-1])


def test_single_level_ladder_is_the_holm_certificate(rng):
    counts = rng.binomial(100, 0.9, size=500)
    lo = slb(counts, 100, 0.01, method="ladder", levels=[0.75]).p_lower
    np.testing.assert_array_equal(lo == 0.75, mt.certify_counts(counts, 100, 0.75, 0.01).reject)


def test_ladder_beats_holm_below_the_top_is_not_guaranteed():
    # the statement above is exactly as strong as it can be: below the top level the
    # ladder can certify less than the fixed-tau Holm certificate at alpha / L
    counts, n, alpha, levels = [7, 6], 7, 0.25, [0.55, 0.9]
    lo = slb(counts, n, alpha, method="ladder", levels=levels).p_lower
    holm = mt.certify_counts(counts, n, 0.55, alpha / 2, method="holm").reject
    assert holm.all() and lo[1] < 0.55


def test_shape_and_edge_counts():
    c = np.array([[0, 5], [10, 3]])
    res = slb(c, 10, 0.05)
    assert res.p_lower.shape == (2, 2) and res.method == "bonferroni" and res.levels is None
    assert res.p_lower[0, 0] == 0.0
    assert res.p_lower[1, 0] == pytest.approx((0.05 / 4) ** (1 / 10), rel=1e-12)
    assert slb(np.zeros((0,), int), 10, 0.05).p_lower.shape == (0,)
    lad = slb(c, 10, 0.05, method="ladder")
    np.testing.assert_array_equal(lad.levels, mt.ladder_levels(10, 4, 0.05))


def test_soundness_at_known_probabilities():
    # counts drawn at known p_i (half of them near the boundary): P(exists i with
    # p_i < p_lower_i) <= alpha + 3 SE over 400 seeded runs, for both methods
    rng = np.random.default_rng(20261203)
    reps, alpha, n, N = 400, 0.2, 50, 200
    p = np.where(np.arange(N) % 2 == 0, 0.6, 0.95)
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)
    for method in ("bonferroni", "ladder"):
        levels = None if method == "bonferroni" else np.linspace(0.5, 0.96, 24)[1:]
        errors = sum((slb(rng.binomial(n, p), n, alpha, method=method, levels=levels)
                      .p_lower > p).any() for _ in range(reps))
        assert errors / reps <= bound


@pytest.mark.parametrize(("kwargs", "err", "match"), [
    ({"counts": [1, 11], "n": 10, "alpha": 0.1}, ValueError, r"`counts` must lie in \[0, n\]"),
    ({"counts": [1.5], "n": 10, "alpha": 0.1}, ValueError, "`counts` must be integers"),
    ({"counts": ["a"], "n": 10, "alpha": 0.1}, TypeError, "`counts`"),
    ({"counts": [1], "n": 0, "alpha": 0.1}, ValueError, r"`n` must be an integer in \[1, 2"),
    ({"counts": [1], "n": [3, 4], "alpha": 0.1}, TypeError, "`n` must be a scalar"),
    ({"counts": [1], "n": 10, "alpha": 1.5}, ValueError, r"`alpha` must lie in \(0, 1\)"),
    ({"counts": [1], "n": 10, "alpha": 0.1, "method": "holm"}, ValueError, "`method`"),
    ({"counts": [1], "n": 10, "alpha": 0.1, "levels": [0.6]}, ValueError, "ladder"),
    ({"counts": [1], "n": 10, "alpha": 0.1, "method": "ladder", "levels": []},
     ValueError, "non-empty"),
    ({"counts": [1], "n": 10, "alpha": 0.1, "method": "ladder", "levels": [0.6, 1.0]},
     ValueError, r"\(0, 1\)"),
    ({"counts": [1], "n": 10, "alpha": 0.1, "method": "ladder", "levels": [0.7, 0.6]},
     ValueError, "strictly increasing"),
])
def test_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        slb(**kwargs)


@pytest.mark.parametrize(("n", "N"), [(100, 1), (500, 10**6), (3, 10**6)])
def test_ladder_levels_increase_above_one_half(n, N):
    lv = mt.ladder_levels(n, N, 0.001, num=5)
    assert lv.size == 5 and lv[0] > 0.5 and np.all(np.diff(lv) > 0) and lv[-1] < 1


def test_ladder_levels_errors():
    with pytest.raises(ValueError, match=r"`num` must be an integer in \[1, 2\*\*16\]"):
        mt.ladder_levels(10, 5, 0.1, num=0)
    with pytest.raises(ValueError, match="`num_components`"):
        mt.ladder_levels(10, 0, 0.1)
