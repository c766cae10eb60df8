"""The JointClass and IndivClass baselines of §4 on torch models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from samplers import GaussianL2
from smoothing import ABSTAIN, BaselineCertificate, IndivClass, JointClass, SegCertify

SIGMA = 0.25


class Oracle(nn.Module):
    """(1, 1, N) -> (B, 2, 1, N); component i is class 1 w.p. p[i].

    ``shared=True``: every component reads the noise of component 0, so the whole
    segmentation is one coin (all-ones w.p. p[0]).
    """

    def __init__(self, p, shared: bool = False) -> None:
        super().__init__()
        p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
        self.register_buffer("z", torch.tensor(stats.norm.ppf(p), dtype=torch.float32))
        self.shared = shared

    def forward(self, x):
        e = x[:, 0, 0, :1] if self.shared else x[:, 0, 0, :]
        s = e / SIGMA + self.z
        return torch.stack([torch.zeros_like(s), s], dim=1).unsqueeze(2)


def image(n):
    return torch.zeros(1, 1, n)


def build(cls, model, **kw):
    args = dict(num_classes=2, n0=10, n=100, alpha=0.01, batch_size=64)
    args.update(kw)
    return cls(model, GaussianL2(SIGMA), **args)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(8)


def test_stable_segmentations_are_certified(gen):
    p = [1.0] * 6 + [0.0] * 6
    for cls in (IndivClass, JointClass):
        cert = build(cls, Oracle(p)).certify(image(12), generator=gen)
        assert isinstance(cert, BaselineCertificate)
        assert cert.certified and cert.certified_fraction == 1.0
        assert cert.labels.tolist() == [[1] * 6 + [0] * 6]
        assert cert.method == cls.method and cert.sound
        assert not (cert.labels.is_inference() or cert.guesses.is_inference()
                    or cert.counts.is_inference())
    joint = build(JointClass, Oracle(p)).certify(image(12), generator=gen)
    assert int(joint.counts) == 100 and joint.pA_lower.ndim == 0
    assert float(joint.pA_lower) == pytest.approx(0.01 ** (1 / 100))  # CP lower at count n
    assert joint.radius == pytest.approx(SIGMA * stats.norm.ppf(0.01 ** (1 / 100)))
    indiv = build(IndivClass, Oracle(p)).certify(image(12), generator=gen)
    # Bonferroni: every component at alpha / N
    assert float(indiv.pA_lower.min()) == pytest.approx((0.01 / 12) ** (1 / 100))
    assert indiv.radius == pytest.approx(SIGMA * stats.norm.ppf((0.01 / 12) ** (1 / 100)))


def test_one_bad_component_breaks_both_baselines_but_not_segcertify(gen):
    p = [1.0] * 20 + [0.5]  # one fair coin
    for cls in (IndivClass, JointClass):
        cert = build(cls, Oracle(p)).certify(image(21), generator=gen)
        assert not cert.certified and cert.radius == 0.0
        assert (cert.labels == ABSTAIN).all()
    seg = SegCertify(Oracle(p), GaussianL2(SIGMA), num_classes=2, n0=10, n=100, tau=0.75,
                     alpha=0.01, batch_size=64).certify(image(21), generator=gen)
    assert seg.labels[0, :20].tolist() == [1] * 20 and seg.labels[0, 20] == ABSTAIN


def test_indivclass_decision_matches_a_per_component_reference(gen):
    p = np.linspace(0.9, 1.0, 15)
    cert = build(IndivClass, Oracle(p), n=200, alpha=0.05).certify(image(15), generator=gen)
    counts = cert.counts.numpy().ravel()
    ref = np.array([stats.beta.ppf(0.05 / 15, c, 200 - c + 1) if c else 0.0 for c in counts])
    np.testing.assert_allclose(cert.pA_lower.numpy().ravel(), ref, rtol=1e-12)
    assert cert.certified == bool((ref > 0.5).all())


def test_jointclass_guesses_the_most_frequent_segmentation(gen):
    # one coin for the whole segmentation: all-ones w.p. 0.9, all-zeros otherwise
    cert = build(JointClass, Oracle([0.9] * 8, shared=True), n0=21, n=300).certify(
        image(8), generator=gen)
    assert cert.guesses.tolist() == [[1] * 8]
    count = int(cert.counts)
    assert abs(count - 270) < 4 * math.sqrt(300 * 0.09)
    assert float(cert.pA_lower) == pytest.approx(stats.beta.ppf(0.01, count, 300 - count + 1))
    assert cert.certified


def test_jointclass_without_repeats_keeps_the_first_sample_and_abstains(gen):
    # 64 fair, independent components: no segmentation repeats, nothing matches
    cert = build(JointClass, Oracle([0.5] * 64), n0=5, n=50).certify(image(64),
                                                                       generator=gen)
    assert not cert.certified and int(cert.counts) == 0 and float(cert.pA_lower) == 0.0


def test_same_seed_same_result():
    p = [0.95] * 10
    for cls in (IndivClass, JointClass):
        a = build(cls, Oracle(p)).certify(image(10), generator=torch.Generator().manual_seed(1))
        b = build(cls, Oracle(p)).certify(image(10), generator=torch.Generator().manual_seed(1))
        assert torch.equal(a.counts, b.counts) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize("cls", [IndivClass, JointClass])
def test_baselines_are_sound_monte_carlo(cls):
    # JointClass: the whole segmentation is one fair coin (p = 1/2: certifying is an
    # error). IndivClass: 5 fair components among stable ones.
    alpha, reps = 0.2, 800
    if cls is JointClass:
        model, n_comp = Oracle([0.5] * 6, shared=True), 6
    else:
        model, n_comp = Oracle([0.5] * 5 + [1.0] * 5), 10
    cert_fn = build(cls, model, n0=3, n=40, alpha=alpha).certify
    g = torch.Generator().manual_seed(77)
    errors = sum(cert_fn(image(n_comp), generator=g).certified for _ in range(reps))
    assert errors / reps <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)


@pytest.mark.parametrize("kw,match", [
    ({"n0": 0}, "`n0`"), ({"n": -1}, "`n`"), ({"alpha": 0.0}, "`alpha`"),
    ({"batch_size": 0}, "`batch_size`"), ({"layout": "XYZ"}, "`layout`"),
])
@pytest.mark.parametrize("cls", [IndivClass, JointClass])
def test_errors(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        build(cls, Oracle([0.5]), **kw)


def test_bad_outputs_raise_in_jointclass():
    def nan_model(x):
        return torch.full((x.shape[0], 2, *x.shape[2:]), float("nan"))

    with pytest.raises(ValueError, match="non-finite"):
        build(JointClass, nan_model).certify(image(3))
