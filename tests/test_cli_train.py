"""``segcertify train`` (issue 20.1): certify's model and data options, the library's
loop (:func:`smoothing.train.train_for_smoothing`) behind :mod:`smoothing.runs.training`.

Tiny runs: 16 x 32 street scenes, 8 inputs, batches of 4, one epoch.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from smoothing.cli import build_parser, main  # noqa: E402
from smoothing.cli import train as cli_train  # noqa: E402
from tests.test_train import kill_after_step  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("torch_one_thread")

SMALL = ["--image-size", "16", "32", "--num-inputs", "8", "--epochs", "1", "--batch-size", "4",
         "--device", "cpu", "--no-progress"]  # fmt: skip
#: a fresh built-in U-Net, small
FRESH_UNET = ["--arch", "unet", "--model-kwargs", '{"width": 4, "depth": 1}', "--sigma", "0.25"]
#: tiny certification of the trained model
CERTIFY_SMALL = ["--num-inputs", "2", "--n0", "4", "--n", "16", "--tau", "0.6",
                 "--alpha", "0.1", "--device", "cpu", "--no-progress"]  # fmt: skip

USER_MODEL = '''
import time
from torch import nn


class Net(nn.Module):
    """A 2-layer conv net; ``delay`` slows every training forward."""

    def __init__(self, classes=8, delay=0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                  nn.Dropout(0.1), nn.Conv2d(6, classes, 1))
        self.delay = delay

    def forward(self, x):
        if self.training and self.delay:
            time.sleep(self.delay)
        return self.body(x)


def make(classes=8, delay=0.0):
    return Net(classes, delay)
'''


def _weights(path: Path) -> dict[str, torch.Tensor]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return dict(blob["state_dict"])


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segcertify: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    (tmp_path / f"{name}.py").write_text(USER_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}:make"


# ------------------------------------------------------------------------ the parser
def test_help_imports_no_torch():
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "smoothing", "train",
                           "--help"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in ("--model", "--model-factory", "--dataset", "--sampler", "--sigma",
                 "--quantize-bits", "--method", "--epochs", "--optimizer", "--schedule",
                 "--m", "--lam", "--eta", "--val-fraction", "--crop", "--checkpoint-every",
                 "--out"):
        assert flag in proc.stdout
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    assert "smoothing.cli.train" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in ("torch", "numpy", "samplers")
                   or m.startswith(("smoothing.runs", "smoothing.train")))
    assert heavy == []


def test_without_torch_one_line_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['torch'] = None; from smoothing.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "train", "--model", "x", "--epochs",
                           "1", "--out", str(tmp_path / "t")], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 2
    assert "pip install 'segcertify[torch]'" in _one_error_line(proc.stderr)
    assert not (tmp_path / "t").exists()


def test_parser_choices_equal_the_library():
    from smoothing.cli._common import SAMPLER_NAMES
    from smoothing.runs.training import TRAIN_SAMPLERS
    from smoothing.train._loop import METHODS, OPTIMIZERS, SCHEDULES

    assert cli_train.METHOD_NAMES == METHODS
    assert cli_train.OPTIMIZER_NAMES == OPTIMIZERS
    assert cli_train.SCHEDULE_NAMES == SCHEDULES
    assert cli_train.TRAIN_SAMPLER_NAMES == TRAIN_SAMPLERS
    assert set(TRAIN_SAMPLERS) <= set(SAMPLER_NAMES)


def test_shares_certify_model_and_data_options():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    groups = {}
    for name in ("certify", "train"):
        groups[name] = {g.title: sorted(a.dest for a in g._group_actions)
                        for g in sub[name]._action_groups if g.title in ("model", "data")}
    assert groups["train"] == groups["certify"] and len(groups["train"]) == 2
    args = parser.parse_args(["train", "--out", "o", "--epochs", "1", "--model", "x"])
    assert args.split is None and args.dataset == "streets"


# ---------------------------------------------------------------- train, certify, resume
def test_train_then_certify_then_rerun_resumes(tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["train", *FRESH_UNET, *SMALL, "--seed", "3", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    final = captured.out.strip().splitlines()[-1]
    assert f"'{out / 'model.pt'}'" in final and "certify it with: segcertify certify" in final
    record = json.loads((out / "train.json").read_text())
    assert record["config"]["split"] == "train" and record["recipe"]["seed"] == 3
    assert record["config"]["model_factory"] == "smoothing.models:SmallUNet"

    # the printed command certifies it (the test split); so does --arch unet
    command = shlex.split(final.split("certify it with: ", 1)[1])
    assert command[:2] == ["segcertify", "certify"] and "--arch" not in command
    assert command[command.index("--checkpoint") + 1] == str(out / "model.pt")
    assert command[command.index("--sigma") + 1] == "0.25"
    cert = tmp_path / "cert"
    command[command.index("--out") + 1] = str(cert)
    assert main([*command[1:], *CERTIFY_SMALL]) == 0
    assert main(["certify", "--checkpoint", str(out / "model.pt"), "--arch", "unet",
                 "--image-size", "16", "32", "--out", str(tmp_path / "cert2"),
                 *CERTIFY_SMALL]) == 0  # sigma: the checkpoint's metadata
    config = json.loads((tmp_path / "cert2" / "config.json").read_text())["config"]
    assert config["sigma"] == [0.25] and config["split"] == "test"
    capsys.readouterr()

    # the same command again: nothing retrained, the same weights
    before = _weights(out / "model.pt")
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "nothing retrained" in captured.out
    assert _same(_weights(out / "model.pt"), before)

    # another recipe in the same folder: one line naming the flag, nothing changed
    assert main([*argv, "--lr", "0.01"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "`--lr`: 0.001 in 'train.json', 0.01 now" in line and "`--out`" in line
    assert _same(_weights(out / "model.pt"), before)


def test_fine_tune_builtin_quantized_consistency(tmp_path, capsys):
    """--model fine-tunes a built-in model at its recorded sigma; the quantized sampler
    trains on the grid; the consistency method with its own --m."""
    out = tmp_path / "q"
    assert main(["train", "--model", "streets-unet-sigma0.25", "--quantize-bits", "8",
                 "--method", "consistency", "--m", "2", "--lam", "5", *SMALL,
                 "--val-fraction", "0", "--out", str(out)]) == 0
    final = capsys.readouterr().out.strip().splitlines()[-1]
    assert "--sigma 0.25 --quantize-bits 8" in final
    meta = torch.load(out / "model.pt", weights_only=True)["metadata"]
    assert meta["sampler"].startswith("Quantized(base=GaussianL2(sigma=0.25")
    assert meta["train"]["recipe"]["method"] == "consistency"
    assert meta["train"]["recipe"]["lam"] == 5.0 and meta["train"]["steps"] == 2


def test_laplace_needs_sigma(tmp_path, capsys):
    out = tmp_path / "l"
    assert main(["train", "--model", "streets-unet-sigma0.25", "--sampler", "laplace",
                 *SMALL, "--out", str(out)]) == 2
    assert "`--sigma` is required" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_model_factory_and_sigkill_resume_bit_identical(tmp_path, monkeypatch, capsys):
    """A CLI training of a user's model, SIGKILLed after a checkpoint_every step and run
    again, ends with the weights of an uninterrupted run, bit for bit (the fresh
    model's initial weights come from --seed)."""
    factory = _user_module(tmp_path, monkeypatch, "cli_train_user_model")
    argv = ["train", "--model-factory", factory, "--model-kwargs",
            '{"classes": 8, "delay": 0.3}', "--sigma", "0.25", "--image-size", "16", "32",
            "--num-inputs", "8", "--epochs", "3", "--batch-size", "4", "--val-fraction",
            "0.25", "--method", "consistency", "--seed", "5", "--checkpoint-every", "1",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)]),
           "OMP_NUM_THREADS": "1"}
    code = ("import sys, torch; torch.set_num_threads(1); from smoothing.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, *argv, "--out", str(killed)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    killed_at = kill_after_step(proc, killed / "train_state.pt", 2)
    assert 2 <= killed_at < 6 and not (killed / "model.pt").exists()

    assert main([*argv, "--out", str(killed)]) == 0  # the same command: resumes
    final = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"resumed at step {killed_at}" in final
    assert f"--model-factory {factory}" in final
    fresh = tmp_path / "fresh"
    assert main([*argv, "--out", str(fresh)]) == 0
    assert _same(_weights(killed / "model.pt"), _weights(fresh / "model.pt"))
    hist = [torch.load(p / "model.pt", weights_only=True)["metadata"]["train"]["history"]
            for p in (killed, fresh)]
    assert [h["train_loss"] for h in hist[0]] == [h["train_loss"] for h in hist[1]]


# ---------------------------------------------------------------------- refusals
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_checkpoint_refused(tmp_path, capsys):
    path = tmp_path / "m.ts"
    torch.jit.script(torch.nn.Conv2d(3, 8, 1)).save(str(path))
    out = tmp_path / "o"
    for extra in ([], ["--trust-program"]):
        assert main(["train", "--checkpoint", str(path), *extra, *SMALL, "--sigma", "0.25",
                     "--out", str(out)]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "TorchScript" in line and "cannot be trained" in line and "`--checkpoint`" in line
    assert not out.exists()


@pytest.mark.parametrize(("extra", "expected"), [
    (["--epochs", "0"], "`--epochs` must be an integer >= 1; got 0."),
    (["--sigma", "0"], "`--sigma` must be finite and > 0"),
    (["--sigma", "-0.5"], "`--sigma` must be finite and > 0"),
    (["--lr", "0"], "`--lr`"),
    (["--lam", "3"], "`--lam` applies to `--method consistency` only"),
    (["--momentum", "0.5"], "`--momentum` applies to `--optimizer sgd` only"),
    (["--method", "consistency", "--m", "1"], "`--m` must be an integer >= 2"),
    (["--val-fraction", "1"], "`--val-fraction`"),
    (["--checkpoint-every", "0"], "`--checkpoint-every` must be an integer >= 1"),
    (["--crop", "64", "64"], "`--crop` = (64, 64) does not fit the first input"),
    (["--dataset", "parts", "--model", "parts-pointnet-sigma0.25", "--quantize-bits", "8"],
     "`--quantize-bits` applies to images"),
    (["--sampler", "rotation-z"], "invalid choice: 'rotation-z'"),
    (["--model", "streets-unet-sigma0.25", "--dataset", "parts"], "has 8 classes"),
])  # fmt: skip
def test_bad_options_one_line_nothing_written(tmp_path, capsys, extra, expected):
    out = tmp_path / "o"
    model = [] if "--model" in extra else ["--model", "streets-unet-sigma0.25"]
    argv = ["train", *model, *SMALL, *extra, "--out", str(out)]  # a later flag wins
    assert main(argv) == 2
    assert expected in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_no_starting_model_refused(tmp_path, capsys):
    assert main(["train", *SMALL, "--sigma", "0.25", "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "needs a starting model" in line and "`--arch` alone" in line


def test_out_checks(tmp_path, capsys):
    file = tmp_path / "f"
    file.write_text("x")
    base = ["train", *FRESH_UNET, *SMALL]
    assert main([*base, "--out", str(file / "sub")]) == 2
    assert "is not a folder" in _one_error_line(capsys.readouterr().err)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main([*base, "--out", str(other)]) == 2
    assert "holds other files (notes.txt)" in _one_error_line(capsys.readouterr().err)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.pt").write_bytes(b"x")
    assert main([*base, "--out", str(foreign)]) == 2
    assert "would replace it" in _one_error_line(capsys.readouterr().err)
    assert (foreign / "model.pt").read_bytes() == b"x"


def test_folder_in_use_is_refused(tmp_path, capsys):
    from smoothing.runs.store import RunLock

    out = tmp_path / "busy"
    with RunLock(out):
        assert main(["train", *FRESH_UNET, *SMALL, "--out", str(out)]) == 2
    assert "in use by another run" in _one_error_line(capsys.readouterr().err)
    assert not (out / "train.json").exists()


@pytest.mark.parametrize("fault", ["ctrl-c", "full disk", "read-only"])
def test_a_fault_at_a_checkpoint_is_one_line_and_the_same_command_finishes(
        tmp_path, monkeypatch, capsys, fault):
    """Ctrl-C, a full disk or a read-only folder at the second state write: one line,
    exit status 2, no traceback; the same command then resumes and ends with the
    weights of a run that was never interrupted."""
    import errno

    from smoothing.train import _loop

    argv = ["train", *FRESH_UNET, *SMALL, "--epochs", "2", "--checkpoint-every", "1"]
    real, calls = _loop.write_state, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            if fault == "ctrl-c":
                raise KeyboardInterrupt
            code = errno.ENOSPC if fault == "full disk" else errno.EROFS
            raise OSError(code, os.strerror(code), str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(_loop, "write_state", failing)
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err  # the progress lines of the first epoch, then the error
    assert "Traceback" not in err and err.count("segcertify: error: ") == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("segcertify: error: ")
    expected = {"ctrl-c": "interrupted (Ctrl-C)", "full disk": "No space left on device",
                "read-only": "Read-only file system"}[fault]
    assert expected in line, line
    assert not (out / "model.pt").exists()

    monkeypatch.setattr(_loop, "write_state", real)
    assert main([*argv, "--out", str(out)]) == 0
    assert "resumed at step 1" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "fresh")]) == 0
    assert _same(_weights(out / "model.pt"), _weights(tmp_path / "fresh" / "model.pt"))
