"""Which sample sizes can certify at all: :func:`min_certifying_samples`.

**Conservative test.** A component observed ``n`` times out of ``n`` samples has
the smallest p-value a count can have, ``P(Bin(n, tau) >= n) = tau**n``. Every
procedure of :data:`~multitest.COUNT_METHODS` is monotone (smaller p-values never
reject less), so the most favourable outcome at ``(N, n)`` is all ``N`` counts
equal to ``n``; if that certifies nothing, no outcome does. With ``N`` equal
p-values a step-down or single-step procedure rejects iff ``p <= c_1`` and a
step-up one iff ``p <= c_N`` (its critical values are nondecreasing); Hommel's
rejects iff ``p <= alpha``. The answer is therefore the smallest ``n`` whose
p-value of the count ``n`` is at most that critical value, computed with the
same doubles as :func:`~multitest.certify_counts`.

**Randomized test.** The p-value of the count ``n`` is ``U * P(X = n)`` with
``U ~ U(0, 1)``, so *every* ``n >= 1`` certifies with some probability; the
question becomes how likely. A p-value at most ``c_1`` is rejected by every
procedure whatever the other p-values (step-down: every smaller p-value passes
its critical value too; step-up: the stopping rank is at least 1), and when every
other p-value exceeds ``alpha`` nothing else is rejected. So a component whose
every sample agrees is certified with probability at least
``P(U * P(X = n) <= c_1)`` whatever the other components' counts, with equality
when the others' p-values exceed ``alpha``. That probability is computed exactly
on the grid ``k 2**-53`` of numpy's ``Generator.random`` draws, with the doubles
:func:`~multitest.certify_counts` compares.
"""

from __future__ import annotations

import math

from multitest import _kernels as K
from multitest._binomial import pvalue_of_count
from multitest._counts import COUNT_METHODS
from multitest._fdr import harmonic_number
from multitest._step import critical_values
from multitest._validation import (
    MAX_N,
    check_alpha,
    check_bool,
    check_int,
    check_k,
    check_probability,
)

__all__ = ["min_certifying_samples"]

#: Up to this N the harmonic number of Benjamini-Yekutieli is summed exactly as the
#: procedure sums it; above it (an array of N doubles would be needed) it comes from
#: its asymptotic expansion, accurate to the last few bits.
_HARMONIC_SUM_MAX = 2**24
_EULER_GAMMA = 0.57721566490153286061
#: numpy's ``Generator.random`` draws ``k * 2**-53`` for k uniform in [0, 2**53).
_U_STEPS = 2**53


def _harmonic(N: int) -> float:
    if N <= _HARMONIC_SUM_MAX:
        return harmonic_number(N)
    inv = 1.0 / N
    return math.log(N) + _EULER_GAMMA + inv / 2 - inv * inv / 12


def _critical(N: int, alpha: float, correction: str, k: int, rank: str) -> float:
    """``c_1`` (``rank='first'``) or the largest p-value at which N equal p-values
    are all rejected (``rank='tied'``), for `correction`."""
    spec = COUNT_METHODS[correction]
    if spec.code is None:  # hommel: equal p-values all rejected iff p <= alpha; c_1 = alpha/N
        return alpha if rank == "tied" else alpha / N
    extra = _harmonic(N) if spec.code == K.BY else 0.0
    crit = critical_values(spec.code, N, alpha, k, extra)
    return crit(N) if rank == "tied" and spec.step_up else crit(1)


def _certify_probability(atom: float, c1: float) -> float:
    """``P(U * atom <= c1)``, U uniform on ``{k 2**-53 : 0 <= k < 2**53}``, exactly
    (the product rounded as numpy rounds it)."""
    if atom <= c1:  # U < 1, and rounding is monotone: U * atom <= atom
        return 1.0
    step = 1.0 / _U_STEPS
    k = min(_U_STEPS - 1, int(c1 / atom * _U_STEPS))  # within a step or two of the answer
    while k + 1 < _U_STEPS and (k + 1) * step * atom <= c1:
        k += 1
    while k >= 0 and k * step * atom > c1:
        k -= 1
    return (k + 1) * step


