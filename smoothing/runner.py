"""Resumable certification runs: the engine behind ``segcertify certify``.

A run certifies a range of inputs of a data set with :class:`~smoothing.SegCertify`
at every point of a grid ``sigma x tau x n`` and keeps everything in one output
folder::

    OUT/config.json                       the run's options (a resume must match them)
    OUT/results.jsonl                     one JSON line per finished (input, grid point)
    OUT/labels/<input>-<grid>.npz         certified label maps (ABSTAIN = -1)
    OUT/summary.csv, OUT/summary.md       one row per grid point (the paper's Tables 1/2)

The run is **resumable**: a finished (input, grid point) is one line of
``results.jsonl``, written with a single ``os.write`` and ``fsync`` after its label
file is in place, so a killed run loses at most the pairs it was working on, and a
restart with the same options skips everything that is recorded. It is
**reproducible**: the noise of input ``i`` at grid point ``g`` comes from a generator
seeded by ``(seed, i, g)`` only, so the results do not depend on resumes, on the
order of the inputs or on the other inputs and grid points of the run.

The steps are separate so that nothing is written before everything is checked:
:func:`prepare` validates the options, loads the model, opens the data set and runs
the model once; :func:`check_output_dir` checks a resumed folder; then
:meth:`CertificationRun.execute` writes. :func:`summarize` rebuilds the table from
the saved results (of every rank's ``results*.jsonl``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import samplers
from smoothing._io import FolderLock, file_sha256, remove_stale_temps, temp_tag, write_atomic
from smoothing._labels import HEADERS, HEURISTIC_FOOTNOTE, is_unsound, soundness_note
from smoothing._progress import interactive, progress_bar
from smoothing._sampling import check_int
from smoothing.datasets._common import IGNORE_INDEX
from smoothing.distributed import DistContext, DistributedSegCertify, rank_results_path
from smoothing.metrics import (
    confusion_matrix,
    intersection_union,
    iou_pair_sum,
    miou_pooled,
)
from smoothing.segcertify import CERTIFYING_CORRECTIONS, SegCertify, check_k_components

__all__ = [
    "DATASETS",
    "MAX_IMAGE_PIXELS",
    "SAMPLERS",
    "SHARED_SAMPLING_NOTE",
    "SUMMARY_COLUMNS",
    "CertificationRun",
    "GridPoint",
    "ImpossibleGridPointWarning",
    "RunConfig",
    "RunReport",
    "Summary",
    "append_record",
    "check_output_dir",
    "input_metrics",
    "noise_seed",
    "plan_grid",
    "predict_clean",
    "prepare",
    "read_records",
    "repair_jsonl",
    "run_certification",
    "summarize",
    "write_summary",
]

_FORMAT = "segcertify.run"
#: 2: the noise is drawn once per (sigma, n) and every tau is tested on those counts
#: (version 1 drew it again for every tau, so its results differ for the same seed).
_FORMAT_VERSION = 2
#: Largest ``image_size`` (height x width) a run accepts: 2**24 pixels, 16x a Cityscapes
#: frame; one noisy batch of 50 such RGB images already takes 10 GB in float32.
MAX_IMAGE_PIXELS = 2**24
#: Options that may differ between a run and its resume (they do not change results).
_NOT_COMPARED = frozenset({"checkpoint", "data_root"})


# --------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class _DatasetInfo:
    kind: str  # 'image' or 'points'
    synthetic: bool
    default_split: str
    default_model: str | None
    default_num_inputs: int | None


#: Data sets a run can read: name -> input kind, built in?, default split, model, size.
DATASETS: dict[str, _DatasetInfo] = {
    "streets": _DatasetInfo("image", True, "test", "streets-unet-sigma0.25", 100),
    "parts": _DatasetInfo("points", True, "test", "parts-pointnet-normals-sigma0.25", 96),
    "cityscapes": _DatasetInfo("image", False, "val", None, None),
    "pascal-context": _DatasetInfo("image", False, "val", None, None),
    "shapenet-part": _DatasetInfo("points", False, "test", None, None),
}

#: Sampler names -> (class, parameter that ``sigma`` sets, point clouds only?).
SAMPLERS: dict[str, tuple[type[samplers.Sampler], str, bool]] = {
    "gaussian": (samplers.GaussianL2, "sigma", False),
    "laplace": (samplers.LaplaceL1, "scale", False),
    "rotation-z": (samplers.RotationZ, "sigma", True),
    "rotation-3d": (samplers.Rotation3D, "sigma", True),
}

#: Columns of ``summary.csv``, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "method", "sampler", "sigma", "tau", "n", "n0", "alpha", "correction", "k",
    "num_inputs", "accuracy", "miou", "miou_dataset", "abstain_pct", "time_per_input_s",
    "radius", "sound",
)  # fmt: skip


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RunConfig:
    """Every option of a certification run that can change its results.

    ``None`` means "the default for this data set / model"; :func:`prepare` fills in
    the resolved values (they are what ``config.json`` records).

    Parameters
    ----------
    dataset : {'streets', 'parts', 'cityscapes', 'pascal-context', 'shapenet-part'}
        The first two are built in; the others are read from ``data_root``.
    model : str, optional
        A built-in model (:func:`smoothing.models.list_models`); default:
        ``'streets-unet-sigma0.25'`` for streets, ``'parts-pointnet-normals-sigma0.25'``
        for parts.
    checkpoint, arch : str, optional
        A user's checkpoint (instead of ``model``) and its architecture
        (``'unet'``/``'pointnet'``; needed for a plain state_dict). A TorchScript
        file or an exported program (:mod:`smoothing.models.user`) needs no ``arch``.
    model_factory : str, optional
        ``'module:function'`` returning the user's own model
        (:func:`smoothing.models.user.import_factory`); ``checkpoint`` then holds
        its weights (optional).
    model_kwargs : dict, optional
        JSON-like keyword arguments of ``model_factory``.
    data_root, split : str, optional
        Folder of a real data set; split (default ``'val'``, ``'test'`` for
        ShapeNet and the synthetic sets).
    image_size : (int, int), optional
        (height, width): the synthetic scenes' size (default (64, 128)); resizes the
        images of Cityscapes / Pascal Context (default: native size).
    num_points : int, default 2048
        Points per cloud (parts, shapenet-part).
    data_seed : int, default 0
        Seed of the synthetic data and of ShapeNet's resampling.
    sampler : {'gaussian', 'laplace', 'rotation-z', 'rotation-3d'}, default 'gaussian'
        Smoothing distribution; ``sigma`` is its parameter (the Laplace scale).
    sigma : tuple of float, optional
        Noise levels of the grid; default: the model's training sigma (Gaussian).
    n0 : int, default 10
        Samples for guessing the classes.
    n, tau : tuple
        Sample sizes and thresholds of the grid.
    alpha : float, default 0.001
        FWER of every certificate.
    correction : str, default 'holm'
        One of :data:`smoothing.CERTIFYING_CORRECTIONS`; ``k`` for the k-FWER ones.
    batch_size : int, default 50
        Noisy copies per forward pass (part of the noise stream, hence compared).
    num_inputs, start, stride : int
        Inputs ``start, start + stride, ...``; ``num_inputs`` of them (default: 100
        for streets, 96 for parts, all for the real data sets). A resume may raise
        ``num_inputs`` when nothing else changed: only the new inputs are certified.
    seed : int, default 0
        Base seed of the noise.
    axis : {'x', 'y', 'z'}, optional
        Rotation axis of the ``'rotation-z'`` sampler (default ``'z'``); not allowed
        with the other samplers.
    skip_impossible : bool, default False
        Leave out the grid points whose ``n`` is too small to certify any component
        (:func:`multitest.min_certifying_samples`); otherwise they run with a warning.
    """

    dataset: str = "streets"
    model: str | None = None
    checkpoint: str | None = None
    arch: str | None = None
    model_factory: str | None = None
    model_kwargs: dict[str, Any] | None = None
    data_root: str | None = None
    split: str | None = None
    image_size: tuple[int, int] | None = None
    num_points: int = 2048
    data_seed: int = 0
    sampler: str = "gaussian"
    sigma: tuple[float, ...] | None = None
    n0: int = 10
    n: tuple[int, ...] = (100,)
    tau: tuple[float, ...] = (0.75,)
    alpha: float = 0.001
    correction: str = "holm"
    k: int = 1
    batch_size: int = 50
    num_inputs: int | None = None
    start: int = 0
    stride: int = 1
    seed: int = 0
    axis: str | None = None
    skip_impossible: bool = False

    def __post_init__(self) -> None:
        # a scalar is a one-point grid; lists become tuples (hashable, comparable)
        for name in ("sigma", "n", "tau", "image_size"):
            value = getattr(self, name)
            if isinstance(value, int | float) and name != "image_size":
                object.__setattr__(self, name, (value,))
            elif isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


def _fmt(value: float) -> str:
    return format(float(value), ".10g")


@dataclass(frozen=True)
class GridPoint:
    """One (sigma, tau, n) point of a run's grid.

    Examples
    --------
    >>> GridPoint(0.25, 0.75, 100).key
    'sigma0.25-tau0.75-n100'
    """

    sigma: float
    tau: float
    n: int

    @property
    def key(self) -> str:
        """The grid point's name in records and file names."""
        return f"sigma{_fmt(self.sigma)}-tau{_fmt(self.tau)}-n{self.n}"

    @property
    def sample_key(self) -> str:
        """The name of its sampling: grid points that differ only in ``tau`` share it.

        Examples
        --------
        >>> GridPoint(0.25, 0.75, 100).sample_key == GridPoint(0.25, 0.9, 100).sample_key
        True
        """
        return f"sigma{_fmt(self.sigma)}-n{self.n}"


