"""Cityscapes (fine annotations): the official directory layout and the 19 train ids.

Layout read (as distributed in ``leftImg8bit_trainvaltest.zip`` and
``gtFine_trainvaltest.zip``)::

    root/
      leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
      gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from smoothing.datasets._common import (
    IGNORE_INDEX,
    ImageSample,
    check_choice,
    check_index,
    check_size,
    data_root,
    existing_dir,
    read_pair,
    resolve_inside,
    to_sample,
)

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_ID_TO_TRAIN_ID",
    "CITYSCAPES_PALETTE",
    "Cityscapes",
    "cityscapes_train_ids",
]

#: The 19 evaluated Cityscapes classes, in train-id order.
CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

#: The official display colours (RGB) of the 19 train ids.
CITYSCAPES_PALETTE: np.ndarray = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)  # fmt: skip

_EVALUATED_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

#: Lookup table: ``CITYSCAPES_ID_TO_TRAIN_ID[label_id]`` is the train id (0..18) or 255.
#: The 19 evaluated label ids map to 0..18; all others (0-6 void, parking 9, rail track 10,
#: guard rail 14, bridge 15, tunnel 16, polegroup 18, caravan 29, trailer 30, license
#: plate) are ignored.
CITYSCAPES_ID_TO_TRAIN_ID: np.ndarray = np.full(256, IGNORE_INDEX, dtype=np.int64)
CITYSCAPES_ID_TO_TRAIN_ID[list(_EVALUATED_IDS)] = np.arange(19)

_TARGETS = ("labelIds", "labelTrainIds")


def cityscapes_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map Cityscapes label ids to the 19 train ids (ignored classes to 255).

    Parameters
    ----------
    label_ids : numpy.ndarray
        Integer array of label ids in [0, 255] (a ``*_gtFine_labelIds.png`` map).

    Returns
    -------
    numpy.ndarray
        int64 array of the same shape with values in 0..18 or 255.

    Raises
    ------
    ValueError
        If a value lies outside [0, 255].

    Examples
    --------
    >>> import numpy as np
    >>> cityscapes_train_ids(np.array([7, 8, 26, 33, 0, 9])).tolist()
    [0, 1, 13, 18, 255, 255]
    """
    ids = np.asarray(label_ids)
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise ValueError(
            f"`label_ids` must lie in [0, 255]; got values in [{ids.min()}, {ids.max()}]."
        )
    return CITYSCAPES_ID_TO_TRAIN_ID[ids.astype(np.int64)]


class Cityscapes(torch.utils.data.Dataset):
    """Reader of Cityscapes images and fine labels in the official layout.

    Parameters
    ----------
    root : str or os.PathLike
        The directory holding ``leftImg8bit/`` and ``gtFine/``.
    split : {'train', 'val', 'test'}, default 'val'
        Sub-folder to read (the public ``test`` labels are all void).
    target : {'labelIds', 'labelTrainIds'}, default 'labelIds'
        ``'labelIds'`` reads ``*_gtFine_labelIds.png`` and maps it with
        :func:`cityscapes_train_ids`; ``'labelTrainIds'`` reads the
        ``*_gtFine_labelTrainIds.png`` files made by cityscapesScripts as they are.
    size : (int, int), optional
        Resize every item to (height, width): the image bilinearly (antialiased), the
        labels by nearest neighbour. Default: full resolution (1024 x 2048).
    follow_symlinks : bool, default False
        Read files whose symbolic links (a linked city folder, a linked image) lead
        outside ``root``; by default every file must lie inside ``root`` once links
        are resolved (links inside are fine).

    Raises
    ------
    FileNotFoundError
        If ``root``, ``leftImg8bit/{split}`` or a label file of a found image is
        missing (the message names the path).
    ValueError
        On a bad ``split``, ``target`` or ``size``, if the split has no images, or
        if a symbolic link puts an image or label outside ``root``; and when an
        item is read, for an image or label file that cannot be decoded,
        bad label values, or a label map of another size than its image (the
        message names the file).

    Notes
    -----
    Items are :class:`ImageSample` ``(image, label)``: float32 (3, H, W) in [0, 1]
    and int64 (H, W) train ids, 255 = ignore. Images are sorted by file name.
    """

    classes = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    num_classes = len(CITYSCAPES_CLASSES)
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "val",
        *,
        target: str = "labelIds",
        size: tuple[int, int] | None = None,
        follow_symlinks: bool = False,
    ) -> None:
        self.root = data_root(root, "Cityscapes root")
        self.split = check_choice(split, "split", ("train", "val", "test"))
        self.target = check_choice(target, "target", _TARGETS)
        self.size = check_size(size)
        self.follow_symlinks = bool(follow_symlinks)
        image_dir = existing_dir(self.root / "leftImg8bit" / self.split, "Cityscapes images")
        existing_dir(self.root / "gtFine" / self.split, "Cityscapes labels")
        suffix = "_leftImg8bit.png"
        found = sorted(image_dir.glob(f"*/*{suffix}"))
        if not found:
            raise ValueError(f"no '*{suffix}' files in the city folders of '{image_dir}'.")
        self.images: list[Path] = []
        self.labels: list[Path] = []
        for img in found:
            city, stem = img.parent.name, img.name[: -len(suffix)]
            self.images.append(resolve_inside(
                self.root, f"leftImg8bit/{self.split}/{city}/{img.name}", "Cityscapes image",
                follow_symlinks=self.follow_symlinks))
            self.labels.append(resolve_inside(
                self.root, f"gtFine/{self.split}/{city}/{stem}_gtFine_{self.target}.png",
                "Cityscapes label", follow_symlinks=self.follow_symlinks))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> ImageSample:
        index = check_index(index, len(self))
        convert = cityscapes_train_ids if self.target == "labelIds" else _as_is
        image, label = read_pair(self.images[index], self.labels[index], convert)
        return to_sample(image, label, self.size)

    def __repr__(self) -> str:
        return f"Cityscapes(root='{self.root}', split={self.split!r}, n={len(self)})"


def _as_is(labels: np.ndarray) -> np.ndarray:
    return labels
