"""Your data and your model from the command line: ``--dataset folder``, a model
factory, ``--output-key`` and a trained checkpoint's metadata (issue 20, part 2)."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from smoothing.cli import main
from smoothing.datasets import FolderDataset
from smoothing.runs import RunConfig
from smoothing.runs._checks import digest

pytestmark = pytest.mark.usefixtures("torch_one_thread")

#: a 3-class model of the user's (not built in): one returns logits, one a dict, one a tuple
MODULE = textwrap.dedent('''
    import torch
    from torch import nn


    class Tiny(nn.Module):
        def __init__(self, num_classes=3):
            super().__init__()
            self.conv = nn.Conv2d(3, num_classes, 1)

        def forward(self, x):
            return self.conv(x)


    class DictOut(Tiny):
        def forward(self, x):
            return {"aux": -self.conv(x), "out": self.conv(x)}


    class TupleOut(Tiny):
        def forward(self, x):
            return self.conv(x), x


    def build(num_classes=3):
        torch.manual_seed(0)
        return Tiny(num_classes)


    def build_dict():
        torch.manual_seed(0)
        return DictOut()


    def build_tuple():
        torch.manual_seed(0)
        return TupleOut()
''')

FAST = ["--sigma", "0.25", "--n0", "4", "--n", "20", "--tau", "0.6", "--alpha", "0.1",
        "--batch-size", "20", "--device", "cpu", "--no-progress"]


def _folder(root, n=5, h=8, w=12):
    """``n`` RGB images with 3-class PNG masks (sky, road, a car) under ``root``."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        label = np.zeros((h, w), np.uint8)
        label[h // 2:] = 1
        label[2:6, i:i + 4] = 2
        pixels = np.stack([label == c for c in range(3)], -1) * 200
        pixels = (pixels + rng.integers(0, 50, (h, w, 3))).astype(np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"im{i}.png")
        Image.fromarray(label).save(root / "masks" / f"im{i}.png")
    return root


@pytest.fixture
def data(tmp_path):
    return _folder(tmp_path / "data")


@pytest.fixture
def factory(tmp_path, monkeypatch):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "own_models_cli.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("own_models_cli", None)
    yield "own_models_cli"
    sys.modules.pop("own_models_cli", None)


def _certify(data, out, *extra, model="own_models_cli:build", fast=FAST):
    return main(["certify", "--dataset", "folder", "--data-root", str(data),
                 "--num-classes", "3", "--model-factory", model, *fast, "--out", str(out),
                 *extra])


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segcertify: error: "), err
    return err[0]


def test_folder_and_factory_end_to_end_resume_and_move(data, factory, tmp_path, capsys):
    out = tmp_path / "run"
    assert _certify(data, out, "--class-names", "sky", "road", "car") == 0
    captured = capsys.readouterr()
    assert "10 (input, grid point) pairs computed" in captured.err
    assert "dataset `folder` · sampler" in captured.out  # no split to show
    blob = json.loads((out / "config.json").read_text())
    config, derived = blob["config"], blob["derived"]
    assert config["dataset"] == "folder" and config["split"] is None
    assert (config["num_classes"], config["ignore_index"], config["channels"]) == (3, 255, 3)
    assert config["class_names"] == ["sky", "road", "car"] and "output_key" not in config
    assert derived["dataset_fingerprint"] == FolderDataset(data, 3).fingerprint()
    assert derived["dataset_size"] == 5 and len(list((out / "labels").glob("*.npz"))) == 10

    # the same command resumes and skips everything
    assert _certify(data, out, "--class-names", "sky", "road", "car") == 0
    assert "0 (input, grid point) pairs computed, 10 were already done" in capsys.readouterr().err
    # a moved folder is the same data (data_root is a location); names are not compared
    moved = data.rename(tmp_path / "moved")
    assert _certify(moved, out) == 0
    assert "0 (input, grid point) pairs computed, 10 were already done" in capsys.readouterr().err

    # a changed mask file: the data changed, the resume is refused in one line
    label = np.asarray(Image.open(moved / "masks" / "im3.png")).copy()
    label[0, 0] = 1
    Image.fromarray(label).save(moved / "masks" / "im3.png")
    assert _certify(moved, out) == 2
    line = _error(capsys)
    assert "the data changed since the run started" in line and "`--data-root`" in line
    assert "`dataset_fingerprint`" in line


def test_new_options_stay_out_of_old_configs_and_digests():
    old = RunConfig().to_dict()
    for name in ("num_classes", "ignore_index", "class_names", "channels", "output_key"):
        assert name not in old
    blob = {"format": "segcertify.run", "kind": "certify", "config": old, "derived": {}}
    with_none = {**blob, "config": {**old, "num_classes": None, "output_key": None}}
    assert digest(blob) == digest(with_none)


@pytest.mark.parametrize("change, extra, message", [
    (lambda d: (d / "masks" / "im2.png").unlink(), [], r"image '.*im2\.png' has no mask"),
    (lambda d: Image.fromarray(np.full((8, 12), 7, np.uint8)).save(d / "masks" / "im4.png"),
     [], r"label file '.*im4\.png' holds label 7; labels must be 0\.\.2"),
    (lambda d: Image.fromarray(np.zeros((8, 11), np.uint8)).save(d / "masks" / "im1.png"),
     [], r"label file '.*im1\.png' is 8 x 11 but its image"),
    (None, ["--num-classes", "1"], r"`--num-classes` must be an integer in \[2, 255\]; got 1"),
    (None, ["--ignore-index", "2"], r"`--ignore-index` must not be a class \(0\.\.2\)"),
    (None, ["--class-names", "a", "b"], r"`--class-names` must be 3 non-empty names"),
    (None, ["--channels", "0"], r"`--channels` must be an integer in \[1, 1024\]"),
    (None, ["--split", "../x"], r"`--split` must be a folder name inside the data root"),
])
def test_folder_errors_are_one_line_naming_the_file(data, factory, tmp_path, capsys, change,
                                                    extra, message):
    if change is not None:
        change(data)
    out = tmp_path / "run"
    assert _certify(data, out, *extra) == 2
    import re

    assert re.search(message, _error(capsys))
    assert not out.exists()  # everything is checked before anything is written


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "streets", "--num-classes", "3"],
     "`--num-classes` applies to dataset 'folder' only"),
    (["--dataset", "streets", "--class-names", "a", "b"],
     "`--class-names` applies to dataset 'folder' only"),
    (["--dataset", "folder", "--data-root", "DATA"], "dataset 'folder' needs `--num-classes`"),
    (["--dataset", "folder", "--num-classes", "3"], "dataset 'folder' needs `--data-root`"),
])
def test_folder_options_are_checked(data, tmp_path, capsys, argv, message):
    argv = [str(data) if a == "DATA" else a for a in argv]
    out = tmp_path / "run"
    assert main(["certify", *argv, *FAST, "--out", str(out)]) == 2
    assert message in _error(capsys)
    assert not out.exists()


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_symlink_out_of_the_root_needs_follow_symlinks(data, factory, tmp_path, capsys):
    outside = _folder(tmp_path / "outside", n=1)
    os.symlink(outside / "images" / "im0.png", data / "images" / "z.png")
    os.symlink(outside / "masks" / "im0.png", data / "masks" / "z.png")
    out = tmp_path / "run"
    assert _certify(data, out, "--num-inputs", "1") == 2
    line = _error(capsys)
    assert "z.png" in line and "outside the data root" in line and "`--follow-symlinks`" in line
    assert _certify(data, out, "--num-inputs", "1", "--follow-symlinks") == 0
    blob = json.loads((out / "config.json").read_text())
    assert blob["derived"]["dataset_size"] == 6


