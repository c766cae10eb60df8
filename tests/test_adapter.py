"""The statsmodels-compatible adapter."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests as sm_multipletests

import multitest as mt


@pytest.mark.parametrize("method", sorted(mt.METHOD_ALIASES))
def test_same_tuple_as_statsmodels(rng, method):
    p = rng.uniform(size=300) ** 3
    ours = mt.multipletests(p, 0.05, method=method)
    ref = sm_multipletests(p, 0.05, method=method)
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-12, atol=1e-300)
    assert ours[2] == pytest.approx(ref[2], rel=1e-15)
    assert ours[3] == ref[3]


def test_returnsorted(rng):
    p = rng.uniform(size=50)
    ours = mt.multipletests(p, 0.2, method="holm", returnsorted=True)
    ref = sm_multipletests(p, 0.2, method="holm", returnsorted=True)
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-12)


def test_default_method_is_holm_sidak(rng):
    p = rng.uniform(size=20) ** 2
    np.testing.assert_array_equal(mt.multipletests(p)[0], mt.holm_sidak(p, 0.05).reject)


def test_empty():
    reject, adj, a_sidak, a_bonf = mt.multipletests([], 0.05, method="holm")
    assert reject.size == 0 and adj.size == 0 and np.isnan(a_sidak) and np.isnan(a_bonf)


def test_unknown_method_and_bad_input():
    with pytest.raises(ValueError, match="`method`"):
        mt.multipletests([0.1], 0.05, method="nope")
    with pytest.raises(ValueError, match="NaN"):
        mt.multipletests([0.1, np.nan], 0.05, method="holm")
    with pytest.raises(ValueError, match="`alpha`"):
        mt.multipletests([0.1], 1.5, method="holm")


@pytest.mark.parametrize("method", [["holm"], None, 1, ("holm",)])
def test_method_must_be_a_string(method):
    with pytest.raises(TypeError, match="`method` must be a string"):
        mt.multipletests([0.01, 0.2], 0.05, method=method)


@pytest.mark.parametrize(("ours", "theirs"), [("s", "sidak"), ("hs", "holm-sidak")])
def test_sidak_critical_value_differs_from_statsmodels_in_the_last_bits(ours, theirs):
    """docs/multitest.md: Šidák and Holm–Šidák decisions can differ from statsmodels'."""
    alpha, N = 0.05, 3
    sm_crit = 1 - (1 - alpha) ** (1 / N)
    assert -np.expm1(np.log1p(-alpha) / N) < sm_crit  # ours is the accurate one here
    p = np.array([sm_crit, 0.9, 0.95])
    assert sm_multipletests(p, alpha, method=theirs)[0][0]
    assert not mt.multipletests(p, alpha, method=ours).reject[0]


def test_hommel_at_alpha_equal_to_the_largest_pvalue_differs_from_statsmodels():
    """docs/multitest.md: our adjusted p-values are capped at max(p) exactly."""
    p = np.array([0.7, 0.4, 0.8])
    ours = mt.multipletests(p, 0.8, method="hommel")
    ref = sm_multipletests(p, 0.8, method="hommel")
    assert ours.reject.all() and (ours.pvals_corrected == 0.8).all()
    assert not ref[0].any() and (ref[1] > 0.8).all()
