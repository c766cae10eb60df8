"""Every route to a step procedure's decisions gives the same, correct answer.

``multitest._step`` decides in a few passes: a fixed-point iteration on the rank
(at most ``PLAIN_PASSES`` passes), then, where it has not settled, an exact
histogram of ranks over a window (``MIN_WINDOW`` wide; if it holds no stopping
point, a second window covers the rest). ``certify_counts`` runs the same iteration
in count space and falls back to a histogram over 0..n. The tests force each route
by setting those constants, check that the route was taken (so that they test what
they say), and compare with the sort-based procedure and statsmodels.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from statsmodels.stats.multitest import multipletests as sm_multipletests

import multitest as mt
from multitest import _kernels as K
from multitest import _step
from tests.test_fwer import BIT_EXACT, SM_METHODS, brute_force_lehmann_romano

# name -> (PLAIN_PASSES, MIN_WINDOW)
ROUTES = {
    "iteration": (50, 4096),
    "window": (0, 4096),
    "one pass, then two windows": (1, 1),
    "two windows": (0, 2),
}
# procedure -> (kernel code, step-up)
STEPWISE = {mt.holm: (K.STEPDOWN_K, False), mt.hochberg: (K.STEPDOWN_K, True),
            mt.holm_sidak: (K.HOLM_SIDAK, False), mt.benjamini_hochberg: (K.BH, True),
            mt.benjamini_yekutieli: (K.BY, True)}


def sort_based(proc, p, alpha):
    """The textbook procedure: sort, compare the j-th smallest with c_j."""
    code, step_up = STEPWISE[proc]
    N = p.size
    extra = float(np.sum(1.0 / np.arange(1, N + 1)))
    order = np.argsort(p, kind="stable")
    passed = [p[order[j - 1]] <= K.crit(code, j, N, alpha, 1, extra) for j in range(1, N + 1)]
    if step_up:
        R = max((j for j in range(1, N + 1) if passed[j - 1]), default=0)
    else:
        R = next((j - 1 for j in range(1, N + 1) if not passed[j - 1]), N)
    reject = np.zeros(N, dtype=bool)
    reject[order[:R]] = True
    return reject


def reference(proc, p, alpha):
    """Sort-based decisions; for the procedures whose critical values are statsmodels'
    float expressions, also statsmodels' own."""
    ref = sort_based(proc, p, alpha)
    if proc in BIT_EXACT:
        sm, _, _, _ = sm_multipletests(p, alpha, method=SM_METHODS[proc])
        np.testing.assert_array_equal(ref, sm)
    return ref


@pytest.fixture
def route(monkeypatch, request):
    """Set the route's constants; yields the list of window_search calls made."""
    passes, width = ROUTES[request.param]
    monkeypatch.setattr(_step, "SMALL_N", 0)  # the passes, even on small inputs
    monkeypatch.setattr(_step, "PLAIN_PASSES", passes)
    monkeypatch.setattr(_step, "MIN_WINDOW", width)
    calls = []
    search = K.window_search

    def counting(*args):
        calls.append(args)
        return search(*args)

    monkeypatch.setattr(K, "window_search", counting)
    return calls


def inputs(rng, alpha):
    """Inputs that settle fast, slowly, or not at all before the window search."""
    N = 3000
    yield "uniform^4", rng.uniform(size=N) ** 4
    yield "tied", np.round(rng.uniform(size=N) ** 6, 4)
    signal = rng.uniform(size=N) < 0.9
    yield "z-test mixture", stats.norm.sf(rng.normal(size=N) + 6.0 * signal)
    # every p-value on its critical value: the iteration moves one rank per pass
    yield "on Holm's critical values", rng.permutation(alpha / (N - np.arange(N)))
    yield "on BH's critical values", rng.permutation((np.arange(1, N + 1) / N) * alpha)
    yield "all zero", np.zeros(50)
    yield "all one", np.ones(50)


@pytest.mark.parametrize("route", list(ROUTES), indirect=True)
@pytest.mark.parametrize("proc", list(STEPWISE), ids=lambda f: f.__name__)
@pytest.mark.parametrize("alpha", [0.001, 0.1])
def test_every_route_agrees_with_sorting(rng, route, proc, alpha):
    for name, p in inputs(rng, alpha):
        np.testing.assert_array_equal(proc(p, alpha).reject, reference(proc, p, alpha),
                                      err_msg=name)
    if _step.PLAIN_PASSES == 0:
        assert route, "the window search was not reached"


@pytest.mark.parametrize("route", list(ROUTES), indirect=True)
@pytest.mark.parametrize("k", [1, 4, 100])
def test_every_route_lehmann_romano_brute_force(rng, route, k):
    alpha = 0.05
    for name, p in inputs(rng, alpha):
        ref, _ = brute_force_lehmann_romano(p, alpha, k)
        np.testing.assert_array_equal(mt.lehmann_romano(p, alpha, k=k).reject, ref,
                                      err_msg=name)


@pytest.mark.parametrize("route", ["two windows"], indirect=True)
def test_second_window_is_taken(route):
    """At Holm's critical values with a window of 2 ranks, the first window holds
    no stopping point and the second covers the rest."""
    N, alpha = 500, 0.05
    p = alpha / (N - np.arange(N))
    assert mt.holm(p, alpha).reject.all()
    assert len(route) == 1
    # window_search(p, code, alpha, k, extra, step_up, m, width): R = N lies beyond
    # the first window, so only the second can have found it
    m, width = route[0][-2:]
    assert m + width < N


