"""Certification straight from counts: binomial p-values + multiple testing in O(N + n)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from multitest import _kernels as K
from multitest import _randomized as R
from multitest import _step
from multitest._binomial import (
    _as_counts,
    _as_n,
    binomial_pvalue_table,
    check_count_range,
    pvalue_of_count,
    pvalues_of_counts,
    pvalues_of_valid_counts,
)
from multitest._fdr import benjamini_hochberg, benjamini_yekutieli, harmonic_number
from multitest._fwer import (
    bonferroni,
    generalized_bonferroni,
    hochberg,
    holm,
    holm_sidak,
    lehmann_romano,
    sidak,
)
from multitest._hommel import hommel
from multitest._result import MultitestResult, read_only
from multitest._step import critical_values, decides_in_one_step, iterate_rank
from multitest._validation import check_alpha, check_k, check_probability

__all__ = ["CountCertificate", "certify_counts", "COUNT_METHODS"]


class _CountMethod(NamedTuple):
    procedure: Callable[..., MultitestResult]
    code: int | None  # kernel code; None: no count kernel, fall back to the procedure
    step_up: bool
    takes_k: bool


#: Procedures accepted by :func:`certify_counts` (name -> implementation).
COUNT_METHODS: dict[str, _CountMethod] = {
    "bonferroni": _CountMethod(bonferroni, K.BONFERRONI, False, False),
    "generalized_bonferroni": _CountMethod(generalized_bonferroni, K.BONFERRONI, False, True),
    "holm": _CountMethod(holm, K.STEPDOWN_K, False, False),
    "lehmann_romano": _CountMethod(lehmann_romano, K.STEPDOWN_K, False, True),
    "sidak": _CountMethod(sidak, K.SIDAK, False, False),
    "holm_sidak": _CountMethod(holm_sidak, K.HOLM_SIDAK, False, False),
    "hochberg": _CountMethod(hochberg, K.STEPDOWN_K, True, False),
    "hommel": _CountMethod(hommel, None, False, False),
    "benjamini_hochberg": _CountMethod(benjamini_hochberg, K.BH, True, False),
    "benjamini_yekutieli": _CountMethod(benjamini_yekutieli, K.BY, True, False),
}


@dataclass(frozen=True, eq=False)
class CountCertificate(MultitestResult):
    """Result of :func:`certify_counts`.

    Attributes
    ----------
    reject : numpy.ndarray of bool
        Certified components (null ``p <= tau`` rejected), shape of the counts.
    threshold : int
        Smallest certified count that occurs: ``reject == (counts >= threshold)``;
        ``n + 1`` when nothing is certified.
    n : int
        Number of trials per component.
    tau : float
        The null's threshold probability.
    pvalues : numpy.ndarray
        The binomial p-values (computed on first access).
    pvalues_adjusted : numpy.ndarray
        Adjusted p-values of the procedure (computed on first access).

    The arrays are read-only, as in :class:`MultitestResult`.
    """

    threshold: int = 0
    n: int = 1
    tau: float = 0.5
    _pvalues: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @cached_property
    def pvalues(self) -> np.ndarray:
        return read_only(self._pvalues())


def _compact_dtype(n: int) -> type:
    """The narrowest dtype that holds 0..n + 1 (n + 1: the "no count" threshold)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n + 1 <= np.iinfo(dtype).max:
            return dtype
    return np.int64


class _CountLevels:
    """Critical values to count thresholds for one (n, tau).

    ``at_least(c)`` is the smallest count x in [0, n + 1] whose p-value
    ``P(X >= x)`` is <= c (n + 1: no count is; 0 when ``c >= 1``, which the
    k-FWER procedures reach when ``k alpha / N >= 1``). The p-value falls with the
    count, so ``#{i : pvalue(count_i) <= c} = #{i : count_i >= at_least(c)}``. Every
    critical value asked for lies in [c_min, c_max]: the ends' thresholds are
    found by bisection, and the p-values of the counts between them are evaluated
    once.
    """

    def __init__(self, n: int, tau: float, c_min: float, c_max: float) -> None:
        self.n, self.tau = n, tau
        self.first = self._search(c_max)
        last = self._search(c_min)
        neg = np.full(last - self.first + 1, np.inf)  # count n + 1 meets every level
        xs = np.arange(self.first, min(last, n) + 1)
        neg[:xs.size] = -pvalues_of_counts(n, tau, xs)
        self._neg = neg  # nondecreasing

    def _search(self, c: float) -> int:
        # count -1 stands for "below every count" (never tested); count 0 has
        # p-value 1, which a critical value c >= 1 (k alpha / N >= 1) admits
        lo, hi = -1, self.n + 1  # count n + 1 meets every c
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if pvalue_of_count(self.n, self.tau, mid) <= c:
                hi = mid
            else:
                lo = mid
        return hi

    def at_least(self, c: float) -> int:
        if c < 0:
            return self.n + 1
        return self.first + int(np.searchsorted(self._neg, -c, side="left"))


