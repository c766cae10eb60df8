"""``--precision`` and ``--compile`` through runs and the CLI: identity, resume, summary.

Tiny runs: two 16 x 32 street scenes, n0 = 8, n = 20, and a factory model whose logits
have a margin of about 12 (:class:`Margin`), far above bfloat16's rounding, so every
precision must give the same labels.
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import smoothing._precision as P
from smoothing.cli import build_parser, main
from smoothing.cli._common import PRECISION_NAMES
from smoothing.runs import RunConfig
from smoothing.runs._checks import FORMAT, FORMAT_VERSION, digest
from smoothing.runs.config import OMITTED_AT_DEFAULT
from smoothing.runs.config import PRECISION_NAMES as RUN_PRECISIONS
from tests.test_cli import _labels

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MODULE = "precmodels_pr"
#: The factory's module: 8 classes in vertical stripes, ``12 * one_hot + 0.01 * conv(x)``.
SOURCE = '''
import torch
from torch import nn
from torch.nn import functional as F

SEEN = []  # the dtypes the convolution computed in


class Margin(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        h = self.conv(x)
        SEEN.append(h.dtype)
        b, _, height, width = x.shape
        stripe = torch.arange(width, device=x.device) * 8 // width
        pattern = F.one_hot(stripe, 8).T[None, :, None, :].expand(b, 8, height, width)
        return 12 * pattern.to(h.dtype) + 0.01 * h


def build():
    return Margin()
'''
ARGS = ["--dataset", "streets", "--image-size", "16", "32", "--num-inputs", "2", "--n0", "8",
        "--n", "20", "--tau", "0.5", "--alpha", "0.01", "--sigma", "0.25", "--batch-size",
        "14", "--device", "cpu", "--no-progress", "--model-factory", f"{MODULE}:build"]
#: The digest of a run folder written before ``precision``/``compile`` existed (computed
#: by that version from :func:`_old_blob`): the default values must not change it.
OLD_DIGEST = "6f03a90b2d4a59316025769f2227894d0378bbe262a98fb5a3adf17d54980592"


@pytest.fixture(scope="module", autouse=True)
def factory_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(SOURCE))
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))
    sys.modules.pop(MODULE, None)


def _seen() -> list:
    import importlib

    return importlib.import_module(MODULE).SEEN


def certify(out: Path, *extra: str) -> int:
    return main(["certify", *ARGS, *extra, "--out", str(out)])


def _config(out: Path) -> dict:
    return json.loads((out / "config.json").read_text())


def _csv(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A float32 and a bfloat16 run of the same options."""
    base = tmp_path_factory.mktemp("prec")
    assert certify(base / "f32") == 0
    _seen().clear()
    assert certify(base / "bf16", "--precision", "bfloat16") == 0
    seen = set(_seen())
    return base / "f32", base / "bf16", seen


# ------------------------------------------------------------------ options
def test_names_are_the_precisions_of_segcertify():
    assert PRECISION_NAMES == RUN_PRECISIONS == tuple(P.PRECISIONS)
    assert {"precision", "compile"} <= set(OMITTED_AT_DEFAULT)


def test_compile_flag_bare_or_with_a_backend():
    parse = build_parser().parse_args
    base = ["certify", "--out", "x"]
    assert parse(base).compile is False and parse(base).precision == "float32"
    assert parse([*base, "--compile"]).compile is True
    assert parse([*base, "--compile", "aot_eager"]).compile == "aot_eager"
    assert parse(["radius-maps", "--out", "x", "--precision", "bfloat16"]).precision == \
        "bfloat16"


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"precision": "half"}, ValueError, "`precision` must be one of float32, bfloat16"),
    ({"compile": ""}, TypeError, "`compile` must be false, true"),
    ({"compile": 1}, TypeError, "`compile` must be false, true"),
    ({"compile": "no-such-backend"}, ValueError, "`compile` backend 'no-such-backend' is not "
                                                 "registered"),
])
def test_check_config_names_the_option(kw, error, match):
    from smoothing.runs.config import check_config

    with pytest.raises(error, match=match):
        check_config(RunConfig(**kw))


# ------------------------------------------------------------------ end to end
def test_bfloat16_run_gives_the_labels_of_float32(runs):
    f32, bf16, seen = runs
    assert seen == {torch.bfloat16}  # every forward pass, the clean one too, in bfloat16
    a, b = _labels(f32), _labels(bf16)
    assert a.keys() == b.keys() and len(a) == 4  # 2 inputs x (base, one grid point)
    for name in a:
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key], err_msg=f"{name}:{key}")
    certified = [r for r in _csv(bf16) if r["method"] == "certify"]
    assert float(certified[0]["abstain_pct"]) == 0.0  # a margin this large certifies all


