"""Exact one-sided binomial p-values (the paper's BINPVALUE)."""

from __future__ import annotations

import numbers

import numpy as np
from scipy import special

from multitest import _kernels as K
from multitest import _randomized as R
from multitest._table import uses_table
from multitest._validation import MAX_N, as_array, check_int, check_probability

__all__ = [
    "binomial_pvalue_table",
    "binomial_pvalues",
    "pvalue_of_count",
    "pvalues_of_counts",
    "pvalues_of_valid_counts",
    "uses_table",
]


def _as_counts(counts, n=None) -> np.ndarray:
    """Integer array of `counts`; float arrays must hold integers.

    A float array is checked for finiteness, range and integrality *before* it is
    cast, so an out-of-range value is reported as given (not wrapped by the cast).
    With a scalar `n` the range is [0, n]; otherwise the values must fit int64 and
    the caller checks them against its `n`.
    """
    arr = as_array(counts, "counts")
    if arr.dtype == object:
        _raise_object_ints(arr, "counts", f"[0, {n}]" if isinstance(n, int) else "[0, n]")
    if arr.dtype.kind in "iu":
        # numba kernels take native byte order only (a no-op for native arrays)
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind != "f":
        raise TypeError(f"`counts` must be an array of integers; got dtype {arr.dtype}.")
    if arr.size == 0:
        return arr.astype(np.int64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = arr[~finite].flat[0].item()
        raise ValueError(f"`counts` must be finite integers; got {bad!r}.")
    lo, hi = arr.min().item(), arr.max().item()
    if isinstance(n, int):
        if lo < 0 or hi > n:
            raise ValueError(f"`counts` must lie in [0, n] = [0, {n}]; "
                             f"got {lo if lo < 0 else hi!r}.")
    elif lo < 0 or hi >= 2.0**63:
        raise ValueError(f"`counts` must lie in [0, n]; got {lo if lo < 0 else hi!r}.")
    fractional = arr != np.floor(arr)
    if fractional.any():
        bad = arr[fractional].flat[0].item()
        raise ValueError(f"`counts` must be integers; got {bad!r}.")
    return arr.astype(np.int64)


def _raise_object_ints(arr: np.ndarray, name: str, accepted: str) -> None:
    """An object array of Python ints is integers too large for int64: say so."""
    flat = arr.reshape(-1)
    if flat.size and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                         for v in flat):
        bad = max(flat, key=abs)
        raise ValueError(f"`{name}` must lie in {accepted}; got {bad!r}.")


def _as_n(n):
    """Scalar ``int`` or int64 array of trial numbers, each in [1, MAX_N]."""
    if isinstance(n, (bool, np.bool_)):
        raise TypeError("`n` must be an integer in [1, 2**53]; got a bool.")
    if isinstance(n, numbers.Integral):
        return check_int(n, "n", high=MAX_N)
    arr = as_array(n, "n")
    if arr.dtype == object:
        _raise_object_ints(arr, "n", "[1, 2**53]")
    if arr.ndim == 0 and arr.dtype.kind in "iu":
        return _as_n(int(arr))
    if arr.dtype.kind not in "iu":
        raise TypeError(f"`n` must be an integer or an array of integers; got {n!r}.")
    if arr.size and (arr.min() < 1 or arr.max() > MAX_N):  # before the cast wraps a uint64
        bad = arr.min() if arr.min() < 1 else arr.max()
        raise ValueError(f"`n` must lie in [1, 2**53] everywhere; got {bad}.")
    return arr.astype(np.int64, copy=False)


def check_count_range(lo: int, hi: int, n: int) -> None:
    """Raise the ValueError for counts outside [0, n], given their min and max."""
    if lo < 0 or hi > n:
        raise ValueError(f"`counts` must lie in [0, n] = [0, {n}]; got {lo if lo < 0 else hi}.")


#: Largest ``n`` of :func:`binomial_pvalue_table` (its table holds n + 1 doubles).
TABLE_MAX_N = 2**28


