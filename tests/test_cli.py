"""The ``segcertify`` command line and its resumable runner (smoothing.cli, smoothing.runs)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothing import runs as runner
from smoothing.cli import build_parser, main
from smoothing.models import build_model, checkpoint_path, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
#: bookkeeping that may differ between equal results (timings; whether a tau reused
#: the sampling of another tau, which depends on what a resume had left to do; the
#: digest of the run's options, which differs between runs of other seeds or grids)
VOLATILE = {"time_sampling", "time_testing", "time_forward", "rank", "sampling_reused",
            "config_digest"}

# tiny runs: 16 x 32 scenes / 128-point clouds, n0 = 8, n = 32
STREETS = ["certify", "--dataset", "streets", "--image-size", "16", "32", "--num-inputs", "3",
           "--n0", "8", "--n", "32", "--tau", "0.6", "0.75", "--alpha", "0.01",
           "--batch-size", "40", "--device", "cpu", "--no-progress"]  # fmt: skip
PARTS = ["certify", "--dataset", "parts", "--num-points", "128", "--num-inputs", "2",
         "--n0", "8", "--n", "32", "64", "--tau", "0.6", "--alpha", "0.01",
         "--batch-size", "40", "--device", "cpu", "--no-progress"]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread, here and in the subprocesses (OMP_NUM_THREADS=1): robust on
    a busy machine, and the same floating-point reductions in every process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _run(args: list[str], out: Path) -> int:
    return main([*args, "--out", str(out)])


def _lines(out: Path) -> list[str]:
    return (out / "results.jsonl").read_text().splitlines()


def _results(out: Path) -> dict[tuple[int, str], dict]:
    """The records of a run, keyed by (input, grid), without the timings."""
    recs = runner.read_records(out)
    return {(r["input"], r["grid"]): {k: v for k, v in r.items() if k not in VOLATILE}
            for r in recs}


def _labels(out: Path) -> dict[str, dict[str, np.ndarray]]:
    arrays = {}
    for path in sorted((out / "labels").glob("*.npz")):
        with np.load(path) as z:
            arrays[path.name] = {k: z[k] for k in z.files}
    return arrays


def _assert_same_labels(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys()
        for k in a[name]:
            np.testing.assert_array_equal(a[name][k], b[name][k], err_msg=f"{name}:{k}")


# ----------------------------------------------------------------------- happy paths
def test_streets_run_writes_results_labels_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(STREETS, out) == 0
    stdout = capsys.readouterr().out
    assert "base model (clean)" in stdout and "SegCertify" in stdout
    assert {p.name for p in out.iterdir()} == {"config.json", "results.jsonl", "labels",
                                               "summary.csv", "summary.md"}
    results = _results(out)
    grids = ["base", "sigma0.25-tau0.6-n32", "sigma0.25-tau0.75-n32"]
    assert set(results) == {(i, g) for i in range(3) for g in grids}
    assert len(_lines(out)) == len(results)  # no duplicates
    for (_, grid), rec in results.items():
        with np.load(out / rec["labels_file"]) as z:
            labels = z["labels"]
        assert labels.shape == (16, 32) and labels.min() >= -1 and labels.max() < 8
        assert rec["num_components"] == 512
        assert rec["num_correct"] + rec["num_abstain"] <= rec["num_valid"]
        assert rec["num_abstain"] == int((labels == -1).sum())
        if grid != "base":
            assert rec["sigma"] == 0.25 and rec["n"] == 32 and rec["n0"] == 8
            assert rec["radius"] == pytest.approx(0.25 * {0.6: 0.2533471, 0.75: 0.6744898}[
                rec["tau"]], rel=1e-6)
            assert rec["sound"] is True and rec["correction"] == "holm"
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"] == "streets-unet-sigma0.25"
    assert config["config"]["sigma"] == [0.25] and config["config"]["image_size"] == [16, 32]


def test_parts_run(tmp_path):
    out = tmp_path / "run"
    assert _run(PARTS, out) == 0
    results = _results(out)
    assert len(results) == 2 * 3
    for rec in results.values():
        assert rec["num_components"] == 128 and isinstance(rec["category"], int)
        with np.load(out / rec["labels_file"]) as z:
            assert z["labels"].shape == (128,)
    rows = runner.summarize(out).rows
    assert [r["n"] for r in rows] == [None, 32, 64]


def test_summary_files_and_summarize_command(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(STREETS, out) == 0
    with open(out / "summary.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == runner.SUMMARY_COLUMNS
    assert [r["method"] for r in rows] == ["base", "certify", "certify"]
    assert [r["tau"] for r in rows] == ["", "0.6", "0.75"]
    assert all(r["num_inputs"] == "3" for r in rows)
    # pooled accuracy = correct / valid over the records
    recs = [r for r in runner.read_records(out) if r["grid"] == "sigma0.25-tau0.6-n32"]
    acc = sum(r["num_correct"] for r in recs) / sum(r["num_valid"] for r in recs)
    assert float(rows[1]["accuracy"]) == pytest.approx(acc)
    assert float(rows[2]["abstain_pct"]) >= float(rows[1]["abstain_pct"])  # larger tau
    md = (out / "summary.md").read_text()
    assert "| acc. | mIoU | % abstain |" in md
    csv_text = (out / "summary.csv").read_text()
    (out / "summary.csv").unlink()
    (out / "summary.md").unlink()
    capsys.readouterr()
    assert main(["summarize", str(out)]) == 0
    assert (out / "summary.csv").read_text() == csv_text
    assert (out / "summary.md").read_text() == md
    assert "SegCertify" in capsys.readouterr().out


def test_user_checkpoint_on_cityscapes_layout(tmp_path, cityscapes_layout):
    root, ckpt = cityscapes_layout
    out = tmp_path / "run"
    args = ["certify", "--dataset", "cityscapes", "--data-root", str(root), "--checkpoint",
            str(ckpt), "--sigma", "0.25", "--n0", "8", "--n", "32", "--alpha", "0.01",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    assert _run(args, out) == 0
    results = _results(out)
    assert {i for i, _ in results} == {0, 1}  # all images by default
    assert sum(r["num_valid"] for r in results.values()) < 4 * 256  # void (0) is ignored


def test_shipped_checkpoint_file_on_shapenet_layout(tmp_path, rng):
    root = tmp_path / "shapenet"
    (root / "03797390").mkdir(parents=True)
    (root / "synsetoffset2category.txt").write_text("Mug\t03797390\n")
    for name in ("a", "b"):
        xyz = rng.normal(size=(200, 3))
        nrm = rng.normal(size=(200, 3))
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        np.savetxt(root / "03797390" / f"{name}.txt",
                   np.column_stack([xyz, nrm, rng.choice([36, 37], 200)]), fmt="%.5f")
    (root / "train_test_split").mkdir()
    (root / "train_test_split" / "shuffled_test_file_list.json").write_text(
        json.dumps(["shape_data/03797390/a", "shape_data/03797390/b"]))
    out = tmp_path / "run"
    args = ["certify", "--dataset", "shapenet-part", "--data-root", str(root), "--checkpoint",
            str(checkpoint_path("parts-pointnet-normals-sigma0.25")), "--num-points", "64",
            "--n0", "8", "--n", "32", "--num-inputs", "1", "--start", "1", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    assert _run(args, out) == 0
    assert set(_results(out)) == {(1, "base"), (1, "sigma0.25-tau0.75-n32")}  # sigma from file


# ----------------------------------------------------------------------- reproducibility
def test_same_seed_same_results_other_seed_other_noise(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _run(STREETS, a) == 0
    assert _run(STREETS, b) == 0
    assert _results(a) == _results(b)
    _assert_same_labels(_labels(a), _labels(b))
    assert _run([*STREETS, "--seed", "1"], c) == 0
    ra, rc = _results(a), _results(c)
    assert ra[(0, "base")] == rc[(0, "base")]
    assert ra[(0, "sigma0.25-tau0.6-n32")]["noise_seed"] != rc[(0, "sigma0.25-tau0.6-n32")][
        "noise_seed"]


def test_noise_does_not_depend_on_the_other_inputs_or_grid_points(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert _run(STREETS, full) == 0
    args = [*STREETS, "--start", "2", "--num-inputs", "1", "--tau", "0.75"]
    assert _run(args, part) == 0
    key = (2, "sigma0.25-tau0.75-n32")
    # in `full` tau 0.75 reuses tau 0.6's sampling; in `part` it samples: same noise
    assert _results(part)[key] == _results(full)[key]


def test_ranks_split_the_inputs_and_the_summary_merges_them(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert _run(STREETS, single) == 0
    args = build_parser().parse_args([*STREETS, "--out", str(multi)])
    from smoothing.cli._common import config_from_args

    run = runner.prepare(config_from_args(args), device="cpu")
    for rank in (1, 0):
        run.execute(multi, rank=rank, world_size=2, progress=False)
    assert sorted(p.name for p in multi.glob("results*.jsonl")) == [
        "results.rank0.jsonl", "results.rank1.jsonl"]
    assert {r["input"] for r in map(json.loads, (multi / "results.rank1.jsonl").open())} == {1}
    assert _results(multi) == _results(single)
    keep = [c for c in runner.SUMMARY_COLUMNS if c != "time_per_input_s"]
    rows = [[{k: r[k] for k in keep} for r in runner.summarize(d).rows] for d in (single, multi)]
    assert rows[0] == rows[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_torchrun_two_ranks_equal_one_process(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    # torchrun's own parser claims --n / --start as abbreviations: use the long aliases
    args = [a if a != "--n" else "--num-samples" for a in STREETS]
    env = _env()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "smoothing", *args, "--out", str(multi)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SegCertify" in proc.stdout  # rank 0 printed the summary after the barrier
    assert sorted(p.name for p in multi.glob("results*.jsonl")) == [
        "results.rank0.jsonl", "results.rank1.jsonl"]
    assert _run(STREETS, single) == 0
    assert _results(multi) == _results(single)
    _assert_same_labels(_labels(multi), _labels(single))
    before = _results(multi)
    assert _run(STREETS, multi) == 0  # one process resumes a two-rank run: nothing to do
    assert not (multi / "results.jsonl").exists() and _results(multi) == before


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_torchrun_shard_samples_writes_once_and_resumes(tmp_path):
    """--shard samples: both ranks certify every input, only rank 0 writes; the
    certificates are the deterministic test of the summed counts; a rerun resumes."""
    from multitest import certify_counts

    multi, single = tmp_path / "multi", tmp_path / "single"
    args = [a if a != "--n" else "--num-samples" for a in STREETS]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "smoothing", *args, "--shard", "samples", "--out", str(multi)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "samples sharded" in proc.stderr and "SegCertify" in proc.stdout
    assert [p.name for p in multi.glob("results*.jsonl")] == ["results.jsonl"]
    records = runner.read_records(multi)
    keys = [(r["input"], r["grid"]) for r in records]
    assert len(keys) == len(set(keys)) == 3 * 3  # 3 inputs x (base + 2 tau)
    assert _run(STREETS, single) == 0
    base = {k: v for k, v in _results(single).items() if k[1] == "base"}
    assert {k: v for k, v in _results(multi).items() if k[1] == "base"} == base
    for r in records:
        if r["kind"] != "certify":
            continue
        assert r["sample_ranks"] == 2 and r["n"] == 32
        with np.load(multi / r["labels_file"]) as z:
            counts, guesses, labels = z["counts"], z["guesses"], z["labels"]
        assert counts.max() <= 32
        reject = certify_counts(counts, 32, r["tau"], 0.01, method="holm").reject
        np.testing.assert_array_equal(np.where(reject, guesses, -1), labels)
    before = multi.joinpath("results.jsonl").read_bytes()
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 (input, grid point) pairs computed" in proc.stderr
    assert multi.joinpath("results.jsonl").read_bytes() == before


# ----------------------------------------------------------------------- resume
KILL = ["certify", "--dataset", "streets", "--image-size", "32", "64", "--num-inputs", "6",
        "--n0", "8", "--n", "300", "--alpha", "0.01", "--batch-size", "50", "--device", "cpu",
        "--no-progress"]  # fmt: skip


def _complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = _env()
    proc = subprocess.Popen([sys.executable, "-m", "smoothing", *KILL, "--out", str(killed)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    total = 6 * 2  # base + one grid point per input
    deadline = time.monotonic() + 60
    try:
        while _complete_lines(killed / "results.jsonl") < 4:  # two inputs finished
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = _complete_lines(killed / "results.jsonl")
    assert 4 <= done < total
    # a write killed midway leaves a partial line; the resume must drop it
    with open(killed / "results.jsonl", "ab") as f:
        f.write(b'{"kind":"certify","input":5,"grid":"sigma0.25-tau0.75-n30')
    assert _run(KILL, killed) == 0
    assert _run(KILL, clean) == 0
    lines = _lines(killed)
    assert len(lines) == total and all(json.loads(line) for line in lines)
    assert _results(killed) == _results(clean)
    _assert_same_labels(_labels(killed), _labels(clean))
    assert not list((killed / "labels").glob(".*.tmp"))


def test_resume_after_a_torn_last_line(tmp_path):
    full, torn = tmp_path / "full", tmp_path / "torn"
    assert _run(STREETS, full) == 0
    assert _run(STREETS, torn) == 0
    data = (torn / "results.jsonl").read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    (torn / "results.jsonl").write_bytes(data[: last + 40])  # half of the last record
    assert len(runner.read_records(torn)) == len(_lines(full)) - 1
    assert _run(STREETS, torn) == 0
    assert (torn / "results.jsonl").read_bytes().count(b"\n") == len(_lines(full))
    assert _results(torn) == _results(full)
    _assert_same_labels(_labels(torn), _labels(full))


def test_resume_of_a_finished_run_recomputes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(STREETS, out) == 0
    before = (out / "results.jsonl").read_bytes()
    capsys.readouterr()
    # --device and --no-progress do not change results: allowed
    assert main([*STREETS, "--out", str(out), "--device", "cpu"]) == 0
    assert "0 (input, grid point) pairs computed, 9 were already done" in capsys.readouterr().err
    assert (out / "results.jsonl").read_bytes() == before


@pytest.mark.parametrize("change", [["--alpha", "0.02"], ["--seed", "3"], ["--tau", "0.6"],
                                    ["--n0", "9"], ["--num-inputs", "2"]])
def test_resume_with_other_options_is_refused(tmp_path, capsys, change):
    out = tmp_path / "run"
    assert _run(STREETS, out) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert _run([*STREETS, *change], out) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("segcertify: error: ")
    assert f"`{change[0]}`" in err[0]  # the flag, not the Python name
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# ----------------------------------------------------------------------- errors
@pytest.fixture
def small_checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(build_model("unet", num_classes=5, width=4), tmp_path / "five.pt")


BAD = {
    "tau": (["--tau", "1.0"], "`--tau` must lie in [0.5, 1)"),
    "tau-low": (["--tau", "0.4"], "`--tau` must lie in [0.5, 1)"),
    "alpha": (["--alpha", "1.5"], "`--alpha` must lie in (0, 1)"),
    "n0": (["--n0", "0"], "`--n0` must be an integer in [1, 2**31 - 1]"),
    "n": (["--n", "0"], "`--n` must be an integer in [1, 2**31 - 1]"),
    "sigma": (["--sigma", "0"], "`--sigma` must be finite and > 0"),
    "batch": (["--batch-size", "0"], "`--batch-size`"),
    "k": (["--k", "2"], "`--k` must be 1 for correction 'holm'"),
    "model": (["--model", "resnet"], "`--model` must be one of"),
    "wrong-data": (["--model", "parts-pointnet-sigma0.25"], "has 50 classes"),
    "checkpoint": (["--checkpoint", "/no/such/model.pt"], "does not exist"),
    "mismatch": (["--checkpoint", "{ckpt}"], "5 output classes"),
    "data-root": (["--dataset", "cityscapes", "--checkpoint", "{ckpt}"], "needs `--data-root`"),
    "root-missing": (["--dataset", "pascal-context", "--data-root", "/no/such/dir",
                      "--checkpoint", "{ckpt}"], None),
    "shapenet-root": (["--dataset", "shapenet-part", "--data-root", "/no/such/dir",
                       "--checkpoint", str(checkpoint_path("parts-pointnet-sigma0.25"))],
                      "does not exist"),
    "rotation-on-images": (["--sampler", "rotation-z", "--sigma", "0.1"], "point clouds"),
    "device": (["--device", "tpu:7"], "`--device`"),
    "unknown-option": (["--taus", "0.7"], "unrecognized arguments"),
    "bad-number": (["--n", "ten"], "invalid int value"),
    "correction": (["--correction", "hochberg"], "invalid choice"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, small_checkpoint,
                                                        case):
    extra, message = BAD[case]
    extra = [a.replace("{ckpt}", str(small_checkpoint)) for a in extra]
    out = tmp_path / "out" / "run"
    assert _run([*STREETS, *extra], out) == 2
    cap = capsys.readouterr()
    lines = cap.err.splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("segcertify: error: ")
    if message is not None:
        assert message in lines[0]
    assert cap.out == ""
    assert not (tmp_path / "out").exists()


def test_out_must_not_be_a_file_or_a_foreign_results_folder(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    assert _run(STREETS, path) == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.jsonl").write_text("")
    assert _run(STREETS, foreign) == 2
    assert main(["summarize", str(tmp_path / "nothing")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 3


# ----------------------------------------------------------------------- parser
def test_parser_subcommands_and_defaults():
    parser = build_parser()
    args = parser.parse_args(["certify", "--out", "x", "--sigma", "0.25", "0.5",
                              "--n", "100", "1000"])
    assert args.sigma == [0.25, 0.5] and args.n == [100, 1000] and args.tau == [0.75]
    assert args.n0 == 10 and args.alpha == 0.001 and args.correction == "holm"
    args = parser.parse_args(["demo", "--out", "d"])
    assert args.command == "demo" and args.quick is True and args.seed == 0
    args = parser.parse_args(["demo", "--out", "d", "--full", "--seed", "3", "--no-progress"])
    assert args.quick is False and args.seed == 3 and args.no_progress
    assert parser.parse_args(["summarize", "o"]).out == Path("o")


def test_demo_quick_and_full_are_exclusive(capsys):
    assert main(["demo", "--out", "d", "--quick", "--full"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_help_and_models(capsys):
    assert main(["--help"]) == 0
    assert "certify" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert "streets-unet-sigma0.25" in capsys.readouterr().out


def test_demo_calls_run_demo(tmp_path, monkeypatch):
    calls = []
    fake = type(sys)("smoothing.runs.demo")
    fake.run_demo = lambda out_dir, **kw: calls.append((out_dir, kw)) or {}
    monkeypatch.setitem(sys.modules, "smoothing.runs.demo", fake)
    assert main(["demo", "--out", str(tmp_path / "d"), "--full", "--seed", "4",
                 "--no-progress"]) == 0
    assert calls == [(tmp_path / "d", {"quick": False, "seed": 4, "progress": False})]


@pytest.mark.parametrize(("content", "kept"), [
    (b"", b""), (b'{"a":1}\n', b'{"a":1}\n'), (b'{"a":1}\n{"b"', b'{"a":1}\n'),
    (b'{"b"', b""), (b'{"a":1}\n' * 20000 + b"x" * 70000, b'{"a":1}\n' * 20000),
])
def test_repair_jsonl_cuts_only_a_partial_last_line(tmp_path, content, kept):
    path = tmp_path / "r.jsonl"
    path.write_bytes(content)
    assert runner.repair_jsonl(path) == len(content) - len(kept)
    assert path.read_bytes() == kept
    runner.append_record(path, {"input": 0, "grid": "base"})
    assert path.read_bytes() == kept + b'{"input":0,"grid":"base"}\n'


def test_demo_bad_seed_is_one_line_exit_2(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--seed", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed" in err[0]
    assert not (tmp_path / "d").exists()
