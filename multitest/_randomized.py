"""Exact randomized one-sided binomial p-values (randomized Clopper–Pearson).

The conservative p-value ``P(X >= c)`` of :func:`multitest.binomial_pvalues` is
super-uniform under the boundary null ``p = tau``: the binomial is discrete, so
``P(pvalue <= a) < a`` for most ``a``. Splitting the atom at the observed count
with an independent ``U ~ U(0, 1)``,

    ``p = P(X > c) + U * P(X = c)``,

gives a p-value that is *exactly* uniform under ``p = tau`` and stochastically
larger for ``p < tau`` (the randomized UMP one-sided test [1]_; its use for
randomized smoothing, where it is strictly stronger than Clopper–Pearson, is due
to Voráček & Hein, 2024). It is never larger than the conservative p-value.

References
----------
.. [1] E. L. Lehmann, J. P. Romano, "Testing Statistical Hypotheses", 3rd ed.,
   Springer 2005, §3.4 (UMP one-sided tests for discrete families, randomized
   at the boundary count).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import special

from multitest._table import uses_table

__all__ = ["check_rng", "draw_uniforms", "randomized_pvalues", "rng_record"]


def check_rng(rng, randomized: bool) -> np.random.Generator | None:
    """The caller's numpy Generator (or one seeded from an int); ``None`` if not randomized.

    Raises ``ValueError`` if ``randomized`` and ``rng`` is ``None``, ``TypeError``
    for anything that is neither a Generator, an int seed nor a SeedSequence.
    """
    if not isinstance(randomized, (bool, np.bool_)):
        raise TypeError(f"`randomized` must be a bool; got {type(randomized).__name__}.")
    if not randomized:
        return None
    if rng is None:
        raise ValueError("`rng` is required when randomized=True: pass a numpy Generator "
                         "or an integer seed (the certificate depends on its U(0, 1) draws).")
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (bool, np.bool_)) or not isinstance(
            rng, (numbers.Integral, np.random.SeedSequence)):
        raise TypeError("`rng` must be a numpy.random.Generator, a SeedSequence or an "
                        f"integer seed >= 0; got {type(rng).__name__}.")
    if isinstance(rng, numbers.Integral) and rng < 0:
        raise ValueError("`rng` must be a numpy.random.Generator, a SeedSequence or an "
                         f"integer seed >= 0; got {rng!r}.")
    return np.random.default_rng(rng)


def rng_record(rng, generator: np.random.Generator) -> dict:
    """What a randomized certificate must report to be re-checked, JSON-ready.

    ``rng_seed``: the integer seed the caller passed (``None`` for a Generator or a
    SeedSequence). ``rng_state``: ``generator``'s bit-generator state *before* the
    ``U`` draws (arrays as lists), which reproduces them whatever was passed::

        bits = getattr(np.random, state["bit_generator"])()
        bits.state = state
        rng = np.random.Generator(bits)
    """
    seed = int(rng) if isinstance(rng, numbers.Integral) else None
    return {"rng_seed": seed, "rng_state": _jsonable(generator.bit_generator.state)}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    return int(value) if isinstance(value, np.integer) else value


def draw_uniforms(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """One U(0, 1) per component, in C order (every randomized path draws them so)."""
    return rng.random(shape)


def randomized_pvalues(counts: np.ndarray, n, tau: float, u: np.ndarray) -> np.ndarray:
    """``P(X > c) + u * P(X = c)``, X ~ Binomial(n, tau), elementwise (no validation).

    ``counts`` int64 in [0, n]; ``n`` an int or an int64 array broadcast against
    ``counts``; ``u`` float64 in [0, 1) of the counts' shape. With a scalar ``n``
    whose table over 0..n is small (:func:`multitest._table.uses_table`) the two
    terms are evaluated once per distinct count, then gathered; otherwise once per
    count, in O(N) memory whatever ``n`` (the same doubles either way).
    """
    if isinstance(n, int) and uses_table(n, counts.size):
        # tables over 0..n, filled where a count occurs: O(N + n)
        present = np.zeros(n + 1, dtype=bool)
        present[counts] = True
        values = np.flatnonzero(present)
        upper, atom = np.zeros(n + 1), np.zeros(n + 1)
        upper[values], atom[values] = _upper_and_atom(values, n, tau)
        return upper[counts] + u * atom[counts]
    c, nn = np.broadcast_arrays(counts, n)
    upper, atom = _upper_and_atom(c, nn, tau)
    return upper + u * atom


def _upper_and_atom(c: np.ndarray, n, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """``P(X > c)`` (regularised incomplete beta, 0 at c = n) and ``P(X = c)``."""
    below = c < n
    safe = np.where(below, c, 0)
    upper = np.where(below, special.betainc(safe + 1, np.maximum(n - safe, 1), tau), 0.0)
    from scipy import stats  # ~0.4 s to import: only when a randomized test runs

    atom = stats.binom.pmf(c, n, tau)
    return np.asarray(upper, dtype=np.float64), np.asarray(atom, dtype=np.float64)
