"""Shared helpers for the data sets: seeding, sample types, validation, file reading.

Files under a data root are untrusted. Every file a reader opens goes through
:func:`resolve_inside`: its real path (symbolic links resolved) must lie inside the
real path of the root, unless the caller passes ``follow_symlinks=True``; names
read from list files go through :func:`relative_id` (no absolute paths, drives or
``..``) whatever ``follow_symlinks`` says.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "IGNORE_INDEX",
    "SPLITS",
    "ImageSample",
    "PointCloudSample",
    "item_rng",
    "normalize_point_cloud",
    "resample_indices",
]

#: Label value of pixels or points that no metric counts (Cityscapes convention).
IGNORE_INDEX = 255

#: Split names of the built-in synthetic data sets, in the order of their seed streams.
SPLITS = ("train", "val", "test")


class ImageSample(NamedTuple):
    """One image-segmentation item.

    Attributes
    ----------
    image : torch.Tensor
        float32, shape (3, H, W), values in [0, 1].
    label : torch.Tensor
        int64, shape (H, W); a class index or ``IGNORE_INDEX`` (255).
    """

    image: torch.Tensor
    label: torch.Tensor


class PointCloudSample(NamedTuple):
    """One point-cloud part-segmentation item.

    Attributes
    ----------
    points : torch.Tensor
        float32, shape (N, 6) ``[x, y, z, nx, ny, nz]`` (or (N, 3) without normals),
        centred at the origin with the furthest point at distance 1.
    labels : torch.Tensor
        int64, shape (N,); global ShapeNet part ids in [0, 50).
    category : int
        Index of the object category in ``SHAPENET_CATEGORIES``.
    """

    points: torch.Tensor
    labels: torch.Tensor
    category: int


def check_index(index: int, length: int) -> int:
    """``index`` in [0, length) (negative indices count from the end), or IndexError."""
    if not -length <= index < length:
        raise IndexError(f"index {index} out of range for a data set of length {length}")
    return index % length


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {set(choices)}; got {value!r}.")
    return str(value)


def check_size(size: object) -> tuple[int, int] | None:
    """Validate an optional output size ``(height, width)``."""
    if size is None:
        return None
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size)
        or min(size) < 1
    ):
        raise ValueError(
            f"`size` must be None or a pair (height, width) of ints >= 1; got {size!r}."
        )
    return int(size[0]), int(size[1])


def item_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` in seed stream ``stream`` (e.g. a split).

    Items are independent of each other and of the order they are read in.

    Examples
    --------
    >>> a = item_rng(0, 2, 5).random()
    >>> b = item_rng(0, 2, 5).random()
    >>> a == b, a == item_rng(0, 2, 6).random()
    (True, False)
    """
    return np.random.default_rng([int(seed), int(stream), int(index)])


def normalize_point_cloud(points: np.ndarray) -> np.ndarray:
    """Centre the positions at their mean and scale the furthest point to distance 1.

    Parameters
    ----------
    points : numpy.ndarray
        Shape (N, 3) or (N, 6); columns 3..5, if present, are unit normals and are
        left unchanged (a translation and a positive uniform scaling keep them).

    Returns
    -------
    numpy.ndarray
        float32 copy of ``points`` with normalised positions.

    Raises
    ------
    ValueError
        If ``points`` is not (N, 3) or (N, 6) with N >= 1, or all points coincide.

    Examples
    --------
    >>> import numpy as np
    >>> out = normalize_point_cloud(np.array([[0.0, 0, 0], [4.0, 0, 0]]))
    >>> out.tolist()
    [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] not in (3, 6) or pts.shape[0] < 1:
        raise ValueError(f"`points` must have shape (N, 3) or (N, 6) with N >= 1; got {pts.shape}.")
    out = pts.copy()
    out[:, :3] -= out[:, :3].mean(axis=0)
    scale = np.sqrt((out[:, :3] ** 2).sum(axis=1)).max()
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("`points` must contain at least two distinct finite positions.")
    out[:, :3] /= scale
    return out.astype(np.float32)


def resample_indices(n_available: int, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Indices that pick ``num_points`` of ``n_available`` points.

    Without replacement when there are enough points; otherwise every point once plus
    a random draw (with replacement) of the rest, in random order.

    Examples
    --------
    >>> import numpy as np
    >>> idx = resample_indices(3, 5, np.random.default_rng(0))
    >>> len(idx), sorted(set(idx.tolist()))
    (5, [0, 1, 2])
    """
    if n_available < 1:
        raise ValueError(f"`n_available` must be >= 1; got {n_available}.")
    if n_available >= num_points:
        return np.sort(rng.choice(n_available, size=num_points, replace=False))
    extra = rng.integers(0, n_available, size=num_points - n_available)
    return rng.permutation(np.concatenate([np.arange(n_available), extra]))


def existing_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` as a Path, or raise FileNotFoundError naming it."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{what} not found: directory '{p}' does not exist.")
    return p


def existing_file(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` as a Path, or raise FileNotFoundError naming it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: file '{p}' does not exist.")
    return p


def data_root(path: str | os.PathLike[str], what: str) -> Path:
    """The real path of the directory ``path`` (symbolic links resolved).

    Raises FileNotFoundError naming it if it is not a directory. A root that is
    itself a link is fine: confinement starts at the folder it leads to.
    """
    return Path(os.path.realpath(existing_dir(path, what)))


