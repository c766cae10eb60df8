"""SEGCERTIFY on torch models: the algorithm, soundness, fresh noise, reproducibility, errors.

The central tool is an *oracle* model whose per-component top-class probability is
known exactly and is driven by the sampler's noise alone: for the input x = 0 and
Gaussian noise e ~ N(0, sigma^2), component i predicts class 1 iff
e_i / sigma + z_i > 0 with z_i = Phi^-1(p_i), i.e. with probability exactly p_i.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import multitest
import smoothing
from samplers import GaussianL2, LaplaceL1, Sampler
from smoothing import ABSTAIN, SegCertify, SegmentationCertificate
from smoothing import _sampling as S

SIGMA = 0.25


class Oracle(nn.Module):
    """'Image' (1, 1, N) -> logits (B, 2, 1, N); P(class 1 at component i) = p[i]."""

    def __init__(self, p, sigma: float = SIGMA) -> None:
        super().__init__()
        p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
        self.register_buffer("z", torch.tensor(stats.norm.ppf(p), dtype=torch.float32))
        self.sigma = sigma
        self.num_components = len(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0, 0, :] / self.sigma + self.z
        return torch.stack([torch.zeros_like(s), s], dim=1).unsqueeze(2)


class Recorder(nn.Module):
    """Remembers every batch it sees (and its mode); predicts class 1 where x > 0."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)  # a parameter, so the model has a device
        self.drop = nn.Dropout(0.5)
        self.batches: list[torch.Tensor] = []
        self.training_flags: list[bool] = []
        self.inference_flags: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.clone())
        self.training_flags.append(self.training)
        self.inference_flags.append(torch.is_inference_mode_enabled())
        s = self.drop(x[:, :1])
        return torch.cat([torch.zeros_like(s), s], dim=1)


class SharedNoiseGaussian(Sampler):
    """The reference code's bug: ONE noise draw reused for every copy in a batch."""

    def __init__(self, sigma: float) -> None:
        self.sigma = sigma

    @property
    def threat_model(self) -> str:
        return "l2 (broken sampler for tests)"

    def perturb(self, x, *, generator=None):
        noise = torch.randn(x.shape[1:], generator=generator, device=x.device, dtype=x.dtype)
        return x + self.sigma * noise

    def radius(self, tau):
        return self.sigma * stats.norm.ppf(tau)


def zeros_image(n_comp: int) -> torch.Tensor:
    return torch.zeros(1, 1, n_comp)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def sampler():
    return GaussianL2(SIGMA)


def make(model, sampler, **kw):
    args = dict(num_classes=2, n0=10, n=100, tau=0.75, alpha=0.001, batch_size=64)
    args.update(kw)
    return SegCertify(model, sampler, **args)


# ---------------------------------------------------------------------------
# the algorithm
# ---------------------------------------------------------------------------
def test_deterministic_components_are_certified(sampler, gen):
    p = [1.0] * 5 + [0.0] * 5  # class 1 always, class 0 always
    cert = make(Oracle(p), sampler).certify(zeros_image(10), generator=gen)
    assert isinstance(cert, SegmentationCertificate)
    assert cert.labels.shape == (1, 10) and cert.labels.dtype == torch.int64
    assert cert.labels.tolist() == [[1] * 5 + [0] * 5]
    assert cert.counts.tolist() == [[100] * 10]
    assert cert.counts0.tolist() == [[10] * 10]
    assert cert.certified_fraction == 1.0 and cert.num_certified == 10
    assert cert.radius == pytest.approx(SIGMA * stats.norm.ppf(0.75))
    assert cert.sound is True


