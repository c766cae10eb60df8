"""Samplers: shapes, noise statistics, per-element independence, radii, rotations, errors.

Statistical checks use fixed seeds from fixtures and tolerances of about five standard
errors, so a correct sampler passes deterministically and a wrong one (wrong scale,
shared noise, wrong matrix) fails by a wide margin.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

import samplers
from samplers import GaussianL2, LaplaceL1, Rotation3D, RotationZ, Sampler

SETTINGS = settings(max_examples=40, deadline=None)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")

# Every sampler, each with an input of the layout it accepts.
IMAGE_SAMPLERS = [GaussianL2(0.25), LaplaceL1(0.5)]
CLOUD_SAMPLERS = [
    GaussianL2(0.25, point_cloud=True),
    LaplaceL1(0.5, point_cloud=True),
    RotationZ(0.3),
    RotationZ(0.3, axis="x"),
    RotationZ(0.3, axis=(1.0, -2.0, 0.5)),
    Rotation3D(0.3),
]
ALL_SAMPLERS = IMAGE_SAMPLERS + CLOUD_SAMPLERS
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.fixture
def seed() -> int:
    return 20210


@pytest.fixture
def gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def example_input(sampler: Sampler, gen: torch.Generator, *, batch: int = 4,
                  dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.Tensor:
    """An image batch (B, 3, 8, 8) for image samplers, else a cloud (B, 64, 6)."""
    shape = (batch, 3, 8, 8) if sampler in IMAGE_SAMPLERS else (batch, 64, 6)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def sampler_id(s: Sampler) -> str:
    return repr(s)


# ---------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------


def test_public_api():
    assert set(samplers.__all__) == {"Sampler", "GaussianL2", "LaplaceL1", "Quantized",
                                     "RotationZ", "Rotation3D"}
    for name in samplers.__all__:
        assert getattr(samplers, name).__module__.startswith("samplers.")


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_interface_and_describe(sampler):
    assert isinstance(sampler, Sampler)
    assert isinstance(sampler.threat_model, str) and sampler.threat_model
    line = sampler.describe()
    assert repr(sampler) in line and sampler.threat_model in line
    if isinstance(sampler, Rotation3D):
        assert sampler.sound is False
        assert "HEURISTIC" in line and "heuristic" in sampler.threat_model
    else:
        assert sampler.sound is True
        assert "heuristic" not in line.lower()


def test_samplers_are_immutable_values():
    s = GaussianL2(0.25)
    assert s == GaussianL2(0.25) and hash(s) == hash(GaussianL2(0.25))
    assert s != GaussianL2(0.25, point_cloud=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.sigma = 1.0  # type: ignore[misc]


def test_abstract_sampler_cannot_be_instantiated():
    with pytest.raises(TypeError):
        Sampler()  # type: ignore[abstract]


# ---------------------------------------------------------------------------
# Shapes, dtypes, devices, reproducibility
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_shape_dtype_device_preserved_and_input_untouched(sampler, dtype, gen):
    x = example_input(sampler, gen, dtype=dtype)
    before = x.clone()
    out = sampler.perturb(x, generator=gen)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.equal(x, before)  # not modified in place
    assert not torch.equal(out, x)
    assert torch.isfinite(out).all()


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=5),
       seed=st.integers(0, 2**32 - 1))
def test_additive_noise_accepts_any_batch_shape(shape, seed):
    x = torch.zeros(shape, dtype=torch.float64)
    for sampler in IMAGE_SAMPLERS:
        out = sampler.perturb(x, generator=torch.Generator().manual_seed(seed))
        assert out.shape == x.shape and out.dtype == x.dtype


def test_empty_batch(gen):
    for sampler in ALL_SAMPLERS:
        x = example_input(sampler, gen, batch=0)
        assert sampler.perturb(x, generator=gen).shape == x.shape


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_same_seed_same_output_other_seed_other_output(sampler, gen, seed):
    x = example_input(sampler, gen)
    a = sampler.perturb(x, generator=torch.Generator().manual_seed(seed))
    b = sampler.perturb(x, generator=torch.Generator().manual_seed(seed))
    c = sampler.perturb(x, generator=torch.Generator().manual_seed(seed + 1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # a generator advances: two calls with one generator draw different noise
    g = torch.Generator().manual_seed(seed)
    assert not torch.equal(sampler.perturb(x, generator=g), sampler.perturb(x, generator=g))


def test_default_generator_is_used_when_none_given(gen):
    for sampler in ALL_SAMPLERS:
        x = example_input(sampler, gen)
        out = sampler.perturb(x)
        assert out.shape == x.shape and not torch.equal(out, x)


def test_gradients_flow_through_perturb(gen):
    for sampler in ALL_SAMPLERS:
        x = example_input(sampler, gen, dtype=torch.float64).requires_grad_(True)
        sampler.perturb(x, generator=gen).sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape


# ---------------------------------------------------------------------------
# Noise statistics
# ---------------------------------------------------------------------------


def additive_noise(sampler: Sampler, gen: torch.Generator, shape) -> np.ndarray:
    x = torch.full(shape, 3.0, dtype=torch.float64)
    return (sampler.perturb(x, generator=gen) - x).numpy().ravel()


@pytest.mark.parametrize("sigma", [0.12, 1.0, 7.5])
def test_gaussian_noise_statistics(sigma, gen):
    n = 200_000
    eps = additive_noise(GaussianL2(sigma), gen, (50, 4000))
    assert abs(eps.mean()) < 5 * sigma / math.sqrt(n)
    assert abs(eps.std() / sigma - 1) < 5 / math.sqrt(2 * n)  # se of a sample std
    assert stats.kstest(eps, stats.norm(scale=sigma).cdf).pvalue > 1e-4


@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0])
def test_laplace_noise_statistics(scale, gen):
    n = 200_000
    eps = additive_noise(LaplaceL1(scale), gen, (50, 4000))
    assert abs(eps.mean()) < 5 * math.sqrt(2) * scale / math.sqrt(n)
    # |eps| ~ Exponential(scale): mean absolute deviation = scale, its sd = scale / sqrt(n)
    assert abs(np.abs(eps).mean() - scale) < 5 * scale / math.sqrt(n)
    # sd = sqrt(2) * scale; the sample sd of a Laplace has se sigma * sqrt(5 / (4 n))
    assert abs(eps.std() / (math.sqrt(2) * scale) - 1) < 5 * math.sqrt(5 / (4 * n))
    assert LaplaceL1(scale).std == pytest.approx(math.sqrt(2) * scale)
    assert stats.kstest(eps, stats.laplace(scale=scale).cdf).pvalue > 1e-4


def test_laplace_is_not_gaussian_with_the_same_sd(gen):
    """The KS check above has power: Laplace noise is far from a Gaussian of equal sd."""
    eps = additive_noise(LaplaceL1(1.0), gen, (50, 4000))
    assert stats.kstest(eps, stats.norm(scale=math.sqrt(2)).cdf).pvalue < 1e-10


# Half precision: the noise is drawn and added in float32 and only the sum is cast.
# Drawn in bfloat16 (the old behaviour), 200k Gaussian draws took a few hundred
# distinct values and Laplace draws had a point mass at 0.
HALF_DTYPES = [torch.float16, torch.bfloat16]
ADDITIVE = [GaussianL2(0.5), LaplaceL1(0.5), GaussianL2(0.5, point_cloud=True),
            LaplaceL1(0.5, point_cloud=True)]


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("sampler", ADDITIVE, ids=sampler_id)
def test_half_precision_output_is_the_float32_output_cast(sampler, dtype, seed):
    x = torch.randn((8, 64, 6) if sampler.point_cloud else (8, 3, 8, 8),
                    generator=torch.Generator().manual_seed(seed)).to(dtype)
    low = sampler.perturb(x, generator=torch.Generator().manual_seed(seed))
    high = sampler.perturb(x.float(), generator=torch.Generator().manual_seed(seed))
    assert low.dtype == dtype and high.dtype == torch.float32
    assert torch.equal(low, high.to(dtype))


@pytest.mark.parametrize("dtype", [*HALF_DTYPES, torch.float32], ids=str)
def test_noise_distribution_does_not_depend_on_the_input_dtype(dtype, seed, monkeypatch):
    """The noise added before the cast is continuous and has the right law in every dtype."""
    import samplers._base as base

    added = []
    real_add = base._add_noise

    def spy(x, noise, *, point_cloud):
        added.append(noise.detach().clone())
        return real_add(x, noise, point_cloud=point_cloud)

    monkeypatch.setattr("samplers._gaussian._add_noise", spy)
    monkeypatch.setattr("samplers._laplace._add_noise", spy)
    x = torch.zeros(50, 4000, dtype=dtype)
    for sampler, law in [(GaussianL2(1.0), stats.norm()), (LaplaceL1(1.0), stats.laplace())]:
        added.clear()
        sampler.perturb(x, generator=torch.Generator().manual_seed(seed))
        eps = added[0]
        assert eps.dtype == torch.float32
        eps = eps.numpy().ravel()
        assert np.unique(eps).size > 0.99 * eps.size  # no quantisation, no atom at 0
        assert stats.kstest(eps, law.cdf).pvalue > 1e-4


def test_float64_noise_is_drawn_in_float64(seed):
    x = torch.zeros(4, 1000, dtype=torch.float64)
    eps = GaussianL2(1.0).perturb(x, generator=torch.Generator().manual_seed(seed))
    # float64 draws are not float32 values: rounding to float32 changes almost all
    assert (eps != eps.float().double()).float().mean() > 0.99


@pytest.mark.parametrize("sigma", [0.05, 0.5])
@pytest.mark.parametrize("axis", ["x", "y", "z", (1.0, 2.0, -2.0)])
def test_rotation_z_angle_distribution(sigma, axis, gen):
    """Recover each cloud's angle exactly and compare with N(0, sigma^2)."""
    sampler = RotationZ(sigma, axis=axis)
    u = torch.tensor(sampler._unit_axis, dtype=torch.float64)
    # an orthonormal frame (e1, e2, u): the angle is atan2 of R e1 in that frame
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    if abs(float(u @ helper)) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    e1 = helper - (helper @ u) * u
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(u, e1)
    b = 20_000
    cloud = e1.expand(b, 1, 3).clone()
    out = sampler.perturb(cloud, generator=gen)[:, 0]
    angle = torch.atan2(out @ e2, out @ e1).numpy()
    assert abs(angle.mean()) < 5 * sigma / math.sqrt(b)
    assert abs(angle.std() / sigma - 1) < 5 / math.sqrt(2 * b)
    assert stats.kstest(angle, stats.norm(scale=sigma).cdf).pvalue > 1e-4
    assert torch.allclose(out @ u, torch.zeros(b, dtype=torch.float64), atol=1e-12)


