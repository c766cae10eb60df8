"""Cohen et al.'s PREDICT and CERTIFY (SmoothClassifier)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from multitest import clopper_pearson_lower as _clopper_pearson_lower
from samplers import GaussianL2, LaplaceL1
from smoothing import ABSTAIN, ClassCertificate, ClassPrediction, SmoothClassifier

SIGMA = 0.5


class Coin(nn.Module):
    """Classifier of x = (0,): class 1 with probability p (driven by the noise), else c0."""

    def __init__(self, p: float, num_classes: int = 3, other: int = 0) -> None:
        super().__init__()
        self.register_buffer("z", torch.tensor(float(stats.norm.ppf(p))))
        self.num_classes, self.other = num_classes, other

    def forward(self, x):
        s = x[:, 0] / SIGMA + self.z
        out = torch.zeros(x.shape[0], self.num_classes)
        out[:, 1] = s
        out[:, self.other] = torch.where(s > 0, -1.0, 1.0) if self.other != 1 else 0.0
        return out


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(42)


def clf(p, **kw):
    return SmoothClassifier(Coin(p), GaussianL2(SIGMA), num_classes=3, batch_size=kw.pop(
        "batch_size", 256), **kw)


def test_certify_returns_class_lower_bound_and_radius(gen):
    cert = clf(0.99).certify(torch.zeros(1), n0=50, n=500, alpha=0.001, generator=gen)
    assert isinstance(cert, ClassCertificate)
    assert cert.label == cert.guess == 1
    assert cert.pA_lower == pytest.approx(stats.beta.ppf(0.001, cert.count, 500 - cert.count + 1))
    assert cert.radius == pytest.approx(SIGMA * stats.norm.ppf(cert.pA_lower))
    assert 0 < cert.radius and cert.sound and cert.time_sampling > 0


def test_certify_abstains_below_one_half(gen):
    cert = clf(0.55).certify(torch.zeros(1), n0=50, n=100, alpha=0.001, generator=gen)
    assert cert.label == ABSTAIN and cert.radius == 0.0 and cert.pA_lower <= 0.5


def test_laplace_radius_uses_the_sampler():
    model = Coin(1 - 1e-12)  # z = Phi^-1(p) must stay finite
    cert = SmoothClassifier(model, LaplaceL1(0.1), num_classes=3, batch_size=100).certify(
        torch.zeros(1), n0=10, n=200, alpha=0.01, generator=torch.Generator().manual_seed(0))
    assert cert.count == 200
    assert cert.radius == pytest.approx(LaplaceL1(0.1).radius(cert.pA_lower))


def test_predict_uses_a_two_sided_binomial_test(gen):
    pred = clf(0.9).predict(torch.zeros(1), n=200, alpha=0.001, generator=gen)
    assert isinstance(pred, ClassPrediction)
    assert pred.counts.sum() == 200 and pred.label == 1
    n_a, n_b = sorted(pred.counts)[-1], sorted(pred.counts)[-2]
    assert pred.pvalue == pytest.approx(stats.binomtest(n_a, n_a + n_b, 0.5).pvalue)
    coin = clf(0.5).predict(torch.zeros(1), n=50, alpha=0.001, generator=gen)
    assert coin.label == ABSTAIN and coin.pvalue > 0.001


def test_predict_ties_go_to_the_lowest_index():
    class Flat(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 4)

    pred = SmoothClassifier(Flat(), GaussianL2(0.1), num_classes=4, batch_size=8).predict(
        torch.zeros(2), n=20, alpha=0.05)
    assert pred.counts.tolist() == [20, 0, 0, 0] and pred.label == 0


def test_same_seed_same_result():
    a = clf(0.8).certify(torch.zeros(1), n0=20, n=100, alpha=0.01,
                         generator=torch.Generator().manual_seed(3))
    b = clf(0.8).certify(torch.zeros(1), n0=20, n=100, alpha=0.01,
                         generator=torch.Generator().manual_seed(3))
    assert (a.count, a.pA_lower, a.label) == (b.count, b.pA_lower, b.label)


def test_lower_bound_matches_multitest():
    counts = np.arange(0, 101)
    ours = _clopper_pearson_lower(counts, 100, 0.001)
    try:
        from multitest import clopper_pearson_lower
    except ImportError:  # not exported yet
        from multitest._power import clopper_pearson_lower
    np.testing.assert_array_equal(ours, clopper_pearson_lower(counts, 100, 0.001))


def test_certify_is_sound_monte_carlo():
    # P(pA_lower > true p_A) <= alpha; the worst case is the guess being right
    p, alpha, reps = 0.8, 0.1, 1500
    c = clf(p, batch_size=512)
    g = torch.Generator().manual_seed(5)
    errors = 0
    for _ in range(reps):
        cert = c.certify(torch.zeros(1), n0=1, n=60, alpha=alpha, generator=g)
        errors += cert.guess == 1 and cert.pA_lower > p
    assert errors / reps <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)
    assert errors / reps > alpha / 3  # the check is not vacuous


@pytest.mark.parametrize("kw,exc,match", [
    ({"n0": 0}, ValueError, "`n0`"),
    ({"n": 0}, ValueError, "`n`"),
    ({"alpha": 1.0}, ValueError, "`alpha`"),
])
def test_errors(kw, exc, match):
    args = dict(n0=10, n=10, alpha=0.1)
    args.update(kw)
    with pytest.raises(exc, match=match):
        clf(0.9).certify(torch.zeros(1), **args)


def test_wrong_number_of_classes_raises():
    with pytest.raises(ValueError, match="expected `num_classes` = 5"):
        SmoothClassifier(Coin(0.9), GaussianL2(SIGMA), num_classes=5, batch_size=4).predict(
            torch.zeros(1), n=4, alpha=0.1)
