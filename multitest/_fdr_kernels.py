"""numba kernel of the two-stage FDR procedures (no validation here: see ``_fdr_twostage.py``)."""

from __future__ import annotations

import numpy as np
from numba import njit


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
