"""Which sample sizes can certify at all: :func:`min_certifying_samples`.

A component observed ``n`` times out of ``n`` samples has the smallest p-value a
count can have, ``P(Bin(n, tau) >= n) = tau**n``. Every procedure of
:data:`~multitest.COUNT_METHODS` is monotone (smaller p-values never reject less),
so the most favourable outcome at ``(N, n)`` is all ``N`` counts equal to ``n``;
if that certifies nothing, no outcome does. With ``N`` equal p-values a
step-down or single-step procedure rejects iff ``p <= c_1`` and a step-up one iff
``p <= c_N`` (its critical values are nondecreasing); Hommel's rejects iff
``p <= alpha``. The answer is therefore the smallest ``n`` whose p-value of the
count ``n`` is at most that critical value, computed with the same doubles as
:func:`~multitest.certify_counts`.
"""

from __future__ import annotations

from multitest import _kernels as K
from multitest._binomial import pvalue_of_count
from multitest._counts import COUNT_METHODS
from multitest._step import critical_values
from multitest._validation import check_alpha, check_k, check_probability

__all__ = ["min_certifying_samples"]


def _int_at_least(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    if value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    return int(value)


def _best_level(N: int, alpha: float, correction: str, k: int) -> float:
    """The largest p-value at which N equal p-values are rejected by `correction`."""
    spec = COUNT_METHODS[correction]
    if spec.code is None:  # hommel: equal p-values are all rejected iff p <= alpha
        return alpha
    extra = float(sum(1.0 / i for i in range(1, N + 1))) if spec.code == K.BY else 0.0
    crit = critical_values(spec.code, N, alpha, k, extra)
    return crit(N) if spec.step_up else crit(1)


def min_certifying_samples(N: int, tau: float, alpha: float, correction: str = "holm",
                           k: int = 1, *, n_max: int = 10**9) -> int:
    """Smallest number of samples ``n`` at which SEGCERTIFY can certify any component.

    Below this ``n`` no outcome of the sampling certifies a single one of ``N``
    components, whatever the model: even a component whose every sample agrees
    with its guess has p-value ``tau**n`` above what `correction` needs.

    Parameters
    ----------
    N : int
        Number of components tested together (pixels or points of one input),
        ``N >= 1``.
    tau : float
        Threshold, in (0, 1) (SEGCERTIFY uses [1/2, 1)).
    alpha : float
        Error level of the procedure, in (0, 1).
    correction : str, default 'holm'
        A method of :data:`~multitest.COUNT_METHODS`.
    k : int, default 1
        ``k`` of the k-FWER methods (``'lehmann_romano'``,
        ``'generalized_bonferroni'``); 1 for the others.
    n_max : int, default 10**9
        Largest ``n`` considered.

    Returns
    -------
    int
        The smallest ``n >= 1`` such that ``certify_counts`` with all ``N`` counts
        equal to ``n`` certifies something. Exact: for every smaller ``n`` no
        counts certify anything, and every larger ``n`` can certify.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range, an unknown
        `correction`, ``k != 1`` for a method without ``k``, or when no
        ``n <= n_max`` suffices.

    Examples
    --------
    >>> from multitest import min_certifying_samples
    >>> min_certifying_samples(64 * 128, tau=0.95, alpha=0.001)
    311
    >>> min_certifying_samples(64 * 128, tau=0.75, alpha=0.001)
    56
    """
    N = _int_at_least(N, "N", 1)
    tau = check_probability(tau, "tau")
    alpha = check_alpha(alpha)
    k = check_k(k)
    n_max = _int_at_least(n_max, "n_max", 1)
    if correction not in COUNT_METHODS:
        choices = ", ".join(repr(m) for m in COUNT_METHODS)
        raise ValueError(f"`correction` must be one of {choices}; got {correction!r}.")
    if k != 1 and not COUNT_METHODS[correction].takes_k:
        raise ValueError(f"`k` must be 1 for correction {correction!r}; got {k}.")
    level = _best_level(N, alpha, correction, k)

    def ok(n: int) -> bool:
        return pvalue_of_count(n, tau, n) <= level

    if not ok(n_max):
        raise ValueError(f"no n <= `n_max` = {n_max} can certify at tau={tau}, alpha={alpha}, "
                         f"N={N} with {correction!r}.")
    lo, hi = 1, n_max  # ok() is monotone in n (tau**n falls): bisection, ~30 steps
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
