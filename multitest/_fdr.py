"""False discovery rate (FDR) procedures.

These control the expected *proportion* of false rejections, not the probability
of any false rejection. They are NOT a certification guarantee: a certificate
built from them may contain wrong components with high probability (paper,
App. B.2). Use :func:`multitest.holm` or :func:`multitest.lehmann_romano` for
certification.
"""

from __future__ import annotations

import functools

import numpy as np

from multitest import _kernels as K
from multitest._family import family_procedure
from multitest._result import MultitestResult
from multitest._step import run_step_procedure

__all__ = ["benjamini_hochberg", "benjamini_yekutieli", "harmonic_number"]


@functools.lru_cache(maxsize=64)
def harmonic_number(n: int) -> float:
    """``c_n = sum_{i<=n} 1/i`` summed as statsmodels does (1.0 for n = 0), cached:
    the sum costs more than a small procedure."""
    return float(np.sum(1.0 / np.arange(1, n + 1))) if n else 1.0


@family_procedure()
def benjamini_hochberg(pvals, alpha: float | None = None, *,
                       axis: int | None = None) -> MultitestResult:
    """Benjamini–Hochberg step-up procedure controlling the FDR.

    Reject ``H_(1), ..., H_(R)`` with ``R`` the largest ``j`` such that
    ``p_(j) <= (j / N) alpha``.

    Parameters
    ----------
    pvals : array_like
        p-values of any shape; ``N`` is their total number.
    alpha : float, optional
        False discovery rate, in (0, 1).
        None: only ``pvalues_adjusted`` is computed (``reject`` then raises
        ``ValueError``).
    axis : int, optional
        Treat every 1-D slice along `axis` as its own family, as
        ``scipy.stats.false_discovery_control(ps, axis=axis)``. Default None: all of
        `pvals` is one family.

    Returns
    -------
    MultitestResult
        ``reject`` and lazily computed ``pvalues_adjusted`` (cumulative minimum from
        the right of ``N p_(j) / j``), with ``reject == (pvalues_adjusted <= alpha)``.

    Raises
    ------
    TypeError
        If `pvals` is not real-valued or `axis` is not an integer.
    ValueError
        If `pvals` contains NaN or values outside [0, 1], `alpha` is not in (0, 1) or
        `axis` is out of range.

    Notes
    -----
    Controls the FDR at ``alpha N0 / N`` for **independent** or PRDS tests. This is
    **not** a family-wise guarantee and does not yield a certificate in the sense
    of SEGCERTIFY's Proposition 1.

    References
    ----------
    .. [1] Y. Benjamini and Y. Hochberg, "Controlling the false discovery rate",
       JRSS B 57(1), 1995.

    Examples
    --------
    >>> import multitest
    >>> multitest.benjamini_hochberg([0.01, 0.04, 0.03, 0.005], alpha=0.05).reject
    array([ True,  True,  True,  True])
    """
    return run_step_procedure(pvals, alpha, code=K.BH, method="benjamini_hochberg", step_up=True)


@family_procedure()
def benjamini_yekutieli(pvals, alpha: float | None = None, *,
                        axis: int | None = None) -> MultitestResult:
    """Benjamini–Yekutieli step-up procedure: FDR control under any dependence.

    As :func:`benjamini_hochberg` with ``alpha`` divided by ``c_N = sum_{i<=N} 1/i``.

    Parameters
    ----------
    pvals : array_like
        p-values of any shape; ``N`` is their total number.
    alpha : float, optional
        False discovery rate, in (0, 1).
        None: only ``pvalues_adjusted`` is computed (``reject`` then raises
        ``ValueError``).
    axis : int, optional
        Treat every 1-D slice along `axis` as its own family, as
        ``scipy.stats.false_discovery_control(ps, axis=axis)``. Default None: all of
        `pvals` is one family.

    Returns
    -------
    MultitestResult
        ``reject`` and lazily computed ``pvalues_adjusted``, with
        ``reject == (pvalues_adjusted <= alpha)``.

    Raises
    ------
    TypeError
        If `pvals` is not real-valued or `axis` is not an integer.
    ValueError
        If `pvals` contains NaN or values outside [0, 1], `alpha` is not in (0, 1) or
        `axis` is out of range.

    Notes
    -----
    Controls the FDR under **arbitrary dependence**. Still an FDR, not a FWER,
    guarantee: not a certificate (paper App. B.2).

    References
    ----------
    .. [1] Y. Benjamini and D. Yekutieli, "The control of the false discovery rate
       in multiple testing under dependency", Annals of Statistics 29(4), 2001.

    Examples
    --------
    >>> import multitest
    >>> multitest.benjamini_yekutieli([0.01, 0.04, 0.03, 0.005], alpha=0.05).reject
    array([ True, False, False,  True])
    """
    pvals = np.asarray(pvals)
    c_n = harmonic_number(pvals.size)
    return run_step_procedure(pvals, alpha, code=K.BY, method="benjamini_yekutieli",
                              extra=c_n, step_up=True)
