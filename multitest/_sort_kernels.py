"""numba kernels of the stable argsort behind the adjusted p-values (see ``_sort.py``).

A double's bit pattern, its sign bit flipped (every bit, for a negative value), is an
unsigned integer that sorts like the double: the *key*. :func:`pack_keys` writes each
key, less the smallest, shifted up past the bits of an index and or-ed with its
position, so that one sort of plain uint64 words (numpy's, vectorised) orders the
values and breaks ties by position: a stable argsort. Where key and index do not fit
in 64 bits together the key's lowest bits are dropped, and :func:`unpack_order` puts
right the values that only those bits told apart (they share the rest of the word).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SIGN = np.uint64(0x8000000000000000)
_ZERO_KEY = np.uint64(0x8000000000000000)  # +0.0 and -0.0 (equal, as in np.argsort)
_NAN_KEY = np.uint64(0xFFFFFFFFFFFFFFFF)  # every NaN, after +inf (np.argsort puts NaN last)


@njit(cache=True, inline="always")
def _key(x, bits):
    """The order-preserving key of the double ``x`` with bit pattern ``bits``."""
    if x == 0.0:
        return _ZERO_KEY
    if x != x:
        return _NAN_KEY
    return bits ^ ((np.uint64(0) - (bits >> np.uint64(63))) | _SIGN)


@njit(cache=True, inline="always")
def _bit_length(v):
    n = 0
    while n < 64 and (v >> np.uint64(n)) != np.uint64(0):
        n += 1
    return n


@njit(cache=True)
def pack_keys(x, words):
    """Write the words of the sort to ``words`` (uint64, the length of ``x``: 1-D
    contiguous, N >= 1); return ``(b, s, kmin, restore)``.

    ``words[i] = ((key_i - kmin) >> s) << b | i``, with ``b`` bits for the index and
    ``s`` the fewest low key bits to drop for the rest to fit. ``restore`` counts the
    values whose key does not give back their bits (-0.0 and NaN).
    """
    N = x.shape[0]
    bits = x.view(np.uint64)
    kmin = _NAN_KEY
    kmax = np.uint64(0)
    restore = 0
    for i in range(N):
        v = x[i]
        k = _key(v, bits[i])
        restore += (v != v) or (v == 0.0 and bits[i] != np.uint64(0))
        kmin = min(kmin, k)
        kmax = max(kmax, k)
    b = max(_bit_length(np.uint64(N - 1)), 1)
    s = max(_bit_length(kmax - kmin) - (64 - b), 0)
    shift, index_bits = np.uint64(s), np.uint64(b)
    for i in range(N):
        words[i] = (((_key(x[i], bits[i]) - kmin) >> shift) << index_bits) | np.uint64(i)
    return b, s, kmin, restore


@njit(cache=True)
def unpack_order(words, x, b, s, kmin, restore, values):
    """Turn the sorted words of :func:`pack_keys` into the order, in place, and write
    the sorted values ``x[order]`` to ``values``; return ``words`` viewed as the order
    (int64).

    With nothing dropped (``s == 0``) the words hold the whole keys and the values are
    rebuilt from them; otherwise they are gathered from ``x``, and a run of words that
    differ only in their index but hold values out of order (told apart by the dropped
    bits alone) is sorted again by value, stably: by insertion where short, by merge
    sort where long, so no input costs more than O(N log N). A run is found again from
    the values: the word's key bits are those of its value's key.
    """
    N = words.shape[0]
    mask = np.uint64((1 << b) - 1)
    index_bits = np.uint64(b)
    order = words.view(np.int64)
    if s == 0 and restore == 0:
        out = values.view(np.uint64)
        for i in range(N):
            w = words[i]
            k = (w >> index_bits) + kmin
            out[i] = k ^ _SIGN if k & _SIGN else ~k
            order[i] = np.int64(w & mask)
        return order
    for i in range(N):
        o = np.int64(words[i] & mask)
        order[i] = o
        values[i] = x[o]
    if s == 0:
        return order
    shift = np.uint64(s)
    bits = values.view(np.uint64)
    i = 1
    while i < N:
        if values[i] < values[i - 1]:  # only inside a run of equal (key - kmin) >> s
            top = (_key(values[i], bits[i]) - kmin) >> shift
            lo = i - 1
            while lo > 0 and (_key(values[lo - 1], bits[lo - 1]) - kmin) >> shift == top:
                lo -= 1
            hi = i + 1
            while hi < N and (_key(values[hi], bits[hi]) - kmin) >> shift == top:
                hi += 1
            _sort_run(values, order, lo, hi)
            i = hi
        else:
            i += 1
    return order


@njit(cache=True)
def _sort_run(values, order, lo, hi):
    """Stable sort of ``values[lo:hi]`` (no NaN: NaNs never share a run with numbers),
    carrying ``order`` along."""
    if hi - lo <= 16:
        for i in range(lo + 1, hi):
            v = values[i]
            o = order[i]
            j = i
            while j > lo and values[j - 1] > v:
                values[j] = values[j - 1]
                order[j] = order[j - 1]
                j -= 1
            values[j] = v
            order[j] = o
        return
    perm = np.argsort(values[lo:hi], kind="mergesort")
    run_values = values[lo:hi][perm]
    run_order = order[lo:hi][perm]
    values[lo:hi] = run_values
    order[lo:hi] = run_order


@njit(cache=True)
def small_sorted_order(x):
    """``(x[order], order)``, ``order = np.argsort(x, kind='stable')``, by numba's merge
    sort: one call, for small inputs (and for the kernels that sort inside)."""
    order = np.argsort(x, kind="mergesort")
    return x[order], order
