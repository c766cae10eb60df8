"""What every procedure gets once: families along an `axis`, and an optional `alpha`.

A procedure is written for one family (all of its p-values, any shape) and a level.
:func:`family_procedure` wraps it so that

* ``axis=i`` runs it on every 1-D slice along axis ``i`` (each slice its own family,
  as ``scipy.stats.false_discovery_control(ps, axis=i)``), and
* ``alpha=None`` returns only the adjusted p-values (``reject`` then raises), for
  the procedures whose adjusted p-values do not depend on `alpha`.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable

import numpy as np

from multitest._result import MultitestResult
from multitest._validation import as_array, check_alpha

__all__ = ["family_procedure"]

#: The level the procedure is run at when only adjusted p-values are asked for
#: (they do not depend on it; the decisions made at it are dropped).
_ANY_ALPHA = 0.5


def family_procedure(*, alpha_free_adjusted: bool = True):
    """Decorate a one-family procedure ``f(pvals, alpha, *args, axis=None, **kwargs)``.

    The decorated body always sees one family and a real `alpha`; its own `axis`
    parameter (declared for the signature) is always None there.

    Parameters
    ----------
    alpha_free_adjusted : bool, default True
        Whether the adjusted p-values are the same at every `alpha`; if not (the
        two-stage FDR procedures), ``alpha=None`` is refused.
    """

    def decorate(procedure: Callable[..., MultitestResult]) -> Callable[..., MultitestResult]:
        @functools.wraps(procedure)
        def wrapper(pvals, alpha=None, *args, axis=None, **kwargs) -> MultitestResult:
            if axis is None and alpha is not None:  # one family, decided: no overhead
                return procedure(pvals, alpha, *args, **kwargs)
            if alpha is None:
                if not alpha_free_adjusted:
                    raise TypeError(
                        f"`alpha` is required for {procedure.__name__}: its adjusted "
                        "p-values depend on the level."
                    )
                res = _run(procedure, pvals, _ANY_ALPHA, args, axis, kwargs)
                return MultitestResult(None, None, res.method, res.k, res._adjust)
            return _run(procedure, pvals, alpha, args, axis, kwargs)

        return wrapper

    return decorate


def _run(procedure, pvals, alpha, args, axis, kwargs) -> MultitestResult:
    if axis is None:
        return procedure(pvals, alpha, *args, **kwargs)
    return along_axis(procedure, pvals, alpha, axis, *args, **kwargs)


def along_axis(procedure: Callable[..., MultitestResult], pvals, alpha: float, axis,
               *args, **kwargs) -> MultitestResult:
    """Apply a one-family `procedure` to every 1-D slice of `pvals` along `axis`.

    Decisions are made now, slice by slice; the adjusted p-values are gathered from
    the slices' results on first access. Cost: the procedure's on each slice plus
    one Python call per slice.
    """
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`axis` must be an integer or None; got {axis!r}.")
    alpha = check_alpha(alpha)
    arr = as_array(pvals, "pvals")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"`axis` must lie in [{-arr.ndim}, {arr.ndim - 1}] for `pvals` of "
                         f"shape {arr.shape}; got {axis}.")
    moved = np.moveaxis(arr, axis, -1)
    rows = moved.reshape(int(np.prod(moved.shape[:-1])), moved.shape[-1])
    # an empty family validates the options and names the result, even with no slice
    template = procedure(np.empty(0), alpha, *args, **kwargs)
    results = [procedure(row, alpha, *args, **kwargs) for row in rows]
    reject = np.empty(rows.shape, dtype=bool)
    for i, res in enumerate(results):
        reject[i] = res.reject

    def back(flat_rows: np.ndarray) -> np.ndarray:
        return np.moveaxis(flat_rows.reshape(moved.shape), -1, axis)

    def adjust() -> np.ndarray:
        adjusted = np.empty(rows.shape)
        for i, res in enumerate(results):
            adjusted[i] = res.pvalues_adjusted
        return back(adjusted)

    return MultitestResult(back(reject), alpha, template.method, template.k, adjust)
