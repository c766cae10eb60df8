"""numba kernels of the multitest package (no validation here: see the wrappers).

The kernels carry no explicit signatures: each compiles (or loads from the cache)
on its first call, for the array types it is called with, so importing multitest
compiles nothing, a call compiles only the kernels it runs, and read-only inputs
(pandas Series, memory maps, ``setflags(write=False)``) are accepted without a copy.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def unit_interval_summary(p):
    """One pass: (any NaN, min, max) of ``p``."""
    lo = np.inf
    hi = -np.inf
    for i in range(p.shape[0]):
        v = p[i]
        if v != v:
            return True, lo, hi
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return False, lo, hi


# ---------------------------------------------------------------------------
# Critical values of the step procedures.
#
# Every procedure here compares the j-th smallest p-value (j = 1..N) with a
# critical value c_j(alpha) that is nondecreasing in j and in alpha. The float
# expressions below are exactly those of statsmodels' ``multipletests`` where
# statsmodels has the procedure, so decisions agree bit for bit.
# ---------------------------------------------------------------------------
BONFERRONI = 0  # k * alpha / N                      (generalised Bonferroni; k=1: Bonferroni)
STEPDOWN_K = 1  # k * alpha / (N + k - max(j, k))     (Lehmann-Romano; k=1: Holm, Hochberg)
SIDAK = 2  # 1 - (1 - alpha) ** (1 / N)
HOLM_SIDAK = 3  # 1 - (1 - alpha) ** (1 / (N - j + 1))
BH = 4  # (j / N) * alpha
BY = 5  # ((j / N) / c_N) * alpha,  c_N = sum_{i<=N} 1/i


@njit(cache=True, error_model="numpy", inline="always")
def crit(code, j, N, alpha, k, extra):
    """Critical value c_j(alpha) of procedure ``code`` (j is the 1-based rank)."""
    if code == BONFERRONI:
        return (k * alpha) / N
    if code == STEPDOWN_K:
        return (k * alpha) / (N + k - max(j, k))
    if code == SIDAK:
        return -np.expm1(np.log1p(-alpha) / N)
    if code == HOLM_SIDAK:
        return -np.expm1(np.log1p(-alpha) / (N - j + 1))
    if code == BH:
        return (j / N) * alpha
    # BY
    return ((j / N) / extra) * alpha


@njit(cache=True, error_model="numpy", inline="always")
def _alpha_estimate(code, j, N, k, extra, p):
    """Closed-form inverse of ``crit`` in alpha (accurate to a few ulps)."""
    if code == BONFERRONI:
        return p * N / k
    if code == STEPDOWN_K:
        return p * (N + k - max(j, k)) / k
    if code == SIDAK:
        return -np.expm1(N * np.log1p(-p))
    if code == HOLM_SIDAK:
        return -np.expm1((N - j + 1) * np.log1p(-p))
    if code == BH:  # crit = f alpha with the float f = j / N: p / f is within an ulp
        return p / (j / N)
    return p / ((j / N) / extra)


@njit(cache=True, inline="always")
def _below(a):
    """``np.nextafter(a, 0.0)`` for a finite ``a > 0``, without a library call (positive
    doubles order like their bit patterns)."""
    return np.int64(np.float64(a).view(np.int64) - 1).view(np.float64)


@njit(cache=True, inline="always")
def _above(a):
    """``np.nextafter(a, 2.0)`` for a finite ``a >= 0``, without a library call."""
    return np.int64(np.float64(a).view(np.int64) + 1).view(np.float64)


@njit(cache=True, error_model="numpy", inline="always")
def smallest_alpha(code, j, N, k, extra, p):
    """Smallest double ``a`` in [0, 1] with ``p <= crit(code, j, N, a)``, or 1.0 if none.

    ``crit`` is nondecreasing in alpha, so the set of levels at which the
    comparison succeeds is an up-set and its minimum is well defined. The
    closed-form estimate is almost always the answer or one ulp from it; otherwise
    :func:`_smallest_alpha_search` settles it. Šidák's critical value at level 1 is 1
    (``log1p(-1) = -inf`` and ``expm1(-inf) = -1`` in IEEE arithmetic, C99 Annex F),
    never below a p-value: the two library calls that would show it are skipped.
    """
    if p <= 0.0:
        return 0.0
    if code != SIDAK and code != HOLM_SIDAK and crit(code, j, N, 1.0, k, extra) < p:
        return 1.0
    est = _alpha_estimate(code, j, N, k, extra, p)
    if not (est > 0.0):
        est = 5e-324
    if est > 1.0:
        est = 1.0
    if crit(code, j, N, est, k, extra) >= p:
        if crit(code, j, N, _below(est), k, extra) < p:
            return est
    else:
        above = _above(est)
        if crit(code, j, N, above, k, extra) >= p:
            return above
    return _smallest_alpha_search(code, j, N, k, extra, p, est)


@njit(cache=True, error_model="numpy")
def _smallest_alpha_search(code, j, N, k, extra, p, est):
    """Gallop from ``est`` in units of the last place, then bisect on the bit patterns
    (positive doubles sort like their int64 bit patterns)."""
    bits = np.float64(est).view(np.int64)
    if crit(code, j, N, est, k, extra) >= p:
        hi = bits
        step = 1
        lo = 0  # the bit pattern of 0.0; crit(0) = 0 < p
        while True:
            cand = hi - step
            if cand <= 0:
                break
            if crit(code, j, N, np.int64(cand).view(np.float64), k, extra) >= p:
                hi = cand
                step *= 2
            else:
                lo = cand
                break
    else:
        lo = bits
        one = np.float64(1.0).view(np.int64)
        hi = one
        step = 1
        while True:
            cand = lo + step
            if cand >= one:
                break
            if crit(code, j, N, np.int64(cand).view(np.float64), k, extra) >= p:
                hi = cand
                break
            lo = cand
            step *= 2
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if crit(code, j, N, np.int64(mid).view(np.float64), k, extra) >= p:
            hi = mid
        else:
            lo = mid
    return np.int64(hi).view(np.float64)


@njit(cache=True, error_model="numpy", inline="always")
def _rank_estimate(code, N, alpha, k, extra, p):
    """g with ``p <= c_j  <=>  j >= g`` in exact arithmetic (step procedures only)."""
    if code == STEPDOWN_K:
        return N + k - (k * alpha) / p
    if code == HOLM_SIDAK:
        return N + 1.0 - np.log1p(-alpha) / np.log1p(-p) if p < 1.0 else N + 1.0
    if code == BH:
        return N * p / alpha
    return N * p * extra / alpha


@njit(cache=True, error_model="numpy")
def first_rank(code, N, alpha, k, extra, p):
    """Smallest rank j in 1..N with ``p <= c_j(alpha)``; N + 1 if there is none.

    In exact arithmetic the answer is ``ceil(g)`` for a closed-form ``g`` (for Holm,
    ``p <= alpha / (N - j + 1)`` iff ``j >= N + 1 - alpha / p``). Where the float
    ``g`` is within a wide margin (1e-9 (N + k + 1), many orders of magnitude above
    its rounding error) of an integer, the rank is settled by the exact float
    comparisons ``p <= c_j`` a sort-based implementation would make; elsewhere
    ``ceil(g)`` is provably the same answer. Either way the result is exact.
    """
    if p <= 0.0:
        return 1
    if code == BONFERRONI or code == SIDAK:
        return 1 if p <= crit(code, 1, N, alpha, k, extra) else N + 1
    low = 1.0
    if code == STEPDOWN_K:
        if k >= N:  # every critical value is k alpha / N
            return 1 if p <= crit(code, 1, N, alpha, k, extra) else N + 1
        low = k  # c_1 = ... = c_k: a plateau, J = 1 iff p passes at rank k
    g = _rank_estimate(code, N, alpha, k, extra, p)
    margin = 1e-9 * (N + k + 1.0)
    if g <= low - margin:
        return 1
    if g > N + 1.0 + margin:
        return N + 1
    c = np.ceil(g)
    if c - g > margin and g - (c - 1.0) > margin and c > low + margin:
        return int(min(c, N + 1.0))
    # near an integer: settle with the exact float comparisons
    if code == STEPDOWN_K and p <= crit(code, k, N, alpha, k, extra):
        return 1
    j = int(min(max(c, 1.0), N + 1.0))
    while j <= N and p > crit(code, j, N, alpha, k, extra):
        j += 1
    while j > 1 and p <= crit(code, j - 1, N, alpha, k, extra):
        j -= 1
    return j


# ---------------------------------------------------------------------------
# Decisions of the step procedures without a sort.
#
# With C(j) = #{i : p_i <= c_j} (nondecreasing in j), a step-down procedure
# rejects R = (first j with C(j) < j) - 1 hypotheses and a step-up procedure the
# largest j with C(j) >= j; either way the rejected set is {i : p_i <= c_R}, since
# ties never straddle the cut. C(j) at one j is a single vectorised pass, and the
# stopping point is reached by a fixed-point iteration on the rank (see
# multitest._step), finished where needed by an exact histogram over a window of
# ranks (window_search).
# ---------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def sweep(p, cut, nxt, reject, copy):
    """One pass over ``p``: ``(#{i : p_i <= nxt}, number of invalid p-values)``.

    Also writes ``reject[i] = p[i] <= cut`` if `reject` has the length of `p`, and
    ``copy[i] = p[i]`` if `copy` has; pass empty arrays to skip either. A value is
    invalid if it is NaN or outside [0, 1].
    """
    N = p.shape[0]
    write_reject = reject.shape[0] == N
    write_copy = copy.shape[0] == N
    count = 0
    invalid = 0
    for i in range(N):  # the flags are loop-invariant: the loop is unswitched, vectorised
        x = p[i]
        invalid += not (x >= 0.0 and x <= 1.0)
        count += x <= nxt
        if write_reject:
            reject[i] = x <= cut
        if write_copy:
            copy[i] = x
    return count, invalid


_WINDOW_BLOCK = 64  # p-values per block of the window pass


@njit(cache=True, error_model="numpy")
def _window_counts(p, code, alpha, k, extra, lo, hi):
    """``(C(lo), hist)`` with ``hist[j - lo - 1] = #{i : J_i = j}`` for lo < j <= hi.

    J_i = first_rank(p_i) is the smallest rank whose critical value p_i meets, so
    J_i <= j iff p_i <= c_j: only the p-values in (c_lo, c_hi] need their rank.
    Near the fixed point they are few: a vectorised loop counts them per block of
    64, and only a block that has some gathers their indices (branch-free) and
    ranks them. Branching on each p-value instead mispredicts on random data.
    """
    N = p.shape[0]
    c_lo = crit(code, lo, N, alpha, k, extra) if lo >= 1 else -1.0
    c_hi = crit(code, hi, N, alpha, k, extra)
    hist = np.zeros(hi - lo, dtype=np.int64)
    found = np.empty(_WINDOW_BLOCK, dtype=np.int64)
    base = 0
    for start in range(0, N, _WINDOW_BLOCK):
        stop = min(start + _WINDOW_BLOCK, N)
        inside = 0
        for i in range(start, stop):
            x = p[i]
            base += x <= c_lo
            inside += (x > c_lo) & (x <= c_hi)
        if inside:
            t = 0
            for i in range(start, stop):
                x = p[i]
                found[t] = i
                t += (x > c_lo) & (x <= c_hi)
            for s in range(t):
                j = first_rank(code, N, alpha, k, extra, p[found[s]])
                hist[min(max(j - lo - 1, 0), hi - lo - 1)] += 1
    return base, hist


@njit(cache=True, error_model="numpy")
def window_search(p, code, alpha, k, extra, step_up, m, width):
    """Number R of rejections, given the iteration's bound ``m`` on it.

    Step-down: every rank j <= m passes (C(j) >= j) and R >= m. Step-up: every
    rank j > m fails and R <= m. One pass histograms the ranks of the p-values in
    a window of `width` ranks next to m and scans it; if the window holds no
    stopping point, m jumps past it and the next window covers the rest.
    """
    N = p.shape[0]
    while True:
        if step_up:
            if m == 0:
                return 0
            lo = max(m - width, 0)
            base, hist = _window_counts(p, code, alpha, k, extra, lo, m)
            count = base + hist.sum()  # C(m)
            for j in range(m, lo, -1):
                if count >= j:
                    return j
                count -= hist[j - lo - 1]
            if base >= lo:  # C(lo) >= lo
                return lo
            m = base  # all j in (C(lo), lo] fail too
        else:
            if m == N:
                return N
            hi = min(m + width, N)
            count, hist = _window_counts(p, code, alpha, k, extra, m, hi)
            for j in range(m + 1, hi + 1):
                count += hist[j - m - 1]
                if count < j:
                    return j - 1
            m = count  # C(hi) >= hi: every rank up to C(hi) passes
        width = N  # the next window covers everything left


@njit(cache=True, error_model="numpy")
def step_adjusted_sorted(ps, code, k, extra, step_up, N, out):
    """Adjusted p-values of the ``R`` smallest of ``N`` p-values, sorted: the smallest
    level rejecting each one, written to `out` (which may be `ps`: in place).

    ``R = ps.shape[0]`` is ``N``, or (:func:`multitest._step._adjuster`) the number of
    hypotheses rejected below level 1: the others' adjusted p-values are 1 and do not
    change these (step-down: they come later; step-up: their alpha_i are 1).

    Step-down: a_(j) = max_{i<=j} alpha_i (cumulative max); step-up: the
    cumulative min from the right, with alpha_i the smallest level at which
    ``p_(i) <= c_i`` holds.

    alpha_i itself (an inversion, for Šidák six logarithms and exponentials) is only
    computed where it changes the running extreme ``r``: step-down, alpha_i <= r iff
    ``p_(i) <= c_i(r)``, one evaluation of the critical value, and once ``r`` is 1
    every later value is 1; step-up, alpha_i >= r iff ``p_(i) > c_i(r-)`` with ``r-``
    the double below ``r``, and once ``r`` is 0 every earlier value is 0. Where the
    previous alpha_i moved ``r``, the next one is computed without the test (on
    strong signals nearly every one moves it). The values are those of the plain
    cumulative max (min) of every alpha_i, bit for bit.
    """
    R = ps.shape[0]
    if R == 0:
        return out
    # where the last level moved the running extreme the next one likely does too:
    # then alpha_i is computed at once, without the test (the same value either way)
    moved = True
    if step_up:
        r = smallest_alpha(code, R, N, k, extra, ps[R - 1])
        out[R - 1] = r
        for i in range(R - 2, -1, -1):
            if r > 0.0:
                if moved:
                    r_old = r
                    r = min(r, smallest_alpha(code, i + 1, N, k, extra, ps[i]))
                    moved = r != r_old
                elif crit(code, i + 1, N, _below(r), k, extra) >= ps[i]:
                    r = smallest_alpha(code, i + 1, N, k, extra, ps[i])  # below r
                    moved = True
            out[i] = r
    else:
        r = smallest_alpha(code, 1, N, k, extra, ps[0])
        out[0] = r
        for i in range(1, R):
            if r < 1.0:
                if moved:
                    r_old = r
                    r = max(r, smallest_alpha(code, i + 1, N, k, extra, ps[i]))
                    moved = r != r_old
                elif crit(code, i + 1, N, r, k, extra) < ps[i]:
                    r = smallest_alpha(code, i + 1, N, k, extra, ps[i])  # above r
                    moved = True
            out[i] = r
    return out


# ---------------------------------------------------------------------------
# Counts: binomial p-values are a monotone function of the count, so comparisons
# with count thresholds replace those of p-values, and a histogram over 0..n
# replaces the sort where the rank iteration settles slowly.
# ---------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def counts_threshold(hist, table, code, alpha, k, extra, step_up):
    """Smallest certified count: reject iff count >= threshold (n + 1: none).

    ``table[c]`` is the p-value of count c (nonincreasing in c). Walking the counts
    from n down visits the p-values in ascending order, one block of equal counts
    (= equal p-values) at a time; ties never straddle the cut, so the procedure
    only needs to be checked at block boundaries.
    """
    n = hist.shape[0] - 1
    N = 0
    for c in range(n + 1):
        N += hist[c]
    r = 0
    thr = n + 1
    for c in range(n, -1, -1):
        h = hist[c]
        if h == 0:
            continue
        if step_up:
            if table[c] <= crit(code, r + h, N, alpha, k, extra):
                thr = c
        else:
            if table[c] <= crit(code, r + 1, N, alpha, k, extra):
                thr = c
            else:
                break
        r += h
    return thr


@njit(cache=True)
def presence(counts, n):
    """Boolean mask over 0..n of the count values that occur (no range check)."""
    seen = np.zeros(n + 1, dtype=np.bool_)
    for i in range(counts.shape[0]):
        seen[counts[i]] = True
    return seen


@njit(cache=True)
def compact_counts(counts, at_least, out, reject):
    """Copy ``counts`` (N >= 1) into the narrower ``out`` and write ``reject[i] =
    counts[i] >= at_least``; return ``(min, max, #{i : counts[i] >= at_least})``.

    One vectorised pass. The caller checks the range from (min, max) and raises:
    values outside it are copied truncated.
    """
    lo = counts[0]
    hi = counts[0]
    count = 0
    for i in range(counts.shape[0]):
        c = counts[i]
        lo = min(lo, c)
        hi = max(hi, c)
        r = c >= at_least
        count += r
        reject[i] = r
        out[i] = c
    return lo, hi, count


@njit(cache=True)
def count_sweep(compact, cut, at_least, reject):
    """One pass: ``#{i : compact[i] >= at_least}`` (thresholds of the array's dtype).

    Also writes ``reject[i] = compact[i] >= cut`` if `reject` has the length of
    `compact`; pass an empty array to only count.
    """
    write_reject = reject.shape[0] == compact.shape[0]
    count = 0
    for i in range(compact.shape[0]):  # unswitched on the loop-invariant flag
        c = compact[i]
        count += c >= at_least
        if write_reject:
            reject[i] = c >= cut
    return count


@njit(cache=True)
def smallest_at_least(compact, at_least, none):
    """The smallest value ``>= at_least`` in ``compact``, or ``none`` if there is none."""
    smallest = none
    for i in range(compact.shape[0]):
        c = compact[i]
        smallest = min(smallest, c if c >= at_least else none)
    return smallest


@njit(cache=True, error_model="numpy")
def single_step_adjusted(p, code, k, extra):
    """Adjusted p-values of a single-step procedure (no sort needed).

    A p-value above ``c(1-)``, the critical value at the double below 1, is not
    rejected below level 1, so its adjusted p-value is 1: one comparison with a
    constant instead of the inversion (for Šidák six logarithms and exponentials),
    which most p-values of a large family take.
    """
    N = p.shape[0]
    out = np.empty(N, dtype=np.float64)
    top = crit(code, 1, N, np.nextafter(1.0, 0.0), k, extra) if N else 0.0
    for i in range(N):
        x = p[i]
        out[i] = 1.0 if x > top else smallest_alpha(code, 1, N, k, extra, x)
    return out


@njit(cache=True)
def count_histogram(counts, n):
    """Histogram over 0..n of counts already checked to lie in [0, n].

    Counts concentrate on a few values and consecutive increments of one bin wait
    on each other's stores, so four interleaved histograms are kept and summed.
    """
    N = counts.shape[0]
    w = n + 1
    w1, w2, w3 = np.uint64(w), np.uint64(2 * w), np.uint64(3 * w)
    h = np.zeros(4 * w, dtype=np.int64)
    N4 = N - N % 4
    for i in range(0, N4, 4):
        h[np.uint64(counts[i])] += 1
        h[w1 + np.uint64(counts[i + 1])] += 1
        h[w2 + np.uint64(counts[i + 2])] += 1
        h[w3 + np.uint64(counts[i + 3])] += 1
    for i in range(N4, N):
        h[np.uint64(counts[i])] += 1
    return h[:w] + h[w:2 * w] + h[2 * w:3 * w] + h[3 * w:]


# ---------------------------------------------------------------------------
# Small inputs: one fused call. Below multitest._step.SMALL_N the fixed cost of
# Python (a few kernel calls, critical values fetched one by one) outweighs the
# passes, so one kernel validates, copies, sorts and decides; the decisions and
# adjusted p-values are exactly those of the pass-based path.
# ---------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _count_at_most(p, c):
    count = 0
    for i in range(p.shape[0]):
        count += p[i] <= c
    return count


@njit(cache=True, error_model="numpy")
def small_decide(p, code, alpha, k, extra, step_up, one_step, passes):
    """``(reject, copy of p, decided)`` of a step procedure in one call.

    R is found as in :func:`multitest._step.iterate_rank`, in at most `passes` passes
    of the fixed-point iteration, and ``reject = p <= c_R`` written (ties never
    straddle the cut), the comparison the pass-based path makes. ``decided`` is
    False if a p-value is invalid (NaN or outside [0, 1]: the caller checks) or if
    the iteration did not settle (the caller finishes with
    :func:`small_sorted_decide`).
    """
    N = p.shape[0]
    data = np.empty(N, dtype=np.float64)
    reject = np.empty(N, dtype=np.bool_)
    invalid = False
    for i in range(N):
        x = p[i]
        data[i] = x
        invalid |= not (x >= 0.0 and x <= 1.0)
    if invalid:
        return reject, data, False
    if one_step:
        cut = crit(code, 1, N, alpha, k, extra)
    else:
        m = _count_at_most(data, crit(code, N if step_up else 1, N, alpha, k, extra))
        R = -1
        for _ in range(passes + 1):
            if m == 0 or m == N:
                R = m
                break
            nxt = m if step_up else m + 1
            count = _count_at_most(data, crit(code, nxt, N, alpha, k, extra))
            if count == m:
                R = m
                break
            m = count
        if R < 0:  # settles slowly: the caller sorts (small_sorted_decide)
            return reject, data, False
        cut = crit(code, R, N, alpha, k, extra) if R >= 1 else -1.0
    for i in range(N):
        reject[i] = data[i] <= cut
    return reject, data, True


@njit(cache=True, error_model="numpy")
def small_sorted_decide(data, code, alpha, k, extra, step_up, reject):
    """Write ``reject = data <= c_R`` with R found by one sort (own kernel: compiling
    the sort is costly, and most calls of :func:`small_decide` never need it).

    Step-down: R is the last rank before the first j with ``p_(j) > c_j``; step-up:
    the largest j with ``p_(j) <= c_j``.
    """
    N = data.shape[0]
    s = np.sort(data)
    R = 0 if step_up else N
    if step_up:
        for j in range(N, 0, -1):
            if s[j - 1] <= crit(code, j, N, alpha, k, extra):
                R = j
                break
    else:
        for j in range(1, N + 1):
            if s[j - 1] > crit(code, j, N, alpha, k, extra):
                R = j - 1
                break
    cut = crit(code, R, N, alpha, k, extra) if R >= 1 else -1.0
    for i in range(N):
        reject[i] = data[i] <= cut
