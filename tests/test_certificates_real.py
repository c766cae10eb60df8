"""simulations.certificates_real: randomized test and quantized smoothing on real counts."""

import csv

import numpy as np
import pytest
import torch

from samplers import GaussianL2, Quantized
from simulations import certificates_real as sim
from smoothing import SegCertify

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_agrees_with_segcertify_on_the_same_counts():
    """Both tests of `evaluate` are SegCertify's certificates (retest) on those counts."""
    model = torch.nn.Conv2d(3, 2, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[1, 0] = 3.0
        model.bias[1] = -1.5
    x = torch.zeros(3, 6, 6)
    x[0, :, 3:] = 1.0
    kw = dict(num_classes=2, n0=10, n=60, tau=0.75, alpha=0.01, correction="holm",
              batch_size=30)
    cons = SegCertify(model, GaussianL2(0.5), **kw)
    rand = SegCertify(model, GaussianL2(0.5), randomized=True, **kw)
    cert = cons.certify(x, generator=torch.Generator().manual_seed(0))
    target = cert.guesses.numpy().copy()
    target[0, 0] = 255  # ignored
    target[0, 1] = 1 - target[0, 1]  # wrong
    out = sim.evaluate(cert.counts.numpy(), cert.guesses.numpy(), target, 60, 0.01, seed=7)
    valid = target != 255
    for tau in sim.TAUS:
        ref_c = cons.retest(cert, tau).certified.numpy()
        ref_r = rand.retest(cert, tau, rng=7).certified.numpy()
        np.testing.assert_array_equal(out["conservative", tau][0], ref_c[valid])
        np.testing.assert_array_equal(out["randomized", tau][0], ref_r[valid])
        right = ref_r & (cert.guesses.numpy() == target)
        np.testing.assert_array_equal(out["randomized", tau][1], right[valid])
        assert not (out["conservative", tau][0] & ~out["randomized", tau][0]).any()


def test_quantize_8bit_is_on_the_quantized_sampler_grid():
    x = sim.quantize_8bit(torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0)))
    Quantized(GaussianL2(0.25)).perturb(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x * 255, (x * 255).round())


def test_quick_mode_writes_csv_table_figure_and_is_reproducible(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        assert sim.main(["--quick", "--out", str(d), "--figures", str(d),
                         "--threads", "1"]) == 0
    assert (a / "certificates_real.csv").read_bytes() == (b / "certificates_real.csv").read_bytes()
    rows = _rows(a / "certificates_real.csv")
    assert list(rows[0]) == list(sim.COLUMNS)
    assert len(rows) == len(sim.SAMPLERS) * len(sim.TESTS) * len(sim.TAUS)
    by = {(r["sampler"], r["test"], float(r["tau"])): r for r in rows}
    for samp in sim.SAMPLERS:
        for tau in sim.TAUS:
            c, r = by[samp, "conservative", tau], by[samp, "randomized", tau]
            assert float(r["certified"]) >= float(c["certified"])  # same counts
            assert c["radius"] == r["radius"]
    for tau in sim.TAUS:  # the quantized radius is the continuous one, within 0.1 %
        q = float(by["Quantized", "conservative", tau]["radius"])
        g = float(by["GaussianL2", "conservative", tau]["radius"])
        assert 0.999 * g <= q <= g
    assert all(0 <= float(r["certified_accuracy"]) <= float(r["certified"]) <= 1
               for r in rows)
    assert (a / "certificates_real.png").stat().st_size > 0
    md = (a / "certificates_real.md").read_text()
    assert md.count("\n") == len(rows) + 2 and "Quantized" in md
    radius = (a / "certificates_radius.md").read_text()
    assert radius.count("\n") == 2 + len(sim.RADIUS_SIGMAS) * len(sim.RADIUS_TAUS)
    assert sim.main(["--plot-only", "--out", str(a), "--figures", str(a)]) == 0


def test_old_lattice_radius_is_the_documented_fraction_of_the_continuous_one():
    """The removed LatticeGaussian's Rényi radius: 0.62x at tau = 0.75 ... 0.37x at 0.999."""
    for tau, frac in ((0.75, 0.62), (0.9, 0.56), (0.99, 0.45), (0.999, 0.37)):
        ratio = sim.renyi_lattice_radius(0.25, tau) / GaussianL2(0.25).radius(tau)
        assert ratio == pytest.approx(frac, abs=0.005)


def test_bad_threads(capsys):
    with pytest.raises(SystemExit):
        sim.main(["--quick", "--threads", "0"])
    assert "--threads must be >= 1" in capsys.readouterr().err
