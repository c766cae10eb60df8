"""numba kernels of the FDR procedures (no validation here: see the public wrappers)."""

from __future__ import annotations

import numpy as np
from numba import njit

from multitest._sort_kernels import small_sorted_order

_UNSETTLED = np.nan  # a level the three candidates of _bh_level did not settle


@njit(cache=True, error_model="numpy", inline="always")
def _below(a):
    """The double below the positive double ``a`` (bit pattern less one)."""
    return np.int64(np.float64(a).view(np.int64) - 1).view(np.float64)


@njit(cache=True, error_model="numpy", inline="always")
def _above(a):
    """The double above the nonnegative finite double ``a``."""
    return np.int64(np.float64(a).view(np.int64) + 1).view(np.float64)


@njit(cache=True, error_model="numpy", inline="always")
def _bh_level(p, f):
    """Smallest double ``a >= 0`` with ``p <= f * a`` (``0 < f <= 1``), or NaN where the
    rounded quotient ``p / f`` and its neighbours do not settle it; branch-free.

    ``f * a`` is nondecreasing in ``a``: the answer is ``q-``, ``q`` or ``q+`` (``q =
    p / f``) iff ``f q-- < p <= f q+``, and then the first of the three that meets
    ``p``.
    """
    q = p / f
    inside = (p > 0.0) & (q > 1e-300)  # far from the subnormal quotients
    e = q if inside else 1.0
    down = _below(e)
    up = _above(e)
    settled = inside & (f * _below(down) < p) & (f * up >= p)
    if f * down >= p:
        level = down
    else:
        level = e if f * e >= p else up
    return level if settled else _UNSETTLED