def test_rotation_3d_angle_distribution(gen):
    """For small sigma, R = I + [theta]_x + O(sigma^2): read the three angles off R."""
    sigma, b = 0.01, 20_000
    basis = torch.eye(3, dtype=torch.float64).expand(b, 3, 3).clone()  # points e1, e2, e3
    rot = Rotation3D(sigma).perturb(basis, generator=gen).transpose(-1, -2)  # columns R e_j
    theta = torch.stack((rot[:, 2, 1], rot[:, 0, 2], rot[:, 1, 0]), dim=-1).numpy()
    # first-order error is O(sigma^2) = 1e-4 relative to sigma: well inside 5 se
    assert np.all(np.abs(theta.mean(axis=0)) < 5 * sigma / math.sqrt(b))
    assert np.all(np.abs(theta.std(axis=0) / sigma - 1) < 5 / math.sqrt(2 * b) + 2 * sigma)
    corr = np.corrcoef(theta.T)
    assert np.all(np.abs(corr[np.triu_indices(3, 1)]) < 5 / math.sqrt(b))


# ---------------------------------------------------------------------------
# Per-element independence (the reference code reused one draw for the whole batch)
# ---------------------------------------------------------------------------


def assert_fresh_noise_per_element(sampler: Sampler, x_one: torch.Tensor,
                                   gen: torch.Generator, batch: int = 16) -> None:
    """Perturb ``batch`` identical copies; rows must differ and be nearly uncorrelated."""
    x = x_one.expand(batch, *x_one.shape).clone()
    delta = (sampler.perturb(x, generator=gen) - x).reshape(batch, -1).double()
    for i in range(1, batch):
        assert not torch.equal(delta[0], delta[i]), f"rows 0 and {i} got the same noise"
    corr = torch.corrcoef(delta)
    off = corr[~torch.eye(batch, dtype=torch.bool)]
    # null sd of a correlation is 1 / sqrt(D) <= 1/64 here; 0.1 is > 6 sd
    assert off.abs().max() < 0.1, f"noise correlated across the batch: {off.abs().max():.3f}"


