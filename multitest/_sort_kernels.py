"""A stable argsort of float64 keys for the adjusted p-values (numba; no validation here).

Adjusted p-values need the p-values in ascending order; numpy's comparison sort costs
O(N log N) comparisons, most of the time of a sort-bound procedure (statsmodels' Holm
is ``np.argsort`` plus a few passes). :func:`sorted_order` is a least-significant-digit
radix sort instead: a double's bit pattern, its sign bit flipped (and every bit of a
negative value), is an unsigned integer that sorts like the double, so eight stable
counting passes over its bytes sort it. A byte that is the same in every key (the sign
and the top of the exponent, for p-values above 2^-15) skips its pass. Below
:data:`RADIX_MIN_N` keys the fixed cost of the passes (eight histograms of 256 bins)
outweighs the comparisons, and numba's merge sort is used.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Bits per digit: eight passes of 256 bins. Wider digits (11 bits, 6 passes; 16 bits,
#: 4 passes) scatter into so many places at once that their passes ran 2-5x slower per
#: key at N = 10^6 on the 2-core machine of docs/benchmarks.md, more than the passes
#: they save (``benchmarks/bench_multitest.py --sort-only`` times them).
RADIX_BITS = 8
#: Fewest keys sorted by the radix passes; fewer go to numba's merge sort
#: (``benchmarks/bench_multitest.py --sort-only`` measures the cut-over).
RADIX_MIN_N = 256

_SIGN = np.uint64(0x8000000000000000)
_ZERO_KEY = np.uint64(0x8000000000000000)  # +0.0 and -0.0 (equal, as in np.argsort)
_NAN_KEY = np.uint64(0xFFFFFFFFFFFFFFFF)  # every NaN, after +inf (np.argsort puts NaN last)


@njit(cache=True)
def sorted_order(x):
    """``(x[order], order)`` with ``order = np.argsort(x, kind='stable')``.

    ``x`` is a 1-D contiguous float64 array. Ties (also ``-0.0`` and ``0.0``) keep their
    input order; NaNs go last, as with numpy. Cost: O(N) in at most eight passes.
    """
    N = x.shape[0]
    if N < RADIX_MIN_N:
        order = np.argsort(x, kind="mergesort")
        return x[order], order
    return _radix_sorted_order(x)


@njit(cache=True)
def _radix_sorted_order(x):
    N = x.shape[0]
    ndigits = (64 + RADIX_BITS - 1) // RADIX_BITS
    nbins = 1 << RADIX_BITS
    mask = np.uint64(nbins - 1)
    bits = x.view(np.uint64)
    keys = np.empty(N, dtype=np.uint64)
    hist = np.zeros((ndigits, nbins), dtype=np.int64)
    negative_zeros = 0
    nans = 0
    for i in range(N):
        v = x[i]
        b = bits[i]
        if v == 0.0:
            negative_zeros += b != np.uint64(0)
            k = _ZERO_KEY
        elif v != v:
            nans += 1
            k = _NAN_KEY
        elif b & _SIGN:
            k = ~b
        else:
            k = b | _SIGN
        keys[i] = k
        for d in range(ndigits):
            hist[d, (k >> np.uint64(d * RADIX_BITS)) & mask] += 1

    # the digits that differ between keys; the others leave the order as it is
    passes = np.empty(ndigits, dtype=np.int64)
    npasses = 0
    for d in range(ndigits):
        if hist[d, (keys[0] >> np.uint64(d * RADIX_BITS)) & mask] != N:
            passes[npasses] = d
            npasses += 1
    order = np.empty(N, dtype=np.int64)
    if npasses == 0:
        for i in range(N):
            order[i] = i
        return x.copy(), order

    keys_out = np.empty(N, dtype=np.uint64)
    order_out = np.empty(N, dtype=np.int64)
    offset = np.empty(nbins, dtype=np.int64)
    for t in range(npasses):
        d = passes[t]
        total = 0
        for j in range(nbins):
            offset[j] = total
            total += hist[d, j]
        shift = np.uint64(d * RADIX_BITS)
        if t == 0:  # the first pass reads no order: it is the identity
            for i in range(N):
                k = keys[i]
                j = (k >> shift) & mask
                pos = offset[j]
                offset[j] = pos + 1
                keys_out[pos] = k
                order_out[pos] = i
        else:
            for i in range(N):
                k = keys[i]
                j = (k >> shift) & mask
                pos = offset[j]
                offset[j] = pos + 1
                keys_out[pos] = k
                order_out[pos] = order[i]
        keys, keys_out = keys_out, keys
        order, order_out = order_out, order

    # back from keys to doubles (the order-preserving map inverted), in place
    for i in range(N):
        k = keys[i]
        keys[i] = k ^ _SIGN if k & _SIGN else ~k
    values = keys.view(np.float64)
    if negative_zeros:  # the zero key stands for both zeros: restore each one's sign
        for i in range(N):
            if values[i] == 0.0:
                values[i] = x[order[i]]
    for i in range(N - nans, N):  # and the NaN key for every NaN: restore its payload
        values[i] = x[order[i]]
    return values, order
