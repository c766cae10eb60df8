"""``certify --quantize-bits``: quantized smoothing through the run engine and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from samplers import GaussianL2, Quantized  # noqa: E402
from smoothing import runs  # noqa: E402
from smoothing.cli import main  # noqa: E402

BASE = ["certify", "--dataset", "streets", "--image-size", "16", "16", "--num-inputs", "2",
        "--sigma", "0.25", "--n0", "4", "--n", "64", "--tau", "0.6", "--alpha", "0.01",
        "--batch-size", "32", "--device", "cpu", "--no-progress"]


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_a_quantized_run_certifies_on_the_grid_at_the_continuous_radius(tmp_path, capsys):
    out = tmp_path / "q"
    assert main([*BASE, "--quantize-bits", "8", "--out", str(out)]) == 0, capsys.readouterr().err
    cert = [r for r in _records(out) if r["kind"] == "certify"]
    assert len(cert) == 2
    assert all("Quantized" in r["sampler"] and "bits=8" in r["sampler"] for r in cert)
    continuous = GaussianL2(0.25).radius(0.6)
    assert all(0.999 * continuous <= r["radius"] < continuous for r in cert)
    assert json.loads((out / "config.json").read_text())["config"]["quantize_bits"] == 8
    assert "gaussian-q8" in (out / "summary.csv").read_text()
    # a resume computes nothing
    assert main([*BASE, "--quantize-bits", "8", "--out", str(out)]) == 0
    assert "0 (input, grid point) pairs computed" in capsys.readouterr().err
    # another bit depth is another run
    assert main([*BASE, "--quantize-bits", "16", "--out", str(out)]) == 2
    assert "`--quantize-bits` 8 -> 16" in capsys.readouterr().err


def test_the_engine_feeds_grid_images_and_a_quantized_sampler():
    cfg = runs.RunConfig(image_size=(16, 16), num_inputs=1, sigma=(0.25,), n0=4, n=(64,),
                         tau=(0.6,), alpha=0.01, quantize_bits=8)
    run = runs.prepare(cfg, device="cpu")
    x = run.dataset[run.indices[0]][0]
    assert x.dtype == torch.float32
    np.testing.assert_array_equal((x * 255).round() / 255, x)  # on the 8-bit grid
    sampler = next(iter(run.certifiers.values())).sampler
    assert isinstance(sampler, Quantized) and sampler.bits == 8


@pytest.mark.parametrize(("extra", "needle"), [
    (["--sampler", "rotation-z", "--dataset", "parts"], "--quantize-bits"),
    (["--quantize-bits", "12"], "--quantize-bits"),
])
def test_bad_quantize_options_are_one_line(tmp_path, capsys, extra, needle):
    argv = [*BASE, "--out", str(tmp_path / "bad")]
    if extra[0] != "--quantize-bits":
        argv += ["--quantize-bits", "8"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err
    assert not (tmp_path / "bad").exists()


def test_library_checks_quantize_bits():
    with pytest.raises(ValueError, match="`quantize_bits` must be 8 or 16"):
        runs.prepare(runs.RunConfig(quantize_bits=12), device="cpu")
    with pytest.raises(ValueError, match="'gaussian' and 'laplace'"):
        runs.prepare(runs.RunConfig(dataset="parts", sampler="rotation-z", sigma=(0.1,),
                                    quantize_bits=8), device="cpu")
