"""numba kernels of the adjusted p-values of the step procedures, on sorted p-values.

The adjusted p-value of the j-th smallest p-value is a running extreme of the
hypotheses' own levels alpha_i, the smallest double level at which ``p_(i) <= c_i``
holds (:func:`multitest._kernels.smallest_alpha`): a cumulative max from the left
(step-down) or min from the right (step-up). Computing alpha_i for every rank in a
loop of its own keeps the work free of the running extreme, so the loop has no
chain of dependent divisions from one rank to the next and vectorises; a second
loop takes the running extreme and scatters it back to the caller's order. The
values are those of :func:`multitest._kernels.step_adjusted_sorted` bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from multitest._kernels import (
    BH,
    BONFERRONI,
    BY,
    STEPDOWN_K,
    _above,
    _alpha_estimate,
    _below,
    crit,
    single_step_adjusted,
    small_decide,
    small_sorted_decide,
    smallest_alpha,
    step_adjusted_sorted,
)
from multitest._sort_kernels import small_sorted_order

_SLOW = np.nan  # marks a rank whose own level the closed form did not settle
#: An estimate above this is a level above 1 with room to spare (see _fast_alpha).
_ABOVE_ONE = 1.0 + 1e-9


@njit(cache=True, error_model="numpy", inline="always")
def _fast_alpha(code, j, N, k, extra, p):
    """``smallest_alpha(code, j, N, k, extra, p)`` where its closed form settles it (almost
    always), else NaN; free of branches once compiled. For the critical values that
    are products and quotients (Bonferroni, Holm, Hochberg, Lehmann-Romano, BH, BY).

    ``c``, the critical value, is nondecreasing in the level by the monotonicity of
    IEEE multiplication and division. The answer is 1 if ``p > c(1-)`` (``1-``: the
    double below 1), as it is where the estimate ``est`` exceeds ``1 + 1e-9``: ``est``
    and ``c`` are each a product and a quotient of the same numbers, a few roundings
    of 2^-53 apart. Otherwise it is ``est-``, ``est`` or ``est+`` (the closed form is
    within a place of the answer but for rare cases) iff ``c(est--) < p <= c(est+)``,
    and then the first of the three at which ``c`` meets ``p``. Estimates outside
    (1e-323, 1), and ``p <= 0``, are left to :func:`smallest_alpha` (NaN).
    """
    est = _alpha_estimate(code, j, N, k, extra, p)
    inside = (p > 0.0) & (est > 5e-324) & (est < 1.0)
    e = est if inside else 0.5  # keeps the bit tricks on finite positive doubles
    down = _below(e)
    up = _above(e)
    settled = inside & (crit(code, j, N, _below(down), k, extra) < p) & (
        crit(code, j, N, up, k, extra) >= p)
    if crit(code, j, N, down, k, extra) >= p:
        value = down
    else:
        value = e if crit(code, j, N, e, k, extra) >= p else up
    value = value if settled else _SLOW
    return 1.0 if est > _ABOVE_ONE else value


_BLOCK = 512  # p-values copied aside at a time by _own_levels


@njit(cache=True, error_model="numpy", inline="always")
def _own_levels(ps, a, code, N, k, extra):
    """``a[i] = alpha_(i+1)``, or NaN where the closed form did not settle it. ``code`` is
    a constant at every call site, so each loop is compiled for one critical value, and
    vectorised: it has no branch and no reduction. `a` may be `ps` (in place): the
    p-values are copied aside a block at a time, since a loop that writes where it
    reads runs unvectorised (the compiler's overlap check fails)."""
    R = ps.shape[0]
    block = np.empty(_BLOCK, dtype=np.float64)
    for start in range(0, R, _BLOCK):
        n = min(_BLOCK, R - start)
        for t in range(n):
            block[t] = ps[start + t]
        for t in range(n):
            a[start + t] = _fast_alpha(code, start + t + 1, N, k, extra, block[t])


@njit(cache=True, error_model="numpy")
def own_levels_bh(ps, N, k, extra, a):
    """Own levels (:func:`_own_levels`) of Benjamini-Hochberg's critical values."""
    _own_levels(ps, a, BH, N, k, extra)
    return a


@njit(cache=True, error_model="numpy")
def own_levels_by(ps, N, k, extra, a):
    """Own levels (:func:`_own_levels`) of Benjamini-Yekutieli's critical values."""
    _own_levels(ps, a, BY, N, k, extra)
    return a


@njit(cache=True, error_model="numpy")
def own_levels_stepdown_k(ps, N, k, extra, a):
    """Own levels (:func:`_own_levels`) of ``k alpha / (N + k - max(j, k))``: Holm,
    Hochberg (``k = 1``: compiled for it, a division less), Lehmann-Romano."""
    if k == 1:
        _own_levels(ps, a, STEPDOWN_K, N, 1, extra)
    else:
        _own_levels(ps, a, STEPDOWN_K, N, k, extra)
    return a


@njit(cache=True, error_model="numpy")
def bonferroni_adjusted(p, k):
    """Adjusted p-values of (generalised) Bonferroni, ``smallest_alpha(BONFERRONI, 1, N,
    k, 0, p_i)`` for every p-value: one vectorised loop (:func:`_fast_alpha`), then the
    rare ones it did not settle. Bit for bit
    :func:`multitest._kernels.single_step_adjusted`."""
    N = p.shape[0]
    out = np.empty(N, dtype=np.float64)
    for i in range(N):
        out[i] = _fast_alpha(BONFERRONI, 1, N, k, 0.0, p[i])
    for i in range(N):
        if out[i] != out[i]:
            out[i] = smallest_alpha(BONFERRONI, 1, N, k, 0.0, p[i])
    return out


@njit(cache=True, error_model="numpy")
def small_bonferroni(p, alpha, k):
    """``(reject, adjusted, valid)`` of (generalised) Bonferroni in one call, for small
    inputs where a second call would cost more than the adjusted p-values:
    ``reject = p <= k alpha / N`` as :func:`multitest._kernels.small_decide` writes it,
    and :func:`bonferroni_adjusted`. ``valid`` is False if a p-value is NaN or outside
    [0, 1]."""
    N = p.shape[0]
    reject = np.empty(N, dtype=np.bool_)
    invalid = False
    for i in range(N):
        x = p[i]
        invalid |= not (x >= 0.0 and x <= 1.0)
    if invalid:
        return reject, p, False
    cut = crit(BONFERRONI, 1, N, alpha, k, 0.0)
    for i in range(N):
        reject[i] = p[i] <= cut
    return reject, bonferroni_adjusted(p, k), True


#: code -> kernel of the own levels, one compiled loop each (compiled on first use).
#: Šidák's critical values are missing: each costs two library calls (``log1p``,
#: ``expm1``), so the own level is computed only where it moves the running extreme
#: (:func:`multitest._kernels.step_adjusted_sorted`).
OWN_LEVELS = {BH: own_levels_bh, BY: own_levels_by, STEPDOWN_K: own_levels_stepdown_k}


@njit(cache=True, error_model="numpy")
def scatter_running_extreme(a, data, order, positions, out, code, k, extra, step_up):
    """``out[positions[order[i]]] =`` the running extreme of the own levels ``a`` up to
    rank i (max from the left, or min from the right if `step_up`); with an empty
    `positions`, ``out[order[i]]``. ``a`` are the own levels of the sorted
    ``data[positions][order]`` (``data[order]``); a NaN in ``a`` is computed here by
    :func:`smallest_alpha` from the p-value in `data`. Tied p-values get equal values,
    so the order among ties does not matter."""
    R = a.shape[0]
    N = out.shape[0]
    if R == 0:
        return out
    direct = positions.shape[0] == 0
    if step_up:
        r = np.inf
        for i in range(R - 1, -1, -1):
            o = order[i]
            o = o if direct else positions[o]
            v = a[i]
            if v != v:
                v = smallest_alpha(code, i + 1, N, k, extra, data[o])
            r = min(r, v)
            out[o] = r
    else:
        r = -np.inf
        for i in range(R):
            o = order[i]
            o = o if direct else positions[o]
            v = a[i]
            if v != v:
                v = smallest_alpha(code, i + 1, N, k, extra, data[o])
            r = max(r, v)
            out[o] = r
    return out


_NO_POSITIONS = np.empty(0, dtype=np.int64)


@njit(cache=True, error_model="numpy")
def small_reject_adjusted(p, code, alpha, k, extra, step_up, one_step, single_step, passes):
    """``(reject, adjusted, valid)`` of a step procedure on a small input in one call:
    what :func:`multitest.multipletests` returns, without the Python calls in between.

    The decisions are :func:`small_decide`'s (finished by :func:`small_sorted_decide`),
    the adjusted p-values those of ``multitest._step``'s lazy adjuster: a single-step
    procedure's from :func:`single_step_adjusted`, a step procedure's from one sort,
    the own levels and their running extreme. Bit for bit the procedure's results.
    ``valid`` is False (and the arrays meaningless) if a p-value is NaN or outside
    [0, 1]: the caller then runs the procedure, which says so.
    """
    reject, data, decided = small_decide(p, code, alpha, k, extra, step_up, one_step, passes)
    N = data.shape[0]
    if not decided:
        for i in range(N):
            x = data[i]
            if not (x >= 0.0 and x <= 1.0):
                return reject, data, False
        small_sorted_decide(data, code, alpha, k, extra, step_up, reject)
    if single_step:
        if code == BONFERRONI:
            return reject, bonferroni_adjusted(data, k), True
        return reject, single_step_adjusted(data, code, k, extra), True
    return reject, small_step_adjusted(data, code, k, extra, step_up), True


@njit(cache=True, error_model="numpy")
def small_step_adjusted(data, code, k, extra, step_up):
    """Adjusted p-values of a step procedure on the small input `data`, in one call: one
    sort (numba's merge sort), the own levels and their running extreme, scattered
    back (``multitest._step.adjusted_from_sorted``'s steps without its Python calls)."""
    N = data.shape[0]
    ps, order = small_sorted_order(data)
    if code == BH:
        _own_levels(ps, ps, BH, N, k, extra)
    elif code == BY:
        _own_levels(ps, ps, BY, N, k, extra)
    elif code == STEPDOWN_K:
        own_levels_stepdown_k(ps, N, k, extra, ps)
    else:
        step_adjusted_sorted(ps, code, k, extra, step_up, N, ps)
    adjusted = np.empty(N, dtype=np.float64)
    return scatter_running_extreme(ps, data, order, _NO_POSITIONS, adjusted, code, k, extra,
                                   step_up)
