"""numba kernel of the two-stage FDR procedures (no validation here: see ``_fdr_twostage.py``)."""

from __future__ import annotations

import numpy as np
from numba import njit

from multitest._sort_kernels import sorted_order


@njit(cache=True, error_model="numpy")
def bh_levels_sorted(ps):
    """Levels and adjusted p-values of the linear step-up (BH) procedure, in O(N).

    ``ps`` is sorted ascending. Returns ``(levels, adjusted)``:

    * ``levels[k-1]`` is the smallest level ``a >= 0`` at which BH, comparing
      ``p_(l) <= (l / N) * a`` in floating point exactly as statsmodels'
      ``fdrcorrection`` does, rejects the hypothesis of rank ``k``. It is the suffix
      minimum over ``l >= k`` of the per-rank thresholds, hence nondecreasing, and BH
      at level ``a`` rejects exactly the ``searchsorted(levels, a, 'right')``
      smallest p-values, for any ``a`` (also ``a > 1`` or ``inf``, as the later
      stages need).
    * ``adjusted[k-1]`` is statsmodels' BH-adjusted p-value, the cumulative minimum
      from the right of ``p_(l) / (l / N)``.
    """
    N = ps.shape[0]
    levels = np.empty(N, dtype=np.float64)
    adjusted = np.empty(N, dtype=np.float64)
    run_level = np.inf
    run_adj = np.inf
    for idx in range(N - 1, -1, -1):
        p = ps[idx]
        f = (idx + 1) / N
        # smallest double a with p <= f * a (f * a is nondecreasing in a)
        if p <= 0.0:
            a = 0.0
        else:
            a = p / f
            while f * a < p:
                a = np.nextafter(a, np.inf)
            while True:
                b = np.nextafter(a, 0.0)
                if b >= 0.0 and f * b >= p:
                    a = b
                else:
                    break
        if a < run_level:
            run_level = a
        levels[idx] = run_level
        q = p / f
        if q < run_adj:
            run_adj = q
        adjusted[idx] = run_adj
    return levels, adjusted


@njit(cache=True, error_model="numpy")
def two_stage_small(p, alpha, maxiter, bky):
    """``(reject, adjusted)`` of the (iterated) two-stage procedure in one call.

    The same steps, in the same floating-point expressions, as
    :func:`multitest._fdr_twostage._two_stage` (which calls this for small inputs):
    one sort, :func:`bh_levels_sorted`, the stages read off the levels by binary
    search, the rescaled BH-adjusted p-values and the bit-for-bit agreement fix-ups.
    Tied p-values share their level and adjusted value, so the order of ties in the
    sort does not matter. ``maxiter < 0``: iterate to convergence (up to N stages).
    """
    N = p.shape[0]
    if maxiter < 0:
        maxiter = N
    ps, order = sorted_order(p)
    levels, bh_adjusted = bh_levels_sorted(ps)
    fact = 1.0 + alpha if bky else 1.0
    alpha_prime = alpha / fact if bky else alpha
    r = np.searchsorted(levels, alpha_prime, side="right")
    scale = 1.0
    if 0 < r < N:
        r_old = r
        n0 = float(N)
        for it in range(maxiter):
            n0 = float(N - r_old)
            level = alpha_prime * N / n0 if n0 > 0.0 else np.inf
            r = np.searchsorted(levels, level, side="right")
            if it >= maxiter - 1 or r == r_old:
                break
            r_old = r
        scale = n0 / N
    reject = np.empty(N, dtype=np.bool_)
    adjusted = np.empty(N, dtype=np.float64)
    above = np.nextafter(alpha, 2.0)
    for i in range(N):
        a = bh_adjusted[i] * scale
        if bky:
            a *= fact
        a = min(a, 1.0)
        rej = i < r
        if rej and a > alpha:
            a = alpha
        elif not rej and a <= alpha:
            a = above
        reject[order[i]] = rej
        adjusted[order[i]] = a
    return reject, adjusted