@pytest.mark.parametrize("sampler", IMAGE_SAMPLERS, ids=sampler_id)
def test_each_batch_element_gets_independent_noise(sampler, gen):
    assert_fresh_noise_per_element(sampler, torch.zeros(4, 32, 32, dtype=torch.float64), gen)


@pytest.mark.parametrize("sampler", CLOUD_SAMPLERS[:2], ids=sampler_id)
def test_each_point_cloud_gets_independent_noise(sampler, gen):
    assert_fresh_noise_per_element(sampler, torch.zeros(2048, 6, dtype=torch.float64), gen)


@pytest.mark.parametrize("sampler", CLOUD_SAMPLERS[2:], ids=sampler_id)
def test_each_point_cloud_gets_its_own_rotation(sampler, gen):
    b = 4000
    cloud = torch.eye(3, dtype=torch.float64).expand(b, 3, 3).clone()
    rot = sampler.perturb(cloud, generator=gen).reshape(b, 9)  # row b: R_b^T flattened
    assert torch.unique(rot, dim=0).shape[0] == b
    # consecutive clouds' rotations are independent: correlation of entries ~ 0
    for j in range(9):
        entry = rot[:, j]
        if entry.std() > 1e-6:
            r = torch.corrcoef(torch.stack((entry[:-1], entry[1:])))[0, 1]
            assert abs(r) < 5 / math.sqrt(b)


