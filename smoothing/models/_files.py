"""Checkpoint files are untrusted: classify them by content, read weights without code.

Three formats are zip archives that only their content tells apart:

* ``torch.save`` data (a ``state_dict`` or a dict holding one): read with
  ``torch.load(weights_only=True)``, whose unpickler builds tensors and plain
  containers only;
* TorchScript (:func:`torch.jit.save`): a program. :func:`torch.jit.load` compiles the
  archive's ``code/`` and runs its ``__setstate__`` methods while loading, and
  TorchScript reaches operators such as ``aten::save`` and ``aten::from_file(shared=True)``
  that write any file the user can write;
* exported programs (:func:`torch.export.save`): :func:`torch.export.load` unpickles
  entries the archive marks as pickled with ``weights_only=False`` (any Python call).

The two program formats are loaded only on the caller's explicit ``trust_program``
(:func:`smoothing.models.user.load_user_model`); nothing here loads them.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

#: What a checkpoint file can be: ``torch.save`` data, TorchScript, an exported program.
CHECKPOINT_KINDS: tuple[str, ...] = ("torch", "torchscript", "exported")

#: How messages name the two program formats.
PROGRAM_NAMES = {"torchscript": "a TorchScript program (torch.jit.save)",
                 "exported": "an exported program (torch.export.save)"}


def existing_checkpoint(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, or FileNotFoundError naming it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: file '{p}' does not exist.")
    return p


def checkpoint_kind(path: str | os.PathLike[str]) -> str:
    """The format of a checkpoint file, read from its content.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    {'torch', 'torchscript', 'exported'}
        ``'torchscript'`` for archives that hold ``constants.pkl`` (torch's own test
        for a :func:`torch.jit.save` file) or ``code/``; ``'exported'`` for
        :func:`torch.export.save` archives (``archive_format``, ``models/``);
        ``'torch'`` for anything else (``torch.save`` data, zipped or legacy).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        If it looks like a zip archive but its directory cannot be read (naming the file).

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "m.pt"
    ...     torch.jit.script(torch.nn.Conv2d(3, 2, 1)).save(str(path))
    ...     checkpoint_kind(path)
    'torchscript'
    """
    p = existing_checkpoint(path)
    try:
        if not zipfile.is_zipfile(p):
            return "torch"
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"checkpoint '{p}' cannot be read: {err}") from err
    inner = {name.split("/", 1)[-1] for name in names}  # below the archive's folder
    if "constants.pkl" in inner or any(n.startswith("code/") for n in inner):
        return "torchscript"
    if "archive_format" in inner or any(n.startswith("models/") for n in inner):
        return "exported"
    return "torch"


def read_weights(path: str | os.PathLike[str]) -> object:
    """The content of a ``torch.save`` file, read with ``torch.load(weights_only=True)``.

    A TorchScript or exported-program archive is refused before torch opens it.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        If it is a program archive or not a readable weights file (naming the file).

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "w.pt"
    ...     torch.save({"w": torch.ones(2)}, path)
    ...     read_weights(path)["w"].tolist()
    [1.0, 1.0]
    """
    p = existing_checkpoint(path)
    kind = checkpoint_kind(p)
    if kind != "torch":
        raise ValueError(f"checkpoint '{p}' is {PROGRAM_NAMES[kind]}, not a weights file "
                         "(a state_dict written by torch.save).")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"checkpoint '{p}' is not a readable weights file (torch.load "
                         f"with weights_only=True): {err}") from err