_NO_REJECT = np.empty(0, dtype=bool)
#: Up to this many counts, their p-values are evaluated one by one rather than once
#: per distinct count in a table over 0..n (the same doubles either way).
DIRECT_PVALUES_N = 64


def _decide_counts(flat, compact, n, tau, alpha, spec, k, extra):
    """Decisions and threshold of `spec`'s procedure from the counts; fills `compact`.

    The passes of the p-value path (multitest._step), in count space: the
    p-values at or below c_j are the counts at or above ``at_least(c_j)``, and
    ranks whose critical values map to the same count share their counts. The
    first pass (over the caller's counts) also writes the compact copy and the
    decisions at the first rank, which on typical inputs are already the answer.
    Where the rank iteration settles slowly, a histogram over 0..n finishes it.
    """
    code, step_up, N = spec.code, spec.step_up, flat.size
    one_step = decides_in_one_step(code, k, N)
    narrow = compact.dtype.type
    crit = critical_values(code, N, alpha, k, extra)
    levels = _CountLevels(n, tau, crit(1), crit(N))

    def level(j: int) -> int:
        return levels.at_least(crit(j))

    reject = np.empty(N, dtype=bool)
    written = level(N if step_up and not one_step else 1)  # reject == (count >= written)
    lo, hi, first = K.compact_counts(flat, np.int64(written), compact, reject)
    check_count_range(lo, hi, n)
    known = {written: first, n + 1: 0}  # count threshold t -> #{i : count_i >= t}

    def count(t: int) -> int:
        if t not in known:
            known[t] = K.count_sweep(compact, narrow(t), narrow(t), _NO_REJECT)
        return known[t]

    def sweep(j: int, nxt: int) -> int:
        nonlocal written
        t, t_next = level(j), level(nxt)
        if (t in known or t == t_next) and count(t) == count(written):
            return count(t_next)  # count >= t selects what reject already holds
        known[t_next] = K.count_sweep(compact, narrow(t), narrow(t_next), reject)
        written = t
        return known[t_next]

    if not one_step:
        R, _, _, decided = iterate_rank(first, sweep, N, step_up)
        if R is None:
            hist = K.count_histogram(compact, n)
            table = binomial_pvalue_table(n, tau, hist > 0)
            thr = int(K.counts_threshold(hist, table, code, alpha, k, extra, step_up))
            return compact >= thr, thr
        if decided != R:
            sweep(R, 0)
    if known.get(written) == 0:
        return reject, n + 1
    # n + 1 (nothing certified) if no count reaches the threshold
    return reject, int(K.smallest_at_least(compact, narrow(written), narrow(n + 1)))