class _SharedNoiseGaussian(GaussianL2):
    """The reference-code bug: one noise draw broadcast over the whole batch."""

    def perturb(self, x, *, generator=None):
        eps = torch.randn(x.shape[1:], generator=generator, dtype=x.dtype, device=x.device)
        return x + self.sigma * eps


class _CorrelatedNoiseGaussian(GaussianL2):
    """Subtler: every element gets a shared component plus its own."""

    def perturb(self, x, *, generator=None):
        shared = torch.randn(x.shape[1:], generator=generator, dtype=x.dtype)
        own = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return x + self.sigma * (0.6 * shared + 0.8 * own)


@pytest.mark.parametrize("broken", [_SharedNoiseGaussian(1.0), _CorrelatedNoiseGaussian(1.0)],
                         ids=["shared", "correlated"])
def test_independence_check_catches_shared_noise(broken, gen):
    with pytest.raises(AssertionError):
        assert_fresh_noise_per_element(broken, torch.zeros(4, 32, 32, dtype=torch.float64), gen)


# ---------------------------------------------------------------------------
# Radii
# ---------------------------------------------------------------------------

taus = st.floats(0.5, 1.0, exclude_max=True)
scales = st.floats(1e-4, 1e3)


@SETTINGS
@given(tau=taus, sigma=scales)
def test_gaussian_type_radius_matches_scipy(tau, sigma):
    expected = sigma * stats.norm.ppf(tau)
    for sampler in (GaussianL2(sigma), RotationZ(sigma), Rotation3D(sigma),
                    GaussianL2(sigma, point_cloud=True)):
        assert sampler.radius(tau) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@SETTINGS
@given(tau=taus, scale=scales)
def test_laplace_radius_matches_teng_and_yang(tau, scale):
    r = LaplaceL1(scale).radius(tau)
    # Yang et al. (2020) at p_B = 1 - p_A: scale * ln(1 / (2 (1 - p_A)))
    assert r == pytest.approx(-scale * np.log(2 * (1 - tau)), rel=1e-9, abs=1e-12)
    # Teng et al. (2020): max(scale/2 ln(pA/pB), -scale ln(1 - pA + pB)), pB = 1 - pA
    p_a, p_b = tau, 1 - tau
    teng = max(scale / 2 * np.log(p_a / p_b), -scale * np.log(1 - p_a + p_b))
    assert r == pytest.approx(teng, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("sampler", "tau", "expected"), [
    (GaussianL2(0.25), 0.75, 0.25 * 0.6744897501960817),
    (GaussianL2(1.0), 0.99, 2.3263478740408408),
    (LaplaceL1(1.0), 0.75, math.log(2)),
    (LaplaceL1(2.0), 0.95, 2 * math.log(10)),
    (RotationZ(0.25), 0.75, 0.16862243754902043),  # App. B.5 reports R = 0.17
    (Rotation3D(0.125), 0.75, 0.08431121877451021),  # App. B.5 reports R = 0.085
])
def test_radius_known_values(sampler, tau, expected):
    assert sampler.radius(tau) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_radius_zero_at_one_half_and_increasing(sampler):
    assert sampler.radius(0.5) == 0.0
    assert math.copysign(1.0, sampler.radius(0.5)) == 1.0  # no -0.0 in reports
    grid = [0.5, 0.6, 0.75, 0.9, 0.99, 0.999999]
    radii = [sampler.radius(t) for t in grid]
    assert all(a < b for a, b in zip(radii, radii[1:], strict=False))
    assert sampler.radius(np.float32(0.75)) == pytest.approx(sampler.radius(0.75))