def test_config_records_the_precision_only_when_not_the_default(runs):
    f32, bf16, _ = runs
    assert not {"precision", "compile"} & set(_config(f32)["config"])
    assert _config(bf16)["config"]["precision"] == "bfloat16"
    assert "compile" not in _config(bf16)["config"]
    assert _config(f32)["digest"] != _config(bf16)["digest"]


def test_summary_labels_a_reduced_precision_run(runs):
    f32, bf16, _ = runs
    md = (bf16 / "summary.md").read_text()
    assert "model run in `bfloat16`" in md
    assert "| base model (clean, bfloat16) |" in md and "| SegCertify (bfloat16) |" in md
    rows = _csv(bf16)
    assert [r["precision"] for r in rows] == ["bfloat16"] * len(rows)
    assert "precision" not in _csv(f32)[0] and "bfloat16" not in (f32 / "summary.md").read_text()


def test_resume_with_another_precision_is_refused_in_one_line(runs, capsys):
    f32, bf16, _ = runs
    before = (f32 / "results.jsonl").read_text()
    capsys.readouterr()
    assert certify(f32, "--precision", "bfloat16") == 2
    line = _error_line(capsys)
    assert '`--precision` "float32" -> "bfloat16"' in line and "other options" in line
    assert certify(bf16) == 2
    assert '`--precision` "bfloat16" -> "float32"' in _error_line(capsys)
    assert certify(f32, "--compile") == 2
    assert "`--compile` false -> true" in _error_line(capsys)
    assert (f32 / "results.jsonl").read_text() == before
    assert certify(bf16, "--precision", "bfloat16") == 0  # the same options resume
    assert "0 (input, grid point) pairs computed, 4 were already done" in \
        capsys.readouterr().err


# ------------------------------------------------------------------ old folders
def _old_blob() -> dict:
    """config.json of a run written before ``precision`` and ``compile`` existed."""
    config = {
        "dataset": "streets", "model": "streets-unet-sigma0.25", "checkpoint": None,
        "arch": None, "model_factory": None, "model_kwargs": None, "data_root": None,
        "split": "test", "image_size": [16, 32], "num_points": 2048, "data_seed": 0,
        "sampler": "gaussian", "sigma": [0.25], "n0": 8, "n": [20], "tau": [0.6],
        "alpha": 0.01, "correction": "holm", "k": 1, "batch_size": 50, "num_inputs": 2,
        "start": 0, "stride": 1, "seed": 0, "axis": None, "skip_impossible": False,
        "quantize_bits": None, "trust_program": False, "follow_symlinks": False}
    derived = {"checkpoint_sha256": "0" * 64, "num_classes": 8, "layout": "BCHW",
               "input_kind": "image", "dataset_size": 2, "grid": ["sigma0.25-tau0.6-n20"]}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "certify",
            "config": config, "derived": derived}


def _with(blob: dict, **config) -> dict:
    return {**blob, "config": {**blob["config"], **config}}


def test_old_folders_keep_their_digest():
    old = _old_blob()
    assert digest(old) == OLD_DIGEST
    # the same options written now: the defaults stay out of config.json and the digest
    now = RunConfig(model="streets-unet-sigma0.25", split="test", image_size=(16, 32),
                    num_inputs=2, sigma=(0.25,), n0=8, n=(20,), tau=(0.6,), alpha=0.01)
    assert now.to_dict() == old["config"]
    assert digest(_with(old, precision="float32", compile=False)) == OLD_DIGEST
    # any other value is another run
    others = [_with(old, precision="bfloat16"), _with(old, precision="float16"),
              _with(old, compile=True), _with(old, compile="inductor"),
              _with(old, compile=0)]
    digests = {digest(b) for b in others}
    assert OLD_DIGEST not in digests and len(digests) == len(others)


def test_an_old_folder_resumes_with_the_default_options(runs, capsys):
    """A float32 folder whose config.json has no precision/compile (as an old one has)
    resumes; written with the digest of that old config."""
    f32, _, _ = runs
    blob = _config(f32)
    assert "precision" not in blob["config"]
    capsys.readouterr()
    assert certify(f32) == 0
    assert "0 (input, grid point) pairs computed" in capsys.readouterr().err


# ------------------------------------------------------------------ failures
def test_unknown_compile_backend_is_refused_in_one_line(tmp_path, capsys):
    assert certify(tmp_path / "run", "--compile", "no-such-backend") == 2
    line = _error_line(capsys)
    assert "`--compile` backend 'no-such-backend' is not registered" in line
    assert "inductor" in line
    assert not (tmp_path / "run").exists()


def test_failing_compile_falls_back_with_one_warning_line(runs, tmp_path, capsys,
                                                          monkeypatch):
    def broken_compile(model, **kw):
        def run(x):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    capsys.readouterr()
    assert certify(tmp_path / "run", "--compile", "eager") == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if "torch.compile failed" in line]
    assert len(warned) == 1 and warned[0].startswith("segcertify: warning: ")
    assert "no C++ compiler found" in warned[0] and "without compilation" in warned[0]
    assert _config(tmp_path / "run")["config"]["compile"] == "eager"
    a, b = _labels(runs[0]), _labels(tmp_path / "run")
    for name in a:
        np.testing.assert_array_equal(a[name]["labels"], b[name]["labels"])
    assert [r["precision"] for r in _csv(tmp_path / "run")][0] == "float32, torch.compile eager"


