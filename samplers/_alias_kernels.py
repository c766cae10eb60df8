"""numba kernels of the integer alias table: construction and the fused quantized draw.

They know nothing of validation or of the noise distribution; :mod:`samplers._qtable`
and :mod:`samplers._quantized` call them with checked, contiguous arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def alias_table(target, slot_bits, low_bits):  # pragma: no cover - numba
    """Vose's alias method on integers; returns ``(packed, got)``.

    ``target`` (int64, length ``2**slot_bits``, padded with zeros) holds the
    probabilities in units of ``2**-(slot_bits + low_bits)`` and sums to
    ``2**(slot_bits + low_bits)``. A draw ``b`` uniform on ``[0, 2**(slot_bits +
    low_bits))`` picks slot ``j = b >> low_bits`` and returns ``j`` if the low bits are
    below the slot's threshold, else the slot's alias. ``packed[j] = (thr << slot_bits)
    | alias`` with ``thr < 2**low_bits`` (a slot that always keeps ``j`` stores
    ``thr = 0, alias = j``). ``got`` is the exact sampled distribution in the same
    units, recomputed from the table (equal to ``target`` when nothing was lost).
    """
    slots = target.size
    unit = np.int64(1) << low_bits
    thr = np.zeros(slots, dtype=np.int64)
    alias = np.arange(slots).astype(np.int64)
    rest = target.copy()
    small = np.empty(slots, dtype=np.int64)
    large = np.empty(slots, dtype=np.int64)
    ns = 0
    nl = 0
    for j in range(slots):
        if rest[j] < unit:
            small[ns] = j
            ns += 1
        else:
            large[nl] = j
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        a = small[ns]
        b = large[nl - 1]
        thr[a] = rest[a]
        alias[a] = b
        rest[b] -= unit - rest[a]
        if rest[b] < unit:
            nl -= 1
            small[ns] = b
            ns += 1
    # what is left keeps its own slot (exactly full when no mass was lost)
    for i in range(nl):
        thr[large[i]] = unit
    for i in range(ns):
        thr[small[i]] = unit
    packed = np.empty(slots, dtype=np.int64)
    got = np.zeros(slots, dtype=np.int64)
    for j in range(slots):
        t = thr[j]
        a = alias[j]
        if t >= unit:  # always j
            t = 0
            a = j
        packed[j] = (t << slot_bits) | a
        got[j] += t
        got[a] += unit - t
    return packed, got


@njit(cache=True)
def _alias_pick(b, packed, slot_bits, low_bits):  # pragma: no cover - numba
    """The outcome of the alias table ``packed`` for the draw ``b`` (uniform on
    ``[0, 2**(slot_bits + low_bits))``)."""
    j = b >> low_bits
    e = packed[j]
    a = e & ((np.int64(1) << slot_bits) - 1)
    return a + ((b & ((np.int64(1) << low_bits) - 1)) < (e >> slot_bits)) * (j - a)


@njit(cache=True)
def _rotl(x, k):  # pragma: no cover - numba
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def _splitmix64(x):  # pragma: no cover - numba
    """``(next state, output)`` of SplitMix64 (Steele, Lea, Flood 2014)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x, z ^ (z >> np.uint64(31))


@njit(cache=True)
def xoshiro_seed(a, b):  # pragma: no cover - numba
    """The xoshiro256** state (uint64[4]) from two seeds, through SplitMix64."""
    s = np.empty(4, dtype=np.uint64)
    x = np.uint64(a)
    x, s[0] = _splitmix64(x)
    x, s[1] = _splitmix64(x)
    y = np.uint64(b)
    y, s[2] = _splitmix64(y)
    y, s[3] = _splitmix64(y)
    return s


@njit(cache=True)
def _xoshiro(s0, s1, s2, s3):  # pragma: no cover - numba
    """One step of xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom
    number generators", ACM TOMS 2021): ``(output, next state)``."""
    r = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    return r, s0, s1, s2, _rotl(s3, 45)