def test_rotation_3d_sigma_for_full_radius():
    """App. B.5: sigma = sqrt(3) pi / Phi^-1(tau) gives R = sqrt(3) pi."""
    tau = 0.75
    sigma = math.sqrt(3) * math.pi / stats.norm.ppf(tau)
    assert Rotation3D(sigma).radius(tau) == pytest.approx(math.sqrt(3) * math.pi)


RADIUS_CLASSES = [GaussianL2, LaplaceL1, RotationZ, Rotation3D]


def _taus(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    edges = [0.5, np.nextafter(0.5, 1.0), 0.6, 0.75, 0.9, 0.95, 0.99, 0.999, 0.999999,
             1 - 2**-52]
    return np.concatenate([edges, rng.uniform(0.5, 1.0, n), 1 - rng.uniform(0, 1e-3, n)])


@pytest.mark.parametrize("cls", RADIUS_CLASSES, ids=lambda c: c.__name__)
def test_radii_at_p_equal_tau_is_radius_exactly(cls):
    """Issue 21.2: ``radii`` and ``radius`` use one inverse, so a component whose
    lower bound is exactly ``tau`` gets exactly ``radius(tau)`` (the map was 1 ulp
    below it: ``torch.special.ndtri`` against ``NormalDist.inv_cdf``, ``torch.log``
    against ``math.log``)."""
    taus = _taus(150)
    for sigma in (1e-4, 0.12, 0.25, 0.5, 1.0, math.pi / 7, 3.7, 1e3):
        s = cls(sigma)
        ref = np.array([s.radius(t) for t in taus])
        assert np.array_equal(s.radii(taus), ref)
        tensor = s.radii(torch.from_numpy(taus[::-1].copy()))  # other positions
        assert torch.equal(tensor, torch.from_numpy(ref[::-1].copy()))


@pytest.mark.parametrize("cls", RADIUS_CLASSES, ids=lambda c: c.__name__)
def test_radii_do_not_depend_on_the_array_around_an_element(cls):
    # vectorised kernels may treat a tail differently from the body: not these
    s = cls(0.37)
    taus = _taus(100)
    ref = np.array([s.radius(t) for t in taus])
    for start in (0, 1, 3, 5):
        for length in range(1, 40):
            got = s.radii(taus[start:start + length])
            assert np.array_equal(got, ref[start:start + length])
    big = np.tile(taus, 20)
    assert np.array_equal(s.radii(big), np.tile(ref, 20))


@needs_cuda
@pytest.mark.parametrize("cls", RADIUS_CLASSES, ids=lambda c: c.__name__)
def test_radii_on_cuda_equal_radius(cls):
    s = cls(0.25)
    taus = _taus(100)
    got = s.radii(torch.from_numpy(taus).cuda())
    assert got.device.type == "cuda"
    assert np.array_equal(got.cpu().numpy(), np.array([s.radius(t) for t in taus]))


# ---------------------------------------------------------------------------
# Point clouds: which coordinates get noise
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [GaussianL2, LaplaceL1])
def test_point_cloud_option_noises_positions_only(cls, gen):
    x = torch.randn(3, 500, 6, generator=gen, dtype=torch.float64)
    out = cls(0.5, point_cloud=True).perturb(x, generator=gen)
    assert torch.equal(out[..., 3:], x[..., 3:])  # normals untouched
    assert (out[..., :3] != x[..., :3]).all()  # every position moved
    out3 = cls(0.5, point_cloud=True).perturb(x[..., :3], generator=gen)
    assert out3.shape == (3, 500, 3) and (out3 != x[..., :3]).all()
    # without the option every coordinate, normals included, gets noise
    assert (cls(0.5).perturb(x, generator=gen) != x).all()


@pytest.mark.parametrize("sampler", CLOUD_SAMPLERS, ids=sampler_id)
@pytest.mark.parametrize("shape", [(2, 10, 4), (2, 10, 9), (10, 3), (2, 10, 3, 1), (2, 3, 8, 8)])
def test_point_cloud_samplers_reject_other_layouts(sampler, shape):
    with pytest.raises(ValueError, match=r"`x` must be a point-cloud batch .* got shape"):
        sampler.perturb(torch.zeros(shape))


