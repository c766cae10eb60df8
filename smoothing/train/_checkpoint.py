"""Files of a training run: the resumable state and the trained weights.

Both are written atomically (:func:`smoothing._io.write_atomic`) and read with
``torch.load(weights_only=True)``: tensors and plain Python values only, never code.

``out/train_state.pt``
    ``{"format": STATE_FORMAT, "version", "step", "model", "optimizer", "epoch_loss",
    "history", "header"}``: everything a resumed run needs to continue bit for bit.
``out/model.pt``
    The trained weights and their metadata. A built-in architecture
    (:data:`smoothing.models.ARCHITECTURES`) is written by
    :func:`smoothing.models.save_checkpoint` (float32), so that ``certify
    --checkpoint out/model.pt`` loads it without ``--arch``; any other model as
    ``{"format": WEIGHTS_FORMAT, "state_dict", "metadata"}``, which
    :func:`smoothing.models.user.load_weights` reads for ``--model-factory``. A model
    wrapped in :class:`smoothing.adapters.OutputSelector` is saved unwrapped: the
    weights of the model it selects from (what the factory builds), without the
    wrapper's ``model.`` prefix.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from smoothing._io import write_atomic

__all__ = ["STATE_FORMAT", "WEIGHTS_FORMAT", "checkpoint_metadata", "data_fingerprint",
           "read_state", "save_weights", "write_state"]

STATE_FORMAT = "segcertify-train-state"
WEIGHTS_FORMAT = "segcertify-weights"
STATE_VERSION = 1


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _to_cpu(obj: Any) -> Any:
    """Tensors of a nested optimizer state moved to the CPU (plain values kept)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, Mapping):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def write_state(path: Path, *, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                epoch_loss: tuple[float, int], history: list[dict[str, Any]],
                header: Mapping[str, Any]) -> None:
    """Write the resumable training state atomically."""
    blob = {
        "format": STATE_FORMAT, "version": STATE_VERSION, "step": int(step),
        "model": _cpu_state(model), "optimizer": _to_cpu(optimizer.state_dict()),
        "epoch_loss": [float(epoch_loss[0]), int(epoch_loss[1])],
        "history": list(history), "header": dict(header),
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    write_atomic(path, buf.getvalue())


def read_state(path: Path) -> dict[str, Any]:
    """The training state written by :func:`write_state` (``weights_only`` loading).

    Raises
    ------
    ValueError
        If the file is not readable or not a training state of this version.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"'{path}' is not a readable training state: {err}") from err
    if not isinstance(blob, Mapping) or blob.get("format") != STATE_FORMAT:
        raise ValueError(f"'{path}' is not a segcertify training state.")
    if blob.get("version") != STATE_VERSION:
        raise ValueError(f"'{path}' is a training state of version {blob.get('version')!r}; "
                         f"this version reads {STATE_VERSION}.")
    missing = [k for k in ("step", "model", "optimizer", "epoch_loss", "history", "header")
               if k not in blob]
    if missing:
        raise ValueError(f"the training state '{path}' is damaged: it lacks {missing}.")
    return dict(blob)


def save_weights(model: nn.Module, path: Path, metadata: Mapping[str, Any]) -> Path:
    """Write the trained weights and ``metadata`` (see the module docstring)."""
    from smoothing.adapters import OutputSelector
    from smoothing.models.registry import ARCHITECTURES, save_checkpoint

    while isinstance(model, OutputSelector):  # the selected-from model's own weights
        model = model.model

    if any(type(model) is cls for cls in ARCHITECTURES.values()):
        return save_checkpoint(model, path, metadata=metadata, half=False)
    buf = io.BytesIO()
    torch.save({"format": WEIGHTS_FORMAT, "state_dict": _cpu_state(model),
                "metadata": dict(metadata)}, buf)
    write_atomic(path, buf.getvalue())
    return path


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The ``metadata`` dict of a weights file (``{}`` if it has none).

    Reads :func:`save_weights` files of both kinds and
    :func:`smoothing.models.save_checkpoint` files with ``weights_only`` loading, so
    that ``certify`` can print and record how a checkpoint was trained.

    Raises
    ------
    ValueError
        If the file is not a readable torch file.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_weights(torch.nn.Linear(2, 2), pathlib.Path(tmp) / "w.pt",
    ...                         {"sigma": 0.25})
    ...     checkpoint_metadata(path)
    {'sigma': 0.25}
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"'{path}' is not a readable torch file: {err}") from err
    meta = blob.get("metadata") if isinstance(blob, Mapping) else None
    return dict(meta) if isinstance(meta, Mapping) else {}


def _hash_tensor(h: Any, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}|{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def data_fingerprint(dataset: Any) -> str:
    """SHA-256 identifying a data set's content.

    ``dataset.fingerprint()`` if the data set has one (e.g.
    :class:`smoothing.datasets.FolderDataset`, from its files' bytes), else the hash
    of its class name, its length and every item's input and target tensors (one
    pass over the data).

    Examples
    --------
    >>> import torch
    >>> data = [(torch.zeros(3, 2, 2), torch.zeros(2, 2, dtype=torch.long))] * 2
    >>> data_fingerprint(data) == data_fingerprint(list(data)), len(data_fingerprint(data))
    (True, 64)
    """
    own = getattr(dataset, "fingerprint", None)
    if callable(own):
        return str(own())
    h = hashlib.sha256(f"{type(dataset).__qualname__}|{len(dataset)}".encode())
    for i in range(len(dataset)):
        for t in dataset[i][:2]:
            _hash_tensor(h, t)
    return h.hexdigest()