@njit(cache=True, error_model="numpy")
def _bh_level_exact(p, f):
    """:func:`_bh_level` for any ``p >= 0``: a walk from the rounded quotient."""
    if p <= 0.0:
        return 0.0
    a = p / f
    while f * a < p:
        a = np.nextafter(a, np.inf)
    while True:
        b = np.nextafter(a, 0.0)
        if b >= 0.0 and f * b >= p:
            a = b
        else:
            break
    return a


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

    The per-rank thresholds and quotients come from one loop without branches (it
    vectorises), the suffix minima from a second.
    """
    N = ps.shape[0]
    levels = np.empty(N, dtype=np.float64)
    adjusted = np.empty(N, dtype=np.float64)
    for idx in range(N):
        f = (idx + 1) / N
        levels[idx] = _bh_level(ps[idx], f)
        adjusted[idx] = ps[idx] / f
    run_level = np.inf
    run_adj = np.inf
    for idx in range(N - 1, -1, -1):
        a = levels[idx]
        if a != a:
            a = _bh_level_exact(ps[idx], (idx + 1) / N)
        run_level = min(run_level, a)
        levels[idx] = run_level
        run_adj = min(run_adj, adjusted[idx])
        adjusted[idx] = run_adj
    return levels, adjusted


@njit(cache=True, error_model="numpy")
def two_stage_small(p, alpha, maxiter, bky):
    """``(reject, adjusted)`` of the (iterated) two-stage procedure in one call: one
    sort (numba's merge sort, for small inputs) and :func:`two_stage_sorted`."""
    ps, order = small_sorted_order(p)
    reject = np.empty(p.shape[0], dtype=np.bool_)
    adjusted = np.empty(p.shape[0], dtype=np.float64)
    two_stage_sorted(ps, order, alpha, maxiter, bky, reject, adjusted)
    return reject, adjusted


@njit(cache=True, error_model="numpy")
def two_stage_sorted(ps, order, alpha, maxiter, bky, reject, adjusted):
    """Write the decisions and adjusted p-values of the (iterated) two-stage procedure
    to ``reject[order]`` and ``adjusted[order]``, from the sorted ``ps = p[order]``.

    Mirrors statsmodels' ``fdrcorrection_twostage`` stage by stage, with the same
    floating-point expressions for the stage levels: :func:`bh_levels_sorted`, each
    stage's number of rejections read off the levels by binary search, the rescaled
    BH-adjusted p-values, and ``reject == (adjusted <= alpha)`` enforced bit for bit
    (a change of at most a few ulps where rounding disagrees). Tied p-values share
    their level and adjusted value, so the order of ties in the sort does not
    matter. ``maxiter < 0``: iterate to convergence (up to N stages).
    """
    N = ps.shape[0]
    if maxiter < 0:
        maxiter = N
    levels, bh_adjusted = bh_levels_sorted(ps)
    fact = 1.0 + alpha if bky else 1.0
    alpha_prime = alpha / fact if bky else alpha
    # Stage 1: BH at alpha' (alpha / (1 + alpha) for BKY).
    r = np.searchsorted(levels, alpha_prime, side="right")
    scale = 1.0
    if 0 < r < N:
        r_old = r
        n0 = float(N)  # maxiter = 0: BH at alpha' with N0_hat = N
        for it in range(maxiter):
            # Stage 2 (and later): BH at alpha' N / N0_hat, N0_hat = N - R_previous.
            n0 = float(N - r_old)
            level = alpha_prime * N / n0 if n0 > 0.0 else np.inf
            r = np.searchsorted(levels, level, side="right")
            if it >= maxiter - 1 or r == r_old:
                break
            r_old = r
        scale = n0 / N
    # else: no rejection or all rejected at stage 1; stop (BKY, Definition 6).
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
        o = order[i]
        reject[o] = rej
        adjusted[o] = a


# ---------------------------------------------------------------------------
# Gavrilov-Benjamini-Sarkar and the support-line (Grenander lfdr) procedure:
# one sort, then one pass each, in statsmodels' floating-point expressions.
# ---------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def gbs_adjusted(ps, order):
    """Gavrilov-Benjamini-Sarkar adjusted p-values in the caller's order, from the sorted
    ``ps = p[order]`` (overwritten).

    ``q_(j) = (N + 1 - j) / j * p_(j) / (1 - p_(j))`` is the smallest level whose
    critical value ``j alpha / (N + 1 - j (1 - alpha))`` the j-th smallest p-value
    meets (exact arithmetic); the adjusted p-value is its cumulative max, capped at 1.
    The expression, evaluated left to right, is statsmodels' (``p = 1`` gives ``inf``
    and so 1). The quotients come from a loop of their own, which vectorises (a block
    of p-values at a time, copied aside: the loop writes where it reads), the
    cumulative max and the scatter from a second.
    """
    N = ps.shape[0]
    top = N + 1.0
    block = np.empty(512, dtype=np.float64)
    for start in range(0, N, 512):
        n = min(512, N - start)
        for t in range(n):
            block[t] = ps[start + t]
        for t in range(n):
            j = start + t + 1.0
            x = block[t]
            ps[start + t] = (top - j) / j * x / (1.0 - x)
    out = np.empty(N, dtype=np.float64)
    run = -np.inf
    for i in range(N):
        run = max(run, ps[i])
        out[order[i]] = run if run <= 1.0 else 1.0
    return out


@njit(cache=True, error_model="numpy")
def small_gbs(p, alpha):
    """``(reject, adjusted, valid)`` of Gavrilov-Benjamini-Sarkar on a small input in one
    call (numba's merge sort, :func:`gbs_adjusted`, ``adjusted <= alpha``); ``valid``
    is False if a p-value is NaN or outside [0, 1]."""
    N = p.shape[0]
    reject = np.empty(N, dtype=np.bool_)
    for i in range(N):
        x = p[i]
        if not (x >= 0.0 and x <= 1.0):
            return reject, p, False
    ps, order = small_sorted_order(p)
    adjusted = gbs_adjusted(ps, order)
    for i in range(N):
        reject[i] = adjusted[i] <= alpha
    return reject, adjusted, True


@njit(cache=True, error_model="numpy")
def _decreasing_isotonic_reversed(x, wt, starts):
    """Weighted least-squares nonincreasing fit, in place, of the sequence whose
    *reverse* is ``x`` (weights reversed in ``wt``, all > 0); returns the
    number of blocks. Block ``b`` (in the reversed order) is
    ``x[starts[b]:starts[b + 1]]`` and its fitted value is left in ``x[b]``.

    Pool-adjacent-violators in the one-pass form of Busing (2022, Algorithm 1, with
    ``>=`` so that equal neighbours share a block), run over the reversed sequence as
    ``scipy.optimize.isotonic_regression(y, weights=w, increasing=False)`` runs it:
    the same sums in the same order, so the same doubles. (Each pooling adds the
    previous block's rounded mean, so the divisions form one chain: about 10 ns a
    value, the floor of this fit.)
    """
    n = x.shape[0]
    if n == 0:
        return 0
    starts[0] = 0
    starts[1] = 1
    b = 0
    x_prev = x[0]
    w_prev = wt[0]
    i = 1
    while i < n:
        b += 1
        xb = x[i]
        wb = wt[i]
        if x_prev >= xb:  # pool with the previous block, then repair both ways
            b -= 1
            sb = w_prev * x_prev + wb * xb
            wb += w_prev
            xb = sb / wb
            while i < n - 1 and xb >= x[i + 1]:
                i += 1
                sb += wt[i] * x[i]
                wb += wt[i]
                xb = sb / wb
            while b > 0 and x[b - 1] >= xb:
                b -= 1
                sb += wt[b] * x[b]
                wb += wt[b]
                xb = sb / wb
        x[b] = xb
        x_prev = xb
        wt[b] = wb
        w_prev = wb
        starts[b + 1] = i + 1
        i += 1
    return b + 1


@njit(cache=True, error_model="numpy")
def grenander_lfdr(ps, order, null_proportion):
    """Local false discovery rates ``min(1, pi0 / f(p_i))`` in the caller's order, from
    the sorted ``ps = p[order]``.

    ``f`` is the Grenander estimate of the p-values' density, the left slope of the
    least concave majorant of their empirical cdf: over the distinct values
    ``u_1 < ... < u_U`` with multiplicities ``c_k`` it is the nonincreasing weighted
    fit of ``c_k / (N (u_k - u_{k-1}))`` (``u_0 = 0``) with weights ``u_k - u_{k-1}``,
    statsmodels' ``local_fdr_correction`` expression for expression. A p-value of 0
    (where statsmodels' fit refuses the zero-width gap) is a point mass: density
    ``inf``, local FDR 0; the fit of the others starts at ``u_0 = 0``.

    One pass writes the fit's data already reversed (the order the fit runs in) at
    the end of two buffers, the fit pools it in place, and one more pass walks the
    blocks and the runs of equal p-values together to scatter the values back.
    """
    N = ps.shape[0]
    out = np.empty(N, dtype=np.float64)
    if N == 0:
        return out
    zeros = 0
    while zeros < N and ps[zeros] == 0.0:
        zeros += 1
    M = N - zeros  # at least as many as the distinct positive values
    x = np.empty(M, dtype=np.float64)
    wt = np.empty(M, dtype=np.float64)
    # distinct positive values u_k, ascending, written from the end: x[M - 1 - k]
    U = 0
    below = 0.0
    i = zeros
    while i < N:
        u = ps[i]
        c = 1
        i += 1
        while i < N and ps[i] == u:
            c += 1
            i += 1
        gap = u - below
        x[M - 1 - U] = c / (N * gap)
        wt[M - 1 - U] = gap
        below = u
        U += 1
    xr = x[M - U:]
    starts = np.empty(U + 1, dtype=np.int64)
    blocks = _decreasing_isotonic_reversed(xr, wt[M - U:], starts)
    for i in range(zeros):
        out[order[i]] = 0.0
    # ascending distinct values run through the blocks from the last one back
    i = zeros
    for b in range(blocks - 1, -1, -1):
        lfdr = null_proportion / xr[b]
        if lfdr > 1.0:
            lfdr = 1.0
        for _ in range(starts[b + 1] - starts[b]):  # its distinct values, ascending
            u = ps[i]
            out[order[i]] = lfdr
            i += 1
            while i < N and ps[i] == u:
                out[order[i]] = lfdr
                i += 1
    return out
