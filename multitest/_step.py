"""The shared pipeline of the step procedures: validate, decide in a few passes, adjust lazily.

A step procedure compares the j-th smallest p-value with a critical value c_j
that is nondecreasing in j. With C(j) = #{i : p_i <= c_j}, a step-down procedure
rejects R = (first j with C(j) < j) - 1 hypotheses, a step-up procedure the largest
j with C(j) >= j, and in both cases exactly the p-values with p_i <= c_R (ties never
straddle the cut). Nothing here sorts:

* C(j) at one rank is one vectorised pass over the data (a comparison and a count).
* R is a fixed point of j -> C(j + 1) (step-down) or j -> C(j) (step-up), and
  iterating from C(1) (or C(N)) reaches it from the safe side: every jump of the
  step-down iteration skips only ranks that pass, every jump of the step-up one
  only ranks that fail. On typical inputs it settles in two or three passes, each
  of which also writes the decisions at the current bound, so the pass that
  confirms R has already decided.
* Where it settles slowly, an exact histogram of ranks over a window next to the
  bound finishes it (:func:`multitest._kernels.window_search`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from multitest import _adjust_kernels as AK
from multitest import _kernels as K
from multitest._result import MultitestResult
from multitest._sort import PACKED_MIN_N, sorted_order
from multitest._validation import as_pvalues, check_alpha, raise_invalid_pvalues

__all__ = [
    "MONOTONE_CODES",
    "SMALL_N",
    "critical_values",
    "decides_in_one_step",
    "iterate_rank",
    "run_step_procedure",
]

#: Passes of the fixed-point iteration (after the first count) before the window search.
PLAIN_PASSES = 3
#: Smallest window of ranks for the window search.
MIN_WINDOW = 4096
#: Largest N decided by one fused kernel call (:func:`_run_small`: the iteration runs
#: inside the kernel, which leaves a sort to a second kernel where it settles slowly)
#: rather than by the passes. ``benchmarks/bench_multitest.py --small-only`` times
#: both paths against each other: the fused call was faster up to 4096 on typical
#: inputs; 1024 bounds the sort's cost where the iteration does not settle.
SMALL_N = 1024
#: Most hypotheses whose adjusted p-values are all sorted; above, only those rejected
#: below level 1 are (:func:`_adjuster`). Not tuned: for small families the extra
#: decision pass can cost more than the smaller sort saves.
PARTIAL_MIN_N = 4096
#: Largest share of the hypotheses below 1 for which only those are sorted: the passes
#: that find them, and gathering them, cost about half of sorting them all (measured
#: on Holm at N = 10^5: 90% of the p-values strong signals, the partial route took as
#: long as the full sort).
PARTIAL_MAX_SHARE = 0.5
#: Procedures whose critical value is a product or quotient of the level and constants,
#: so nondecreasing in the level by the monotonicity of IEEE arithmetic: for them
#: ``reject == (adjusted <= alpha)`` follows from the adjusted p-value being the
#: smallest double level that rejects (a hypothesis rejected at ``alpha`` is rejected
#: at every higher level), so once the adjusted p-values are known the decisions are
#: read off them instead of made by the passes. Šidák's critical values go through
#: ``log1p`` and ``expm1``, whose monotonicity is the C library's: their decisions are
#: always made by the passes.
MONOTONE_CODES = frozenset({K.BONFERRONI, K.STEPDOWN_K, K.BH, K.BY})
#: The largest double below 1: rejected at it <=> adjusted p-value below 1.
_BELOW_ONE = float(np.nextafter(1.0, 0.0))
#: Passes of the iteration inside the small-input kernel before it gives up. A pass
#: over <= SMALL_N p-values costs well under a microsecond, a sort tens: measured
#: on Benjamini-Hochberg at N = 1000 (uniform^4), 4 passes fell back to the sort
#: (22 us a call), 8 or more did not (4.8 us).
SMALL_PASSES = 32

_NO_BOOL = np.empty(0, dtype=bool)
_NO_FLOAT = np.empty(0)
_NO_INT = np.empty(0, dtype=np.int64)


def critical_values(code: int, N: int, alpha: float, k: int,
                    extra: float) -> Callable[[int], float]:
    """``j -> c_j`` for ranks 1..N, and -1 (below every p-value) for rank 0."""

    def crit(j: int) -> float:
        return K.crit(code, j, N, alpha, k, extra) if j >= 1 else -1.0

    return crit


def decides_in_one_step(code: int, k: int, N: int) -> bool:
    """Whether every critical value is c_1: the single-step procedures, and the
    k-FWER step-down with k >= N (all its critical values are k alpha / N)."""
    return code in (K.BONFERRONI, K.SIDAK) or (code == K.STEPDOWN_K and k >= N)


def iterate_rank(first: int, sweep: Callable[[int, int], int], N: int,
                 step_up: bool) -> tuple[int | None, int, int, int | None]:
    """Fixed-point iteration for the number R of rejections of a step procedure.

    Parameters
    ----------
    first : int
        C(1) for a step-down procedure, C(N) for a step-up one.
    sweep : callable
        ``sweep(j, nxt)`` makes one pass over the data: it writes the decisions at
        rank ``j`` (``p <= c_j``) and returns ``C(nxt)``.
    N : int
        Number of hypotheses.
    step_up : bool
        Step-up rather than step-down.

    Returns
    -------
    (R, m, delta, decided)
        R if the iteration settled within :data:`PLAIN_PASSES` calls of `sweep`
        (else None), the last bound m on R (step-down:
        every rank <= m passes; step-up: every rank > m fails), the size of the
        last step, and the rank whose decisions `sweep` wrote last (None if no
        call was made).
    """
    m, decided = first, None
    delta = N - first if step_up else first
    for _ in range(PLAIN_PASSES):
        if m == 0 or m == N:
            return m, m, delta, decided
        count = sweep(m, m if step_up else m + 1)
        decided = m
        if count == m:
            return m, m, delta, decided
        delta, m = abs(count - m), count
    if m == 0 or m == N:
        return m, m, delta, decided
    return None, m, delta, decided


def run_step_procedure(pvals, alpha, *, code: int, method: str, k: int = 1,
                       extra: float = 0.0, step_up: bool = False,
                       single_step: bool = False) -> MultitestResult:
    """Validate, attach the decisions and the adjusted p-values.

    Single-step procedures and small inputs decide now (in the validating pass, or in
    one kernel call); step procedures on large inputs decide on first access of
    ``reject``, by the passes, or, if the adjusted p-values were computed first and the
    critical values are monotone in the level (:data:`MONOTONE_CODES`), by comparing
    those with `alpha`. Invalid p-values are refused now, either way.
    """
    alpha = check_alpha(alpha)
    flat, shape = as_pvalues(pvals, check_values=False)
    N = flat.size
    if N == 0:
        empty = np.zeros(shape, dtype=bool)
        return MultitestResult(empty, alpha, method, k, lambda: np.zeros(shape))
    one_step = single_step or decides_in_one_step(code, k, N)
    if N <= SMALL_N:
        return _run_small(flat, shape, alpha, code, method, k, extra, step_up, single_step,
                          one_step)
    # the adjusted p-values (and a step procedure's decisions) are computed later: own
    # the data, copied in the first pass
    own = np.empty(N) if np.may_share_memory(flat, np.asarray(pvals)) else _NO_FLOAT
    crit = critical_values(code, N, alpha, k, extra)
    data = flat if own.size == 0 else own
    adjust = _adjuster(data, shape, code, k, extra, step_up, single_step)
    if one_step:
        reject = np.empty(N, dtype=bool)
        _, invalid = K.sweep(flat, crit(1), -1.0, reject, own)
        if invalid:
            raise_invalid_pvalues(flat)
        return MultitestResult(reject.reshape(shape), alpha, method, k, adjust)
    first, invalid = K.sweep(flat, -1.0, crit(N if step_up else 1), _NO_BOOL, own)
    if invalid:
        raise_invalid_pvalues(flat)

    def decide(adjusted: np.ndarray | None) -> np.ndarray:
        if adjusted is not None and code in MONOTONE_CODES:
            return adjusted <= alpha  # the same decisions, exactly (see MONOTONE_CODES)
        return _decide(data, first, crit, code, alpha, k, extra, step_up).reshape(shape)

    return MultitestResult(decide, alpha, method, k, adjust)


def _decide(data: np.ndarray, first: int, crit: Callable[[int], float], code: int,
            alpha: float, k: int, extra: float, step_up: bool) -> np.ndarray:
    """The decisions of a step procedure in a few passes, without a sort: the
    fixed-point iteration from ``first`` (C(1), or C(N) if `step_up`), finished where
    it settles slowly by the window search."""
    N = data.shape[0]
    reject = np.empty(N, dtype=bool)

    def sweep(j: int, nxt: int) -> int:
        count, _ = K.sweep(data, crit(j), crit(nxt), reject, _NO_FLOAT)
        return count

    R, m, delta, decided = iterate_rank(first, sweep, N, step_up)
    if R is None:
        R = K.window_search(data, code, alpha, k, extra, step_up, m,
                            max(4 * delta, MIN_WINDOW))
    if decided != R:
        sweep(R, 0)
    return reject


def _adjuster(data, shape, code, k, extra, step_up, single_step) -> Callable[[], np.ndarray]:
    """The lazy adjusted p-values: a single-step procedure needs no order (and compiles
    no sort), a step procedure one stable sort of the p-values, or for a step-down
    procedure of those whose adjusted p-value is below 1.

    Those are the hypotheses rejected at the double below 1 (``reject == (adjusted <=
    alpha)`` at every level), found by the passes without a sort; the others' adjusted
    p-values are 1. Above :data:`PARTIAL_MIN_N` hypotheses a step-down procedure sorts
    only the rejected ones, if they are at most :data:`PARTIAL_MAX_SHARE` of all:
    Holm's adjusted p-value ``min(1, (N - j + 1) p_(j))`` reaches 1 early unless most
    hypotheses are false, so the sort, most of the cost, often shrinks to a few per
    cent of N. A step-up procedure's adjusted p-values are
    all below 1 unless some p-values are (close to) 1, so it sorts them all without
    that extra pass.
    """

    def adjust() -> np.ndarray:
        N = data.shape[0]
        if single_step:
            if code == K.BONFERRONI:  # vectorised
                return AK.bonferroni_adjusted(data, k).reshape(shape)
            return K.single_step_adjusted(data, code, k, extra).reshape(shape)
        if N < PACKED_MIN_N:  # one kernel call: the same steps without Python's cost
            return AK.small_step_adjusted(data, code, k, extra, step_up).reshape(shape)
        if N > PARTIAL_MIN_N and not step_up:
            crit = critical_values(code, N, _BELOW_ONE, k, extra)
            # C(1) at the double below 1: a lower bound on the number below 1
            first, _ = K.sweep(data, -1.0, crit(1), _NO_BOOL, _NO_FLOAT)
            if first <= PARTIAL_MAX_SHARE * N:
                below_one = _decide(data, first, crit, code, _BELOW_ONE, k, extra, False)
                positions = np.flatnonzero(below_one)
                if positions.size <= PARTIAL_MAX_SHARE * N:
                    ps, order = sorted_order(data[positions])
                    return adjusted_from_sorted(ps, order, data, positions, np.ones(N),
                                                code, k, extra, step_up).reshape(shape)
        ps, order = sorted_order(data)
        return adjusted_from_sorted(ps, order, data, _NO_INT, np.empty(N), code, k, extra,
                                    step_up).reshape(shape)

    return adjust


def adjusted_from_sorted(ps: np.ndarray, order: np.ndarray, data: np.ndarray,
                         positions: np.ndarray, out: np.ndarray, code: int, k: int,
                         extra: float, step_up: bool) -> np.ndarray:
    """Adjusted p-values of the sorted ``ps = data[positions][order]`` (``data[order]``
    if `positions` is empty), the first R of ``N = out.shape[0]`` hypotheses (the
    others' are 1, already in `out`), written to ``out[positions[order]]``
    (``out[order]``); returns `out`. ``ps`` is overwritten.

    Two loops: every hypothesis's own level (vectorised, one kernel per critical
    value, written over ``ps``), then the running extreme, scattered back. Šidák's
    critical values cost two library calls each: there the own level is computed only
    where it moves the running extreme (:func:`multitest._kernels.step_adjusted_sorted`).
    """
    own = AK.OWN_LEVELS.get(code)
    N = out.shape[0]
    if own is None:
        levels = K.step_adjusted_sorted(ps, code, k, extra, step_up, N, ps)
    else:
        levels = own(ps, N, k, extra, ps)
    return AK.scatter_running_extreme(levels, data, order, positions, out, code, k, extra,
                                      step_up)


def _run_small(flat, shape, alpha, code, method, k, extra, step_up, single_step, one_step):
    """The small-input path: decisions in one kernel call, adjusted p-values in another.

    Exactly the results of the pass-based path (same critical values, same
    comparisons); only the fixed cost per call differs. Bonferroni's adjusted p-values
    cost less than a second call: they come with the decisions.
    """
    if code == K.BONFERRONI and single_step:
        reject, adjusted, valid = AK.small_bonferroni(flat, alpha, k)
        if not valid:
            raise_invalid_pvalues(flat)
        adjusted = adjusted.reshape(shape)
        return MultitestResult(reject.reshape(shape), alpha, method, k, lambda: adjusted)
    reject, data, decided = K.small_decide(flat, code, alpha, k, extra, step_up, one_step,
                                           SMALL_PASSES)
    if not decided:
        if not np.all((data >= 0.0) & (data <= 1.0)):  # False for NaN too
            raise_invalid_pvalues(flat)
        K.small_sorted_decide(data, code, alpha, k, extra, step_up, reject)
    return MultitestResult(reject.reshape(shape), alpha, method, k,
                           _adjuster(data, shape, code, k, extra, step_up, single_step))
