"""Your own images and label maps in a plain folder.

Layout (file names are matched by stem, the name without its suffix)::

    root/
      images/{stem}.png        # or .jpg, .jpeg, .tif, .tiff, .npy
      masks/{stem}.png         # or .tif, .tiff, .npy: one integer label per pixel

or, with ``split="train"``, the same two folders under ``root/train/``. See
``docs/data-and-models.md`` for a worked example.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from smoothing.datasets._common import (
    IGNORE_INDEX,
    ImageSample,
    check_index,
    check_size,
    data_root,
    read_label_png,
    resolve_inside,
    to_sample,
)

__all__ = ["IMAGE_SUFFIXES", "MASK_SUFFIXES", "FolderDataset"]

#: File types read as images (PNG/JPEG by Pillow, TIFF by tifffile, NPY by numpy).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")
#: File types read as label maps (lossless only: no JPEG).
MASK_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".npy")


def _plain_name(name: str, what: str) -> str:
    """A folder name relative to the root: no absolute path, drive or ``..``."""
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if not name or pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            raise ValueError(f"`{what}` must be a folder name inside the data root; got "
                             f"{name!r}.")
    return name


def _list(folder: Path, root: Path, suffixes: tuple[str, ...], what: str,
          follow_symlinks: bool) -> dict[str, Path]:
    """``{stem: file}`` of a folder; hidden files are skipped, anything else is refused.

    Every file is confined to ``root`` (:func:`~smoothing.datasets._common.resolve_inside`)
    unless ``follow_symlinks``.
    """
    files: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_file():  # a folder, a broken link, a device
            raise ValueError(f"{what} folder '{folder}' holds '{entry.name}', which is not a "
                             "file; the folder must hold files only.")
        resolve_inside(root, entry.relative_to(root), f"{what} file",
                       follow_symlinks=follow_symlinks)
        if entry.suffix.lower() not in suffixes:
            raise ValueError(f"{what} file '{entry}' has suffix {entry.suffix!r}; accepted: "
                             f"{', '.join(suffixes)}.")
        stem = entry.name[: -len(entry.suffix)]
        if stem in files:
            raise ValueError(f"two {what} files have the stem {stem!r}: '{files[stem].name}' "
                             f"and '{entry.name}'.")
        files[stem] = entry
    return files


def read_tiff(path: Path) -> np.ndarray:
    """A TIFF file as an array (tifffile); ValueError naming the file if unreadable."""
    try:
        import tifffile
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("reading TIFF files needs tifffile: "
                          "`pip install 'segcertify[real]'` (or `pip install tifffile`).") from err
    try:
        return np.asarray(tifffile.imread(path))
    except Exception as err:  # tifffile raises many types for bad files
        raise ValueError(f"file '{path}' cannot be read as TIFF: {err}") from err


def read_npy(path: Path) -> np.ndarray:
    """A .npy file as an array, never unpickling; ValueError naming the file."""
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: object arrays fail
    except Exception as err:  # ValueError for object arrays, OSError/EOFError for bad files
        raise ValueError(f"file '{path}' cannot be read as a .npy array (no pickled "
                         f"objects): {err}") from err


def _scale(arr: np.ndarray, path: Path) -> np.ndarray:
    """Image values as float32: 8-bit / 255, 16-bit / 65535, floats as stored (finite)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"image file '{path}' holds NaN or infinite values.")
        return out
    raise ValueError(f"image file '{path}' has dtype {arr.dtype}; accepted: uint8 (/255), "
                     "uint16 (/65535) or floating point (as stored).")


def read_image(path: Path, channels: int) -> np.ndarray:
    """An image file as float32 (channels, H, W).

    PNG/JPEG are converted by Pillow to grey (``channels=1``) or RGB (3); TIFF and
    NPY arrays must be (H, W) for one channel or (H, W, channels).
    """
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        from PIL import Image

        mode = {1: "L", 3: "RGB"}.get(channels)
        if mode is None:
            raise ValueError(f"image file '{path}': PNG/JPEG images are read with 1 or 3 "
                             f"channels; `channels` is {channels} (use TIFF or NPY).")
        try:
            with Image.open(path) as im:
                if im.mode in ("I", "I;16", "I;16B", "F") and channels == 1:
                    arr = np.asarray(im)
                    arr = arr.astype(np.uint16) if im.mode.startswith("I;16") else arr
                else:
                    arr = np.asarray(im.convert(mode))
        except Exception as err:  # PIL raises OSError, SyntaxError, ... for bad files
            raise ValueError(f"image file '{path}' cannot be read: {err}") from err
        if arr.dtype == np.int32:  # Pillow's 32-bit grey: only 16-bit values are images
            if arr.min() < 0 or arr.max() > 65535:
                raise ValueError(f"image file '{path}' holds values outside 0..65535.")
            arr = arr.astype(np.uint16)
    else:
        arr = read_tiff(path) if suffix in (".tif", ".tiff") else read_npy(path)
        if arr.ndim == 2 and channels == 1:
            pass
        elif not (arr.ndim == 3 and arr.shape[2] == channels):
            want = "(H, W)" if channels == 1 else f"(H, W, {channels})"
            raise ValueError(f"image file '{path}' holds an array of shape {arr.shape}; "
                             f"expected {want} for `channels` = {channels}.")
    arr = _scale(np.asarray(arr), path)
    return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))


