"""Seeded Monte-Carlo checks of the error guarantees at the null boundary.

All nulls are true and every p-value is exactly uniform (the least favourable case
for a valid p-value). The observed error rate must stay below
``alpha + 3 * SE`` with ``SE = sqrt(alpha (1 - alpha) / reps)``; with these seeds
a procedure that is off by a factor of ~1.5 already fails.
"""

import numpy as np
import pytest

import multitest as mt

REPS = 2000


def draw_pvalues(rng, N, dependence):
    if dependence == "independent":
        return rng.uniform(size=N)
    if dependence == "equal":  # perfectly dependent: one uniform repeated
        return np.full(N, rng.uniform())
    if dependence == "mixture":  # half shared, half independent
        p = rng.uniform(size=N)
        p[: N // 2] = rng.uniform()
        return p
    if dependence == "blocks":  # 5 blocks of identical p-values
        return np.repeat(rng.uniform(size=5), -(-N // 5))[:N]
    raise AssertionError(dependence)


def bound(alpha):
    return alpha + 3 * np.sqrt(alpha * (1 - alpha) / REPS)


@pytest.mark.parametrize("N", [10, 1000])
@pytest.mark.parametrize("dependence", ["independent", "equal", "mixture", "blocks"])
@pytest.mark.parametrize("proc", [mt.bonferroni, mt.holm])
def test_fwer_at_most_alpha(N, dependence, proc):
    rng = np.random.default_rng([N, len(dependence), 1])
    alpha = 0.1
    errors = sum(proc(draw_pvalues(rng, N, dependence), alpha).reject.any()
                 for _ in range(REPS))
    assert errors / REPS <= bound(alpha)


@pytest.mark.parametrize("N", [10, 1000])
@pytest.mark.parametrize("dependence", ["independent", "equal", "mixture", "blocks"])
@pytest.mark.parametrize("k", [2, 5])
def test_kfwer_at_most_alpha(N, dependence, k):
    rng = np.random.default_rng([N, len(dependence), k])
    alpha = 0.1
    errors = sum(mt.lehmann_romano(draw_pvalues(rng, N, dependence), alpha, k=k)
                 .reject.sum() >= k for _ in range(REPS))
    assert errors / REPS <= bound(alpha)


def test_holm_is_tight_under_independence_so_the_check_can_fail():
    # Sanity check of the harness: under independence Holm's FWER is ~ 1-(1-a/N)^N,
    # close to alpha; an anti-conservative procedure (no correction) is caught.
    rng = np.random.default_rng(7)
    alpha, N = 0.1, 10
    uncorrected = sum((rng.uniform(size=N) <= alpha).any() for _ in range(REPS)) / REPS
    assert uncorrected > bound(alpha)
    holm_rate = sum(mt.holm(rng.uniform(size=N), alpha).reject.any()
                    for _ in range(REPS)) / REPS
    assert holm_rate > alpha / 2  # not trivially conservative either


def test_binomial_counts_at_the_null_boundary():
    # Counts drawn at p = tau exactly: certify_counts with Holm makes a false
    # certification in at most alpha of the runs (binomial p-values are discrete and
    # conservative, so the rate is well below alpha).
    rng = np.random.default_rng(11)
    alpha, n, tau, N = 0.1, 100, 0.75, 500
    errors = sum(mt.certify_counts(rng.binomial(n, tau, size=N), n, tau, alpha)
                 .reject.any() for _ in range(REPS))
    assert errors / REPS <= bound(alpha)
