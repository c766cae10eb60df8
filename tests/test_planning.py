"""multitest.min_certifying_samples: exact against a brute-force scan of certify_counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multitest as mt


def _brute(N: int, tau: float, alpha: float, correction: str, k: int) -> int:
    """Smallest n at which the best outcome (all counts == n) certifies anything."""
    n = 1
    while not mt.certify_counts(np.full(N, n), n, tau, alpha, method=correction,
                                k=k).reject.any():
        n += 1
    return n


_METHODS = [(m, 1) for m in mt.COUNT_METHODS] + [("lehmann_romano", 3),
                                                  ("generalized_bonferroni", 2)]


@pytest.mark.parametrize(("correction", "k"), _METHODS)
@pytest.mark.parametrize(("N", "tau", "alpha"), [(1, 0.5, 0.05), (7, 0.75, 0.001),
                                                 (50, 0.95, 0.001), (200, 0.9, 0.01)])
def test_matches_brute_force(N: int, tau: float, alpha: float, correction: str, k: int) -> None:
    expected = _brute(N, tau, alpha, correction, k)
    assert mt.min_certifying_samples(N, tau, alpha, correction, k) == expected


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 300), tau=st.floats(0.5, 0.97), alpha=st.floats(1e-4, 0.2),
       correction=st.sampled_from(["holm", "bonferroni", "lehmann_romano", "hochberg"]))
def test_matches_brute_force_random(N: int, tau: float, alpha: float, correction: str) -> None:
    assert mt.min_certifying_samples(N, tau, alpha, correction) == _brute(N, tau, alpha,
                                                                          correction, 1)


def test_no_counts_certify_below_the_minimum() -> None:
    # one short of the minimum: not even the best counts certify; at it they do
    n = mt.min_certifying_samples(100, 0.95, 0.001)
    assert not mt.certify_counts(np.full(100, n - 1), n - 1, 0.95, 0.001).reject.any()
    assert mt.certify_counts(np.full(100, n), n, 0.95, 0.001).reject.all()


def test_issue_example_tau095_n100_cannot_certify() -> None:
    assert mt.min_certifying_samples(64 * 128, 0.95, 0.001) > 100


@pytest.mark.parametrize(("kwargs", "err", "match"), [
    ({"N": 0}, ValueError, "`N`"),
    ({"N": 2.0}, TypeError, "`N`"),
    ({"tau": 1.0}, ValueError, "`tau`"),
    ({"alpha": 0.0}, ValueError, "`alpha`"),
    ({"correction": "nope"}, ValueError, "`correction`"),
    ({"correction": "holm", "k": 2}, ValueError, "`k`"),
    ({"n_max": 10}, ValueError, "n_max"),
])
def test_bad_arguments(kwargs: dict, err: type, match: str) -> None:
    args = {"N": 100, "tau": 0.95, "alpha": 0.001, **kwargs}
    with pytest.raises(err, match=match):
        mt.min_certifying_samples(**args)


# ---------------------------------------------------------------------------
# randomized=True (issue 21.2): every n can certify; how likely is the question
# ---------------------------------------------------------------------------
_STEP = 2.0**-53  # numpy's Generator.random draws k * 2**-53


def _brute_probability(N: int, tau: float, alpha: float, correction: str, k: int,
                       n: int) -> float:
    """P(component 0 is certified) when its n samples all agree and every other
    component's sample disagrees, over its U: the real randomized p-values and the
    real procedure, bisected over the 2**53 values U can take (the decision is
    monotone in U)."""
    from multitest._randomized import randomized_pvalues

    counts = np.zeros(N, dtype=np.int64)
    counts[0] = n
    spec = mt.COUNT_METHODS[correction]
    kw = {"k": k} if spec.takes_k else {}

    def certified(j: int) -> bool:
        u = np.full(N, 0.5)
        u[0] = j * _STEP
        p = randomized_pvalues(counts, n, tau, u)
        return bool(spec.procedure(p, alpha, **kw).reject[0])

    lo, hi = 0, 2**53  # certified(lo) (U = 0: p = 0); hi: first U not certified
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if certified(mid):
            lo = mid
        else:
            hi = mid
    return hi * _STEP


_RANDOMIZED_CASES = [(1, 0.5, 0.1, 0.5), (5, 0.75, 0.01, 1.0), (40, 0.9, 0.001, 0.01),
                     (7, 0.95, 0.05, 1e-4)]


@pytest.mark.parametrize(("correction", "k"), _METHODS)
@pytest.mark.parametrize(("N", "tau", "alpha", "probability"), _RANDOMIZED_CASES)
def test_randomized_matches_brute_force(N, tau, alpha, probability, correction, k):
    if k > N:
        pytest.skip("k-FWER with k > N promises nothing")
    n = mt.min_certifying_samples(N, tau, alpha, correction, k, randomized=True,
                                  probability=probability)
    assert _brute_probability(N, tau, alpha, correction, k, n) >= probability
    if n > 1:  # the probability grows with n, so n is the smallest
        assert _brute_probability(N, tau, alpha, correction, k, n - 1) < probability


@pytest.mark.parametrize("correction", ["holm", "bonferroni", "benjamini_hochberg"])
def test_randomized_probability_is_exact_on_the_grid(correction):
    from scipy import stats

    from multitest._planning import _certify_probability, _critical

    N, tau, alpha = 20, 0.8, 0.01
    c1 = _critical(N, alpha, correction, 1, "first")
    for n in (5, 12, 20):
        atom = float(stats.binom.pmf(n, n, tau))
        assert _certify_probability(atom, c1) == _brute_probability(N, tau, alpha,
                                                                    correction, 1, n)


def test_randomized_other_components_only_help(rng):
    """Whatever the other counts (and U's), a unanimous component is certified at
    least as often as the probability the planner promises."""
    N, tau, alpha = 30, 0.75, 0.05
    n = mt.min_certifying_samples(N, tau, alpha, randomized=True, probability=0.2)  # 17
    hits, reps = 0, 3000
    for seed in range(reps):
        counts = rng.integers(0, n + 1, size=N)
        counts[0] = n
        hits += mt.certify_counts(counts, n, tau, alpha, randomized=True,
                                  rng=seed).reject[0]
    from scipy import stats

    promised = min(1.0, alpha / N / stats.binom.pmf(n, n, tau))
    se = math.sqrt(promised * (1 - promised) / reps)
    assert hits / reps >= promised - 3 * se


def test_issue_example_randomized_certifies_below_the_conservative_minimum():
    """N = 32768, tau = 0.9, alpha = 0.001: the conservative minimum is 165, yet
    with the randomized test n = 100 certifies ~0.1 % of unanimous components."""
    N, tau, alpha = 2**15, 0.9, 0.001
    assert mt.min_certifying_samples(N, tau, alpha) == 165
    assert mt.min_certifying_samples(N, tau, alpha, randomized=True, probability=1.0) == 165
    need = mt.min_certifying_samples(N, tau, alpha, randomized=True, probability=0.001)
    assert need <= 100
    cert = mt.certify_counts(np.full(N, 100), 100, tau, alpha, randomized=True, rng=0)
    promised = alpha / N / tau**100  # 0.00115; Holm's later steps add a little
    assert cert.num_rejected / N >= promised - 3 * math.sqrt(promised / N)
    assert cert.num_rejected > 0


@pytest.mark.parametrize(("correction", "k"), [("holm", 1), ("bonferroni", 1), ("sidak", 1),
                                               ("holm_sidak", 1), ("lehmann_romano", 2),
                                               ("generalized_bonferroni", 3)])
def test_randomized_certain_is_conservative_for_step_down(correction, k):
    for N, tau, alpha in [(10, 0.75, 0.01), (500, 0.95, 0.001), (3, 0.6, 0.2)]:
        assert (mt.min_certifying_samples(N, tau, alpha, correction, k, randomized=True,
                                          probability=1.0)
                == mt.min_certifying_samples(N, tau, alpha, correction, k))


def test_randomized_small_probability_needs_one_sample():
    assert mt.min_certifying_samples(100, 0.9, 0.001, randomized=True,
                                     probability=1e-12) == 1


@pytest.mark.parametrize(("kwargs", "err", "match"), [
    ({"randomized": True}, ValueError, "`probability` is required"),
    ({"probability": 0.5}, ValueError, "`probability` applies to randomized=True"),
    ({"randomized": True, "probability": 0.0}, ValueError, r"`probability` must lie in \(0, 1\]"),
    ({"randomized": True, "probability": 1.5}, ValueError, "`probability`"),
    ({"randomized": True, "probability": "0.5"}, TypeError, "`probability`"),
    ({"randomized": True, "probability": 0.99, "n_max": 50}, ValueError, "with probability"),
])
def test_randomized_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        mt.min_certifying_samples(1000, 0.95, 0.001, **kwargs)
