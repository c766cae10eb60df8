"""The stable argsort behind every adjusted p-value that needs the p-values in order.

statsmodels' procedures (and ours, before) are sort-bound: ``np.argsort`` is a
comparison sort of (value, index) pairs, most of a call's time at large N. numpy sorts
plain numbers much faster than it argsorts them (on x86 with AVX2 or AVX-512 it uses a
vectorised sort), so :func:`sorted_order` packs each value's order-preserving key and its
position into one uint64, sorts those words with numpy, and unpacks the order and the
sorted values (:mod:`multitest._sort_kernels`). Below :data:`PACKED_MIN_N` values one
call of numba's merge sort costs less than the three calls of that route.

A least-significant-digit radix sort written with numba was measured too (eight passes
of 256 bins, the byte skipped where every key shares it): on the 2-core machine of
docs/benchmarks.md it only matched ``np.argsort``, each pass scattering into 512
places at once; ``benchmarks/bench_multitest.py --sort-only`` has the table.
"""

from __future__ import annotations

import numpy as np

from multitest import _sort_kernels as SK

__all__ = ["PACKED_MIN_N", "sorted_order"]

#: Fewest values sorted by packing words for numpy's sort; fewer go to numba's merge
#: sort (``benchmarks/bench_multitest.py --sort-only`` measures the cut-over).
PACKED_MIN_N = 256


def sorted_order(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x[order], order)`` with ``order`` equal to ``np.argsort(x, kind='stable')``.

    Parameters
    ----------
    x : numpy.ndarray
        1-D, C-contiguous float64 (read-only is fine). Ties (``-0.0`` and ``0.0``
        among them) keep their input order; NaNs go last, as with numpy.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The sorted values, bit for bit ``x[order]``, and ``order`` (int64).
    """
    N = x.shape[0]
    if N < PACKED_MIN_N:
        return SK.small_sorted_order(x)
    # numpy allocates the large buffers (as huge pages where the system allows: a
    # call at N = 10^6 otherwise spends milliseconds faulting pages in)
    words = np.empty(N, dtype=np.uint64)
    values = np.empty(N)
    b, s, kmin, restore = SK.pack_keys(x, words)
    words.sort()  # numpy's sort of plain integers, in place
    return values, SK.unpack_order(words, x, b, s, np.uint64(kmin), restore, values)
