"""Pascal Context with 59 classes, in the layout of mmsegmentation's PascalContextDataset59.

Layout read (``VOCdevkit/VOC2010`` after mmsegmentation's ``pascal_context.py``
converter, or any tree with the same three folders)::

    root/                                   # e.g. VOCdevkit/VOC2010
      JPEGImages/{image_id}.jpg
      SegmentationClassContext/{image_id}.png     # 0 = background, 1..59 = classes
      ImageSets/SegmentationContext/{train,val}.txt   # one image id a line

The label PNGs hold the 60-class ids (0 background, 1..59 alphabetical as in
``PASCAL_CONTEXT_CLASSES``). For the 59-class setting of the paper the background is
ignored: 0 -> 255 and k -> k - 1 (mmsegmentation's ``reduce_zero_label``); 255 stays 255.
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
    read_pair,
    read_text,
    relative_id,
    resolve_inside,
    to_sample,
)

__all__ = ["PASCAL_CONTEXT_CLASSES", "PascalContext59", "pascal_context59_labels"]

#: The 59 foreground classes, in label order (label k of the 59-class setting).
PASCAL_CONTEXT_CLASSES: tuple[str, ...] = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
    "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth",
    "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food",
    "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse",
    "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck",
    "tvmonitor", "wall", "water", "window", "wood",
)  # fmt: skip


def pascal_context59_labels(labels60: np.ndarray) -> np.ndarray:
    """Map 60-class Pascal Context labels to the 59-class setting.

    Parameters
    ----------
    labels60 : numpy.ndarray
        Integer labels: 0 background, 1..59 classes, 255 ignore.

    Returns
    -------
    numpy.ndarray
        int64 labels: 0..58 for classes 1..59, 255 for background and ignore.

    Raises
    ------
    ValueError
        If a value is neither in [0, 59] nor 255.

    Examples
    --------
    >>> import numpy as np
    >>> pascal_context59_labels(np.array([0, 1, 59, 255])).tolist()
    [255, 0, 58, 255]
    """
    lab = np.asarray(labels60).astype(np.int64)
    bad = (lab < 0) | ((lab > 59) & (lab != IGNORE_INDEX))
    if bad.any():
        raise ValueError(f"`labels60` must hold 0..59 or 255; got e.g. {int(lab[bad].flat[0])}.")
    return np.where((lab == 0) | (lab == IGNORE_INDEX), IGNORE_INDEX, lab - 1)


class PascalContext59(torch.utils.data.Dataset):
    """Reader of Pascal Context (59 classes, background ignored).

    Parameters
    ----------
    root : str or os.PathLike
        The directory holding ``JPEGImages/``, ``SegmentationClassContext/`` and
        ``ImageSets/SegmentationContext/`` (``VOCdevkit/VOC2010`` in mmsegmentation).
    split : {'train', 'val'}, default 'val'
        Which list in ``ImageSets/SegmentationContext/`` to read.
    size : (int, int), optional
        Resize every item to (height, width), e.g. (480, 480) as in the paper; the
        image bilinearly (antialiased), the labels by nearest neighbour.
    follow_symlinks : bool, default False
        Read files whose symbolic links lead outside ``root``; by default every file
        must lie inside ``root`` once links are resolved (links inside are fine).

    Raises
    ------
    FileNotFoundError
        If ``root``, the split list, or a listed image or label file is missing
        (the message names the path).
    ValueError
        On a bad ``split`` or ``size``, an empty split list, a list entry that
        could name a file outside ``root`` (absolute, a drive, ``..``), or a file
        that a symbolic link puts outside ``root``; when an item is read, for a
        file that cannot be decoded, label values outside 0..59 and 255, or a
        label map of another size than its image (the message names the file).

    Notes
    -----
    Items are :class:`ImageSample` ``(image, label)``: float32 (3, H, W) in [0, 1]
    and int64 (H, W) labels in 0..58, 255 = ignore (background included).
    """

    classes = PASCAL_CONTEXT_CLASSES
    num_classes = len(PASCAL_CONTEXT_CLASSES)
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "val",
        *,
        size: tuple[int, int] | None = None,
        follow_symlinks: bool = False,
    ) -> None:
        self.root = data_root(root, "Pascal Context root")
        self.split = check_choice(split, "split", ("train", "val"))
        self.size = check_size(size)
        self.follow_symlinks = bool(follow_symlinks)

        def inside(relpath: str, what: str) -> Path:
            return resolve_inside(self.root, relpath, f"Pascal Context {what}",
                                  follow_symlinks=self.follow_symlinks)

        lst = inside(f"ImageSets/SegmentationContext/{self.split}.txt", "split list")
        ids = [relative_id(line.strip(), lst) for line in read_text(lst).splitlines()
               if line.strip()]
        if not ids:
            raise ValueError(f"split list '{lst}' names no images.")
        self.images: list[Path] = [inside(f"JPEGImages/{i}.jpg", "image") for i in ids]
        self.labels: list[Path] = [
            inside(f"SegmentationClassContext/{i}.png", "label") for i in ids
        ]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> ImageSample:
        index = check_index(index, len(self))
        image, label = read_pair(self.images[index], self.labels[index],
                                 pascal_context59_labels)
        return to_sample(image, label, self.size)

    def __repr__(self) -> str:
        return f"PascalContext59(root='{self.root}', split={self.split!r}, n={len(self)})"