def test_unsupported_float16_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(P, "_SUPPORTED", {})
    monkeypatch.setattr(P, "_probe", lambda device, dtype: "no half kernels here")
    assert certify(tmp_path / "run", "--precision", "float16") == 2
    line = _error_line(capsys)
    assert "`--precision` 'float16' is not supported on device cpu" in line
    assert "no half kernels here" in line and "use 'float32' or 'bfloat16'" in line
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ other paths
def test_certifiers_share_one_base_classifier():
    import importlib

    from smoothing.runs import prepare

    model = importlib.import_module(MODULE).build()
    cfg = RunConfig(image_size=(16, 32), num_inputs=1, sigma=(0.25, 0.5), n0=8, n=(20,),
                    tau=(0.5, 0.6), alpha=0.01, batch_size=14, precision="bfloat16")
    run = prepare(cfg, device="cpu", model=model)
    assert isinstance(run.base_classifier, P.FastForward)
    assert run.base_classifier.precision == "bfloat16"
    forwards = {id(c.base_classifier) for c in run.certifiers.values()}
    assert forwards == {id(run.base_classifier)} and len(run.certifiers) == 4
    assert prepare(RunConfig(image_size=(16, 32), num_inputs=1, sigma=(0.25,), n0=8,
                             n=(20,), alpha=0.01), device="cpu",
                   model=model).base_classifier is model  # float32 eager: the model


def test_sharded_sampling_runs_the_certifier_in_its_precision(runs, tmp_path):
    """``--shard samples`` (DistributedSegCertify) on a one-rank gloo group: the records
    and labels of the single-process bfloat16 run, with every forward in bfloat16."""
    import importlib

    import torch.distributed as dist

    from smoothing.distributed import DistContext
    from smoothing.runs import prepare, read_records

    if dist.is_initialized():
        pytest.skip("a process group already exists")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ctx = DistContext(0, 1, 0, "gloo", torch.device("cpu"), 60.0)
        mod = importlib.import_module(MODULE)
        cfg = RunConfig(image_size=(16, 32), num_inputs=2, sigma=(0.25,), n0=8, n=(20,),
                        tau=(0.5,), alpha=0.01, batch_size=14, precision="bfloat16")
        run = prepare(cfg, device="cpu", model=mod.build())
        mod.SEEN.clear()
        run.execute(tmp_path / "run", progress=False, sample_ctx=ctx)
        assert set(mod.SEEN) == {torch.bfloat16}
    finally:
        dist.destroy_process_group()
    recs = [r for r in read_records(tmp_path / "run") if r["kind"] == "certify"]
    assert [r["sample_ranks"] for r in recs] == [1, 1]
    ref = {(r["input"], r["grid"]): r for r in read_records(runs[1])}
    for r in recs:
        assert r["num_correct"] == ref[(r["input"], r["grid"])]["num_correct"]
        assert r["num_abstain"] == ref[(r["input"], r["grid"])]["num_abstain"]
    a, b = _labels(runs[1]), _labels(tmp_path / "run")
    for name, arrays in b.items():
        if "-sigma" in name:
            np.testing.assert_array_equal(arrays["labels"], a[name]["labels"])


def test_hierarchical_run_in_bfloat16(tmp_path):
    _seen().clear()
    assert certify(tmp_path / "run", "--hierarchy", "streets", "--precision",
                   "bfloat16") == 0
    assert set(_seen()) == {torch.bfloat16}
    assert _config(tmp_path / "run")["config"]["precision"] == "bfloat16"


def test_radius_maps_take_the_precision(runs, tmp_path, capsys):
    maps = ["radius-maps", *ARGS, "--no-figures"]
    _seen().clear()
    assert main([*maps, "--precision", "bfloat16", "--out", str(tmp_path / "maps")]) == 0
    assert set(_seen()) == {torch.bfloat16}
    assert _config(tmp_path / "maps")["config"]["precision"] == "bfloat16"
    capsys.readouterr()
    # --from-run takes the run's precision; another one given beside it is refused
    assert main(["radius-maps", "--from-run", str(runs[1]), "--no-figures", "--no-progress",
                 "--device", "cpu", "--out", str(tmp_path / "from")]) == 0
    assert _config(tmp_path / "from")["config"]["precision"] == "bfloat16"
    capsys.readouterr()
    assert main(["radius-maps", "--from-run", str(runs[0]), "--precision", "bfloat16",
                 "--no-progress", "--device", "cpu", "--out", str(tmp_path / "x")]) == 2
    assert '`--precision` "bfloat16" differs from the "float32"' in _error_line(capsys)