def test_labels_follow_threshold_and_multitest(sampler, gen):
    p = np.linspace(0.5, 1.0, 40)
    seg = make(Oracle(p), sampler, n=200, alpha=0.05)
    cert = seg.certify(zeros_image(40), generator=gen)
    counts = cert.counts.numpy()
    ref = multitest.certify_counts(counts, 200, 0.75, 0.05, method="holm")
    assert np.array_equal(cert.certified.numpy(), ref.reject)
    expected = np.where(counts >= cert.threshold, cert.guesses.numpy(), ABSTAIN)
    assert np.array_equal(cert.labels.numpy(), expected)
    pv = multitest.binomial_pvalues(counts, 200, 0.75)
    np.testing.assert_allclose(cert.pvalues.numpy(), pv)
    assert cert.pvalues.shape == cert.labels.shape
    assert np.array_equal(cert.pvalues_adjusted.numpy() <= 0.05, ref.reject)
    assert 0 < cert.num_certified < 40  # the fixture p ranges over both regimes


@pytest.mark.parametrize("correction,k", [("bonferroni", 1), ("holm", 1),
                                          ("lehmann_romano", 3), ("generalized_bonferroni", 2)])
def test_corrections_are_passed_to_multitest(sampler, correction, k):
    p = np.linspace(0.7, 1.0, 30)
    g1, g2 = (torch.Generator().manual_seed(5) for _ in range(2))
    cert = make(Oracle(p), sampler, n=60, alpha=0.05, correction=correction, k=k).certify(
        zeros_image(30), generator=g1)
    ref = multitest.certify_counts(cert.counts.numpy(), 60, 0.75, 0.05, method=correction, k=k)
    assert np.array_equal(cert.certified.numpy(), ref.reject)
    assert cert.params["correction"] == correction and cert.params["k"] == k
    # the test step does not touch the sampling: the same seed gives the same counts
    other = make(Oracle(p), sampler, n=60, alpha=0.05).certify(zeros_image(30), generator=g2)
    assert torch.equal(cert.counts, other.counts)


def test_ties_go_to_the_lowest_class():
    class Alternating(nn.Module):  # row i of a batch predicts class (i mod 2)
        def forward(self, x):
            b = x.shape[0]
            logits = torch.zeros(b, 3, *x.shape[2:])
            logits[torch.arange(b), 1 + torch.arange(b) % 2] = 1.0
            return logits

    class Flat(nn.Module):  # all logits equal
        def forward(self, x):
            return torch.zeros(x.shape[0], 3, *x.shape[2:])

    x = torch.zeros(1, 2, 3)
    cert = make(Alternating(), GaussianL2(0.1), num_classes=3, n0=2, n=10,
                batch_size=2).certify(x)
    assert (cert.guesses == 1).all()  # n0 counts (0, 1, 1): the tie goes to class 1
    assert (cert.counts == 5).all()
    flat = make(Flat(), GaussianL2(0.1), num_classes=3).certify(x)
    assert (flat.guesses == 0).all() and (flat.labels == 0).all()


def test_point_cloud_labels_have_shape_n(gen):
    class PointOracle(nn.Module):  # (B, N, 3) -> (B, N, 4): class = argmax of (0, x, y, z)
        def forward(self, pts):
            return torch.cat([torch.zeros_like(pts[..., :1]), pts], dim=-1)

    pts = torch.zeros(50, 3)
    pts[:, 1] = 2.0  # y dominates: class 2 with certainty
    cert = make(PointOracle(), GaussianL2(0.25, point_cloud=True), num_classes=4,
                layout="BNC").certify(pts, generator=gen)
    assert cert.labels.shape == (50,)
    assert (cert.labels == 2).all()


def test_predict_is_the_same_algorithm_with_looser_parameters(sampler):
    p = np.linspace(0.6, 1.0, 20)
    seg = make(Oracle(p), sampler)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    pred = seg.predict(zeros_image(20), n=30, alpha=0.1, generator=g())
    assert pred.params["n"] == 30 and pred.params["alpha"] == 0.1 and pred.params["n0"] == 10
    assert int(pred.counts.max()) <= 30
    same = SegCertify(Oracle(p), sampler, num_classes=2, n0=10, n=30, tau=0.75, alpha=0.1,
                      batch_size=64).certify(zeros_image(20), generator=g())
    assert torch.equal(pred.labels, same.labels)
    assert torch.equal(seg.predict(zeros_image(20), generator=g()).labels,
                       seg.certify(zeros_image(20), generator=g()).labels)
    with pytest.raises(ValueError, match="`alpha`"):
        seg.predict(zeros_image(20), alpha=1.5)


