"""A drop-in replacement for ``statsmodels.stats.multitest.multipletests``."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from multitest import _adjust_kernels as AK
from multitest import _kernels as K
from multitest import _step
from multitest._fdr import benjamini_hochberg, benjamini_yekutieli, harmonic_number
from multitest._fdr_kernels import small_gbs
from multitest._fdr_twostage import benjamini_krieger_yekutieli, two_stage_benjamini_hochberg
from multitest._fwer import bonferroni, hochberg, holm, holm_sidak, sidak
from multitest._gbs import gavrilov_benjamini_sarkar
from multitest._hommel import hommel
from multitest._result import MultitestResult
from multitest._sort import PACKED_MIN_N, sorted_order
from multitest._support_line import support_line
from multitest._validation import as_pvalues, check_alpha

__all__ = ["multipletests", "METHOD_ALIASES", "MultipletestsResult"]

_PROCEDURES: dict[str, Callable[..., MultitestResult]] = {
    "bonferroni": bonferroni,
    "sidak": sidak,
    "holm_sidak": holm_sidak,
    "holm": holm,
    "hochberg": hochberg,
    "hommel": hommel,
    "benjamini_hochberg": benjamini_hochberg,
    "benjamini_yekutieli": benjamini_yekutieli,
    "two_stage_benjamini_hochberg": two_stage_benjamini_hochberg,
    "benjamini_krieger_yekutieli": benjamini_krieger_yekutieli,
    "gavrilov_benjamini_sarkar": gavrilov_benjamini_sarkar,
    "support_line": support_line,
}

#: Step procedures run on small inputs by one kernel call (the same results without the
#: Python calls of a procedure and its result object): name -> (code, step-up,
#: single-step).
_SMALL_STEP: dict[str, tuple[int, bool, bool]] = {
    "bonferroni": (K.BONFERRONI, False, True),
    "sidak": (K.SIDAK, False, True),
    "holm_sidak": (K.HOLM_SIDAK, False, False),
    "holm": (K.STEPDOWN_K, False, False),
    "hochberg": (K.STEPDOWN_K, True, False),
    "benjamini_hochberg": (K.BH, True, False),
    "benjamini_yekutieli": (K.BY, True, False),
}

#: statsmodels' method names (lower case) -> our procedure names.
METHOD_ALIASES: dict[str, str] = {
    **dict.fromkeys(["b", "bonf", "bonferroni"], "bonferroni"),
    **dict.fromkeys(["s", "sidak"], "sidak"),
    **dict.fromkeys(["hs", "holm-sidak"], "holm_sidak"),
    **dict.fromkeys(["h", "holm"], "holm"),
    **dict.fromkeys(["sh", "simes-hochberg"], "hochberg"),
    **dict.fromkeys(["ho", "hommel"], "hommel"),
    **dict.fromkeys(["fdr_bh", "fdr_i", "fdr_p", "fdri", "fdrp"], "benjamini_hochberg"),
    **dict.fromkeys(["fdr_by", "fdr_n", "fdr_c", "fdrn", "fdrcorr"], "benjamini_yekutieli"),
    **dict.fromkeys(["fdr_tsbh", "fdr_2sbh"], "two_stage_benjamini_hochberg"),
    **dict.fromkeys(["fdr_tsbky", "fdr_2sbky", "fdr_twostage"], "benjamini_krieger_yekutieli"),
    "fdr_gbs": "gavrilov_benjamini_sarkar",
    **dict.fromkeys(["lfdr", "lfdr_sl"], "support_line"),
}


class MultipletestsResult(NamedTuple):
    """What :func:`multipletests` returns: statsmodels' 4-tuple, with field names.

    It unpacks and indexes like statsmodels' tuple; its arrays are writable, as
    statsmodels' are (the procedures' own :class:`MultitestResult` is read-only and
    does not unpack).
    """

    reject: np.ndarray
    pvals_corrected: np.ndarray
    alphacSidak: float
    alphacBonf: float


def _writable(a: np.ndarray) -> np.ndarray:
    """`a` made writable without a copy where its memory allows (our own buffers)."""
    view = a.view()
    try:
        view.setflags(write=True)
    except ValueError:
        return a.copy()
    return view


def _check_flag(value, name: str) -> bool:
    """A bool, or statsmodels' 0/1: a string such as ``"no"`` is refused, not truthy."""
    if value is False or value is True:
        return value
    if isinstance(value, (numbers.Integral, np.bool_)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"`{name}` must be a bool; got {value!r} ({type(value).__name__}).")