def noise_seed(seed: int, index: int, key: str) -> int:
    """The seed of the noise of input ``index`` for the sampling ``key``.

    A run passes :attr:`GridPoint.sample_key`: the grid points that differ only in
    ``tau`` share one sampling. Derived with :class:`numpy.random.SeedSequence` from
    ``seed``, ``index`` and a SHA-256 of ``key``: it depends on nothing else (not the
    order of the inputs, a resume or the rest of the grid).

    Examples
    --------
    >>> noise_seed(0, 3, "sigma0.25-tau0.75-n100") == noise_seed(0, 3, "sigma0.25-tau0.75-n100")
    True
    >>> noise_seed(0, 3, "sigma0.25-tau0.75-n100") == noise_seed(0, 4, "sigma0.25-tau0.75-n100")
    False
    """
    digest = hashlib.sha256(key.encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    state = np.random.SeedSequence([int(seed), int(index), *words]).generate_state(1, np.uint64)
    return int(state[0])


def _check_list(values: object, name: str) -> tuple:
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ValueError(f"`{name}` must be a non-empty list; got {values!r}.")
    seen = set()
    for v in values:
        if v in seen:
            raise ValueError(f"`{name}` lists {v!r} twice.")
        seen.add(v)
    return tuple(values)


def _check_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"`{name}` must be a real number; got {value!r}.")
    return float(value)


def _check_config(cfg: RunConfig, custom: _DatasetInfo | None = None) -> None:
    """Range checks of the scalar options (raise ValueError/TypeError naming the option);
    ``custom``: the description of a data set object (:func:`_custom_data`)."""
    if custom is None and cfg.dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {', '.join(DATASETS)}; got {cfg.dataset!r}.")
    if cfg.sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {', '.join(SAMPLERS)}; got {cfg.sampler!r}.")
    if cfg.correction not in CERTIFYING_CORRECTIONS:
        raise ValueError(
            f"`correction` must be one of {', '.join(sorted(CERTIFYING_CORRECTIONS))} (those "
            f"that certify under arbitrary dependence); got {cfg.correction!r}."
        )
    for name in ("n0", "k", "batch_size", "num_points", "stride"):
        check_int(getattr(cfg, name), name, low=1)
    for name in ("start", "seed", "data_seed"):
        check_int(getattr(cfg, name), name, low=0)
    if cfg.num_inputs is not None:
        check_int(cfg.num_inputs, "num_inputs", low=1)
    alpha = _check_real(cfg.alpha, "alpha")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must lie in (0, 1); got {cfg.alpha!r}.")
    for n in _check_list(cfg.n, "n"):
        check_int(n, "n", low=1)
    for tau in _check_list(cfg.tau, "tau"):
        if not 0.5 <= _check_real(tau, "tau") < 1.0:
            raise ValueError(f"`tau` must lie in [0.5, 1); got {tau!r}.")
    if cfg.sigma is not None:
        for s in _check_list(cfg.sigma, "sigma"):
            if not (math.isfinite(_check_real(s, "sigma")) and s > 0):
                raise ValueError(f"`sigma` must be finite and > 0; got {s!r}.")
    info = custom or DATASETS[cfg.dataset]
    if custom is not None and cfg.data_root is not None:
        raise ValueError("`data_root` is not used with a data set object.")
    if info.synthetic and cfg.data_root is not None:
        raise ValueError(f"`data_root` is not used by the built-in dataset {cfg.dataset!r}.")
    if custom is None and not info.synthetic and cfg.data_root is None:
        raise ValueError(f"dataset {cfg.dataset!r} needs `data_root` (its folder).")
    _check_axis(cfg)
    if cfg.image_size is not None:
        _check_image_size(cfg.image_size)


def _check_image_size(size: object) -> None:
    """Two integers >= 1 with at most :data:`MAX_IMAGE_PIXELS` pixels, checked before
    anything is allocated."""
    if (not isinstance(size, Sequence) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in size)
            or min(size) < 1):
        raise ValueError(f"`image_size` must be two integers >= 1; got {size!r}.")
    if int(size[0]) * int(size[1]) > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"`image_size` {int(size[0])} x {int(size[1])} has {int(size[0]) * int(size[1])} "
            f"pixels; at most {MAX_IMAGE_PIXELS} (2**24, e.g. 4096 x 4096) are supported."
        )


def _check_axis(cfg: RunConfig) -> None:
    """``axis`` is one of x/y/z and only given with the 'rotation-z' sampler."""
    if cfg.axis is None:
        return
    if cfg.axis not in ("x", "y", "z"):
        raise ValueError(f"`axis` must be one of x, y, z; got {cfg.axis!r}.")
    if cfg.sampler != "rotation-z":
        raise ValueError(f"`axis` applies to the 'rotation-z' sampler only; got sampler "
                         f"{cfg.sampler!r}.")