def test_result_records_parameters_and_timings(sampler, gen):
    cert = make(Oracle([0.9] * 4), sampler, batch_size=7).certify(zeros_image(4), generator=gen)
    assert cert.params == {
        "n0": 10, "n": 100, "tau": 0.75, "alpha": 0.001, "correction": "holm", "k": 1,
        "num_classes": 2, "batch_size": 7, "layout": "BCHW", "sampler": repr(sampler),
        "threat_model": sampler.threat_model, "randomized": False,
        "precision": "float32", "compile": False,
    }
    assert cert.time_sampling > 0 and cert.time_testing >= 0
    assert "SegmentationCertificate(shape=(1, 4)" in repr(cert)
    for t in (cert.labels, cert.guesses, cert.counts, cert.counts0, cert.pvalues):
        assert not t.is_inference()  # users may modify them in place
        t[0, 0] = 0
    assert SegCertify.ABSTAIN == SegmentationCertificate.ABSTAIN == smoothing.ABSTAIN == -1


def test_radius_comes_from_the_sampler(gen):
    lap = LaplaceL1(0.5)
    seg = make(Oracle([1.0] * 3, sigma=0.5), lap, tau=0.9)
    assert seg.radius == pytest.approx(lap.radius(0.9))
    assert seg.certify(zeros_image(3), generator=gen).radius == pytest.approx(lap.radius(0.9))


