"""The support-line procedure: reject where the Grenander estimate of the local FDR is small."""

from __future__ import annotations

from multitest._family import family_procedure
from multitest._fdr_kernels import grenander_lfdr
from multitest._result import MultitestResult
from multitest._sort import sorted_order
from multitest._validation import as_pvalues, check_alpha, check_probability

__all__ = ["support_line"]


@family_procedure()
def support_line(pvals, alpha: float | None = None, *, null_proportion: float = 1.0,
                 axis: int | None = None) -> MultitestResult:
    r"""Support-line (SL) procedure: reject where the estimated local FDR is at most `alpha`.

    statsmodels' ``multipletests(p, alpha, method='lfdr')`` (aliases ``lfdr``,
    ``lfdr_sl``). The local false discovery rate of a p-value ``t`` is estimated
    as

    .. math:: \widehat{\mathrm{lfdr}}(t) = \min\big(1, \pi_0 / \hat f(t)\big),

    with :math:`\hat f` the Grenander estimate of the p-values' density (the left
    slope of the least concave majorant of their empirical cdf) and
    :math:`\pi_0` = `null_proportion`; ``H_i`` is rejected iff
    :math:`\widehat{\mathrm{lfdr}}(p_i) \le \alpha`.

    Parameters
    ----------
    pvals : array_like
        p-values of any shape; ``N`` is their total number.
    alpha : float, optional
        Level for the local FDR of the least significant rejection, in (0, 1).
        None: only ``pvalues_adjusted`` is computed (``reject`` then raises
        ``ValueError``).
    null_proportion : float, default 1.0
        :math:`\pi_0`, the assumed proportion of true nulls, in (0, 1]. 1 is the
        conservative choice, and what ``multipletests`` uses.
    axis : int, optional
        Treat every 1-D slice along `axis` as its own family, as
        ``scipy.stats.false_discovery_control(ps, axis=axis)``. Default None: all of
        `pvals` is one family.

    Returns
    -------
    MultitestResult
        ``reject`` (bool, the shape of `pvals`) and ``pvalues_adjusted`` (float64,
        same shape): the estimated local FDRs, nondecreasing in the p-value, with
        ``reject == (pvalues_adjusted <= alpha)`` exactly, at every `alpha`.

    Raises
    ------
    TypeError
        If `pvals` or `null_proportion` is not real-valued or `axis` is not an
        integer.
    ValueError
        If `pvals` contains NaN or values outside [0, 1], `alpha` is not in (0, 1),
        `null_proportion` is not in (0, 1] or `axis` is out of range.

    Notes
    -----
    **Not a certification (FWER) guarantee**, nor an FDR one: it bounds the chance
    that the *least significant* rejection is a true null. Use :func:`multitest.holm`
    or :func:`multitest.lehmann_romano` for certification.

    In exact arithmetic the rejections are the ``R`` smallest p-values with ``R``
    maximising ``R / N - p_(R) / alpha`` (the largest such ``R``; none if the maximum
    is at ``R = 0``): the line of slope ``1 / alpha`` that supports the empirical cdf
    from above touches it at ``p_(R)``. Soloff, Xiang & Fithian (2024) prove, for
    **independent** p-values that are uniform under the null and have a
    nonincreasing density under the alternative, that the probability that this
    least significant rejection is a true null is at most ``alpha N0 / N``
    (``N0`` true nulls). No proof covers dependent p-values.

    The local FDRs are statsmodels' (``multipletests(p, alpha, method='lfdr')``,
    ``local_fdr_correction(p, null_proportion).lfdr``) bit for bit: the weighted
    pool-adjacent-violators fit of ``c_k / (N (u_k - u_{k-1}))`` over the distinct
    p-values ``u_k`` (multiplicities ``c_k``, ``u_0 = 0``), with the sums taken in
    the order ``scipy.optimize.isotonic_regression`` takes them. Tied p-values are
    one support point. Two cases differ: a p-value of exactly 0, where statsmodels
    raises (scipy refuses the zero-width gap) and here the density is infinite and
    the local FDR 0; and NaN, which statsmodels sorts last and here is refused.

    Cost: one sort (:mod:`multitest._sort`) and O(N) for the fit; statsmodels sorts
    three times.

    References
    ----------
    .. [1] J. A. Soloff, D. Xiang and W. Fithian, "The edge of discovery:
       Controlling the local false discovery rate at the margin", Annals of
       Statistics 52(2), 580–601, 2024.
    .. [2] U. Grenander, "On the theory of mortality measurement, part II",
       Scandinavian Actuarial Journal 39, 125–153, 1956.
    .. [3] F. M. T. A. Busing, "Monotone regression: a simple and fast O(n) PAVA
       implementation", Journal of Statistical Software 102(1), 2022.

    Examples
    --------
    >>> import multitest
    >>> p = [0.0005, 0.003, 0.012, 0.02, 0.031, 0.045, 0.09, 0.14, 0.31, 0.52]
    >>> res = multitest.support_line(p, alpha=0.2)
    >>> res.num_rejected
    6
    >>> res.pvalues_adjusted.round(4)
    array([0.005, 0.025, 0.085, 0.085, 0.11 , 0.14 , 0.45 , 0.5  , 1.   ,
           1.   ])
    """
    flat, shape = as_pvalues(pvals)
    alpha = check_alpha(alpha)
    pi0 = check_probability(null_proportion, "null_proportion", closed_high=True)
    adjusted = grenander_lfdr(*sorted_order(flat), pi0).reshape(shape)
    reject = adjusted <= alpha
    return MultitestResult(reject, alpha, "support_line", 1, lambda: adjusted)
