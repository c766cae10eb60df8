"""Result objects returned by every multiple-testing procedure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["MultitestResult", "read_only"]


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of `a` (`a` itself, and the caller's arrays, keep their flags)."""
    view = a.view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True, eq=False)
class MultitestResult:
    """Outcome of a multiple-testing procedure.

    Attributes
    ----------
    reject : numpy.ndarray of bool
        ``True`` where the null hypothesis is rejected; same shape and order as the
        p-values that were passed in. Raises ``ValueError`` if the procedure was
        called with ``alpha=None`` (adjusted p-values only): there is no level to
        decide at. The step procedures decide large families on first access (read
        off the adjusted p-values where those were computed first).
    alpha : float or None
        The level at which the procedure was run (FWER, k-FWER or FDR level), or
        None.
    method : str
        Canonical name of the procedure, e.g. ``'holm'``.
    k : int
        The ``k`` of a k-FWER procedure (1 for ordinary FWER/FDR procedures).
    pvalues_adjusted : numpy.ndarray of float64
        Adjusted p-values, computed on first access (they may need a sort, the
        decision does not). ``reject == (pvalues_adjusted <= alpha)`` holds
        *exactly* for every procedure; for all but the two-stage FDR procedures
        the adjusted p-value is moreover the smallest double-precision level at
        which the procedure rejects that hypothesis (see docs/multitest.md).

    Notes
    -----
    The arrays are read-only views: a result cannot be changed after the fact.
    Copy them (``res.reject.copy()``) to modify. A result does not unpack into a
    tuple; :func:`multitest.multipletests` returns statsmodels' 4-tuple
    ``(reject, pvals_corrected, alphacSidak, alphacBonf)``.

    Examples
    --------
    >>> import multitest
    >>> res = multitest.holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    >>> res
    MultitestResult(method='holm', alpha=0.05, k=1, num_rejected=2, shape=(4,))
    >>> res.reject.flags.writeable
    False
    >>> reject, adjusted = res  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: MultitestResult does not unpack; use its `reject` and ...
    """

    _reject: np.ndarray | Callable[[np.ndarray | None], np.ndarray] | None
    alpha: float | None
    method: str
    k: int = 1
    _adjust: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @cached_property
    def reject(self) -> np.ndarray:
        decisions = self._reject
        if decisions is None:
            raise ValueError(
                f"`reject` needs a level: this {self.method} result was computed with "
                "`alpha=None` (adjusted p-values only); pass `alpha` to the procedure, "
                "or compare `pvalues_adjusted <= level`."
            )
        if callable(decisions):  # decided on first access, from the adjusted p-values
            # if they were computed first
            decisions = decisions(self.__dict__.get("pvalues_adjusted"))
        return read_only(decisions)

    @cached_property
    def pvalues_adjusted(self) -> np.ndarray:
        if self._adjust is None:  # pragma: no cover - every procedure sets it
            raise AttributeError("this result carries no adjusted p-values")
        return read_only(self._adjust())

    @property
    def num_rejected(self) -> int:
        """Number of rejected hypotheses (``ValueError`` if computed with ``alpha=None``)."""
        return int(np.count_nonzero(self.reject))

    def __iter__(self):
        raise TypeError(
            f"{type(self).__name__} does not unpack; use its `reject` and "
            "`pvalues_adjusted` attributes, or multitest.multipletests for statsmodels' "
            "tuple (reject, pvals_corrected, alphacSidak, alphacBonf)."
        )

    def __repr__(self) -> str:
        decided = (f"num_rejected={self.num_rejected}, " if self._reject is not None
                   else "adjusted p-values only, ")
        return (
            f"{type(self).__name__}(method={self.method!r}, alpha={self.alpha!r}, "
            f"k={self.k}, {decided}shape={self._shape()})"
        )

    def _shape(self) -> tuple[int, ...]:
        if self._reject is not None:
            return self.reject.shape
        return self.pvalues_adjusted.shape
