"""Files on disk are untrusted (issue 19, items 1 and 8).

Checkpoints: a crafted exported program or TorchScript file runs code when torch
loads it; it must not be loaded without ``trust_program`` (``--trust-program``), and
a weights reader must never hand it to torch. Each crafted file is first shown to
run its payload when trusted, so the refusal tests test something real.

Data roots: every file a reader opens must lie inside the root once symbolic links
are resolved, unless ``follow_symlinks``; list files cannot name ``..`` or absolute
paths. Links that stay inside the root are fine.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smoothing.cli import main
from smoothing.datasets import Cityscapes, PascalContext59, ShapeNetPart
from smoothing.models import build_model, load_checkpoint, save_checkpoint, user

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CLI = ["--dataset", "streets", "--image-size", "16", "16", "--num-inputs", "1",
       "--sigma", "0.25", "--n0", "4", "--n", "16", "--alpha", "0.05", "--batch-size", "16",
       "--device", "cpu", "--no-progress"]  # fmt: skip


# ------------------------------------------------------------------ crafted checkpoints
class _Mkdir:
    """Unpickling this creates the folder ``path``: the stand-in for any shell command."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def _exported(path: Path) -> Path:
    model = torch.nn.Conv2d(3, 8, 1).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (torch.rand(2, 3, 4, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def _evil_exported(path: Path, marker: Path) -> Path:
    """An exported program whose weight is marked as pickled and holds a payload:
    ``torch.export.load`` opens it with ``weights_only=False``."""
    with zipfile.ZipFile(_exported(path.with_name("clean.pt2"))) as z:
        entries = {info: z.read(info.filename) for info in z.infolist()}
    config_info = next(i for i in entries if i.filename.endswith("model_weights_config.json"))
    config = json.loads(entries[config_info])
    payload = next(iter(config["config"].values()))
    payload["use_pickle"] = True
    entries[config_info] = json.dumps(config).encode()
    weight_info = next(i for i in entries
                       if i.filename.endswith("weights/" + payload["path_name"]))
    entries[weight_info] = pickle.dumps(_Mkdir(marker))
    with zipfile.ZipFile(path, "w") as z:
        for info, data in entries.items():
            z.writestr(info, data)
    return path


def _evil_torchscript(path: Path, marker: Path) -> Path:
    """A TorchScript model whose ``__setstate__`` writes ``marker`` while it is loaded
    (``aten::save`` writes any file; ``aten::from_file(shared=True)`` can rewrite one)."""
    class Writer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k = torch.ones(1)
            self.target = str(marker)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.repeat(1, 3, 1, 1)[:, :8] * self.k

        @torch.jit.export
        def __getstate__(self) -> tuple[torch.Tensor, bool, str]:
            return self.k, self.training, self.target

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, bool, str]) -> None:
            torch.ops.aten.save(state[0], state[2])
            self.k, self.training, self.target = state

    torch.jit.script(Writer()).save(str(path))
    assert not marker.exists()  # scripting and saving ran nothing
    return path


@pytest.fixture(params=["exported", "torchscript"])
def evil(request, tmp_path):
    """(crafted program file, the path its payload creates)."""
    marker = tmp_path / "payload-ran"
    if request.param == "exported":
        return _evil_exported(tmp_path / "model.pt", marker), marker
    return _evil_torchscript(tmp_path / "model.pt", marker), marker


def test_a_crafted_program_runs_its_payload_only_when_trusted(evil):
    path, marker = evil
    with pytest.raises(ValueError, match=r"model\.pt' is an? .*program.*`trust_program`"):
        user.load_user_model(checkpoint=path)
    assert not marker.exists()
    # trusted: the payload runs (so the file above was a real threat)
    with contextlib.suppress(ValueError):  # the crafted exported weight is no tensor
        user.load_user_model(checkpoint=path, trust_program=True)
    assert marker.exists()


