"""The oracle base model of §6.1 and the certification methods run on its counts.

The oracle segments ``N`` components into two classes (index 0 is the right class,
index 1 the wrong one). Components ``0..k-1`` are "bad": right with probability
``clip(1 - 5 gamma, 0, 1)``; the other ``N - k`` are right with probability
``1 - gamma``. Every sample is independent across components and draws, and the
``n0`` guessing samples are independent of the ``n`` counting samples.

Per component only two numbers matter to SEGCERTIFY and INDIVCLASS: whether the
guess from ``n0`` samples is the right class (``Bin(n0, q)`` right votes, ties to
the lowest class index, i.e. the right class) and the count of the guessed class in
``n`` samples (``Bin(n, q)`` or ``Bin(n, 1 - q)``). :func:`sample_oracle` draws them
directly from the binomial distribution: the same distribution as ``n0 + n``
Bernoulli draws per component, at the cost of two draws.

JOINTCLASS needs the joint label of all components; :func:`jointclass_trials`
samples it exactly through the sizes of its sets of wrong components (see there).

Methods (each returns per-repetition rates, :class:`Rates`):

* :func:`segcertify_rates` — SEGCERTIFY (Algorithm 2) with Bonferroni, Holm or
  Lehmann–Romano k-FWER (budget ``b``, ``k = b + 1``), via
  :func:`multitest.certify_counts`.
* :func:`indivclass_rates` — CERTIFY per component at ``alpha / N``, all or none.
* :func:`jointclass_rates` — CERTIFY on the joint label, all or none.

Exact expectations: :func:`analytic_segcertify_bonferroni`,
:func:`analytic_indivclass`.

Random routines take ``seed`` (an int, a :class:`numpy.random.SeedSequence`, a
:class:`numpy.random.Generator` or ``None``). The numba kernels draw from a NumPy
``Generator`` (PCG64) passed into the jitted code — numba reproduces NumPy's
``Generator.binomial`` bit for bit — rather than from ``np.random.seed``, whose
32-bit seeds would collide among the ~10^5 tasks of a full study.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from multitest._counts import certify_counts
from multitest._oracle_kernels import joint_kernel, oracle_kernel
from multitest._power import _sf_ge, bonferroni_threshold, certify_threshold, guess_probability

__all__ = [
    "CORRECTIONS",
    "AnalyticRates",
    "JointTrials",
    "OracleCounts",
    "Rates",
    "analytic_indivclass",
    "analytic_segcertify_bonferroni",
    "as_generator",
    "component_probabilities",
    "indivclass_rates",
    "jointclass_rates",
    "jointclass_trials",
    "sample_oracle",
    "segcertify_rates",
]

#: SEGCERTIFY corrections: name -> ``multitest.certify_counts`` method.
CORRECTIONS = {"bonferroni": "bonferroni", "holm": "holm", "kfwer": "lehmann_romano"}


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _int(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; got {value!r}.")
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be an integer {rng}; got {value!r}.")
    return int(value)


def _real(value, name: str, low: float, high: float, *, closed_low=True,
          closed_high=True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {value!r}.")
    v = float(value)
    ok = (v >= low if closed_low else v > low) and (v <= high if closed_high else v < high)
    if not (ok and math.isfinite(v)):
        lb, rb = "[" if closed_low else "(", "]" if closed_high else ")"
        raise ValueError(f"`{name}` must lie in {lb}{low:g}, {high:g}{rb}; got {value!r}.")
    return v


def _oracle_args(N, k, gamma, n0, n):
    N = _int(N, "N", 1)
    k = _int(k, "k", 0, N)
    gamma = _real(gamma, "gamma", 0.0, 1.0)
    n0 = _int(n0, "n0", 1)
    n = _int(n, "n", 1)
    return N, k, gamma, n0, n


def as_generator(seed) -> np.random.Generator:
    """A ``Generator`` from an int, a ``SeedSequence``, a ``Generator`` (returned as is) or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(seed, bool):
            raise TypeError("`seed` must be an int, a SeedSequence, a Generator or None.")
        return np.random.default_rng(seed)
    raise TypeError(
        f"`seed` must be an int, a SeedSequence, a Generator or None; got {type(seed).__name__}."
    )


def _q_bad(gamma: float) -> float:
    return min(max(1.0 - 5.0 * gamma, 0.0), 1.0)


