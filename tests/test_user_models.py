"""Bring your own model: run_certification, --model-factory, TorchScript, exported programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothing import runs as runner
from smoothing.cli import main
from smoothing.models import user
from smoothing.runs.engine import batch_sizes

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parent.parent

#: a segmentation model that is not built in (8 classes: the streets data set's)
MODULE = textwrap.dedent('''
    import torch
    from torch import nn


    class TinySeg(nn.Module):
        def __init__(self, width=4, num_classes=8):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, num_classes, 1))

        def forward(self, x):
            return self.body(x)


    def build(width=4, num_classes=8):
        torch.manual_seed(7)
        return TinySeg(width, num_classes)
''')

CFG = runner.RunConfig(image_size=(16, 16), num_inputs=2, sigma=(0.25,), n0=4, n=(64,),
                       tau=(0.55, 0.6), alpha=0.05, batch_size=32)
CLI = ["certify", "--dataset", "streets", "--image-size", "16", "16", "--num-inputs", "2",
       "--sigma", "0.25", "--n0", "4", "--n", "64", "--tau", "0.55", "0.6", "--alpha", "0.05",
       "--batch-size", "32", "--device", "cpu", "--no-progress"]  # fmt: skip


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "mymodels_um.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("mymodels_um", None)
    yield folder
    sys.modules.pop("mymodels_um", None)


def _build():
    import mymodels_um

    return mymodels_um.build()


def _labels(out: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for path in sorted((out / "labels").glob("*.npz")):
        with np.load(path) as z:
            arrays[path.name] = z["labels"]
    return arrays


def _assert_same_labels(a: Path, b: Path) -> None:
    la, lb = _labels(a), _labels(b)
    assert la.keys() == lb.keys() and len(la) == 6  # 2 inputs x (base + 2 tau)
    for k in la:
        np.testing.assert_array_equal(la[k], lb[k], err_msg=k)


def test_run_certification_with_a_custom_module(models_dir, tmp_path):
    out = tmp_path / "py"
    report = runner.run_certification(_build(), "streets", CFG, out=out, device="cpu")
    assert (report.resumed, report.computed) == (False, 6)
    blob = json.loads((out / "config.json").read_text())
    assert blob["derived"]["model_description"] == "mymodels_um.TinySeg"
    assert blob["derived"]["checkpoint_sha256"] == user.model_fingerprint(_build())
    assert len(runner.read_records(out)) == 6
    assert (out / "summary.md").read_text().startswith("model `mymodels_um.TinySeg`")
    # resume: nothing recomputed
    again = runner.run_certification(_build(), "streets", CFG, out=out, device="cpu")
    assert (again.resumed, again.computed, again.skipped) == (True, 0, 6)
    # another model (other weights) in the same folder: refused, naming the fingerprint
    other = _build()
    with torch.no_grad():
        other.body[0].bias.add_(1.0)
    with pytest.raises(ValueError, match="checkpoint_sha256"):
        runner.run_certification(other, "streets", CFG, out=out, device="cpu")


def test_run_certification_takes_a_plain_batched_callable(models_dir, tmp_path):
    module = _build().eval()

    def segment(x: torch.Tensor) -> torch.Tensor:
        return module(x)

    runner.run_certification(segment, "streets", CFG, out=tmp_path / "fn", device="cpu")
    runner.run_certification(module, "streets", CFG, out=tmp_path / "mod", device="cpu")
    _assert_same_labels(tmp_path / "fn", tmp_path / "mod")


def test_run_certification_rejects_a_config_that_names_another_model(tmp_path):
    with pytest.raises(ValueError, match="leave model of the config unset"):
        runner.run_certification(torch.nn.Conv2d(3, 8, 1), "streets",
                                 runner.RunConfig(model="streets-unet-sigma0.25"),
                                 out=tmp_path / "x", device="cpu")
    with pytest.raises(TypeError, match="`model`"):
        runner.run_certification(3, "streets", CFG, out=tmp_path / "x", device="cpu")


def test_cli_model_factory_in_a_subprocess_with_weights(models_dir, tmp_path):
    # weights that differ from build()'s own initialisation, as {"state_dict": ...}
    model = _build()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.5)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pt")
    env = {**os.environ, "PYTHONPATH": f"{models_dir}{os.pathsep}{REPO}",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "smoothing", *CLI, "--model-factory", "mymodels_um:build",
           "--model-kwargs", '{"width": 4}', "--checkpoint", str(tmp_path / "w.pt"),
           "--out", str(tmp_path / "cli")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "mymodels_um.TinySeg from mymodels_um:build" in proc.stdout
    runner.run_certification(model, "streets", CFG, out=tmp_path / "py", device="cpu")
    _assert_same_labels(tmp_path / "cli", tmp_path / "py")
    blob = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert blob["config"]["model_factory"] == "mymodels_um:build"
    assert blob["config"]["model_kwargs"] == {"width": 4}


def test_cli_model_factory_bare_state_dict_and_resume(models_dir, tmp_path, capsys):
    model = _build()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    args = [*CLI, "--model-factory", "mymodels_um:build", "--checkpoint",
            str(tmp_path / "w.pt"), "--out", str(tmp_path / "cli")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "0 (input, grid point) pairs computed, 6 were already done" in capsys.readouterr().err
    # other weights in the same file name: another sha, refused
    with torch.no_grad():
        model.body[0].bias.add_(1.0)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    assert main(args) == 2
    assert "checkpoint_sha256" in capsys.readouterr().err


def _exported(model: torch.nn.Module, path: Path) -> Path:
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (torch.rand(2, 3, 16, 16),),
                                  dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


@pytest.mark.parametrize("kind", ["torchscript", "exported"])
def test_trusted_programs_certify_like_the_module(models_dir, tmp_path, kind):
    model = _build().eval()
    if kind == "torchscript":
        torch.jit.script(model).save(str(tmp_path / "m.ts"))
        path = tmp_path / "m.ts"
    else:
        path = _exported(model, tmp_path / "m.pt2")
    assert user.checkpoint_kind(path) == kind
    with pytest.raises(ValueError, match="`trust_program`"):  # programs run code: opt in
        user.load_user_model(checkpoint=path)
    loaded, sha, description = user.load_user_model(checkpoint=path, trust_program=True)
    assert description == {"torchscript": "TorchScript m.ts",
                           "exported": "exported program m.pt2"}[kind]
    runner.run_certification(loaded, "streets", CFG, out=tmp_path / "prog", device="cpu")
    runner.run_certification(model, "streets", CFG, out=tmp_path / "py", device="cpu")
    _assert_same_labels(tmp_path / "prog", tmp_path / "py")


def test_cli_torchscript_checkpoint(models_dir, tmp_path):
    model = _build().eval()
    torch.jit.script(model).save(str(tmp_path / "m.ts"))
    assert main([*CLI, "--checkpoint", str(tmp_path / "m.ts"), "--out",
                 str(tmp_path / "ts")]) == 2  # not without the opt-in
    assert main([*CLI, "--checkpoint", str(tmp_path / "m.ts"), "--trust-program", "--out",
                 str(tmp_path / "ts")]) == 0
    runner.run_certification(model, "streets", CFG, out=tmp_path / "py", device="cpu")
    _assert_same_labels(tmp_path / "ts", tmp_path / "py")
    blob = json.loads((tmp_path / "ts" / "config.json").read_text())
    assert blob["derived"]["model_description"] == "TorchScript m.ts"


def test_cli_exported_program_checkpoint(models_dir, tmp_path):
    model = _build().eval()
    path = _exported(model, tmp_path / "m.pt2")
    assert main([*CLI, "--checkpoint", str(path), "--out", str(tmp_path / "ep")]) == 2
    assert main([*CLI, "--checkpoint", str(path), "--trust-program", "--out",
                 str(tmp_path / "ep")]) == 0
    runner.run_certification(model, "streets", CFG, out=tmp_path / "py", device="cpu")
    _assert_same_labels(tmp_path / "ep", tmp_path / "py")


def test_plain_torch_save_is_still_the_builtin_path(tmp_path):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "sd.pt")
    assert user.checkpoint_kind(tmp_path / "sd.pt") == "torch"


@pytest.mark.parametrize(("extra", "message"), [
    (["--model-factory", "nocolon"], "`--model-factory` must be MODULE:FUNCTION"),
    (["--model-factory", "no_such_module_um:build"], "cannot import module"),
    (["--model-factory", "mymodels_um:missing"], "has no attribute 'missing'"),
    (["--model-factory", "mymodels_um:build", "--model-kwargs", "[1]"],
     "`--model-kwargs` must be a JSON object"),
    (["--model-factory", "mymodels_um:build", "--model-kwargs", "{bad"],
     "`--model-kwargs` must be a JSON object"),
    (["--model-kwargs", "{}"], "only used with `--model-factory`"),
    (["--model-factory", "mymodels_um:build", "--arch", "unet"], "takes neither"),
    (["--model-factory", "torch.nn:Conv2d", "--model-kwargs",
      '{"in_channels": 3, "out_channels": 5, "kernel_size": 1}'],
     "expected (1, 8, 16, 16)"),  # 5 classes for an 8-class data set
])
def test_cli_errors_name_the_flag(models_dir, tmp_path, capsys, extra, message):
    assert main([*CLI, *extra, "--out", str(tmp_path / "bad")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_torch_save_checkpoint_of_a_foreign_model_needs_its_factory(tmp_path, capsys):
    torch.save(torch.nn.Conv2d(3, 8, 1).state_dict(), tmp_path / "w.pt")
    assert main([*CLI, "--checkpoint", str(tmp_path / "w.pt"), "--out",
                 str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "`--arch` is required" in err and "`--model-factory`" in err


class _FixedBatch(torch.nn.Module):
    """A model whose forward hard-codes its batch size (as a static export does)."""

    def __init__(self, model: torch.nn.Module, batch: int) -> None:
        super().__init__()
        self.model, self.batch = model, batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).reshape(self.batch, 8, 16, 16)


def test_batch_sizes_follow_the_sampling_loop():
    cfg = runner.RunConfig(n0=10, n=(100, 120, 30), batch_size=50)
    sent = {1}  # the clean evaluation
    for num in (10, 100, 120, 30):  # the batches iter_predictions sends
        sent |= {min(50, num - start) for start in range(0, num, 50)}
    assert batch_sizes(cfg) == sorted(sent) == [1, 10, 20, 30, 50]


@pytest.mark.parametrize(("batch", "failing"), [(1, 32), (32, 1)])
def test_cli_a_fixed_batch_program_fails_before_writing(models_dir, tmp_path, capsys, batch,
                                                         failing):
    path = tmp_path / "m.pt2"
    fixed = _FixedBatch(_build().eval(), batch)
    torch.export.save(torch.export.export(fixed, (torch.rand(batch, 3, 16, 16),)), str(path))
    out = tmp_path / "run"
    assert main([*CLI, "--checkpoint", str(path), "--trust-program", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("segcertify: error: the model fails on ")
    what = "one input" if failing == 1 else f"a batch of {failing} inputs"
    assert what in err and "`--batch-size` 32" in err and "batches of 1, 4, 32" in err
    assert not out.exists()
    if batch == 1:  # the advice works
        small = ["--num-inputs", "1", "--n", "8", "--tau", "0.55", "--batch-size", "1"]
        assert main([*CLI, *small, "--checkpoint", str(path), "--trust-program",
                     "--out", str(out)]) == 0


def test_run_certification_a_model_that_drops_the_batch(tmp_path):
    with pytest.raises(ValueError, match="fails on a batch of 32 inputs .* it returned a batch "
                                         "of 1"):
        runner.run_certification(lambda x: torch.zeros(1, 8, 16, 16), "streets", CFG,
                                 out=tmp_path / "bad", device="cpu")
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- the documented example
DOC = REPO / "docs" / "data-and-models.md"


def _doc_blocks() -> list[tuple[str, str]]:
    import re

    section = DOC.read_text().split("### Your own architecture", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(python|bash)\n(.*?)```", section, flags=re.S)


def test_the_documented_worked_example_runs_as_written(tmp_path, monkeypatch, capsys):
    import contextlib
    import io
    import shlex

    blocks = _doc_blocks()
    assert [kind for kind, _ in blocks] == ["python", "python", "bash"]
    (_, module), (_, script), (_, commands) = blocks
    (tmp_path / "my_models.py").write_text(module)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # what `PYTHONPATH=.` does
    sys.modules.pop("my_models", None)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(script, str(DOC), "exec"), {})
    expected = [line.split("#", 1)[1].split(":")[0].strip() for line in script.splitlines()
                if line.startswith("print(")]
    assert printed.getvalue().splitlines() == expected == ["6", "model `my_models.DilatedSeg`"]
    runs = ["dilated-factory", "dilated-ts", "dilated-exported"]
    for command in commands.replace("\\\n", " ").strip().splitlines():
        argv = shlex.split(command)
        while "=" in argv[0]:  # environment assignments (PYTHONPATH=.)
            argv.pop(0)
        assert argv[0] == ".venv/bin/segcertify"  # as the README installs it
        assert main(argv[1:]) == 0, capsys.readouterr().err
    capsys.readouterr()
    reference = _labels(tmp_path / "runs" / "dilated")
    assert len(reference) == 6
    for run in runs:
        labels = _labels(tmp_path / "runs" / run)
        assert labels.keys() == reference.keys()
        for k in labels:
            np.testing.assert_array_equal(labels[k], reference[k], err_msg=f"{run} {k}")
    sys.modules.pop("my_models", None)


# ---------------------------------------------------------------- your own data set object
class Blobs(torch.utils.data.Dataset):
    """3-class 16 x 16 images whose label is the red channel's third."""

    num_classes = 3

    def __init__(self, size: int = 3, offset: int = 0) -> None:
        self.size, self.offset = size, offset

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(i + self.offset))
        return x, (x[0] * 3).long().clamp(max=2)