def read_mask(path: Path) -> np.ndarray:
    """A label file as int64 (H, W) raw values."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        return read_label_png(path)
    arr = read_tiff(path) if suffix in (".tif", ".tiff") else read_npy(path)
    if arr.ndim != 2:
        raise ValueError(f"label file '{path}' must hold a 2-d array (H, W); got shape "
                         f"{arr.shape}.")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"label file '{path}' must hold integer labels; got dtype {arr.dtype}.")
    return arr.astype(np.int64)


class FolderDataset:
    """Images and label maps from a plain folder (``root/images``, ``root/masks``).

    Parameters
    ----------
    root : str or os.PathLike
        The data root. Every file must resolve inside it: symbolic links that lead
        out of the root are refused (unless ``follow_symlinks``).
    num_classes : int
        Number of classes, 2..255; labels are ``0 .. num_classes - 1``.
    ignore_index : int, default 255
        Label value of unlabelled pixels in the mask files (any integer outside
        ``0 .. num_classes - 1``); it is returned as 255, the package's ignore label.
    class_names : sequence of str, optional
        One name per class (default ``'0'``, ``'1'``, ...).
    split : str, optional
        Read ``root/{split}/images`` and ``root/{split}/masks`` instead.
    channels : int, default 3
        Image channels. PNG/JPEG files are converted to RGB (3) or grey (1); TIFF and
        NPY arrays must be (H, W) (1 channel) or (H, W, channels).
    size : (int, int), optional
        Resize every item to (height, width): images bilinearly, labels by nearest
        neighbour.
    images, masks : str, default 'images', 'masks'
        Names of the two folders.
    follow_symlinks : bool, default False
        Accept files and folders whose symbolic links lead outside ``root``
        (:func:`~smoothing.datasets._common.resolve_inside`, as the other readers);
        ``split``, ``images`` and ``masks`` must still be names inside the root.

    Attributes
    ----------
    files : list of (pathlib.Path, pathlib.Path)
        The (image, mask) pairs, sorted by stem.
    classes : tuple of str
    num_classes, ignore_index, channels : int

    Raises
    ------
    FileNotFoundError
        If the root or a folder is missing.
    ValueError
        At construction: an image without a mask or a mask without an image (named),
        a file of another type, two files with one stem, a path out of the root, no
        images, bad arguments. When an item is read: a file that cannot be decoded,
        an image of the wrong channels or dtype, a label outside the classes (the
        message names the file and the value), a mask of another size than its
        image.

    Notes
    -----
    Image values: 8-bit files are divided by 255, 16-bit by 65535, floating-point
    arrays are taken as stored. NPY files are read with ``allow_pickle=False``.
    Items are :class:`~smoothing.datasets.ImageSample` ``(image, label)``: float32
    (channels, H, W) and int64 (H, W) with 255 = ignore.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "images").mkdir(); (root / "masks").mkdir()
    >>> Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(root / "images" / "a.png")
    >>> np.save(root / "masks" / "a.npy", np.array([[0, 1, 2, 255, 0, 0]] * 4))
    >>> ds = FolderDataset(root, num_classes=3, class_names=["sky", "road", "car"])
    >>> image, label = ds[0]
    >>> image.shape, label[0].tolist(), ds.classes
    (torch.Size([3, 4, 6]), [0, 1, 2, 255, 0, 0], ('sky', 'road', 'car'))
    """

    def __init__(self, root: str | os.PathLike[str], num_classes: int, *,
                 ignore_index: int = IGNORE_INDEX, class_names: Sequence[str] | None = None,
                 split: str | None = None, channels: int = 3,
                 size: tuple[int, int] | None = None, images: str = "images",
                 masks: str = "masks", follow_symlinks: bool = False) -> None:
        from smoothing._sampling import check_int

        self.num_classes = check_int(num_classes, "num_classes", low=2)
        if self.num_classes > 255:
            raise ValueError(f"`num_classes` must be <= 255 (255 is the ignore label); got "
                             f"{num_classes!r}.")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer):
            raise TypeError(f"`ignore_index` must be an integer; got {ignore_index!r}.")
        if 0 <= ignore_index < self.num_classes:
            raise ValueError(f"`ignore_index` must not be a class (0..{self.num_classes - 1}); "
                             f"got {ignore_index!r}.")
        self.ignore_index = int(ignore_index)
        if class_names is None:
            self.classes = tuple(str(c) for c in range(self.num_classes))
        else:
            names = tuple(class_names)
            if len(names) != self.num_classes or not all(isinstance(n, str) for n in names):
                raise ValueError(f"`class_names` must be {self.num_classes} strings, one per "
                                 f"class; got {list(names)!r}.")
            self.classes = names
        self.channels = check_int(channels, "channels")
        self.size = check_size(size)
        self.follow_symlinks = bool(follow_symlinks)
        self.root = data_root(Path(root).expanduser(), "data root")
        base = Path(_plain_name(split, "split")) if split is not None else Path()
        self.split = split
        image_dir, mask_dir = (
            resolve_inside(self.root, base / _plain_name(name, what), f"{what[:-1]} folder",
                           follow_symlinks=self.follow_symlinks, folder=True)
            for name, what in ((images, "images"), (masks, "masks")))
        found = _list(image_dir, self.root, IMAGE_SUFFIXES, "image", self.follow_symlinks)
        labels = _list(mask_dir, self.root, MASK_SUFFIXES, "mask", self.follow_symlinks)
        if not found:
            raise ValueError(f"the image folder '{image_dir}' holds no images "
                             f"({', '.join(IMAGE_SUFFIXES)}).")
        lonely = sorted(set(found) - set(labels))
        if lonely:
            raise ValueError(f"image '{found[lonely[0]]}' has no mask in '{mask_dir}' (a file "
                             f"with the stem {lonely[0]!r}); {len(lonely)} image(s) lack one.")
        orphans = sorted(set(labels) - set(found))
        if orphans:
            raise ValueError(f"mask '{labels[orphans[0]]}' has no image in '{image_dir}'; "
                             f"{len(orphans)} mask(s) lack one.")
        self.files = [(found[s], labels[s]) for s in sorted(found)]

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"FolderDataset('{self.root}', num_classes={self.num_classes}, "
                f"{len(self)} images)")

    def __getitem__(self, index: int) -> ImageSample:
        image_path, mask_path = self.files[check_index(index, len(self))]
        image = read_image(self._resolve(image_path, "image file"), self.channels)
        raw = read_mask(self._resolve(mask_path, "mask file"))
        if raw.shape != image.shape[1:]:
            raise ValueError(f"label file '{mask_path}' is {raw.shape[0]} x {raw.shape[1]} but "
                             f"its image '{image_path}' is {image.shape[1]} x "
                             f"{image.shape[2]} (height x width).")
        ignored = raw == self.ignore_index
        bad = ~ignored & ((raw < 0) | (raw >= self.num_classes))
        if bad.any():
            value = int(raw[bad][0])
            raise ValueError(f"label file '{mask_path}' holds label {value}; labels must be "
                             f"0..{self.num_classes - 1} or the `ignore_index` "
                             f"{self.ignore_index}.")
        label = np.where(ignored, IGNORE_INDEX, raw)
        return to_sample(image, label, self.size)

    def _resolve(self, path: Path, what: str) -> Path:
        """A listed file, confined to the root again when it is opened."""
        return resolve_inside(self.root, path.relative_to(self.root), what,
                              follow_symlinks=self.follow_symlinks)

    def fingerprint(self) -> str:
        """SHA-256 of the settings, the file names and every file's bytes.

        The root's location is not part of it: a moved folder keeps its fingerprint.
        """
        h = hashlib.sha256(repr((self.num_classes, self.ignore_index, self.channels,
                                 self.size, self.split)).encode())
        for image_path, mask_path in self.files:
            for p, what in ((image_path, "image file"), (mask_path, "mask file")):
                h.update(p.relative_to(self.root).as_posix().encode())
                h.update(hashlib.sha256(self._resolve(p, what).read_bytes()).digest())
        return h.hexdigest()
