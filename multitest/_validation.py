"""Input validation shared by the public multitest functions.

Every public function converts its inputs here before any numba kernel runs, so the
kernels can assume contiguous float64 / int64 arrays with valid values.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from multitest._kernels import unit_interval_summary

__all__ = [
    "MAX_INT64",
    "MAX_N",
    "as_array",
    "as_pvalues",
    "bound_text",
    "check_alpha",
    "check_bool",
    "check_int",
    "check_k",
    "check_probability",
    "raise_invalid_pvalues",
]

#: The largest number of trials ``n`` accepted anywhere: a count ``c`` and
#: ``n - c + 1`` reach the incomplete beta function as float64, which holds every
#: integer exactly only up to 2**53 (above it the p-values would be those of
#: rounded arguments: a silently wrong certificate).
MAX_N = 2**53
#: The largest number of hypotheses, components or iterations accepted: the numba
#: kernels hold them in an int64.
MAX_INT64 = 2**63 - 1

def bound_text(value: int) -> str:
    """``value`` as the error messages write it: ``2**53`` rather than 9007199254740992
    (powers of two from 2**16 on, and one less than them)."""
    for text, v in ((f"2**{value.bit_length() - 1}", value),
                    (f"2**{value.bit_length()} - 1", value + 1)):
        if v >= 2**16 and v & (v - 1) == 0:
            return text
    return str(value)


def as_array(value, name: str) -> np.ndarray:
    """``np.asarray(value)``, with a ragged nested sequence reported under ``name``.

    No dtype is forced, so a string or bool stays one and the caller's dtype check
    names it (``np.asarray(["0.5"], dtype=float)`` would silently parse it).
    """
    try:
        return np.asarray(value)
    except ValueError as err:  # numpy >= 1.24: ragged nested sequences raise
        raise ValueError(
            f"`{name}` must be a rectangular array (nested sequences of equal lengths); "
            "got a ragged or mixed sequence."
        ) from err


def check_int(value, name: str, *, low: int = 1, high: int = MAX_INT64) -> int:
    """An integer (Python or numpy, not bool) in ``[low, high]``, as ``int``."""
    rng = f"[{bound_text(low)}, {bound_text(high)}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer in {rng}; got {value!r} "
                        f"({type(value).__name__}).")
    if not low <= value <= high:
        raise ValueError(f"`{name}` must be an integer in {rng}; got {value!r}.")
    return int(value)


def check_bool(value, name: str) -> bool:
    """``True``/``False`` (numpy bools too); anything else, e.g. ``"no"``, is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool; got {value!r} ({type(value).__name__}).")
    return bool(value)


def as_pvalues(pvals, name: str = "pvals", *,
               check_values: bool = True) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``(flat float64 contiguous array, original shape)``.

    Raises ``TypeError`` for non-real dtypes and, unless ``check_values=False`` (the
    caller's kernel then validates in its own pass), ``ValueError`` for NaN or values
    outside [0, 1]. The flat array may be a view of the caller's data.
    """
    if (type(pvals) is np.ndarray and pvals.dtype == np.float64 and pvals.ndim == 1
            and pvals.flags.c_contiguous and not check_values):  # the common case, fast
        return pvals, pvals.shape
    arr = as_array(pvals, name)
    if arr.dtype.kind not in "fiu":
        raise TypeError(
            f"`{name}` must be an array of real numbers; got dtype {arr.dtype}."
        )
    shape = arr.shape
    flat = np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)
    if check_values and flat.size:
        has_nan, lo, hi = unit_interval_summary(flat)
        if has_nan or lo < 0.0 or hi > 1.0:
            raise_invalid_pvalues(flat, name)
    return flat, shape


def raise_invalid_pvalues(flat: np.ndarray, name: str = "pvals") -> None:
    """Raise the ValueError describing why ``flat`` is not a vector of p-values."""
    if np.isnan(flat).any():
        raise ValueError(f"`{name}` contains NaN; p-values must lie in [0, 1].")
    bad = flat[(flat < 0.0) | (flat > 1.0)][0]
    raise ValueError(f"`{name}` must lie in [0, 1]; got a value of {bad!r}.")


def check_probability(value, name: str, *, low: float = 0.0, high: float = 1.0,
                      closed_low: bool = False, closed_high: bool = False) -> float:
    """Validate a real scalar in an interval and return it as ``float``."""
    if type(value) is not float and (  # the common case skips the slower ABC check
            isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"`{name}` must be a real number; got {type(value).__name__}.")
    v = float(value)
    ok_low = v >= low if closed_low else v > low
    ok_high = v <= high if closed_high else v < high
    if not (ok_low and ok_high and math.isfinite(v)):
        lb = "[" if closed_low else "("
        rb = "]" if closed_high else ")"
        raise ValueError(f"`{name}` must lie in {lb}{low:g}, {high:g}{rb}; got {value!r}.")
    return v


def check_alpha(alpha) -> float:
    """`alpha` must be a real number in the open interval (0, 1)."""
    return check_probability(alpha, "alpha")


def check_k(k, *, name: str = "k") -> int:
    """`k` must be an integer in [1, 2**63 - 1] (a float with an integral value is
    refused too): the kernels hold it in an int64. Once k alpha / N >= 1 every
    hypothesis is rejected, so a larger k would change nothing in practice."""
    return check_int(k, name)
