"""The stable argsort behind the adjusted p-values: exactly ``np.argsort(kind='stable')``."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from multitest import _sort
from multitest import _sort_kernels as SK

SPECIAL = np.array([0.0, -0.0, 1.0, 5e-324, -5e-324, 1e-310, 2.2250738585072014e-308, 0.5,
                    np.nextafter(1.0, 0.0), np.nextafter(0.5, 1.0), -1.0, np.inf, -np.inf,
                    np.nan, -np.nan, 1e300])


def packed(x):
    """The packed-word route whatever the size (sorted_order sends few values elsewhere)."""
    words = np.empty(x.size, dtype=np.uint64)
    values = np.empty(x.size)
    b, s, kmin, restore = SK.pack_keys(x, words)
    words.sort()
    return values, SK.unpack_order(words, x, b, s, np.uint64(kmin), restore, values)


ROUTES = {"sorted_order": _sort.sorted_order, "packed": packed,
          "merge": SK.small_sorted_order}


def check_order(x, sort):
    values, order = sort(x)
    expected = np.argsort(x, kind="stable")
    np.testing.assert_array_equal(order, expected)
    # the values are x[order] to the bit: the sign of a zero, a NaN's payload
    np.testing.assert_array_equal(values.view(np.uint64), x[expected].view(np.uint64))


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("N", [1, 2, 3, 17, _sort.PACKED_MIN_N - 1, _sort.PACKED_MIN_N, 1000,
                               70_000])
def test_equals_numpy_stable_argsort(rng, route, N):
    """Random p-values, many ties, zeros of both signs, subnormals, 0 and 1, and (for a
    general argsort) negatives, infinities and NaNs."""
    for x in (rng.uniform(size=N),
              rng.uniform(size=N) ** 12,
              rng.integers(0, 5, size=N) / 4,
              rng.choice(SPECIAL[:10], size=N),
              np.where(rng.uniform(size=N) < 0.5, rng.choice(SPECIAL, size=N),
                       rng.normal(size=N) * 10.0 ** rng.integers(-300, 300, size=N))):
        check_order(x, ROUTES[route])


@given(x=hnp.arrays(np.float64, st.integers(1, 600),
                    elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
@settings(max_examples=200, deadline=None)
def test_equals_numpy_stable_argsort_hypothesis(x):
    check_order(x, _sort.sorted_order)
    check_order(x, packed)


@pytest.mark.parametrize("N", [300, 5000])
def test_values_told_apart_only_by_dropped_bits(rng, N):
    """Key and index do not fit in one word: the lowest key bits are dropped and runs of
    words equal but for the index are sorted again, short ones by insertion, long ones
    by merge sort (a cluster within 2^12 ulps of 0.5 and one value far below)."""
    cluster = 0.5 + rng.integers(0, 2**12, size=N - 1) * 2.0**-53
    x = np.r_[cluster, 1e-300]
    assert SK.pack_keys(x, np.empty(x.size, dtype=np.uint64))[1] > 0  # s: bits dropped
    check_order(x, packed)
    check_order(np.r_[rng.permutation(cluster[:12]), 1e-300], packed)  # a short run


@pytest.mark.parametrize("x", [np.zeros(500), np.full(500, 0.3),
                               np.r_[np.zeros(250), -np.zeros(250)], np.full(300, np.nan),
                               np.array([0.25] * 299 + [0.75])])
def test_constant_and_restored_values(x):
    check_order(x, packed)


def test_read_only_input(rng):
    x = rng.uniform(size=3000)
    x.setflags(write=False)
    check_order(x, _sort.sorted_order)
    assert not x.flags.writeable


def test_empty():
    values, order = _sort.sorted_order(np.empty(0))
    assert values.size == order.size == 0