def component_probabilities(N: int, k: int, gamma: float) -> np.ndarray:
    """Probability that the oracle is right on each component.

    Parameters
    ----------
    N : int
        Number of components, ``>= 1``.
    k : int
        Number of bad components, in [0, N]; they are components ``0..k-1``.
    gamma : float
        Error rate of the good components, in [0, 1].

    Returns
    -------
    numpy.ndarray
        ``clip(1 - 5 gamma, 0, 1)`` for the first ``k`` components, ``1 - gamma``
        for the rest.

    Examples
    --------
    >>> component_probabilities(4, 1, 0.05)
    array([0.75, 0.95, 0.95, 0.95])
    """
    N = _int(N, "N", 1)
    k = _int(k, "k", 0, N)
    gamma = _real(gamma, "gamma", 0.0, 1.0)
    q = np.full(N, 1.0 - gamma)
    q[:k] = _q_bad(gamma)
    return q


# ---------------------------------------------------------------------------
# the oracle's per-component counts
# ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OracleCounts:
    """Counts the oracle produced, one row per repetition.

    Attributes
    ----------
    right : numpy.ndarray of bool, shape (reps, N)
        Whether the guess from the ``n0`` samples is the right class.
    counts : numpy.ndarray of int32, shape (reps, N)
        Occurrences of the guessed class among the ``n`` counting samples.
    n0, n : int
        Numbers of guessing and counting samples.
    """

    right: np.ndarray
    counts: np.ndarray
    n0: int
    n: int

    @property
    def reps(self) -> int:
        return self.counts.shape[0]

    @property
    def N(self) -> int:
        return self.counts.shape[1]


def sample_oracle(N: int, k: int, gamma: float, n0: int, n: int, *, reps: int = 1,
                  seed=None) -> OracleCounts:
    """Draw the oracle's guesses and counts for ``reps`` independent inputs.

    Parameters
    ----------
    N : int
        Number of components, ``>= 1`` (10^6 and beyond is fine).
    k : int
        Number of bad components, in [0, N].
    gamma : float
        Error rate of the good components, in [0, 1].
    n0 : int
        Guessing samples per input, ``>= 1``.
    n : int
        Counting samples per input, ``>= 1`` (10^4 and beyond is fine).
    reps : int, default 1
        Number of independent repetitions (rows).
    seed : int, SeedSequence, Generator or None
        Randomness. A ``Generator`` is advanced in place, so calling this twice with
        ``reps=1`` gives the same rows as one call with ``reps=2``.

    Returns
    -------
    OracleCounts
        ``right`` and ``counts``, each of shape ``(reps, N)``.

    Notes
    -----
    Per component and repetition: ``votes ~ Bin(n0, q)`` right votes among the
    guessing samples (right guess iff ``votes >= n0 / 2``: ties go to the lowest
    class index, the right class), then ``x ~ Bin(n, q)`` right labels among the
    counting samples, independent of ``votes``; the count of the guessed class is
    ``x`` or ``n - x``. This is the distribution of per-sample Bernoulli draws.
    Cost: ``2 N reps`` binomial draws (BTPE, O(1) each), about 0.15 s per 10^6
    components on one core.

    Examples
    --------
    >>> s = sample_oracle(3, 1, 0.05, n0=10, n=100, reps=2, seed=0)
    >>> s.counts.shape, s.right.dtype
    ((2, 3), dtype('bool'))
    """
    N, k, gamma, n0, n = _oracle_args(N, k, gamma, n0, n)
    reps = _int(reps, "reps", 1)
    rng = as_generator(seed)
    q = component_probabilities(N, k, gamma)
    right = np.empty((reps, N), dtype=np.bool_)
    counts = np.empty((reps, N), dtype=np.int32)
    oracle_kernel(rng, q, n0, n, right, counts)
    return OracleCounts(right, counts, n0, n)


# ---------------------------------------------------------------------------
# per-repetition rates of the methods
# ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Rates:
    """Per-repetition outcome of a method.

    Attributes
    ----------
    certified : numpy.ndarray of float, shape (reps,)
        Fraction of components certified (not abstained).
    certified_right : numpy.ndarray of float, shape (reps,)
        Fraction of components certified with the right class.
    """

    certified: np.ndarray
    certified_right: np.ndarray


