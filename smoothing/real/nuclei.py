"""Real labelled microscopy: nuclei vs background on a Data Science Bowl image.

The stardist 0.9.2 wheel ships a 512 x 512 fluorescence image of cell nuclei from
the 2018 Data Science Bowl and its instance labels (:mod:`smoothing.real.assets`).
This module reads them (tifffile, or ``.npy`` files), normalises the image, splits
it into a training and a held-out part, trains a small U-Net with Gaussian noise
augmentation on CPU, and gives the classical Otsu-threshold baseline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from smoothing._sampling import ABSTAIN
from smoothing.metrics import SegmentationMetrics
from smoothing.models.unet import SmallUNet
from smoothing.real._common import check_image_batch
from smoothing.real.assets import asset_path

__all__ = [
    "NucleiImage",
    "OtsuSegmenter",
    "TrainConfig",
    "load_nuclei",
    "nuclei_model",
    "normalize_percentile",
    "otsu_segmentation",
    "predict_clean",
    "read_array",
    "segmentation_scores",
    "split_columns",
    "train_nuclei_model",
]


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-d array from a ``.tif``/``.tiff`` (tifffile) or ``.npy`` file.

    Raises
    ------
    ValueError
        If the suffix is not one of those, or the array is not 2-d.
    ImportError
        For a TIFF file without tifffile (``pip install 'segcertify[real]'``).
    """
    from smoothing.datasets.folder import read_npy, read_tiff

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        arr = read_tiff(path)
    elif suffix == ".npy":
        arr = read_npy(path)
    else:
        raise ValueError(f"`path` must end in .tif, .tiff or .npy; got {path.name!r}.")
    if arr.ndim != 2:
        raise ValueError(f"{path.name} must hold a 2-d array; got shape {arr.shape}.")
    return arr


@dataclass(frozen=True)
class NucleiImage:
    """One microscopy image with instance labels.

    Attributes
    ----------
    image : numpy.ndarray
        float32 (H, W), raw intensities.
    instances : numpy.ndarray
        int32 (H, W): 0 = background, k > 0 = nucleus k.
    """

    image: np.ndarray
    instances: np.ndarray

    @property
    def foreground(self) -> np.ndarray:
        """int64 (H, W) semantic labels: 1 = nucleus, 0 = background."""
        return (self.instances > 0).astype(np.int64)

    @property
    def num_instances(self) -> int:
        """Number of labelled nuclei."""
        return int(np.unique(self.instances[self.instances > 0]).size)


def load_nuclei(image_path: str | os.PathLike | None = None,
                mask_path: str | os.PathLike | None = None, *,
                cache: str | os.PathLike | None = None) -> NucleiImage:
    """Load the nuclei image and its labels (default: the cached stardist assets).

    Parameters
    ----------
    image_path, mask_path : path, optional
        ``.tif``/``.tiff``/``.npy`` files of the same 2-d shape. Default: the
        assets ``'nuclei_image'`` and ``'nuclei_mask'``.
    cache : path, optional
        Cache directory for the defaults.

    Returns
    -------
    NucleiImage

    Raises
    ------
    smoothing.real.AssetMissingError
        If a default file is not in the cache (the message names the fetch command).
    ValueError
        If the shapes differ or the labels are negative or not integers.
    """
    img = read_array(image_path if image_path is not None
                     else asset_path("nuclei_image", cache=cache))
    lab = read_array(mask_path if mask_path is not None
                     else asset_path("nuclei_mask", cache=cache))
    if img.shape != lab.shape:
        raise ValueError(f"image and mask shapes differ: {img.shape} vs {lab.shape}.")
    if lab.dtype.kind not in "iub" or (lab.size and lab.min() < 0):
        raise ValueError(f"the mask must hold non-negative integer labels; got dtype {lab.dtype}.")
    return NucleiImage(img.astype(np.float32), lab.astype(np.int32))


def normalize_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.8, *,
                         reference: np.ndarray | None = None) -> np.ndarray:
    """Map the ``low``/``high`` percentiles of ``reference`` to 0/1 and clip to [0, 1].

    Parameters
    ----------
    image : numpy.ndarray
        Intensities.
    low, high : float, default 1, 99.8
        Percentiles, ``0 <= low < high <= 100`` (stardist's defaults).
    reference : numpy.ndarray, optional
        Where the percentiles are measured (e.g. only the training part);
        default ``image``.

    Returns
    -------
    numpy.ndarray
        float32, same shape, in [0, 1].

    Raises
    ------
    ValueError
        If the percentiles are out of order or the reference is constant.

    Examples
    --------
    >>> import numpy as np
    >>> normalize_percentile(np.arange(5.0), 0, 100).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= `low` < `high` <= 100; got {low!r}, {high!r}.")
    ref = image if reference is None else reference
    lo, hi = np.percentile(ref, [low, high])
    if not hi > lo:
        raise ValueError(f"the reference is constant between its percentiles ({lo!r}).")
    out = (np.asarray(image, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def split_columns(array: np.ndarray, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Split along the last axis: the first ``fraction`` of the columns, and the rest.

    Parameters
    ----------
    array : numpy.ndarray
        Any array with at least one axis (views are returned, no copy).
    fraction : float, default 0.5
        Share of the columns in the first part, in (0, 1), rounded to a column.

    Returns
    -------
    tuple of numpy.ndarray
        ``(first, rest)``.

    Raises
    ------
    ValueError
        If ``fraction`` is outside (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> a, b = split_columns(np.zeros((4, 10)), 0.5)
    >>> a.shape, b.shape
    ((4, 5), (4, 5))
    """
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must lie in (0, 1); got {fraction!r}.")
    cut = round(array.shape[-1] * fraction)
    return array[..., :cut], array[..., cut:]