def test_output_key_selects_the_logits(data, factory, tmp_path, capsys):
    fast = [*FAST, "--num-inputs", "1"]
    assert _certify(data, tmp_path / "a", model="own_models_cli:build_dict", fast=fast) == 2
    line = _error(capsys)
    assert "returns a dict with keys ['aux', 'out']" in line and "`--output-key out`" in line
    assert not (tmp_path / "a").exists()
    assert _certify(data, tmp_path / "a", "--output-key", "out",
                    model="own_models_cli:build_dict", fast=fast) == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"][
        "output_key"] == "out"
    assert _certify(data, tmp_path / "b", "--output-key", "0",
                    model="own_models_cli:build_tuple", fast=fast) == 0
    capsys.readouterr()
    # the same weights and logits: the same labels, whatever the wrapping
    for name in ("000000-base.npz", "000000-sigma0.25-tau0.6-n20.npz"):
        with np.load(tmp_path / "a" / "labels" / name) as a, \
                np.load(tmp_path / "b" / "labels" / name) as b:
            assert np.array_equal(a["labels"], b["labels"])
    # the output key is part of the run's identity
    assert _certify(data, tmp_path / "a", "--output-key", "aux",
                    model="own_models_cli:build_dict", fast=fast) == 2
    assert "`--output-key` \"out\" -> \"aux\"" in _error(capsys)
    assert _certify(data, tmp_path / "c", "--output-key", "5",
                    model="own_models_cli:build_tuple", fast=fast) == 2
    assert "output key '5' does not index the model's tuple of 2 items" in _error(capsys)


