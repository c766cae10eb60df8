"""Adaptive (two-stage) false discovery rate procedures.

Both procedures estimate the number of true nulls ``N0`` from a first
Benjamini–Hochberg pass and rerun BH at the level inflated by ``N / N0_hat``. They
control the expected *proportion* of false rejections, not the probability of any
false rejection: they are NOT a certification (FWER) guarantee and must not be used
to certify SEGCERTIFY outputs. Use :func:`multitest.holm` or
:func:`multitest.lehmann_romano` for certification.
"""

from __future__ import annotations

import numbers

import numpy as np

from multitest import _step
from multitest._family import family_procedure
from multitest._fdr_kernels import two_stage_small, two_stage_sorted
from multitest._result import MultitestResult
from multitest._sort import sorted_order
from multitest._validation import MAX_INT64, as_pvalues, check_alpha

__all__ = ["benjamini_krieger_yekutieli", "two_stage_benjamini_hochberg"]


def _check_maxiter(maxiter) -> int | None:
    """`maxiter` is an integer >= -1 or None (-1 and None: iterate to convergence)."""
    if maxiter is None:
        return None
    if isinstance(maxiter, bool) or not isinstance(maxiter, numbers.Integral):
        raise TypeError(
            f"`maxiter` must be an integer >= -1 or None; got {maxiter!r} "
            f"({type(maxiter).__name__})."
        )
    if maxiter < -1:
        raise ValueError(f"`maxiter` must be an integer >= -1 or None; got {maxiter!r}.")
    # at most N stages change anything, so a count above the kernels' int64 is the
    # same as iterating to convergence
    return None if maxiter == -1 or maxiter > MAX_INT64 else int(maxiter)


def _two_stage(pvals, alpha, maxiter, *, bky: bool, method: str) -> MultitestResult:
    """Validate, run the (iterated) two-stage linear step-up procedure, wrap.

    Mirrors statsmodels' ``fdrcorrection_twostage`` stage by stage, with the same
    floating-point expressions for the stage levels; each stage's number of
    rejections is read off the precomputed BH levels by binary search, so the whole
    procedure costs one sort plus O(N + stages log N)
    (:func:`multitest._fdr_kernels.two_stage_sorted`).
    """
    flat, shape = as_pvalues(pvals)
    alpha = check_alpha(alpha)
    maxiter = _check_maxiter(maxiter)
    N = flat.size
    if N == 0:
        empty = np.zeros(shape)
        return MultitestResult(np.zeros(shape, dtype=bool), alpha, method, 1, lambda: empty)
    if N <= _step.SMALL_N:  # one kernel call: the same steps without Python's fixed cost
        reject, adjusted = two_stage_small(flat, alpha, -1 if maxiter is None else maxiter,
                                           bky)
        adjusted = adjusted.reshape(shape)
        return MultitestResult(reject.reshape(shape), alpha, method, 1, lambda: adjusted)
    ps, order = sorted_order(flat)
    reject = np.empty(N, dtype=bool)
    adjusted = np.empty(N)
    two_stage_sorted(ps, order, alpha, -1 if maxiter is None else maxiter, bky, reject,
                     adjusted)
    adjusted = adjusted.reshape(shape)
    return MultitestResult(reject.reshape(shape), alpha, method, 1, lambda: adjusted)


_SHARED = """
    Parameters
    ----------
    pvals : array_like
        p-values of any shape; ``N`` is their total number.
    alpha : float
        False discovery rate, in (0, 1).
    maxiter : int or None, default 1
        Number of re-estimation stages after the first BH pass, as in statsmodels:
        ``1`` is the two-stage procedure, ``0`` a single BH pass at the first-stage
        level, ``k > 1`` re-estimates ``N0_hat = N - R`` from the latest stage up to
        ``k`` times (stopping early once ``R`` no longer changes), and ``-1`` or
        ``None`` iterates until it does.
    axis : int, optional
        Treat every 1-D slice along `axis` as its own family, as
        ``scipy.stats.false_discovery_control(ps, axis=axis)``. Default None: all of
        `pvals` is one family.

    Returns
    -------
    MultitestResult
        ``reject`` (bool, the shape of `pvals`) and ``pvalues_adjusted`` (float64,
        same shape), with ``reject == (pvalues_adjusted <= alpha)`` exactly. The
        adjusted p-values are **specific to** `alpha` (the estimate ``N0_hat``
        depends on it) and must not be compared with another level.

    Raises
    ------
    TypeError
        If `alpha` is missing (the adjusted p-values depend on it), `pvals` is not
        real-valued, `axis` is not an integer or `maxiter` is not an integer
        (``bool`` is refused: statsmodels documents ``maxiter=False`` as the
        two-stage procedure but runs zero stages).
    ValueError
        If `pvals` contains NaN or values outside [0, 1], `alpha` is not in (0, 1),
        `axis` is out of range or `maxiter < -1`.
"""


def _doc(f):
    f.__doc__ = f.__doc__.replace("    {shared}\n", _SHARED.lstrip("\n"))
    return f


