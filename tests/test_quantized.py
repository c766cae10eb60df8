"""Quantized smoothing (issue 21.1): exact law of the rounded noise, sound radius, cost-free."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import special, stats

from samplers import GaussianL2, LaplaceL1, Quantized, RotationZ
from samplers._alias_kernels import xoshiro_fill, xoshiro_seed
from samplers._qtable import EXP_ULPS, _gaussian_pmf, _laplace_pmf
from samplers._quantized import _draw_torch
from smoothing import SegCertify

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SIGMAS = (0.12, 0.25, 0.5)
TAUS = (0.75, 0.9, 0.99, 0.999)


def bases(sigma: float):
    """The Gaussian at ``sigma`` and the Laplace of the same variance."""
    return GaussianL2(sigma), LaplaceL1(sigma / math.sqrt(2))


# ---------------------------------------------------------------------------
# the law of K = round(eps / h): reference pmfs, independent of the implementation
# ---------------------------------------------------------------------------


def grid_pmf(base, h: float, js: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """P(round((shift + eps) / h) = j) in float64 (scipy), accurate in both tails."""
    lo, hi = (js - 0.5) * h - shift, (js + 0.5) * h - shift
    if isinstance(base, GaussianL2):
        a, b = lo / base.sigma, hi / base.sigma
        return np.where(b <= 0, special.ndtr(b) - special.ndtr(a),
                        special.ndtr(-a) - special.ndtr(-b))
    lam = base.scale

    def cdf(t):
        return np.where(t < 0, 0.5 * np.exp(np.minimum(t, 0) / lam),
                        1 - 0.5 * np.exp(-np.maximum(t, 0) / lam))

    def sf(t):
        return np.where(t > 0, 0.5 * np.exp(-np.maximum(t, 0) / lam),
                        1 - 0.5 * np.exp(np.minimum(t, 0) / lam))

    return np.where(hi <= 0, cdf(hi) - cdf(lo), sf(lo) - sf(hi))


def mp_pmf(base, levels: int, k: int) -> mpmath.mpf:
    """The same probability in 40-digit arithmetic (mpmath), for the error bounds."""
    h = mpmath.mpf(1) / levels
    lo, hi = (k - mpmath.mpf(0.5)) * h, (k + mpmath.mpf(0.5)) * h
    if isinstance(base, GaussianL2):
        s = mpmath.mpf(base.sigma)
        return mpmath.ncdf(hi / s) - mpmath.ncdf(lo / s)
    lam = mpmath.mpf(base.scale)

    def cdf(t):
        return mpmath.exp(t / lam) / 2 if t < 0 else 1 - mpmath.exp(-t / lam) / 2

    return cdf(hi) - cdf(lo)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_float64_pmf_within_its_rigorous_error_bound(kind, bits):
    """40-digit reference at 60 support points per table: |p_hat - p| <= err."""
    levels = (1 << bits) - 1
    with mpmath.workdps(40):
        for sigma in SIGMAS:
            base = bases(sigma)[kind == "laplace"]
            pmf = _gaussian_pmf if kind == "gaussian" else _laplace_pmf
            scale = base.sigma if kind == "gaussian" else base.scale
            p_hat, err, K, tail = pmf(scale, levels)
            ks = np.unique(np.r_[0:8, np.linspace(0, K, 52).astype(int)])
            for k in ks:
                ref = mp_pmf(base, levels, int(k))
                assert abs(mpmath.mpf(float(p_hat[k])) - ref) <= err[k], (sigma, k)
            # the truncation's tail bound holds
            h = mpmath.mpf(1) / levels
            x = (K + mpmath.mpf(0.5)) * h
            out = (2 * mpmath.ncdf(-x / mpmath.mpf(base.sigma)) if kind == "gaussian"
                   else mpmath.exp(-x / mpmath.mpf(base.scale)))
            assert out <= tail


def test_numpy_exp_is_as_accurate_as_the_bound_assumes():
    """The pmf's error bound assumes numpy.exp within EXP_ULPS u; measured below 1 u."""
    rng = np.random.default_rng(0)
    x = np.r_[rng.uniform(0, 45, 3000), rng.uniform(0, 1e-3, 300),
              (np.arange(600.0) ** 2) * (1 / (255 * 0.12)) ** 2 / 2]
    got = np.exp(-x)
    with mpmath.workdps(40):
        worst = max(abs(mpmath.mpf(float(g)) - mpmath.exp(-mpmath.mpf(float(v))))
                    / mpmath.exp(-mpmath.mpf(float(v))) for v, g in zip(x, got, strict=True))
    assert worst <= EXP_ULPS * 2.0**-53 / 4


