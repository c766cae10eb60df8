"""Bring your own model: factories, plain weights, TorchScript and exported programs.

A certification run (``segcertify certify`` or :func:`smoothing.runs.run_certification`)
can use any segmentation model, not only the built-in ones:

* ``--model-factory MODULE:FUNCTION [--model-kwargs JSON]``: ``FUNCTION(**kwargs)``
  of an importable module returns the model; ``--checkpoint`` optionally holds its
  weights, a bare ``state_dict`` or ``{"state_dict": ...}`` read with
  ``torch.load(weights_only=True)`` (no code is unpickled);
* ``--checkpoint model.ts --trust-program``, written by :func:`torch.jit.save` (TorchScript);
* ``--checkpoint model.pt2 --trust-program``, written by :func:`torch.export.save` (export
  it with a dynamic batch dimension: the runner feeds batches of ``--batch-size`` and less).

TorchScript and exported programs are code: loading one runs code stored in the file
(TorchScript's ``__setstate__`` can write any file through ``aten::save``; an exported
archive can hold pickles that :func:`torch.export.load` opens with
``weights_only=False``). They are loaded only with ``trust_program=True``
(``--trust-program``); without it they are refused before torch opens them.

:func:`checkpoint_kind` tells the formats apart by the content of the file (all are
zip archives), not by its name; the content only ever selects a loader that is safe
or was explicitly trusted. A model takes a batch of inputs as the data set holds
them, ``(B, C, H, W)`` images or ``(B, N, d)`` point clouds, and returns logits
``(B, K, H, W)`` or ``(B, N, K)``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from smoothing._io import file_sha256
from smoothing.models._files import (
    CHECKPOINT_KINDS,
    PROGRAM_NAMES,
    checkpoint_kind,
    existing_checkpoint,
    read_weights,
)

__all__ = [
    "CHECKPOINT_KINDS",
    "ExportedProgramModel",
    "checkpoint_kind",
    "describe_model",
    "import_factory",
    "load_user_model",
    "load_weights",
    "model_fingerprint",
]

def import_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``'package.module:function'`` (``--model-factory``).

    The module is imported normally: it must be on ``sys.path`` (e.g. through
    ``PYTHONPATH``). The attribute may be dotted (``module:Class.build``).

    Raises
    ------
    ValueError
        If ``spec`` is not ``MODULE:FUNCTION``, the module cannot be imported or
        has no such attribute, or it is not callable.

    Examples
    --------
    >>> import_factory("torch.nn:Identity")().__class__.__name__
    'Identity'
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"`--model-factory` must be MODULE:FUNCTION (e.g. "
                         f"'mypackage.models:build'); got {spec!r}.")
    module_name, attr = spec.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"`--model-factory` {spec!r}: cannot import module "
                         f"{module_name!r} ({err}); is its folder on PYTHONPATH?") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"`--model-factory` {spec!r}: {module_name!r} has no "
                             f"attribute {attr!r}.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"`--model-factory` {spec!r} is not callable.")
    return obj


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a bare ``state_dict`` or ``{"state_dict": ...}`` file into ``model``.

    Read with ``torch.load(weights_only=True)``, after refusing TorchScript and
    exported archives (:func:`smoothing.models._files.read_weights`); the keys must
    match exactly.
    Floating-point tensors are cast to the model's dtypes by ``load_state_dict``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is a program archive, not a readable weights file, or does not fit
        ``model`` (the message names the file).

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "w.pt"
    ...     torch.save({"state_dict": torch.nn.Linear(2, 2).state_dict()}, path)
    ...     model = load_weights(torch.nn.Linear(2, 2), path)
    >>> type(model).__name__
    'Linear'
    """
    p = existing_checkpoint(path)
    if not isinstance(model, nn.Module):
        raise ValueError("`--checkpoint` holds weights but the factory returned a "
                         f"{type(model).__name__}, not a torch.nn.Module.")
    blob = read_weights(p)
    if isinstance(blob, Mapping) and isinstance(blob.get("state_dict"), Mapping):
        blob = blob["state_dict"]
    if not isinstance(blob, Mapping) or not all(isinstance(v, torch.Tensor)
                                                for v in blob.values()):
        raise ValueError(f"'{p}' must hold a state_dict (names -> tensors) or "
                         "{'state_dict': ...}.")
    try:
        model.load_state_dict(dict(blob))
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"the weights in '{p}' do not fit the factory's "
                         f"{type(model).__name__}: {err}") from err
    return model


