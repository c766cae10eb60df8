"""The shared pipeline of the step procedures: validate, decide in O(N), adjust lazily."""

from __future__ import annotations

import numpy as np

from multitest import _kernels as K
from multitest._result import MultitestResult
from multitest._validation import as_pvalues, check_alpha, raise_invalid_pvalues

__all__ = ["run_step_procedure"]


def run_step_procedure(pvals, alpha, *, code: int, method: str, k: int = 1,
                       extra: float = 0.0, step_up: bool = False,
                       single_step: bool = False) -> MultitestResult:
    """Validate, compute the decisions without sorting, attach lazy adjusted p-values."""
    alpha = check_alpha(alpha)
    flat, shape = as_pvalues(pvals, check_values=False)
    N = flat.size
    if N == 0:
        empty = np.zeros(shape, dtype=bool)
        return MultitestResult(empty, alpha, method, k, lambda: np.zeros(shape))
    R, status = K.step_num_rejected(flat, code, alpha, k, extra, step_up)
    if status:
        raise_invalid_pvalues(flat)
    # J_i <= R  <=>  p_i <= c_R: one comparison gives the decisions
    cut = K.crit(code, R, N, alpha, k, extra) if R else -1.0
    if np.may_share_memory(flat, np.asarray(pvals)):
        # the adjusted p-values are computed later: own the data (copied in the same pass)
        reject = np.empty(N, dtype=bool)
        own = np.empty(N)
        K.decide_and_copy(flat, cut, reject, own)
        flat = own
        reject = reject.reshape(shape)
    else:
        reject = (flat <= cut).reshape(shape)

    def adjust() -> np.ndarray:
        if single_step:
            return K.single_step_adjusted(flat, code, k, extra).reshape(shape)
        order = np.argsort(flat)
        out = np.empty_like(flat)
        out[order] = K.step_adjusted_sorted(flat[order], code, k, extra, step_up)
        return out.reshape(shape)

    return MultitestResult(reject, alpha, method, k, adjust)