@pytest.mark.parametrize("sigma", [0.12, 0.5])
@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_sampled_law_within_tv_bound_of_rounded_noise(kind, sigma):
    """The exact sampled law (alias table, 8 bits) against a 40-digit reference over
    the whole support (and the mass outside it): TV <= tv_bound, which is tiny."""
    base = bases(sigma)[kind == "laplace"]
    s = Quantized(base, bits=8)
    k, _ = s.pmf()
    K = int(k[-1])
    with mpmath.workdps(40):
        h = mpmath.mpf(1) / 255
        if kind == "gaussian":
            def sf(t):
                return mpmath.ncdf(-t / mpmath.mpf(base.sigma))
        else:
            def sf(t):
                return mpmath.exp(-t / mpmath.mpf(base.scale)) / 2
        up = [sf((j + mpmath.mpf(0.5)) * h) for j in range(K + 1)]  # P(eps > edge j)
        ref = [1 - 2 * up[0]] + [up[j - 1] - up[j] for j in range(1, K + 1)]
        got = [mpmath.mpf(int(g)) / 2**63 for g in s._tab.got[K:]]  # symmetric: k >= 0
        dev = abs(got[0] - ref[0]) + 2 * sum(abs(g - r) for g, r in zip(got[1:], ref[1:],
                                                                         strict=True))
        tv = (dev + 2 * up[K]) / 2
    assert tv <= s.tv_bound
    assert s.tv_bound < 1e-14 and s.eps < 2e-7


@pytest.mark.parametrize("bits", [8, 16])
def test_two_level_table_is_exact(bits):
    """got (the law recomputed from both tables) sums to 2**63 and is symmetric."""
    s = Quantized(GaussianL2(0.25), bits=bits)
    t = s._tab
    assert int(t.got.sum(dtype=np.uint64)) == 1 << 63
    assert np.array_equal(t.got[: t.K], t.got[t.K + 1:][::-1])
    assert (t.off_bits > 0) == (bits == 16)  # 16 bits: small coarse table + residual
    assert t.residual_mass < 1e-4  # flat + ramp leave only the bins' curvature
    assert s.tv_bound < 1e-13


# ---------------------------------------------------------------------------
# draws: chi-square against the exact law, on both paths
# ---------------------------------------------------------------------------


def chi_square(noise: np.ndarray, k: np.ndarray, p: np.ndarray) -> float:
    """p-value of the draws ``noise`` against the pmf ``p`` on ``k`` (bins >= 20 expected)."""
    expected = p * noise.size
    observed = np.bincount(noise - k[0], minlength=k.size)
    assert observed.size == k.size  # nothing outside the support
    keep = expected >= 20
    obs, exp = observed[keep], expected[keep]
    if not keep.all():  # pool the tails
        obs, exp = np.append(obs, observed[~keep].sum()), np.append(exp, expected[~keep].sum())
    return stats.chisquare(obs, exp).pvalue


@pytest.mark.parametrize("path", ["kernel", "tensor"])
@pytest.mark.parametrize(("kind", "sigma", "bits"), [
    ("gaussian", 0.05, 8), ("gaussian", 0.003, 16), ("laplace", 0.04, 8),
    ("gaussian", 0.25, 16)])
def test_draws_match_the_exact_law_chi_square(path, kind, sigma, bits):
    """Seeded chi-square of 10^6 draws of K against the exact sampled pmf."""
    base = bases(sigma)[kind == "laplace"]
    s = Quantized(base, bits=bits)
    L = s.levels
    m = L // 2
    x = torch.full((4, 250_000), m / L)
    g = torch.Generator().manual_seed(123)
    if path == "kernel":
        y = s.perturb(x, generator=g)
    else:
        y, bad = _draw_torch(x, x.reshape(-1), g, s._tab, L)
        assert bad == 0
    noise = (torch.round(y.double() * L) - m).to(torch.int64).reshape(-1).numpy()
    k, p = s.pmf()
    if k.size > 20_000:  # wide support: pool into 2000 cells of about equal mass
        cell = np.floor((np.cumsum(p) - p) * 2000).astype(np.int64)
        noise, p = cell[noise - k[0]], np.bincount(cell, weights=p)
        k = np.arange(p.size)
    assert chi_square(noise, k, p) > 1e-3


