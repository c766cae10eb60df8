"""Per-component radius maps: Sampler.radii, SegCertify.radius_map, soundness."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import multitest as mt
from samplers import GaussianL2, LaplaceL1, Rotation3D, RotationZ
from simulations.oracle import sample_oracle
from smoothing import ABSTAIN, RadiusMap, SegCertify

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SAMPLERS = [GaussianL2(0.25), LaplaceL1(0.4), RotationZ(0.3), Rotation3D(0.2)]


# ---------------------------------------------------------------------------
# Sampler.radii
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: type(s).__name__)
@settings(max_examples=40, deadline=None)
@given(p=st.lists(st.floats(0.0, 0.999999), min_size=1, max_size=20))
def test_radii_agree_with_the_scalar_radius(sampler, p):
    p = np.array(p)
    got = sampler.radii(p)
    ref = np.array([sampler.radius(v) if v > 0.5 else 0.0 for v in p])
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: type(s).__name__)
def test_radii_tensor_in_tensor_out_and_edges(sampler):
    p = torch.tensor([[0.0, 0.5], [0.75, 1.0]])
    r = sampler.radii(p)
    assert isinstance(r, torch.Tensor) and r.dtype == torch.float64 and r.shape == (2, 2)
    assert r[0, 0] == 0 and r[0, 1] == 0 and torch.isinf(r[1, 1])
    assert r[1, 0] == pytest.approx(sampler.radius(0.75), rel=1e-6)


@pytest.mark.parametrize("bad", [[0.5, float("nan")], [1.2], [-0.1]])
def test_radii_bad_values(bad):
    with pytest.raises(ValueError, match="`p_lower` must lie in"):
        GaussianL2(0.25).radii(np.array(bad))
    with pytest.raises(TypeError, match="`p_lower`"):
        GaussianL2(0.25).radii(np.array(["a"]))


# ---------------------------------------------------------------------------
# SegCertify.radius_map
# ---------------------------------------------------------------------------
SIGMA = 0.25


def threshold_model():
    """Class 1 where the first channel exceeds 1/2: under N(0, sigma^2) noise pixel i
    is class 1 with probability Phi((x_i - 1/2) / sigma), so the smoothed model's
    exact l2 radius at pixel i is |x_i - 1/2| (only that coordinate matters)."""
    model = torch.nn.Conv2d(1, 2, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[1, 0] = 1.0
        model.bias[1] = -0.5
    return model


def image_with_probabilities(p):
    """An image whose pixel i has class-1 probability p_i under the noise."""
    x = 0.5 + SIGMA * stats.norm.ppf(np.asarray(p, dtype=np.float64))
    return torch.tensor(x, dtype=torch.float64).reshape(1, 1, -1)


def certifier(correction="bonferroni", n=100, alpha=0.1):
    return SegCertify(threshold_model().double(), GaussianL2(SIGMA), num_classes=2, n0=10,
                      n=n, tau=0.75, alpha=alpha, correction=correction, batch_size=110)


def test_radius_map_fields_and_the_property():
    seg = certifier()
    x = image_with_probabilities(np.linspace(0.02, 0.999, 32))
    cert = seg.certify(x, generator=torch.Generator().manual_seed(1))
    rmap = seg.radius_map(cert)
    assert isinstance(rmap, RadiusMap) and rmap.method == "bonferroni" and rmap.sound
    assert rmap.radius.shape == cert.labels.shape and rmap.radius.dtype == torch.float64
    assert torch.equal(rmap.radius, cert.radius_map)
    assert torch.equal(rmap.labels == ABSTAIN, rmap.radius == 0)
    assert torch.equal(rmap.labels[rmap.certified], cert.guesses[rmap.certified])
    lad = seg.radius_map(cert, method="ladder", alpha=0.05, levels=[0.6, 0.8, 0.9])
    assert lad.levels == (0.6, 0.8, 0.9) and lad.alpha == 0.05
    assert set(np.unique(lad.p_lower.numpy())) <= {0.0, 0.6, 0.8, 0.9}
    # retest keeps the counts, hence the same map
    assert torch.equal(seg.retest(cert, 0.9).radius_map, cert.radius_map)


def test_radius_map_bad_input():
    seg = certifier()
    with pytest.raises(TypeError, match="`cert` must be a SegmentationCertificate"):
        seg.radius_map("cert")
    cert = seg.certify(image_with_probabilities([0.9] * 4),
                       generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="`method`"):
        seg.radius_map(cert, method="holm")
    with pytest.raises(ValueError, match="`alpha`"):
        seg.radius_map(cert, alpha=2.0)


@pytest.mark.parametrize("tau", [0.5, 0.6, 0.75, 0.9])
def test_bonferroni_map_covers_the_fixed_tau_bonferroni_certificate(tau):
    # the same counts, the same alpha: radius_map >= radius(tau), same class, exactly
    # where the fixed-tau Bonferroni certificate certifies
    seg = certifier("bonferroni")
    x = image_with_probabilities(np.linspace(0.3, 0.9999, 64))
    cert = seg.retest(seg.certify(x, generator=torch.Generator().manual_seed(3)), tau)
    rmap = seg.radius_map(cert)
    assert cert.certified.any()
    assert torch.equal(rmap.p_lower >= tau, cert.certified)
    assert (rmap.radius[cert.certified] >= cert.radius).all()
    assert torch.equal(rmap.labels[cert.certified], cert.labels[cert.certified])


def test_soundness_end_to_end_against_the_exact_radius():
    # P(any pixel's reported radius > its exact radius |x_i - 1/2|) <= alpha + 3 SE
    # over 300 seeded runs of SegCertify, for both methods (one run feeds both maps)
    reps, alpha = 300, 0.2
    seg = certifier(alpha=alpha)
    p = np.concatenate([np.full(8, 0.6), np.full(8, 0.8), np.linspace(0.55, 0.99, 16)])
    x = image_with_probabilities(p)
    true_radius = torch.from_numpy(np.abs(x.numpy().reshape(-1) - 0.5))
    errors = {"bonferroni": 0, "ladder": 0}
    levels = mt.ladder_levels(100, p.size, alpha, num=12)
    for seed in range(reps):
        cert = seg.certify(x, generator=torch.Generator().manual_seed(seed))
        for method in errors:
            rmap = seg.radius_map(cert, method=method,
                                  levels=levels if method == "ladder" else None)
            wrong = rmap.labels.reshape(-1) != torch.from_numpy((p > 0.5).astype(np.int64))
            over = rmap.radius.reshape(-1) > true_radius * (1 + 1e-9)
            errors[method] += bool(((over | wrong) & rmap.certified.reshape(-1)).any())
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)
    for method, e in errors.items():
        assert e / reps <= bound, (method, e)


@pytest.mark.parametrize("method", ["bonferroni", "ladder"])
def test_soundness_with_the_oracle_counts(method):
    # simulations.oracle: known per-component probabilities (q = 0.75 for the bad
    # components, 0.95 for the rest), guesses from n0 samples. The true radius of a
    # component is radius(p of its guessed class); over 400 seeded runs,
    # P(any true radius < reported radius) <= alpha + 3 SE.
    reps, alpha, n, N = 400, 0.2, 60, 100
    sampler = GaussianL2(0.5)
    s = sample_oracle(N, N // 2, 0.05, n0=3, n=n, reps=reps, seed=15)
    q = np.where(np.arange(N) < N // 2, 0.75, 0.95)
    errors = 0
    for r in range(reps):
        p_true = np.where(s.right[r], q, 1 - q)
        lo = mt.simultaneous_lower_bounds(s.counts[r], n, alpha, method=method).p_lower
        errors += bool((sampler.radii(lo) > sampler.radii(p_true)).any())
    assert errors / reps <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)


# ---------------------------------------------------------------------------
# segcertify radius-maps
# ---------------------------------------------------------------------------
def test_cli_radius_maps_writes_layers_figures_and_resumes(tmp_path, capsys):
    from smoothing import cli

    argv = ["radius-maps", "--out", str(tmp_path), "--num-inputs", "1", "--image-size",
            "16", "32", "--n", "20", "--n0", "4", "--alpha", "0.01", "--device", "cpu",
            "--batch-size", "24", "--no-progress", "--method", "ladder", "--levels", "0.6",
            "0.8"]
    assert cli.main(argv) == 0
    with np.load(tmp_path / "radius_maps" / "000000-sigma0.25-n20.npz") as z:
        assert z["radius"].shape == (16, 32) and z["image"].shape == (3, 16, 32)
        radius, labels, p_lower = z["radius"], z["labels"], z["p_lower"]
        assert set(np.unique(p_lower)) <= {0.0, 0.6, 0.8}
        np.testing.assert_array_equal(labels == ABSTAIN, radius == 0)
        np.testing.assert_allclose(radius, GaussianL2(0.25).radii(p_lower), rtol=1e-6)
    assert (tmp_path / "figures" / "000000-sigma0.25-n20.png").stat().st_size > 0
    rows = (tmp_path / "radius_maps.csv").read_text().splitlines()
    assert len(rows) == 2 and "ladder" in rows[1]
    assert cli.main(argv) == 0  # resume: nothing new
    assert len((tmp_path / "radius_maps.csv").read_text().splitlines()) == 2


def test_cli_radius_maps_bad_options(tmp_path, capsys):
    from smoothing import cli

    base = ["radius-maps", "--out", str(tmp_path), "--num-inputs", "1", "--device", "cpu"]
    assert cli.main([*base, "--levels", "0.6"]) == 2
    assert "--levels needs --method ladder" in capsys.readouterr().err
    assert cli.main([*base, "--method", "ladder", "--levels", "0.8", "0.6"]) == 2
    assert "strictly increasing" in capsys.readouterr().err
    assert not (tmp_path / "radius_maps.csv").exists()


def test_radius_map_figure_errors():
    from smoothing.figures import radius_map_figure

    with pytest.raises(ValueError, match="`radius` must be a 2-D map"):
        radius_map_figure(None, np.zeros(4))
    with pytest.raises(ValueError, match="`radius` must be >= 0"):
        radius_map_figure(None, -np.ones((2, 2)))


def test_simulation_quick_mode(tmp_path):
    import csv

    from simulations import radius_maps as sim

    assert sim.main(["--quick", "--out", str(tmp_path), "--figures", str(tmp_path),
                     "--threads", "1"]) == 0
    with open(tmp_path / "radius_maps_table.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == list(sim.METHODS)
    by = {r["method"]: r for r in rows}
    assert by["grid-holm"]["samplings"] == str(len(sim.GRID_TAUS))
    assert all(0 <= float(r["certified_accuracy"]) <= float(r["certified"]) + 1e-9
               for r in rows)
    for name in ("radius_maps_curve.png", "radius_maps_example.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert sim.main(["--plot-only", "--out", str(tmp_path), "--figures", str(tmp_path)]) == 0
