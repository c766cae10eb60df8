"""numba kernel of Hommel's procedure in linear time (no validation here: see ``_hommel.py``).

Notation (1-based, as in the paper): ``p_1 <= ... <= p_N`` are the sorted p-values and
point ``i`` is ``(i, p_i)``. The Simes p-value of the ``m`` largest p-values is

    S(m) = min_{k=1..m} m p_{N-m+k} / k = m * min_{i>j} p_i / (i - j),   j = N - m,

i.e. ``m`` times the smallest slope from ``(j, 0)`` to a point right of ``j``. That
slope is attained at a vertex of the lower convex hull of those points, so one sweep
``j = N-1, ..., 0`` that adds the points from the right to the left and keeps a
pointer to the tangent vertex gives every ``S(m)`` in O(N) amortised time
(Meijer, Krebs & Goeman 2019).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def hommel_adjusted_sorted(ps):
    """Hommel-adjusted p-values of ascending p-values ``ps``, in O(N).

    The adjusted p-value of a p-value ``x`` is ``A(x) = max_m min(m x, S(m))``: the
    worst Simes p-value over the intersections of size ``m`` that contain it (the
    other ``m - 1`` members being the largest p-values). The tangent slope
    ``S(m) / m`` is nonincreasing in ``m``, so ``m x < S(m)`` holds exactly for
    ``m <= M(x)``, and

        A(x) = max(M(x) x, max_{m > M(x)} S(m)),

    with ``M`` only decreasing while ``x`` runs through the sorted p-values. The
    sweep tests ``m x < S(m)`` itself (never the quotient ``S(m) / m``, which can
    underflow), so given the ``S(m)`` it returns ``max_m min(m x, S(m))`` exactly as
    evaluated in floating point: every ``m > M`` has ``m x >= S(m)``, ``M x < S(M)``
    and the terms of ``m < M`` are at most ``M x``.

    Terms are evaluated with statsmodels' float expressions (``(m * p) / k`` and
    ``m * p``), so the values agree with its O(N^2) loop up to the choice of the
    minimising ``k`` among near-tied candidates (a few ulps). The result is
    finally capped at ``p_N``, a bound that holds exactly (``S(m) <= p_N``) but
    can be exceeded by one ulp in floating point; the cap keeps Hommel's adjusted
    p-values below Hochberg's.
    """
    N = ps.shape[0]
    out = np.empty(N, dtype=np.float64)
    if N == 0:
        return out
    S = np.empty(N + 2, dtype=np.float64)  # S[m], m = 1..N
    hull = np.empty(N, dtype=np.int64)  # lower hull, hull[0] = N, hull[top] = leftmost
    top = -1
    ptr = 0  # hull position of the current tangent vertex; only moves towards top

    # Step 1: S(m) for m = 1..N, i.e. query points (j, 0) for j = N-1, ..., 0.
    for j in range(N - 1, -1, -1):
        # add point a = j + 1 on the left of the hull (monotone chain)
        a = j + 1
        pa = ps[j]
        while top >= 1:
            b = hull[top]
            c = hull[top - 1]
            # keep b iff it lies strictly below the segment a-c
            if (b - a) * (ps[c - 1] - pa) > (c - a) * (ps[b - 1] - pa):
                break
            top -= 1
        top += 1
        hull[top] = a
        if ptr > top:  # the old tangent vertex was removed: the new one is a
            ptr = top
        # the tangent from (j, 0) moves left (towards top) as j decreases
        m = N - j
        v = hull[ptr]
        best = (m * ps[v - 1]) / (v - j)
        while ptr < top:
            w = hull[ptr + 1]
            cand = (m * ps[w - 1]) / (w - j)
            if cand <= best:
                best = cand
                ptr += 1
            else:
                break
        S[m] = best

    # suffix maxima of S
    sufmax = np.empty(N + 2, dtype=np.float64)
    sufmax[N + 1] = 0.0
    for m in range(N, 0, -1):
        sufmax[m] = S[m] if S[m] > sufmax[m + 1] else sufmax[m + 1]

    # Step 2: A(x) for x = p_1 <= ... <= p_N.
    p_max = ps[N - 1]
    M = N
    for i in range(N):
        x = ps[i]
        while M >= 1 and not (M * x < S[M]):
            M -= 1
        val = sufmax[M + 1]
        if M >= 1:
            t = M * x
            if t > val:
                val = t
        if val > p_max:
            val = p_max
        out[i] = val
    return out


@njit(cache=True, error_model="numpy")
def hommel_adjusted(ps, order):
    """Hommel-adjusted p-values in the caller's order, from the sorted ``ps = p[order]``:
    :func:`hommel_adjusted_sorted` scattered back (equal p-values get equal values)."""
    adjusted = hommel_adjusted_sorted(ps)
    out = np.empty_like(adjusted)
    for i in range(order.shape[0]):
        out[order[i]] = adjusted[i]
    return out