def test_trained_checkpoint_metadata_is_shown_recorded_and_gives_sigma(data, factory,
                                                                       tmp_path, capsys):
    import own_models_cli

    from samplers import GaussianL2
    from smoothing.train import save_weights

    # the weights file and metadata of train_for_smoothing (tests/test_train.py trains)
    fingerprint = FolderDataset(data, 3).fingerprint()
    weights = save_weights(own_models_cli.build(), tmp_path / "model.pt", {
        "sigma": 0.3, "sampler": repr(GaussianL2(0.3)),
        "train": {"method": "noise", "epochs": 1, "seed": 0, "data_fingerprint": fingerprint,
                  "history": [{"epoch": 1, "val_accuracy": float("nan")}]}})
    fast = [a for a in FAST if a not in ("--sigma", "0.25")] + ["--num-inputs", "2"]
    out = tmp_path / "run"
    assert _certify(data, out, "--checkpoint", str(weights), fast=fast) == 0
    err = capsys.readouterr().err.splitlines()
    line = next(e for e in err if "was trained with" in e)
    assert line == (f"segcertify: checkpoint 'model.pt' was trained with method noise, sampler "
                    f"GaussianL2, sigma 0.3, 1 epoch, seed 0, data {fingerprint[:12]} (= this "
                    "run's data: certificates on the training data); --sigma defaults to "
                    "its 0.3")
    blob = json.loads((out / "config.json").read_text())
    assert blob["config"]["sigma"] == [0.3]
    meta = blob["checkpoint_metadata"]
    assert meta["sigma"] == 0.3 and meta["train"]["method"] == "noise"
    assert meta["train"]["history"] == [{"epoch": 1, "val_accuracy": None}]  # JSON-safe
    # shown, not compared: the digest does not cover it
    assert digest({**blob, "checkpoint_metadata": {}}) == blob["digest"]
    # with --sigma given, the line does not speak of a default
    assert _certify(data, tmp_path / "run2", "--checkpoint", str(weights),
                    "--sigma", "0.5", fast=fast) == 0
    line = next(e for e in capsys.readouterr().err.splitlines() if "was trained with" in e)
    assert "defaults" not in line


