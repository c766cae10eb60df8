"""l2 PGD for segmentation: the projection is real, the attack works, errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn
from torch.nn import functional as F

from smoothing import PointCloudSegmenter, pgd_l2, project_l2


def norms64(d: torch.Tensor) -> torch.Tensor:
    return d.double().flatten(1).norm(dim=1)


class SmallSeg(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.Dropout(0.5), nn.Conv2d(8, classes, 3, padding=1))

    def forward(self, x):
        return self.body(x)


@pytest.fixture
def setup():
    torch.manual_seed(0)  # initialisation of the small model only
    model = SmallSeg()
    with torch.no_grad():
        model.body[3].weight.mul_(20.0)  # confident logits
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 16, 20, generator=g)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # the clean prediction as ground truth
    return model, x, y


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 50)),
                  elements=st.floats(-1e3, 1e3, width=32)),
       st.floats(1e-3, 1e3))
def test_projection_onto_the_ball(d, eps):
    delta = torch.from_numpy(d)
    out = project_l2(delta, eps)
    before, after = norms64(delta), norms64(out)
    assert (after <= eps).all()
    inside = before <= eps
    assert torch.equal(out[inside], delta[inside])  # a real projection: inside unchanged
    outside = ~inside
    if outside.any():
        np.testing.assert_allclose(after[outside], eps, rtol=1e-5)
        cos = F.cosine_similarity(out[outside].double(), delta[outside].double(), dim=1)
        assert (cos > 1 - 1e-6).all()  # direction kept


@pytest.mark.parametrize("eps", [0.05, 0.5, 3.0])
def test_pgd_stays_in_the_ball_and_the_box(setup, eps):
    model, x, y = setup
    adv = pgd_l2(model, x, y, eps=eps, steps=10, generator=torch.Generator().manual_seed(2))
    assert (norms64(adv - x) <= eps).all()
    assert adv.min() >= 0 and adv.max() <= 1
    assert adv.shape == x.shape and not adv.requires_grad


def test_pgd_increases_the_loss_and_uses_the_step_budget(setup):
    model, x, y = setup
    eps = 1.0
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y).item()
    adv = pgd_l2(model, x, y, eps=eps, steps=20, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    rand = (x + eps * noise / norms64(noise).float()[:, None, None, None]).clamp(0, 1)
    with torch.no_grad():
        attacked = F.cross_entropy(model(adv), y).item()
        random = F.cross_entropy(model(rand), y).item()
        flipped = (model(adv).argmax(1) != y).float().mean().item()
    # far better than a random perturbation of the same norm
    assert attacked - clean > 10 * abs(random - clean) and attacked > clean + 0.05
    assert flipped > 0.1
    # without clamping the final perturbation sits on the sphere (gradient steps of
    # 10 eps / steps each push outwards)
    free = pgd_l2(model, x, y, eps=eps, steps=20, clamp=None, random_start=False)
    np.testing.assert_allclose(norms64(free - x), eps, rtol=1e-4)


def test_pgd_ignores_ignore_index_and_restores_mode(setup):
    model, x, y = setup
    model.train()
    y_ignored = torch.full_like(y, 255)
    adv = pgd_l2(model, x, y_ignored, eps=0.5, steps=3, random_start=False)
    # every label ignored: zero loss, zero gradient, no movement
    assert torch.equal(adv, x)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients


def test_pgd_on_point_cloud_models():
    torch.manual_seed(0)
    net = PointCloudSegmenter(nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 5)))
    pts = torch.randn(2, 64, 3)
    y = torch.randint(0, 5, (2, 64))
    adv = pgd_l2(net, pts, y, eps=0.2, steps=5, clamp=None,
                 generator=torch.Generator().manual_seed(0))
    assert (norms64(adv - pts) <= 0.2).all() and not torch.equal(adv, pts)


@pytest.mark.parametrize("kw,exc,match", [
    ({"eps": 0.0}, ValueError, "`eps`"),
    ({"eps": -1.0}, ValueError, "`eps`"),
    ({"eps": 0.5, "steps": 0}, ValueError, "`steps`"),
    ({"eps": 0.5, "step_size": 0.0}, ValueError, "`step_size`"),
    ({"eps": 0.5, "clamp": (1.0, 0.0)}, ValueError, "`clamp`"),
    ({"eps": 0.5, "layout": "NHWC"}, ValueError, "`layout`"),
])
def test_pgd_errors(setup, kw, exc, match):
    model, x, y = setup
    with pytest.raises(exc, match=match):
        pgd_l2(model, x, y, **kw)


def test_pgd_input_errors(setup):
    model, x, y = setup
    with pytest.raises(TypeError, match="floating-point"):
        pgd_l2(model, (x * 255).long(), y, eps=0.5)
    with pytest.raises(TypeError, match="`y`"):
        pgd_l2(model, x, y.float(), eps=0.5)
    with pytest.raises(ValueError, match="inside `clamp`"):
        pgd_l2(model, x + 2.0, y, eps=0.5)
    with pytest.raises(ValueError, match="does not match the labels"):
        pgd_l2(model, x, y[:, :5], eps=0.5, steps=1)