# --------------------------------------------------------------------------- loading
def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}.") \
            from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but CUDA is not available on this machine.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"`device` is {device!r} but only {torch.cuda.device_count()} GPU(s) are visible."
        )
    return dev


def _load_model(cfg: RunConfig, num_classes: int,
                device: torch.device) -> tuple[torch.nn.Module, str, RunConfig]:
    """The model, the SHA-256 of its file and the config with the model resolved."""
    from smoothing.models import registry

    if cfg.model is not None and cfg.checkpoint is not None:
        raise ValueError("give either `model` (a built-in name) or `checkpoint`, not both.")
    if cfg.checkpoint is None:
        if cfg.arch is not None:
            raise ValueError("`arch` is only used with `checkpoint`.")
        name = cfg.model or DATASETS[cfg.dataset].default_model
        if name is None:
            raise ValueError(
                f"dataset {cfg.dataset!r} has no built-in model: pass a `checkpoint` (and "
                "its `arch`)."
            )
        if name not in registry.BUILTIN_MODELS:
            raise ValueError(
                f"`model` must be one of {', '.join(registry.list_models())}; got {name!r}."
            )
        spec = registry.get_model_spec(name)
        if spec.num_classes != num_classes:
            raise ValueError(
                f"model {name!r} has {spec.num_classes} classes but dataset {cfg.dataset!r} "
                f"has {num_classes}."
            )
        model = registry.load_model(name, device=device)
        return model, file_sha256(registry.checkpoint_path(name)), replace(cfg, model=name)
    path = Path(cfg.checkpoint).expanduser().resolve()
    model = registry.load_checkpoint(path, arch=cfg.arch, num_classes=num_classes, device=device)
    arch = next(k for k, c in registry.ARCHITECTURES.items() if type(model) is c)
    return model, file_sha256(path), replace(cfg, checkpoint=str(path), arch=arch)


def _load_any_model(cfg: RunConfig, num_classes: int, device: torch.device
                    ) -> tuple[Any, str, RunConfig, str | None]:
    """:func:`_load_model`, or a user's model (factory, TorchScript, exported program);
    the last item describes a user's model (``None`` for the built-in kinds)."""
    from smoothing.models import user

    if cfg.model_kwargs is not None and cfg.model_factory is None:
        raise ValueError("`model_kwargs` is only used with `model_factory`.")
    if cfg.model_kwargs is not None and not isinstance(cfg.model_kwargs, dict):
        raise TypeError(f"`model_kwargs` must be a JSON object (dict); got {cfg.model_kwargs!r}.")
    plain = cfg.model_factory is None and (
        cfg.checkpoint is None
        or user.checkpoint_kind(Path(cfg.checkpoint).expanduser()) == "torch")
    if plain:
        return (*_load_model(cfg, num_classes, device), None)
    if cfg.model is not None or cfg.arch is not None:
        raise ValueError("`model` and `arch` are for the built-in architectures; a "
                         "`model_factory`, TorchScript or exported model takes neither.")
    model, sha, description = user.load_user_model(
        checkpoint=cfg.checkpoint, factory=cfg.model_factory,
        factory_kwargs=cfg.model_kwargs, device=device)
    if cfg.checkpoint is not None:
        cfg = replace(cfg, checkpoint=str(Path(cfg.checkpoint).expanduser().resolve()))
    return model, sha, cfg, description


def _open_dataset(cfg: RunConfig, normals: bool,
                  length: int | None) -> torch.utils.data.Dataset:
    from smoothing import datasets as D

    split = cfg.split or DATASETS[cfg.dataset].default_split
    if cfg.dataset == "streets":
        h, w = cfg.image_size or (64, 128)
        return D.SyntheticStreets(length, split=split, seed=cfg.data_seed, height=h, width=w)
    if cfg.dataset == "parts":
        return D.SyntheticParts(length, split=split, seed=cfg.data_seed,
                                num_points=cfg.num_points, normals=normals)
    root = Path(cfg.data_root).expanduser().resolve()
    size = tuple(cfg.image_size) if cfg.image_size is not None else None
    if cfg.dataset == "cityscapes":
        return D.Cityscapes(root, split, size=size)
    if cfg.dataset == "pascal-context":
        return D.PascalContext59(root, split, size=size)
    return D.ShapeNetPart(root, split, num_points=cfg.num_points, normals=normals,
                          seed=cfg.data_seed)


def _dataset_classes(name: str) -> int:
    from smoothing import datasets as D

    return {
        "streets": D.SyntheticStreets, "parts": D.SyntheticParts, "cityscapes": D.Cityscapes,
        "pascal-context": D.PascalContext59, "shapenet-part": D.ShapeNetPart,
    }[name].num_classes  # fmt: skip


def _select(cfg: RunConfig, size: int) -> range:
    if cfg.start >= size:
        raise ValueError(f"`start` is {cfg.start} but the data set has only {size} inputs.")
    available = range(cfg.start, size, cfg.stride)
    if cfg.num_inputs is None:
        return available
    if cfg.num_inputs > len(available):
        raise ValueError(
            f"`num_inputs` is {cfg.num_inputs} but the data set has only {len(available)} "
            f"inputs from start {cfg.start} with stride {cfg.stride}."
        )
    return available[: cfg.num_inputs]


def _model_kind(model: Any, dataset_kind: str = "image") -> tuple[str, str]:
    """(input kind, output layout): a built-in architecture's, else the data set's.

    A user's model takes the data set's inputs and returns ``(B, K, H, W)`` logits
    for images, ``(B, N, K)`` for point clouds.
    """
    from smoothing.models import PointNetSeg, SmallUNet

    if isinstance(model, SmallUNet):
        return "image", "BCHW"
    if isinstance(model, PointNetSeg):
        return "points", "BNC"
    return dataset_kind, "BCHW" if dataset_kind == "image" else "BNC"


def _make_sampler(name: str, sigma: float, kind: str,
                  axis: str | None = None) -> samplers.Sampler:
    cls, param, points_only = SAMPLERS[name]
    if points_only and kind != "points":
        raise ValueError(f"sampler {name!r} rotates point clouds; the data set holds images.")
    if cls in (samplers.GaussianL2, samplers.LaplaceL1):
        return cls(sigma, point_cloud=kind == "points")
    if axis is not None:
        return cls(sigma, axis=axis)
    return cls(sigma)


def _default_sigma(cfg: RunConfig, model: torch.nn.Module) -> tuple[float, ...]:
    if cfg.sigma is not None:
        return tuple(float(s) for s in cfg.sigma)
    sigma = getattr(model, "metadata", {}).get("sigma")
    if cfg.sampler == "gaussian" and isinstance(sigma, int | float) and sigma > 0:
        return (float(sigma),)
    raise ValueError(
        "`sigma` is required: the model records no training noise level for the "
        f"{cfg.sampler!r} sampler."
    )


