"""Model adapters: bring any torch segmentation model to SEGCERTIFY.

Every adapter is a :class:`torch.nn.Module` with a ``layout`` attribute that tells
:class:`~smoothing.SegCertify` (and :func:`~smoothing.pgd_l2`) where the classes are
in its output:

==========================  ==========================  ==========================
adapter                     wraps a model returning     returns (``layout``)
==========================  ==========================  ==========================
``ImageSegmenter``          (B, C, h, w) or (B, h, w, C)  (B, C, H, W) ``'BCHW'``
``PointCloudSegmenter``     (B, N, C) or (B, C, N)      (B, N, C) ``'BNC'``
``Averaged``                any declared layout         mean softmax of ``runs`` calls
``MultiScale``              (B, C, h, w) image logits   mean softmax over scales/flips
``Denoised``                any (after a denoiser)      the model's layout
``OutputSelector``          a dict or a tuple           one entry (e.g. ``"out"``)
==========================  ==========================  ==========================

The certificate is about the *composite* model: a normalisation, a denoiser or a
multi-scale average inside the adapter is part of the base classifier ``f``, and
the noise is added to the adapter's input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from smoothing._sampling import LAYOUTS, check_int

__all__ = [
    "Averaged",
    "Denoised",
    "ImageSegmenter",
    "MultiScale",
    "OutputSelector",
    "PointCloudSegmenter",
]


def _declared_layout(model: nn.Module, layout: str | None, name: str) -> str:
    """``layout`` if given, else the wrapped model's ``layout`` attribute."""
    if layout is None:
        layout = getattr(model, "layout", None)
        if layout is None:
            raise ValueError(
                f"{name} needs the layout of the wrapped model's output: pass `layout=` "
                f"(one of {', '.join(repr(k) for k in LAYOUTS)}) or wrap the model in "
                "ImageSegmenter / PointCloudSegmenter first."
            )
    if layout not in LAYOUTS:
        raise ValueError(
            f"`layout` must be one of {', '.join(repr(k) for k in LAYOUTS)}; got {layout!r}."
        )
    return layout


def _check_module(model: object, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`{name}` must be a torch.nn.Module; got {type(model).__name__}.")
    return model


class ImageSegmenter(nn.Module):
    """An image segmentation model with an explicit contract: (B, C, H, W) logits.

    Parameters
    ----------
    model : torch.nn.Module
        Maps images (B, channels, H, W) to logits (B, C, h, w) (``layout='BCHW'``)
        or (B, h, w, C) (``layout='BHWC'``).
    layout : {'BCHW', 'BHWC'}, default 'BCHW'
        Layout of ``model``'s output; the adapter always returns (B, C, H, W).
    mean, std : sequence of float, optional
        Per-channel normalisation applied inside the adapter,
        ``(x - mean) / std``, so the noise is added in the un-normalised input
        space (e.g. pixels in [0, 1]) where the radius is measured.
    resize : bool, default False
        Upsample logits of a smaller resolution (h, w) bilinearly to the input's
        (H, W) (models with strided outputs, e.g. HRNet's 1/4 resolution).

    Raises
    ------
    TypeError
        If ``model`` is not a module.
    ValueError
        If ``layout`` is not an image layout or ``mean``/``std`` are invalid.

    Examples
    --------
    >>> import torch
    >>> from smoothing.adapters import ImageSegmenter
    >>> net = torch.nn.Conv2d(3, 5, kernel_size=4, stride=4)   # 1/4 resolution
    >>> seg = ImageSegmenter(net, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], resize=True)
    >>> seg(torch.rand(2, 3, 32, 48)).shape, seg.layout
    (torch.Size([2, 5, 32, 48]), 'BCHW')
    """

    layout = "BCHW"

    def __init__(self, model: nn.Module, *, layout: str = "BCHW",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 resize: bool = False) -> None:
        super().__init__()
        self.model = _check_module(model)
        if layout not in ("BCHW", "BHWC"):
            raise ValueError(f"`layout` must be 'BCHW' or 'BHWC'; got {layout!r}.")
        self.model_layout = layout
        self.resize = bool(resize)
        if (mean is None) != (std is None):
            raise ValueError("pass both `mean` and `std`, or neither.")
        if mean is not None:
            m = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
            s = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
            valid = bool((s > 0).all()) and bool(torch.isfinite(m).all() & torch.isfinite(s).all())
            if m.shape != s.shape or not valid:
                raise ValueError(
                    "`mean` and `std` must have one finite value per channel, std > 0."
                )
            self.register_buffer("mean", m, persistent=False)
            self.register_buffer("std", s, persistent=False)
        else:
            self.mean = self.std = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, C, H, W) at the input's resolution (with ``resize=True``)."""
        if self.mean is not None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = self.model(x)
        if self.model_layout == "BHWC":
            out = out.permute(0, 3, 1, 2)
        if self.resize and out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out


