"""Every public multitest procedure accepts any array layout the caller may hold.

Read-only arrays (pandas Series and their ``to_numpy()``, memory maps opened with
``mmap_mode="r"``, ``setflags(write=False)``), non-contiguous views and big-endian
dtypes must give exactly the result of the same values in a plain array (issue 13,
item 1: numba kernels with explicit signatures refused read-only arrays).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import multitest as mt
from multitest._validation import as_pvalues

N = 257  # odd, not a multiple of the kernels' blocks
NTRIALS = 100

P_PROCEDURES = {
    "bonferroni": (mt.bonferroni, {}),
    "generalized_bonferroni": (mt.generalized_bonferroni, {"k": 3}),
    "holm": (mt.holm, {}),
    "lehmann_romano": (mt.lehmann_romano, {"k": 3}),
    "sidak": (mt.sidak, {}),
    "holm_sidak": (mt.holm_sidak, {}),
    "hochberg": (mt.hochberg, {}),
    "hommel": (mt.hommel, {}),
    "benjamini_hochberg": (mt.benjamini_hochberg, {}),
    "benjamini_yekutieli": (mt.benjamini_yekutieli, {}),
    "two_stage_benjamini_hochberg": (mt.two_stage_benjamini_hochberg, {}),
    "benjamini_krieger_yekutieli": (mt.benjamini_krieger_yekutieli, {}),
}


def _pvalues() -> np.ndarray:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=N) ** 4
    p[:20] = rng.uniform(size=20) * 1e-6  # some certain rejections, some ties
    p[20:30] = p[0]
    return p


def _counts() -> np.ndarray:
    rng = np.random.default_rng(1)
    c = rng.binomial(NTRIALS, 0.97, size=N)
    c[:30] = rng.binomial(NTRIALS, 0.7, size=30)
    return c.astype(np.int64)


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _memmap(a, tmp_path):
    path = tmp_path / "values.npy"
    np.save(path, a)
    return np.load(path, mmap_mode="r")


def _strided(a):
    wide = np.empty(2 * a.size, dtype=a.dtype)
    wide[::2] = a
    view = wide[::2]
    assert not view.flags.c_contiguous
    return view


def _big_endian(a):
    out = a.astype(a.dtype.newbyteorder(">"))
    assert not out.dtype.isnative
    return out


LAYOUTS = {
    "readonly": lambda a, tmp: _readonly(a),
    "series": lambda a, tmp: pd.Series(a),
    "series_to_numpy": lambda a, tmp: pd.Series(a).to_numpy(),
    "memmap": _memmap,
    "strided": lambda a, tmp: _strided(a),
    "big_endian": lambda a, tmp: _big_endian(a),
    "big_endian_readonly": lambda a, tmp: _readonly(_big_endian(a)),
    "fortran_2d": lambda a, tmp: np.asfortranarray(a[:256].reshape(16, 16)),
}


def _plain(value) -> np.ndarray:
    """The same values in a fresh, writable, C-ordered, native-endian array."""
    arr = np.asarray(value)
    plain = np.array(arr, dtype=arr.dtype.newbyteorder("="), order="C")
    assert plain.flags.writeable and plain.flags.c_contiguous
    return plain


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", P_PROCEDURES)
def test_pvalue_procedures_accept_layout(name, layout, tmp_path):
    procedure, kwargs = P_PROCEDURES[name]
    value = LAYOUTS[layout](_pvalues(), tmp_path)
    plain = _plain(value)
    expected = procedure(plain, 0.05, **kwargs)
    got = procedure(value, 0.05, **kwargs)
    np.testing.assert_array_equal(got.reject, expected.reject)
    np.testing.assert_array_equal(got.pvalues_adjusted, expected.pvalues_adjusted)
    assert got.reject.shape == plain.shape


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh", "hommel", "fdr_tsbky"])
def test_multipletests_accepts_layout(method, layout, tmp_path):
    value = LAYOUTS[layout](_pvalues(), tmp_path)
    expected = mt.multipletests(_plain(value), 0.05, method=method)
    got = mt.multipletests(value, 0.05, method=method)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


COUNT_LAYOUTS = {
    **LAYOUTS,
    "big_endian_int32": lambda a, tmp: a.astype(">i4"),
    "uint16": lambda a, tmp: _readonly(a.astype(np.uint16)),
}


@pytest.mark.parametrize("layout", COUNT_LAYOUTS)
def test_binomial_pvalues_accept_layout(layout, tmp_path):
    value = COUNT_LAYOUTS[layout](_counts(), tmp_path)
    expected = mt.binomial_pvalues(_plain(value), NTRIALS, 0.75)
    np.testing.assert_array_equal(mt.binomial_pvalues(value, NTRIALS, 0.75), expected)


@pytest.mark.parametrize("layout", COUNT_LAYOUTS)
@pytest.mark.parametrize("method", list(mt.COUNT_METHODS))
def test_certify_counts_accepts_layout(method, layout, tmp_path):
    value = COUNT_LAYOUTS[layout](_counts(), tmp_path)
    kwargs = {"k": 3} if mt.COUNT_METHODS[method].takes_k else {}
    expected = mt.certify_counts(_plain(value), NTRIALS, 0.75, 0.05, method=method, **kwargs)
    got = mt.certify_counts(value, NTRIALS, 0.75, 0.05, method=method, **kwargs)
    np.testing.assert_array_equal(got.reject, expected.reject)
    assert got.threshold == expected.threshold
    np.testing.assert_array_equal(got.pvalues, expected.pvalues)
    np.testing.assert_array_equal(got.pvalues_adjusted, expected.pvalues_adjusted)


@pytest.mark.parametrize("layout", ["readonly", "memmap", "series_to_numpy"])
def test_power_functions_accept_layout(layout, tmp_path):
    counts = LAYOUTS[layout](_counts(), tmp_path)
    np.testing.assert_array_equal(mt.clopper_pearson_lower(counts, NTRIALS, 0.001),
                                  mt.clopper_pearson_lower(_plain(counts), NTRIALS, 0.001))
    p_a = LAYOUTS[layout](np.linspace(0.5, 0.999, 7), tmp_path)
    np.testing.assert_array_equal(
        mt.segcertify_power(p_a, NTRIALS, 0.75, 0.001, N=100),
        mt.segcertify_power(_plain(p_a), NTRIALS, 0.75, 0.001, N=100))


def test_readonly_input_is_not_copied_for_validation():
    """A read-only float64 array is validated in place: no copy is needed to read it."""
    p = _readonly(_pvalues())
    flat, shape = as_pvalues(p)
    assert np.shares_memory(flat, p) and shape == p.shape


@pytest.mark.parametrize("name", ["holm", "hommel", "benjamini_krieger_yekutieli"])
def test_inputs_stay_untouched(name):
    procedure, kwargs = P_PROCEDURES[name]
    p = _readonly(_pvalues())
    before = p.copy()
    assert procedure(p, 0.05, **kwargs).pvalues_adjusted.shape == p.shape
    np.testing.assert_array_equal(p, before)
    assert not p.flags.writeable