def multipletests(pvals, alpha: float = 0.05, method: str = "hs", maxiter: int = 1,
                  is_sorted: bool = False, returnsorted: bool = False) -> MultipletestsResult:
    """statsmodels-compatible multiple-testing adapter.

    Accepts statsmodels' method names and returns its 4-tuple, but dispatches to
    this package's exact, validated procedures (it is a lookup table, not an
    implementation).

    Parameters
    ----------
    pvals : array_like
        p-values, any shape (statsmodels accepts 1-D only; here the outputs keep
        the input's shape).
    alpha : float, default 0.05
        Level, in (0, 1).
    method : str, default 'hs'
        A statsmodels method name, e.g. ``'bonferroni'``, ``'sidak'``, ``'hs'``,
        ``'holm'``, ``'simes-hochberg'``, ``'hommel'``, ``'fdr_bh'``, ``'fdr_by'``,
        ``'fdr_tsbh'``, ``'fdr_tsbky'``, ``'fdr_gbs'``, ``'lfdr'`` (see
        :data:`METHOD_ALIASES`).
    maxiter : int or bool, default 1
        Passed to the two-stage FDR procedures only. A bool is converted with
        ``int`` (``True`` -> 1, ``False`` -> 0), which is what statsmodels
        computes (its docstring says otherwise).
    is_sorted : bool, default False
        Accepted for compatibility; the procedures here never need sorted input.
        A bool (or 0/1); anything else is refused.
    returnsorted : bool, default False
        If True, return the results in ascending p-value order (flattened). A
        bool (or 0/1): a string such as ``"no"`` is refused rather than read as
        true.

    Returns
    -------
    MultipletestsResult
        A named 4-tuple that unpacks like statsmodels' (its arrays are writable):

        reject : numpy.ndarray of bool
        pvals_corrected : numpy.ndarray
            Adjusted p-values; ``reject == (pvals_corrected <= alpha)`` holds exactly
            (statsmodels can disagree at rounding boundaries).
        alphacSidak : float
            ``1 - (1 - alpha)^(1/N)`` (NaN for empty input).
        alphacBonf : float
            ``alpha / N`` (NaN for empty input).

    Raises
    ------
    TypeError
        If `method` is not a string, `pvals` is not real-valued, or `is_sorted` or
        `returnsorted` is not a bool.
    ValueError
        For an unknown `method`, invalid p-values or `alpha` (statsmodels
        validates neither).

    Examples
    --------
    >>> from multitest import multipletests
    >>> reject, adjusted, _, _ = multipletests([0.01, 0.04, 0.03, 0.005], 0.05, method="holm")
    >>> reject
    array([ True, False, False,  True])
    """
    if not isinstance(method, str):
        raise TypeError(f"`method` must be a string (a statsmodels method name); "
                        f"got {method!r} ({type(method).__name__}).")
    name = METHOD_ALIASES.get(method.lower())
    if name is None:
        choices = ", ".join(sorted(METHOD_ALIASES))
        raise ValueError(f"`method` must be one of {choices}; got {method!r}.")
    procedure = _PROCEDURES[name]
    two_stage = name in ("two_stage_benjamini_hochberg", "benjamini_krieger_yekutieli")
    if isinstance(maxiter, bool | np.bool_):
        # statsmodels documents True as "iterate" but runs range(maxiter): True -> 1
        # stage, False -> 0 stages; we reproduce what it computes.
        maxiter = int(maxiter)
    kwargs = {"maxiter": maxiter} if two_stage else {}
    alpha = check_alpha(alpha)
    _check_flag(is_sorted, "is_sorted")
    returnsorted = _check_flag(returnsorted, "returnsorted")
    if not returnsorted and (name in _SMALL_STEP or name == "gavrilov_benjamini_sarkar"):
        result = _small(pvals, alpha, name)
        if result is not None:
            return result
    res = procedure(pvals, alpha, **kwargs)
    # the adjusted p-values first: a step procedure then reads its decisions off them
    adjusted = _writable(res.pvalues_adjusted)
    reject = _writable(res.reject)
    if returnsorted:
        flat_p = np.ascontiguousarray(pvals, dtype=np.float64).reshape(-1)
        _, order = sorted_order(flat_p)
        reject, adjusted = reject.reshape(-1)[order], adjusted.reshape(-1)[order]
    return MultipletestsResult(reject, adjusted, *_corrected_levels(alpha, reject.size))


@functools.lru_cache(maxsize=256)
def _corrected_levels(alpha: float, ntests: int) -> tuple[float, float]:
    """statsmodels' ``alphacSidak`` (a numpy float) and ``alphacBonf`` (a float), NaN for
    no tests, in its expressions (``np.power``: Python's ``**`` differs in the last
    place now and then); cached, as a numpy call on scalars costs a microsecond."""
    if not ntests:
        return np.nan, np.nan
    return 1 - np.power((1.0 - alpha), 1.0 / ntests), alpha / float(ntests)


def _small(pvals, alpha: float, name: str) -> MultipletestsResult | None:
    """A step procedure or GBS on a small input in one kernel call, or None (larger or
    empty input, or invalid p-values: the procedure takes over). Single-step procedures
    need no sort: up to ``multitest._step.SMALL_N`` p-values; the others up to
    ``multitest._sort.PACKED_MIN_N``, below which the kernel's merge sort is the
    procedure's too."""
    flat, shape = as_pvalues(pvals, check_values=False)
    N = flat.size
    if name == "gavrilov_benjamini_sarkar":
        if not 0 < N < PACKED_MIN_N:
            return None
        reject, adjusted, valid = small_gbs(flat, alpha)
    else:
        code, step_up, single_step = _SMALL_STEP[name]
        if not 0 < N <= (_step.SMALL_N if single_step else PACKED_MIN_N - 1):
            return None
        extra = harmonic_number(N) if code == K.BY else 0.0
        one_step = single_step or _step.decides_in_one_step(code, 1, N)
        reject, adjusted, valid = AK.small_reject_adjusted(
            flat, code, alpha, 1, extra, step_up, one_step, single_step, _step.SMALL_PASSES)
    if not valid:
        return None
    return MultipletestsResult(reject.reshape(shape), adjusted.reshape(shape),
                               *_corrected_levels(alpha, N))