# ---------------------------------------------------------------------------
# Rotations
# ---------------------------------------------------------------------------

angles_st = st.floats(-2 * math.pi, 2 * math.pi)
clouds_st = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 3), st.integers(1, 16), st.sampled_from([3, 6])),
    elements=st.floats(-10, 10),
)
rotation_samplers = st.sampled_from(CLOUD_SAMPLERS[2:])


def reference_euler(a: float, b: float, g: float) -> np.ndarray:
    """Rz(g) Ry(b) Rx(a), written out by hand."""
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cg, -sg, 0], [sg, cg, 0], [0, 0, 1]])
    return rz @ ry @ rx


def assert_rotation_matrix(rot: torch.Tensor) -> None:
    eye = torch.eye(3, dtype=rot.dtype).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(rot.shape[:-2],
                               dtype=rot.dtype), atol=1e-12, rtol=0)


@SETTINGS
@given(sampler=rotation_samplers, cloud=clouds_st, seed=st.integers(0, 2**32 - 1))
def test_rotations_preserve_norms_of_positions_and_normals(sampler, cloud, seed):
    x = torch.from_numpy(cloud)
    out = sampler.perturb(x, generator=torch.Generator().manual_seed(seed))
    for part in (slice(0, 3), slice(3, 6)):
        torch.testing.assert_close(out[..., part].norm(dim=-1), x[..., part].norm(dim=-1),
                                   atol=1e-10, rtol=1e-12)


@pytest.mark.parametrize("sampler", CLOUD_SAMPLERS[2:], ids=sampler_id)
def test_rotations_rotate_normals_with_the_same_matrix(sampler, gen):
    b, n = 5, 50
    pos = torch.randn(b, n, 3, generator=gen, dtype=torch.float64)
    nrm = torch.nn.functional.normalize(torch.randn(b, n, 3, generator=gen,
                                                    dtype=torch.float64), dim=-1)
    out = sampler.perturb(torch.cat((pos, nrm), dim=-1), generator=gen)
    # recover each cloud's matrix from its positions (least squares: pos @ R^T = out_pos)
    rot_t = torch.linalg.lstsq(pos, out[..., :3]).solution  # (B, 3, 3) = R^T
    assert_rotation_matrix(rot_t.transpose(-1, -2))
    torch.testing.assert_close(out[..., 3:], nrm @ rot_t, atol=1e-10, rtol=0)
    # and the same draw applied to positions == normals rotated when normals == positions
    twin = torch.cat((pos, pos), dim=-1)
    out_twin = sampler.perturb(twin, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out_twin[..., :3], out_twin[..., 3:], atol=0, rtol=0)