@pytest.mark.parametrize("route", ["iteration"], indirect=True)
def test_iteration_settles_without_window_on_typical_input(rng, route):
    p = stats.norm.sf(rng.normal(size=20_000) + 5.0 * (rng.uniform(size=20_000) < 0.5))
    res = mt.holm(p, 0.01)
    ref, _, _, _ = sm_multipletests(p, 0.01, method="holm")
    np.testing.assert_array_equal(res.reject, ref)
    assert res.reject.any() and not route


@given(
    p=hnp.arrays(np.float64, st.integers(1, 300),
                 elements=st.sampled_from([0.0, 1e-9, 1e-6, 1e-4, 1e-3, 0.004, 0.01, 0.02,
                                           0.05, 0.2, 1.0]) | st.floats(0, 1)),
    alpha=st.sampled_from([0.001, 0.05, 0.3]),
    passes=st.integers(0, 4),
    width=st.integers(1, 8),
    proc=st.sampled_from(list(STEPWISE)),
)
@settings(max_examples=300, deadline=None)
def test_route_property(p, alpha, passes, width, proc):
    old = _step.PLAIN_PASSES, _step.MIN_WINDOW, _step.SMALL_N
    _step.PLAIN_PASSES, _step.MIN_WINDOW, _step.SMALL_N = passes, width, 0
    try:
        ours = proc(p, alpha).reject
    finally:
        _step.PLAIN_PASSES, _step.MIN_WINDOW, _step.SMALL_N = old
    np.testing.assert_array_equal(ours, reference(proc, p, alpha))


# ------------------------------------------------------------ count space
def generic(counts, n, tau, alpha, method, k):
    spec = mt.COUNT_METHODS[method]
    kwargs = {"k": k} if spec.takes_k else {}
    return spec.procedure(mt.binomial_pvalues(counts, n, tau), alpha, **kwargs).reject


@pytest.fixture
def count_route(monkeypatch, request):
    """Set PLAIN_PASSES; yields the count passes made: 'histogram', 'count' (a
    count_sweep that only counts) or 'decide' (one that rewrites the decisions)."""
    monkeypatch.setattr(_step, "PLAIN_PASSES", request.param)
    monkeypatch.setattr(_step, "SMALL_N", 0)  # the count passes, even on small inputs
    calls = []
    for name in ("count_sweep", "count_histogram"):
        kernel = getattr(K, name)

        def counting(*args, _name=name, _kernel=kernel):
            if _name == "count_histogram":
                calls.append("histogram")
            else:
                calls.append("decide" if args[-1].size else "count")
            return _kernel(*args)

        monkeypatch.setattr(K, name, counting)
    return calls


@pytest.mark.parametrize("count_route", [0, 1, 3, 50], indirect=True)
@pytest.mark.parametrize("method", [m for m, s in mt.COUNT_METHODS.items() if s.code is not None])
def test_count_routes_equal_generic(rng, count_route, method):
    k = 3 if mt.COUNT_METHODS[method].takes_k else 1
    n = 1000
    for tau, alpha in [(0.5, 0.05), (0.75, 0.05), (0.75, 0.001)]:
        q = rng.beta(18, 2, size=4000)
        spread = rng.integers(int(n * tau), n + 1, size=4000)  # p-values around alpha
        for counts in (rng.binomial(n, q), spread, rng.binomial(n, 0.97, size=3000),
                       np.full(20, n), np.zeros(7, dtype=int)):
            cert = mt.certify_counts(counts, n, tau, alpha, method=method, k=k)
            np.testing.assert_array_equal(cert.reject,
                                          generic(counts, n, tau, alpha, method, k))
            expected = counts[cert.reject].min() if cert.reject.any() else n + 1
            assert cert.threshold == expected
    one_step = method in ("bonferroni", "generalized_bonferroni", "sidak")
    if _step.PLAIN_PASSES == 0 and not one_step:
        assert "histogram" in count_route
    if _step.PLAIN_PASSES == 50:
        assert "histogram" not in count_route
        if not one_step:
            assert "decide" in count_route  # decisions rewritten after the first pass


# --- adjusted p-values: every p-value sorted, or only those below 1 (issue 21) -----------
@pytest.mark.parametrize("proc", [*STEPWISE, mt.lehmann_romano], ids=lambda f: f.__name__)
def test_sorting_only_the_adjusted_pvalues_below_one_changes_nothing(rng, monkeypatch, proc):
    """Above ``PARTIAL_MIN_N`` only the hypotheses rejected at the double below 1 are
    sorted and the others get 1: bit for bit the values of sorting all of them, on
    inputs where few, some or all adjusted p-values are below 1, with ties and p-values
    on Holm's critical values."""
    N = _step.PARTIAL_MIN_N + 904
    kw = {"k": 7} if proc is mt.lehmann_romano else {}
    inputs = [rng.uniform(size=N) ** 4, rng.uniform(size=N),
              stats.norm.sf(rng.normal(size=N) + 6.5 * (rng.uniform(size=N) < 0.9)),
              rng.integers(0, 41, size=N) / 4000, rng.permutation(1.0 / (N - np.arange(N))),
              np.where(rng.uniform(size=N) < 0.2, 1.0, rng.uniform(size=N) ** 2), np.zeros(N)]
    partial = [proc(p, **kw).pvalues_adjusted for p in inputs]
    # the partial route was taken: some, not all, adjusted p-values below 1
    assert any(0 < np.count_nonzero(a < 1.0) < N for a in partial)
    monkeypatch.setattr(_step, "PARTIAL_MIN_N", 10**9)
    for p, got in zip(inputs, partial, strict=True):
        np.testing.assert_array_equal(got.view(np.uint64),
                                      proc(p, **kw).pvalues_adjusted.view(np.uint64))