@pytest.mark.parametrize("command", ["certify", "radius-maps"])
def test_the_cli_refuses_a_crafted_program_without_the_opt_in(evil, tmp_path, capsys,
                                                               command):
    path, marker = evil
    assert main([command, *CLI, "--checkpoint", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "model.pt' is a" in err and "trust" in err and "Traceback" not in err
    assert not marker.exists()


def test_weights_readers_never_hand_a_program_to_torch(evil):
    path, marker = evil
    with pytest.raises(ValueError, match=r"model\.pt' is an? .*program.*not a weights file"):
        load_checkpoint(path, arch="unet")
    with pytest.raises(ValueError, match="not a weights file"):
        user.load_weights(torch.nn.Conv2d(3, 8, 1), path)
    assert not marker.exists()


def test_a_torchscript_archive_is_recognised_as_torch_does_it(tmp_path):
    """torch.load sends any zip holding constants.pkl to torch.jit.load; so do we refuse."""
    path = tmp_path / "w.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/constants.pkl", pickle.dumps(()))
        z.writestr("archive/data.pkl", pickle.dumps({}))
    assert user.checkpoint_kind(path) == "torchscript"
    with pytest.raises(ValueError, match="not a weights file"):
        load_checkpoint(path, arch="unet")


def test_a_damaged_zip_is_one_value_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.pt"
    torch.save({"w": torch.ones(3)}, path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"PK\x01\x02", b"PK\x00\x00"))  # central directory
    for load in (user.checkpoint_kind, lambda p: load_checkpoint(p, arch="unet"),
                 lambda p: user.load_user_model(checkpoint=p, trust_program=True)):
        with pytest.raises(ValueError, match=r"broken\.pt' cannot be read"):
            load(path)
    path.write_bytes(data[: len(data) - 30])  # cut short: no longer a zip at all
    with pytest.raises(ValueError, match=r"broken\.pt' is not a readable weights file"):
        load_checkpoint(path, arch="unet")


def test_trusted_programs_still_load_and_compute(tmp_path):
    model = torch.nn.Conv2d(3, 8, 1).eval()
    torch.jit.script(model).save(str(tmp_path / "m.ts"))
    x = torch.rand(2, 3, 4, 4)
    for path in (tmp_path / "m.ts", _exported(tmp_path / "m.pt2")):
        loaded, sha, description = user.load_user_model(checkpoint=path, trust_program=True)
        assert len(sha) == 64 and path.name in description
    assert torch.allclose(user.load_user_model(checkpoint=tmp_path / "m.ts",
                                               trust_program=True)[0](x), model(x))


# ------------------------------------------------- checkpoint content that lies
@pytest.mark.parametrize(("edit", "match"), [
    (lambda b: b["arch_kwargs"].update(width=10**6), "disagree with its tensors"),
    (lambda b: b.update(arch=["unet"]), "its arch"),
    (lambda b: b["arch_kwargs"].update(bogus=1), "disagree with its tensors"),
    (lambda b: b.update(metadata=[1, 2]), "metadata"),
])
def test_a_checkpoint_that_lies_about_itself_is_one_value_error(tmp_path, edit, match):
    """A file asking for a million-channel U-Net would allocate terabytes before any
    check; its tensors, not its words, now say how big the model is."""
    path = save_checkpoint(build_model("unet", num_classes=3, width=4, depth=1),
                           tmp_path / "c.pt")
    blob = torch.load(path, weights_only=True)
    edit(blob)
    torch.save(blob, path)
    with pytest.raises(ValueError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------ data roots
def _rgb(path: Path, shape=(2, 3)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*shape, 3), 90, dtype=np.uint8)).save(path)


def _gray(path: Path, value: int, shape=(2, 3)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode="L").save(path)


@pytest.fixture
def outside(tmp_path):
    """A folder next to the data roots, with files a crafted root may point at."""
    folder = tmp_path / "outside"
    _rgb(folder / "secret.jpg")
    _rgb(folder / "secret.png")
    _gray(folder / "secret_label.png", 5)
    (folder / "list.txt").write_text("a\n")
    return folder


