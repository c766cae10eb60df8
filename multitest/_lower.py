"""Simultaneous lower confidence bounds on per-component probabilities, from counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from multitest._binomial import (
    _as_counts,
    _as_n,
    check_count_range,
    pvalues_of_counts,
    uses_table,
)
from multitest._validation import as_array, check_alpha, check_int

__all__ = ["LOWER_METHODS", "LowerBounds", "ladder_levels", "simultaneous_lower_bounds"]

#: Most levels :func:`ladder_levels` makes (the ladder's Holm family has N x num
#: hypotheses; a finer ladder than this gains nothing measurable).
MAX_LEVELS = 2**16
#: Methods of :func:`simultaneous_lower_bounds`.
LOWER_METHODS: tuple[str, ...] = ("bonferroni", "ladder")


@dataclass(frozen=True, eq=False)
class LowerBounds:
    """Result of :func:`simultaneous_lower_bounds`.

    Attributes
    ----------
    p_lower : numpy.ndarray of float64
        Lower confidence bound of every component's success probability, shape of
        the counts; 0 where nothing is certified.
    alpha : float
        Simultaneous error probability.
    method : str
        ``'bonferroni'`` or ``'ladder'``.
    n : int
        Number of trials per component.
    levels : numpy.ndarray or None
        The ladder (``method='ladder'``); ``None`` for Bonferroni.
    """

    p_lower: np.ndarray
    alpha: float
    method: str
    n: int
    levels: np.ndarray | None = None


def _check_levels(levels) -> np.ndarray:
    arr = as_array(levels, "levels") if levels is not None else None
    if arr is not None and arr.dtype.kind not in "fiu":  # strings, bools, objects
        raise TypeError(f"`levels` must be a 1-D sequence of real numbers in (0, 1); got "
                        f"dtype {arr.dtype}.")
    if arr is not None and arr.ndim != 1:
        raise ValueError(f"`levels` must be a 1-D sequence of real numbers in (0, 1); got "
                         f"shape {arr.shape}.")
    if arr is None or arr.size == 0:
        raise ValueError("`levels` must be a non-empty, strictly increasing sequence in (0, 1).")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or arr.min() <= 0.0 or arr.max() >= 1.0:
        raise ValueError(f"`levels` must lie in (0, 1); got {arr.tolist()!r}.")
    if arr.size > 1 and not np.all(np.diff(arr) > 0):
        raise ValueError(f"`levels` must be strictly increasing; got {arr.tolist()!r}.")
    return arr


def ladder_levels(n: int, num_components: int, alpha: float, *, num: int = 8) -> np.ndarray:
    """A default ladder: ``num`` levels evenly spaced in normal quantile.

    The levels run from just above 1/2 to ``(alpha / num_components) ** (1 / n)``, the
    largest lower bound Bonferroni can give with ``n`` trials; they are evenly
    spaced in :math:`\\Phi^{-1}` (hence in Gaussian radius); where that bound is at
    most 1/2 (too few trials for any bound above 1/2) they run up to
    :math:`\\Phi(1)` instead. They depend only on
    ``(n, N, alpha)``, never on the counts, as the guarantee requires.

    Parameters
    ----------
    n : int
        Trials per component, in [1, 2**53].
    num_components : int
        Number of components N, in [1, 2**63 - 1].
    alpha : float
        Error probability, in (0, 1).
    num : int, default 8
        Number of levels, in [1, 2**16] (the ladder's family has N x num
        hypotheses).

    Returns
    -------
    numpy.ndarray
        ``num`` strictly increasing levels in (1/2, 1).

    Examples
    --------
    >>> from multitest import ladder_levels
    >>> ladder_levels(100, 1, 0.001, num=2).round(4)
    array([0.7734, 0.9333])
    """
    n = _as_n(n)
    if not isinstance(n, int):
        raise TypeError("`n` must be a scalar integer.")
    alpha = check_alpha(alpha)
    num_components = check_int(num_components, "num_components")
    num = check_int(num, "num", high=MAX_LEVELS)
    z_top = special.ndtri((alpha / num_components) ** (1.0 / n))
    if not z_top > 0:  # n too small for any bound above 1/2: a nominal ladder to Phi(1)
        z_top = 1.0
    return special.ndtr(z_top * np.arange(1, num + 1) / num)


def _bonferroni_lower(n: int, c: np.ndarray, level: float) -> np.ndarray:
    """Largest double ``p`` with ``P(Bin(n, p) >= c) <= level``, per count (0 for c = 0).

    Clopper-Pearson's one-sided bound ``betaincinv(c, n - c + 1, level)``, then
    moved by a few ulps so that it agrees with :func:`multitest.binomial_pvalues`:
    ``pvalue(tau) <= level`` exactly when ``tau <= bound`` for the doubles tested.
    """
    out = np.zeros(c.shape)
    pos = c > 0
    cc = c[pos].astype(np.float64)
    a, b = cc, n - cc + 1.0
    lo = special.betaincinv(a, b, level)

    def ok(p):
        return special.betainc(a, b, p) <= level

    for _ in range(64):  # down until the p-value at the bound is at most `level`
        bad = ~ok(lo)
        if not bad.any():
            break
        lo = np.where(bad, np.nextafter(lo, 0.0), lo)
    for _ in range(64):  # up while the next double is still rejected
        nxt = np.nextafter(lo, 1.0)
        up = ok(nxt) & (nxt < 1.0)
        if not up.any():
            break
        lo = np.where(up, nxt, lo)
    out[pos] = lo
    return out


def _distinct_counts(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, multiplicities, index)``: the sorted distinct counts, how often each
    occurs, and the position in ``values`` of every count (``values[index] == flat``).

    A histogram over 0..n where that table is small (:func:`uses_table`), a sort
    otherwise: O(N + n) or O(N log N) time, never a table sized by a huge ``n``.
    """
    if uses_table(n, flat.size):
        hist = np.bincount(flat, minlength=n + 1)
        values = np.flatnonzero(hist)
        position = np.empty(n + 1, dtype=np.int64)
        position[values] = np.arange(values.size)
        return values, hist[values], position[flat]
    values, index, mult = np.unique(flat, return_inverse=True, return_counts=True)
    return values, mult, index.reshape(-1)


