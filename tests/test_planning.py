"""multitest.min_certifying_samples: exact against a brute-force scan of certify_counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multitest as mt


def _brute(N: int, tau: float, alpha: float, correction: str, k: int) -> int:
    """Smallest n at which the best outcome (all counts == n) certifies anything."""
    n = 1
    while not mt.certify_counts(np.full(N, n), n, tau, alpha, method=correction,
                                k=k).reject.any():
        n += 1
    return n


_METHODS = [(m, 1) for m in mt.COUNT_METHODS] + [("lehmann_romano", 3),
                                                  ("generalized_bonferroni", 2)]


@pytest.mark.parametrize(("correction", "k"), _METHODS)
@pytest.mark.parametrize(("N", "tau", "alpha"), [(1, 0.5, 0.05), (7, 0.75, 0.001),
                                                 (50, 0.95, 0.001), (200, 0.9, 0.01)])
def test_matches_brute_force(N: int, tau: float, alpha: float, correction: str, k: int) -> None:
    expected = _brute(N, tau, alpha, correction, k)
    assert mt.min_certifying_samples(N, tau, alpha, correction, k) == expected


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 300), tau=st.floats(0.5, 0.97), alpha=st.floats(1e-4, 0.2),
       correction=st.sampled_from(["holm", "bonferroni", "lehmann_romano", "hochberg"]))
def test_matches_brute_force_random(N: int, tau: float, alpha: float, correction: str) -> None:
    assert mt.min_certifying_samples(N, tau, alpha, correction) == _brute(N, tau, alpha,
                                                                          correction, 1)


def test_no_counts_certify_below_the_minimum() -> None:
    # one short of the minimum: not even the best counts certify; at it they do
    n = mt.min_certifying_samples(100, 0.95, 0.001)
    assert not mt.certify_counts(np.full(100, n - 1), n - 1, 0.95, 0.001).reject.any()
    assert mt.certify_counts(np.full(100, n), n, 0.95, 0.001).reject.all()


def test_issue_example_tau095_n100_cannot_certify() -> None:
    assert mt.min_certifying_samples(64 * 128, 0.95, 0.001) > 100


@pytest.mark.parametrize(("kwargs", "err", "match"), [
    ({"N": 0}, ValueError, "`N`"),
    ({"N": 2.0}, TypeError, "`N`"),
    ({"tau": 1.0}, ValueError, "`tau`"),
    ({"alpha": 0.0}, ValueError, "`alpha`"),
    ({"correction": "nope"}, ValueError, "`correction`"),
    ({"correction": "holm", "k": 2}, ValueError, "`k`"),
    ({"n_max": 10}, ValueError, "n_max"),
])
def test_bad_arguments(kwargs: dict, err: type, match: str) -> None:
    args = {"N": 100, "tau": 0.95, "alpha": 0.001, **kwargs}
    with pytest.raises(err, match=match):
        mt.min_certifying_samples(**args)