def segcertify_rates(sample: OracleCounts, tau: float, alpha: float, *,
                     correction: str = "holm", budget: int = 0) -> Rates:
    """SEGCERTIFY (Algorithm 2) on every repetition of `sample`.

    Parameters
    ----------
    sample : OracleCounts
        The oracle's guesses and counts.
    tau : float
        Threshold, in [1/2, 1).
    alpha : float
        Level of the correction, in (0, 1).
    correction : {'bonferroni', 'holm', 'kfwer'}, default 'holm'
        FWERCONTROL: Bonferroni, Holm, or the Lehmann–Romano k-FWER procedure.
    budget : int, default 0
        Error budget ``b`` of ``'kfwer'`` (``k = b + 1``; ``b = 0`` is Holm); must
        be 0 for the others.

    Returns
    -------
    Rates
        Certified and certified-and-right fractions per repetition.

    Examples
    --------
    >>> s = sample_oracle(100, 1, 0.01, n0=100, n=100, reps=3, seed=0)
    >>> segcertify_rates(s, tau=0.75, alpha=0.001).certified.shape
    (3,)
    """
    if not isinstance(sample, OracleCounts):
        raise TypeError("`sample` must be an OracleCounts (see sample_oracle).")
    tau = _real(tau, "tau", 0.5, 1.0, closed_high=False)
    alpha = _real(alpha, "alpha", 0.0, 1.0, closed_low=False, closed_high=False)
    if correction not in CORRECTIONS:
        raise ValueError(f"`correction` must be one of {sorted(CORRECTIONS)}; got {correction!r}.")
    budget = _int(budget, "budget", 0)
    if budget and correction != "kfwer":
        raise ValueError(f"`budget` must be 0 for correction {correction!r}; got {budget}.")
    method = CORRECTIONS[correction]
    kwargs = {"k": budget + 1} if method == "lehmann_romano" else {}
    cert = np.empty(sample.reps)
    cert_right = np.empty(sample.reps)
    for r in range(sample.reps):
        rej = certify_counts(sample.counts[r], sample.n, tau, alpha,
                                       method=method, **kwargs).reject
        cert[r] = np.count_nonzero(rej) / sample.N
        cert_right[r] = np.count_nonzero(rej & sample.right[r]) / sample.N
    return Rates(cert, cert_right)


def indivclass_rates(sample: OracleCounts, alpha: float) -> Rates:
    """INDIVCLASS: CERTIFY on each component at ``alpha / N``; one abstention abstains all.

    Parameters
    ----------
    sample : OracleCounts
        The oracle's guesses and counts.
    alpha : float
        Overall error probability, in (0, 1); each component uses ``alpha / N``.

    Returns
    -------
    Rates
        ``certified`` is 1 or 0 per repetition; ``certified_right`` is the
        fraction of right guesses when everything is certified, else 0.

    Notes
    -----
    A component is certified iff its Clopper–Pearson lower bound at ``1 - alpha/N``
    exceeds 1/2, i.e. iff its count is at least
    :func:`multitest.certify_threshold` ``(n, alpha / N)``.

    Examples
    --------
    >>> s = sample_oracle(100, 1, 0.0, n0=100, n=100, reps=2, seed=0)
    >>> indivclass_rates(s, alpha=0.001).certified
    array([1., 1.])
    """
    if not isinstance(sample, OracleCounts):
        raise TypeError("`sample` must be an OracleCounts (see sample_oracle).")
    alpha = _real(alpha, "alpha", 0.0, 1.0, closed_low=False, closed_high=False)
    t = certify_threshold(sample.n, alpha / sample.N)
    all_cert = (sample.counts >= t).all(axis=1)
    frac_right = sample.right.mean(axis=1)
    return Rates(all_cert.astype(np.float64), np.where(all_cert, frac_right, 0.0))


# ---------------------------------------------------------------------------
# JOINTCLASS
# ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class JointTrials:
    """Outcomes of JOINTCLASS per repetition.

    Attributes
    ----------
    certified : numpy.ndarray of bool, shape (reps,)
        Whether CERTIFY certified the guessed joint label (all components) or
        abstained (none).
    n_wrong : numpy.ndarray of int64, shape (reps,)
        Number of wrong components in the guessed joint label.
    """

    certified: np.ndarray
    n_wrong: np.ndarray