def resolve_inside(root: Path, relpath: str | os.PathLike[str], what: str, *,
                   follow_symlinks: bool = False, folder: bool = False) -> Path:
    """The file (or, with ``folder``, the folder) ``root / relpath``, refused if it
    lies outside ``root``.

    Parameters
    ----------
    root : pathlib.Path
        The data root as returned by :func:`data_root` (a real path).
    relpath : str or os.PathLike
        The file, relative to ``root``.
    what : str
        What the file is, for messages ("Cityscapes label").
    follow_symlinks : bool, default False
        Accept a file whose symbolic links lead outside ``root``. A link that stays
        inside ``root`` is always fine.
    folder : bool, default False
        ``root / relpath`` must be a folder instead of a file.

    Returns
    -------
    pathlib.Path
        The real path of the file (``root / relpath`` itself with
        ``follow_symlinks``), so that what is checked is what is opened.

    Raises
    ------
    FileNotFoundError
        If the file (folder) does not exist (naming ``root / relpath``).
    ValueError
        If ``relpath`` climbs out of ``root`` (``..``, an absolute path), or, unless
        ``follow_symlinks``, the file's real path lies outside ``root``.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
    ...     root = data_root(a, "root")
    ...     _ = (root / "in.txt").write_text("x")
    ...     _ = (Path(b) / "secret.txt").write_text("y")
    ...     os.symlink(root / "in.txt", root / "link.txt")  # stays inside: fine
    ...     os.symlink(Path(b) / "secret.txt", root / "out.txt")
    ...     print(resolve_inside(root, "link.txt", "a file").name)
    ...     try:
    ...         resolve_inside(root, "out.txt", "a file")
    ...     except ValueError as err:
    ...         print(str(err).split(", ")[1])  # doctest: +ELLIPSIS
    in.txt
    outside the data root '...'; set `follow_symlinks` to read files outside the root.
    """
    path = root / relpath
    if not Path(os.path.normpath(path)).is_relative_to(root):
        raise ValueError(f"{what} '{path}' is outside the data root '{root}'.")
    (existing_dir if folder else existing_file)(path, what)
    if follow_symlinks:
        return path
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root):
        raise ValueError(
            f"{what} '{path}' leads through a symbolic link to '{real}', outside the data "
            f"root '{root}'; set `follow_symlinks` to read files outside the root."
        )
    return real


def read_text(path: Path) -> str:
    """The UTF-8 text of a list file, or ValueError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"'{path}' is not UTF-8 text: {err}") from err


def _pil_image():
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - Pillow ships with matplotlib
        raise ImportError("Reading image files needs Pillow: `pip install pillow`.") from err
    return Image


def read_rgb(path: Path) -> np.ndarray:
    """Read an 8-bit image file as float32 (3, H, W) in [0, 1].

    Raises ValueError naming the file if it cannot be decoded (corrupt, truncated,
    not an image).
    """
    Image = _pil_image()
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    except FileNotFoundError:
        raise
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise ValueError(f"image file '{path}' cannot be read: {err}") from err
    return np.ascontiguousarray(arr.transpose(2, 0, 1) / 255.0)


def read_label_png(path: Path) -> np.ndarray:
    """Read a single-channel (mode L or P) label PNG as an int64 (H, W) array of raw values.

    Raises ValueError naming the file if it cannot be decoded or has several channels.
    """
    Image = _pil_image()
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("L", "P", "I", "I;16"):
                return np.asarray(im).astype(np.int64)
    except FileNotFoundError:
        raise
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise ValueError(f"label image '{path}' cannot be read: {err}") from err
    raise ValueError(
        f"label image '{path}' must be a single-channel PNG (mode L, P or I); got mode {mode!r}."
    )


def read_pair(image_path: Path, label_path: Path,
              convert: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Read an image and its label map and check them, naming the file at fault.

    ``convert`` maps the raw label values (its ValueError is re-raised with the
    label file's name). The label map must have the image's height and width.
    """
    image = read_rgb(image_path)
    raw = read_label_png(label_path)
    try:
        label = convert(raw)
    except ValueError as err:
        raise ValueError(f"label image '{label_path}': {err}") from err
    if label.shape != image.shape[1:]:
        raise ValueError(
            f"label image '{label_path}' is {label.shape[0]} x {label.shape[1]} but its image "
            f"'{image_path}' is {image.shape[1]} x {image.shape[2]} (height x width)."
        )
    if label.size == 0:
        raise ValueError(f"image '{image_path}' and its labels are empty (0 pixels).")
    return image, label


def relative_id(item: str, source: Path) -> str:
    """A file id from a list file, refused if it could name a file outside the root.

    Absolute paths, drive letters, ``..`` components and NUL characters are refused
    (ValueError naming the list), under POSIX and Windows spelling alike.

    Examples
    --------
    >>> from pathlib import Path
    >>> relative_id("sub/2008_000002", Path("val.txt"))
    'sub/2008_000002'
    >>> relative_id("../../etc/passwd", Path("val.txt"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'val.txt' names '../../etc/passwd', which is outside the data root: ...
    """
    bad = not isinstance(item, str) or not item or "\0" in item
    for pure in () if bad else (PurePosixPath(item), PureWindowsPath(item)):
        bad = bad or pure.is_absolute() or bool(pure.drive or pure.root) or ".." in pure.parts
    if bad:
        raise ValueError(
            f"'{source}' names {item!r}, which is outside the data root: "
            "entries must be plain file ids relative to the data set's folders."
        )
    return item


def to_sample(image: np.ndarray, label: np.ndarray, size: tuple[int, int] | None) -> ImageSample:
    """Wrap arrays as tensors, resizing to ``size`` (bilinear image, nearest label)."""
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    lab = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
    if size is not None and tuple(img.shape[1:]) != size:
        img = torch.nn.functional.interpolate(
            img[None], size=size, mode="bilinear", align_corners=False, antialias=True
        )[0].clamp_(0.0, 1.0)
        lab = torch.nn.functional.interpolate(lab[None, None].float(), size=size, mode="nearest")
        lab = lab[0, 0].long()
    return ImageSample(img, lab)
