"""A run's tau grid: one sampling per (sigma, n), and grid points that cannot certify."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import multitest
from smoothing import runs as runner
from smoothing.cli import main
from smoothing.segcertify import SegCertify

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = dict(dataset="streets", image_size=(16, 16), num_inputs=2, n0=4, n=(24,),
            alpha=0.05, batch_size=24, sigma=(0.25,))
CLI = ["certify", "--dataset", "streets", "--image-size", "16", "16", "--num-inputs", "2",
       "--n0", "4", "--alpha", "0.05", "--batch-size", "24", "--device", "cpu",
       "--no-progress"]  # fmt: skip
#: whether a record reused a sampling depends on the rest of the grid, and so does the
#: run's digest that every record carries; timings vary
VOLATILE = {"time_sampling", "time_testing", "time_forward", "rank", "sampling_reused",
            "config_digest"}


def _records(out) -> dict:
    return {(r["input"], r["grid"]): {k: v for k, v in r.items() if k not in VOLATILE}
            for r in runner.read_records(out)}


def _labels(out, index: int, key: str) -> np.ndarray:
    with np.load(out / "labels" / f"{index:06d}-{key}.npz") as z:
        return z["labels"]


def test_a_tau_grid_samples_once_per_sigma_and_n(tmp_path, monkeypatch):
    calls = []
    original = SegCertify._run

    def counting(self, *args, **kwargs):
        calls.append(self.tau)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SegCertify, "_run", counting)
    run = runner.prepare(runner.RunConfig(tau=(0.55, 0.6, 0.7), **TINY), device="cpu")
    run.execute(tmp_path / "grid", progress=False)
    assert len(calls) == 2  # 2 inputs x 1 (sigma, n); the old runner sampled 6 times
    recs = runner.read_records(tmp_path / "grid")
    assert sorted(r["sampling_reused"] for r in recs if r["kind"] == "certify") == \
        [False] * 2 + [True] * 4


def test_grid_results_equal_separate_per_tau_runs(tmp_path):
    taus = (0.55, 0.6, 0.7)
    grid = tmp_path / "grid"
    runner.prepare(runner.RunConfig(tau=taus, **TINY), device="cpu").execute(
        grid, progress=False)
    together = _records(grid)
    for tau in taus:
        alone = tmp_path / f"tau{tau}"
        runner.prepare(runner.RunConfig(tau=(tau,), **TINY), device="cpu").execute(
            alone, progress=False)
        for (index, key), rec in _records(alone).items():
            assert together[(index, key)] == rec
            np.testing.assert_array_equal(_labels(alone, index, key), _labels(grid, index, key))


def test_each_tau_equals_certify_with_the_shared_seed(tmp_path):
    run = runner.prepare(runner.RunConfig(tau=(0.55, 0.7), **TINY), device="cpu")
    run.execute(tmp_path / "r", progress=False)
    for g in run.grid:
        seed = runner.noise_seed(0, 1, g.sample_key)
        cert = run.certifiers[g.key].certify(run.dataset[1][0],
                                             generator=torch.Generator().manual_seed(seed))
        np.testing.assert_array_equal(_labels(tmp_path / "r", 1, g.key), cert.labels.numpy())


def test_summary_says_each_row_is_its_own_certificate(tmp_path):
    runner.prepare(runner.RunConfig(tau=(0.55, 0.6), **TINY), device="cpu").execute(
        tmp_path / "r", progress=False)
    assert runner.SHARED_SAMPLING_NOTE in runner.summarize(tmp_path / "r").to_markdown()
    runner.prepare(runner.RunConfig(tau=(0.55,), **TINY), device="cpu").execute(
        tmp_path / "one", progress=False)
    assert runner.SHARED_SAMPLING_NOTE not in runner.summarize(tmp_path / "one").to_markdown()


def test_a_folder_of_the_old_run_format_is_refused_clearly(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*CLI, "--n", "24", "--tau", "0.55", "--out", str(out)]) == 0
    blob = json.loads((out / "config.json").read_text())
    blob["format_version"] = 1
    (out / "config.json").write_text(json.dumps(blob))
    capsys.readouterr()
    assert main([*CLI, "--n", "24", "--tau", "0.55", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "older segcertify" in err and "version 1" in err and "another `--out`" in err
    assert main(["summarize", str(out)]) == 0  # still readable


def test_impossible_grid_point_warns_with_the_n_needed(tmp_path, capsys):
    need = multitest.min_certifying_samples(16 * 16, 0.95, 0.05)
    assert need > 24
    out = tmp_path / "r"
    assert main([*CLI, "--n", "24", "--tau", "0.6", "0.95", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "sigma0.25-tau0.95-n24 cannot certify any component" in err
    assert f"needs n >= {need}" in err and "runs anyway" in err
    assert {r["grid"] for r in runner.read_records(out)} == {
        "base", "sigma0.25-tau0.6-n24", "sigma0.25-tau0.95-n24"}


def test_skip_impossible_leaves_the_point_out(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*CLI, "--n", "24", "--tau", "0.6", "0.95", "--skip-impossible",
                 "--out", str(out)]) == 0
    assert "skipped (--skip-impossible)" in capsys.readouterr().err
    assert {r["grid"] for r in runner.read_records(out)} == {"base", "sigma0.25-tau0.6-n24"}
    assert json.loads((out / "config.json").read_text())["config"]["skip_impossible"] is True


def test_skip_impossible_with_nothing_left_is_an_error(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*CLI, "--n", "10", "--tau", "0.95", "--skip-impossible",
                 "--out", str(out)]) == 2
    assert "every grid point is too small" in capsys.readouterr().err
    assert not out.exists()
