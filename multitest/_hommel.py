"""Hommel's closed Simes procedure, with adjusted p-values in O(N log N)."""

from __future__ import annotations

import numpy as np

from multitest._family import family_procedure
from multitest._hommel_kernels import hommel_adjusted
from multitest._result import MultitestResult
from multitest._sort import sorted_order
from multitest._validation import as_pvalues, check_alpha

__all__ = ["hommel"]


@family_procedure()
def hommel(pvals, alpha: float | None = None, *, axis: int | None = None) -> MultitestResult:
    """Hommel's procedure: closed testing with Simes local tests.

    ``H_i`` is rejected iff every intersection hypothesis ``H_I`` with ``i`` in ``I``
    is rejected by Simes' test, i.e. iff its adjusted p-value

    ``max_{I ∋ i} min_{j <= |I|} |I| p_(j:I) / j``

    is at most `alpha` (``p_(j:I)`` is the ``j``-th smallest p-value in ``I``).

    Parameters
    ----------
    pvals : array_like
        p-values of any shape; ``N`` is their total number.
    alpha : float, optional
        Family-wise error rate, in (0, 1).
        None: only ``pvalues_adjusted`` is computed (``reject`` then raises
        ``ValueError``).
    axis : int, optional
        Treat every 1-D slice along `axis` as its own family, as
        ``scipy.stats.false_discovery_control(ps, axis=axis)``. Default None: all of
        `pvals` is one family.

    Returns
    -------
    MultitestResult
        ``reject`` (bool, the shape of `pvals`) and ``pvalues_adjusted`` (float64,
        same shape), with ``reject == (pvalues_adjusted <= alpha)`` exactly; both
        are computed eagerly (the decision needs the sort anyway).

    Raises
    ------
    TypeError
        If `pvals` is not real-valued or `axis` is not an integer.
    ValueError
        If `pvals` contains NaN or values outside [0, 1], `alpha` is not in (0, 1) or
        `axis` is out of range.

    Notes
    -----
    Controls the FWER at `alpha` when the Simes inequality holds for the true
    nulls: under **independence** or **positive dependence** (PRDS, Sarkar 1998).
    It is **not** valid under arbitrary dependence; use :func:`multitest.holm` or
    :func:`multitest.lehmann_romano` for a certificate that must hold regardless of
    the dependence. It always rejects a superset of :func:`multitest.hochberg`
    (hence of :func:`multitest.holm`): in the example below Holm rejects two
    hypotheses, Hommel all four.

    The adjusted p-values agree with statsmodels'
    ``multipletests(p, method='hommel')`` to a few ulps: the same floating-point
    expressions are evaluated, and only the choice among near-tied candidates can
    differ. They are capped at ``max(p)``, an exact bound that statsmodels'
    rounding often exceeds by one ulp; so at ``alpha == max(p)`` exactly the
    decisions may differ from statsmodels', and ours are the ones that keep
    every Hochberg rejection.

    Cost: one O(N log N) sort plus O(N) work, following the linear-time
    algorithm of Meijer, Krebs & Goeman (2019): the Simes p-value ``S(m)`` of the
    ``m`` largest p-values is ``m`` times the smallest slope from ``(N - m, 0)`` to
    the points ``(i, p_(i))``, read off the lower convex hull; the adjusted
    p-value of ``x`` is then ``max_m min(m x, S(m))``, found for all sorted ``x`` by
    one monotone sweep. statsmodels' loop over ``m = N, ..., 2`` costs O(N^2).

    References
    ----------
    .. [1] G. Hommel, "A stagewise rejective multiple test procedure based on a
       modified Bonferroni test", Biometrika 75(2), 383–386, 1988.
    .. [2] R. J. Meijer, T. J. P. Krebs and J. J. Goeman, "Hommel's procedure in
       linear time", Biometrical Journal 61(1), 73–82, 2019.
    .. [3] S. K. Sarkar, "Some probability inequalities for ordered MTP2 random
       variables: a proof of the Simes conjecture", Annals of Statistics 26(2),
       494–504, 1998.

    Examples
    --------
    >>> import multitest
    >>> res = multitest.hommel([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    >>> res.reject
    array([ True,  True,  True,  True])
    >>> res.pvalues_adjusted
    array([0.03, 0.04, 0.04, 0.02])
    """
    flat, shape = as_pvalues(pvals)
    alpha = check_alpha(alpha)
    if flat.size == 0:
        adjusted = np.zeros(shape)
    else:
        adjusted = hommel_adjusted(*sorted_order(flat)).reshape(shape)
    reject = adjusted <= alpha
    return MultitestResult(reject, alpha, "hommel", 1, lambda: adjusted)
