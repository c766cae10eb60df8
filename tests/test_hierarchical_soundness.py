"""Seeded Monte-Carlo checks of hierarchical certification at the null boundary.

An oracle draws, per component, the counts of a nested pair of events (a fine class
inside its coarse class) in the same ``n`` samples: ``fine ~ Bin(n, p_fine)`` and
``coarse = fine + Bin(n - fine, (p_coarse - p_fine) / (1 - p_fine))``, i.e. the
multinomial of "in the fine class", "in the coarse class only", "outside". A step
is a true null when its probability is ``<= tau``; a component is in error when a
true step is rejected. The observed error rate must stay below ``alpha + 3 SE``,
``SE = sqrt(alpha (1 - alpha) / REPS)``; the naive rule (Holm on the coarse step,
then the fine step at the same critical value) must exceed it on its adversarial
input, so the harness can fail.
"""

import numpy as np
import pytest

import multitest
from smoothing.hierarchical import adaptive_steps

REPS = 2000
N, n, n0, tau, alpha = 20, 100, 10, 0.75, 0.1


def bound(level):
    return level + 3 * np.sqrt(level * (1 - level) / REPS)


def scenario(name):
    """(p_fine, p_coarse), each of shape (N,)."""
    fine, coarse = np.full(N, tau), np.full(N, tau)
    if name == "all-boundary":  # every step of every chain a true null at the boundary
        pass
    elif name == "coarse-false":  # the adversarial input: every coarse null false
        coarse[:] = 1.0
    elif name == "recycled":  # half the chains certified at the fine step (Holm recycles
        fine[: N // 2] = coarse[: N // 2] = 1.0  # their alpha) and the rest at the
        fine[N // 2:] = 0.5  # coarse boundary, tested at alpha / (N / 2)
    elif name == "mixed":  # thirds: easy, coarse false / fine boundary, coarse boundary
        fine[:7] = coarse[:7] = 1.0
        coarse[7:14] = 1.0
        fine[14:] = 0.6
    else:
        raise AssertionError(name)
    return fine, coarse


def draw(rng, p_fine, p_coarse, trials, reps=REPS):
    fine = rng.binomial(trials, p_fine, size=(reps, N))
    rest = np.where(p_fine < 1, (p_coarse - p_fine) / np.where(p_fine < 1, 1 - p_fine, 1), 0.0)
    return np.stack([fine, fine + rng.binomial(trials - fine, rest)], axis=-1)


def errors(reject, p_fine, p_coarse):
    """Per repetition: the number of chains with a true step rejected."""
    true = np.stack([p_fine <= tau, p_coarse <= tau], axis=-1)  # (N, 2)
    return (reject & true).any(axis=-1).sum(axis=-1)


def naive_reject(counts):
    """Holm on the coarse p-values, then each fine step at its chain's critical value."""
    p = multitest.binomial_pvalues(counts, n, tau)
    order = np.argsort(p[:, 1], kind="stable")
    crit = alpha / (N - np.arange(N))  # alpha / (N - j + 1), j = 1..N
    passed = p[order, 1] <= crit
    R = N if passed.all() else int(np.argmin(passed))
    reject = np.zeros((N, 2), dtype=bool)
    reject[order[:R], 1] = True
    reject[order[:R], 0] = p[order[:R], 0] <= crit[:R]
    return reject


METHODS = [("holm", 1), ("bonferroni", 1), ("lehmann_romano", 3),
           ("generalized_bonferroni", 3)]
CASES = [(name, *m) for name in ("coarse-false", "mixed") for m in METHODS] + [
    (name, *m) for name in ("all-boundary", "recycled") for m in METHODS[:2]]


@pytest.mark.parametrize(("name", "method", "k"), CASES)
def test_nested_rule_controls_the_kfwer(name, method, k):
    rng = np.random.default_rng([len(name), len(method), k])
    p_fine, p_coarse = scenario(name)
    counts = draw(rng, p_fine, p_coarse, n)
    wrong = np.array([errors(multitest.certify_nested_counts(c, n, tau, alpha, method=method,
                                                             k=k).reject, p_fine, p_coarse)
                      for c in counts])
    assert np.mean(wrong >= k) <= bound(alpha)


@pytest.mark.parametrize("name", ["all-boundary", "coarse-false", "mixed"])
@pytest.mark.parametrize("agree", [1.0, 0.6])
def test_adaptive_rule_controls_the_fwer(name, agree):
    rng = np.random.default_rng([len(name), int(10 * agree)])
    p_fine, p_coarse = scenario(name)
    counts0, counts = draw(rng, p_fine, p_coarse, n0), draw(rng, p_fine, p_coarse, n)
    wrong = []
    for c0, c in zip(counts0, counts, strict=True):
        step, _ = adaptive_steps(c, c0, n, n0, tau, alpha, method="holm", k=1, agree=agree)
        reject = (np.arange(2) >= step[:, None]) & (step[:, None] >= 0)
        wrong.append(errors(reject, p_fine, p_coarse))
    assert np.mean(np.array(wrong) >= 1) <= bound(alpha)


def test_the_naive_step_down_fails_so_the_check_can_fail():
    # Holm on the coarse step, then the fine step at the same critical value: with
    # every coarse null false and every fine one at the boundary, chain j's fine
    # step is tested at alpha / (N - j + 1) and the FWER approaches alpha * H_N.
    rng = np.random.default_rng(5)
    p_fine, p_coarse = scenario("coarse-false")
    counts = draw(rng, p_fine, p_coarse, n)
    naive = np.mean([errors(naive_reject(c), p_fine, p_coarse) >= 1 for c in counts])
    nested = np.mean([errors(multitest.certify_nested_counts(c, n, tau, alpha).reject,
                             p_fine, p_coarse) >= 1 for c in counts])
    assert naive > bound(alpha) > nested
    assert naive > 1.5 * alpha  # far above: alpha * sum_j 1/j is ~3.6 alpha for N = 20