def binomial_pvalue_table(n: int, tau: float, which=None) -> np.ndarray:
    """p-values ``P(X >= c)``, X ~ Binomial(n, tau), for c = 0..n (NaN where not asked).

    Parameters
    ----------
    n : int
        Number of trials, in [1, 2**28] (the table holds ``n + 1`` doubles, 2 GiB
        at the limit).
    tau : float
        Success probability under the null, in (0, 1).
    which : array_like of bool, optional
        Boolean mask of length ``n + 1`` over the counts 0..n whose p-value is
        needed; the others are NaN. Default: all of them. Integer indices are
        refused (a 0/1 array would be ambiguous); for the p-values of given counts
        use :func:`binomial_pvalues`.

    Returns
    -------
    numpy.ndarray
        float64 array of length ``n + 1``.

    Raises
    ------
    TypeError
        If `n` is not a scalar integer or `which` is not boolean.
    ValueError
        If `n` is outside [1, 2**28], `tau` is not in (0, 1) or `which` is not of
        length ``n + 1``.

    Examples
    --------
    >>> from multitest import binomial_pvalue_table
    >>> binomial_pvalue_table(2, 0.5)
    array([1.  , 0.75, 0.25])
    """
    n = _as_n(n)
    if not isinstance(n, int):
        raise TypeError("`n` must be a scalar integer here.")
    if n > TABLE_MAX_N:
        raise ValueError(f"`n` must be an integer in [1, 2**28] for a table over 0..n "
                         f"(n + 1 doubles); got {n}. For the p-values of given counts use "
                         "binomial_pvalues.")
    tau = check_probability(tau, "tau")
    if which is not None:
        which = as_array(which, "which")
        if which.dtype != np.bool_:
            raise TypeError("`which` must be a boolean mask over the counts 0..n; got dtype "
                            f"{which.dtype} (for given counts use binomial_pvalues).")
        if which.shape != (n + 1,):
            raise ValueError(f"`which` must have shape (n + 1,) = ({n + 1},); "
                             f"got {which.shape}.")
    table = np.full(n + 1, np.nan)
    idx = np.arange(n + 1) if which is None else np.flatnonzero(which)
    table[idx] = pvalues_of_counts(n, tau, idx)
    return table


def pvalue_of_count(n: int, tau: float, count: int) -> float:
    """``P(X >= count)`` for one count in [0, n]: the double :func:`pvalues_of_counts`
    gives (the same ufunc loop on the same arguments), without array overhead."""
    return 1.0 if count == 0 else float(special.betainc(count, n - count + 1, tau))


def pvalues_of_counts(n: int, tau: float, counts: np.ndarray) -> np.ndarray:
    """``P(X >= c)`` for each c of an int64 array of counts in [0, n] (no validation).

    Every path (table, gather, count thresholds) computes p-values of counts here
    or in :func:`pvalue_of_count`, so they all get the same doubles.
    """
    out = np.ones(counts.shape)
    pos = counts > 0
    c = counts[pos]
    out[pos] = special.betainc(c, n - c + 1, tau)
    return out


def pvalues_of_valid_counts(n: int, tau: float, flat: np.ndarray) -> np.ndarray:
    """p-values of a flat array of counts already checked to lie in [0, n].

    Tabulates the values that occur (:func:`uses_table`) or evaluates each count;
    both call :func:`pvalues_of_counts`, so they give the same doubles.
    """
    if uses_table(n, flat.size):
        table = binomial_pvalue_table(n, tau, K.presence(flat, n))
        return table[flat]
    return pvalues_of_counts(n, tau, flat.astype(np.int64, copy=False))