def jointclass_trials(N: int, k: int, gamma: float, n0: int, n: int, alpha: float, *,
                      reps: int = 1, seed=None) -> JointTrials:
    """JOINTCLASS: CERTIFY (Algorithm 1) on the joint label of all ``N`` components.

    The guess is the joint label seen most often among ``n0`` samples; it is
    certified for all components iff its Clopper–Pearson lower bound at ``1 -
    alpha`` from ``n`` fresh samples exceeds 1/2, else every component abstains.

    Parameters
    ----------
    N, k, gamma, n0, n
        The oracle, as in :func:`sample_oracle`.
    alpha : float
        Error probability of CERTIFY, in (0, 1).
    reps : int, default 1
        Number of independent repetitions.
    seed : int, SeedSequence, Generator or None
        Randomness.

    Returns
    -------
    JointTrials
        ``certified`` and the number of wrong components of the guess.

    Notes
    -----
    **Index of a joint label.** Joint labels are indexed by their number of wrong
    components, then by their number of wrong bad components, then
    lexicographically; the all-right label is index 0, as the right class is
    index 0 per component. Ties in the guess go to the lowest index. Labels in one
    ``(w_good, w_bad)`` class have the same probability and the same number of
    wrong components, so which of them wins a tie changes nothing downstream.

    **Exact without N-long labels.** A joint label ``y`` with ``w_g`` wrong good and
    ``w_b`` wrong bad components has probability ``pi(y) = (1-gamma)^(N-k-w_g)
    gamma^w_g q^(k-w_b) (1-q)^w_b``, ``q = clip(1 - 5 gamma, 0, 1)``, so the outcome
    depends on the guess only through ``(w_g, w_b)``, and CERTIFY's count of the
    guess among ``n`` independent samples is ``Bin(n, pi(guess))``. The guess is
    sampled exactly as follows:

    1. ``a ~ Bin(n0, pi_0)`` samples are the all-right label. Any other label has
       probability ``<= min(pi_0, 1 - pi_0)`` when every component's right class is
       its most likely one, so at most ``1/2`` (only the all-right label can reach
       probability ``> 1/2``); and it becomes the guess only if it occurs more than
       ``a`` times, impossible when ``n0 - a <= a``. Then nothing else is drawn.
    2. Otherwise the ``n0 - a`` other samples draw ``(w_g, w_b)`` from the
       binomials conditioned on ``(w_g, w_b) != (0, 0)``. Given ``(w_g, w_b)``, a
       sample is uniform over the ``K = C(N-k, w_g) C(k, w_b)`` labels with those
       counts (i.i.d. Bernoulli components, conditioned on their sums), so the
       multiplicities within a class are those of an urn: a draw repeats one of
       the ``d`` labels seen so far with probability ``d / K`` (each equally
       likely), else it is new. Labels of different classes differ.
    3. The guess is the class of the most frequent label (ties: lowest index).

    Nothing of length ``N`` is built: the cost is ``O(n0 log n0)`` per repetition
    at any ``N``. The only approximations are floating-point ones (``d / K`` for
    ``K`` beyond ``1e308`` is 0). Wrong labels are still certified with their
    small exact probability ``P(Bin(n, pi(y)) >= t)``: CERTIFY bounds it by
    ``alpha`` since ``pi(y) <= 1/2``.

    Examples
    --------
    >>> res = jointclass_trials(100, 1, 0.0, 100, 100, 0.001, reps=2, seed=0)
    >>> res.certified, res.n_wrong
    (array([ True,  True]), array([0, 0]))
    """
    N, k, gamma, n0, n = _oracle_args(N, k, gamma, n0, n)
    alpha = _real(alpha, "alpha", 0.0, 1.0, closed_low=False, closed_high=False)
    reps = _int(reps, "reps", 1)
    rng = as_generator(seed)
    t = certify_threshold(n, alpha)
    certified = np.empty(reps, dtype=np.bool_)
    n_wrong = np.empty(reps, dtype=np.int64)
    joint_kernel(rng, N, k, gamma, _q_bad(gamma), n0, n, t, certified, n_wrong)
    return JointTrials(certified, n_wrong)


def jointclass_rates(N: int, k: int, gamma: float, n0: int, n: int, alpha: float, *,
                     reps: int = 1, seed=None) -> Rates:
    """Per-repetition rates of JOINTCLASS (see :func:`jointclass_trials`).

    Returns
    -------
    Rates
        ``certified`` is 1 or 0; ``certified_right`` is the fraction of right
        components of the certified joint label, else 0.

    Examples
    --------
    >>> jointclass_rates(100, 1, 0.0, 100, 100, 0.001, reps=2, seed=0).certified
    array([1., 1.])
    """
    res = jointclass_trials(N, k, gamma, n0, n, alpha, reps=reps, seed=seed)
    cert = res.certified.astype(np.float64)
    return Rates(cert, cert * (N - res.n_wrong) / N)