@pytest.mark.parametrize("path", ["kernel", "tensor"])
def test_residual_table_alone_draws_the_exact_law(path, monkeypatch):
    """A table whose bins keep nothing flat and no ramp: every draw goes through the
    residual table (rare in real tables), which must still give the exact law."""
    from samplers import _qtable

    def all_residual(T):
        flat, ramp, down, res = split(T)
        zero = np.zeros_like(flat)
        return zero, zero, down, _qtable._unflip(T, down)

    split = _qtable._split_bins
    monkeypatch.setattr(_qtable, "_split_bins", all_residual)
    monkeypatch.setattr(_qtable, "COARSE_SLOTS", 64)  # bins of many indices
    table = _qtable._build(*_qtable._gaussian_pmf(0.05, 255))
    assert table.residual_mass == 1.0 and table.off_bits > 0
    s = Quantized(GaussianL2(0.05))
    object.__setattr__(s, "_tab", table)
    x = torch.full((4, 100_000), 128 / 255)
    g = torch.Generator().manual_seed(5)
    y = s.perturb(x, generator=g) if path == "kernel" else _draw_torch(
        x, x.reshape(-1), g, table, 255)[0]
    noise = (torch.round(y.double() * 255) - 128).to(torch.int64).reshape(-1).numpy()
    k, p = table.K, table.got / 2.0**63
    assert chi_square(noise, np.arange(-k, k + 1), p) > 1e-3


def test_residual_draws_are_taken():
    """16 bits: a fraction residual_mass of the draws comes from the residual table."""
    s = Quantized(GaussianL2(0.25), bits=16)
    t = s._tab
    bits = torch.empty(1 << 20, dtype=torch.int64).random_(
        generator=torch.Generator().manual_seed(4))
    from samplers._quantized import _alias_pick
    c = _alias_pick(bits >> (2 * t.off_bits), torch.as_tensor(t.coarse), t.c_slot_bits,
                    t.c_low_bits)
    frac = float((c == 2 * t.nbins).double().mean())
    se = math.sqrt(t.residual_mass / bits.numel())
    assert abs(frac - t.residual_mass) < 4 * se


def test_xoshiro_matches_a_reference_implementation():
    """The CPU kernel's integers: xoshiro256** seeded by SplitMix64, >> 1 (63 bits)."""
    mask = (1 << 64) - 1

    def splitmix(x):
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return x, z ^ (z >> 31)

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & mask

    a, b = 12345, (1 << 62) + 7
    x, s0 = splitmix(a)
    x, s1 = splitmix(x)
    y, s2 = splitmix(b)
    y, s3 = splitmix(y)
    ref = []
    for _ in range(20):
        ref.append((rotl((s1 * 5) & mask, 7) * 9 & mask) >> 1)
        t = (s1 << 17) & mask
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
    state = xoshiro_seed(a, b)
    out = np.empty(20, dtype=np.int64)
    xoshiro_fill(state, out)
    assert out.tolist() == ref
    more = np.empty(200_000, dtype=np.int64)
    xoshiro_fill(state, more)
    top = more >> 61  # 2 bits: uniform on 0..3
    assert more.min() >= 0 and stats.chisquare(np.bincount(top, minlength=4)).pvalue > 1e-3


def test_torch_int64_random_uses_63_bits():
    """The tensor path assumes int64 random_() is uniform on [0, 2**63): its top bits."""
    b = torch.empty(200_000, dtype=torch.int64).random_(generator=torch.Generator().manual_seed(1))
    assert int(b.min()) >= 0
    assert stats.chisquare(np.bincount((b >> 61).numpy(), minlength=4)).pvalue > 1e-3