@SETTINGS
@given(a=angles_st, b=angles_st, axis=st.sampled_from(["x", "y", "z", (0.3, -1.0, 2.0)]))
def test_rotation_z_composes_additively(a, b, axis):
    s = RotationZ(1.0, axis=axis)
    ra, rb, rab = s.matrix(a), s.matrix(b), s.matrix(a + b)
    torch.testing.assert_close(ra @ rb, rab, atol=1e-12, rtol=0)
    torch.testing.assert_close(rb @ ra, rab, atol=1e-12, rtol=0)
    assert_rotation_matrix(torch.stack((ra, rb)))
    # the same on data: rotating twice == rotating once by the sum
    x = torch.linspace(-1, 1, 2 * 7 * 6, dtype=torch.float64).reshape(2, 7, 6)
    torch.testing.assert_close(s.rotate(s.rotate(x, a), b), s.rotate(x, a + b),
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("theta", [0.0, 0.3, -1.2, math.pi])
def test_rotation_z_matrix_is_the_textbook_one(theta):
    c, s = math.cos(theta), math.sin(theta)
    expected = {
        "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]],
        "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
        "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
    }
    for axis, mat in expected.items():
        ref = torch.tensor(mat, dtype=torch.float64)
        torch.testing.assert_close(RotationZ(1.0, axis=axis).matrix(theta), ref,
                                   atol=1e-15, rtol=0)
        unit = {"x": (2.0, 0, 0), "y": (0, 0.5, 0), "z": (0, 0, 3.0)}[axis]
        torch.testing.assert_close(RotationZ(1.0, axis=unit).matrix(theta), ref,
                                   atol=1e-15, rtol=0)


def test_rotation_z_rotate_shapes_of_angle(gen):
    s = RotationZ(1.0)
    x = torch.randn(3, 5, 6, generator=gen, dtype=torch.float64)
    per_cloud = s.rotate(x, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    for i, t in enumerate([0.1, 0.2, 0.3]):
        torch.testing.assert_close(per_cloud[i:i + 1], s.rotate(x[i:i + 1], t))
    with pytest.raises(ValueError, match="`angle` must have shape"):
        s.rotate(x, torch.zeros(2))


@SETTINGS
@given(a=angles_st, b=angles_st, g=angles_st)
def test_rotation_3d_matrices_are_orthonormal_with_det_one(a, b, g):
    rot = Rotation3D(1.0).matrix(torch.tensor([a, b, g], dtype=torch.float64))
    assert_rotation_matrix(rot)
    np.testing.assert_allclose(rot.numpy(), reference_euler(a, b, g), atol=1e-12)


@SETTINGS
@given(eps=st.tuples(angles_st, angles_st, angles_st), d=angles_st)
def test_rotation_3d_is_additive_about_the_x_axis_only(eps, d):
    """The docstring's claim: psi_eps o Rx(d) = psi_{eps + (d, 0, 0)} -- the sound case."""
    s = Rotation3D(1.0)
    e = torch.tensor(eps, dtype=torch.float64)
    rx = RotationZ(1.0, axis="x").matrix(d)
    torch.testing.assert_close(s.matrix(e) @ rx, s.matrix(e + torch.tensor([d, 0.0, 0.0],
                               dtype=torch.float64)), atol=1e-12, rtol=0)


@pytest.mark.parametrize(("axis", "index"), [("y", 1), ("z", 2)])
def test_rotation_3d_is_not_additive_about_y_or_z(axis, index):
    """Why Rotation3D is heuristic: noise and an attack about y or z do not compose."""
    s = Rotation3D(1.0)
    e = torch.tensor([0.4, 0.0, 0.0], dtype=torch.float64)
    attack = RotationZ(1.0, axis=axis).matrix(0.3)
    d = torch.zeros(3, dtype=torch.float64)
    d[index] = 0.3
    assert (s.matrix(e) @ attack - s.matrix(e + d)).abs().max() > 0.05


def test_rotation_3d_rotate_broadcasts_one_set_of_angles(gen):
    s = Rotation3D(1.0)
    x = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    one = s.rotate(x, [0.1, 0.2, 0.3])
    per = s.rotate(x, torch.tensor([[0.1, 0.2, 0.3]] * 2, dtype=torch.float64))
    torch.testing.assert_close(one, per)
    torch.testing.assert_close(one, x @ torch.from_numpy(reference_euler(0.1, 0.2, 0.3)).T)
    with pytest.raises(ValueError, match="`angles` must have shape"):
        s.rotate(x, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="`angles` must have shape"):
        s.matrix(torch.zeros(2))


def test_half_precision_rotation_is_accurate(gen):
    x = torch.randn(4, 100, 6, generator=gen)
    for sampler in CLOUD_SAMPLERS[2:]:
        out16 = sampler.perturb(x.half(), generator=torch.Generator().manual_seed(1))
        out32 = sampler.perturb(x, generator=torch.Generator().manual_seed(1))
        assert out16.dtype == torch.float16
        torch.testing.assert_close(out16.float(), out32, atol=1e-2, rtol=1e-2)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

SAMPLER_CLASSES = [(GaussianL2, "sigma"), (LaplaceL1, "scale"), (RotationZ, "sigma"),
                   (Rotation3D, "sigma")]


@pytest.mark.parametrize(("cls", "name"), SAMPLER_CLASSES)
@pytest.mark.parametrize("value", [-1, 0, 0.0, -0.5, math.nan, math.inf, -math.inf])
def test_bad_scale_parameter_raises_value_error(cls, name, value):
    with pytest.raises(ValueError, match=rf"^`{name}` must be finite and > 0; got {value!r}\.$"):
        cls(value)


@pytest.mark.parametrize(("cls", "name"), SAMPLER_CLASSES)
@pytest.mark.parametrize("value", ["0.25", None, True, [0.25], 1j])
def test_non_real_scale_parameter_raises_type_error(cls, name, value):
    with pytest.raises(TypeError, match=rf"`{name}` must be a real number"):
        cls(value)


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
@pytest.mark.parametrize("tau", [0.4999, 1.0, 1.5, -0.2, 0.0, math.nan, math.inf])
def test_tau_outside_half_open_interval_raises(sampler, tau):
    with pytest.raises(ValueError, match=r"^`tau` must lie in \[1/2, 1\); got "):
        sampler.radius(tau)


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_non_real_tau_raises_type_error(sampler):
    with pytest.raises(TypeError, match="`tau` must be a real number"):
        sampler.radius("0.75")


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
@pytest.mark.parametrize("x", [
    np.zeros((2, 8, 3)),
    [[[0.0, 0.0, 0.0]]],
    torch.zeros((2, 8, 3), dtype=torch.int64),
    torch.zeros((2, 8, 3), dtype=torch.bool),
    torch.zeros((2, 8, 3), dtype=torch.complex64),
], ids=["numpy", "list", "int64", "bool", "complex64"])
def test_non_floating_input_raises_type_error(sampler, x):
    with pytest.raises(TypeError, match="`x` must be a"):
        sampler.perturb(x)


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_zero_dim_input_raises_value_error(sampler):
    with pytest.raises(ValueError, match="`x` must"):
        sampler.perturb(torch.tensor(1.0))


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_bad_generator_raises_type_error(sampler, gen):
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        sampler.perturb(example_input(sampler, gen), generator=np.random.default_rng(0))


@pytest.mark.parametrize("axis", ["w", "", (0.0, 0.0, 0.0), (1.0, 0.0), (1.0, 0.0, 0.0, 0.0),
                                  (1.0, math.nan, 0.0), (math.inf, 0.0, 0.0)])
def test_bad_axis_raises_value_error(axis):
    with pytest.raises(ValueError, match="`axis` must be"):
        RotationZ(0.1, axis=axis)


@pytest.mark.parametrize("axis", [3, None, (True, False, False), (True, 1.0, 2.0, 3.0),
                                  ("1", "0", "0")])
def test_non_numeric_axis_raises_type_error(axis):
    with pytest.raises(TypeError, match="`axis` must be"):
        RotationZ(0.1, axis=axis)


def test_axis_names_are_case_insensitive_and_vectors_normalised():
    assert RotationZ(0.1, axis="Z") == RotationZ(0.1)
    assert RotationZ(0.1, axis=(0.0, 3.0, 4.0)).axis == (0.0, 0.6, 0.8)
    assert "(0, 0.6, 0.8)" in RotationZ(0.1, axis=(0.0, 3.0, 4.0)).threat_model
    assert RotationZ(0.1, axis=torch.tensor([0.0, 0.0, 2.0])).axis == (0.0, 0.0, 1.0)
    assert RotationZ(0.1, axis=np.array([1, 0, 0])).axis == (1.0, 0.0, 0.0)


# ---------------------------------------------------------------------------
# Devices (run where CUDA exists)
# ---------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_cuda_input_stays_on_device_and_is_reproducible(sampler, gen, seed):
    x = example_input(sampler, gen, device="cuda")
    a = sampler.perturb(x, generator=torch.Generator(device="cuda").manual_seed(seed))
    b = sampler.perturb(x, generator=torch.Generator(device="cuda").manual_seed(seed))
    assert a.device == x.device and a.dtype == x.dtype and a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert sampler.perturb(x).device == x.device


@needs_cuda
@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=sampler_id)
def test_cpu_generator_with_cuda_input_raises(sampler, gen):
    x = example_input(sampler, gen, device="cuda")
    with pytest.raises(ValueError, match="`generator` lives on device cpu"):
        sampler.perturb(x, generator=torch.Generator().manual_seed(0))


@needs_cuda
def test_cuda_noise_statistics_and_independence():
    g = torch.Generator(device="cuda").manual_seed(7)
    for sampler, sd in ((GaussianL2(0.5), 0.5), (LaplaceL1(0.5), math.sqrt(2) * 0.5)):
        x = torch.zeros(16, 4, 32, 32, device="cuda", dtype=torch.float64)
        delta = (sampler.perturb(x, generator=g) - x).reshape(16, -1)
        n = delta.numel()
        assert abs(delta.std().item() / sd - 1) < 5 * math.sqrt(5 / (4 * n))
        corr = torch.corrcoef(delta)
        assert corr[~torch.eye(16, dtype=torch.bool, device="cuda")].abs().max() < 0.1