# ---------------------------------------------------------------------------
# exact expectations
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AnalyticRates:
    """Exact expected rates of a method on the oracle.

    Attributes
    ----------
    certified : float
        Expected fraction of certified components.
    certified_right : float
        Expected fraction of components certified with the right class.
    """

    certified: float
    certified_right: float


def _per_component(k, gamma, n0, n, t):
    """(certified, certified-right) probabilities of a good and a bad component."""
    q = np.array([1.0 - gamma, _q_bad(gamma)])
    g = np.asarray(guess_probability(q, n0))
    right = g * _sf_ge(t, n, q)
    return right + (1.0 - g) * _sf_ge(t, n, 1.0 - q), right


def analytic_segcertify_bonferroni(N: int, k: int, gamma: float, n0: int, n: int,
                                   alpha: float, tau: float) -> AnalyticRates:
    """Exact expected rates of SEGCERTIFY with Bonferroni on the oracle.

    Parameters
    ----------
    N, k, gamma, n0, n
        The oracle, as in :func:`sample_oracle`.
    alpha : float
        Family-wise error rate, in (0, 1).
    tau : float
        Threshold, in [1/2, 1).

    Returns
    -------
    AnalyticRates

    Notes
    -----
    Bonferroni certifies a component iff its count reaches ``t =``
    :func:`multitest.bonferroni_threshold` ``(n, tau, alpha, N=N)``, whatever the
    other components do. Per component with right-probability ``q`` and right-guess
    probability ``g = P(Bin(n0, q) >= n0/2)``: ``P(certified) = g P(Bin(n, q) >= t)
    + (1 - g) P(Bin(n, 1 - q) >= t)``, and the certified-and-right part is the first
    term. The expected rate is the mean over components.

    Examples
    --------
    >>> r = analytic_segcertify_bonferroni(100, 1, 0.02, 100, 100, 0.001, 0.75)
    >>> round(r.certified, 4)
    0.9911
    """
    N, k, gamma, n0, n = _oracle_args(N, k, gamma, n0, n)
    alpha = _real(alpha, "alpha", 0.0, 1.0, closed_low=False, closed_high=False)
    tau = _real(tau, "tau", 0.5, 1.0, closed_high=False)
    t = bonferroni_threshold(n, tau, alpha, N=N)
    cert, right = _per_component(k, gamma, n0, n, t)
    w = np.array([N - k, k]) / N
    return AnalyticRates(float(w @ cert), float(w @ right))


def analytic_indivclass(N: int, k: int, gamma: float, n0: int, n: int,
                        alpha: float) -> AnalyticRates:
    """Exact expected rates of INDIVCLASS on the oracle.

    Returns
    -------
    AnalyticRates
        ``certified = P(every component certified) = s_good^(N-k) s_bad^k``, with
        ``s`` the per-component probability that CERTIFY at ``alpha / N`` certifies
        (right or wrong guess); ``certified_right`` = the expected fraction of right
        guesses on that event.

    Notes
    -----
    Components are independent, so the probability that all are certified is a
    product; ``E[1{all} * #right] = sum_i r_i prod_{j != i} s_j``, with ``r_i`` the
    probability of being certified with the right class.

    Examples
    --------
    >>> round(analytic_indivclass(100, 1, 0.05, 100, 100, 0.001).certified, 4)
    0.7925
    """
    N, k, gamma, n0, n = _oracle_args(N, k, gamma, n0, n)
    alpha = _real(alpha, "alpha", 0.0, 1.0, closed_low=False, closed_high=False)
    t = certify_threshold(n, alpha / N)
    (s_g, s_b), (r_g, r_b) = _per_component(k, gamma, n0, n, t)
    ng = N - k
    cert = s_g**ng * s_b**k
    right = 0.0
    if ng:
        right += ng * r_g * s_g ** (ng - 1) * s_b**k
    if k:
        right += k * r_b * s_g**ng * s_b ** (k - 1)
    return AnalyticRates(float(cert), float(right / N))