def _ladder_lower(n: int, cs: np.ndarray, hist: np.ndarray, levels: np.ndarray,
                  alpha: float) -> np.ndarray:
    """Per distinct count ``cs`` (occurring ``hist`` times): the highest level whose
    hypothesis Holm rejects (0 if none)."""
    L = levels.size
    M = int(hist.sum()) * L  # hypotheses in the family
    table = np.stack([pvalues_of_counts(n, float(t), cs) for t in levels], axis=1)  # (C, L)
    mult = np.repeat(hist, L)
    flat = table.reshape(-1)
    order = np.argsort(flat, kind="stable")
    p_sorted, m_sorted = flat[order], mult[order]
    start = np.cumsum(m_sorted) - m_sorted  # rank - 1 of each group's first member
    # Holm's critical value at rank j: alpha / (M - j + 1), the kernel's expression
    # (k alpha) / (N + k - max(j, k)) with k = 1; a group of tied hypotheses is
    # bound by its first rank
    crit = alpha / (M + 1 - (start + 1)).astype(np.float64)
    fail = np.flatnonzero(p_sorted > crit)
    stop = fail[0] if fail.size else flat.size
    rejected = np.zeros(flat.size, dtype=bool)
    rejected[order[:stop]] = True
    rejected = rejected.reshape(table.shape)
    return np.where(rejected, levels[None, :], 0.0).max(axis=1)