def nuclei_model(width: int = 8, depth: int = 3) -> SmallUNet:
    """The base model: a :class:`~smoothing.models.SmallUNet`, 1 input channel, 2 classes.

    Parameters
    ----------
    width, depth : int, default 8, 3
        Channels of the first level and number of poolings (122,330 parameters
        with the defaults).

    Returns
    -------
    SmallUNet
        Freshly initialised (from torch's global RNG), in training mode.

    Examples
    --------
    >>> nuclei_model().in_channels, nuclei_model().num_classes
    (1, 2)
    """
    return SmallUNet(num_classes=2, in_channels=1, width=width, depth=depth)


@dataclass(frozen=True)
class TrainConfig:
    """Recipe of :func:`train_nuclei_model` (recorded in ``model.metadata``).

    Attributes
    ----------
    sigma : float
        Std of the Gaussian noise added to every training crop (>= 0); train at
        the sigma you certify at (Cohen et al., 2019).
    steps, batch_size, crop : int
        Optimiser steps, crops per step, crop side in pixels.
    lr, weight_decay : float
        AdamW; the learning rate decays with a cosine schedule.
    width, depth : int
        U-Net size (:func:`nuclei_model`).
    seed : int
        Seeds the initial weights, the crops, the flips and the noise.

    Raises
    ------
    ValueError
        If ``sigma`` < 0, an integer field < 1, ``lr`` <= 0 or ``weight_decay`` < 0.

    Examples
    --------
    >>> TrainConfig(sigma=0.25, steps=10).crop
    64
    """

    sigma: float
    steps: int = 600
    batch_size: int = 16
    crop: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 8
    depth: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) \
                or not 0 <= self.sigma < float("inf"):
            raise ValueError(f"`sigma` must be a finite number >= 0; got {self.sigma!r}.")
        for name in ("steps", "batch_size", "crop", "width", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(f"need `lr` > 0 and `weight_decay` >= 0; got {self.lr!r}, "
                             f"{self.weight_decay!r}.")


def _random_batch(image: torch.Tensor, target: torch.Tensor, cfg: TrainConfig,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random crops (flipped / transposed at random) with noise."""
    h, w = image.shape
    ys = torch.randint(0, h - cfg.crop + 1, (cfg.batch_size,), generator=gen).tolist()
    xs = torch.randint(0, w - cfg.crop + 1, (cfg.batch_size,), generator=gen).tolist()
    aug = torch.randint(0, 2, (cfg.batch_size, 3), generator=gen).tolist()
    xb, yb = [], []
    for y0, x0, (fh, fv, tr) in zip(ys, xs, aug, strict=True):
        xi = image[y0:y0 + cfg.crop, x0:x0 + cfg.crop]
        yi = target[y0:y0 + cfg.crop, x0:x0 + cfg.crop]
        dims = [d for d, flag in ((0, fh), (1, fv)) if flag]
        if dims:
            xi, yi = xi.flip(dims), yi.flip(dims)
        if tr:
            xi, yi = xi.T, yi.T
        xb.append(xi)
        yb.append(yi)
    x = torch.stack(xb).unsqueeze(1)
    if cfg.sigma > 0:
        x = x + cfg.sigma * torch.randn(x.shape, generator=gen)
    return x, torch.stack(yb)


def train_nuclei_model(image: np.ndarray, target: np.ndarray, config: TrainConfig, *,
                       progress: bool = False) -> SmallUNet:
    """Train :func:`nuclei_model` on one image with Gaussian noise augmentation (CPU).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) normalised intensities in [0, 1] (the training part only).
    target : numpy.ndarray
        (H, W) int labels, 1 = nucleus, 0 = background.
    config : TrainConfig
        The recipe; ``config.seed`` makes the run reproducible (the global torch
        RNG is left as it was).
    progress : bool, default False
        Show a tqdm bar over the steps (with the running loss).

    Returns
    -------
    SmallUNet
        In eval mode; ``model.metadata`` holds the recipe, the last loss and the
        training time.

    Raises
    ------
    ValueError
        If the shapes differ or the image is smaller than one crop.

    Notes
    -----
    The noisy crops are **not** clipped, matching what the base model sees inside
    SEGCERTIFY (``x + noise``). Loss: pixel-wise cross-entropy. Cost: with the
    defaults (600 steps of 16 crops of 64 x 64) about 1 minute on one CPU thread.
    """
    if image.shape != target.shape or min(image.shape) < config.crop:
        raise ValueError(f"need image and target of one shape, at least {config.crop} pixels "
                         f"each side; got {image.shape} and {target.shape}.")
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = nuclei_model(config.width, config.depth)
    x_all = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    y_all = torch.from_numpy(np.ascontiguousarray(target, dtype=np.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
    model.train()
    t0 = time.perf_counter()
    loss_value = float("nan")
    steps: Iterable[int] = range(config.steps)
    if progress:
        from tqdm.auto import tqdm

        steps = bar = tqdm(steps, desc=f"train U-Net sigma={config.sigma:g}", leave=False)
    for step in steps:
        xb, yb = _random_batch(x_all, y_all, config, gen)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if progress and step % 20 == 0:
            bar.set_postfix(loss=f"{loss_value:.3f}")
    model.eval()
    model.metadata = {"recipe": asdict(config),
                      "final_loss": loss_value, "train_seconds": time.perf_counter() - t0}
    return model


def predict_clean(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """The base model's labels on a clean image (no noise, eval mode).

    Parameters
    ----------
    model : torch.nn.Module
        (B, 1, H, W) -> (B, C, H, W) scores, on the CPU.
    image : numpy.ndarray
        (H, W) normalised intensities.

    Returns
    -------
    numpy.ndarray
        int64 (H, W) argmax labels.
    """
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        return model.eval()(x).argmax(1)[0].numpy()


def otsu_segmentation(image: np.ndarray) -> np.ndarray:
    """Classical baseline: nucleus where the intensity exceeds Otsu's threshold.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) intensities, not constant.

    Returns
    -------
    numpy.ndarray
        int64 (H, W) labels, 1 = nucleus.
    """
    from skimage.filters import threshold_otsu

    return (image > threshold_otsu(image)).astype(np.int64)


class OtsuSegmenter:
    """Otsu thresholding as a SEGCERTIFY base model (a plain callable, no weights).

    Every image of the batch gets its own threshold (:func:`otsu_segmentation` on
    that image), so under smoothing the threshold is re-estimated on every noisy
    copy; the scores are one-hot ``[background, nucleus]``.

    Attributes
    ----------
    layout : str
        ``'BCHW'``.
    num_classes : int
        2.

    Notes
    -----
    **Cost.** One histogram per image (about 2 ms for 512 x 256 pixels), on the CPU.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(2, 1, 4, 4); x[:, :, :, 2:] = 1.0
    >>> OtsuSegmenter()(x).argmax(1)[0, 0].tolist()
    [0, 0, 1, 1]
    """

    layout: ClassVar[str] = "BCHW"
    num_classes: ClassVar[int] = 2

    def __repr__(self) -> str:
        return "OtsuSegmenter()"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (B, 2, H, W) in ``x``'s dtype and device for images (B, 1, H, W).

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor.
        ValueError
            If ``x`` is not (B, 1, H, W).
        """
        check_image_batch(x, 1, "grey images")
        imgs = x[:, 0].detach().cpu().numpy()
        fg = np.stack([otsu_segmentation(im) if np.ptp(im) > 0 else np.zeros(im.shape, np.int64)
                       for im in imgs])
        fg_t = torch.from_numpy(fg).to(device=x.device, dtype=x.dtype)
        return torch.stack([1.0 - fg_t, fg_t], dim=1)


def segmentation_scores(pred: np.ndarray | torch.Tensor, target: np.ndarray) -> dict[str, float]:
    """Pixel accuracy, foreground (nucleus) IoU and abstention of binary labels.

    ``ABSTAIN`` (-1) counts as wrong: an abstained nucleus pixel is a false negative
    of the IoU, an abstained background pixel is neither in the prediction nor in
    the ground truth of the foreground.

    Parameters
    ----------
    pred : numpy.ndarray or torch.Tensor of int
        Labels in {ABSTAIN, 0, 1}, e.g. ``SegmentationCertificate.labels``.
    target : numpy.ndarray
        Ground truth in {0, 1}, same shape.

    Returns
    -------
    dict
        ``accuracy`` (correct and not abstained, over all pixels), ``iou`` (of
        class 1, 0 if both are empty) and ``abstain`` (fraction of ABSTAIN).

    Examples
    --------
    >>> import numpy as np
    >>> s = segmentation_scores(np.array([1, 1, -1, 0]), np.array([1, 0, 1, 0]))
    >>> s["accuracy"], round(s["iou"], 4), s["abstain"]
    (0.5, 0.3333, 0.25)
    """
    m = SegmentationMetrics(2, ignore_index=None)
    pred = pred.numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    m.update(pred.astype(np.int64), np.asarray(target, dtype=np.int64))
    return {"accuracy": m.accuracy, "iou": float(m.iou_dataset()[1]),
            "abstain": float(np.mean(pred == ABSTAIN))}
