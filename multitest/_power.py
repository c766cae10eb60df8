"""Exact power of SEGCERTIFY and CERTIFY, and a sample-size planner.

Everything here is a closed-form binomial computation (no simulation): the
Clopper–Pearson bound of CERTIFY (Algorithm 1 of the paper), the count thresholds
at which CERTIFY and SEGCERTIFY with Bonferroni certify, the probability that a
component is certified, and the smallest number of samples ``n`` that reaches a
target probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from multitest._binomial import _as_counts, _as_n
from multitest._validation import (
    MAX_N,
    as_array,
    check_alpha,
    check_bool,
    check_int,
    check_probability,
)

__all__ = [
    "SampleSizePlan",
    "bonferroni_threshold",
    "certify_threshold",
    "clopper_pearson_lower",
    "expected_certified_fraction",
    "guess_probability",
    "required_samples",
    "segcertify_power",
]


# ---------------------------------------------------------------------------
# validation helpers (private)
# ---------------------------------------------------------------------------
def _check_samples(value, name: str) -> int:
    """A number of samples (``n``, ``n0``, ``n_max``): an integer in [1, 2**53]."""
    return check_int(value, name, high=MAX_N)


def _check_tau(tau) -> float:
    return check_probability(tau, "tau", low=0.5, closed_low=True)


def _check_p(p, name: str) -> np.ndarray:
    arr = as_array(p, name)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"`{name}` must be real numbers in [0, 1]; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.size and (np.isnan(arr).any() or arr.min() < 0.0 or arr.max() > 1.0):
        bad = arr[np.isnan(arr) | (arr < 0.0) | (arr > 1.0)][0]
        raise ValueError(f"`{name}` must lie in [0, 1]; got {bad!r}.")
    return arr


def _scalar_or_array(x: np.ndarray):
    return float(x) if x.ndim == 0 else x


# ---------------------------------------------------------------------------
# binomial building blocks (private, vectorised, no validation)
# ---------------------------------------------------------------------------
def _sf_ge(t, n, p) -> np.ndarray:
    """``P(Bin(n, p) >= t)`` elementwise (t may be <= 0 or > n)."""
    t, n, p = np.broadcast_arrays(np.asarray(t, np.int64), np.asarray(n, np.int64),
                                  np.asarray(p, np.float64))
    safe = np.clip(t, 1, np.maximum(n, 1))
    out = special.betainc(safe, n - safe + 1, p)
    out = np.where(t <= 0, 1.0, out)
    return np.where(t > n, 0.0, out)


def _binom_pmf(c, n, p) -> np.ndarray:
    """``P(Bin(n, p) = c)`` elementwise (0 outside [0, n])."""
    from scipy import stats  # ~0.4 s to import, for this one pmf: only when needed

    return stats.binom.pmf(c, n, p)


def _thresholds(ns: np.ndarray, tau: float, level: float) -> np.ndarray:
    """Smallest count ``t`` with ``betainc(t, n - t + 1, tau) <= level`` for each n.

    The p-value ``P(Bin(n, tau) >= c)`` is nonincreasing in ``c``, so a vectorised
    bisection finds the first count whose p-value is at most ``level``; ``n + 1``
    where no count qualifies. Same floating-point expression as
    :func:`binomial_pvalue_table`, hence the same decisions as
    :func:`certify_counts`.
    """
    ns = np.asarray(ns, np.int64)
    lo = np.ones_like(ns)  # count 0 has p-value 1 > level
    hi = ns + 1  # sentinel: "none"
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        m = np.where(active, mid, 1)
        ok = special.betainc(m, ns - m + 1, tau) <= level
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------
def clopper_pearson_lower(counts, n, alpha: float) -> np.ndarray:
    """One-sided Clopper–Pearson lower confidence bound at level ``1 - alpha``.

    The ``LOWERCONFBND(count, n, 1 - alpha)`` of CERTIFY (Algorithm 1; Cohen et
    al., 2019): the ``alpha`` quantile of ``Beta(count, n - count + 1)``, and 0
    for ``count = 0``.

    Parameters
    ----------
    counts : array_like of int
        Observed successes, any shape, ``0 <= count <= n``.
    n : int or array_like of int
        Number of trials, in [1, 2**53], broadcast against `counts`.
    alpha : float
        One minus the confidence level, in (0, 1).

    Returns
    -------
    numpy.ndarray
        float64 lower bounds with the broadcast shape of `counts` and `n`.

    Raises
    ------
    TypeError
        If `counts` or `n` are not integer-valued.
    ValueError
        If a count lies outside [0, n], `n` is outside [1, 2**53], `counts` is
        ragged, or `alpha` is not in (0, 1).

    Notes
    -----
    ``P(p >= clopper_pearson_lower(X, n, alpha)) >= 1 - alpha`` for every true
    success probability ``p``. The bound equals ``scipy.stats.beta.ppf(alpha,
    count, n - count + 1)`` bit for bit (both call Boost's ``ibeta_inv``).
    ``lower > 1/2`` holds exactly when ``P(Bin(n, 1/2) >= count) < alpha``, so
    CERTIFY is the one-sided binomial test at 1/2 with a strict inequality.

    References
    ----------
    .. [1] C. J. Clopper and E. S. Pearson, "The use of confidence or fiducial
       limits illustrated in the case of the binomial", Biometrika 26(4), 1934.
    .. [2] J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified adversarial robustness
       via randomized smoothing", ICML 2019.

    Examples
    --------
    >>> from multitest import clopper_pearson_lower
    >>> clopper_pearson_lower([0, 50, 100], n=100, alpha=0.001)
    array([0.        , 0.34479801, 0.9332543 ])
    """
    c = _as_counts(counts)
    nn = _as_n(n)
    alpha = check_alpha(alpha)
    c, nn = np.broadcast_arrays(c, np.asarray(nn, np.int64))
    if c.size and ((c < 0).any() or (c > nn).any()):
        bad = c[(c < 0) | (c > nn)][0]
        raise ValueError(f"`counts` must lie in [0, n]; got {bad}.")
    safe = np.maximum(c, 1)
    out = special.betaincinv(safe, nn - safe + 1, alpha)
    return np.where(c == 0, 0.0, out)


def certify_threshold(n: int, alpha: float) -> int:
    """Smallest count at which CERTIFY certifies: ``clopper_pearson_lower > 1/2``.

    Parameters
    ----------
    n : int
        Number of counting samples, in [1, 2**53].
    alpha : float
        Error probability of CERTIFY, in (0, 1). INDIVCLASS over ``N`` components
        uses ``alpha / N`` (Bonferroni).

    Returns
    -------
    int
        The smallest ``c`` in 0..n with ``clopper_pearson_lower(c, n, alpha) > 1/2``,
        or ``n + 1`` if there is none (CERTIFY then always abstains).

    Raises
    ------
    TypeError, ValueError
        If `n` is not an integer >= 1 or `alpha` is not in (0, 1).

    Examples
    --------
    >>> from multitest import certify_threshold
    >>> certify_threshold(100, 0.001), certify_threshold(100, 0.001 / 100)
    (66, 72)
    """
    n = _check_samples(n, "n")
    alpha = check_alpha(alpha)

    def above(c: int) -> bool:  # the bound grows with the count: bisection, O(log n)
        return c > 0 and float(special.betaincinv(c, n - c + 1, alpha)) > 0.5

    lo, hi = 0, n + 1  # invariant: not above(lo); above(hi) or hi == n + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if above(mid):
            hi = mid
        else:
            lo = mid
    return hi


def bonferroni_threshold(n: int, tau: float, alpha: float, *, N: int) -> int:
    """Smallest count that SEGCERTIFY with Bonferroni certifies at ``N`` components.

    Parameters
    ----------
    n : int
        Number of counting samples, in [1, 2**53].
    tau : float
        SEGCERTIFY's threshold, in [1/2, 1).
    alpha : float
        Family-wise error rate, in (0, 1).
    N : int
        Number of components (hypotheses), in [1, 2**63 - 1].

    Returns
    -------
    int
        The smallest ``t`` with ``P(Bin(n, tau) >= t) <= alpha / N``, or ``n + 1``
        if no count qualifies. A component is certified iff its count is ``>= t``;
        this is the ``threshold`` :func:`certify_counts` reports with
        ``method='bonferroni'`` whenever such a count occurs.

    Raises
    ------
    TypeError, ValueError
        On an invalid argument (see the ranges above).

    Examples
    --------
    >>> from multitest import bonferroni_threshold
    >>> bonferroni_threshold(100, 0.75, 0.001, N=100)
    93
    """
    n = _check_samples(n, "n")
    tau = _check_tau(tau)
    alpha = check_alpha(alpha)
    N = check_int(N, "N")
    return int(_thresholds(np.array([n]), tau, (1 * alpha) / N)[0])  # O(log n)


def guess_probability(p_A, n0: int, *, ties_to_top: bool = True):
    """Probability that the ``n0`` guessing samples pick the top class.

    Two classes: the top class has probability `p_A`, the other ``1 - p_A``; the
    guess is the class seen most often in ``n0`` samples.

    Parameters
    ----------
    p_A : float or array_like
        Probability of the top class, in [0, 1].
    n0 : int
        Number of guessing samples, in [1, 2**53].
    ties_to_top : bool, default True
        Whether a tie (``n0`` even, ``n0 / 2`` each) goes to the top class, as when
        the top class has the lowest index (the oracle of §6.1 and the paper's
        code). With ``False`` this is ``P(Bin(n0, p_A) > n0 / 2)``, the probability
        of a strict majority — a lower bound on the probability of a right guess
        for **any** number of classes.

    Returns
    -------
    float or numpy.ndarray
        The probability, shaped like `p_A`.

    Raises
    ------
    TypeError, ValueError
        If `p_A` is not real numbers in [0, 1], `n0` not an integer in
        [1, 2**53], or `ties_to_top` not a bool.

    Examples
    --------
    >>> from multitest import guess_probability
    >>> float(guess_probability(0.5, 2)), float(guess_probability(0.5, 2, ties_to_top=False))
    (0.75, 0.25)
    """
    p = _check_p(p_A, "p_A")
    n0 = _check_samples(n0, "n0")
    ties_to_top = check_bool(ties_to_top, "ties_to_top")
    t = (n0 + 1) // 2 if ties_to_top else n0 // 2 + 1
    return _scalar_or_array(_sf_ge(t, n0, p))


def segcertify_power(p_A, n: int, tau: float, alpha: float, *, N: int, n0: int | None = None):
    """Exact probability that SEGCERTIFY with Bonferroni certifies a component.

    The component's top class has probability `p_A`; it is certified (with that
    class) iff its guess is the top class and the top class is counted at least
    :func:`bonferroni_threshold` times in ``n`` samples.

    Parameters
    ----------
    p_A : float or array_like
        Top-class probability of the component(s), in [0, 1].
    n : int
        Number of counting samples, in [1, 2**53].
    tau : float
        SEGCERTIFY's threshold, in [1/2, 1).
    alpha : float
        Family-wise error rate, in (0, 1).
    N : int
        Number of components tested together, in [1, 2**63 - 1].
    n0 : int, optional
        Number of guessing samples. ``None`` (default) assumes the guess is right.
        Otherwise the result is multiplied by :func:`guess_probability` for two
        classes with ties to the top class; with more classes, use
        ``n0=None`` and multiply by your own guess probability (or by
        ``guess_probability(p_A, n0, ties_to_top=False)``, a lower bound).

    Returns
    -------
    float or numpy.ndarray
        ``P(guess right) * P(Bin(n, p_A) >= t)``, shaped like `p_A`.

    Raises
    ------
    TypeError, ValueError
        On an invalid argument (ranges above).

    Notes
    -----
    Bonferroni compares every p-value with the same level ``alpha / N``, so a
    component's decision depends on its own count alone and this probability is
    exact whatever the dependence between components. Holm certifies a superset
    of Bonferroni, so for Holm this is a lower bound. Cost: one ``betainc`` per
    value of `p_A` plus ``n`` for the threshold.

    Examples
    --------
    >>> from multitest import segcertify_power
    >>> segcertify_power([0.9, 0.95, 0.99], n=100, tau=0.75, alpha=0.001, N=100).round(4)
    array([0.2061, 0.872 , 1.    ])
    """
    p = _check_p(p_A, "p_A")
    t = bonferroni_threshold(n, tau, alpha, N=N)
    power = _sf_ge(t, n, p)
    if n0 is not None:
        n0 = _check_samples(n0, "n0")
        power = power * _sf_ge((n0 + 1) // 2, n0, p)
    return _scalar_or_array(power)


def expected_certified_fraction(p_A, n: int, tau: float, alpha: float, *, N: int,
                                weights=None, n0: int | None = None) -> float:
    """Expected fraction of components SEGCERTIFY-Bonferroni certifies with their top class.

    Parameters
    ----------
    p_A : array_like
        Top-class probabilities: one per component, or the support of a
        distribution of ``p_A`` over components (with `weights`).
    n : int
        Number of counting samples, in [1, 2**53].
    tau : float
        SEGCERTIFY's threshold, in [1/2, 1).
    alpha : float
        Family-wise error rate, in (0, 1).
    N : int
        Number of components tested together (sets the Bonferroni level
        ``alpha / N``), in [1, 2**63 - 1].
    weights : array_like, optional
        Nonnegative weights (frequencies or probabilities) of the values in
        `p_A`, same shape; normalised to sum to one. Default: equal weights.
    n0 : int, optional
        Include the guessing step, as in :func:`segcertify_power`.

    Returns
    -------
    float
        ``sum(w * segcertify_power(p_A)) / sum(w)``.

    Raises
    ------
    TypeError, ValueError
        On an invalid argument, or `weights` of another shape, negative or all zero.

    Notes
    -----
    Linearity of expectation: exact for Bonferroni under any dependence between
    components; a lower bound for Holm.

    Examples
    --------
    >>> from multitest import expected_certified_fraction
    >>> f = expected_certified_fraction([0.999, 0.9, 0.6], 100, 0.75, 0.001, N=10**4,
    ...                                 weights=[0.9, 0.08, 0.02])
    >>> round(f, 4)
    0.9019
    """
    p = _check_p(p_A, "p_A").reshape(-1)
    if p.size == 0:
        raise ValueError("`p_A` must contain at least one value.")
    if weights is None:
        w = np.ones_like(p)
    else:
        w = as_array(weights, "weights")
        if w.dtype.kind not in "fiu":
            raise TypeError("`weights` must be an array of real numbers; "
                            f"got dtype {w.dtype}.")
        w = w.astype(np.float64).reshape(-1)
        if w.shape != p.shape:
            raise ValueError(f"`weights` must have the shape of `p_A`, {p.shape}; got {w.shape}.")
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("`weights` must be finite, >= 0 and not all zero.")
    power = np.asarray(segcertify_power(p, n, tau, alpha, N=N, n0=n0))
    return float(np.sum(w * power) / np.sum(w))


@dataclass(frozen=True)
class SampleSizePlan:
    """Result of :func:`required_samples`.

    Attributes
    ----------
    n : int
        The smallest number of counting samples that reaches the target.
    threshold : int
        The count a component needs at that ``n`` (:func:`bonferroni_threshold`).
    power : float
        The probability of certifying the component at that ``n``, ``>= 1 - beta``.
    """

    n: int
    threshold: int
    power: float


def _randomized_power(ns, p, tau, level, guess):
    """Power of the exact-size randomised UMP test, times ``guess`` (nondecreasing in n)."""
    ns = np.asarray(ns, np.int64)
    t = _thresholds(ns, tau, level)
    size = _sf_ge(t, ns, tau)
    at = _binom_pmf(t - 1, ns, tau)
    g = np.where(at > 0, (level - size) / np.where(at > 0, at, 1.0), 0.0)
    g = np.clip(g, 0.0, 1.0)
    return guess * (_sf_ge(t, ns, p) + g * _binom_pmf(t - 1, ns, p))


def required_samples(p_A: float, tau: float, alpha: float, beta: float, *, N: int,
                     n0: int | None = None, n_max: int = 10**7) -> SampleSizePlan:
    """Smallest ``n`` with which SEGCERTIFY-Bonferroni certifies a component w.p. ``>= 1 - beta``.

    Parameters
    ----------
    p_A : float
        Top-class probability of the component, in [0, 1]; must exceed `tau`.
    tau : float
        SEGCERTIFY's threshold, in [1/2, 1).
    alpha : float
        Family-wise error rate, in (0, 1).
    beta : float
        Accepted probability of not certifying the component, in (0, 1).
    N : int
        Number of components certified together, in [1, 2**63 - 1].
    n0 : int, optional
        Number of guessing samples, included as in :func:`segcertify_power`
        (two classes); ``None`` assumes the guess is right.
    n_max : int, default 10**7
        Largest ``n`` considered, in [1, 2**53].

    Returns
    -------
    SampleSizePlan
        ``n``, the ``threshold`` count at that ``n`` and the exact ``power``.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range, ``p_A <= tau`` (the certification
        probability then never exceeds ``alpha / N``), the guess probability of
        `n0` is already below ``1 - beta``, or no ``n <= n_max`` suffices.

    Notes
    -----
    The power ``P(Bin(n, p_A) >= t_n)`` of the non-randomised test is **not**
    monotone in ``n`` (the threshold ``t_n`` moves in integer steps), so the
    smallest sufficient ``n`` can be followed by a few insufficient ones; the
    returned ``n`` is the smallest, exactly. It is found without scanning from 1:
    the exact-size randomised UMP test at level ``alpha / N`` is at least as
    powerful as the non-randomised one and its power is nondecreasing in ``n``
    (a test may ignore a sample), so bisection on it gives an ``n`` below which
    nothing can succeed; from there the exact power is scanned upward. Cost:
    ``O(log n_max)`` vectorised bisections plus a short scan.

    Examples
    --------
    >>> from multitest import required_samples
    >>> plan = required_samples(0.9, tau=0.75, alpha=0.001, beta=0.05, N=1024 * 2048)
    >>> plan.n, plan.threshold, round(plan.power, 4)
    (394, 345, 0.9515)
    """
    p = float(_check_p(p_A, "p_A")) if np.ndim(p_A) == 0 else None
    if p is None:
        raise TypeError("`p_A` must be a scalar in [0, 1]; use segcertify_power for arrays.")
    tau = _check_tau(tau)
    alpha = check_alpha(alpha)
    beta = check_probability(beta, "beta")
    N = check_int(N, "N")
    n_max = _check_samples(n_max, "n_max")
    if p <= tau:
        raise ValueError(
            f"`p_A` must exceed `tau` = {tau!r}; got {p!r} (the certification probability "
            "is then at most alpha / N)."
        )
    guess = 1.0
    if n0 is not None:
        n0 = _check_samples(n0, "n0")
        guess = float(_sf_ge((n0 + 1) // 2, n0, p))
        if guess < 1.0 - beta:
            raise ValueError(
                f"`n0` = {n0} guesses the top class with probability {guess:.6g} < 1 - beta; "
                "increase `n0`."
            )
    level = (1 * alpha) / N
    target = 1.0 - beta
    if _randomized_power(n_max, p, tau, level, guess) < target:
        raise ValueError(f"no n <= `n_max` = {n_max} reaches power 1 - beta = {target:g}.")
    lo, hi = 1, n_max  # invariant: randomised power(hi) >= target
    while lo < hi:
        mid = (lo + hi) // 2
        if _randomized_power(mid, p, tau, level, guess) >= target:
            hi = mid
        else:
            lo = mid + 1
    start = max(1, lo - 2)  # slack for rounding in the bound
    chunk = 256
    while start <= n_max:
        ns = np.arange(start, min(start + chunk, n_max + 1))
        t = _thresholds(ns, tau, level)
        power = guess * _sf_ge(t, ns, p)
        ok = np.flatnonzero(power >= target)
        if ok.size:
            i = ok[0]
            return SampleSizePlan(n=int(ns[i]), threshold=int(t[i]), power=float(power[i]))
        start += chunk
        chunk *= 2
    raise ValueError(f"no n <= `n_max` = {n_max} reaches power 1 - beta = {target:g}.")