# ---------------------------------------------------------------------------
# sampling: fresh noise, batching, independence, reproducibility, eval mode
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n0,n,batch_size", [(5, 7, 3), (1, 1, 1), (4, 9, 100), (6, 12, 6)])
def test_batches_cover_every_sample_once(n0, n, batch_size):
    rec = Recorder()
    cert = make(rec, GaussianL2(0.1), n0=n0, n=n, batch_size=batch_size).certify(
        torch.full((1, 2, 2), 5.0))
    sizes = [b.shape[0] for b in rec.batches]
    expected = ([batch_size] * (n0 // batch_size) + [n0 % batch_size] * bool(n0 % batch_size)
                + [batch_size] * (n // batch_size) + [n % batch_size] * bool(n % batch_size))
    assert sizes == expected
    assert (cert.counts == n).all() and (cert.counts0 == n0).all()


def test_every_sample_gets_fresh_noise(gen):
    rec = Recorder()
    x = torch.zeros(1, 8, 8)
    make(rec, GaussianL2(0.5), n0=16, n=64, batch_size=16).certify(x, generator=gen)
    samples = torch.cat(rec.batches).flatten(1)  # (80, 64): every sample, both phases
    assert samples.shape == (80, 64)
    assert torch.unique(samples, dim=0).shape[0] == 80  # no two samples share noise
    corr = np.corrcoef(samples.numpy())
    off_diagonal = corr[~np.eye(80, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.6  # 64 coordinates: |r| of independent ~ 0.12
    assert samples.std().item() == pytest.approx(0.5, rel=0.1)


def test_counts_are_binomial_so_shared_noise_would_be_caught(gen):
    # p = 1/2 everywhere, all n samples in ONE batch: with fresh noise the counts are
    # Binomial(n, 1/2); with one noise draw per batch (the reference code's bug) they
    # would all be 0 or n.
    n, n_comp = 200, 400
    cert = make(Oracle([0.5] * n_comp), GaussianL2(SIGMA), n=n, batch_size=n).certify(
        zeros_image(n_comp), generator=gen)
    counts = cert.counts.numpy().ravel().astype(float)
    # the count of class 1 (or of class 0 where that was guessed) is Bin(n, 1/2)
    counts1 = np.where(cert.guesses.numpy().ravel() == 1, counts, n - counts)
    assert counts1.mean() == pytest.approx(n / 2, abs=4 * math.sqrt(n / 4 / n_comp))
    assert counts1.var() == pytest.approx(n / 4, rel=0.25)
    assert ((counts1 == 0) | (counts1 == n)).mean() < 0.01


def test_the_binomial_check_fails_for_shared_noise(gen):
    n, n_comp = 200, 400
    cert = make(Oracle([0.5] * n_comp), SharedNoiseGaussian(SIGMA), n=n, batch_size=n).certify(
        zeros_image(n_comp), generator=gen)
    counts = cert.counts.numpy().ravel()
    assert set(np.unique(counts)) <= {0, n}  # what the check above rules out


def test_n0_and_n_phases_are_independent_streams():
    # With one shared stream the n-phase noise would depend on how much n0 consumed.
    def noise_of_n_phase(n0):
        rec = Recorder()
        make(rec, GaussianL2(1.0), n0=n0, n=8, batch_size=4).certify(
            torch.zeros(1, 3, 3), generator=torch.Generator().manual_seed(7))
        seen = torch.cat(rec.batches)
        return seen[:n0], seen[n0:]

    first0, first = noise_of_n_phase(4)
    second0, second = noise_of_n_phase(12)
    assert torch.equal(first, second)  # n phase unchanged by n0
    assert torch.equal(first0, second0[:4])  # the n0 stream is its own prefix
    assert not torch.isclose(first[:, None], second0[None]).all(dim=(2, 3, 4)).any()


def test_same_seed_same_certificate_different_seed_different_noise(sampler):
    p = np.linspace(0.6, 1.0, 64)
    seg = make(Oracle(p), sampler, n=50)
    a = seg.certify(zeros_image(64), generator=torch.Generator().manual_seed(11))
    b = seg.certify(zeros_image(64), generator=torch.Generator().manual_seed(11))
    c = seg.certify(zeros_image(64), generator=torch.Generator().manual_seed(12))
    assert torch.equal(a.labels, b.labels) and torch.equal(a.counts, b.counts)
    assert torch.equal(a.counts0, b.counts0) and a.threshold == b.threshold
    assert not torch.equal(a.counts, c.counts)
    g = torch.Generator().manual_seed(11)  # one generator, two calls: fresh noise
    assert not torch.equal(seg.certify(zeros_image(64), generator=g).counts,
                           seg.certify(zeros_image(64), generator=g).counts)


def test_progress_bar(capsys):
    cert = make(Oracle([1.0] * 3), GaussianL2(SIGMA), progress=True).certify(zeros_image(3))
    assert cert.num_certified == 3
    assert "samples" in capsys.readouterr().err


def test_model_runs_in_eval_and_inference_mode():
    rec = Recorder().train()
    make(rec, GaussianL2(0.1), n0=3, n=5, batch_size=2).certify(torch.full((1, 2, 2), 1.0))
    assert not any(rec.training_flags) and all(rec.inference_flags)
    assert rec.training is False  # and it stays in eval mode


def test_plain_callables_and_inputs_on_the_model_device(gen):
    def model(x):  # not a module: no device, the input's is used
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1]], dim=1)

    cert = make(model, GaussianL2(0.1)).certify(torch.ones(1, 3, 3), generator=gen)
    assert (cert.labels == 1).all()
    # a module's device is that of its first parameter or buffer
    assert S.model_device(Oracle([0.5]), torch.zeros(1)) == torch.device("cpu")


def test_count_dtypes_are_the_smallest_sufficient():
    assert S.count_dtype(10) == torch.uint8 and S.count_dtype(255) == torch.uint8
    assert S.count_dtype(256) == torch.int16 and S.count_dtype(32767) == torch.int16
    assert S.count_dtype(32768) == torch.int32 and S.count_dtype(2**31 - 1) == torch.int32
    assert S.count_dtype(2**31) == torch.int64


def test_counting_matches_a_brute_force_reference(gen):
    # class counts by scatter-add equal a per-component Python reference
    model = Oracle(np.linspace(0.2, 0.9, 12))
    x = zeros_image(12)
    reader = S.OutputReader("BCHW", 2, (1, 12), torch.device("cpu"))
    g1, g2 = (torch.Generator().manual_seed(9) for _ in range(2))
    with torch.inference_mode():
        counts = S.count_classes(model, GaussianL2(SIGMA), x, reader, num=300, batch_size=64,
                                 generator=g1)
        preds = torch.cat(list(S.iter_predictions(model, GaussianL2(SIGMA), x, reader,
                                                  num=300, batch_size=64, generator=g2)))
    ref = np.array([[int((preds[:, i] == c).sum()) for c in range(2)] for i in range(12)])
    assert counts.dtype == torch.int16
    assert np.array_equal(counts.numpy(), ref)


# ---------------------------------------------------------------------------
# soundness and power (Monte Carlo with the oracle)
# ---------------------------------------------------------------------------
REPS = 2000


def _prob_of_guess(p: np.ndarray, guesses: np.ndarray) -> np.ndarray:
    return np.where(guesses == 1, p, 1.0 - p)


@pytest.mark.parametrize("correction", ["holm", "bonferroni"])
def test_fwer_is_controlled_at_the_null_boundary(correction):
    # 30 components exactly at tau (the least favourable null), 10 just below, 10 far
    # above, 10 with class 0 on top; an error is a certified component whose guessed
    # class has probability <= tau.
    tau, alpha, n0, n = 0.75, 0.2, 5, 200
    p = np.array([tau] * 30 + [0.72] * 10 + [0.99] * 10 + [0.05] * 10)
    seg = make(Oracle(p), GaussianL2(SIGMA), n0=n0, n=n, tau=tau, alpha=alpha,
               correction=correction, batch_size=256)
    g = torch.Generator().manual_seed(2024)
    errors = 0
    for _ in range(REPS):
        cert = seg.certify(zeros_image(len(p)), generator=g)
        prob = _prob_of_guess(p, cert.guesses.numpy().ravel())
        errors += bool((cert.certified.numpy().ravel() & (prob <= tau)).any())
    se = math.sqrt(alpha * (1 - alpha) / REPS)
    assert errors / REPS <= alpha + 3 * se
    if correction == "bonferroni":
        # two-sided and exact: components are independent and Bonferroni decides each
        # on its own count, so FWER = 1 - prod_i (1 - P(error_i)).
        t = next(c for c in range(n + 1) if stats.binom.sf(c - 1, n, tau) <= alpha / len(p))
        guess1 = stats.binom.sf(n0 // 2, n0, p)
        err = np.where(p <= tau, guess1 * stats.binom.sf(t - 1, n, p), 0.0)
        err += np.where(1 - p <= tau, (1 - guess1) * stats.binom.sf(t - 1, n, 1 - p), 0.0)
        fwer = 1 - np.prod(1 - err)
        assert 0.03 < fwer < alpha
        assert errors / REPS == pytest.approx(fwer, abs=4 * math.sqrt(fwer * (1 - fwer) / REPS))


def test_the_fwer_check_can_fail():
    # the same harness with the reference code's shared-noise bug blows far past alpha
    tau, alpha = 0.75, 0.2
    p = np.array([tau] * 30)
    seg = make(Oracle(p), SharedNoiseGaussian(SIGMA), n0=5, n=50, tau=tau, alpha=alpha,
               batch_size=64)
    g = torch.Generator().manual_seed(2024)
    errors = sum(bool(seg.certify(zeros_image(30), generator=g).certified.any())
                 for _ in range(100))
    assert errors / 100 > alpha + 3 * math.sqrt(alpha * (1 - alpha) / 100)


def test_power_matches_the_analytic_rate():
    # Bonferroni decides every component on its own count, so with independent
    # components P(certified) = P(guess right) * P(Bin(n, p) >= t) exactly.
    tau, alpha, n0, n, N = 0.75, 0.1, 5, 100, 60
    p = np.array([0.85] * 20 + [0.9] * 20 + [0.95] * 20)
    t = next(c for c in range(n + 1) if stats.binom.sf(c - 1, n, tau) <= alpha / N)
    power = stats.binom.sf(n0 // 2, n0, p) * stats.binom.sf(t - 1, n, p)
    seg = make(Oracle(p), GaussianL2(SIGMA), n0=n0, n=n, tau=tau, alpha=alpha,
               correction="bonferroni", batch_size=128)
    g = torch.Generator().manual_seed(99)
    reps = 1000
    hits = np.zeros(N)
    for _ in range(reps):
        cert = seg.certify(zeros_image(N), generator=g)
        hits += (cert.labels.numpy().ravel() == 1)
    for block in range(3):
        sl = slice(20 * block, 20 * (block + 1))
        expected = power[sl].mean()
        trials = 20 * reps
        se = math.sqrt(expected * (1 - expected) / trials)
        assert hits[sl].sum() / trials == pytest.approx(expected, abs=4 * se + 1e-9)
    assert 0.2 < power[:20].mean() < 0.8  # informative: neither 0 nor 1


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw,exc,match", [
    ({"tau": 0.4}, ValueError, r"`tau` must lie in \[1/2, 1\); got 0.4"),
    ({"tau": 1.0}, ValueError, "`tau`"),
    ({"tau": float("nan")}, ValueError, "`tau`"),
    ({"tau": "0.75"}, TypeError, "`tau`"),
    ({"alpha": 0.0}, ValueError, r"`alpha` must lie in \(0, 1\); got 0.0"),
    ({"alpha": 1.0}, ValueError, "`alpha`"),
    ({"alpha": -0.5}, ValueError, "`alpha`"),
    ({"n0": 0}, ValueError, "`n0` must be an integer >= 1; got 0"),
    ({"n": 0}, ValueError, "`n` must be an integer >= 1"),
    ({"n": 10.0}, TypeError, "`n`"),
    ({"n": True}, TypeError, "`n`"),
    ({"batch_size": 0}, ValueError, "`batch_size`"),
    ({"num_classes": 0}, ValueError, "`num_classes`"),
    ({"correction": "fisher"}, ValueError, "`correction` must be one of"),
    ({"correction": "holm", "k": 2}, ValueError, "`k` must be 1"),
    ({"k": 0}, ValueError, "`k`"),
    ({"layout": "NCHW"}, ValueError, "`layout` must be one of"),
])
def test_invalid_parameters_raise(kw, exc, match):
    with pytest.raises(exc, match=match):
        make(Oracle([0.5]), GaussianL2(SIGMA), **kw)


def test_invalid_sampler_and_model_raise():
    with pytest.raises(TypeError, match="`sampler`"):
        make(Oracle([0.5]), lambda x: x)
    with pytest.raises(TypeError, match="`model`"):
        make("resnet", GaussianL2(SIGMA))
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        GaussianL2(0.0)
    with pytest.raises(ValueError, match="`sigma`"):
        GaussianL2(-1.0)


@pytest.mark.parametrize("x,exc,match", [
    (torch.zeros(1, 1, 4, dtype=torch.int64), TypeError, "floating-point"),
    (np.zeros((1, 1, 4), dtype=np.float32), TypeError, "torch.Tensor"),
    (torch.full((1, 1, 4), float("nan")), ValueError, "NaN or infinite"),
    (torch.zeros(1, 1, 1, 4), ValueError, "ONE input without a batch dimension"),
])
def test_bad_inputs_raise(x, exc, match):
    with pytest.raises(exc, match=match):
        make(Oracle([0.5] * 4), GaussianL2(SIGMA)).certify(x)


class Broken(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x):
        b, _, h, w = x.shape
        if self.kind == "classes":
            return torch.zeros(b, 3, h, w)
        if self.kind == "shape":
            return torch.zeros(b, 2, h)
        if self.kind == "spatial":
            return torch.zeros(b, 2, h, w + 1)
        if self.kind == "batch":
            return torch.zeros(1, 2, h, w)
        if self.kind == "nan":
            out = torch.zeros(b, 2, h, w)
            out[:, :, 0, 0] = float("nan")
            return out
        if self.kind == "inf":
            return torch.full((b, 2, h, w), float("inf"))
        if self.kind == "all-neg-inf":
            return torch.full((b, 2, h, w), float("-inf"))
        if self.kind == "int":
            return torch.zeros(b, 2, h, w, dtype=torch.int64)
        if self.kind == "tuple":
            return (torch.zeros(b, 2, h, w),)
        raise AssertionError(self.kind)


@pytest.mark.parametrize("kind,exc,match", [
    ("classes", ValueError, "3 classes .* expected `num_classes` = 2"),
    ("shape", ValueError, "expects 4 dimensions"),
    ("spatial", ValueError, "components of shape"),
    ("batch", ValueError, "batch of"),
    ("nan", ValueError, "non-finite"),
    ("inf", ValueError, "non-finite"),
    ("all-neg-inf", ValueError, "non-finite"),
    ("int", TypeError, "floating-point logits"),
    ("tuple", TypeError, "tensor of logits"),
])
def test_bad_model_outputs_raise(kind, exc, match):
    with pytest.raises(exc, match=match):
        make(Broken(kind), GaussianL2(SIGMA)).certify(torch.zeros(3, 4, 5))


def test_negative_infinite_logits_of_other_classes_are_allowed(gen):
    class Masked(nn.Module):  # class 0 impossible, as CategoryMasked does
        def forward(self, x):
            out = torch.zeros(x.shape[0], 2, *x.shape[2:])
            out[:, 0] = float("-inf")
            return out

    cert = make(Masked(), GaussianL2(SIGMA)).certify(torch.zeros(3, 2, 2), generator=gen)
    assert (cert.labels == 1).all()


def test_corrections_without_a_certificate_warn_and_are_not_sound(gen):
    with pytest.warns(UserWarning, match="not certificates"):
        seg = make(Oracle([1.0] * 3), GaussianL2(SIGMA), correction="benjamini_hochberg")
    assert seg.sound is False
    assert seg.certify(zeros_image(3), generator=gen).sound is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make(Oracle([1.0]), GaussianL2(SIGMA), correction="bonferroni").sound


@pytest.mark.parametrize("correction", ["holm", "bonferroni"])
def test_retest_equals_certify_at_that_tau(correction):
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, kernel_size=1)
    x = torch.rand(3, 6, 5)

    def make(tau):
        return SegCertify(model, GaussianL2(0.3), num_classes=3, n0=8, n=200, tau=tau,
                          alpha=0.01, correction=correction, batch_size=64)

    first = make(0.6).certify(x, generator=torch.Generator().manual_seed(3))
    for tau in (0.6, 0.75, 0.95):
        direct = make(tau).certify(x, generator=torch.Generator().manual_seed(3))
        again = make(0.6).retest(first, tau)
        assert torch.equal(again.labels, direct.labels)
        assert again.threshold == direct.threshold and again.radius == direct.radius
        assert again.params == direct.params
        torch.testing.assert_close(again.pvalues_adjusted, direct.pvalues_adjusted)
    assert first.params["tau"] == 0.6  # the original is left as it was
    with pytest.raises(ValueError, match="tau"):
        make(0.6).retest(first, 1.0)
    other = SegCertify(model, GaussianL2(0.3), num_classes=3, n0=8, n=200, tau=0.6,
                       alpha=0.01, correction="lehmann_romano", k=2, batch_size=64)
    with pytest.raises(ValueError, match="correction"):
        other.retest(first, 0.75)