def simultaneous_lower_bounds(counts, n: int, alpha: float, *, method: str = "bonferroni",
                              levels=None) -> LowerBounds:
    r"""Lower confidence bounds on N success probabilities, valid simultaneously.

    Component ``i`` saw ``counts[i]`` successes in ``n`` independent trials with
    unknown probability :math:`p_i`. The bounds :math:`\underline p_i` satisfy

    .. math:: P\big(\exists i : p_i < \underline p_i\big) \le \alpha

    under *any* dependence between the components' counts. In SEGCERTIFY the
    success is "the base model predicts the guessed class at component i", and
    ``sampler.radii(p_lower)`` turns the bounds into per-component radii.

    Parameters
    ----------
    counts : array_like of int
        Counts in [0, n], any shape (N = ``counts.size`` components).
    n : int
        Trials per component, in [1, 2**53].
    alpha : float
        Simultaneous error probability, in (0, 1).
    method : {'bonferroni', 'ladder'}, default 'bonferroni'
        ``'bonferroni'``: the exact one-sided Clopper-Pearson bound at level
        ``alpha / N`` per component. ``'ladder'``: Holm's step-down over the
        ``N x L`` hypotheses :math:`H_{i,l}: p_i \le \tau_l` of a finite ladder
        ``levels``; the bound is the highest rejected level.
    levels : array_like of float, optional
        The ladder :math:`\tau_1 < \dots < \tau_L` in (0, 1), a 1-D sequence of
        real numbers (``'ladder'`` only).
        Default: :func:`ladder_levels` ``(n, N, alpha)``. It must not depend on
        the counts.

    Returns
    -------
    LowerBounds
        ``p_lower`` (float64, shape of `counts`), ``alpha``, ``method``, ``n``,
        ``levels``.

    Raises
    ------
    TypeError
        If `counts` is not integer-valued, `n` not a scalar integer, or `levels`
        not real numbers (strings and bools are refused).
    ValueError
        If a count is outside [0, n], `n` outside [1, 2**53], `alpha` outside
        (0, 1), `counts` or `levels` ragged, `method` unknown, or `levels` given
        for Bonferroni, not 1-D, empty, outside (0, 1) or not strictly increasing.

    Notes
    -----
    **Bonferroni.** :math:`\underline p_i` solves
    :math:`P(\mathrm{Bin}(n, \underline p_i) \ge c_i) = \alpha / N`
    (``scipy.special.betaincinv(c, n - c + 1, alpha / N)``; 0 for ``c = 0``,
    :math:`(\alpha/N)^{1/n}` for ``c = n``), adjusted by a few ulps so that for
    every ``tau``, :math:`\underline p_i \ge \tau` exactly when the binomial test
    of :math:`p_i \le \tau` rejects at level :math:`\alpha/N`
    (:func:`certify_counts` with ``method='bonferroni'``). Each bound errs with
    probability at most :math:`\alpha/N`; the union bound gives the guarantee.

    **Ladder (closed testing).** All :math:`N L` hypotheses
    :math:`H_{i,l}: p_i \le \tau_l` form one Holm family; Holm controls the FWER
    of the family at :math:`\alpha` under arbitrary dependence. Their p-values
    :math:`P(\mathrm{Bin}(n, \tau_l) \ge c_i)` grow with :math:`l`, and Holm
    rejects every p-value below a cut, so the rejected levels of a component form
    a prefix and the bound is its top, :math:`\underline p_i = \tau_l`. The event
    :math:`p_i < \underline p_i = \tau_l` means that the true hypothesis
    :math:`H_{i,l}` was rejected, so it has probability at most :math:`\alpha`.
    Versus a grid of L fixed-tau certificates run at :math:`\alpha/L` each (the
    same family budget): the ladder rejects everything the Bonferroni
    certificates reject at every level, and everything the Holm certificate at
    the top level rejects (tested in ``tests/test_lower.py``).

    **Cost.** O(N) to histogram the counts (a sort, O(N log N), when ``n`` is
    much larger than N: nothing is ever sized by ``n``), then ``min(N, n + 1)``
    incomplete-beta inverses (Bonferroni) or ``L min(N, n + 1)`` p-values and one
    sort of them (ladder): never N x L.

    References
    ----------
    .. [1] C. J. Clopper, E. S. Pearson, "The use of confidence or fiducial limits
       illustrated in the case of the binomial", Biometrika 26 (1934).
    .. [2] S. Holm, "A simple sequentially rejective multiple test procedure",
       Scand. J. Statist. 6 (1979).
    .. [3] R. Marcus, E. Peritz, K. R. Gabriel, "On closed testing procedures with
       special reference to ordered analysis of variance", Biometrika 63 (1976).

    Examples
    --------
    >>> import numpy as np
    >>> from multitest import simultaneous_lower_bounds
    >>> res = simultaneous_lower_bounds([100, 90, 0], n=100, alpha=0.001)
    >>> res.p_lower.round(4)
    array([0.9231, 0.761 , 0.    ])
    >>> lad = simultaneous_lower_bounds([100, 90, 0], n=100, alpha=0.001,
    ...                                 method="ladder", levels=[0.6, 0.75, 0.9])
    >>> lad.p_lower
    array([0.9 , 0.75, 0.  ])
    """
    if not isinstance(method, str) or method not in LOWER_METHODS:
        choices = ", ".join(repr(m) for m in LOWER_METHODS)
        raise ValueError(f"`method` must be one of {choices}; got {method!r}.")
    c = _as_counts(counts)
    n = _as_n(n)
    if not isinstance(n, int):
        raise TypeError("`n` must be a scalar integer for simultaneous_lower_bounds.")
    alpha = check_alpha(alpha)
    shape = c.shape
    flat = np.ascontiguousarray(c).reshape(-1).astype(np.int64, copy=False)
    N = flat.size
    if method == "bonferroni" and levels is not None:
        raise ValueError("`levels` applies to method='ladder' only; got levels for "
                         "'bonferroni'.")
    if N == 0:
        lv = None if method == "bonferroni" else (
            _check_levels(levels) if levels is not None else None)
        return LowerBounds(np.zeros(shape), alpha, method, n, lv)
    check_count_range(int(flat.min()), int(flat.max()), n)
    values, mult, index = _distinct_counts(flat, n)
    if method == "bonferroni":
        lower = _bonferroni_lower(n, values, alpha / N)
        return LowerBounds(lower[index].reshape(shape), alpha, method, n, None)
    lv = ladder_levels(n, N, alpha) if levels is None else _check_levels(levels)
    lower = _ladder_lower(n, values, mult, lv, alpha)
    return LowerBounds(lower[index].reshape(shape), alpha, method, n, lv)