@pytest.fixture
def pascal(tmp_path):
    root = tmp_path / "voc"
    for name in ("a", "b"):
        _rgb(root / "JPEGImages" / f"{name}.jpg")
        _gray(root / "SegmentationClassContext" / f"{name}.png", 3)
    (root / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (root / "ImageSets" / "SegmentationContext" / "val.txt").write_text("a\nb\n")
    return root


def _link(link: Path, target: Path) -> None:
    """Replace ``link`` (a file or folder) by a symbolic link to ``target``."""
    if link.is_dir():
        for child in link.iterdir():
            child.unlink()
        link.rmdir()
    else:
        link.unlink(missing_ok=True)
    link.symlink_to(target, target_is_directory=target.is_dir())


@pytest.mark.parametrize(("inside", "target"), [
    ("JPEGImages/b.jpg", "secret.jpg"),
    ("SegmentationClassContext/b.png", "secret_label.png"),
    ("JPEGImages", "."),  # the whole image folder
    ("ImageSets/SegmentationContext/val.txt", "list.txt"),
])
def test_pascal_symlinks_out_of_the_root_are_refused(pascal, outside, inside, target):
    if inside == "JPEGImages":
        _rgb(outside / "a.jpg")
        _rgb(outside / "b.jpg")
    _link(pascal / inside, outside / target)
    with pytest.raises(ValueError, match="outside the data root.*`follow_symlinks`"):
        PascalContext59(pascal)
    if inside.endswith("val.txt"):
        return  # the list names 'a' only; following it is shown below
    ds = PascalContext59(pascal, follow_symlinks=True)  # the opt-in reads them
    assert ds[1].image.shape == (3, 2, 3)


def test_pascal_follow_symlinks_keeps_the_list_checks(pascal):
    (pascal / "ImageSets" / "SegmentationContext" / "val.txt").write_text("../../x\n")
    with pytest.raises(ValueError, match="outside the data root"):
        PascalContext59(pascal, follow_symlinks=True)


def test_pascal_symlinks_inside_the_root_are_fine(pascal, tmp_path):
    shared = pascal / "shared"
    shared.mkdir()
    (pascal / "JPEGImages" / "b.jpg").rename(shared / "b.jpg")
    (pascal / "JPEGImages" / "b.jpg").symlink_to(Path("..") / "shared" / "b.jpg")
    ds = PascalContext59(pascal)
    assert ds.images[1] == shared.resolve() / "b.jpg" and ds[1].label.shape == (2, 3)
    # a root that is itself a link is confined to where it leads
    alias = tmp_path / "alias"
    alias.symlink_to(pascal, target_is_directory=True)
    assert len(PascalContext59(alias)) == 2


@pytest.fixture
def cityscapes(tmp_path):
    root = tmp_path / "cityscapes"
    for city in ("aachen", "bremen"):
        stem = f"{city}_000000_000019"
        _rgb(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png")
        _gray(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", 7)
    return root


def test_cityscapes_symlinked_city_folder_out_of_the_root_is_refused(cityscapes, outside):
    elsewhere = outside / "bremen"
    _rgb(elsewhere / "bremen_000000_000019_leftImg8bit.png")
    _link(cityscapes / "leftImg8bit" / "val" / "bremen", elsewhere)
    with pytest.raises(ValueError, match=r"Cityscapes image .*bremen.*outside the data root"):
        Cityscapes(cityscapes)
    assert len(Cityscapes(cityscapes, follow_symlinks=True)) == 2


def test_cityscapes_symlinked_label_out_of_the_root_is_refused(cityscapes, outside):
    label = cityscapes / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    _link(label, outside / "secret_label.png")
    with pytest.raises(ValueError, match=r"Cityscapes label .*outside the data root"):
        Cityscapes(cityscapes)
    assert Cityscapes(cityscapes, follow_symlinks=True)[0].label.shape == (2, 3)


def test_cityscapes_symlinked_city_folder_inside_the_root_is_fine(cityscapes):
    city = cityscapes / "leftImg8bit" / "val" / "bremen"
    mirror = cityscapes / "mirror" / "bremen"
    mirror.parent.mkdir()
    city.rename(mirror)
    city.symlink_to(Path("..") / ".." / "mirror" / "bremen", target_is_directory=True)
    ds = Cityscapes(cityscapes)
    assert len(ds) == 2 and ds.images[1].parent == mirror.resolve()


@pytest.fixture
def shapenet(tmp_path, rng):
    root = tmp_path / "shapenet"
    (root / "train_test_split").mkdir(parents=True)
    (root / "synsetoffset2category.txt").write_text("Mug\t03797390\n")
    rows = np.column_stack([rng.normal(size=(8, 6)), np.full(8, 36)])
    (root / "03797390").mkdir()
    np.savetxt(root / "03797390" / "m1.txt", rows)
    (root / "train_test_split" / "shuffled_test_file_list.json").write_text(
        json.dumps(["shape_data/03797390/m1"]))
    return root


@pytest.mark.parametrize("synset", ["..", "../outside", "/etc", "..\\..\\x", "C:x", "a/b"])
def test_shapenet_category_map_cannot_leave_the_root(shapenet, synset):
    (shapenet / "synsetoffset2category.txt").write_text(f"Mug\t{synset}\n")
    lst = shapenet / "train_test_split" / "shuffled_test_file_list.json"
    lst.write_text(json.dumps([f"shape_data/{synset}/m1"]))
    with pytest.raises(ValueError, match=r"synsetoffset2category\.txt' names"):
        ShapeNetPart(shapenet, follow_symlinks=True)


@pytest.mark.parametrize("entry", ["shape_data/03797390/..", "shape_data/../03797390",
                                   "03797390/C:..", 5, "no-slash"])
def test_shapenet_split_list_entries_cannot_leave_the_root(shapenet, entry):
    lst = shapenet / "train_test_split" / "shuffled_test_file_list.json"
    lst.write_text(json.dumps([entry]))
    with pytest.raises(ValueError, match=r"shuffled_test_file_list\.json"):
        ShapeNetPart(shapenet)


def test_shapenet_symlinked_shape_file_or_folder_out_of_the_root(shapenet, outside):
    np.savetxt(outside / "m1.txt", np.loadtxt(shapenet / "03797390" / "m1.txt"))
    _link(shapenet / "03797390" / "m1.txt", outside / "m1.txt")
    with pytest.raises(ValueError, match="ShapeNet shape .*outside the data root"):
        ShapeNetPart(shapenet)
    assert ShapeNetPart(shapenet, num_points=4, follow_symlinks=True)[0].points.shape == (4, 6)
    _link(shapenet / "03797390", outside)  # the whole category folder
    with pytest.raises(ValueError, match="outside the data root"):
        ShapeNetPart(shapenet)


@pytest.mark.parametrize(("content", "match"), [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b"[1, 2", "not valid JSON"),
    (b'{"a": 1}', "must hold a JSON list"),
])
def test_shapenet_bad_split_list_is_one_value_error_naming_it(shapenet, content, match):
    lst = shapenet / "train_test_split" / "shuffled_test_file_list.json"
    lst.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        ShapeNetPart(shapenet)
    assert str(lst.resolve()) in str(info.value)


def test_shapenet_bad_shape_file_is_one_value_error_naming_it(shapenet):
    (shapenet / "03797390" / "m1.txt").write_text("1 2 x\n")
    with pytest.raises(ValueError, match=r"m1\.txt'"):
        ShapeNetPart(shapenet)[0]


# ------------------------------------------------------------------ the CLI opt-in
def test_the_cli_loads_a_trusted_program_with_the_flag(tmp_path):
    torch.jit.script(torch.nn.Conv2d(3, 8, 1)).save(str(tmp_path / "m.ts"))
    assert main(["certify", *CLI, "--tau", "0.6", "--checkpoint", str(tmp_path / "m.ts"),
                 "--trust-program", "--out", str(tmp_path / "o")]) == 0
