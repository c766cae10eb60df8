"""ShapeNet part segmentation (the ``_normal`` benchmark release) and its label scheme.

Layout read (the official ``shapenetcore_partanno_segmentation_benchmark_v0_normal``)::

    root/
      synsetoffset2category.txt           # "Airplane<TAB>02691156", one category a line
      02691156/1a04e3eab45ca15dd86060f189eb133.txt   # rows "x y z nx ny nz part"
      ...
      train_test_split/
        shuffled_train_file_list.json     # ["shape_data/02691156/1a04...", ...]
        shuffled_val_file_list.json
        shuffled_test_file_list.json

The part column holds *global* part ids in [0, 50); category ``c`` owns the
contiguous range ``SHAPENET_PARTS[c]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from smoothing._sampling import check_int
from smoothing.datasets._common import (
    PointCloudSample,
    check_choice,
    check_index,
    data_root,
    normalize_point_cloud,
    read_text,
    relative_id,
    resample_indices,
    resolve_inside,
)

__all__ = [
    "NUM_SHAPENET_PARTS",
    "SHAPENET_CATEGORIES",
    "SHAPENET_PARTS",
    "ShapeNetPart",
    "category_index",
    "category_parts",
    "part_mask",
]

#: The 16 ShapeNet part categories, in the standard (alphabetical) order.
SHAPENET_CATEGORIES: tuple[str, ...] = (
    "Airplane", "Bag", "Cap", "Car", "Chair", "Earphone", "Guitar", "Knife",
    "Lamp", "Laptop", "Motorbike", "Mug", "Pistol", "Rocket", "Skateboard", "Table",
)  # fmt: skip

_PART_COUNTS = (4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3)

#: Global part ids owned by every category (Airplane 0-3, Bag 4-5, ..., Table 47-49).
SHAPENET_PARTS: dict[str, tuple[int, ...]] = {
    name: tuple(range(start, start + count))
    for name, start, count in zip(
        SHAPENET_CATEGORIES,
        np.concatenate([[0], np.cumsum(_PART_COUNTS)[:-1]]).tolist(),
        _PART_COUNTS,
        strict=True,
    )
}

#: Number of global part labels (50).
NUM_SHAPENET_PARTS = int(sum(_PART_COUNTS))

_SPLITS = ("train", "val", "test", "trainval")


def category_index(category: int | str) -> int:
    """Index in ``SHAPENET_CATEGORIES`` of a category given by name or index.

    Examples
    --------
    >>> category_index("Mug"), category_index(11)
    (11, 11)
    """
    if isinstance(category, str):
        names = {n.lower(): i for i, n in enumerate(SHAPENET_CATEGORIES)}
        if category.lower() not in names:
            raise ValueError(
                f"`category` must be one of {list(SHAPENET_CATEGORIES)}; got {category!r}."
            )
        return names[category.lower()]
    if isinstance(category, bool) or not isinstance(category, int | np.integer):
        raise TypeError(f"`category` must be a name or an int in [0, 16); got {category!r}.")
    if not 0 <= category < len(SHAPENET_CATEGORIES):
        raise ValueError(f"`category` must be a name or an int in [0, 16); got {category}.")
    return int(category)


def category_parts(category: int | str) -> tuple[int, ...]:
    """Global part ids of one category.

    Examples
    --------
    >>> category_parts("Table"), category_parts(1)
    ((47, 48, 49), (4, 5))
    """
    return SHAPENET_PARTS[SHAPENET_CATEGORIES[category_index(category)]]


def part_mask(category: int | str) -> np.ndarray:
    """Boolean mask of shape (50,) that is True on the parts of ``category``.

    Use it to evaluate within the category, e.g. ``logits[..., ~mask] = -inf``.

    Examples
    --------
    >>> part_mask("Bag").nonzero()[0].tolist()
    [4, 5]
    """
    mask = np.zeros(NUM_SHAPENET_PARTS, dtype=bool)
    mask[list(category_parts(category))] = True
    return mask


class ShapeNetPart(torch.utils.data.Dataset):
    """Reader of the ShapeNet part benchmark with normals (``..._v0_normal``).

    Every item is resampled to ``num_points`` points (seeded), centred at the origin
    and scaled so that the furthest point has distance 1 (§6.3 of the paper).

    Parameters
    ----------
    root : str or os.PathLike
        The ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` directory.
    split : {'train', 'val', 'test', 'trainval'}, default 'test'
        Which ``train_test_split/shuffled_*_file_list.json`` to read ('trainval'
        reads both train and val).
    num_points : int, default 2048
        Points per item; without replacement when the file has enough, otherwise
        all points plus random repeats.
    normals : bool, default True
        Return (N, 6) ``[xyz, normal]`` rows; ``False`` returns (N, 3) positions.
    categories : sequence of str or int, optional
        Keep only these categories (names or indices); default all.
    seed : int, default 0
        Item ``i`` is resampled with ``numpy.random.default_rng([seed, i])``.
    follow_symlinks : bool, default False
        Read files whose symbolic links lead outside ``root``; by default every file
        must lie inside ``root`` once links are resolved (links inside are fine).

    Raises
    ------
    FileNotFoundError
        If ``root``, ``synsetoffset2category.txt``, the split list or a listed shape
        file is missing (the message names the path).
    ValueError
        On a bad argument, an unknown synset, a synset or split-list entry that
        could name a file outside ``root`` (absolute, a drive, ``..``), a file that
        a symbolic link puts outside ``root``, or a malformed list or shape file
        (the message names the file).

    Notes
    -----
    Items are :class:`PointCloudSample` ``(points, labels, category)``; ``labels`` are
    global part ids, and ``category_parts(category)`` gives the ids certification can
    be restricted to. Files are read on access (``numpy.loadtxt``, a few ms each).
    """

    num_classes = NUM_SHAPENET_PARTS
    categories_all = SHAPENET_CATEGORIES

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "test",
        *,
        num_points: int = 2048,
        normals: bool = True,
        categories: list[str | int] | tuple[str | int, ...] | None = None,
        seed: int = 0,
        follow_symlinks: bool = False,
    ) -> None:
        self.root = data_root(root, "ShapeNet part root")
        self.split = check_choice(split, "split", _SPLITS)
        self.num_points = check_int(num_points, "num_points", low=1)
        self.normals = bool(normals)
        self.seed = check_int(seed, "seed", low=0)
        self.follow_symlinks = bool(follow_symlinks)
        keep = None if categories is None else {category_index(c) for c in categories}

        def inside(relpath: str, what: str) -> Path:
            return resolve_inside(self.root, relpath, f"ShapeNet {what}",
                                  follow_symlinks=self.follow_symlinks)

        synset_to_cat: dict[str, int] = {}
        mapping = inside("synsetoffset2category.txt", "category list")
        for line_no, line in enumerate(read_text(mapping).splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise ValueError(
                    f"'{mapping}' line {line_no}: expected 'Name synset'; got {line!r}."
                )
            try:
                cat = category_index(fields[0])
            except ValueError as err:
                raise ValueError(f"'{mapping}' line {line_no}: {err}") from err
            synset_to_cat[_plain_name(fields[1], mapping)] = cat

        names = ("train", "val") if self.split == "trainval" else (self.split,)
        self.files: list[tuple[Path, int]] = []
        for name in names:
            lst = inside(f"train_test_split/shuffled_{name}_file_list.json", "split list")
            for entry in _json_list(lst):
                synset, shape_id = (_plain_name(part, lst) for part in entry.split("/")[-2:])
                if synset not in synset_to_cat:
                    raise ValueError(f"'{lst}': synset {synset!r} is not in '{mapping}'.")
                cat = synset_to_cat[synset]
                if keep is None or cat in keep:
                    self.files.append((inside(f"{synset}/{shape_id}.txt", "shape"), cat))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> PointCloudSample:
        index = check_index(index, len(self))
        path, cat = self.files[index]
        try:
            data = np.loadtxt(path, dtype=np.float64, ndmin=2)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"'{path}': rows must be 'x y z nx ny nz part' numbers: "
                             f"{err}") from err
        if data.shape[1] != 7 or data.shape[0] < 2:
            raise ValueError(
                f"'{path}': rows must be 'x y z nx ny nz part' (7 columns, >= 2 rows); "
                f"got shape {data.shape}."
            )
        labels = data[:, 6].astype(np.int64)
        lo, hi = category_parts(cat)[0], category_parts(cat)[-1]
        if labels.min() < lo or labels.max() > hi:
            raise ValueError(
                f"'{path}': part ids must lie in [{lo}, {hi}] for {SHAPENET_CATEGORIES[cat]} "
                f"(global ids); got [{labels.min()}, {labels.max()}]."
            )
        rng = np.random.default_rng([self.seed, index])
        idx = resample_indices(len(labels), self.num_points, rng)
        pts = normalize_point_cloud(data[idx, :6])
        if not self.normals:
            pts = np.ascontiguousarray(pts[:, :3])
        return PointCloudSample(torch.from_numpy(pts), torch.from_numpy(labels[idx]), cat)

    def __repr__(self) -> str:
        return f"ShapeNetPart(root='{self.root}', split={self.split!r}, n={len(self)})"


def _plain_name(name: object, source: Path) -> str:
    """A synset or shape id: one path component that stays inside the root."""
    if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", "."):
        raise ValueError(f"'{source}' names {name!r} as a synset or shape id: it must be "
                         "one plain folder or file name.")
    return relative_id(name, source)


def _json_list(path: Path) -> list[str]:
    """A split list: a JSON list of ``'shape_data/<synset>/<shape id>'`` strings."""
    try:
        entries = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"'{path}' is not valid JSON: {err}") from err
    if not isinstance(entries, list) or not all(
            isinstance(e, str) and "/" in e for e in entries):
        raise ValueError(f"'{path}' must hold a JSON list of 'shape_data/<synset>/<shape id>' "
                         "strings.")
    return entries