class ExportedProgramModel(nn.Module):
    """A :func:`torch.export.load`-ed program as a module that accepts ``eval()``.

    The graph was traced in the mode it was exported in; ``train``/``eval`` only
    set the flag (the exported module itself refuses them).
    """

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> ExportedProgramModel:  # noqa: D102
        self.training = bool(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.program(x)


def describe_model(model: object) -> str:
    """``module.QualifiedName`` of a model's class (for a function, of the function)."""
    target = model if not isinstance(model, nn.Module) and hasattr(model, "__qualname__") \
        else type(model)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"


def model_fingerprint(model: object) -> str:
    """SHA-256 of a model's class name and its parameters and buffers (names, dtypes,
    shapes, values): the identity a run records so that a resume with another model is
    refused. A callable that is not a module is identified by its name only.

    Examples
    --------
    >>> import torch
    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> model_fingerprint(a) == model_fingerprint(a), model_fingerprint(a) == model_fingerprint(b)
    (True, False)
    """
    h = hashlib.sha256(describe_model(model).encode())
    if isinstance(model, nn.Module):
        for name, t in model.state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_user_model(*, checkpoint: str | os.PathLike[str] | None = None,
                    factory: str | None = None,
                    factory_kwargs: Mapping[str, Any] | None = None,
                    device: str | torch.device = "cpu",
                    trust_program: bool = False) -> tuple[nn.Module, str, str]:
    """Load a user's model, in eval mode on ``device``.

    Parameters
    ----------
    checkpoint : path, optional
        TorchScript or exported-program file (alone, with ``trust_program``), or the
        weights of the factory's model (:func:`load_weights`).
    factory : str, optional
        ``'module:function'`` (:func:`import_factory`); called with
        ``factory_kwargs``.
    factory_kwargs : mapping, optional
        JSON-like keyword arguments of the factory.
    device : str or torch.device, default 'cpu'
        Where the model goes.
    trust_program : bool, default False
        Load a TorchScript or exported-program ``checkpoint``. Loading and running
        one executes code stored in the file, with your permissions: set it only
        for a file you trust as you would trust a Python script. Weights files
        never need it.

    Returns
    -------
    (model, fingerprint, description)
        ``fingerprint``: SHA-256 of the checkpoint file, else of the factory's
        fresh weights (:func:`model_fingerprint`); ``description``: what it is.

    Raises
    ------
    ValueError
        If neither is given, a plain ``torch.save`` checkpoint comes without a
        factory, a program comes without ``trust_program`` or loading fails (the
        message names the file).
    FileNotFoundError
        If ``checkpoint`` does not exist.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "m.ts"
    ...     torch.jit.script(torch.nn.Conv2d(3, 2, 1)).save(str(path))
    ...     try:
    ...         load_user_model(checkpoint=path)
    ...     except ValueError as err:
    ...         print(str(err).split(": ")[1].split(";")[0])
    ...     model, sha, description = load_user_model(checkpoint=path, trust_program=True)
    loading one runs code stored in the file, with your permissions
    >>> description
    'TorchScript m.ts'
    """
    path = Path(checkpoint).expanduser().resolve() if checkpoint is not None else None
    if factory is None:
        if path is None:
            raise ValueError("give `--model-factory` or a TorchScript / exported `--checkpoint`.")
        kind = checkpoint_kind(path)
        if kind == "torch":
            raise ValueError(f"'{path}' is a torch.save file: give its architecture with "
                             "`--model-factory` (or `--arch` for the built-in ones).")
        model = _load_program(path, kind, trust_program)
        return model.to(device).eval(), file_sha256(path), f"{_DESCRIPTIONS[kind]} {path.name}"
    kwargs = dict(factory_kwargs or {})
    try:
        json.dumps(kwargs)
    except TypeError as err:
        raise ValueError(f"`--model-kwargs` must be JSON-like: {err}") from err
    model = import_factory(factory)(**kwargs)
    if not callable(model):
        raise ValueError(f"`--model-factory` {factory!r} returned a {type(model).__name__}, "
                         "not a model (a torch.nn.Module or a callable).")
    description = f"{describe_model(model)} from {factory}({json.dumps(kwargs)})"
    if path is not None:
        load_weights(model, path)
        fingerprint = file_sha256(path)
    else:
        fingerprint = model_fingerprint(model)
    if isinstance(model, nn.Module):
        model = model.to(device).eval()
    return model, fingerprint, description


_DESCRIPTIONS = {"torchscript": "TorchScript", "exported": "exported program"}


def _load_program(path: Path, kind: str, trust_program: bool) -> nn.Module:
    """Load a TorchScript or exported program, only if ``trust_program``."""
    if not trust_program:
        raise ValueError(
            f"checkpoint '{path}' is {PROGRAM_NAMES[kind]}: loading one runs code stored "
            "in the file, with your permissions; set `trust_program` to load it, only if "
            "you trust the file as you would a script.")
    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        return ExportedProgramModel(torch.export.load(str(path)).module())
    except Exception as err:  # torch raises RuntimeError, AssertionError, KeyError, ...
        raise ValueError(f"checkpoint '{path}' cannot be loaded as "
                         f"{PROGRAM_NAMES[kind]}: {err}") from err
