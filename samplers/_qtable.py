"""The law of the rounded noise ``K = round(eps / h)`` and its exact integer alias table.

For continuous noise ``eps`` and a grid step ``h``, ``K = round(eps / h)`` takes the
value ``k`` with probability ``P(K = k) = F((k + 1/2) h) - F((k - 1/2) h)`` (``F`` the
noise's CDF). This module computes that pmf with a rigorous error bound, truncates
it to ``[-K, K]``, rounds it to multiples of ``2**-63`` and builds a two-level
alias table on integers (:class:`Table`), so that a uniform 63-bit integer (rarely
two) gives a draw whose law is an exact rational known at construction.
:attr:`Table.tv` bounds its total-variation distance to the law of ``round(eps / h)``.

Error accounting (per coordinate), with ``p`` the exact pmf, ``p_hat`` its float64
value, ``e_k >= |p_hat_k - p_k|`` a rigorous bound, ``t_k = round(2**63 p_hat_k)``
for ``k != 0`` and ``t_0 = 2**63 - sum_{k != 0} t_k``::

    TV <= K 2**-63 + sum_{k != 0} e_k + tail,

where ``tail`` bounds the mass outside ``[-K, K]``: each ``|t_k 2**-63 - p_hat_k|``
is at most ``2**-64``; the mode absorbs the others' rounding and the tail, and the
mass outside contributes ``tail / 2`` to the TV.

The float64 error bounds assume IEEE-754 double arithmetic (every ``+ - * /``
correctly rounded, unit roundoff ``u = 2**-53``) and ``numpy.exp`` within
``EXP_ULPS`` units ``u`` (measured below 1; ``tests/test_quantized.py`` checks it).
Constants (``h / sigma`` and the series coefficients) are computed in 50-digit
decimal arithmetic, whose operations are correctly rounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from functools import lru_cache

import numpy as np

from samplers._alias_kernels import alias_table

#: Bits of one draw: ``torch.Tensor.random_()`` on int64 is uniform on [0, 2**63).
DRAW_BITS = 63
#: The truncated support's tail mass (per coordinate) is below this.
TAIL_MASS = 2.0**-56
#: Largest support (grid steps) a table may cover; about 8 bytes each.
MAX_SLOTS = 1 << 22
#: Slots of the coarse alias table that every draw reads (8 bytes each: it stays in L1).
COARSE_SLOTS = 1 << 12
#: Assumed accuracy of ``numpy.exp`` on float64, in units u = 2**-53 (measured < 1).
EXP_ULPS = 8
_U = 2.0**-53
_PREC = 50  # decimal digits of the constants
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494")


@dataclass(frozen=True)
class Table:
    """Two-level integer alias table of ``K = round(eps / h)`` on ``[-K, K]``.

    Index ``i`` stands for ``k = i - K``; ``t_i`` are the integer targets (units of
    ``2**-63``, summing to ``2**63``). The indices are cut into ``nbins`` bins of
    ``B = 2**off_bits`` (the last one padded with zeros); bin ``c`` splits exactly
    into a flat part (``l_c`` at every index, ``l_c`` a multiple of ``B``), a ramp
    (``rho_c (2j + 1)`` at position ``j`` of the bin, counted from its high end where
    ``down[c]``) and the rest ``r_i >= 0``, which sums to ``2**r_bits`` over all bins:

    * ``coarse``: alias table over ``2 nbins + 1`` outcomes in units of
      ``B**2 2**-63`` (flat ``c``: ``l_c / B``; ramp ``c``: ``rho_c``; the residual:
      ``2**r_bits / B**2``). A draw's lowest ``2 off_bits`` bits are two uniform
      positions ``u1, u2`` in the bin, independent of the rest: the flat part takes
      ``u1`` (probability ``1/B`` each), the ramp ``max(u1, u2)`` (probability
      ``(2j + 1) / B**2``);
    * ``residual``: alias table over the indices with targets ``r_i``, drawn from a
      second integer only when the coarse table says so (``residual_mass`` of the
      draws: the bins' curvature, about 1e-5 at 16 bits).

    So ``P(i) = (B l_c / B + rho_c (2j + 1) + r_i) / 2**63 = t_i / 2**63`` exactly,
    and the coarse table (at most 2**12 slots) stays in cache whatever the support's
    size. ``B = 1`` (small supports) is a plain alias table. ``packed`` entries are
    ``(threshold << slot_bits) | alias`` (:func:`samplers._alias_kernels.alias_table`).
    ``got`` is the law recomputed from the tables over the ``2K + 1`` indices (it
    equals ``t``); ``tv`` bounds its total-variation distance to ``round(eps / h)``.
    """

    K: int
    off_bits: int
    nbins: int
    down: np.ndarray  # uint8 per bin: its ramp falls
    coarse: np.ndarray
    c_slot_bits: int
    c_low_bits: int
    residual: np.ndarray
    r_slot_bits: int
    r_low_bits: int
    r_bits: int
    got: np.ndarray
    residual_mass: float
    tv: float


@lru_cache(maxsize=4)
def gaussian_table(sigma: float, levels: int) -> Table:
    """Table of ``round(eps / h)``, ``eps ~ N(0, sigma^2)``, ``h = 1 / levels``."""
    p_hat, err, K, tail = _gaussian_pmf(sigma, levels)
    return _build(p_hat, err, K, tail)


@lru_cache(maxsize=4)
def laplace_table(scale: float, levels: int) -> Table:
    """Table of ``round(eps / h)``, ``eps ~ Laplace(0, scale)``, ``h = 1 / levels``."""
    p_hat, err, K, tail = _laplace_pmf(scale, levels)
    return _build(p_hat, err, K, tail)


def support_half_width(kind: str, scale: float, levels: int) -> int:
    """A cheap upper estimate of ``K`` (for refusing tables that would be too large)."""
    if kind == "gaussian":
        return math.ceil(8.6 * scale * levels) + 2  # Q(8.6) ~ 4e-18 < TAIL_MASS / 2
    return math.ceil(56 * math.log(2) * scale * levels) + 1


# ---------------------------------------------------------------------------
# pmfs: float64 values on k = 0..K (symmetric), rigorous error bounds, tail bound
# ---------------------------------------------------------------------------


def _gaussian_pmf(sigma: float, levels: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    r"""``p_k = Phi((k + 1/2) a) - Phi((k - 1/2) a)``, ``a = h / sigma``, for k = 0..K.

    With :math:`c = k a`, :math:`\delta = a / 2` and :math:`x = c^2 / 2`,

    .. math::
        p_k = \frac{a e^{-x}}{\sqrt{2\pi}} G(x), \quad
        G(x) = \frac{1}{2\delta}\int_{-\delta}^{\delta} \cosh(c s) e^{-s^2/2} ds
             = \sum_j \beta_j x^j, \quad
        \beta_j = \frac{2^j}{(2j)!} \frac{1}{\delta}\int_0^\delta s^{2j} e^{-s^2/2} ds,

    a series with positive coefficients (no cancellation; Horner in float64 loses at
    most ``(2J + 1) u``), truncated where its remainder is below ``2**-62`` of the
    sum. ``sigma >= h`` keeps ``c delta`` small enough for a short series.
    """
    with localcontext() as ctx:
        ctx.prec = _PREC
        dsig = Decimal(sigma)
        delta = 1 / (2 * levels * dsig)
        a = 2 * delta
        # K: tail 2 Q((K + 1/2) a) <= 2 phi(x) / x (Mills) <= TAIL_MASS
        sqrt2pi = (2 * _PI).sqrt()

        def tail(k: int) -> Decimal:
            x = (k + Decimal("0.5")) * a
            return 2 * (-(x * x) / 2).exp() / (x * sqrt2pi)

        K = max(1, math.floor(8.2 * sigma * levels))
        step = max(1, K // 1024)
        while tail(K) > Decimal(TAIL_MASS):
            K += step
            step *= 2
        tail_mass = float(tail(K)) * (1 + 1e-12)
        # series coefficients beta_j, J from the remainder bound at the largest c
        c_max = float(K * a)
        d = float(delta)
        J = 0
        while True:  # remainder after term J <= next bound / (1 - ratio)
            nxt = (c_max * d) ** (2 * J + 2) / (math.factorial(2 * J + 2) * (2 * J + 3))
            ratio = (c_max * d) ** 2 / ((2 * J + 3) * (2 * J + 4))
            if ratio < 0.5 and nxt / (1 - ratio) <= 2.0**-62 * math.exp(-d * d / 2):
                break
            J += 1
        trunc = 2.0**-62
        beta = []
        d2 = delta * delta
        for j in range(J + 1):
            s, term, m = Decimal(0), Decimal(1), 0  # term = (-1/2)^m / m! delta^(2j+2m)
            term = d2**j
            while True:
                add = term / (2 * j + 2 * m + 1)
                s += add
                if abs(add) < Decimal(10) ** -(_PREC - 5) * s:
                    break
                m += 1
                term = -term * d2 / (2 * m)
            beta.append(float(s * 2**j / math.factorial(2 * j)))
        A = float(a * a / 2)
        C = float(a / sqrt2pi)
    k = np.arange(K + 1, dtype=np.float64)
    x = (k * k) * A  # k * k exact (k < 2**26)
    g = np.full_like(x, beta[-1])
    for b in reversed(beta[:-1]):
        g = g * x + b
    p_hat = (C * np.exp(-x)) * g
    # relative error: A, C, beta roundings; x (2u); exp (EXP_ULPS u + 2.01 u x);
    # Horner (2J + 1) u and its argument (2 J u); the two products (2u); truncation
    rho = _U * (EXP_ULPS + 8 + 4 * J + 2.01 * x) + trunc
    err = p_hat * rho / (1 - rho)
    return p_hat, err, K, tail_mass


def _laplace_pmf(scale: float, levels: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    r"""``p_0 = 1 - e^{-b/2}``, ``p_k = \sinh(b/2) e^{-|k| b}``, ``b = h / scale``.

    The mass outside ``[-K, K]`` is exactly ``e^{-(K + 1/2) b}``.
    """
    with localcontext() as ctx:
        ctx.prec = _PREC
        b = 1 / (levels * Decimal(scale))
        K = max(1, math.ceil(float((Decimal(TAIL_MASS).ln().copy_negate()) / b - Decimal("0.5"))))
        while (-(K + Decimal("0.5")) * b).exp() > Decimal(TAIL_MASS):
            K += 1
        tail_mass = float((-(K + Decimal("0.5")) * b).exp()) * (1 + 1e-12)
        half = (b / 2).exp()
        sinh = float((half - 1 / half) / 2)
        p0 = float(1 - 1 / half)
        B = float(b)
    k = np.arange(K + 1, dtype=np.float64)
    x = k * B
    p_hat = sinh * np.exp(-x)
    p_hat[0] = p0
    # relative error: B and sinh roundings, x (2u), exp (EXP_ULPS u + 2.01 u x), product
    rho = _U * (EXP_ULPS + 5 + 2.01 * x)
    err = p_hat * rho / (1 - rho)
    return p_hat, err, K, tail_mass


# ---------------------------------------------------------------------------
# the integer alias table and its TV bound
# ---------------------------------------------------------------------------


def _build(p_hat: np.ndarray, err: np.ndarray, K: int, tail: float) -> Table:
    """Round the symmetric pmf on 0..K to 2**-63 units and build the two-level table."""
    size = 2 * K + 1
    half = np.rint(p_hat[1:] * 2.0**DRAW_BITS).astype(np.int64)  # exact: each < 2**62
    mode = (1 << DRAW_BITS) - 2 * int(half.sum(dtype=np.int64))
    if not 0 < mode < (1 << DRAW_BITS):  # pragma: no cover - invariant
        raise RuntimeError("the rounded pmf does not sum to one")
    s = 0
    while 2 * -(-size // (1 << s)) + 1 > COARSE_SLOTS:
        s += 1
    B = 1 << s
    nbins = -(-size // B)
    target = np.zeros(nbins * B, dtype=np.int64)
    target[:K] = half[::-1]
    target[K] = mode
    target[K + 1 : size] = half
    flat, ramp, down, res = _split_bins(target.reshape(nbins, B))
    # the residual's total must be a power of two >= B**2: lower flat parts by B
    rest = int(res.sum(dtype=np.uint64))
    r_slot_bits = _bits_for(nbins * B)
    r_bits = max((rest - 1).bit_length(), 2 * s, r_slot_bits) if rest else r_slot_bits
    if rest:
        cut = ((1 << r_bits) - rest) >> (2 * s)  # in units of B per index of one bin
        for c in np.argsort(flat, kind="stable")[::-1]:
            d = min(int(flat[c]) >> s, cut)
            flat[c] -= d << s
            res[c] += d << s
            cut -= d
            if not cut:
                break
    c_slot_bits = _bits_for(2 * nbins + 1)
    c_low_bits = DRAW_BITS - 2 * s - c_slot_bits
    c_target = np.zeros(1 << c_slot_bits, dtype=np.int64)
    c_target[:nbins] = flat >> s
    c_target[nbins : 2 * nbins] = ramp
    c_target[2 * nbins] = (1 << r_bits) >> (2 * s) if rest else 0
    coarse, c_got = alias_table(c_target, c_slot_bits, c_low_bits)
    r_target = np.zeros(1 << r_slot_bits, dtype=np.int64)
    r_target[: nbins * B] = _unflip(res, down).reshape(-1)
    if not rest:
        r_target[0] = 1 << r_bits  # placeholder law; the coarse table never picks it
    residual, r_got = alias_table(r_target, r_slot_bits, r_bits - r_slot_bits)
    # the law the two tables draw, recomputed from them
    j = np.arange(B, dtype=np.int64)
    per_bin = (c_got[:nbins, None] << s) + c_got[nbins : 2 * nbins, None] * (2 * j + 1)
    got = _unflip(per_bin, down).reshape(-1) + (r_got[: nbins * B] if rest else 0)
    ok = (np.array_equal(c_got, c_target) and np.array_equal(r_got, r_target)
          and np.array_equal(got, target))
    if not ok or (rest and int(r_target.sum(dtype=np.uint64)) != 1 << r_bits):
        raise RuntimeError("alias table construction lost probability mass")  # pragma: no cover
    tv = (K * 2.0**-DRAW_BITS + 2 * float(err[1:].sum()) + tail) * (1 + 1e-9)
    return Table(K, s, nbins, down.astype(np.uint8), coarse, c_slot_bits, c_low_bits,
                 residual, r_slot_bits, r_bits - r_slot_bits, r_bits, got[:size].copy(),
                 (1 << r_bits) / 2.0**DRAW_BITS if rest else 0.0, tv)


def _split_bins(T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per bin (row of ``T``): flat part (a multiple of B), ramp, direction, rest >= 0.

    Rows are flipped where they fall (``down``), so that the ramp
    ``rho (2j + 1)`` rises along the flipped row; ``rest`` is returned flipped too.
    """
    B = T.shape[1]
    down = T[:, 0] > T[:, -1]
    F = _unflip(T, down)  # flipping is its own inverse
    odd = 2 * np.arange(B, dtype=np.int64) + 1
    # ramp: the rise per step, halved (rho (2j + 1) rises by 2 rho a step) ...
    rise = (F[:, 1:] - F[:, :1]) // (odd[1:] - 1) if B > 1 else np.zeros((len(F), 1), np.int64)
    ramp = np.maximum(rise.min(axis=1), 0)
    below = (F - ramp[:, None] * odd).min(axis=1)
    # ... unless the row bends so much that the ramp alone would overshoot it
    fallback = (F // odd).min(axis=1)
    ramp = np.where(below < 0, fallback, ramp)
    below = np.where(below < 0, (F - ramp[:, None] * odd).min(axis=1), below)
    flat = (below // B) * B
    return flat, ramp, down, F - flat[:, None] - ramp[:, None] * odd


def _unflip(T: np.ndarray, down: np.ndarray) -> np.ndarray:
    """``T`` with the rows where ``down`` reversed."""
    return np.where(down[:, None], T[:, ::-1], T)


def _bits_for(n: int) -> int:
    """The smallest ``s >= 1`` with ``2**s >= n``."""
    return max(1, (n - 1).bit_length())