def test_builtin_architecture_checkpoint_metadata(data, tmp_path, capsys):
    from smoothing.models import SmallUNet, save_checkpoint

    path = save_checkpoint(SmallUNet(3, width=4), tmp_path / "unet.pt",
                           metadata={"sigma": 0.2, "epochs": 4})
    fast = [a for a in FAST if a not in ("--sigma", "0.25")] + ["--num-inputs", "1"]
    assert main(["certify", "--dataset", "folder", "--data-root", str(data), "--num-classes",
                 "3", "--checkpoint", str(path), *fast, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert ("checkpoint 'unet.pt' was trained with sigma 0.2, 4 epochs; --sigma defaults to "
            "its 0.2") in err
    blob = json.loads((tmp_path / "run" / "config.json").read_text())
    assert blob["config"]["sigma"] == [0.2] and blob["config"]["arch"] == "unet"


def test_radius_maps_of_a_folder(data, factory, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["radius-maps", "--dataset", "folder", "--data-root", str(data),
                 "--num-classes", "3", "--model-factory", "own_models_cli:build", *FAST,
                 "--num-inputs", "2", "--no-figures", "--out", str(out)]) == 0
    assert "2 radius maps computed" in capsys.readouterr().err
    rows = (out / "radius_maps.csv").read_text().splitlines()
    assert len(rows) == 3
    blob = json.loads((out / "config.json").read_text())
    assert blob["kind"] == "radius_maps"
    assert blob["derived"]["dataset_fingerprint"] == FolderDataset(data, 3).fingerprint()
    # a certify run of the folder, then maps from its counts
    run = tmp_path / "run"
    assert _certify(data, run, "--num-inputs", "2") == 0
    assert main(["radius-maps", "--from-run", str(run), "--no-figures", "--no-progress",
                 "--device", "cpu", "--out", str(tmp_path / "maps2")]) == 0
    assert "2 from the counts of" in capsys.readouterr().err
    # folder options given beside --from-run must be the run's
    maps3 = ["radius-maps", "--from-run", str(run), "--no-figures", "--no-progress",
             "--device", "cpu", "--dataset", "folder"]
    assert main([*maps3, "--num-classes", "3", "--out", str(tmp_path / "maps3")]) == 0
    capsys.readouterr()
    assert main([*maps3, "--num-classes", "4", "--out", str(tmp_path / "maps4")]) == 2
    assert "`--num-classes` 4 differs from the 3 of the run" in _error(capsys)


def test_default_sigma_only_from_the_same_sampler():
    import torch

    from smoothing.runs.loading import default_sigma

    model = torch.nn.Identity()
    gauss = {"sigma": 0.3, "sampler": "GaussianL2(sigma=0.3, point_cloud=False)"}
    assert default_sigma(RunConfig(), model, gauss) == (0.3,)
    quantized = {"sigma": 0.3, "sampler": "Quantized(base=GaussianL2(sigma=0.3), bits=8)"}
    assert default_sigma(RunConfig(), model, quantized) == (0.3,)
    assert default_sigma(RunConfig(), model, {"sigma": 0.5}) == (0.5,)  # built-in: Gaussian
    rotation = {"sigma": 0.1, "sampler": "RotationZ(sigma=0.1, axis='z')"}
    with pytest.raises(ValueError, match="`sigma` is required"):
        default_sigma(RunConfig(), model, rotation)
    assert default_sigma(RunConfig(sampler="rotation-z"), model, rotation) == (0.1,)
    with pytest.raises(ValueError, match="`sigma` is required"):
        default_sigma(RunConfig(), model, {"sigma": float("nan")})


def test_train_on_a_folder_with_an_output_key_then_certify_the_checkpoint(data, factory,
                                                                          tmp_path, capsys):
    """``train`` takes the folder and ``--output-key`` through the same options and
    loaders as ``certify``; its weights load into the factory's model for ``certify``."""
    trained = tmp_path / "trained"
    assert main(["train", "--dataset", "folder", "--data-root", str(data), "--num-classes",
                 "3", "--model-factory", "own_models_cli:build_dict", "--output-key", "out",
                 "--sigma", "0.25", "--epochs", "1", "--batch-size", "2", "--val-fraction",
                 "0.2", "--device", "cpu", "--no-progress", "--out", str(trained)]) == 0
    said = capsys.readouterr().out
    assert "segcertify certify" in said and "--output-key out" in said, said
    out = tmp_path / "run"
    assert _certify(data, out, "--checkpoint", str(trained / "model.pt"), "--output-key",
                    "out", model="own_models_cli:build_dict",
                    fast=[a for a in FAST if a not in ("--sigma", "0.25")]) == 0
    err = capsys.readouterr().err
    assert "was trained with method noise" in err and "--sigma defaults to" in err, err
    blob = json.loads((out / "config.json").read_text())
    assert blob["config"]["sigma"] == [0.25] and blob["config"]["output_key"] == "out"
    assert blob["checkpoint_metadata"]["train"]["method"] == "noise"
    # the folder without --num-classes is one line for train too
    assert main(["train", "--dataset", "folder", "--data-root", str(data),
                 "--model-factory", "own_models_cli:build", "--sigma", "0.25", "--epochs", "1",
                 "--out",
                 str(tmp_path / "t2")]) == 2
    assert "`--num-classes`" in _error(capsys)
    assert not (tmp_path / "t2").exists()