# ---------------------------------------------------------------------------
# exactness and the input contract
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bits", [8, 16])
def test_output_is_a_fixed_function_of_the_grid_index(dtype, bits):
    L = (1 << bits) - 1
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, L + 1, (3, 2, 9, 11), generator=g).to(dtype) / L
    s = Quantized(LaplaceL1(0.1), bits=bits)
    y = s.perturb(x, generator=torch.Generator().manual_seed(7))
    assert y.dtype == dtype and y.shape == x.shape and not y.requires_grad
    j = torch.round(y.double() * L)
    assert torch.equal((j / L).to(dtype), y)  # the float nearest to an integer / L
    # the same seed gives the same output; batch elements get independent noise
    y2 = s.perturb(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(y, y2) and not torch.equal(y[0] - x[0], y[1] - x[1])
    # copies of one input (SegCertify's broadcast batch) = the same input repeated
    one = x[0]
    a = s.perturb(one.expand(4, *one.shape), generator=torch.Generator().manual_seed(3))
    b = s.perturb(one.repeat(4, 1, 1, 1), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # tensor path (other devices): same law, on the grid, same off-grid check
    t, bad = _draw_torch(x, x.reshape(-1), torch.Generator().manual_seed(7), s._tab, L)
    assert bad == 0 and torch.equal((torch.round(t.double() * L) / L).to(dtype), t)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_grid_value_is_accepted_and_its_neighbours_are_not(dtype):
    """The input check accepts image / L for every m (float32 checks by reciprocal,
    float64 by division) and refuses the adjacent floats."""
    for bits in (8, 16):
        L = (1 << bits) - 1
        x = (torch.arange(L + 1, dtype=dtype) / L)[None]
        s = Quantized(GaussianL2(0.25), bits=bits)
        s.perturb(x, generator=torch.Generator().manual_seed(0))  # no raise
        for direction in (-1.0, 2.0):
            near = torch.nextafter(x[:, 1:-1], torch.tensor(direction, dtype=dtype))
            with pytest.raises(ValueError, match=f"{L - 1} values do not"):
                s.perturb(near)


def test_bad_input():
    s = Quantized(GaussianL2(0.25))
    for bad in (0.3, 2.0, float("nan"), -1 / 255, float("inf")):
        with pytest.raises(ValueError, match=r"8-bit grid \(values m / 255"):
            s.perturb(torch.full((1, 4), bad))
    with pytest.raises(ValueError, match="16-bit grid"):
        Quantized(GaussianL2(0.25), bits=16).perturb(torch.full((1, 4), 0.3))
    x16 = torch.full((2, 3), 1000 / 65535)  # on the 16-bit grid, not the 8-bit one
    Quantized(GaussianL2(0.25), bits=16).perturb(x16)
    with pytest.raises(ValueError, match="8-bit grid"):
        s.perturb(x16)
    off = torch.tensor([[0.3, 1 / 255, float("nan"), 2.0]])
    assert _draw_torch(off, off.reshape(-1), None, s._tab, 255)[1] == 3  # other devices
    with pytest.raises(TypeError, match="float32 or float64"):
        s.perturb(torch.zeros(1, 4, dtype=torch.float16))
    with pytest.raises(ValueError, match="max_dim"):
        Quantized(GaussianL2(0.25), max_dim=10).perturb(torch.zeros(2, 11))
    with pytest.raises(TypeError, match="`base`"):
        Quantized(RotationZ(0.1))
    with pytest.raises(ValueError, match="point-cloud"):
        Quantized(GaussianL2(0.25, point_cloud=True))
    with pytest.raises(ValueError, match="`bits` must be one of"):
        Quantized(GaussianL2(0.25), bits=12)
    with pytest.raises(TypeError, match="`bits`"):
        Quantized(GaussianL2(0.25), bits=8.0)
    with pytest.raises(ValueError, match="`max_dim`"):
        Quantized(GaussianL2(0.25), max_dim=0)
    with pytest.raises(ValueError, match="at least one grid step"):
        Quantized(GaussianL2(0.001))
    with pytest.raises(ValueError, match="too large"):
        Quantized(GaussianL2(8.0), bits=16)
    with pytest.raises(ValueError, match="`tau`"):
        s.radius(1.0)
    assert s.perturb(torch.zeros(0, 4)).shape == (0, 4)


# ---------------------------------------------------------------------------
# the radius: the continuous one, and sound for the quantized noise
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_radius_at_least_0999_of_the_continuous_samplers(sigma, bits):
    for base in bases(sigma):
        s = Quantized(base, bits=bits)
        for tau in TAUS:
            r, ref = s.radius(tau), base.radius(tau)
            assert 0.999 * ref <= r < ref, (type(base).__name__, tau, r / ref)
        # the radius map is the same function, vectorised; 0 where nothing is certified
        p = np.array([0.0, 0.5, 0.5 + s.eps, 0.75, 0.999, 1.0])
        radii = s.radii(p)
        assert radii[:3].tolist() == [0.0, 0.0, 0.0]
        assert radii[3] == s.radius(0.75) and radii[4] == s.radius(0.999)
        assert math.isfinite(radii[5]) and radii[5] > radii[4]
        t = s.radii(torch.tensor([0.9], dtype=torch.float64))
        assert isinstance(t, torch.Tensor) and float(t[0]) == s.radius(0.9)


def np_worst_case(P: np.ndarray, Q: np.ndarray, mass: float) -> float:
    """min over (randomized) sets A with P(A) >= mass of Q(A): Neyman–Pearson."""
    order = np.argsort(Q / np.maximum(P, 1e-300), kind="stable")
    cum = np.cumsum(P[order])
    i = int(np.searchsorted(cum, mass))
    before = cum[i - 1] if i else 0.0
    return float(Q[order][:i].sum() + Q[order][i] * (mass - before) / P[order][i])


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("sigma", [0.12, 0.25])
@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_radius_sound_against_exact_1d_neyman_pearson(kind, sigma, bits):
    """1-D, x on the grid, x' = x + R (real, off the grid): the base model sees the
    grid law of round((x' + eps) / h). Over all classifiers of the rounded input,
    the worst class probability at x' given >= tau - eps at x stays >= 1/2 + eps; at
    1.001 R it does not (the radius gives nothing away)."""
    base = bases(sigma)[kind == "laplace"]
    s = Quantized(base, bits=bits, max_dim=1)
    h = 1 / s.levels
    width = 12 * sigma if kind == "gaussian" else 40 * base.scale
    for tau in TAUS:
        R = s.radius(tau)
        js = np.arange(-math.ceil((width + R) / h), math.ceil((width + R) / h) + 1, dtype=float)
        P = grid_pmf(base, h, js)
        assert 1 - P.sum() < 1e-12
        for factor, sound in ((1.0, True), (1.001, False)):
            worst = np_worst_case(P, grid_pmf(base, h, js, shift=factor * R), tau - s.eps)
            assert (worst >= 0.5 + s.eps - 1e-12) == sound, (tau, factor, worst)


# ---------------------------------------------------------------------------
# through SegCertify
# ---------------------------------------------------------------------------


def threshold_model(cut: float):
    """Class 0 where the noisy pixel is <= cut, else class 1: (B, 1, 1, N) -> (B, 2, 1, N)."""
    def model(x):
        z = (cut - x) * 1e6
        return torch.cat((z, -z), dim=1)
    return model


def test_fwer_at_the_null_boundary_through_segcertify():
    """N = 4 pixels whose class-0 probability under the quantized noise is tau (up to
    one atom of 4e-5 below); the exact randomized test with Bonferroni. A false
    certificate (any pixel certified, as p <= tau) in at most alpha + 3 SE of 600
    runs; and the counts have the exact law's mean."""
    sigma, tau, alpha, n, reps, N = 0.12, 0.75, 0.2, 100, 600, 4
    s = Quantized(GaussianL2(sigma), bits=16)
    k, p = s.pmf()
    cum = np.cumsum(p)
    t = int(np.searchsorted(cum, tau, side="right")) - 1  # P(K <= k[t]) <= tau
    p0 = float(cum[t])
    assert tau - 5e-5 < p0 <= tau
    model = threshold_model((k[t] + 0.5) / s.levels)
    seg = SegCertify(model, s, num_classes=2, n0=40, n=n, tau=tau, alpha=alpha,
                     correction="bonferroni", batch_size=140, randomized=True)
    x = torch.zeros(1, 1, N)
    errors, total = 0, 0
    for r in range(reps):
        cert = seg.certify(x, generator=torch.Generator().manual_seed(r), rng=r)
        errors += bool((cert.labels >= 0).any())
        total += int(cert.counts[cert.guesses == 0].sum())
        total += int((n - cert.counts[cert.guesses == 1]).sum())
    rate = errors / reps
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)
    assert rate > alpha / 2  # the randomized test is tight: the check can fail
    mean = total / (reps * N * n)
    assert abs(mean - p0) < 4 * math.sqrt(p0 * (1 - p0) / (reps * N * n))


def test_through_segcertify_with_radius_map_and_retest():
    model = torch.nn.Conv2d(3, 2, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[1, 0] = 8.0
        model.bias[1] = -4.0
    x = torch.zeros(3, 8, 8)
    x[0, :, 4:] = 1.0
    sampler = Quantized(GaussianL2(0.25))
    seg = SegCertify(model, sampler, num_classes=2, n0=10, n=100, tau=0.75, alpha=0.001,
                     batch_size=50)
    cert = seg.certify(x, generator=torch.Generator().manual_seed(0))
    assert cert.sound and cert.radius == sampler.radius(0.75)
    assert cert.radius >= 0.999 * GaussianL2(0.25).radius(0.75)
    assert cert.certified_fraction == 1.0
    assert "8-bit grid point" in cert.params["threat_model"]
    rmap = seg.radius_map(cert)
    assert bool((rmap.radius[cert.certified] >= cert.radius).all())
    low = seg.retest(cert, 0.6)
    assert low.radius == sampler.radius(0.6) and low.certified_fraction == 1.0
    assert "Quantized" in sampler.describe() and "bits=8" in repr(sampler)