@family_procedure(alpha_free_adjusted=False)
@_doc
def benjamini_krieger_yekutieli(pvals, alpha: float, *, maxiter: int | None = 1,
                                axis: int | None = None
                                ) -> MultitestResult:
    """Benjamini–Krieger–Yekutieli two-stage linear step-up procedure (FDR).

    Stage 1: Benjamini–Hochberg (BH) at ``q' = alpha / (1 + alpha)``, with ``r1``
    rejections; stop if ``r1 = 0`` or ``r1 = N``. Stage 2: estimate the number of
    true nulls as ``N0_hat = N - r1`` and run BH at ``q' N / N0_hat``.

    {shared}
    Notes
    -----
    An **FDR** procedure, **not a certification (FWER) guarantee**: it bounds the
    expected proportion of false rejections, so a certificate built from it may
    contain wrong components with high probability (paper, App. B.2). Use
    :func:`multitest.holm` or :func:`multitest.lehmann_romano` for certification.

    With ``maxiter=1`` (BKY 2006, Definition 6) it controls the FDR at `alpha`
    for **independent** p-values. BKY's simulations indicate that this two-stage
    version stays close to `alpha` under positive correlation (the most robust of
    their adaptive variants), but no proof covers dependent p-values, nor the
    iterated variant ``maxiter != 1``.

    Matches statsmodels' ``fdrcorrection_twostage(p, alpha, method='bky',
    maxiter=maxiter)`` and ``multipletests(p, alpha, method='fdr_tsbky')``:
    decisions bit for bit (stage levels use statsmodels' float expressions, so
    even its rounding at exact ties is reproduced), adjusted p-values to a few
    ulps (moved by one ulp where statsmodels' own decision and
    ``adjusted <= alpha`` disagree at such a tie). The adjusted p-values
    are those of the last BH stage, rescaled by ``N0_hat / N`` and by ``1 + alpha``,
    so they depend on `alpha`. One statsmodels quirk is kept: if an iterated stage
    rejects everything, the next stage estimates ``N0_hat = 0`` and all adjusted
    p-values become 0.

    Cost: one O(N log N) sort, O(N) to precompute the BH rejection levels, then
    O(log N) per stage.

    References
    ----------
    .. [1] Y. Benjamini, A. M. Krieger and D. Yekutieli, "Adaptive linear step-up
       procedures that control the false discovery rate", Biometrika 93(3),
       491–507, 2006.

    Examples
    --------
    >>> import multitest
    >>> p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    >>> res = multitest.benjamini_krieger_yekutieli(p, alpha=0.1)
    >>> res.num_rejected  # BH at the same level rejects 6
    7
    >>> res.pvalues_adjusted.round(4)
    array([0.0055, 0.022 , 0.0462, 0.0462, 0.0462, 0.055 , 0.0581, 0.1188, 0.1188,
           0.1188])
    """
    return _two_stage(pvals, alpha, maxiter, bky=True, method="benjamini_krieger_yekutieli")


@family_procedure(alpha_free_adjusted=False)
@_doc
def two_stage_benjamini_hochberg(pvals, alpha: float, *, maxiter: int | None = 1,
                                 axis: int | None = None
                                 ) -> MultitestResult:
    """Two-stage Benjamini–Hochberg procedure (FDR), statsmodels' ``fdr_tsbh``.

    As :func:`benjamini_krieger_yekutieli` without the ``1 + alpha`` correction:
    stage 1 is BH at `alpha` (``r1`` rejections; stop if ``r1`` is 0 or ``N``),
    stage 2 is BH at ``alpha N / (N - r1)``.

    {shared}
    Notes
    -----
    An **FDR** procedure, **not a certification (FWER) guarantee** (paper, App.
    B.2). Use :func:`multitest.holm` or :func:`multitest.lehmann_romano` for
    certification.

    BKY (2006) use the first-stage level ``alpha / (1 + alpha)`` to obtain exact
    FDR control under independence; this variant, which skips that correction,
    is not covered by their theorem and carries no proven FDR bound at `alpha`. It
    is provided for compatibility with statsmodels; prefer
    :func:`benjamini_krieger_yekutieli`.

    Matches statsmodels' ``fdrcorrection_twostage(p, alpha, method='bh',
    maxiter=maxiter)`` and ``multipletests(p, alpha, method='fdr_tsbh')``:
    decisions bit for bit, adjusted p-values (rescaled by ``N0_hat / N``, hence
    dependent on `alpha`) to a few ulps. Cost as for
    :func:`benjamini_krieger_yekutieli`.

    References
    ----------
    .. [1] Y. Benjamini, A. M. Krieger and D. Yekutieli, "Adaptive linear step-up
       procedures that control the false discovery rate", Biometrika 93(3),
       491–507, 2006.
    .. [2] Y. Benjamini and Y. Hochberg, "Controlling the false discovery rate",
       JRSS B 57(1), 1995.

    Examples
    --------
    >>> import multitest
    >>> p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    >>> res = multitest.two_stage_benjamini_hochberg(p, alpha=0.1)
    >>> res.num_rejected  # BKY rejects 7, BH 6
    10
    """
    return _two_stage(pvals, alpha, maxiter, bky=False, method="two_stage_benjamini_hochberg")