class Clouds(torch.utils.data.Dataset):
    num_classes = 4

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(64, 3, generator=torch.Generator().manual_seed(i))
        return x, (x[:, 0] > 0).long()


DATA_CFG = runner.RunConfig(num_inputs=2, sigma=(0.25,), n0=4, n=(64,), tau=(0.55,),
                            alpha=0.05, batch_size=32)


def test_run_certification_with_a_dataset_object_and_resume(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 3, kernel_size=1)
    out = tmp_path / "blobs"
    report = runner.run_certification(model, Blobs(), DATA_CFG, out=out, device="cpu")
    assert report.computed == 4
    blob = json.loads((out / "config.json").read_text())
    assert blob["config"]["dataset"] == "custom:test_user_models.Blobs"
    assert blob["derived"]["dataset_size"] == 3
    rows = runner.summarize(out).rows
    assert [r["method"] for r in rows] == ["base", "certify"]
    assert rows[0]["accuracy"] is not None
    again = runner.run_certification(model, Blobs(), DATA_CFG, out=out, device="cpu")
    assert (again.resumed, again.computed) == (True, 0)
    with pytest.raises(ValueError, match="dataset_fingerprint"):  # other content
        runner.run_certification(model, Blobs(offset=5), DATA_CFG, out=out, device="cpu")


def test_run_certification_with_point_clouds_object(tmp_path):
    model = torch.nn.Linear(3, 4)  # (B, N, 3) -> (B, N, 4)
    report = runner.run_certification(model, Clouds(), DATA_CFG, out=tmp_path / "c",
                                      device="cpu")
    assert report.computed == 4


@pytest.mark.parametrize(("data", "err", "match"), [
    (object(), TypeError, "map-style"),
    ([(torch.rand(3, 4, 4), torch.zeros(4, 4))], TypeError, "num_classes"),
])
def test_dataset_object_errors(tmp_path, data, err, match):
    with pytest.raises(err, match=match):
        runner.run_certification(torch.nn.Conv2d(3, 3, 1), data, DATA_CFG,
                                 out=tmp_path / "x", device="cpu")