def certify_counts(counts, n: int, tau: float, alpha: float, *, method: str = "holm",
                   k: int = 1, randomized: bool = False, rng=None) -> CountCertificate:
    """Certify components from their counts: ``procedure(binomial_pvalues(counts, n, tau))``.

    Each component ``i`` observed its guessed class ``counts[i]`` times out of
    ``n`` samples; its null hypothesis is ``p_i <= tau``. This returns exactly
    ``procedure(binomial_pvalues(counts, n, tau), alpha).reject`` — the testing step
    of SEGCERTIFY (Algorithm 2) — without sorting or materialising N p-values.

    Parameters
    ----------
    counts : array_like of int
        Counts in [0, n], any shape.
    n : int
        Number of samples, ``n >= 1`` (a scalar: every component saw ``n`` samples).
    tau : float
        Null threshold, in (0, 1) (SEGCERTIFY requires [1/2, 1); checked there).
    alpha : float
        Level of the procedure, in (0, 1).
    method : str, default 'holm'
        One of :data:`COUNT_METHODS`: ``'bonferroni'``, ``'generalized_bonferroni'``,
        ``'holm'``, ``'lehmann_romano'``, ``'sidak'``, ``'holm_sidak'``,
        ``'hochberg'``, ``'benjamini_hochberg'``, ``'benjamini_yekutieli'`` (and
        ``'hommel'``, which falls back to the p-value path). Only ``bonferroni``,
        ``holm``, ``generalized_bonferroni`` and ``lehmann_romano`` are valid under
        the arbitrary dependence between components of a segmentation.
    k : int, default 1
        ``k`` of the k-FWER procedures (``generalized_bonferroni``,
        ``lehmann_romano``); must stay 1 for the others.
    randomized : bool, default False
        ``True``: test with the exact randomized p-values of
        :func:`binomial_pvalues` (one ``U ~ U(0, 1)`` per component from `rng`):
        exactly ``procedure(binomial_pvalues(counts, n, tau, randomized=True,
        rng=rng), alpha)`` for a generator in the same state. The decision is then
        no longer a threshold on the count: components with the count
        ``threshold`` may be certified or not, depending on their ``U``.
    rng : numpy.random.Generator or int, optional
        Source of the ``U`` draws; required when ``randomized=True``.

    Returns
    -------
    CountCertificate
        ``reject``, ``threshold`` (reject iff ``count >= threshold``; with
        ``randomized=True`` the smallest certified count, every larger count being
        certified) and lazily computed ``pvalues`` and ``pvalues_adjusted``.

    Raises
    ------
    TypeError
        If `counts` is not integer-valued, `n` is not a scalar integer, `k` is
        not an integer, or `rng` is not a Generator or seed.
    ValueError
        If a count is outside [0, n], `n < 1`, `tau` or `alpha` is outside (0, 1),
        `k < 1`, `k != 1` for a method without `k`, `method` is unknown, or
        ``randomized=True`` without `rng`.

    Notes
    -----
    The p-value is a nonincreasing function of the count, so "p-value at most
    the critical value c_j" is "count at least t_j" for a count threshold t_j
    (bisection on the incomplete beta function), and equal counts (equal
    p-values) never straddle a step procedure's cut: the decision is a threshold
    on the count. The procedure's stopping rank is found as in the p-value path
    (see :func:`holm`), each step a comparison of the counts with one threshold.
    The first pass over the counts also checks their range, writes a compact copy
    (kept for the lazy p-values) and the decisions at t_1, which on typical inputs
    are final. Cost: O(N + n).

    Examples
    --------
    >>> import numpy as np, multitest
    >>> counts = np.array([[100, 98], [80, 60]])
    >>> cert = multitest.certify_counts(counts, n=100, tau=0.75, alpha=0.001)
    >>> cert.reject
    array([[ True,  True],
           [False, False]])
    >>> cert.threshold
    98
    >>> bool(np.array_equal(cert.reject, multitest.holm(cert.pvalues, 0.001).reject))
    True
    """
    try:
        spec = COUNT_METHODS[method]
    except (KeyError, TypeError):
        choices = ", ".join(repr(m) for m in COUNT_METHODS)
        raise ValueError(f"`method` must be one of {choices}; got {method!r}.") from None
    n = _as_n(n)
    if not isinstance(n, int):
        raise TypeError("`n` must be a scalar integer for certify_counts.")
    c = _as_counts(counts, n)
    tau = check_probability(tau, "tau")
    alpha = check_alpha(alpha)
    k = check_k(k)
    if k != 1 and not spec.takes_k:
        raise ValueError(f"`k` must be 1 for method {method!r}; got {k}.")
    gen = R.check_rng(rng, randomized)
    if gen is not None:
        return _certify_randomized(c, n, tau, alpha, method, spec, k, gen)
    shape = c.shape
    flat = np.ascontiguousarray(c).reshape(-1)
    N = flat.size
    compact = np.empty(N, dtype=_compact_dtype(n))
    kwargs = {"k": k} if spec.takes_k else {}
    flat_pvalues = None
    direct = None  # small inputs: the p-values of the N counts, evaluated directly

    def pvalues() -> np.ndarray:
        nonlocal flat_pvalues
        if direct is not None:
            return direct.reshape(shape)
        if flat_pvalues is None:
            flat_pvalues = pvalues_of_valid_counts(n, tau, compact)
        return flat_pvalues.reshape(shape)

    if spec.code is None or N <= _step.SMALL_N:  # hommel, or small: the p-value path is faster
        lo, hi, _ = K.compact_counts(flat, 0, compact, np.empty(N, dtype=bool)) if N else (0, 0, 0)
        check_count_range(lo, hi, n)
        if 0 < N <= DIRECT_PVALUES_N:  # cheaper than a table over 0..n
            direct = pvalues_of_counts(n, tau, flat.astype(np.int64, copy=False))
        res = spec.procedure(pvalues(), alpha, **kwargs)
        rej = res.reject
        thr = int(compact[rej.reshape(-1)].min()) if rej.any() else n + 1
        adjust = res._adjust
    else:
        extra = harmonic_number(N) if spec.code == K.BY else 0.0
        rej, thr = _decide_counts(flat, compact, n, tau, alpha, spec, k, extra)
        rej = rej.reshape(shape)

        def adjust() -> np.ndarray:
            return spec.procedure(pvalues(), alpha, **kwargs).pvalues_adjusted

    return CountCertificate(rej, alpha, method, k, adjust, threshold=thr, n=n, tau=tau,
                            _pvalues=pvalues)


def _certify_randomized(c, n, tau, alpha, method, spec, k, rng) -> CountCertificate:
    """The randomized test: the procedure on the randomized p-values (O(N log N))."""
    shape = c.shape
    flat = np.ascontiguousarray(c).reshape(-1)
    if flat.size:
        check_count_range(flat.min(), flat.max(), n)
    flat = flat.astype(np.int64, copy=False)
    p = R.randomized_pvalues(flat, n, tau, R.draw_uniforms(rng, shape).reshape(-1))
    p = p.reshape(shape)
    kwargs = {"k": k} if spec.takes_k else {}
    res = spec.procedure(p, alpha, **kwargs)
    rej = res.reject.reshape(-1)
    thr = int(flat[rej].min()) if rej.any() else n + 1
    return CountCertificate(res.reject, alpha, method, k, res._adjust, threshold=thr, n=n,
                            tau=tau, _pvalues=lambda: p)
