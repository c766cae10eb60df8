"""Built-in base models and checkpoint I/O.

A checkpoint written by :func:`save_checkpoint` is a ``torch.save`` dict::

    {"format": "segcertify.checkpoint", "format_version": 1,
     "arch": "unet" | "pointnet", "arch_kwargs": {...},
     "state_dict": {...},            # float tensors stored as float16
     "metadata": {"num_classes": ..., "sigma": ..., "input_layout": ..., ...}}

It is read with ``torch.load(..., weights_only=True)``: no code is unpickled, and a
TorchScript or exported-program archive is refused before torch opens it
(:mod:`smoothing.models._files`). The file is untrusted: its ``arch_kwargs`` must
agree with its tensors' shapes (so it cannot make us build a huge model), and every
error is a ValueError naming the file.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from smoothing._io import write_atomic
from smoothing.models._files import existing_checkpoint, read_weights
from smoothing.models.pointnet import PointNetSeg
from smoothing.models.unet import SmallUNet

__all__ = [
    "ARCHITECTURES",
    "BUILTIN_MODELS",
    "CHECKPOINT_DIR",
    "ModelSpec",
    "build_model",
    "checkpoint_path",
    "get_model_spec",
    "list_models",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

#: Architecture name -> model class.
ARCHITECTURES: dict[str, type[nn.Module]] = {"unet": SmallUNet, "pointnet": PointNetSeg}

#: Where the shipped checkpoints live (package data of ``smoothing``).
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"

_FORMAT = "segcertify.checkpoint"
_FORMAT_VERSION = 1
_LAYOUTS = ("image", "points", "points+normals")


@dataclass(frozen=True)
class ModelSpec:
    """What a built-in model is and how to feed it.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``'streets-unet-sigma0.25'``.
    arch : {'unet', 'pointnet'}
        Key in ``ARCHITECTURES``.
    checkpoint : str
        File name in ``CHECKPOINT_DIR``.
    num_classes : int
        Number of output logits per pixel or point.
    sigma : float
        Standard deviation of the Gaussian noise added in training (0: none).
    input_layout : {'image', 'points', 'points+normals'}
        ``'image'``: (B, 3, H, W) floats in [0, 1]; ``'points'``: (B, N, 3) positions;
        ``'points+normals'``: (B, N, 6) positions then unit normals. Point clouds
        must be centred and scaled to the unit ball.
    dataset : str
        The data set it was trained on (a class in ``smoothing.datasets``).
    description : str
        One line for listings.
    """

    name: str
    arch: str
    checkpoint: str
    num_classes: int
    sigma: float
    input_layout: str
    dataset: str
    description: str


def _streets(sigma: float, description: str) -> ModelSpec:
    tag = "clean" if sigma == 0 else f"sigma{sigma:.2f}"
    return ModelSpec(
        f"streets-unet-{tag}", "unet", f"streets-unet-{tag}.pt", 8, sigma, "image",
        "SyntheticStreets", description,
    )  # fmt: skip


def _parts(sigma: float, normals: bool) -> ModelSpec:
    tag = f"{'normals-' if normals else ''}sigma{sigma:.2f}"
    layout = "points+normals" if normals else "points"
    return ModelSpec(
        f"parts-pointnet-{tag}", "pointnet", f"parts-pointnet-{tag}.pt", 50, sigma, layout,
        "SyntheticParts",
        f"PointNet, {'xyz + normals' if normals else 'xyz'}, Gaussian noise sigma={sigma} "
        "on the positions in training (the paper's f_sigma"
        f"{'^n' if normals else ''})",
    )  # fmt: skip


#: The built-in models, by name.
BUILTIN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _streets(0.0, "U-Net trained without noise (the paper's 'non-robust model')"),
        _streets(0.25, "U-Net trained with Gaussian noise sigma=0.25"),
        _streets(0.5, "U-Net trained with Gaussian noise sigma=0.5"),
        _parts(0.25, False),
        _parts(0.25, True),
        _parts(0.5, False),
        _parts(0.5, True),
    )
}


def list_models() -> tuple[str, ...]:
    """Names of the built-in models.

    Examples
    --------
    >>> "streets-unet-sigma0.25" in list_models()
    True
    """
    return tuple(BUILTIN_MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a built-in model.

    Raises
    ------
    ValueError
        If ``name`` is not a built-in model (the message lists them).

    Examples
    --------
    >>> spec = get_model_spec("parts-pointnet-normals-sigma0.25")
    >>> spec.arch, spec.num_classes, spec.sigma, spec.input_layout
    ('pointnet', 50, 0.25, 'points+normals')
    """
    if name not in BUILTIN_MODELS:
        raise ValueError(f"`name` must be one of {sorted(BUILTIN_MODELS)}; got {name!r}.")
    return BUILTIN_MODELS[name]


