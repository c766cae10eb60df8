"""Certification of nested families: one chain of nested hypotheses per component.

Component ``i`` has ``D`` hypotheses ``H_{i,0}, ..., H_{i,D-1}`` about the events
``A_{i,0} ⊆ A_{i,1} ⊆ ... ⊆ A_{i,D-1}`` (a fine class and the coarser classes that
contain it): ``H_{i,d}: P(A_{i,d}) <= tau``. The counts of the events in the same
``n`` samples are nondecreasing along the chain, so their p-values are nonincreasing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multitest._binomial import _as_counts, _as_n, check_count_range
from multitest._counts import COUNT_METHODS, CountCertificate, _CountLevels, certify_counts
from multitest._result import read_only
from multitest._step import critical_values
from multitest._validation import check_alpha, check_k, check_probability

__all__ = ["NESTED_METHODS", "NestedCountCertificate", "certify_nested_counts"]

#: Procedures of :func:`certify_nested_counts`: the FWER and k-FWER procedures that
#: hold under arbitrary dependence (docs/hierarchical.md proves them for nested families).
NESTED_METHODS: tuple[str, ...] = (
    "bonferroni", "holm", "generalized_bonferroni", "lehmann_romano",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class NestedCountCertificate:
    """Result of :func:`certify_nested_counts`.

    Attributes
    ----------
    reject : numpy.ndarray of bool
        Shape of the counts, (..., D): ``reject[..., d]`` where ``H_{i,d}`` is
        rejected. Nested: a rejected step has every coarser step rejected too.
    finest : numpy.ndarray of int64
        Shape (...): index of the finest rejected step of every component, -1 where
        none is.
    threshold : int
        Count threshold of the test: ``reject == (counts >= threshold)`` at every
        step (``n + 1`` when no count can reach the critical value).
    critical : float
        The critical value of the finest-level procedure at the rank after its last
        rejection, ``R + 1`` (rank ``N`` when all ``N`` finest steps are rejected):
        the level every step is tested at, ``alpha / (N - R)`` for Holm with ``R``
        finest-level rejections and ``alpha / N`` for Bonferroni.
    fine : multitest.CountCertificate
        The procedure on the finest step alone (``counts[..., 0]``): exactly what
        :func:`certify_counts` returns for these counts; ``reject[..., 0]`` equals
        ``fine.reject``.
    """

    reject: np.ndarray
    finest: np.ndarray
    threshold: int
    critical: float
    fine: CountCertificate

    def __post_init__(self) -> None:
        object.__setattr__(self, "reject", read_only(self.reject))
        object.__setattr__(self, "finest", read_only(self.finest))

    def __repr__(self) -> str:
        counts = np.bincount(self.finest.reshape(-1) + 1, minlength=self.reject.shape[-1] + 1)
        return (f"NestedCountCertificate(method={self.fine.method!r}, shape="
                f"{self.reject.shape}, threshold={self.threshold}, "
                f"abstain={int(counts[0])}, finest_per_step={counts[1:].tolist()})")


def certify_nested_counts(counts, n: int, tau: float, alpha: float, *, method: str = "holm",
                          k: int = 1) -> NestedCountCertificate:
    """Certify nested families from their counts: the finest rejected step of each chain.

    ``counts[..., d]`` counts, in the same ``n`` samples, the event of step ``d`` of a
    component's chain; step 0 is the finest (the guessed class) and the events grow
    with ``d`` (the coarser classes containing it), so every row is nondecreasing.
    The procedure runs on the finest step exactly as :func:`certify_counts` does and
    then tests every coarser step at the procedure's final critical value: a step is
    rejected iff ``P(Bin(n, tau) >= count) <= critical``.

    Parameters
    ----------
    counts : array_like of int
        Counts in [0, n], shape (..., D) with ``D >= 1``, nondecreasing along the
        last axis. ``D = 1`` is the flat certificate.
    n : int
        Number of samples, ``n >= 1``.
    tau : float
        Null threshold, in (0, 1).
    alpha : float
        Level, in (0, 1).
    method : {'holm', 'bonferroni', 'lehmann_romano', 'generalized_bonferroni'}
        The procedure (:data:`NESTED_METHODS`), default ``'holm'``.
    k : int, default 1
        ``k`` of the k-FWER procedures; 1 for the others.

    Returns
    -------
    NestedCountCertificate
        ``reject`` (..., D), ``finest`` (...), ``threshold``, ``critical`` and the
        finest-level certificate ``fine``.

    Raises
    ------
    TypeError
        If `counts` is not integer-valued or `n`, `k` are not integers.
    ValueError
        If `counts` has no last axis, a count is outside [0, n], a row decreases,
        `tau` or `alpha` is outside (0, 1), `method` is not one of
        :data:`NESTED_METHODS`, or ``k != 1`` for a method without ``k``.

    Notes
    -----
    **Guarantee.** Let ``T`` be the components with at least one true null and
    ``d*_i`` the coarsest true step of ``i in T`` (the true nulls of a chain are
    its steps ``0..d*_i``, as the events are nested). A component makes an error
    iff one of its true steps is rejected iff ``q_{i,d*_i} <= c`` for the critical
    value ``c`` it was tested at, because the p-values fall along the chain. With
    ``m = |T|``: (a) Holm, Bonferroni: the finest-level step-down can reject a
    first true finest null only at a rank ``<= N - m + 1`` (all earlier ones false),
    and while no true finest null is rejected the final rank is ``<= N - m``; either
    way the error needs ``q_{i,d*_i} <= alpha / m`` for some ``i in T``, which has
    probability ``<= alpha`` by the union bound. (b) Lehmann-Romano, generalized
    Bonferroni: the same argument with ``k`` errors and Markov's inequality bounds
    ``P(>= k components in error) <= alpha``. No assumption on the dependence
    between components is needed. Full proof: docs/hierarchical.md.

    A naive alternative, the step-down on the *coarsest* p-values followed by the
    finer steps at each component's critical value, is **not** valid: when every
    coarse null is false and every fine one is at the boundary, its FWER approaches
    ``alpha * sum_j 1 / j``.

    Cost: that of :func:`certify_counts` on ``counts[..., 0]`` plus one pass over
    the other steps.

    Examples
    --------
    >>> import numpy as np, multitest
    >>> counts = np.array([[100, 100], [80, 99], [60, 70]])   # (fine, coarse) counts
    >>> cert = multitest.certify_nested_counts(counts, n=100, tau=0.75, alpha=0.001)
    >>> cert.reject
    array([[ True,  True],
           [False,  True],
           [False, False]])
    >>> cert.finest
    array([ 0,  1, -1])
    >>> bool(np.array_equal(cert.reject[:, 0],
    ...                     multitest.certify_counts(counts[:, 0], 100, 0.75, 0.001).reject))
    True
    """
    if method not in NESTED_METHODS:
        choices = ", ".join(repr(m) for m in NESTED_METHODS)
        raise ValueError(f"`method` must be one of {choices}; got {method!r}.")
    n = _as_n(n)
    if not isinstance(n, int):
        raise TypeError("`n` must be a scalar integer for certify_nested_counts.")
    c = _as_counts(counts, n)
    if c.ndim < 1 or c.shape[-1] < 1:
        raise ValueError(f"`counts` must have shape (..., D) with D >= 1 steps per chain; "
                         f"got shape {c.shape}.")
    tau = check_probability(tau, "tau")
    alpha = check_alpha(alpha)
    k = check_k(k)
    spec = COUNT_METHODS[method]
    if k != 1 and not spec.takes_k:
        raise ValueError(f"`k` must be 1 for method {method!r}; got {k}.")
    c = c.astype(np.int64, copy=False)
    if c.size:
        check_count_range(int(c.min()), int(c.max()), n)
        falls = np.diff(c, axis=-1) < 0
        if falls.any():
            where = np.argwhere(falls)[0]
            row, d = tuple(int(v) for v in where[:-1]), int(where[-1])
            raise ValueError(
                f"`counts` must be nondecreasing along the last axis (the events of a "
                f"chain are nested); got counts[{', '.join(map(str, (*row, d)))}] = "
                f"{c[(*row, d)]} > counts[{', '.join(map(str, (*row, d + 1)))}] = "
                f"{c[(*row, d + 1)]}.")
    fine = certify_counts(c[..., 0], n, tau, alpha, method=method, k=k)
    N = fine.reject.size
    if N == 0:
        critical, threshold = 0.0, n + 1
    else:  # the final critical value of the step-down: the one at rank R + 1 (R < N)
        critical = float(critical_values(spec.code, N, alpha, k, 0.0)(
            min(fine.num_rejected + 1, N)))
        threshold = _CountLevels(n, tau, critical, critical).at_least(critical)
    reject = c >= threshold
    reject[..., 0] = fine.reject  # the same decisions (see Notes); the flat ones, bit for bit
    finest = np.where(reject.any(axis=-1), reject.argmax(axis=-1), -1).astype(np.int64)
    return NestedCountCertificate(reject, finest, int(threshold), critical, fine)
