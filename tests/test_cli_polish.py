"""CLI runs (issue 13.7): extending a run with more inputs, ``--axis``, progress lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from smoothing import runs as runner  # noqa: E402
from smoothing.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# tiny runs: 16 x 32 scenes / 64-point clouds
STREETS = ["certify", "--dataset", "streets", "--image-size", "16", "32", "--n0", "4",
           "--n", "16", "--tau", "0.6", "--alpha", "0.05", "--batch-size", "20",
           "--device", "cpu"]  # fmt: skip
PARTS = ["certify", "--dataset", "parts", "--num-points", "64", "--num-inputs", "1",
         "--n0", "4", "--n", "16", "--tau", "0.6", "--alpha", "0.05", "--batch-size", "20",
         "--device", "cpu", "--no-progress"]  # fmt: skip
VOLATILE = {"time_sampling", "time_testing", "time_forward", "rank"}


def _records(out: Path) -> dict[tuple[int, str], dict]:
    return {(r["input"], r["grid"]): {k: v for k, v in r.items() if k not in VOLATILE}
            for r in runner.read_records(out)}


def test_resume_with_more_inputs_certifies_only_the_new_ones(tmp_path, capsys):
    small, direct = tmp_path / "small", tmp_path / "direct"
    assert main([*STREETS, "--num-inputs", "2", "--no-progress", "--out", str(small)]) == 0
    before = (small / "results.jsonl").read_text()
    capsys.readouterr()
    # the same folder, more inputs: resumed, only inputs 2 and 3 computed
    assert main([*STREETS, "--num-inputs", "4", "--no-progress", "--out", str(small)]) == 0
    err = capsys.readouterr().err
    assert "4 (input, grid point) pairs computed, 4 were already done" in err
    assert (small / "results.jsonl").read_text().startswith(before)
    config = json.loads((small / "config.json").read_text())
    assert config["config"]["num_inputs"] == 4
    # identical to a run with 4 inputs from the start
    assert main([*STREETS, "--num-inputs", "4", "--no-progress", "--out", str(direct)]) == 0
    assert _records(small) == _records(direct)
    assert json.loads((direct / "config.json").read_text())["derived"] == config["derived"]
    assert {r["num_inputs"] for r in runner.summarize(small).rows} == {4}  # base + grid
    capsys.readouterr()
    # a smaller count, or more inputs together with another change, is still refused
    for change in (["--num-inputs", "3"], ["--num-inputs", "5", "--seed", "1"]):
        assert main([*STREETS, *change, "--no-progress", "--out", str(small)]) == 2
        assert "other options" in capsys.readouterr().err


def test_resumed_complete_run_reports_reused_in_plain_lines(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*STREETS, "--num-inputs", "2", "--out", str(out)]) == 0
    first = capsys.readouterr().err
    assert "\x1b" not in first and "\r" not in first  # stderr is not a terminal here
    assert "certify: 2/2 inputs" in first
    assert main([*STREETS, "--num-inputs", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "certify: reused 2/2 inputs" in err and "\x1b" not in err


def test_rotation_axis_reaches_the_sampler(tmp_path):
    run = runner.prepare(runner.RunConfig(dataset="parts", num_points=64, num_inputs=1,
                                          n0=4, n=(16,), tau=(0.6,), sampler="rotation-z",
                                          sigma=(0.1,), axis="x"), device="cpu")
    assert {c.sampler.axis for c in run.certifiers.values()} == {"x"}
    assert run.record["config"]["axis"] == "x"
    default = runner.prepare(runner.RunConfig(dataset="parts", num_points=64, num_inputs=1,
                                              n0=4, n=(16,), tau=(0.6,), sampler="rotation-z",
                                              sigma=(0.1,)), device="cpu")
    assert {c.sampler.axis for c in default.certifiers.values()} == {"z"}


def test_cli_axis_run_and_its_errors(tmp_path, capsys):
    out = tmp_path / "rot"
    assert main([*PARTS, "--sampler", "rotation-z", "--sigma", "0.1", "--axis", "y",
                 "--out", str(out)]) == 0
    rec = runner.read_records(out)
    assert any("axis='y'" in r.get("sampler", "") for r in rec)
    capsys.readouterr()
    # another axis is another run
    assert main([*PARTS, "--sampler", "rotation-z", "--sigma", "0.1", "--axis", "x",
                 "--out", str(out)]) == 2
    assert "`--axis`" in capsys.readouterr().err
    assert main([*PARTS, "--axis", "x", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "`--axis` applies to the 'rotation-z' sampler only" in err
    assert not (tmp_path / "g").exists()
    with pytest.raises(ValueError, match="`axis` must be one of x, y, z"):
        runner.prepare(runner.RunConfig(dataset="parts", sampler="rotation-z", axis="w"))
