"""Built-in synthetic data and the readers of the official data-set layouts."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from scipy.spatial import cKDTree

from smoothing.datasets import (
    CITYSCAPES_CLASSES,
    NUM_SHAPENET_PARTS,
    PASCAL_CONTEXT_CLASSES,
    SHAPENET_CATEGORIES,
    SHAPENET_PARTS,
    STREET_CLASSES,
    STREET_PALETTE,
    SYNTHETIC_PART_CATEGORIES,
    Cityscapes,
    PascalContext59,
    ShapeNetPart,
    SyntheticParts,
    SyntheticStreets,
    category_index,
    category_parts,
    cityscapes_train_ids,
    make_part_object,
    make_street_scene,
    normalize_point_cloud,
    part_mask,
    pascal_context59_labels,
    resample_indices,
)


@pytest.fixture
def seed() -> int:
    return 1234


# ----------------------------------------------------------------- synthetic images


def test_streets_are_deterministic_per_item(seed):
    a = SyntheticStreets(5, split="test", seed=seed)
    b = SyntheticStreets(5, split="test", seed=seed)
    for i in (3, 0):  # order of access does not matter
        assert torch.equal(a[i].image, b[i].image)
        assert torch.equal(a[i].label, b[i].label)
    assert not torch.equal(a[0].image, a[1].image)
    assert not torch.equal(a[0].image, SyntheticStreets(5, split="train", seed=seed)[0].image)
    assert not torch.equal(a[0].image, SyntheticStreets(5, split="test", seed=seed + 1)[0].image)


def test_streets_values_shapes_and_labels(seed):
    ds = SyntheticStreets(6, seed=seed, height=48, width=96)
    seen = set()
    for image, label in ds:
        assert image.shape == (3, 48, 96) and image.dtype == torch.float32
        assert label.shape == (48, 96) and label.dtype == torch.int64
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert set(label.unique().tolist()) <= set(range(len(STREET_CLASSES)))
        seen |= set(label.unique().tolist())
    # the large classes appear in every handful of scenes
    assert {0, 1, 2, 4, 6} <= seen
    assert ds.num_classes == len(STREET_CLASSES) == len(STREET_PALETTE) >= 5
    assert STREET_PALETTE.shape == (len(STREET_CLASSES), 3) and STREET_PALETTE.dtype == np.uint8


def test_street_regions_have_texture_and_distinct_colours(seed):
    image, label = make_street_scene(seed)
    means = {c: image[:, label == c].mean(axis=1) for c in (0, 4) if (label == c).any()}
    assert np.abs(means[0] - means[4]).max() > 0.1  # road and sky differ in colour
    road = image[:, label == 0]
    assert road.std(axis=1).max() > 0.01  # not flat colour


def test_make_street_scene_accepts_generator_and_seed(seed):
    a = make_street_scene(np.random.default_rng(seed), height=20, width=30)
    b = make_street_scene(seed, height=20, width=30)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"length": 0}, "`length`"),
        ({"split": "dev"}, "`split`"),
        ({"height": 8}, "`height`"),
        ({"seed": -1}, "`seed`"),
    ],
)
def test_streets_reject_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticStreets(**kwargs)


def test_streets_index_out_of_range():
    with pytest.raises(IndexError):
        SyntheticStreets(2)[2]


# ------------------------------------------------------------ synthetic point clouds


@pytest.mark.parametrize("category", SYNTHETIC_PART_CATEGORIES)
def test_part_objects_are_normalised_and_labelled(category, seed):
    pts, labels = make_part_object(category, seed)
    assert pts.shape == (2048, 6) and pts.dtype == np.float32
    assert labels.shape == (2048,) and labels.dtype == np.int64
    xyz, normals = pts[:, :3].astype(np.float64), pts[:, 3:].astype(np.float64)
    np.testing.assert_allclose(xyz.mean(axis=0), 0.0, atol=1e-6)
    assert np.linalg.norm(xyz, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    # global ShapeNet ids of the category, every part present
    assert set(labels.tolist()) == set(category_parts(category))


def test_part_normals_point_outwards(seed):
    # on a mug body (an open cylinder around the y axis) normals point away from the axis
    pts, labels = make_part_object("Mug", seed)
    body = pts[labels == 36]
    side = np.abs(body[:, 4]) < 0.5  # not the bottom cap
    radial = body[side][:, [0, 2]] - body[side][:, [0, 2]].mean(axis=0)
    assert np.mean((radial * body[side][:, [3, 5]]).sum(axis=1) > 0) > 0.95


def test_synthetic_parts_dataset(seed):
    ds = SyntheticParts(4, seed=seed, categories=["Table", "Lamp"])
    points, labels, category = ds[1]
    assert category == SHAPENET_CATEGORIES.index("Lamp")
    assert points.shape == (2048, 6) and labels.shape == (2048,)
    assert set(labels.unique().tolist()) <= set(SHAPENET_PARTS["Lamp"])
    assert torch.equal(
        ds[1].points, SyntheticParts(4, seed=seed, categories=["Table", "Lamp"])[1][0]
    )
    assert not torch.equal(
        ds[1].points, SyntheticParts(4, seed=seed + 1, categories=["Table", "Lamp"])[1][0]
    )
    xyz = SyntheticParts(2, seed=seed, normals=False, num_points=300)[0].points
    assert xyz.shape == (300, 3)
    assert ds.num_classes == NUM_SHAPENET_PARTS == 50


def test_synthetic_parts_rejects_unbuilt_category():
    with pytest.raises(ValueError, match="`categories`"):
        SyntheticParts(categories=["Motorbike"])
    with pytest.raises(ValueError, match="`category`"):
        make_part_object("Motorbike", 0)


# ------------------------------------------------------------------- label schemes


def test_shapenet_part_offsets_match_the_benchmark():
    expected = {
        "Airplane": (0, 3), "Bag": (4, 5), "Cap": (6, 7), "Car": (8, 11), "Chair": (12, 15),
        "Earphone": (16, 18), "Guitar": (19, 21), "Knife": (22, 23), "Lamp": (24, 27),
        "Laptop": (28, 29), "Motorbike": (30, 35), "Mug": (36, 37), "Pistol": (38, 40),
        "Rocket": (41, 43), "Skateboard": (44, 46), "Table": (47, 49),
    }  # fmt: skip
    assert tuple(expected) == SHAPENET_CATEGORIES
    for name, (lo, hi) in expected.items():
        assert SHAPENET_PARTS[name] == tuple(range(lo, hi + 1))
    assert NUM_SHAPENET_PARTS == 50
    assert part_mask("Pistol").sum() == 3 and part_mask(12).nonzero()[0].tolist() == [38, 39, 40]
    assert category_index("mug") == 11
    with pytest.raises(ValueError, match="`category`"):
        category_index(16)
    with pytest.raises(ValueError, match="`category`"):
        category_index("Sofa")


def test_cityscapes_mapping_is_the_official_table():
    ids = np.arange(34)
    train = cityscapes_train_ids(ids)
    evaluated = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    assert train[evaluated].tolist() == list(range(19))
    assert set(train[np.setdiff1d(ids, evaluated)].tolist()) == {255}
    assert cityscapes_train_ids(np.array([255]))[0] == 255  # e.g. license plate written as 255
    assert len(CITYSCAPES_CLASSES) == 19
    with pytest.raises(ValueError, match="`label_ids`"):
        cityscapes_train_ids(np.array([256]))


def test_pascal_context_mapping():
    assert len(PASCAL_CONTEXT_CLASSES) == 59 and PASCAL_CONTEXT_CLASSES[-1] == "wood"
    lab = np.array([[0, 1, 2], [58, 59, 255]])
    assert pascal_context59_labels(lab).tolist() == [[255, 0, 1], [57, 58, 255]]
    with pytest.raises(ValueError, match="`labels60`"):
        pascal_context59_labels(np.array([60]))


# ------------------------------------------------------------- fixture trees: images


def _png(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path)


@pytest.fixture
def cityscapes_root(tmp_path, rng):
    ids = np.array([[7, 8, 11, 26], [0, 9, 33, 24]], dtype=np.uint8).repeat(2, 0).repeat(2, 1)
    for city, frame in (("aachen", "000019"), ("bremen", "000042")):
        stem = f"{city}_000000_{frame}"
        rgb = rng.integers(0, 256, size=(*ids.shape, 3))
        _png(tmp_path / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png", rgb, "RGB")
        _png(tmp_path / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", ids, "L")
        _png(
            tmp_path / "gtFine" / "val" / city / f"{stem}_gtFine_labelTrainIds.png",
            cityscapes_train_ids(ids),
            "L",
        )
    return tmp_path


def test_cityscapes_reader(cityscapes_root):
    ds = Cityscapes(cityscapes_root, "val")
    assert len(ds) == 2 and ds.images[0].parent.name == "aachen"
    image, label = ds[0]
    assert image.shape == (3, 4, 8) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    expected = np.array([[0, 1, 2, 13], [255, 255, 18, 11]]).repeat(2, 0).repeat(2, 1)
    assert label.dtype == torch.int64 and label.tolist() == expected.tolist()
    rgb = np.asarray(Image.open(ds.images[0]), dtype=np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(image.numpy(), rgb, atol=1e-6)
    assert torch.equal(Cityscapes(cityscapes_root, target="labelTrainIds")[0].label, label)


def test_cityscapes_resize(cityscapes_root):
    image, label = Cityscapes(cityscapes_root, size=(2, 4))[0]
    assert image.shape == (3, 2, 4) and label.shape == (2, 4)
    assert set(label.unique().tolist()) <= {0, 1, 2, 13, 11, 18, 255}


def test_cityscapes_missing_paths(cityscapes_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Cityscapes(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="leftImg8bit"):
        Cityscapes(cityscapes_root, "train")
    missing = cityscapes_root / "gtFine/val/bremen/bremen_000000_000042_gtFine_labelIds.png"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="bremen_000000_000042_gtFine_labelIds.png"):
        Cityscapes(cityscapes_root)
    with pytest.raises(ValueError, match="`split`"):
        Cityscapes(cityscapes_root, "dev")


@pytest.fixture
def pascal_root(tmp_path, rng):
    labels = np.array([[0, 1, 2], [30, 59, 255]], dtype=np.uint8)
    for name in ("2008_000002", "2008_000007"):
        rgb = rng.integers(0, 256, size=(2, 3, 3)).astype(np.uint8)
        (tmp_path / "JPEGImages").mkdir(exist_ok=True)
        Image.fromarray(rgb, mode="RGB").save(tmp_path / "JPEGImages" / f"{name}.jpg")
        _png(tmp_path / "SegmentationClassContext" / f"{name}.png", labels, "L")
    split = tmp_path / "ImageSets" / "SegmentationContext"
    split.mkdir(parents=True)
    (split / "val.txt").write_text("2008_000002\n2008_000007\n")
    (split / "train.txt").write_text("2008_000002\n2008_000404\n")
    return tmp_path


def test_pascal_context_reader(pascal_root):
    ds = PascalContext59(pascal_root, "val")
    assert len(ds) == 2 and ds.num_classes == 59
    image, label = ds[1]
    assert image.shape == (3, 2, 3) and image.dtype == torch.float32
    assert label.tolist() == [[255, 0, 1], [29, 58, 255]]
    assert PascalContext59(pascal_root, size=(4, 6))[0].image.shape == (3, 4, 6)


def test_pascal_context_missing_paths(pascal_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="2008_000404.jpg"):
        PascalContext59(pascal_root, "train")
    with pytest.raises(FileNotFoundError, match="absent"):
        PascalContext59(tmp_path / "absent")
    with pytest.raises(ValueError, match="`split`"):
        PascalContext59(pascal_root, "test")


# Bad files are reported when the item is read, naming the file (issue 14, item 3):
# before, a corrupt PNG gave a bare PIL traceback and a label map of the wrong size
# failed later, in the metrics, without naming any file.
def _corrupt(path):
    path.write_bytes(path.read_bytes()[:40])  # a truncated PNG / JPEG (header kept)


@pytest.mark.parametrize("which", ["label", "image"])
def test_cityscapes_corrupt_file_is_named_when_read(cityscapes_root, which):
    ds = Cityscapes(cityscapes_root)
    bad = ds.labels[1] if which == "label" else ds.images[1]
    _corrupt(bad)
    assert ds[0].label.shape == (4, 8)  # the others still read
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        ds[1]
    garbage = ds.labels[0]
    garbage.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=re.escape(str(garbage))):
        ds[0]


def test_cityscapes_label_of_the_wrong_size_is_named(cityscapes_root):
    ds = Cityscapes(cityscapes_root)
    _png(ds.labels[1], np.full((4, 7), 7), "L")
    with pytest.raises(ValueError, match=r"bremen_000000_000042_gtFine_labelIds.png' is 4 x 7 "
                                         r"but its image .* is 4 x 8"):
        ds[1]
    # also when resizing (the mismatch would otherwise be hidden by the resize)
    with pytest.raises(ValueError, match="is 4 x 7"):
        Cityscapes(cityscapes_root, size=(2, 4))[1]


def test_cityscapes_bad_label_values_name_the_file(cityscapes_root):
    ds = Cityscapes(cityscapes_root)
    Image.fromarray(np.full((4, 8), 300, dtype=np.uint16)).save(ds.labels[0])  # 16 bit
    with pytest.raises(ValueError, match=re.escape(str(ds.labels[0])) + ".*lie in"):
        ds[0]


def test_pascal_context_corrupt_or_misfit_label_is_named(pascal_root):
    ds = PascalContext59(pascal_root)
    _corrupt(ds.labels[0])
    with pytest.raises(ValueError, match=re.escape(str(ds.labels[0]))):
        ds[0]
    _png(ds.labels[1], np.zeros((3, 3)), "L")
    with pytest.raises(ValueError, match=r"2008_000007.png' is 3 x 3 but its image"):
        ds[1]
    _png(ds.labels[1], np.full((2, 3), 77), "L")
    with pytest.raises(ValueError, match=r"2008_000007.png'.*0..59 or 255"):
        ds[1]


@pytest.mark.parametrize("entry", ["../../x", "../JPEGImages/2008_000002", "/etc/passwd",
                                   "a/../../b", "C:\\x", "..\\..\\x", "\\\\server\\share\\x"])
def test_pascal_context_split_list_entries_outside_the_root_are_refused(pascal_root, entry):
    lst = pascal_root / "ImageSets" / "SegmentationContext" / "val.txt"
    lst.write_text(f"2008_000002\n{entry}\n")
    with pytest.raises(ValueError, match=r"outside the data root"):
        PascalContext59(pascal_root)


def test_pascal_context_split_list_with_sub_folders_is_fine(pascal_root):
    sub = pascal_root / "JPEGImages" / "sub"
    sub.mkdir()
    (pascal_root / "JPEGImages" / "2008_000002.jpg").rename(sub / "2008_000002.jpg")
    (pascal_root / "SegmentationClassContext" / "sub").mkdir()
    (pascal_root / "SegmentationClassContext" / "2008_000002.png").rename(
        pascal_root / "SegmentationClassContext" / "sub" / "2008_000002.png")
    lst = pascal_root / "ImageSets" / "SegmentationContext" / "val.txt"
    lst.write_text("sub/2008_000002\n")
    assert PascalContext59(pascal_root)[0].image.shape == (3, 2, 3)


# -------------------------------------------------------- fixture trees: ShapeNet


def _shape_file(path, rng, n, parts, scale=5.0, shift=3.0):
    xyz = rng.normal(size=(n, 3)) * scale + shift
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    labels = rng.choice(parts, size=n)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack([xyz, normals, labels]), fmt="%.6f")


@pytest.fixture
def shapenet_root(tmp_path, rng):
    root = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    root.mkdir()
    (root / "synsetoffset2category.txt").write_text("Mug\t03797390\nTable\t04379243\n")
    _shape_file(root / "03797390" / "mug_small.txt", rng, 100, [36, 37])
    _shape_file(root / "04379243" / "table_big.txt", rng, 3000, [47, 48, 49])
    _shape_file(root / "04379243" / "table_train.txt", rng, 50, [47, 49])
    split = root / "train_test_split"
    split.mkdir()
    test = ["shape_data/03797390/mug_small", "shape_data/04379243/table_big"]
    (split / "shuffled_test_file_list.json").write_text(json.dumps(test))
    (split / "shuffled_train_file_list.json").write_text(
        json.dumps(["shape_data/04379243/table_train"])
    )
    (split / "shuffled_val_file_list.json").write_text("[]")
    return root


def test_shapenet_reader_resamples_and_normalises(shapenet_root):
    ds = ShapeNetPart(shapenet_root, "test", seed=3)
    assert len(ds) == 2
    for i, cat in enumerate(["Mug", "Table"]):
        points, labels, category = ds[i]
        assert category == SHAPENET_CATEGORIES.index(cat)
        assert points.shape == (2048, 6) and points.dtype == torch.float32
        assert labels.shape == (2048,) and labels.dtype == torch.int64
        assert set(labels.tolist()) <= set(category_parts(category))
        xyz = points[:, :3].double()
        assert float(xyz.mean(0).abs().max()) < 1e-6
        assert float(xyz.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-6)
    # resampling keeps rows intact (normals identify a file's rows; they are unchanged)
    for i, name in enumerate(["03797390/mug_small.txt", "04379243/table_big.txt"]):
        raw = np.loadtxt(shapenet_root / name)
        points, labels, _ = ds[i]
        dist, row = cKDTree(raw[:, 3:6]).query(points[:, 3:].numpy().astype(np.float64))
        assert dist.max() < 1e-5
        assert raw[row, 6].astype(int).tolist() == labels.tolist()
        # 100 rows: every row kept, the rest repeats; 3000 rows: no repeats
        assert len(np.unique(row)) == min(len(raw), 2048)


def test_shapenet_reader_is_seeded(shapenet_root):
    a = ShapeNetPart(shapenet_root, seed=1)[1].points
    assert torch.equal(a, ShapeNetPart(shapenet_root, seed=1)[1].points)
    assert not torch.equal(a, ShapeNetPart(shapenet_root, seed=2)[1].points)


def test_shapenet_reader_options(shapenet_root):
    ds = ShapeNetPart(shapenet_root, num_points=64, normals=False, categories=["Table"])
    assert len(ds) == 1 and ds[0].points.shape == (64, 3)
    assert len(ShapeNetPart(shapenet_root, "trainval")) == 1
    with pytest.raises(ValueError, match="`split`"):
        ShapeNetPart(shapenet_root, "dev")


def test_shapenet_reader_bad_input(shapenet_root, tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="missing_root"):
        ShapeNetPart(tmp_path / "missing_root")
    (shapenet_root / "03797390" / "mug_small.txt").unlink()
    with pytest.raises(FileNotFoundError, match="mug_small.txt"):
        ShapeNetPart(shapenet_root)
    # local (per-category) part ids, as in the release without normals, are rejected
    _shape_file(shapenet_root / "03797390" / "mug_small.txt", rng, 20, [0, 1])
    with pytest.raises(ValueError, match=r"\[36, 37\]"):
        ShapeNetPart(shapenet_root)[0]


# ------------------------------------------------------------------------ helpers


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=40).map(lambda s: (s[0], 3)),
        elements=st.floats(-1e3, 1e3, allow_nan=False),
    )
)
def test_normalize_point_cloud_property(points):
    centred = points - points.mean(axis=0)
    radius = np.linalg.norm(centred, axis=1).max()
    if radius < 1e-6:
        return  # all points (numerically) coincide: covered below
    out = normalize_point_cloud(points).astype(np.float64)
    np.testing.assert_allclose(out, centred / radius, atol=1e-5)
    assert np.linalg.norm(out, axis=1).max() == pytest.approx(1.0, abs=1e-5)


def test_normalize_point_cloud_rejects_degenerate_input():
    with pytest.raises(ValueError, match="`points`"):
        normalize_point_cloud(np.ones((5, 3)))
    with pytest.raises(ValueError, match="`points`"):
        normalize_point_cloud(np.ones((5, 4)))


def test_resample_indices(rng):
    idx = resample_indices(10, 4, rng)
    assert len(set(idx.tolist())) == 4 and idx.max() < 10
    idx = resample_indices(3, 2048, rng)
    assert len(idx) == 2048 and set(idx.tolist()) == {0, 1, 2}
