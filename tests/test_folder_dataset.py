"""FolderDataset: plain folders of images and label maps, validated, confined to the root."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from smoothing.datasets import IGNORE_INDEX, FolderDataset


def _tree(root, names=("a", "b"), *, mask_suffix=".png", h=4, w=6):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / "images" / f"{name}.png")
        label = (np.arange(h * w).reshape(h, w) + k) % 3
        if mask_suffix == ".png":
            Image.fromarray(label.astype(np.uint8)).save(root / "masks" / f"{name}.png")
        else:
            np.save(root / "masks" / f"{name}.npy", label)
    return root


def test_reads_pairs_by_stem_in_order(tmp_path):
    ds = FolderDataset(_tree(tmp_path, ("b", "a")), num_classes=3)
    assert len(ds) == 2 and [p.stem for p, _ in ds.files] == ["a", "b"]
    image, label = ds[1]
    raw = np.asarray(Image.open(tmp_path / "images" / "b.png"), dtype=np.float32) / 255
    assert image.dtype == torch.float32 and image.shape == (3, 4, 6)
    np.testing.assert_allclose(image.numpy(), raw.transpose(2, 0, 1))
    assert label.dtype == torch.int64
    assert torch.equal(label, torch.from_numpy(np.arange(24).reshape(4, 6) % 3))  # k = 0
    assert ds.classes == ("0", "1", "2") and ds[-1][1].shape == (4, 6)


def test_tiff_npy_images_and_ignore_index_mapped_to_255(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    img16 = np.full((3, 5), 65535, np.uint16)
    tifffile.imwrite(tmp_path / "images" / "t.tif", img16)
    np.save(tmp_path / "images" / "u.npy", np.full((3, 5), 0.25, np.float32))
    mask = np.array([[0, 1, -1, 1, 0]] * 3, np.int16)
    tifffile.imwrite(tmp_path / "masks" / "t.tiff", mask)
    np.save(tmp_path / "masks" / "u.npy", mask)
    ds = FolderDataset(tmp_path, num_classes=2, ignore_index=-1, channels=1)
    (x, y), (x2, _) = ds[0], ds[1]
    assert x.shape == (1, 3, 5) and float(x.max()) == 1.0 and float(x2[0, 0, 0]) == 0.25
    assert y[0].tolist() == [0, 1, IGNORE_INDEX, 1, 0]


def test_resize(tmp_path):
    ds = FolderDataset(_tree(tmp_path), num_classes=3, size=(2, 3))
    x, y = ds[0]
    assert x.shape == (3, 2, 3) and y.shape == (2, 3)


def test_split_folders(tmp_path):
    _tree(tmp_path / "train", ("a",))
    _tree(tmp_path / "val", ("b", "c"))
    assert len(FolderDataset(tmp_path, 3, split="val")) == 2
    with pytest.raises(ValueError, match="`split` must be a folder name"):
        FolderDataset(tmp_path, 3, split="../x")


@pytest.mark.parametrize("change, message", [
    (lambda r: (r / "masks" / "b.png").unlink(), r"image '.*b\.png' has no mask"),
    (lambda r: (r / "images" / "a.png").unlink(), r"mask '.*a\.png' has no image"),
    (lambda r: (r / "images" / "notes.txt").write_text("x"), r"'.*notes\.txt' has suffix"),
    (lambda r: np.save(r / "images" / "a.npy", np.zeros((4, 6, 3))), "two image files have"),
])
def test_bad_layouts_name_the_file(tmp_path, change, message):
    root = _tree(tmp_path)
    change(root)
    with pytest.raises(ValueError, match=message):
        FolderDataset(root, num_classes=3)


@pytest.mark.parametrize("write, message", [
    (lambda r: np.save(r / "masks" / "a.npy", np.full((4, 6), 7)),
     r"label file '.*a\.npy' holds label 7; labels must be 0\.\.2"),
    (lambda r: np.save(r / "masks" / "a.npy", np.zeros((4, 5), int)),
     r"label file '.*a\.npy' is 4 x 5 but its image .* is 4 x 6"),
    (lambda r: np.save(r / "masks" / "a.npy", np.zeros((4, 6))),
     r"'.*a\.npy' must hold integer labels"),
    (lambda r: np.save(r / "masks" / "a.npy", np.array([None, 1], dtype=object),
                       allow_pickle=True), r"'.*a\.npy' cannot be read as a \.npy array"),
    (lambda r: (r / "masks" / "a.png").write_bytes(b"not a png"),
     r"label image '.*a\.png' cannot be read"),
])
def test_bad_files_are_named_when_read(tmp_path, write, message):
    root = _tree(tmp_path, ("a",), mask_suffix=".png")
    if "npy" in message:
        (root / "masks" / "a.png").unlink()
    write(root)
    ds = FolderDataset(root, num_classes=3)
    with pytest.raises(ValueError, match=message):
        ds[0]


def test_wrong_channels_named(tmp_path):
    root = _tree(tmp_path, ("a",))
    (root / "images" / "a.png").unlink()
    np.save(root / "images" / "a.npy", np.zeros((4, 6, 4), np.float32))
    with pytest.raises(ValueError, match=r"'.*a\.npy' holds an array of shape \(4, 6, 4\)"):
        FolderDataset(root, num_classes=3)[0]


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_symlinks_out_of_the_root_are_refused(tmp_path):
    outside = _tree(tmp_path / "outside", ("z",))
    root = _tree(tmp_path / "root", ("a",))
    os.symlink(outside / "images" / "z.png", root / "images" / "z.png")
    os.symlink(outside / "masks" / "z.png", root / "masks" / "z.png")
    with pytest.raises(ValueError, match="outside the data root"):
        FolderDataset(root, num_classes=3)
    other = tmp_path / "root2"
    other.mkdir()
    os.symlink(outside / "images", other / "images")
    with pytest.raises(ValueError, match="outside the data root"):
        FolderDataset(other, num_classes=3)
    inside = _tree(tmp_path / "root3", ("a",))
    os.symlink(inside / "images" / "a.png", inside / "images" / "b.png")  # stays inside
    os.symlink(inside / "masks" / "a.png", inside / "masks" / "b.png")
    assert len(FolderDataset(inside, num_classes=3)) == 2


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_follow_symlinks_reads_files_and_folders_out_of_the_root(tmp_path):
    outside = _tree(tmp_path / "outside", ("z",))
    root = _tree(tmp_path / "root", ("a",))
    os.symlink(outside / "images" / "z.png", root / "images" / "z.png")
    os.symlink(outside / "masks" / "z.png", root / "masks" / "z.png")
    ds = FolderDataset(root, num_classes=3, follow_symlinks=True)
    assert [p.name for p, _ in ds.files] == ["a.png", "z.png"] and ds[1][0].shape == (3, 4, 6)
    other = tmp_path / "root2"
    other.mkdir()
    os.symlink(outside / "images", other / "images")
    os.symlink(outside / "masks", other / "masks")
    assert len(FolderDataset(other, num_classes=3, follow_symlinks=True)) == 1
    with pytest.raises(ValueError, match="`split` must be a folder name"):
        FolderDataset(root, 3, split="../outside", follow_symlinks=True)
    (outside / "masks" / "z.png").unlink()  # the link breaks: named when read
    with pytest.raises(FileNotFoundError, match=r"z\.png"):
        ds[1]


def test_fingerprint_ignores_the_location_and_sees_every_byte(tmp_path):
    root = _tree(tmp_path / "a", ("x", "y"))
    first = FolderDataset(root, 3).fingerprint()
    moved = tmp_path / "b"
    root.rename(moved)
    assert FolderDataset(moved, 3).fingerprint() == first
    np.save(moved / "masks" / "y2.npy", np.zeros((4, 6), int))
    (moved / "masks" / "y.png").unlink()
    (moved / "masks" / "y2.npy").rename(moved / "masks" / "y.npy")
    assert FolderDataset(moved, 3).fingerprint() != first


def test_arguments_are_checked(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(ValueError, match="`ignore_index` must not be a class"):
        FolderDataset(root, 3, ignore_index=1)
    with pytest.raises(ValueError, match="`class_names` must be 3 strings"):
        FolderDataset(root, 3, class_names=["a"])
    with pytest.raises(ValueError, match="`num_classes` must be <= 255"):
        FolderDataset(root, 300)
    with pytest.raises(FileNotFoundError, match="data root not found"):
        FolderDataset(tmp_path / "missing", 3)


def test_fingerprint_follows_the_bytes(tmp_path):
    root = _tree(tmp_path)
    before = FolderDataset(root, 3).fingerprint()
    assert FolderDataset(root, 3).fingerprint() == before
    np.save(root / "masks" / "x.npy", np.zeros((4, 6), int))
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(root / "images" / "x.png")
    assert FolderDataset(root, 3).fingerprint() != before