class PointCloudSegmenter(nn.Module):
    """A point-cloud part-segmentation model with (B, N, C) logits.

    Parameters
    ----------
    model : torch.nn.Module
        Maps point clouds to per-point logits.
    layout : {'BNC', 'BCN'}, default 'BNC'
        Layout of ``model``'s output: (B, N, C) (e.g. ``smoothing.models.PointNetSeg``)
        or (B, C, N) (e.g. the PointNet++ reference code). The adapter returns (B, N, C).
    channels_first : bool, default False
        ``True`` if ``model`` expects its input as (B, d, N) rather than the
        (B, N, d) the samplers produce; the adapter transposes.

    Raises
    ------
    TypeError
        If ``model`` is not a module.
    ValueError
        If ``layout`` is not a point-cloud layout.

    Examples
    --------
    >>> import torch
    >>> from smoothing.adapters import PointCloudSegmenter
    >>> net = torch.nn.Conv1d(3, 4, kernel_size=1)           # (B, 3, N) -> (B, 4, N)
    >>> seg = PointCloudSegmenter(net, layout="BCN", channels_first=True)
    >>> seg(torch.randn(2, 100, 3)).shape, seg.layout
    (torch.Size([2, 100, 4]), 'BNC')
    """

    layout = "BNC"

    def __init__(self, model: nn.Module, *, layout: str = "BNC",
                 channels_first: bool = False) -> None:
        super().__init__()
        self.model = _check_module(model)
        if layout not in ("BNC", "BCN"):
            raise ValueError(f"`layout` must be 'BNC' or 'BCN'; got {layout!r}.")
        self.model_layout = layout
        self.channels_first = bool(channels_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-point logits (B, N, C)."""
        out = self.model(x.transpose(1, 2) if self.channels_first else x)
        return out.transpose(1, 2) if self.model_layout == "BCN" else out


class Averaged(nn.Module):
    """Average the class probabilities of ``runs`` calls of a stochastic model.

    §6.3 of [1]_ averages 3 runs of PointNet++ (whose point sampling is random) for
    every evaluation of the base model; Theorems 3.1 and 5.1 do not need ``f`` to be
    deterministic, so the average is the base model.

    Parameters
    ----------
    model : torch.nn.Module
        The model; every call may be random (its own randomness, not SEGCERTIFY's
        generator, so results with such a model are reproducible only if its RNG is
        seeded).
    runs : int, default 3
        Number of calls per input (>= 1).
    layout : str, optional
        Layout of ``model``'s output; default: its ``layout`` attribute.
    average : {'probs', 'logits'}, default 'probs'
        Average softmax probabilities, or raw logits.

    Returns (from ``forward``) the average in ``model``'s layout; ``self.layout``
    is that layout.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021.

    Examples
    --------
    >>> import torch
    >>> from smoothing.adapters import Averaged, PointCloudSegmenter
    >>> net = PointCloudSegmenter(torch.nn.Linear(3, 4))      # (B, N, 3) -> (B, N, 4)
    >>> avg = Averaged(net, runs=3)
    >>> probs = avg(torch.randn(2, 10, 3))
    >>> probs.shape, avg.layout, bool(torch.allclose(probs.sum(-1), torch.ones(2, 10)))
    (torch.Size([2, 10, 4]), 'BNC', True)
    """

    def __init__(self, model: nn.Module, runs: int = 3, *, layout: str | None = None,
                 average: str = "probs") -> None:
        super().__init__()
        self.model = _check_module(model)
        self.runs = check_int(runs, "runs")
        self.layout = _declared_layout(model, layout, "Averaged")
        if average not in ("probs", "logits"):
            raise ValueError(f"`average` must be 'probs' or 'logits'; got {average!r}.")
        self.average = average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over ``runs`` calls of the probabilities (or logits)."""
        dim = LAYOUTS[self.layout].class_dim
        total = None
        for _ in range(self.runs):
            out = self.model(x)
            if self.average == "probs":
                out = out.softmax(dim=dim)
            total = out if total is None else total + out
        return total / self.runs


class MultiScale(nn.Module):
    """Multi-scale (and flip) inference of an image model, as in §6.2 of [1]_.

    For every scale ``s`` the input (B, C, H, W) is resized bilinearly to
    (round(s H), round(s W)), the model runs, its softmax probabilities are
    resized back to (H, W), and the probabilities of all scales (and, with
    ``flip=True``, of the horizontally flipped inputs, flipped back) are averaged.

    Parameters
    ----------
    model : torch.nn.Module
        Image model returning logits (B, C, h, w) (any h, w) -- a raw model or an
        :class:`ImageSegmenter`.
    scales : sequence of float
        Positive scale factors, e.g. ``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)``.
        A single scale ``(0.25,)`` gives the paper's down-scaled models.
    flip : bool, default False
        Also average over horizontally flipped inputs.

    Raises
    ------
    ValueError
        If ``scales`` is empty or contains a non-positive value.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021.

    Examples
    --------
    >>> import torch
    >>> from smoothing.adapters import MultiScale
    >>> ms = MultiScale(torch.nn.Conv2d(3, 4, 3, padding=1), scales=(0.5, 1.0), flip=True)
    >>> out = ms(torch.rand(1, 3, 20, 30))
    >>> out.shape, ms.layout
    (torch.Size([1, 4, 20, 30]), 'BCHW')
    """

    layout = "BCHW"

    def __init__(self, model: nn.Module, scales: Sequence[float], flip: bool = False) -> None:
        super().__init__()
        self.model = _check_module(model)
        declared = getattr(model, "layout", "BCHW")
        if declared != "BCHW":
            raise ValueError(
                f"MultiScale needs a model with (B, C, H, W) logits; got layout {declared!r} "
                "(wrap it in ImageSegmenter(model, layout='BHWC') first)."
            )
        scales = tuple(float(s) for s in scales)
        if not scales or not all(s > 0 and s != float("inf") for s in scales):
            raise ValueError(f"`scales` must be positive, finite and not empty; got {scales!r}.")
        self.scales = scales
        self.flip = bool(flip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Averaged class probabilities (B, C, H, W)."""
        size = x.shape[-2:]
        total = None
        views = (False, True) if self.flip else (False,)
        for s in self.scales:
            scaled_size = (max(1, round(size[0] * s)), max(1, round(size[1] * s)))
            xs = x if scaled_size == tuple(size) else F.interpolate(
                x, size=scaled_size, mode="bilinear", align_corners=False)
            for flipped in views:
                out = self.model(xs.flip(-1) if flipped else xs).softmax(dim=1)
                if flipped:
                    out = out.flip(-1)
                if out.shape[-2:] != size:
                    out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
                total = out if total is None else total + out
        return total / (len(self.scales) * len(views))


class Denoised(nn.Module):
    """Denoised smoothing: ``model(denoiser(x))`` (Salman et al., 2020).

    A denoiser trained to remove the smoothing noise lets an off-the-shelf model
    serve as the base model; the certificate is about the composition.

    Parameters
    ----------
    denoiser : torch.nn.Module
        Maps a noisy input to an input of the same shape.
    model : torch.nn.Module
        The segmentation model; its ``layout`` attribute (or ``layout``) is this
        adapter's layout.
    layout : str, optional
        Layout of ``model``'s output if it declares none ('BCHW' is assumed for
        4-d image outputs by SegCertify anyway).

    Examples
    --------
    >>> import torch
    >>> from smoothing.adapters import Denoised, ImageSegmenter
    >>> den = Denoised(torch.nn.Identity(), ImageSegmenter(torch.nn.Conv2d(3, 2, 1)))
    >>> den(torch.rand(1, 3, 4, 4)).shape, den.layout
    (torch.Size([1, 2, 4, 4]), 'BCHW')
    """

    def __init__(self, denoiser: nn.Module, model: nn.Module, *,
                 layout: str | None = None) -> None:
        super().__init__()
        self.denoiser = _check_module(denoiser, "denoiser")
        self.model = _check_module(model)
        declared = layout if layout is not None else getattr(model, "layout", None)
        if declared is not None and declared not in LAYOUTS:
            raise ValueError(
                f"`layout` must be one of {', '.join(repr(k) for k in LAYOUTS)}; got {declared!r}."
            )
        self.layout = declared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output on the denoised input."""
        return self.model(self.denoiser(x))


class OutputSelector(nn.Module):
    """Pick the logits out of a model that returns a dict or a tuple.

    torchvision's segmentation models return ``{"out": logits, "aux": ...}``; many
    others return ``(logits, features)``. SEGCERTIFY (and
    :func:`smoothing.train.train_for_smoothing`) need the logits tensor alone.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    key : str or int, default 'out'
        The entry: a dict key, or the index into a tuple or list. A string of digits
        (as the command line's ``--output-key 0`` gives it) also indexes a tuple, and
        an integer also finds the dict key of its string.
    layout : str, optional
        Layout of the selected logits; default: ``model``'s ``layout`` attribute,
        if it has one (else SegCertify infers it, ``'BCHW'`` for images).

    Raises
    ------
    TypeError
        If ``model`` is not a module or ``key`` is neither a string nor an integer.
    ValueError
        (from ``forward``) If the output has no entry ``key`` (the message lists the
        keys or the length), or the model returns a plain tensor.

    Examples
    --------
    >>> import torch
    >>> from smoothing.adapters import OutputSelector
    >>> class TorchvisionLike(torch.nn.Module):
    ...     def forward(self, x):
    ...         return {"out": x[:, :2], "aux": x[:, 2:]}
    >>> seg = OutputSelector(TorchvisionLike(), key="out")
    >>> seg(torch.rand(1, 3, 4, 4)).shape
    torch.Size([1, 2, 4, 4])
    """

    def __init__(self, model: nn.Module, key: str | int = "out", *,
                 layout: str | None = None) -> None:
        super().__init__()
        self.model = _check_module(model)
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise TypeError(f"`key` must be a string (dict key) or an integer (tuple index); "
                            f"got {type(key).__name__}.")
        self.key = key
        declared = layout if layout is not None else getattr(model, "layout", None)
        if declared is not None and declared not in LAYOUTS:
            raise ValueError(
                f"`layout` must be one of {', '.join(repr(k) for k in LAYOUTS)}; got {declared!r}."
            )
        self.layout = declared

    def extra_repr(self) -> str:
        return f"key={self.key!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The selected entry of ``model(x)``."""
        return select_output(self.model(x), self.key)


def select_output(out: object, key: str | int) -> torch.Tensor:
    """Entry ``key`` of a dict or tuple model output (see :class:`OutputSelector`).

    Examples
    --------
    >>> import torch
    >>> select_output((torch.zeros(1), torch.ones(1)), "1")
    tensor([1.])
    """
    if isinstance(out, Mapping):
        for k in (key, str(key)):
            if k in out:
                return out[k]
        if isinstance(key, str) and key.lstrip("-").isdigit() and int(key) in out:
            return out[int(key)]
        raise ValueError(f"output key {key!r} is not in the model's output; its keys are "
                         f"{list(out)!r}.")
    if isinstance(out, tuple | list):
        index = key if isinstance(key, int) else int(key) if key.lstrip("-").isdigit() else None
        if index is None or not -len(out) <= index < len(out):
            raise ValueError(f"output key {key!r} does not index the model's "
                             f"{type(out).__name__} of {len(out)} items; pass 0 to "
                             f"{len(out) - 1}.")
        return out[index]
    raise ValueError(f"output key {key!r} was given but the model returns a "
                     f"{type(out).__name__}, not a dict or a tuple: drop the output key.")