# --------------------------------------------------------------------------- metrics
def predict_clean(model: torch.nn.Module, x: torch.Tensor, *, layout: str,
                  num_classes: int) -> torch.Tensor:
    """The base model's labels for ONE clean input (shape of the components, CPU int64)."""
    from smoothing._sampling import model_device, set_eval

    device = model_device(model, x)
    set_eval(model)
    try:
        with torch.inference_mode():
            out = model(x.unsqueeze(0).to(device))
    except RuntimeError as err:
        raise ValueError(
            f"the model cannot process an input of shape {tuple(x.shape)}: {err}"
        ) from err
    if layout == "BCHW":
        expected, class_dim = (1, num_classes, *x.shape[1:]), 1
    else:
        expected, class_dim = (1, x.shape[0], num_classes), 2
    if tuple(out.shape) != expected:
        raise ValueError(
            f"the model returned shape {tuple(out.shape)} for an input of shape "
            f"{tuple(x.shape)}; expected {expected}."
        )
    return out.argmax(class_dim)[0].cpu()


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def input_metrics(pred: np.ndarray, target: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Per-input metrics of a label map (ABSTAIN = -1) against the ground truth.

    ``intersection``/``union`` per class let :func:`summarize` pool any mIoU.

    Examples
    --------
    >>> import numpy as np
    >>> m = input_metrics(np.array([0, 1, -1, 1]), np.array([0, 1, 1, 255]), 2)
    >>> m["num_valid"], m["num_correct"], m["num_abstain"], m["intersection"], m["union"]
    (3, 2, 1, [1, 1], [1, 2])
    """
    conf = confusion_matrix(pred, target, num_classes, ignore_index=IGNORE_INDEX)
    tp, union = intersection_union(conf)
    valid, correct, abstain = int(conf.sum()), int(tp.sum()), int(conf[:, -1].sum())
    iou_sum, pairs = iou_pair_sum(tp, union)
    miou = iou_sum / pairs if pairs else float("nan")
    return {
        "num_components": int(np.asarray(pred).size),
        "num_valid": valid,
        "num_correct": correct,
        "num_abstain": abstain,
        "accuracy": _nan_to_none(correct / valid if valid else float("nan")),
        "abstain_rate": _nan_to_none(abstain / valid if valid else float("nan")),
        "miou": _nan_to_none(miou),
        "intersection": tp.astype(int).tolist(),
        "union": union.astype(int).tolist(),
    }


# --------------------------------------------------------------------------- files
def _save_arrays(path: Path, rank: int, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue(), tag=temp_tag(f".rank{rank}"))


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``path`` with a single ``os.write``, then fsync."""
    line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write to '{path}' ({written} of {len(line)} bytes).")
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_jsonl(path: Path) -> int:
    """Cut a trailing partial line (a write killed midway) off ``path``; bytes removed."""
    if not path.is_file():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:  # scan back for the last newline, 64 kB at a time
            start = max(0, end - (1 << 16))
            f.seek(start)
            chunk = f.read(end - start)
            if end == size and chunk.endswith(b"\n"):
                return 0
            pos = chunk.rfind(b"\n")
            if pos >= 0:
                end = start + pos + 1
                break
            end = start
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    return size - end


def _iter_lines(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # a partial last line: a write in progress or killed
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not _is_record(record):  # corrupt, or valid JSON that is no record
                print(f"warning: skipping an unreadable line in '{path}'", file=sys.stderr)
                continue
            yield record


#: Fields every record has (besides those of its kind), as :func:`summarize` reads them.
_RECORD_FIELDS = ("input", "grid", "kind", "num_valid", "num_correct", "num_abstain",
                  "intersection", "union")
_KIND_FIELDS = {
    "base": ("time_forward",),
    "certify": ("sigma", "tau", "n", "n0", "alpha", "correction", "k", "radius", "sound",
                "time_sampling", "time_testing"),
}


def _is_record(record: object) -> bool:
    """Whether a parsed line is a result record (a JSON object with the fields read)."""
    if not isinstance(record, dict) or record.get("kind") not in _KIND_FIELDS:
        return False
    if any(f not in record for f in (*_RECORD_FIELDS, *_KIND_FIELDS[record["kind"]])):
        return False
    index = record["input"]
    return (isinstance(index, int) and not isinstance(index, bool) and index >= 0
            and isinstance(record["grid"], str))


def read_records(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All finished records of a run folder, from every ``results*.jsonl``, deduplicated.

    A record is identified by ``(input, grid)``; the first occurrence wins, and a
    partial last line of a file is ignored.
    """
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for path in sorted(Path(out_dir).glob("results*.jsonl")):
        for rec in _iter_lines(path):
            seen.setdefault((int(rec["input"]), str(rec["grid"])), rec)
    return list(seen.values())


def _read_config(out: Path) -> dict[str, Any]:
    path = out / "config.json"
    try:
        blob = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"'{path}' is not a readable run configuration: {err}") from err
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise ValueError(f"'{path}' is not a segcertify run configuration.")
    return blob


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key in _NOT_COMPARED:
            continue
        a, b = old.get(key), new.get(key)
        if a != b:
            diffs.append(f"`{key}` {json.dumps(a)} -> {json.dumps(b)}")
    return diffs


def _grows_inputs(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` asks for more inputs than the run ``old`` and differs in nothing else.

    The first ``num_inputs`` inputs of both runs are then the same and so is their
    noise (:func:`noise_seed` depends on the input and the grid point only), so the
    recorded results stay valid. A built-in synthetic data set is generated up to
    the last selected input, so its ``dataset_size`` grows too (item ``i`` does not
    depend on the length); a real data set's size must not change.
    """
    a, b = old.get("config", {}), new.get("config", {})
    na, nb = a.get("num_inputs"), b.get("num_inputs")
    if not (isinstance(na, int) and isinstance(nb, int) and nb > na):
        return False
    da, db = old.get("derived", {}), new.get("derived", {})
    size_a, size_b = da.get("dataset_size"), db.get("dataset_size")
    info = DATASETS.get(str(b.get("dataset")))
    if size_a != size_b and not (info is not None and info.synthetic
                                 and isinstance(size_a, int) and isinstance(size_b, int)
                                 and size_b > size_a):
        return False
    return not _differences({**a, "num_inputs": nb}, b) and not _differences(
        {**da, "dataset_size": size_b}, db)


def check_output_dir(out_dir: str | os.PathLike[str], record: Mapping[str, Any]) -> bool:
    """Check that a run with ``record`` (its ``config.json``) may write to ``out_dir``.

    Returns ``True`` if ``out_dir`` holds the same run (a resume), ``False`` if it is
    new (absent or empty of results). Writes nothing. A run extended with more inputs
    (a larger ``num_inputs``, nothing else changed) is a resume
    (:func:`_grows_inputs`).

    Raises
    ------
    ValueError
        If ``out_dir`` is a file, holds results without a ``config.json``, or holds a
        run with other options (the message names them).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`out` '{out}' exists and is not a directory.")
    if not (out / "config.json").exists():
        # config.json is written before any results: re-check it (another rank may
        # have just started this run)
        if (out.is_dir() and any(out.glob("results*.jsonl"))
                and not (out / "config.json").exists()):
            raise ValueError(f"'{out}' holds results but no config.json; use another `out`.")
        return False
    old = _read_config(out)
    if old.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"'{out}' holds a run of an older segcertify (run format version "
            f"{old.get('format_version')}; this version writes {_FORMAT_VERSION}: one "
            "sampling per (sigma, n) shared by every tau, so the results for the same seed "
            "differ); it cannot be resumed: choose another `out` (`summarize` still reads it)."
        )
    old_config, old_derived = old.get("config", {}), old.get("derived", {})
    if _grows_inputs(old, record):
        old_config = {**old_config, "num_inputs": record["config"]["num_inputs"]}
        old_derived = {**old_derived, "dataset_size": record["derived"]["dataset_size"]}
    diffs = _differences(old_config, record["config"])
    diffs += _differences(old_derived, record["derived"])
    if diffs:
        raise ValueError(
            f"'{out}' holds a run with other options ({'; '.join(diffs)}); resume with the "
            "same options or choose another `out`."
        )
    return True


# --------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class RunReport:
    """What :meth:`CertificationRun.execute` did.

    Attributes
    ----------
    out_dir : pathlib.Path
        The output folder.
    resumed : bool
        Whether it continued an earlier run.
    skipped, computed : int
        (input, grid point) pairs of this rank found finished / computed now (the
        clean "base" evaluation counts as one grid point).
    """

    out_dir: Path
    resumed: bool
    skipped: int
    computed: int


@dataclass
class CertificationRun:
    """A validated, ready-to-run certification (made by :func:`prepare`).

    Attributes
    ----------
    config : RunConfig
        The resolved options.
    model : torch.nn.Module
        The base model, in eval mode on ``device``.
    dataset : torch.utils.data.Dataset
        The data set.
    indices : range
        The selected data set indices.
    grid : list of GridPoint
        The grid, ``sigma`` slowest, then ``tau``, then ``n``.
    record : dict
        The content of ``config.json``.
    """

    config: RunConfig
    model: torch.nn.Module
    dataset: Any
    indices: range
    grid: list[GridPoint]
    record: dict[str, Any]
    device: torch.device
    layout: str
    num_classes: int
    certifiers: dict[str, SegCertify] = field(repr=False)

    def execute(self, out_dir: str | os.PathLike[str], *, rank: int = 0, world_size: int = 1,
                progress: bool = True, sample_ctx: DistContext | None = None) -> RunReport:
        """Certify every selected input of this rank at every grid point; resumable.

        Parameters
        ----------
        out_dir : str or os.PathLike
            Output folder (created with its parents; a folder holding this same run
            is resumed).
        rank, world_size : int, default 0, 1
            This process takes the inputs ``indices[rank::world_size]`` and appends to
            :func:`~smoothing.distributed.rank_results_path`. The noise does not depend
            on them.
        progress : bool, default True
            tqdm bars on stderr: over the inputs and over each input's sampling batches;
            when stderr is not a terminal, plain lines over the inputs instead (no
            escape codes). A resumed run's bar starts at ``reused k/N``.
        sample_ctx : DistContext, optional
            Sharded sampling (``--shard samples``): every rank of this context
            certifies every input together, each drawing its share of the ``n0`` and
            ``n`` samples (:class:`~smoothing.distributed.DistributedSegCertify`,
            seeded with the same :func:`noise_seed`). Only rank 0 writes; it reads
            which work is finished and broadcasts that, so all ranks agree on what
            is left. ``rank`` and ``world_size`` must then be left at 0 and 1.

        Returns
        -------
        RunReport

        Raises
        ------
        ValueError
            As :func:`check_output_dir` (before anything is written), on every rank.
        smoothing._io.FolderLockedError
            (a ValueError) If another live process is writing this rank of
            ``out_dir``: each writer holds the lock file ``.lock.rank{rank}`` there
            for the whole run; one left by a dead process is taken over.
        """
        check_int(world_size, "world_size", low=1)
        if not 0 <= check_int(rank, "rank", low=0) < world_size:
            raise ValueError(f"`rank` must lie in [0, {world_size}); got {rank}.")
        if sample_ctx is not None and world_size != 1:
            raise ValueError("`world_size` must be 1 with `sample_ctx` (every rank certifies "
                             f"every input); got {world_size}.")
        out = Path(out_dir)
        writer = sample_ctx is None or sample_ctx.is_main
        lock = FolderLock(out, f".lock.rank{rank}")  # one writer per rank and folder
        try:
            return self._execute(out, rank, world_size, progress, sample_ctx, writer, lock)
        finally:
            lock.release()

    def _execute(self, out: Path, rank: int, world_size: int, progress: bool,
                 sample_ctx: DistContext | None, writer: bool, lock: FolderLock) -> RunReport:
        state: tuple[str | None, bool, set[tuple[int, str]]] = (None, False, set())
        if writer:
            try:
                check_output_dir(out, self.record)  # before the lock creates the folder
                lock.acquire()
                state = (None, self._open_output(out, rank, world_size), {
                    (int(r["input"]), str(r["grid"])) for r in read_records(out)})
            except ValueError as err:
                state = (str(err), False, set())
        if sample_ctx is not None:
            state = sample_ctx.broadcast_object(state)
        error, resumed, done = state
        if error is not None:
            raise ValueError(error)
        own = rank_results_path(out, rank, world_size)
        mine = self.indices[rank::world_size]
        keys = ["base"] + [g.key for g in self.grid]
        skipped = sum((i, k) in done for i in mine for k in keys)
        computed = 0
        progress = progress and writer
        bar = _progress_bar(len(mine), sum(all((i, k) in done for k in keys) for i in mine),
                            progress, rank, world_size)
        for cert in self.certifiers.values():
            cert.progress = progress and interactive(sys.stderr)  # batch bars: terminal only
        try:
            for index in mine:
                todo = [k for k in keys if (index, k) not in done]
                if todo:
                    computed += self._run_input(index, todo, out, own, rank, bar,
                                                sample_ctx, writer)
                    bar.update(1)
        finally:
            bar.close()
        return RunReport(out, resumed, skipped, computed)

    def _open_output(self, out: Path, rank: int, world_size: int) -> bool:
        """Check/create the output folder and clean this rank's leftovers; resumed?"""
        resumed = check_output_dir(out, self.record)
        (out / "labels").mkdir(parents=True, exist_ok=True)
        recorded = _read_config(out).get("config", {}) if resumed else {}
        if not resumed or recorded.get("num_inputs") != self.config.num_inputs:
            # a new run, or one extended with more inputs: (re)write its options
            write_atomic(out / "config.json",
                         (json.dumps(self.record, indent=2) + "\n").encode(),
                         temp_tag(f".rank{rank}"))
        repair_jsonl(rank_results_path(out, rank, world_size))
        for folder in (out, out / "labels"):  # only this process's or dead ones' temps
            remove_stale_temps(folder, f".rank{rank}")
        return resumed

    def _run_input(self, index: int, todo: list[str], out: Path, own: Path, rank: int,
                   bar: Any, sample_ctx: DistContext | None = None,
                   writer: bool = True) -> int:
        item = self.dataset[index]
        x, y = item[0], item[1].numpy()
        extra = {"category": int(item[2])} if len(item) > 2 else {}
        grid = {g.key: g for g in self.grid}
        shared: dict[str, Any] = {}  # sample_key -> the certificate of that sampling
        for key in todo:
            bar.set_postfix_str(f"input {index}, {key}", refresh=True)
            if key == "base":
                record, arrays = self._evaluate_base(index, x, y)
            else:
                record, arrays = self._evaluate_point(index, x, y, grid[key], sample_ctx,
                                                      shared)
            if not writer:
                continue
            rel = f"labels/{index:06d}-{key}.npz"
            _save_arrays(out / rel, rank, **arrays)  # the labels first, then the record
            append_record(own, {**record, **extra, "labels_file": rel, "rank": rank})
        return len(todo)

    def _evaluate_base(self, index: int, x: torch.Tensor,
                       y: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        t0 = time.perf_counter()
        pred = predict_clean(self.model, x, layout=self.layout, num_classes=self.num_classes)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        labels = pred.numpy()
        record = {"kind": "base", "input": index, "grid": "base",
                  **input_metrics(labels, y, self.num_classes), "time_forward": seconds}
        return record, {"labels": labels.astype(_label_dtype(self.num_classes))}

    def _evaluate_point(self, index: int, x: torch.Tensor, y: np.ndarray, g: GridPoint,
                        sample_ctx: DistContext | None = None,
                        shared: dict[str, Any] | None = None,
                        ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        cfg = self.config
        seed = noise_seed(cfg.seed, index, g.sample_key)
        certifier = self.certifiers[g.key]
        first = shared.get(g.sample_key) if shared is not None else None
        if first is not None:  # same (sigma, n) sampled already: test its counts at tau
            cert = certifier.retest(first, g.tau)
        elif sample_ctx is None:
            cert = certifier.certify(x, generator=torch.Generator().manual_seed(seed))
        else:
            cert = DistributedSegCertify(certifier, sample_ctx).certify(x, seed=seed)
        if shared is not None and first is None:
            shared[g.sample_key] = cert
        labels = cert.labels.numpy()
        record = {
            "kind": "certify", "input": index, "grid": g.key,
            "sigma": g.sigma, "tau": g.tau, "n": g.n, "n0": cfg.n0, "alpha": cfg.alpha,
            "correction": cfg.correction, "k": cfg.k, "sampler": repr(certifier.sampler),
            "radius": _nan_to_none(cert.radius), "sound": cert.sound,
            **input_metrics(labels, y, self.num_classes),
            "threshold": cert.threshold, "noise_seed": seed, "sampling": g.sample_key,
            "sampling_reused": first is not None,
            "time_sampling": cert.time_sampling, "time_testing": cert.time_testing,
        }  # fmt: skip
        if sample_ctx is not None:
            record["sample_ranks"] = sample_ctx.world_size
        dtype = _label_dtype(self.num_classes)
        arrays = {"labels": labels.astype(dtype), "guesses": cert.guesses.numpy().astype(dtype),
                  "counts": cert.counts.numpy().astype(np.int32)}
        return record, arrays


def _label_dtype(num_classes: int) -> type[np.signedinteger]:
    return np.int16 if num_classes < 2**15 else np.int32


def _progress_bar(total: int, initial: int, progress: bool, rank: int, world_size: int) -> Any:
    """tqdm on a terminal, plain lines elsewhere (:func:`smoothing._progress.progress_bar`)."""
    desc = "certify" if world_size == 1 else f"certify (rank {rank})"
    return progress_bar(total=total, initial=initial, desc=desc, unit="input",
                        enabled=progress, file=sys.stderr, dynamic_ncols=True)


def prepare(config: RunConfig, *, device: str | torch.device = "auto",
            model: Any = None, data: Any = None) -> CertificationRun:
    """Validate a run completely without writing anything.

    Checks the options, loads the model (``num_classes`` must match the data set),
    opens the data set, builds every sampler and certifier and runs the model once on
    the first selected input.

    Parameters
    ----------
    config : RunConfig
        The options.
    device : str or torch.device, default 'auto'
        Where the model runs ('auto': CUDA if available). It is not part of the
        results' identity (but the noise drawn on a GPU differs from the CPU's).
    model : torch.nn.Module or callable, optional
        A model object instead of the config's ``model`` / ``checkpoint`` /
        ``model_factory`` (which must then be unset): see :func:`run_certification`.
    data : Dataset, optional
        A data set object instead of ``config.dataset``: see :func:`run_certification`.

    Returns
    -------
    CertificationRun

    Raises
    ------
    ValueError, TypeError
        For an invalid option or a model that does not fit the data set.
    FileNotFoundError
        For a missing checkpoint or data folder.

    Examples
    --------
    >>> run = prepare(RunConfig(dataset="streets", image_size=(32, 32), num_inputs=2,
    ...                         n0=4, n=(16,), tau=(0.6, 0.75)), device="cpu")
    >>> run.config.model, run.config.sigma, [g.key for g in run.grid]
    ('streets-unet-sigma0.25', (0.25,), ['sigma0.25-tau0.6-n16', 'sigma0.25-tau0.75-n16'])
    """
    custom = None
    if data is not None:
        config, custom, num_classes = _custom_data(config, data)
    _check_config(config, custom)
    dev = _resolve_device(device)
    info = custom or DATASETS[config.dataset]
    if custom is None:
        num_classes = _dataset_classes(config.dataset)
    if model is None:
        model, sha, cfg, description = _load_any_model(config, num_classes, dev)
    else:
        model, sha, cfg, description = _given_model(config, model, dev)
    kind, layout = _model_kind(model, info.kind)
    if kind != info.kind:
        raise ValueError(
            f"the model takes {'images' if kind == 'image' else 'point clouds'} but dataset "
            f"{config.dataset!r} holds {'images' if info.kind == 'image' else 'point clouds'}."
        )
    cfg = replace(cfg, split=cfg.split or info.default_split,
                  num_inputs=cfg.num_inputs or info.default_num_inputs,
                  sigma=_default_sigma(cfg, model))
    if cfg.dataset == "streets":
        cfg = replace(cfg, image_size=tuple(cfg.image_size or (64, 128)))
    if cfg.data_root is not None:
        cfg = replace(cfg, data_root=str(Path(cfg.data_root).expanduser().resolve()))
    normals = getattr(model, "in_channels", 3) == 6
    length = cfg.start + cfg.stride * (cfg.num_inputs - 1) + 1 if info.synthetic else None
    dataset = data if data is not None else _open_dataset(cfg, normals, length)
    indices = _select(cfg, len(dataset))
    cfg = replace(cfg, num_inputs=len(indices))
    first = predict_clean(model, dataset[indices[0]][0], layout=layout, num_classes=num_classes)
    check_k_components(cfg.k, first.numel())  # k-FWER with k > N promises nothing
    grid = plan_grid(cfg, first.numel())
    samplers_ = {s: _make_sampler(cfg.sampler, s, kind, cfg.axis) for s in cfg.sigma}
    certifiers = {
        g.key: SegCertify(model, samplers_[g.sigma], num_classes=num_classes, n0=cfg.n0, n=g.n,
                          tau=g.tau, alpha=cfg.alpha, correction=cfg.correction, k=cfg.k,
                          batch_size=cfg.batch_size, layout=layout)
        for g in grid
    }
    record = _config_record(cfg, sha, num_classes, layout, kind, len(dataset), grid, dev)
    if description is not None:
        record["derived"]["model_description"] = description
    if data is not None:
        record["derived"]["dataset_fingerprint"] = _data_fingerprint(dataset, indices)
    return CertificationRun(cfg, model, dataset, indices, grid, record, dev, layout,
                            num_classes, certifiers)


class ImpossibleGridPointWarning(UserWarning):
    """A grid point whose ``n`` is too small to certify any component (see :func:`plan_grid`)."""


def _custom_data(cfg: RunConfig, data: Any) -> tuple[RunConfig, _DatasetInfo, int]:
    """Check a data set object; (config naming it, its description, its classes)."""
    from smoothing._sampling import check_int as _int
    from smoothing.models.user import describe_model

    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError("`dataset` must be a data set name or a map-style data set (len() "
                        f"and [i]); got {type(data).__name__}.")
    num_classes = _int(getattr(data, "num_classes", None), "dataset.num_classes", low=2)
    if len(data) < 1:
        raise ValueError("`dataset` is empty.")
    item = data[0]
    if not (isinstance(item, tuple | list) and len(item) >= 2
            and isinstance(item[0], torch.Tensor) and isinstance(item[1], torch.Tensor)):
        raise TypeError("`dataset[i]` must be (input, target[, category]) tensors.")
    if item[0].dim() not in (2, 3):
        raise ValueError("`dataset[i][0]` must be an image (C, H, W) or a point cloud (N, d); "
                         f"got shape {tuple(item[0].shape)}.")
    kind = "image" if item[0].dim() == 3 else "points"
    for name in ("image_size", "data_root", "split"):
        if getattr(cfg, name) is not None:
            raise ValueError(f"`{name}` is not used with a data set object.")
    cfg = replace(cfg, dataset=f"custom:{describe_model(data)}")
    return cfg, _DatasetInfo(kind, False, "-", None, None), num_classes


def _data_fingerprint(data: Any, indices: range) -> str:
    """SHA-256 of the first selected input and target (a data set object's identity)."""
    h = hashlib.sha256()
    for t in data[indices[0]][:2]:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _given_model(cfg: RunConfig, model: Any, device: torch.device
                 ) -> tuple[Any, str, RunConfig, str]:
    from smoothing.models import user

    given = [n for n in ("model", "checkpoint", "arch", "model_factory", "model_kwargs")
             if getattr(cfg, n) is not None]
    if given:
        raise ValueError(f"a model object is given: leave {', '.join(given)} of the config "
                         "unset.")
    if not callable(model):
        raise TypeError(f"`model` must be a torch.nn.Module or a batched callable; got "
                        f"{type(model).__name__}.")
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    return model, user.model_fingerprint(model), cfg, user.describe_model(model)


def run_certification(model: Any, dataset: Any, config: RunConfig | None = None, *,
                      out: str | os.PathLike[str], device: str | torch.device = "auto",
                      progress: bool = False, write: bool = True) -> RunReport:
    """Certify a data set with ANY model: the Python entry of ``segcertify certify``.

    The same run as the command line (resumable folder, ``results.jsonl`` records,
    label files, ``summary.csv``/``summary.md``), with a model object instead of a
    built-in name or a checkpoint.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Takes a batch of the data set's inputs, ``(B, C, H, W)`` images or
        ``(B, N, d)`` point clouds, and returns logits ``(B, K, H, W)`` or
        ``(B, N, K)`` with ``K`` the data set's classes. A module is moved to
        ``device`` and put in eval mode.
    dataset : str or Dataset
        A data set of :data:`DATASETS` (it replaces ``config.dataset``), or your
        own map-style data set: ``len(dataset)``, ``dataset[i] = (input, target)``
        (or ``(input, target, category)``) tensors, inputs ``(C, H, W)`` images
        or ``(N, d)`` point clouds, targets of class indices (255: ignored), and an
        attribute ``num_classes``. ``config.json`` then names its class and records
        its length and a SHA-256 of its first selected item.
    config : RunConfig, optional
        The other options; ``model``, ``checkpoint``, ``arch``, ``model_factory``
        and ``model_kwargs`` must be unset. ``sigma`` is required unless the model
        has ``metadata = {"sigma": ...}``.
    out : str or os.PathLike
        The run folder; a folder of the same run is resumed. ``config.json``
        records the model's class and a SHA-256 of its weights
        (:func:`smoothing.models.user.model_fingerprint`): a resume with another
        model (or other weights) is refused. A plain callable is identified by its
        name only: wrap the weights it uses in an ``nn.Module`` to have them checked.
    device : str or torch.device, default 'auto'
        Where the model runs.
    progress : bool, default False
        tqdm progress bars on stderr.
    write : bool, default True
        Write ``summary.csv`` and ``summary.md`` at the end.

    Returns
    -------
    RunReport

    Raises
    ------
    ValueError, TypeError
        As :func:`prepare` and :func:`check_output_dir`.

    Examples
    --------
    >>> import tempfile, torch
    >>> model = torch.nn.Conv2d(3, 8, kernel_size=1)  # any model with 8 output classes
    >>> cfg = RunConfig(image_size=(16, 16), num_inputs=1, sigma=(0.25,), n0=4, n=(64,),
    ...                 tau=(0.6,), alpha=0.01)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     report = run_certification(model, "streets", cfg, out=tmp, device="cpu")
    ...     rows = summarize(tmp).rows
    >>> report.computed, [r["method"] for r in rows]
    (2, ['base', 'certify'])
    """
    if isinstance(dataset, str):
        run = prepare(replace(config or RunConfig(), dataset=dataset), device=device,
                      model=model)
    else:
        run = prepare(config or RunConfig(), device=device, model=model, data=dataset)
    report = run.execute(out, progress=progress)
    if write:
        write_summary(out, summarize(out))
    return report


def plan_grid(cfg: RunConfig, num_components: int) -> list[GridPoint]:
    """The grid of ``cfg``, checked against the smallest ``n`` that can certify.

    A grid point whose ``n`` is below :func:`multitest.min_certifying_samples` at
    (``num_components``, tau, alpha, correction, k) certifies no component whatever
    the model: it gets a warning naming the ``n`` needed, or is left out when
    ``cfg.skip_impossible``.

    Parameters
    ----------
    cfg : RunConfig
        Options with ``sigma`` resolved.
    num_components : int
        Components (pixels or points) of an input: those of the first selected one.

    Returns
    -------
    list of GridPoint
        ``sigma`` slowest, then ``tau``, then ``n``.

    Raises
    ------
    ValueError
        If ``cfg.skip_impossible`` leaves no grid point.

    Examples
    --------
    >>> import warnings
    >>> cfg = RunConfig(sigma=(0.25,), tau=(0.75, 0.95), n=(100,), skip_impossible=True)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     keys = [g.key for g in plan_grid(cfg, 64 * 128)]
    >>> keys
    ['sigma0.25-tau0.75-n100']
    >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
    grid point sigma0.25-tau0.95-n100 cannot certify any component: tau=0.95 with
    alpha=0.001, holm and 8192 components needs n >= 311; skipped (--skip-impossible).
    """
    import warnings

    import multitest

    grid = []
    for s in cfg.sigma or ():
        for t in cfg.tau:
            need = multitest.min_certifying_samples(num_components, float(t), cfg.alpha,
                                                    cfg.correction, cfg.k)
            for n in cfg.n:
                g = GridPoint(s, t, n)
                if n >= need:
                    grid.append(g)
                    continue
                what = (f"grid point {g.key} cannot certify any component: tau={_fmt(t)} with "
                        f"alpha={cfg.alpha}, {cfg.correction}"
                        f"{f' (k={cfg.k})' if cfg.k != 1 else ''} and {num_components} "
                        f"components needs n >= {need}")
                if cfg.skip_impossible:
                    warnings.warn(f"{what}; skipped (--skip-impossible).",
                                  ImpossibleGridPointWarning, stacklevel=2)
                else:
                    grid.append(g)
                    warnings.warn(f"{what}; it runs anyway (--skip-impossible leaves it out).",
                                  ImpossibleGridPointWarning, stacklevel=2)
    if not grid:
        raise ValueError("every grid point is too small to certify anything and "
                         "`skip_impossible` leaves them all out; raise `n` (see the warnings).")
    return grid


def _config_record(cfg: RunConfig, sha: str, num_classes: int, layout: str, kind: str,
                   size: int, grid: list[GridPoint], device: torch.device) -> dict[str, Any]:
    try:
        from importlib.metadata import version

        pkg_version = version("segcertify")
    except Exception:  # pragma: no cover - not installed
        pkg_version = None
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "config": cfg.to_dict(),
        "derived": {"checkpoint_sha256": sha, "num_classes": num_classes, "layout": layout,
                    "input_kind": kind, "dataset_size": size,
                    "grid": [g.key for g in grid]},
        "runtime": {"device": str(device), "torch": torch.__version__,
                    "segcertify": pkg_version,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


# --------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Summary:
    """The table of a run: one row per grid point (plus the clean base model).

    Attributes
    ----------
    rows : tuple of dict
        Keys :data:`SUMMARY_COLUMNS`.
    header : str
        One line naming the model, the data set and the sampler.
    """

    rows: tuple[dict[str, Any], ...]
    header: str

    def to_csv(self) -> str:
        """The rows as CSV text (``summary.csv``)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if row[k] is None else row[k] for k in SUMMARY_COLUMNS})
        return buf.getvalue()

    def to_markdown(self) -> str:
        """The rows as a Markdown table in the shape of the paper's Tables 1 and 2."""
        heads = [HEADERS[k] for k in ("sigma", "tau", "n", "n0", "correction", "num_inputs",
                                      "accuracy", "miou", "abstain", "time", "radius")]
        lines = [
            self.header,
            "",
            "| | " + " | ".join(heads) + " |",
            "|---" * (len(heads) + 1) + "|",
        ]
        for r in self.rows:
            base = r["method"] == "base"
            cells = [
                "base model (clean)" if base else soundness_note("SegCertify", r["sound"]),
                "–" if base else _fmt(r["sigma"]), "–" if base else _fmt(r["tau"]),
                "–" if base else str(r["n"]), "–" if base else str(r["n0"]),
                "–" if base else f"{r['correction']}" + (f" (k={r['k']})" if r["k"] != 1 else ""),
                str(r["num_inputs"]), _num(r["accuracy"], ".3f"), _num(r["miou"], ".3f"),
                "–" if base else _num(r["abstain_pct"], ".1f"),
                _num(r["time_per_input_s"], ".3g"), "–" if base else _num(r["radius"], ".3f"),
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        if any(is_unsound(r["sound"]) for r in self.rows):
            lines += ["", HEURISTIC_FOOTNOTE]
        if _shares_sampling(self.rows):
            lines += ["", SHARED_SAMPLING_NOTE]
        return "\n".join(lines) + "\n"


#: The note under a table whose rows of several tau share one sampling per (sigma, n).
SHARED_SAMPLING_NOTE = (
    "Rows with the same sigma and n test every tau on ONE sampling (the same counts); "
    "each row is its own certificate, valid with probability 1 - alpha, not "
    "simultaneously over the tau of the grid. Their times each include that shared "
    "sampling."
)


def _shares_sampling(rows: Sequence[Mapping[str, Any]]) -> bool:
    pairs = [(r["sigma"], r["n"]) for r in rows if r["method"] != "base"]
    return len(pairs) != len(set(pairs))


def _num(value: float | None, spec: str) -> str:
    return "nan" if value is None or math.isnan(value) else format(value, spec)


def _pooled(records: list[dict[str, Any]]) -> dict[str, float]:
    inter = np.sum([r["intersection"] for r in records], axis=0)
    union = np.sum([r["union"] for r in records], axis=0)
    valid = sum(r["num_valid"] for r in records)
    sums = [iou_pair_sum(r["intersection"], r["union"]) for r in records]
    pair_sum, pairs = sum(a for a, _ in sums), sum(b for _, b in sums)
    return {
        "accuracy": sum(r["num_correct"] for r in records) / valid if valid else math.nan,
        "abstain_pct": 100.0 * sum(r["num_abstain"] for r in records) / valid
        if valid else math.nan,
        "miou": pair_sum / pairs if pairs else math.nan,
        "miou_dataset": miou_pooled(inter, union),
    }


def _summary_row(records: list[dict[str, Any]], config: Mapping[str, Any]) -> dict[str, Any]:
    first = records[0]
    base = first["kind"] == "base"
    times = [r["time_forward"] if base else r["time_sampling"] + r["time_testing"]
             for r in records]
    row = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(_pooled(records))
    row.update(method=first["kind"], num_inputs=len(records),
               time_per_input_s=float(np.mean(times)))
    if base:
        row.update(abstain_pct=0.0)
    else:
        row.update({k: first[k] for k in ("sigma", "tau", "n", "n0", "alpha", "correction", "k",
                                          "radius", "sound")})
        row["sampler"] = config.get("sampler")
    return row


def summarize(out_dir: str | os.PathLike[str]) -> Summary:
    """Rebuild the summary table of a run folder from its saved results.

    Reads ``config.json`` and every ``results*.jsonl`` (all ranks), deduplicated by
    (input, grid point). Accuracy and % abstain are pooled over all non-ignored
    components; ``miou`` averages the IoU over (input, class) pairs with a non-empty
    union (App. A.1 of the paper), ``miou_dataset`` over classes of the summed
    confusion matrix; times are means per input.

    Raises
    ------
    ValueError
        If the folder has no ``config.json`` or no results.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise ValueError(f"`out` '{out}' is not a directory.")
    blob = _read_config(out)
    records = read_records(out)
    if not records:
        raise ValueError(f"'{out}' holds no finished results yet.")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: int(r["input"])):
        groups.setdefault(r["grid"], []).append(r)
    config = blob["config"]
    rows = [_summary_row(g, config) for g in groups.values()]
    rows.sort(key=lambda r: (r["method"] != "base", r["sigma"] or 0, r["tau"] or 0, r["n"] or 0))
    model = (config.get("model") or blob.get("derived", {}).get("model_description")
             or f"checkpoint {Path(config.get('checkpoint') or '').name}")
    header = (
        f"model `{model}` · dataset `{config['dataset']}` ({config['split']}) · sampler "
        f"`{config['sampler']}` · alpha = {config['alpha']} · seed {config['seed']}"
    )
    return Summary(tuple(rows), header)


def write_summary(out_dir: str | os.PathLike[str], summary: Summary) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.md`` (atomically); returns their paths."""
    out = Path(out_dir)
    paths = out / "summary.csv", out / "summary.md"
    write_atomic(paths[0], summary.to_csv().encode(), f".{os.getpid()}")
    write_atomic(paths[1], summary.to_markdown().encode(), f".{os.getpid()}")
    return paths