def checkpoint_path(name: str) -> Path:
    """Path of the shipped checkpoint of a built-in model (it may not exist)."""
    return CHECKPOINT_DIR / get_model_spec(name).checkpoint


def build_model(arch: str, **arch_kwargs: Any) -> nn.Module:
    """A fresh, untrained model of architecture ``arch``.

    Examples
    --------
    >>> build_model("unet", num_classes=8, width=8).num_classes
    8
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"`arch` must be one of {sorted(ARCHITECTURES)}; got {arch!r}.")
    return ARCHITECTURES[arch](**arch_kwargs)


def _check_state(state: object, path: Path) -> Mapping[str, torch.Tensor]:
    """A state_dict must map parameter names to tensors (say which file if it does not)."""
    if not isinstance(state, Mapping) or not state:
        raise ValueError(
            f"the checkpoint '{path}' holds no state_dict: expected a non-empty dict of "
            f"parameter names to tensors; got {type(state).__name__} {_short(state)}."
        )
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"the state_dict in checkpoint '{path}' must map parameter names to "
                f"tensors; entry {key!r} is {type(value).__name__} {_short(value)}."
            )
    return state


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _infer_arch_kwargs(arch: str, state: Mapping[str, torch.Tensor],
                       path: Path) -> dict[str, int]:
    """Rebuild the constructor arguments of ``arch`` from a state_dict's shapes."""
    try:
        if arch == "unet":
            first = state["down.0.0.weight"]
            depth = len({m.group(1) for k in state if (m := re.match(r"down\.(\d+)\.", k))}) - 1
            return {
                "num_classes": int(state["head.weight"].shape[0]),
                "in_channels": int(first.shape[1]),
                "width": int(first.shape[0]),
                "depth": depth,
            }
        first = state["local.0.0.weight"]
        return {
            "num_classes": int(state["head.2.weight"].shape[0]),
            "in_channels": int(first.shape[1]),
            "width": int(first.shape[0]),
        }
    except KeyError as err:
        raise ValueError(
            f"the state_dict in '{path}' does not look like a {arch!r} model: missing key {err}."
        ) from err
    except IndexError as err:  # a tensor of the wrong rank
        raise ValueError(
            f"the state_dict in '{path}' does not look like a {arch!r} model: {err}."
        ) from err


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Write ``model`` (a ``SmallUNet`` or ``PointNetSeg``) and its metadata to ``path``.

    Parameters
    ----------
    model : SmallUNet or PointNetSeg
        The model to save.
    path : str or os.PathLike
        Output file (``.pt``); parent folders are created.
    metadata : mapping, optional
        JSON-like values (str, int, float, bool, None, lists, dicts) stored next to
        the weights, e.g. ``sigma`` and ``input_layout``. ``num_classes`` is added.
    half : bool, default True
        Store floating-point tensors as float16 (half the size); they are cast back
        to float32 on loading.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    arch = next((k for k, cls in ARCHITECTURES.items() if type(model) is cls), None)
    if arch is None:
        raise TypeError(
            f"`model` must be one of {[c.__name__ for c in ARCHITECTURES.values()]}; "
            f"got {type(model).__name__}."
        )
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    try:  # plain JSON-like values only, so that weights_only loading can read them
        meta = json.loads(json.dumps(dict(metadata or {})))
    except TypeError as err:
        raise TypeError(f"`metadata` must hold JSON-like values only: {err}") from err
    meta["num_classes"] = int(model.num_classes)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(
        {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "arch": arch,
            "arch_kwargs": model.arch_kwargs(),
            "state_dict": state,
            "metadata": meta,
        },
        buf,
    )
    write_atomic(out, buf.getvalue())  # a killed run never leaves a torn checkpoint
    return out


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    arch_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Load a model from a checkpoint file, in eval mode.

    Reads files written by :func:`save_checkpoint` as well as a user's plain
    ``state_dict`` (or ``{"state_dict": ...}``) of one of ``ARCHITECTURES``; for the
    latter ``arch`` is required and the layer sizes are read from the tensors.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.pt`` file.
    arch : {'unet', 'pointnet'}, optional
        Architecture; must match the file's if it names one.
    num_classes : int, optional
        Expected number of classes; checked against the file's final layer.
    device : str or torch.device, default 'cpu'
        Where to put the model.
    arch_kwargs : mapping, optional
        Constructor arguments that override the inferred ones.

    Returns
    -------
    torch.nn.Module
        The model in eval mode, float32, on ``device``; ``model.metadata`` holds the
        file's metadata (empty for a plain state_dict).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``num_classes`` or ``arch`` disagrees with the file, ``arch`` is missing
        for a plain state_dict, or the tensors do not fit the architecture.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> model = build_model("pointnet", num_classes=4, width=4)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_checkpoint(model, pathlib.Path(tmp) / "m.pt", metadata={"sigma": 0.25})
    ...     loaded = load_checkpoint(path, num_classes=4)
    >>> type(loaded).__name__, loaded.metadata["sigma"], loaded.training
    ('PointNetSeg', 0.25, False)
    """
    p = existing_checkpoint(path)
    blob = read_weights(p)
    if not isinstance(blob, Mapping):
        raise ValueError(
            f"'{p}' must hold a dict (a state_dict or a checkpoint); got {type(blob)}."
        )

    metadata: dict[str, Any] = {}
    if blob.get("format") == _FORMAT:
        missing = [k for k in ("arch", "state_dict", "arch_kwargs") if k not in blob]
        if missing or not isinstance(blob["arch_kwargs"], Mapping):
            raise ValueError(f"the checkpoint '{p}' is damaged: "
                             + (f"it lacks {missing}." if missing else "bad `arch_kwargs`."))
        file_arch = blob["arch"]
        if not isinstance(file_arch, str) or file_arch not in ARCHITECTURES:
            raise ValueError(f"the checkpoint '{p}' is damaged: its arch {_short(file_arch)} "
                             f"is not one of {sorted(ARCHITECTURES)}.")
        if arch is not None and arch != file_arch:
            raise ValueError(f"`arch` is {arch!r} but the checkpoint '{p}' holds a {file_arch!r}.")
        arch = file_arch
        state, kwargs = _check_state(blob["state_dict"], p), dict(blob["arch_kwargs"])
        inferred = _infer_arch_kwargs(arch, state, p)
        if kwargs != inferred:  # the tensors bound the model's size, not the file's words
            raise ValueError(f"the checkpoint '{p}' is damaged: its arch_kwargs "
                             f"{_short(kwargs)} disagree with its tensors {inferred}.")
        if not isinstance(blob.get("metadata") or {}, Mapping):
            raise ValueError(f"the checkpoint '{p}' is damaged: its metadata is a "
                             f"{type(blob['metadata']).__name__}, not a dict.")
        metadata = dict(blob.get("metadata") or {})
    else:
        state = _check_state(blob.get("state_dict", blob.get("model", blob)), p)
        if arch is None:
            raise ValueError(
                f"`arch` is required to load the plain state_dict in '{p}'; "
                f"choose from {sorted(ARCHITECTURES)}. For an architecture of your own, "
                "pass `model_factory` (MODULE:FUNCTION building it) with this file as "
                "`checkpoint`, or build it and call load_state_dict yourself."
            )
        if arch not in ARCHITECTURES:
            raise ValueError(f"`arch` must be one of {sorted(ARCHITECTURES)}; got {arch!r}.")
        kwargs = _infer_arch_kwargs(arch, state, p)
    kwargs.update(arch_kwargs or {})
    if num_classes is not None and num_classes != kwargs["num_classes"]:
        raise ValueError(
            f"`num_classes` is {num_classes} but the checkpoint '{p}' has "
            f"{kwargs['num_classes']} output classes."
        )
    try:
        model = build_model(arch, **kwargs)
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"the tensors in '{p}' do not fit {arch!r}{kwargs}: {err}") from err
    model.metadata = metadata
    return model.to(device).eval()


def load_model(name: str, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a built-in model by name, in eval mode.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    device : str or torch.device, default 'cpu'
        Where to put the model.

    Returns
    -------
    torch.nn.Module
        The model; ``model.metadata`` holds the training details and measured
        accuracies.

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    FileNotFoundError
        If the checkpoint is not installed (re-create it with
        ``python simulations/train_base_models.py``).

    Examples
    --------
    >>> import torch
    >>> model = load_model("streets-unet-sigma0.25")
    >>> model(torch.rand(1, 3, 64, 128)).shape
    torch.Size([1, 8, 64, 128])
    """
    spec = get_model_spec(name)
    path = checkpoint_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint of {name!r} not found at '{path}'; create it with "
            "`python simulations/train_base_models.py`."
        )
    return load_checkpoint(path, arch=spec.arch, num_classes=spec.num_classes, device=device)
