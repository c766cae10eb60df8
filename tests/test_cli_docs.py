"""The command sequences of docs/cli.md and the Python blocks of docs/cli.md and
docs/distributed.md run as written (issue 13.7).

Sizes are reduced only where the docs give them: ``--num-inputs`` (added when absent)
becomes 2 and every ``--n`` value a tenth (:func:`_fewer`, distinct values stay
distinct) in every certify command and every radius-maps command that samples (not
``--from-run``, which takes its run's inputs), ``num_inputs=`` 2, ``n=`` 32 and the
``-n100`` of a label file name its tenth in the Python blocks; every train command
trains 8 inputs for 1 epoch (``--num-inputs 8 --epochs 1``); every other option is the
documented one, so a command that reuses another run's ``--out`` with other options
fails here as it would for a reader. Blocks that
need a real data set (``--data-root``, except the "your own data" folder example,
whose files the test makes) or several processes (``torchrun``) are left out.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from smoothing.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SMALL_INPUTS = "2"
TRAIN_INPUTS = "8"


def _fewer(n: str) -> str:
    """The sample size a test uses for a documented ``n`` (100 -> 10, 1000 -> 100)."""
    return str(max(8, int(n) // 10))
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _blocks(page: str, lang: str) -> list[str]:
    text = (DOCS / page).read_text()
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def _commands(block: str) -> list[list[str]]:
    """The block's commands (continuations joined, comments dropped) as argv lists."""
    joined = block.replace("\\\n", " ")
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def _runnable(argv: list[str]) -> list[str] | None:
    """``argv`` for this interpreter with fewer inputs, or None for a command left out."""
    if argv[0] == ".venv/bin/segcertify":
        argv = [sys.executable, "-m", "smoothing", *argv[1:]]
    elif argv[:3] == [".venv/bin/python", "-m", "smoothing"]:
        argv = [sys.executable, *argv[1:]]
    else:
        return None
    if argv[3:4] == ["train"]:  # [python, -m, smoothing, COMMAND, ...]
        for flag, value in (("--num-inputs", TRAIN_INPUTS), ("--epochs", "1")):
            if flag in argv:
                argv[argv.index(flag) + 1] = value
            else:
                argv += [flag, value]
        argv += ["--device", "cpu"]
    elif "certify" in argv or ("radius-maps" in argv and "--from-run" not in argv):
        if "--num-inputs" in argv:
            argv[argv.index("--num-inputs") + 1] = SMALL_INPUTS
        else:
            argv += ["--num-inputs", SMALL_INPUTS]
        if "--n" in argv:
            i = argv.index("--n") + 1
            while i < len(argv) and not argv[i].startswith("-"):
                argv[i] = _fewer(argv[i])
                i += 1
        elif "certify" in argv:
            argv += ["--n", _fewer("100")]  # the default, reduced
        argv += ["--device", "cpu"]
    return argv


def test_every_cli_block_uses_the_venv_paths():
    for block in _blocks("cli.md", "bash"):
        for argv in _commands(block):
            assert argv[0].startswith(".venv/bin/"), argv


#: The user's model module of the "Your own data and model" example.
MY_MODELS = """
import torch
from torch import nn


def build(num_classes=3):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))
"""


def _own_data_and_model(folder: Path) -> None:
    """What the "Your own data and model" example of docs/cli.md has beside it:
    ``data/mine`` (5 RGB PNG images and label PNGs: 0 sky, 1 road, 2 car, 255
    unlabelled), ``my_models.py`` and ``weights.pt``."""
    import numpy as np
    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (folder / "data" / "mine" / sub).mkdir(parents=True)
    for i in range(5):
        label = np.zeros((24, 40), np.uint8)
        label[12:] = 1
        label[8:16, 4 * i:4 * i + 10] = 2
        label[0, :3] = 255
        image = (np.stack([label == c for c in range(3)], -1) * 180
                 + rng.integers(0, 60, (24, 40, 3))).astype(np.uint8)
        Image.fromarray(image).save(folder / "data" / "mine" / "images" / f"street_{i}.png")
        Image.fromarray(label).save(folder / "data" / "mine" / "masks" / f"street_{i}.png")
    (folder / "my_models.py").write_text(MY_MODELS)
    namespace: dict[str, object] = {}
    exec(MY_MODELS, namespace)
    torch.manual_seed(0)
    torch.save(namespace["build"]().state_dict(), folder / "weights.pt")  # type: ignore[operator]


def test_cli_md_command_sequence_runs(tmp_path, monkeypatch):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)]),
           "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    _own_data_and_model(tmp_path)  # the files of the folder example
    monkeypatch.syspath_prepend(str(tmp_path))  # `export PYTHONPATH=.` of the example
    sys.modules.pop("my_models", None)
    ran = []
    for block in _blocks("cli.md", "bash"):
        if "torchrun" in block or ("--data-root" in block and "--dataset folder" not in block):
            continue
        for argv in _commands(block):
            run = _runnable(argv)
            if run is None:
                continue
            if not ran:  # the first as a reader runs it: a new process
                proc = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True,
                                      text=True, timeout=600)
                assert proc.returncode == 0, (argv, proc.stderr[-2000:])
            else:  # the rest in this process (the same main(); no torch start-up each)
                err = io.StringIO()
                with contextlib.chdir(tmp_path), contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(err):
                    status = main(run[3:])  # [python, -m, smoothing, ...]
                assert status == 0, (argv, err.getvalue()[-2000:])
            ran.append(argv)
    assert len(ran) >= 4  # the two quick-start forms, the 20-scene grid, the parts run
    assert (tmp_path / "runs" / "streets-20" / "summary.md").exists()
    assert (tmp_path / "runs" / "mine-folder" / "summary.md").exists()  # the folder example
    assert any((tmp_path / "runs" / "mine-maps").rglob("*.npz"))

    # the Python blocks read those runs (and write their own)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for block in _blocks("cli.md", "python"):
            code = re.sub(r"num_inputs=\d+", f"num_inputs={SMALL_INPUTS}", block)
            code = re.sub(r"-n(\d+)\.npz", lambda m: f"-n{_fewer(m.group(1))}.npz", code)
            exec(compile(code, "docs/cli.md", "exec"), {"__name__": "__docs__"})
    finally:
        os.chdir(cwd)
    assert (tmp_path / "runs" / "streets-py" / "summary.md").exists()
    for run in ("streets-py", "mine"):  # every tau of the examples can certify at their n
        from smoothing.runs import summarize

        rows = [r for r in summarize(tmp_path / "runs" / run).rows if r["method"] != "base"]
        assert len(rows) == 2 and all(r["abstain_pct"] < 100 for r in rows), rows


@pytest.mark.parametrize("index", [0, 1])
def test_distributed_md_python_blocks_run(index, monkeypatch, tmp_path):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    blocks = _blocks("distributed.md", "python")
    assert len(blocks) >= 2
    code = re.sub(r"\bn=[\d_]+", "n=32", blocks[index])
    namespace: dict[str, object] = {"__name__": "__docs__"}
    exec(compile(code, "docs/distributed.md", "exec"), namespace)
    if index == 0:
        assert sorted(namespace["certified"]) == [0, 1]  # type: ignore[call-overload]
    else:
        assert len(namespace["records"]) == 4  # type: ignore[arg-type]
