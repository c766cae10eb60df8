"""Loading what a run certifies: the device, the model, the data set and the samplers.

Everything a file names is checked here before a run writes anything
(:func:`smoothing.runs.engine.prepare` calls these).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import samplers
from smoothing._io import file_sha256
from smoothing.runs.config import DATASETS, MAX_IMAGE_PIXELS, SAMPLERS, DatasetInfo, RunConfig

__all__ = ["predict_clean", "training_summary"]


#: Device types a run computes on (``meta`` holds no data; others are untested).
DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` that exists here ('auto': CUDA if available).

    Raises ValueError for another type than :data:`DEVICE_TYPES` (e.g. ``'meta'``,
    whose tensors hold no data) or a device this machine does not have.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    accepted = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"`device` must be {accepted}; got {device!r}.") from err
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"`device` must be {accepted}; got {device!r}.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"`device` is {device!r} but MPS is not available on this machine.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but CUDA is not available on this machine.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"`device` is {device!r} but only {torch.cuda.device_count()} GPU(s) are visible."
        )
    return dev


def load_builtin_model(cfg: RunConfig, num_classes: int,
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


def load_any_model(cfg: RunConfig, num_classes: int, device: torch.device
                    ) -> tuple[Any, str, RunConfig, str | None]:
    """:func:`load_builtin_model`, or a user's model (factory, TorchScript, exported program);
    the last item describes a user's model (``None`` for the built-in kinds).

    With ``cfg.output_key`` the model is wrapped in
    :class:`~smoothing.adapters.OutputSelector` (:func:`select_output`).
    """
    model, sha, cfg, description = _load_model(cfg, num_classes, device)
    return select_output(model, cfg.output_key), sha, cfg, description


def select_output(model: Any, key: str | None) -> Any:
    """``model`` wrapped in :class:`~smoothing.adapters.OutputSelector` when ``key`` is
    given (``--output-key``: a dict key, or a tuple index in digits), else itself.

    Examples
    --------
    >>> import torch
    >>> class Twice(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x, 2 * x
    >>> select_output(Twice(), "1")(torch.ones(1)).tolist()
    [2.0]
    """
    if key is None:
        return model
    from smoothing.adapters import OutputSelector

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`output_key` needs a torch.nn.Module model; got a "
                        f"{type(model).__name__}: return the logits from it directly.")
    selector = OutputSelector(model, key)
    if hasattr(model, "in_channels"):  # a point-cloud model that reads the normals
        selector.in_channels = model.in_channels
    return selector


def _load_model(cfg: RunConfig, num_classes: int, device: torch.device
                ) -> tuple[Any, str, RunConfig, str | None]:
    from smoothing.models import user

    if cfg.model_kwargs is not None and cfg.model_factory is None:
        raise ValueError("`model_kwargs` is only used with `model_factory`.")
    if cfg.model_kwargs is not None and not isinstance(cfg.model_kwargs, dict):
        raise TypeError(f"`model_kwargs` must be a JSON object (dict); got {cfg.model_kwargs!r}.")
    plain = cfg.model_factory is None and (
        cfg.checkpoint is None
        or user.checkpoint_kind(Path(cfg.checkpoint).expanduser()) == "torch")
    if plain:
        return (*load_builtin_model(cfg, num_classes, device), None)
    if cfg.model is not None or cfg.arch is not None:
        raise ValueError("`model` and `arch` are for the built-in architectures; a "
                         "`model_factory`, TorchScript or exported model takes neither.")
    model, sha, description = user.load_user_model(
        checkpoint=cfg.checkpoint, factory=cfg.model_factory,
        factory_kwargs=cfg.model_kwargs, device=device, trust_program=cfg.trust_program)
    if cfg.checkpoint is not None:
        cfg = replace(cfg, checkpoint=str(Path(cfg.checkpoint).expanduser().resolve()))
    return model, sha, cfg, description


def open_dataset(cfg: RunConfig, normals: bool,
                  length: int | None) -> torch.utils.data.Dataset:
    """The data set of ``cfg`` (``length`` items of a synthetic one; ``normals``: the
    point clouds with their normals)."""
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
        return D.Cityscapes(root, split, size=size, follow_symlinks=cfg.follow_symlinks)
    if cfg.dataset == "pascal-context":
        return D.PascalContext59(root, split, size=size,
                                 follow_symlinks=cfg.follow_symlinks)
    if cfg.dataset == "folder":
        return D.FolderDataset(
            root, cfg.num_classes,  # type: ignore[arg-type]  # check_config requires it
            ignore_index=D.IGNORE_INDEX if cfg.ignore_index is None else cfg.ignore_index,
            class_names=cfg.class_names, split=cfg.split,
            channels=3 if cfg.channels is None else cfg.channels, size=size,
            follow_symlinks=cfg.follow_symlinks)
    return D.ShapeNetPart(root, split, num_points=cfg.num_points, normals=normals,
                          seed=cfg.data_seed, follow_symlinks=cfg.follow_symlinks)


def dataset_classes(cfg: RunConfig | str) -> int:
    """The number of classes of the data set of ``cfg`` (or of the data set named so):
    a built-in reader's, or ``cfg.num_classes`` for ``'folder'``."""
    from smoothing import datasets as D

    if isinstance(cfg, RunConfig):
        if cfg.dataset == "folder":
            if cfg.num_classes is None:
                raise ValueError("dataset 'folder' needs `num_classes`.")
            return int(cfg.num_classes)
        cfg = cfg.dataset
    name = cfg
    return {
        "streets": D.SyntheticStreets, "parts": D.SyntheticParts, "cityscapes": D.Cityscapes,
        "pascal-context": D.PascalContext59, "shapenet-part": D.ShapeNetPart,
    }[name].num_classes  # fmt: skip


def select_inputs(cfg: RunConfig, size: int) -> range:
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


def model_kind(model: Any, dataset_kind: str = "image") -> tuple[str, str]:
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


def make_sampler(name: str, sigma: float, kind: str, axis: str | None = None,
                 quantize_bits: int | None = None, channels: int = 3) -> samplers.Sampler:
    cls, param, points_only = SAMPLERS[name]
    if points_only and kind != "points":
        raise ValueError(f"sampler {name!r} rotates point clouds; the data set holds images.")
    if quantize_bits is not None:
        if kind != "image":
            raise ValueError("`quantize_bits` applies to images; the data set holds point "
                             "clouds.")
        # every image a run accepts: at most MAX_IMAGE_PIXELS pixels of 3 channels (or
        # of a folder's `channels`, when it has more)
        return samplers.Quantized(cls(sigma), bits=quantize_bits,
                                  max_dim=max(3, channels) * MAX_IMAGE_PIXELS)
    if cls in (samplers.GaussianL2, samplers.LaplaceL1):
        return cls(sigma, point_cloud=kind == "points")
    if axis is not None:
        return cls(sigma, axis=axis)
    return cls(sigma)


#: The sampler class names of ``metadata["sampler"]`` (``repr`` of the training
#: sampler, :func:`smoothing.train.train_for_smoothing`) -> the run's sampler name.
_SAMPLER_CLASSES = {"GaussianL2": "gaussian", "LaplaceL1": "laplace",
                    "RotationZ": "rotation-z", "Rotation3D": "rotation-3d"}


def default_sigma(cfg: RunConfig, model: Any,
                  metadata: Mapping[str, Any] | None = None) -> tuple[float, ...]:
    """``cfg.sigma``, else the training noise level of the model: ``metadata["sigma"]``
    of its checkpoint (or ``model.metadata``) when it was trained with the run's
    sampler (a built-in model's metadata names none: Gaussian)."""
    if cfg.sigma is not None:
        return tuple(float(s) for s in cfg.sigma)
    meta = metadata if metadata else getattr(model, "metadata", None)
    meta = meta if isinstance(meta, Mapping) else {}
    sigma, trained = meta.get("sigma"), meta.get("sampler")
    if isinstance(trained, str):  # e.g. "GaussianL2(sigma=0.25, ...)", "Quantized(base=..."
        name = trained.removeprefix("Quantized(base=").split("(", 1)[0]
        same = _SAMPLER_CLASSES.get(name) == cfg.sampler
    else:
        same = cfg.sampler == "gaussian"
    if same and isinstance(sigma, int | float) and not isinstance(sigma, bool) \
            and math.isfinite(sigma) and sigma > 0:
        return (float(sigma),)
    raise ValueError(
        "`sigma` is required: the model records no training noise level for the "
        f"{cfg.sampler!r} sampler."
    )


def checkpoint_info(cfg: RunConfig) -> dict[str, Any] | None:
    """The metadata of ``cfg.checkpoint`` when it is a plain torch file (a built-in
    architecture's checkpoint or a model factory's weights,
    :func:`smoothing.train.checkpoint_metadata`), made JSON-safe; ``None`` without
    such a checkpoint (none, TorchScript, an exported program) or metadata."""
    if cfg.checkpoint is None:
        return None
    from smoothing.models.user import checkpoint_kind
    from smoothing.train import checkpoint_metadata

    path = Path(cfg.checkpoint).expanduser()
    if checkpoint_kind(path) != "torch":
        return None
    meta = json_safe(checkpoint_metadata(path))
    return meta or None


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON values: non-finite floats become ``None``, tuples lists,
    other objects their ``str``; nesting deeper than 32 levels is cut to ``str``.

    Examples
    --------
    >>> json_safe({"sigma": 0.25, "loss": float("nan"), "shape": (2, 3), 1: object})
    {'sigma': 0.25, 'loss': None, 'shape': [2, 3], '1': "<class 'object'>"}
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth < 32 and isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if depth < 32 and isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return json_safe(value.item(), depth)
    return str(value)


def training_summary(metadata: Mapping[str, Any] | None) -> str | None:
    """One line on how a checkpoint was trained, from its metadata (``None`` if it
    records nothing of it): method, sigma, epochs, seed and the data fingerprint's
    first 12 hex digits, those that are present.

    Examples
    --------
    >>> training_summary({"sigma": 0.25, "sampler": "GaussianL2(sigma=0.25, point_cloud=False)",
    ...                   "train": {"method": "noise", "epochs": 3, "seed": 0,
    ...                             "data_fingerprint": "0123456789abcdef"}})
    'method noise, sampler GaussianL2, sigma 0.25, 3 epochs, seed 0, data 0123456789ab'
    >>> training_summary({}) is None
    True
    """
    if not metadata:
        return None
    train = metadata.get("train")
    train = train if isinstance(train, Mapping) else {}
    parts = []
    if isinstance(train.get("method"), str):
        parts.append(f"method {train['method']}")
    if isinstance(metadata.get("sampler"), str):
        parts.append(f"sampler {metadata['sampler'].split('(', 1)[0]}")
    if isinstance(metadata.get("sigma"), int | float) and not isinstance(metadata["sigma"], bool):
        parts.append(f"sigma {metadata['sigma']:g}")
    epochs = train.get("epochs", metadata.get("epochs"))
    if isinstance(epochs, int) and not isinstance(epochs, bool):
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    seed = train.get("seed", metadata.get("seed"))
    if isinstance(seed, int) and not isinstance(seed, bool):
        parts.append(f"seed {seed}")
    fingerprint = train.get("data_fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        parts.append(f"data {fingerprint[:12]}")
    return ", ".join(parts) or None



def predict_clean(model: torch.nn.Module, x: torch.Tensor, *, layout: str,
                  num_classes: int) -> torch.Tensor:
    """The base model's labels for ONE clean input (shape of the components, CPU int64)."""
    from smoothing._sampling import check_output, model_device, set_eval

    device = model_device(model, x)
    set_eval(model)
    try:
        with torch.inference_mode():
            out = model(x.unsqueeze(0).to(device))
    except RuntimeError as err:
        raise ValueError(
            f"the model cannot process an input of shape {tuple(x.shape)}: {err}"
        ) from err
    out = check_output(out)  # a dict or tuple: the message names `--output-key`
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




def custom_data(cfg: RunConfig, data: Any) -> tuple[RunConfig, DatasetInfo, int]:
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
    return cfg, DatasetInfo(kind, False, "-", None, None), num_classes


def data_fingerprint(data: Any, indices: range) -> str:
    """SHA-256 of the first selected input and target (a data set object's identity)."""
    h = hashlib.sha256()
    for t in data[indices[0]][:2]:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def given_model(cfg: RunConfig, model: Any, device: torch.device
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
    fingerprint, description = user.model_fingerprint(model), user.describe_model(model)
    return select_output(model, cfg.output_key), fingerprint, cfg, description



class OnGrid(torch.utils.data.Dataset):
    """A data set whose images are rounded to the ``bits``-bit grid (quantized smoothing).

    Item ``i`` is ``dataset[i]`` with its input replaced by
    ``round(clamp(x, 0, 1) * L) / L``, ``L = 2**bits - 1``, in float32: the grid point
    that :class:`samplers.Quantized` certifies (unchanged for images read from
    ``bits``-bit files).
    """

    def __init__(self, dataset: Any, bits: int) -> None:
        self.dataset, self.levels = dataset, 2**bits - 1

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        x = item[0].to(torch.float32)
        return ((x.clamp(0, 1) * self.levels).round() / self.levels, *item[1:])