def binomial_pvalues(counts, n, tau: float, *, randomized: bool = False,
                     rng=None) -> np.ndarray:
    """One-sided exact binomial p-values ``P(X >= count)``, X ~ Binomial(n, tau).

    The p-value of the test of ``H0: p <= tau`` against ``H1: p > tau`` after
    observing ``count`` successes in ``n`` trials — the paper's
    ``BINPVALUE(n_i, n, <=, tau)``.

    Parameters
    ----------
    counts : array_like of int
        Observed numbers of successes, any shape, ``0 <= count <= n``. Float arrays
        are accepted when every value is integral.
    n : int or array_like of int
        Number of trials, in [1, 2**53]: a scalar, or an array broadcast against
        `counts`.
    tau : float
        Success probability under the null, in (0, 1).
    randomized : bool, default False
        ``True``: the exact randomized p-value ``P(X > count) + U * P(X = count)``
        with one ``U ~ U(0, 1)`` per component drawn from `rng` (in C order of the
        broadcast shape) -- exactly uniform under ``p = tau``, never larger than
        the conservative p-value, but a random function of the count
        (:mod:`multitest._randomized`).
    rng : numpy.random.Generator or int, optional
        Source of the ``U`` draws; required when ``randomized=True``, ignored
        otherwise.

    Returns
    -------
    numpy.ndarray
        float64 p-values with the broadcast shape of `counts` and `n`.

    Raises
    ------
    TypeError
        If `counts` or `n` are not integer-valued arrays, or `rng` is not a
        Generator or seed.
    ValueError
        If a count lies outside [0, n], `n` is outside [1, 2**53], `counts` is
        ragged, `tau` is not in (0, 1), `rng` is a negative seed, or
        ``randomized=True`` without `rng`.

    Notes
    -----
    The value is ``betainc(c, n - c + 1, tau)`` for ``c >= 1`` and 1 for ``c = 0``,
    bit for bit what ``scipy.stats.binomtest(c, n, tau, alternative='greater')``
    and ``scipy.stats.binom.sf(c - 1, n, tau)`` return (Boost's regularised
    incomplete beta, accurate down to subnormal p-values).

    With a scalar `n` there are at most ``n + 1`` distinct p-values. When the
    table over 0..n is small (at most :data:`~multitest._table.TABLE_ENTRIES_PER_COUNT` entries per
    count and :data:`~multitest._table.TABLE_MAX_ENTRIES` in all) they are evaluated once for the
    count values that occur, then gathered: O(N + n) array work plus
    ``min(N, n + 1)`` incomplete-beta evaluations instead of ``N``. Otherwise each
    count is evaluated directly, in O(N) memory whatever `n`. Both routes give the
    same doubles.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable certified segmentation via
       randomized smoothing", ICML 2021, Algorithm 2.

    Examples
    --------
    >>> from multitest import binomial_pvalues
    >>> binomial_pvalues([100, 90, 75, 0], n=100, tau=0.75)
    array([3.20720219e-13, 1.37100563e-04, 5.53470824e-01, 1.00000000e+00])
    >>> p = binomial_pvalues([100, 90, 75, 0], n=100, tau=0.75, randomized=True, rng=0)
    >>> bool((p <= binomial_pvalues([100, 90, 75, 0], n=100, tau=0.75)).all())
    True
    """
    n = _as_n(n)
    c = _as_counts(counts, n)
    tau = check_probability(tau, "tau")
    gen = R.check_rng(rng, randomized)
    if gen is not None:
        return _randomized_pvalues(c, n, tau, gen)
    if isinstance(n, int):
        shape = c.shape
        flat = np.ascontiguousarray(c).reshape(-1)
        if flat.size == 0:
            return np.zeros(shape)
        check_count_range(flat.min(), flat.max(), n)
        if flat.dtype != np.int64:
            flat = flat.astype(np.int64)
        return pvalues_of_valid_counts(n, tau, flat).reshape(shape)
    c, nn = np.broadcast_arrays(c, n)
    bad = (c < 0) | (c > nn)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise ValueError(f"`counts` must lie in [0, n] elementwise; got a count of "
                         f"{c.flat[i].item()!r} with n = {nn.flat[i].item()!r}.")
    safe = np.maximum(c, 1)
    out = special.betainc(safe, nn - safe + 1, tau)
    out[c == 0] = 1.0
    return out


def _randomized_pvalues(c: np.ndarray, n, tau: float, rng: np.random.Generator) -> np.ndarray:
    """Validated counts -> randomized p-values, U drawn over the broadcast shape."""
    if isinstance(n, int):
        if c.size:
            check_count_range(c.min(), c.max(), n)
        c = c.astype(np.int64, copy=False)
    else:
        c, n = np.broadcast_arrays(c, n)
        if c.size and ((c < 0).any() or (c > n).any()):
            raise ValueError("`counts` must lie in [0, n] elementwise.")
        c = c.astype(np.int64)
    return R.randomized_pvalues(c, n, tau, R.draw_uniforms(rng, c.shape))
