"""LatticeGaussian (issue 15.3): exact lattice noise, its distribution and a sound radius."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from samplers import GaussianL2, LatticeGaussian
from samplers._lattice import _perturb_torch
from smoothing import SegCertify


def discrete_gaussian(scale: float, K: int) -> np.ndarray:
    """Reference pmf over -K..K of P(k) ~ exp(-k^2 / (2 scale^2)) (float64)."""
    k = np.arange(-K, K + 1)
    w = np.exp(-(k.astype(float) ** 2) / (2 * scale**2))
    return w / w.sum()


def np_worst_case(p: np.ndarray, t: int, tau: float) -> float:
    """min over sets A with mu(A) >= tau of mu(A - t), mu = p on -K..K (exact, 1-D).

    Neyman–Pearson: fill A with the points of smallest ratio mu_t / mu first, the
    last one fractionally. mu_t(z) = mu(z - t) (0 off the support).
    """
    q = np.zeros_like(p)
    if t >= 0:
        q[t:] = p[: p.size - t]
    else:
        q[:t] = p[-t:]
    keep = p > 0
    order = np.argsort(q[keep] / p[keep], kind="stable")
    pa, qa = p[keep][order], q[keep][order]
    cum = np.cumsum(pa)
    i = int(np.searchsorted(cum, tau))  # first index where mu(A) reaches tau
    before = cum[i - 1] if i else 0.0
    return float(qa[:i].sum() + qa[i] * (tau - before) / pa[i])


@pytest.mark.parametrize("sigma", [0.02, 0.12, 0.25, 0.5])
def test_sampled_pmf_is_the_discrete_gaussian(sigma):
    s = LatticeGaussian(sigma)
    k, p = s.pmf()
    assert p.sum() == pytest.approx(1.0, abs=1e-15)
    ref = discrete_gaussian(255 * sigma, k[-1])
    assert 0.5 * np.abs(p - ref).sum() <= 1e-13  # float64 reference; exact bound tv_bound
    assert s.tv_bound < 1e-15


def test_draws_match_pmf_chi_square():
    """Seeded chi-square goodness of fit of 10^6 draws (bins with >= 20 expected)."""
    s = LatticeGaussian(0.05)
    x = torch.full((4, 250_000), 128 / 255)
    y = s.perturb(x, generator=torch.Generator().manual_seed(123))
    noise = (torch.round(y.double() * 255) - 128).to(torch.int64).reshape(-1).numpy()
    k, p = s.pmf()
    expected = p * noise.size
    observed = np.bincount(noise - k[0], minlength=k.size)
    keep = expected >= 20
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    stat, pval = stats.chisquare(obs, exp)
    assert pval > 1e-3, (stat, pval)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_exactly_on_lattice(dtype):
    g = torch.Generator().manual_seed(0)
    ints = torch.randint(0, 256, (3, 3, 17, 19), generator=g)
    x = ints.to(dtype) / 255.0
    y = LatticeGaussian(0.3).perturb(x, generator=g)
    assert y.dtype == dtype and y.shape == x.shape
    m = torch.round(y.double() * 255)
    assert torch.equal((m / 255).to(dtype), y)  # the float nearest to an integer / 255
    # identical to the tensor-operation path (other devices) for the same draws
    bits = torch.empty(x.shape, dtype=torch.int64).random_(
        generator=torch.Generator().manual_seed(5))
    y1, bad = _perturb_torch(x, bits, LatticeGaussian(0.3)._tab)
    assert bad == 0
    y2 = LatticeGaussian(0.3).perturb(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(y1, y2)
    # the same seed gives the same output; batch elements get independent noise
    a, b = (LatticeGaussian(0.3).perturb(x, generator=torch.Generator().manual_seed(7))
            for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_chunked_cpu_path_equals_one_draw():
    """The CPU kernel draws in chunks; that must equal one random_ over all of x."""
    x = torch.randint(0, 256, (2, 3, 128, 200), generator=torch.Generator().manual_seed(1)) / 255
    assert x.numel() > 2 * 65536 and x.numel() % 65536
    s = LatticeGaussian(0.2)
    bits = torch.empty(x.shape, dtype=torch.int64).random_(
        generator=torch.Generator().manual_seed(9))
    ref, bad = _perturb_torch(x, bits, s._tab)
    assert bad == 0
    assert torch.equal(s.perturb(x, generator=torch.Generator().manual_seed(9)), ref)


def test_draws_use_63_bits():
    """The alias table assumes int64 random_() is uniform on [0, 2**63): check its top bits."""
    b = torch.empty(200_000, dtype=torch.int64).random_(generator=torch.Generator().manual_seed(1))
    assert int(b.min()) >= 0
    top = (b >> 61).numpy()  # 2 bits: uniform on 0..3
    counts = np.bincount(top, minlength=4)
    assert counts.size == 4 and stats.chisquare(counts).pvalue > 1e-3


def test_bad_input():
    s = LatticeGaussian(0.25)
    with pytest.raises(ValueError, match="8-bit"):
        s.perturb(torch.full((1, 4), 0.3))
    with pytest.raises(ValueError, match="8-bit"):
        s.perturb(torch.full((1, 4), 2.0))
    with pytest.raises(ValueError, match="8-bit"):
        s.perturb(torch.full((1, 4), float("nan")))
    with pytest.raises(ValueError, match="8-bit"):
        s.perturb(torch.full((1, 4), -1 / 255))
    with pytest.raises(TypeError, match="float32 or float64"):
        s.perturb(torch.zeros(1, 4, dtype=torch.float16))
    with pytest.raises(ValueError, match="max_dim"):
        LatticeGaussian(0.25, max_dim=10).perturb(torch.zeros(2, 11))
    with pytest.raises(ValueError, match="`sigma`"):
        LatticeGaussian(0.0)
    with pytest.raises(ValueError, match="`sigma`"):
        LatticeGaussian(100.0)
    with pytest.raises(ValueError, match="`max_dim`"):
        LatticeGaussian(0.25, max_dim=0)
    with pytest.raises(ValueError, match="`tau`"):
        s.radius(1.0)


@pytest.mark.parametrize("sigma", [0.01, 0.02, 0.1, 0.25])
@pytest.mark.parametrize("tau", [0.6, 0.75, 0.9, 0.99, 0.999])
def test_radius_sound_against_exact_1d_worst_case(sigma, tau):
    """Brute force: every lattice shift within the radius keeps mu_t(A) > 1/2."""
    s = LatticeGaussian(sigma, max_dim=1)
    k, p = s.pmf()
    r = s.radius(tau)
    tmax = math.floor(r * 255 + 1e-9)
    for t in range(-tmax, tmax + 1):
        assert np_worst_case(p, t, tau) > 0.5, (t, r)
    # and the radius is not vacuous: at most the continuous Gaussian's
    assert r <= GaussianL2(sigma).radius(tau) + 1e-12


def test_radius_sound_2d_brute_force():
    """Neyman–Pearson over the 2-D lattice: shifts of norm <= radius keep mu_t(A) > 1/2."""
    s = LatticeGaussian(0.02, max_dim=2)
    k, p1 = s.pmf()
    cut = p1 > 1e-14
    k, p1 = k[cut], p1[cut] / p1[cut].sum()
    p = np.outer(p1, p1).ravel()
    K = k[-1]
    grid = np.stack(np.meshgrid(k, k, indexing="ij"), -1).reshape(-1, 2)
    for tau in (0.75, 0.99):
        r = s.radius(tau) * 255
        for t in [(a, b) for a in range(-8, 9) for b in range(-8, 9) if a * a + b * b <= r * r]:
            src = grid - np.array(t)  # mu_t(z) = mu(z - t)
            inside = (np.abs(src) <= K).all(1)
            q = np.zeros_like(p)
            idx = (src[inside, 0] + K) * k.size + (src[inside, 1] + K)
            q[inside] = p[idx]
            order = np.argsort(q / p, kind="stable")
            cum = np.cumsum(p[order])
            i = int(np.searchsorted(cum, tau))
            before = cum[i - 1] if i else 0.0
            worst = q[order][:i].sum() + q[order][i] * (tau - before) / p[order][i]
            assert worst > 0.5, (tau, t)


def test_radius_monte_carlo_half_space():
    """Seeded Monte Carlo: A = {noise_0 <= c} with mu(A) >= tau, shifted by the radius.

    2 * 10^5 draws; the estimate of mu_delta(A) must exceed 1/2 + 3 SE (SE <= 0.0012).
    """
    sigma, tau = 0.1, 0.9
    s = LatticeGaussian(sigma)
    k, p = s.pmf()
    c = k[np.searchsorted(np.cumsum(p), tau)]  # mu(k <= c) >= tau
    t = math.floor(s.radius(tau) * 255)
    x = torch.full((200_000, 1), 128 / 255)
    y = s.perturb(x, generator=torch.Generator().manual_seed(3))
    noise = torch.round(y.double() * 255) - 128 - t  # the input moved by t lattice steps
    est = float((noise <= c).double().mean())
    se = math.sqrt(0.25 / x.shape[0])
    assert est > 0.5 + 3 * se


def test_through_segcertify(torch_one_thread):
    model = torch.nn.Conv2d(3, 2, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[1, 0] = 8.0
        model.bias[1] = -4.0
    x = torch.zeros(3, 8, 8)
    x[0, :, 4:] = 1.0
    sampler = LatticeGaussian(0.25)
    cert = SegCertify(model, sampler, num_classes=2, n0=10, n=100, tau=0.75, alpha=0.001,
                      batch_size=50).certify(x, generator=torch.Generator().manual_seed(0))
    assert cert.sound and cert.radius == sampler.radius(0.75)
    assert cert.certified_fraction == 1.0
    assert cert.params["threat_model"].startswith("l2 ball over 8-bit")
    assert "LatticeGaussian" in sampler.describe()
