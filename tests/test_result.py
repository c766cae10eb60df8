"""The result objects: read-only, no unpacking (but multipletests'), alpha=None, axis=."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from statsmodels.stats.multitest import multipletests as sm_multipletests

import multitest as mt

#: Every procedure with the options it needs.
PROCEDURES = {
    "bonferroni": (mt.bonferroni, {}),
    "generalized_bonferroni": (mt.generalized_bonferroni, {"k": 2}),
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
    "gavrilov_benjamini_sarkar": (mt.gavrilov_benjamini_sarkar, {}),
    "support_line": (mt.support_line, {}),
}
TWO_STAGE = {"two_stage_benjamini_hochberg", "benjamini_krieger_yekutieli"}
#: The procedures whose adjusted p-value is the smallest level that rejects.
SMALLEST_LEVEL = sorted(set(PROCEDURES) - TWO_STAGE)

# values on a coarse grid make ties and exact boundary cases likely
gridded = st.integers(0, 20).map(lambda i: i / 20)
pvalue = st.one_of(st.floats(0.0, 1.0, width=64), gridded)


def run(name, p, alpha, **kw):
    procedure, options = PROCEDURES[name]
    return procedure(p, alpha, **options, **kw)


# --- read-only arrays, no unpacking ----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PROCEDURES))
def test_arrays_are_read_only_and_the_callers_stay_writable(rng, name):
    p = rng.uniform(size=(4, 5)) ** 3
    res = run(name, p, 0.1)
    for arr in (res.reject, res.pvalues_adjusted):
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[0, 0] = arr[0, 0]
    assert p.flags.writeable


def test_count_certificate_arrays_are_read_only():
    cert = mt.certify_counts([100, 90, 50], 100, 0.75, 0.01)
    for arr in (cert.reject, cert.pvalues, cert.pvalues_adjusted):
        assert not arr.flags.writeable


@pytest.mark.parametrize("name", sorted(PROCEDURES))
def test_a_procedure_result_does_not_unpack(name):
    res = run(name, [0.01, 0.2], 0.05)
    with pytest.raises(TypeError, match="does not unpack.*multipletests"):
        reject, adjusted = res
    with pytest.raises(TypeError, match="does not unpack"):
        tuple(res)


def test_multipletests_unpacks_like_statsmodels_with_writable_arrays(rng):
    p = rng.uniform(size=50) ** 2
    ours = mt.multipletests(p, 0.05, method="holm")
    ref = sm_multipletests(p, 0.05, method="holm")
    assert isinstance(ours, tuple) and len(ours) == 4
    reject, corrected, alphac_sidak, alphac_bonf = ours
    assert ours.reject is reject and ours.pvals_corrected is corrected
    assert (ours.alphacSidak, ours.alphacBonf) == (alphac_sidak, alphac_bonf)
    np.testing.assert_array_equal(reject, ref[0])
    np.testing.assert_allclose(corrected, ref[1], rtol=1e-12)
    assert alphac_bonf == ref[3]
    assert reject.flags.writeable and corrected.flags.writeable  # as statsmodels'
    reject[:] = False  # and writing into them leaves nothing else changed
    assert mt.multipletests(p, 0.05, method="holm").reject.any()


# --- alpha=None: adjusted p-values only ----------------------------------------------------
@pytest.mark.parametrize("name", sorted(set(PROCEDURES) - TWO_STAGE))
def test_alpha_none_gives_the_adjusted_pvalues_and_no_decisions(rng, name):
    p = rng.uniform(size=(3, 7)) ** 2
    res = run(name, p, None)
    np.testing.assert_array_equal(res.pvalues_adjusted, run(name, p, 0.05).pvalues_adjusted)
    assert res.alpha is None and res.method == name
    with pytest.raises(ValueError, match=r"`reject` needs a level.*alpha=None"):
        _ = res.reject
    with pytest.raises(ValueError, match="`alpha=None`"):
        _ = res.num_rejected
    assert "adjusted p-values only" in repr(res)
    procedure, options = PROCEDURES[name]
    np.testing.assert_array_equal(procedure(p, **options).pvalues_adjusted,
                                  res.pvalues_adjusted)  # alpha may be omitted


def test_holm_without_alpha():
    np.testing.assert_array_equal(mt.holm([0.01, 0.04, 0.03, 0.005]).pvalues_adjusted,
                                  [0.03, 0.06, 0.06, 0.02])


@pytest.mark.parametrize("name", sorted(TWO_STAGE))
def test_two_stage_procedures_need_alpha(name):
    procedure, _ = PROCEDURES[name]
    with pytest.raises(TypeError, match="`alpha` is required"):
        procedure([0.01, 0.2])
    with pytest.raises(TypeError, match="`alpha` is required"):
        procedure([0.01, 0.2], None)


# --- axis: each slice its own family --------------------------------------------------------
def per_slice(name, p, alpha, axis):
    """The reference: the 1-D procedure applied to every slice along `axis`."""
    moved = np.moveaxis(p, axis, -1)
    reject = np.empty(moved.shape, dtype=bool)
    adjusted = np.empty(moved.shape)
    for idx in np.ndindex(moved.shape[:-1]):
        res = run(name, moved[idx], alpha)
        reject[idx], adjusted[idx] = res.reject, res.pvalues_adjusted
    return np.moveaxis(reject, -1, axis), np.moveaxis(adjusted, -1, axis)


@given(
    p=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
                 elements=pvalue),
    data=st.data(),
    alpha=st.sampled_from([0.01, 0.05, 0.25]),
    name=st.sampled_from(sorted(PROCEDURES)),
)
@settings(max_examples=150, deadline=None)
def test_axis_equals_the_procedure_applied_per_slice(p, data, alpha, name):
    axis = data.draw(st.integers(-p.ndim, p.ndim - 1))
    res = run(name, p, alpha, axis=axis)
    reject, adjusted = per_slice(name, p, alpha, axis)
    assert res.reject.shape == p.shape and res.pvalues_adjusted.shape == p.shape
    np.testing.assert_array_equal(res.reject, reject)
    np.testing.assert_array_equal(res.pvalues_adjusted, adjusted)
    assert res.method == name and res.alpha == alpha


def test_axis_like_scipy_false_discovery_control(rng):
    from scipy.stats import false_discovery_control

    p = rng.uniform(size=(20, 3)) ** 3
    for axis in (0, 1, -1):
        np.testing.assert_allclose(mt.benjamini_hochberg(p, axis=axis).pvalues_adjusted,
                                   false_discovery_control(p, axis=axis), rtol=1e-12)
    # axis=None (the default) is one family of all 60 p-values
    np.testing.assert_allclose(mt.benjamini_hochberg(p).pvalues_adjusted.ravel(),
                               false_discovery_control(p.ravel()), rtol=1e-12)


def test_axis_with_alpha_none_and_options(rng):
    p = rng.uniform(size=(4, 6)) ** 2
    res = mt.lehmann_romano(p, k=2, axis=1)
    ref = np.stack([mt.lehmann_romano(row, 0.05, k=2).pvalues_adjusted for row in p])
    np.testing.assert_array_equal(res.pvalues_adjusted, ref)
    with pytest.raises(ValueError, match="`reject` needs a level"):
        _ = res.reject
    res = mt.benjamini_krieger_yekutieli(p, 0.1, maxiter=2, axis=0)
    ref = np.stack([mt.benjamini_krieger_yekutieli(col, 0.1, maxiter=2).reject for col in p.T])
    np.testing.assert_array_equal(res.reject, ref.T)


@pytest.mark.parametrize(
    ("axis", "exc", "match"),
    [(2, ValueError, r"`axis` must lie in \[-2, 1\]"), (-3, ValueError, "`axis`"),
     (1.0, TypeError, "`axis` must be an integer"), ("0", TypeError, "`axis`"),
     (True, TypeError, "`axis`")],
)
def test_bad_axis(axis, exc, match):
    with pytest.raises(exc, match=match):
        mt.holm(np.full((2, 3), 0.5), 0.05, axis=axis)


def test_axis_validates_options_even_without_slices():
    with pytest.raises(ValueError, match="`alpha`"):
        mt.holm(np.zeros((0, 3)), 1.5, axis=0)
    with pytest.raises(ValueError, match="`k`"):
        mt.lehmann_romano(np.zeros((3, 0)), 0.05, k=0, axis=0)


# --- what the adjusted p-values mean, procedure by procedure (docs/multitest.md) ----------
@given(p=hnp.arrays(np.float64, st.integers(1, 12), elements=pvalue),
       name=st.sampled_from(SMALLEST_LEVEL))
@settings(max_examples=300, deadline=None)
def test_adjusted_pvalue_is_the_smallest_level_that_rejects(p, name):
    """Rejected at its adjusted p-value a, not at the double below a (for levels in
    (0, 1)); and the decisions at any level are ``adjusted <= alpha``."""
    adjusted = run(name, p, None).pvalues_adjusted
    for i, a in enumerate(adjusted):
        if 0.0 < a < 1.0:
            assert run(name, p, a).reject[i]
        below = np.nextafter(a, 0.0)
        if 0.0 < below < 1.0:
            assert not run(name, p, below).reject[i]
    for alpha in (0.01, 0.05, 0.3):
        np.testing.assert_array_equal(run(name, p, alpha).reject, adjusted <= alpha)


@pytest.mark.parametrize("name", sorted(TWO_STAGE))
@given(p=hnp.arrays(np.float64, st.integers(1, 12), elements=pvalue),
       alpha=st.sampled_from([0.01, 0.05, 0.1, 0.3]))
@settings(max_examples=100, deadline=None)
def test_two_stage_adjusted_pvalues_decide_only_at_their_own_alpha(name, p, alpha):
    res = run(name, p, alpha)
    np.testing.assert_array_equal(res.reject, res.pvalues_adjusted <= alpha)


def test_two_stage_adjusted_pvalue_is_not_the_smallest_rejecting_level():
    """BKY at alpha = 0.1 gives p = 0.06 the adjusted value 0.055, but BKY first rejects
    it near 0.087: the adjusted p-values belong to their alpha (docs/multitest.md)."""
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    res = mt.benjamini_krieger_yekutieli(p, 0.1)
    assert res.pvalues_adjusted[5] == pytest.approx(0.055) and res.reject[5]
    assert not mt.benjamini_krieger_yekutieli(p, 0.055).reject[5]
    levels = np.linspace(0.05, 0.1, 501)
    first = levels[[mt.benjamini_krieger_yekutieli(p, a).reject[5] for a in levels]][0]
    assert 0.085 < first < 0.09


@pytest.mark.parametrize("name", sorted(PROCEDURES))
def test_read_only_results_feed_every_procedure(rng, name):
    p = rng.uniform(size=30) ** 3
    cert = mt.certify_counts(rng.binomial(50, 0.9, size=30), 50, 0.75, 0.05)
    for arr in (cert.pvalues, mt.holm(p).pvalues_adjusted):
        assert not arr.flags.writeable
        res = run(name, arr, 0.05)
        ref = run(name, arr.copy(), 0.05)
        np.testing.assert_array_equal(res.reject, ref.reject)
        np.testing.assert_array_equal(res.pvalues_adjusted, ref.pvalues_adjusted)
