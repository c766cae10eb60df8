"""Result objects returned by every multiple-testing procedure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["MultitestResult"]


@dataclass(frozen=True, eq=False)
class MultitestResult:
    """Outcome of a multiple-testing procedure.

    Attributes
    ----------
    reject : numpy.ndarray of bool
        ``True`` where the null hypothesis is rejected; same shape and order as the
        p-values that were passed in.
    alpha : float
        The level at which the procedure was run (FWER, k-FWER or FDR level).
    method : str
        Canonical name of the procedure, e.g. ``'holm'``.
    k : int
        The ``k`` of a k-FWER procedure (1 for ordinary FWER/FDR procedures).
    pvalues_adjusted : numpy.ndarray of float64
        Adjusted p-values, computed on first access (they may need a sort, the
        decision does not). For every procedure and every ``alpha`` in (0, 1),
        ``reject == (pvalues_adjusted <= alpha)`` holds *exactly*: the adjusted
        p-value is the smallest double-precision level at which the procedure
        rejects that hypothesis (clipped to 1).
    """

    reject: np.ndarray
    alpha: float
    method: str
    k: int = 1
    _adjust: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @cached_property
    def pvalues_adjusted(self) -> np.ndarray:
        if self._adjust is None:  # pragma: no cover - every procedure sets it
            raise AttributeError("this result carries no adjusted p-values")
        return self._adjust()

    @property
    def num_rejected(self) -> int:
        """Number of rejected hypotheses."""
        return int(np.count_nonzero(self.reject))

    def __repr__(self) -> str:
        return (
            f"MultitestResult(method={self.method!r}, alpha={self.alpha!r}, k={self.k}, "
            f"num_rejected={self.num_rejected}, shape={self.reject.shape})"
        )