@njit(cache=True)
def xoshiro_fill(state, out):  # pragma: no cover - numba
    """``out[i]`` = the next outputs of xoshiro256** >> 1 (uniform on [0, 2**63)); the
    state advances in place (the reference stream for tests)."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for i in range(out.size):
        r, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        out[i] = np.int64(r >> np.uint64(1))
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


@njit(cache=True)
def grid_base(src, levels, K, probe, by_reciprocal):  # pragma: no cover - numba
    """``(base, bad)``: ``base[i] = m_i - K`` (int32) with ``m_i`` the grid index of
    ``src[i]``, and the number of values that are not the grid value of their index
    (``m / levels`` in float64, cast to ``src``'s dtype via the 1-element ``probe`` of
    that dtype; ``by_reciprocal`` as in :func:`quantized_draw`). NaN and
    out-of-range values count as bad."""
    scale = np.float64(levels)
    inv = 1.0 / scale
    base = np.empty(src.size, dtype=np.int32)
    bad = 0
    for i in range(src.size):
        v = src[i]
        m = min(max(np.int64(v * scale + 0.5), 0), levels)
        if by_reciprocal:  # loop-invariant
            probe[0] = np.float64(m) * inv
        else:
            probe[0] = np.float64(m) / scale
        bad += probe[0] != v
        base[i] = m - K
    return base, bad


@njit(cache=True)
def quantized_draw(state, coarse, c_slot_bits, c_low_bits, off_bits, nbins, down, residual,
                   r_slot_bits, r_low_bits, r_bits, base, levels, by_reciprocal,
                   out):  # pragma: no cover - numba
    """``out[i] = (base[i % base.size] + idx_i) / levels``, with fresh draws from ``state``.

    Each coordinate takes one 63-bit integer ``b`` (xoshiro256** from ``state``,
    advanced in place). Its lowest ``2 off_bits`` bits are two positions ``u1, u2``
    in a bin, the others pick from the ``coarse`` alias table: bin ``c`` flat
    (``c < nbins``: position ``u1``), bin ``c - nbins`` ramp (position
    ``max(u1, u2)``, mirrored where ``down``), or the residual (``2 nbins``, rare:
    ``idx`` from the ``residual`` table and the top ``r_bits`` bits of the next
    integer). See :class:`samplers._qtable.Table`. ``base`` (from
    :func:`grid_base`) is read cyclically: a batch of copies of one input passes
    that input once. The output is the float64 quotient ``j / levels`` of the grid
    index ``j = m + idx - K``, cast to ``out``'s dtype: a fixed function of ``j``.
    ``by_reciprocal``: compute it as ``j * (1 / levels)`` instead (a division costs
    more than the rest of the loop), which the caller has checked gives the same
    values in ``out``'s dtype for every ``j`` the table can produce.
    """
    offmask = (np.int64(1) << off_bits) - 1
    scale = np.float64(levels)
    inv = 1.0 / scale
    size = base.size
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    p = 0
    for i in range(out.size):
        r, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        b = np.int64(r >> np.uint64(1))  # uniform on [0, 2**63)
        c = _alias_pick(b >> (2 * off_bits), coarse, c_slot_bits, c_low_bits)
        if c < nbins:  # flat part of bin c (off_bits = 0: a plain alias table)
            idx = (c << off_bits) | (b & offmask)
        elif c < 2 * nbins:  # ramp of bin c - nbins (rare: the branch predicts well)
            c -= nbins
            u = max(b & offmask, (b >> off_bits) & offmask)
            idx = (c << off_bits) | (u ^ (down[c] * offmask))  # mirrored: B - 1 - u
        else:  # the residual (rarer still)
            r, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
            idx = _alias_pick(np.int64(r >> np.uint64(64 - r_bits)), residual, r_slot_bits,
                              r_low_bits)
        if by_reciprocal:  # loop-invariant: compiled as two loops
            out[i] = np.float64(base[p] + idx) * inv
        else:
            out[i] = np.float64(base[p] + idx) / scale
        p += 1
        if p == size:
            p = 0
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