def min_certifying_samples(N: int, tau: float, alpha: float, correction: str = "holm",
                           k: int = 1, *, randomized: bool = False,
                           probability: float | None = None, n_max: int = 10**9) -> int:
    """Smallest number of samples ``n`` at which SEGCERTIFY can certify a component.

    With the conservative test (the default): below this ``n`` no outcome of the
    sampling certifies a single one of ``N`` components, whatever the model: even
    a component whose every sample agrees with its guess has p-value ``tau**n``
    above what `correction` needs. With ``randomized=True`` every ``n`` can
    certify by luck of the ``U`` draws, and the answer is the smallest ``n`` at
    which a component whose every sample agrees is certified with at least the
    given `probability`.

    Parameters
    ----------
    N : int
        Number of components tested together (pixels or points of one input), in
        [1, 2**63 - 1].
    tau : float
        Threshold, in (0, 1) (SEGCERTIFY uses [1/2, 1)).
    alpha : float
        Error level of the procedure, in (0, 1).
    correction : str, default 'holm'
        A method of :data:`~multitest.COUNT_METHODS`.
    k : int, default 1
        ``k`` of the k-FWER methods (``'lehmann_romano'``,
        ``'generalized_bonferroni'``); 1 for the others.
    randomized : bool, default False
        ``True``: for the exact randomized test (``certify_counts(...,
        randomized=True)``); then `probability` is required.
    probability : float, optional
        With ``randomized=True``: the probability, in (0, 1], with which a
        component whose ``n`` samples all agree must be certified, whatever the
        other components' counts (over its ``U`` draw). Not allowed otherwise.
    n_max : int, default 10**9
        Largest ``n`` considered, in [1, 2**53].

    Returns
    -------
    int
        Conservative test: the smallest ``n >= 1`` such that ``certify_counts``
        with all ``N`` counts equal to ``n`` certifies something. Exact: for every
        smaller ``n`` no counts certify anything, and every larger ``n`` can
        certify. Randomized test: the smallest ``n`` with
        ``P(U * P(Bin(n, tau) = n) <= c_1) >= probability``, ``c_1`` the
        correction's first critical value (``alpha / N`` for Holm), evaluated
        exactly on the ``2**-53`` grid of the draws; see Notes.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range, an unknown
        `correction`, ``k != 1`` for a method without ``k``, `probability`
        missing with ``randomized=True`` or given without it, or when no
        ``n <= n_max`` suffices.

    Notes
    -----
    **Randomized test.** Component ``i``'s p-value for the count ``n`` is
    ``U_i * P(X = n)``, ``U_i ~ U(0, 1)``. Every procedure rejects a p-value at
    most its first critical value ``c_1`` whatever the others, so the component
    is certified with probability at least ``P(U_i * P(X = n) <= c_1)``, with
    equality when the other p-values exceed ``alpha``; with more favourable
    others (say every component unanimous) the fraction certified can be
    higher. As `probability` falls to 0 the answer falls to 1. For the step-down
    and single-step procedures, ``probability=1`` gives the conservative answer
    (certification certain: ``tau**n <= c_1``); for the step-up ones and Hommel's,
    whose conservative answer assumes all ``N`` components tied at ``tau**n``, it
    is larger. For ``N`` above 2**24 Benjamini-Yekutieli's harmonic number comes
    from its asymptotic series, within a few ulps of the sum the procedure uses.

    Examples
    --------
    >>> from multitest import min_certifying_samples
    >>> min_certifying_samples(64 * 128, tau=0.95, alpha=0.001)
    311
    >>> min_certifying_samples(64 * 128, tau=0.75, alpha=0.001)
    56

    The randomized test at N = 32768, tau = 0.9, alpha = 0.001 with Holm: a
    component whose every sample agrees is certified for sure from n = 165, with
    probability 1/2 from n = 158 and 0.1 % from n = 99, whatever the others:

    >>> min_certifying_samples(2**15, 0.9, 0.001, randomized=True, probability=1.0)
    165
    >>> min_certifying_samples(2**15, 0.9, 0.001, randomized=True, probability=0.5)
    158
    >>> min_certifying_samples(2**15, 0.9, 0.001, randomized=True, probability=0.001)
    99
    """
    N = check_int(N, "N")
    tau = check_probability(tau, "tau")
    alpha = check_alpha(alpha)
    k = check_k(k)
    randomized = check_bool(randomized, "randomized")
    n_max = check_int(n_max, "n_max", high=MAX_N)
    if not isinstance(correction, str) or correction not in COUNT_METHODS:
        choices = ", ".join(repr(m) for m in COUNT_METHODS)
        raise ValueError(f"`correction` must be one of {choices}; got {correction!r}.")
    if k != 1 and not COUNT_METHODS[correction].takes_k:
        raise ValueError(f"`k` must be 1 for correction {correction!r}; got {k}.")
    if randomized:
        if probability is None:
            raise ValueError("`probability` is required with randomized=True: every n "
                             "certifies with some probability; pass one in (0, 1].")
        probability = check_probability(probability, "probability", closed_high=True)
        c1 = _critical(N, alpha, correction, k, "first")
        from scipy import stats  # as multitest._randomized computes P(X = n)

        def ok(n: int) -> bool:
            atom = float(stats.binom.pmf(n, n, tau))
            return _certify_probability(atom, c1) >= probability
        what = f"with probability {probability}"
    else:
        if probability is not None:
            raise ValueError("`probability` applies to randomized=True only; got "
                             f"{probability!r}.")
        level = _critical(N, alpha, correction, k, "tied")

        def ok(n: int) -> bool:
            return pvalue_of_count(n, tau, n) <= level
        what = "at all"

    if not ok(n_max):
        raise ValueError(f"no n <= `n_max` = {n_max} can certify {what} at tau={tau}, "
                         f"alpha={alpha}, N={N} with {correction!r}.")
    lo, hi = 1, n_max  # ok() is monotone in n (tau**n falls): bisection, ~30 steps
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
