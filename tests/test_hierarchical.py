"""Hierarchical certification: multitest.certify_nested_counts and HierarchicalSegCertify."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import multitest
from samplers import GaussianL2
from smoothing import ABSTAIN, SegCertify
from smoothing.hierarchical import (
    HierarchicalCertificate,
    HierarchicalSegCertify,
    _guess_paths,
    _membership,
    _top_down,
)
from smoothing.hierarchy import Hierarchy, builtin_hierarchy

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ---------------------------------------------------------------------------
# multitest.certify_nested_counts against a brute-force step-down
# ---------------------------------------------------------------------------
def crit(method, j, N, alpha, k):
    if method in ("bonferroni", "generalized_bonferroni"):
        return k * alpha / N
    return k * alpha / (N + k - max(j, k))  # holm (k = 1) and lehmann_romano


def reference_nested(counts, n, tau, alpha, method, k):
    """Sort the finest p-values, step down, then test every step at c_{R+1}."""
    p = multitest.binomial_pvalues(counts, n, tau).reshape(-1, counts.shape[-1])
    N = p.shape[0]
    order = np.argsort(p[:, 0], kind="stable")
    R = 0
    while R < N and p[order[R], 0] <= crit(method, R + 1, N, alpha, k):
        R += 1
    c = crit(method, min(R + 1, N), N, alpha, k)
    reject = p <= c
    reject[:, 0] = False
    reject[order[:R], 0] = True
    return reject.reshape(counts.shape)


@st.composite
def nested_counts(draw):
    n = draw(st.integers(1, 60))
    steps = draw(hnp.arrays(np.int64, st.tuples(st.integers(1, 40), st.integers(1, 3)),
                            elements=st.integers(0, 20)))
    counts = np.minimum(np.cumsum(steps, axis=1), n)
    return counts, n


@settings(max_examples=150, deadline=None)
@given(nested_counts(), st.sampled_from([("holm", 1), ("bonferroni", 1), ("lehmann_romano", 2),
                                         ("generalized_bonferroni", 3)]),
       st.sampled_from([0.5, 0.75, 0.9]), st.sampled_from([0.001, 0.05, 0.3]))
def test_nested_counts_match_the_step_down(data, spec, tau, alpha):
    counts, n = data
    method, k = spec
    if counts.shape[0] < k:
        k = 1
    res = multitest.certify_nested_counts(counts, n, tau, alpha, method=method, k=k)
    np.testing.assert_array_equal(res.reject, reference_nested(counts, n, tau, alpha, method, k))
    flat = multitest.certify_counts(counts[:, 0], n, tau, alpha, method=method, k=k)
    np.testing.assert_array_equal(res.reject[:, 0], flat.reject)  # the flat certificate
    np.testing.assert_array_equal(res.reject, counts >= res.threshold)  # one threshold
    assert (res.reject[:, :-1] <= res.reject[:, 1:]).all()  # nested
    first = np.where(res.reject.any(1), res.reject.argmax(1), -1)
    np.testing.assert_array_equal(res.finest, first)


def test_nested_counts_one_step_is_flat(rng):
    counts = rng.binomial(100, 0.9, size=(30, 40))
    res = multitest.certify_nested_counts(counts[..., None], 100, 0.75, 0.01)
    flat = multitest.certify_counts(counts, 100, 0.75, 0.01)
    np.testing.assert_array_equal(res.reject[..., 0], flat.reject)
    assert res.finest.shape == (30, 40) and res.critical == pytest.approx(
        0.01 / (1200 - flat.num_rejected))
    assert "NestedCountCertificate(method='holm'" in repr(res)
    assert not res.reject.flags.writeable


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"counts": [[5, 4]]}, ValueError, r"nondecreasing .* counts\[0, 0\] = 5 > counts\[0, 1\] = 4"),
    ({"counts": [[5, 11]]}, ValueError, r"\[0, n\] = \[0, 10\]"),
    ({"counts": 5}, ValueError, r"shape \(\.\.\., D\)"),
    ({"counts": np.zeros((3, 0), int)}, ValueError, r"D >= 1"),
    ({"method": "sidak"}, ValueError, "`method` must be one of 'bonferroni'"),
    ({"method": "holm", "k": 2}, ValueError, "`k` must be 1"),
    ({"alpha": 1.5}, ValueError, "alpha"),
    ({"counts": [[0.5, 1]]}, ValueError, "integers"),
    ({"counts": [["a", "b"]]}, TypeError, "integers"),
])
def test_nested_counts_errors(kwargs, error, match):
    args = {"counts": [[1, 2]], "n": 10, "tau": 0.75, "alpha": 0.05, **kwargs}
    with pytest.raises(error, match=match):
        multitest.certify_nested_counts(**args)


def test_nested_counts_empty():
    res = multitest.certify_nested_counts(np.zeros((0, 2), int), 10, 0.75, 0.05)
    assert res.reject.shape == (0, 2) and res.threshold == 11


# ---------------------------------------------------------------------------
# the certifier on small torch models
# ---------------------------------------------------------------------------
K = 5
TREE = {"flat": ["road", "sidewalk"], "vehicle": {"car-like": ["car", "van"], "buses": ["bus"]}}
NAMES = ["road", "sidewalk", "car", "van", "bus"]


def hier():
    return Hierarchy.from_tree(TREE, NAMES, name="t")


class Mixed(nn.Module):
    """A random 1x1 convolution: under the noise, pixels flip between a few classes."""

    def __init__(self, seed=0, points=False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(K, 3, generator=g) * 2, requires_grad=False)
        self.b = nn.Parameter(torch.randn(K, generator=g), requires_grad=False)
        self.points = points
        self.seen: list[torch.Tensor] = []  # argmax of every batch, in order

    def forward(self, x):
        if self.points:  # (B, N, 3) -> (B, N, K)
            out = x @ self.w.T + self.b
            self.seen.append(out.argmax(-1))
        else:  # (B, 3, H, W) -> (B, K, H, W)
            out = torch.einsum("kc,bchw->bkhw", self.w, x) + self.b[:, None, None]
            self.seen.append(out.argmax(1).flatten(1))
        return out


def image(seed=1, shape=(3, 6, 7)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


KW = dict(n0=10, n=60, tau=0.6, alpha=0.05, batch_size=25)


@pytest.mark.parametrize("correction,k", [("holm", 1), ("bonferroni", 1), ("lehmann_romano", 3)])
@pytest.mark.parametrize("points", [False, True])
def test_one_level_hierarchy_is_the_flat_certificate(correction, k, points):
    model = Mixed(points=points)
    x = image() if not points else image(shape=(40, 3))
    sampler = GaussianL2(0.5, point_cloud=points)
    flat = SegCertify(model, sampler, num_classes=K, correction=correction, k=k, **KW).certify(
        x, generator=torch.Generator().manual_seed(3))
    for h in (Hierarchy.flat(K), hier()):  # one level: all equal; more: the fine level equal
        cert = HierarchicalSegCertify(model, sampler, hierarchy=h, correction=correction, k=k,
                                      **KW).certify(x, generator=torch.Generator().manual_seed(3))
        assert torch.equal(cert.labels, flat.labels)
        assert torch.equal(cert.guesses, flat.guesses)
        assert torch.equal(cert.counts[..., 0], flat.counts)
        assert torch.equal(cert.counts0[..., 0], flat.counts0)
        assert cert.radius == flat.radius
        if h.num_levels == 1:
            assert torch.equal(cert.nodes, flat.labels)
        # one threshold for every step: the test's (the flat one is the smallest count
        # that occurs among the certified, which may be larger)
        tested = cert.counts >= cert.threshold
        assert torch.equal(tested[..., 0], cert.labels != ABSTAIN)
        assert cert.threshold <= flat.threshold
    assert (cert.levels == 1).any() or (cert.levels == 2).any()  # coarse certificates too


def test_counts_aggregate_the_fine_predictions():
    h = hier()
    model = Mixed(seed=4)
    x = image(2)
    cert = HierarchicalSegCertify(model, GaussianL2(0.6), hierarchy=h, **KW).certify(
        x, generator=torch.Generator().manual_seed(0))
    preds = torch.cat(model.seen).numpy()  # (n0 + n, H * W): the n0 phase first
    first, second = preds[:10], preds[10:]
    assert second.shape[0] == 60
    member = _membership(h)
    H, W = cert.nodes.shape
    for i in range(H * W):
        guess = np.bincount(first[:, i], minlength=K).argmax()
        path = h.paths[guess]
        assert cert.paths.reshape(-1, h.depth)[i].tolist() == path.tolist()
        expect = [int(member[second[:, i], v].sum()) for v in path]
        expect0 = [int(member[first[:, i], v].sum()) for v in path]
        assert cert.counts.reshape(-1, h.depth)[i].tolist() == expect
        assert cert.counts0.reshape(-1, h.depth)[i].tolist() == expect0
    # every certified node is the finest rejected one along the path
    res = multitest.certify_nested_counts(cert.counts.reshape(-1, h.depth).numpy(), 60, 0.6,
                                          0.05)
    nodes = cert.nodes.reshape(-1).numpy()
    for i in range(H * W):
        d = res.finest[i]
        assert nodes[i] == (ABSTAIN if d < 0 else cert.paths.reshape(-1, h.depth)[i, d])
    assert (cert.levels.reshape(-1).numpy() == np.where(nodes >= 0, h.levels[nodes], -1)).all()


def reference_top_down(table, h):
    """The fine class whose counts along its path from the top (padded with its own)
    are lexicographically largest; ties: the lowest class index."""
    node_counts = table @ _membership(h).astype(np.int64)
    down = _top_down(h)
    return np.array([max(range(h.num_classes), key=lambda c: (tuple(row[down[c]]), -c))
                     for row in node_counts])


def descend(row, h):
    """Plain descent: the most frequent child at every step (None where siblings tie)."""
    v = -1
    while v == -1 or v >= h.num_classes:
        kids = [u for u in range(h.num_nodes) if h.parents[u] == v]
        best = max(row[u] for u in kids)
        if sum(row[u] == best for u in kids) > 1:
            return None
        v = next(u for u in kids if row[u] == best)
    return v


@settings(max_examples=80, deadline=None)
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 20), st.just(K)),
                  elements=st.integers(0, 4)))
def test_top_down_guess_descends_by_counts(table):
    h = hier()
    t = torch.from_numpy(table).to(torch.uint8)
    member = torch.from_numpy(_membership(h))
    paths, counts0 = _guess_paths(t, member, h, "top_down")
    got = paths[:, 0].numpy()
    np.testing.assert_array_equal(got, reference_top_down(table, h))
    node_counts = table @ _membership(h).astype(np.int64)
    for i in range(table.shape[0]):
        plain = descend(node_counts[i], h)
        assert plain is None or plain == got[i]  # without ties: the plain descent
        assert counts0[i].tolist() == [node_counts[i, v] for v in h.paths[got[i]]]
    fine, _ = _guess_paths(t, member, h, "fine")
    np.testing.assert_array_equal(fine[:, 0].numpy(), table.argmax(1))


def test_top_down_prefers_the_heavier_coarse_class():
    h = hier()
    table = torch.tensor([[4, 0, 3, 3, 0]], dtype=torch.uint8)  # road 4 vs vehicle 6
    member = torch.from_numpy(_membership(h))
    assert _guess_paths(table, member, h, "fine")[0][0, 0] == 0
    paths, counts0 = _guess_paths(table, member, h, "top_down")
    assert paths[0].tolist() == [2, 7, 6] and counts0[0].tolist() == [3, 6, 6]


def test_adaptive_rule_and_retest():
    h = hier()
    model = Mixed(seed=4)
    x = image(2)
    sampler = GaussianL2(0.6)
    nested = HierarchicalSegCertify(model, sampler, hierarchy=h, **KW)
    adaptive = HierarchicalSegCertify(model, sampler, hierarchy=h, rule="adaptive", agree=0.8,
                                      **KW)
    cert = nested.certify(x, generator=torch.Generator().manual_seed(0))
    direct = adaptive.certify(x, generator=torch.Generator().manual_seed(0))
    again = adaptive.retest(cert)
    assert torch.equal(again.nodes, direct.nodes) and again.params["rule"] == "adaptive"
    # reference: finest step with >= 8 of the 10 guesses, Holm over the chosen counts
    c0 = cert.counts0.reshape(-1, h.depth).numpy()
    c = cert.counts.reshape(-1, h.depth).numpy()
    step = np.array([next((d for d in range(h.depth) if r[d] >= 8), h.depth - 1) for r in c0])
    chosen = c[np.arange(len(c)), step]
    rej = multitest.holm(multitest.binomial_pvalues(chosen, 60, 0.6), 0.05).reject
    paths = cert.paths.reshape(-1, h.depth).numpy()
    expect = np.where(rej, paths[np.arange(len(c)), step], ABSTAIN)
    expect = np.where(expect == 8, 4, expect)  # the 'buses' node == the fine class 'bus'
    np.testing.assert_array_equal(direct.nodes.reshape(-1).numpy(), expect)
    # retest at another tau: what certify gives at that tau
    at = HierarchicalSegCertify(model, sampler, hierarchy=h, **{**KW, "tau": 0.8})
    assert torch.equal(nested.retest(cert, tau=0.8).nodes,
                       at.certify(x, generator=torch.Generator().manual_seed(0)).nodes)
    assert nested.retest(cert, tau=0.8).radius == at.radius


def test_a_one_child_chain_reports_the_fine_class():
    h = hier()  # 'bus' (fine) -> 'buses' (coarse, one child) -> 'vehicle'
    model = Mixed(seed=4)
    cert = HierarchicalSegCertify(model, GaussianL2(0.6), hierarchy=h, rule="adaptive",
                                  agree=1.0, **KW).certify(
        image(2), generator=torch.Generator().manual_seed(0))
    assert h.names[8] == "buses" and (cert.paths == 8).any()
    assert not (cert.nodes == 8).any()  # the one-child node: never reported, 'bus' is


def test_certificate_repr_and_fractions():
    h = hier()
    cert = HierarchicalSegCertify(Mixed(seed=4), GaussianL2(0.6), hierarchy=h, **KW).certify(
        image(2), generator=torch.Generator().manual_seed(0))
    assert isinstance(cert, HierarchicalCertificate)
    f = cert.level_fractions()
    assert f.shape == (h.num_levels,)
    assert f.sum() == pytest.approx(cert.certified_fraction)
    assert "HierarchicalCertificate(shape=(6, 7), hierarchy='t'" in repr(cert)
    assert cert.params["hierarchy_sha256"] == h.fingerprint and cert.sound


def test_builtin_names_and_errors():
    model = Mixed()
    s = GaussianL2(0.5)
    seg = HierarchicalSegCertify(nn.Conv2d(3, 8, 1), s, hierarchy="streets", **KW)
    assert seg.num_classes == 8 and "hierarchy='streets'" in repr(seg)
    with pytest.raises(ValueError, match="`rule` must be one of 'nested', 'adaptive'"):
        HierarchicalSegCertify(model, s, hierarchy=hier(), rule="x", **KW)
    with pytest.raises(ValueError, match="`guess` must be one of"):
        HierarchicalSegCertify(model, s, hierarchy=hier(), guess="x", **KW)
    with pytest.raises(ValueError, match=r"`agree` must lie in \(0, 1\]"):
        HierarchicalSegCertify(model, s, hierarchy=hier(), agree=0.0, **KW)
    with pytest.raises(ValueError, match="`correction` must be one of"):
        HierarchicalSegCertify(model, s, hierarchy=hier(), correction="sidak", **KW)
    with pytest.raises(ValueError, match="`k` must be 1"):
        HierarchicalSegCertify(model, s, hierarchy=hier(), k=2, **KW)
    with pytest.raises(ValueError, match="`tau`"):
        HierarchicalSegCertify(model, s, hierarchy=hier(), **{**KW, "tau": 0.4})
    with pytest.raises(ValueError, match="has 5 classes"):  # the model has 5, cityscapes 19
        HierarchicalSegCertify(model, s, hierarchy=builtin_hierarchy("cityscapes"),
                               **KW).certify(image())
    seg = HierarchicalSegCertify(model, s, hierarchy=hier(), **KW)
    cert = seg.certify(image(), generator=torch.Generator().manual_seed(0))
    other = HierarchicalSegCertify(model, s, hierarchy=hier(), **{**KW, "n": 61})
    with pytest.raises(ValueError, match="was sampled with"):
        other.retest(cert)
    with pytest.raises(TypeError, match="HierarchicalCertificate"):
        seg.retest("cert")
    with pytest.raises(ValueError, match="`k` is 50 but the input has only 42"):
        HierarchicalSegCertify(model, s, hierarchy=hier(), correction="lehmann_romano", k=50,
                               **KW).certify(image())
