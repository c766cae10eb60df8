"""The training loop of :func:`train_for_smoothing`.

One module (~660 lines): the loop, its resumable state and its validation pass share
the model, optimiser and data order that a resume must restore bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from samplers import Sampler
from smoothing import _sampling as S
from smoothing._io import FolderLock
from smoothing._progress import progress_bar
from smoothing.train._checkpoint import (
    data_fingerprint,
    read_state,
    save_weights,
    write_state,
)
from smoothing.train._losses import consistency_loss, noise_loss

__all__ = ["METHODS", "TrainRecipe", "TrainResult", "TrainStateMismatchError",
           "train_for_smoothing"]

#: Training methods: Gaussian/Laplace/... noise augmentation (Cohen et al., 2019) and
#: consistency regularization (Jeong & Shin, 2020).
METHODS: tuple[str, ...] = ("noise", "consistency")
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
SCHEDULES: tuple[str, ...] = ("cosine", "constant")

STATE_FILE = "train_state.pt"
WEIGHTS_FILE = "model.pt"

# seed streams: every random choice is a function of (seed, stream, index)
_SPLIT, _ORDER, _NOISE, _AUGMENT, _TORCH, _VAL = range(6)


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that decides the trained weights, besides the model, data and sampler.

    Recorded in the checkpoint's metadata (``metadata["train"]["recipe"]``); a resumed
    run must have the same recipe. See :func:`train_for_smoothing` for the fields.

    Examples
    --------
    >>> TrainRecipe(method="consistency", epochs=2).m
    2
    >>> TrainRecipe(method="ensemble", epochs=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `method` must be one of 'noise', 'consistency'; got 'ensemble'.
    """

    method: str = "noise"
    epochs: int = 1
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_steps: int = 0
    m: int = 2
    lam: float = 10.0
    eta: float = 0.5
    val_fraction: float = 0.1
    ignore_index: int = 255
    hflip: bool = False
    crop: tuple[int, int] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name, choices in (("method", METHODS), ("optimizer", OPTIMIZERS),
                              ("schedule", SCHEDULES)):
            if getattr(self, name) not in choices:
                text = ", ".join(repr(c) for c in choices)
                raise ValueError(f"`{name}` must be one of {text}; got {getattr(self, name)!r}.")
        for name in ("epochs", "batch_size"):
            S.check_int(getattr(self, name), name)
        S.check_int(self.m, "m", low=2 if self.method == "consistency" else 1)
        for name in ("warmup_steps", "ignore_index", "seed"):
            S.check_int(getattr(self, name), name, low=0)
        S.check_real(self.lr, "lr", 0.0, math.inf, closed_low=False, text="(0, inf)")
        for name in ("weight_decay", "lam", "eta"):
            S.check_real(getattr(self, name), name, 0.0, math.inf, closed_low=True,
                         text="[0, inf)")
        S.check_real(self.momentum, "momentum", 0.0, 1.0, closed_low=True, text="[0, 1)")
        S.check_real(self.val_fraction, "val_fraction", 0.0, 1.0, closed_low=True,
                     text="[0, 1)")
        if not isinstance(self.hflip, bool):
            raise TypeError(f"`hflip` must be a bool; got {self.hflip!r}.")
        if self.crop is not None:
            crop = self.crop
            if (not isinstance(crop, tuple | list) or len(crop) != 2
                    or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1
                               for c in crop)):
                raise ValueError(f"`crop` must be None or (height, width), ints >= 1; "
                                 f"got {crop!r}.")
            object.__setattr__(self, "crop", (int(crop[0]), int(crop[1])))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-like values (the crop as a list)."""
        d = asdict(self)
        d["crop"] = list(self.crop) if self.crop is not None else None
        return d

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of optimiser step ``step`` of ``total``: linear warm-up over
        ``warmup_steps``, then constant or cosine decay to 0 at ``total``.

        Examples
        --------
        >>> r = TrainRecipe(lr=1.0, warmup_steps=2)
        >>> [round(r.lr_at(s, 6), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        span = max(1, total - self.warmup_steps)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * (step - self.warmup_steps) / span))


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_for_smoothing` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (the object passed in), in eval mode, on the training
        device; ``model.metadata`` is ``metadata`` where the model allows it.
    metadata : dict
        Plain values: ``sigma`` (of a Gaussian or Laplace sampler, else None),
        ``sampler`` and ``train`` (method, epochs, seed, data fingerprint, recipe,
        steps, sizes of the splits, history, seconds, device, torch version).
    history : list of dict
        One entry per epoch: ``epoch``, ``step``, ``lr``, ``train_loss``,
        ``val_accuracy`` (clean) and ``val_accuracy_noisy`` (one fixed noise draw
        per validation item), ``None`` without validation data.
    weights_path, state_path : pathlib.Path or None
        ``out/model.pt`` and ``out/train_state.pt`` (``None`` without ``out``).
    resumed_from : int
        Optimiser steps that were already done when this call started (0: a fresh run).
    """

    model: nn.Module
    metadata: dict[str, Any]
    history: list[dict[str, Any]] = field(repr=False)
    weights_path: Path | None
    state_path: Path | None
    resumed_from: int


class TrainStateMismatchError(ValueError):
    """The training state in ``out`` comes from another run (recipe, sampler, data or
    starting model): :func:`train_for_smoothing` refuses to resume it.

    Attributes
    ----------
    path : pathlib.Path
        The state file.
    differences : list of str
        One ``"name: old in the state, new now"`` per differing header entry.
    """

    def __init__(self, path: Path, differences: list[str]) -> None:
        self.path, self.differences = path, list(differences)
        super().__init__(f"the training state '{path}' comes from another run ("
                         + "; ".join(differences) + "): pass resume=False to start afresh, "
                         "or another `out`.")


def _stream_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit seed for the random choices of ``(seed, stream, index)``."""
    words = np.random.SeedSequence([seed, stream, index]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 ^ int(words[1])


def _generator(seed: int, stream: int, index: int, device: str | torch.device = "cpu"
               ) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(_stream_seed(seed, stream, index))


def resolve_device(device: str | torch.device) -> torch.device:
    """``'auto'``: the first CUDA GPU, else Apple's MPS, else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got "
                         f"{device!r}.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but CUDA is not available on this machine.")
    return dev


def _split(n: int, recipe: TrainRecipe, has_val: bool) -> tuple[list[int], list[int]]:
    """(train indices, validation indices) of a data set of ``n`` items."""
    if has_val or recipe.val_fraction == 0:
        return list(range(n)), []
    n_val = max(1, round(recipe.val_fraction * n))
    if n_val >= n:
        raise ValueError(f"`val_fraction` = {recipe.val_fraction} leaves no training item of "
                         f"the {n}; lower it or pass `val_dataset`.")
    perm = torch.randperm(n, generator=_generator(recipe.seed, _SPLIT, 0)).tolist()
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def _item(dataset: Any, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    item = dataset[index]
    if not (isinstance(item, tuple | list) and len(item) >= 2
            and isinstance(item[0], torch.Tensor) and isinstance(item[1], torch.Tensor)):
        raise TypeError(f"`dataset[{index}]` must be (input, target[, ...]) tensors; got "
                        f"{type(item).__name__}.")
    x, y = item[0], item[1]
    if not torch.is_floating_point(x):
        raise TypeError(f"`dataset[{index}]` input must be floating point; got {x.dtype}.")
    return x, y.long()


def _augment(x: torch.Tensor, y: torch.Tensor, recipe: TrainRecipe, gen: torch.Generator,
             index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random crop and/or horizontal flip of one image item."""
    if recipe.crop is not None:
        h, w = recipe.crop
        if x.ndim != 3 or x.shape[-2] < h or x.shape[-1] < w:
            raise ValueError(f"item {index} of shape {tuple(x.shape)} is smaller than `crop` "
                             f"= {recipe.crop} (or not an image).")
        top = int(torch.randint(0, x.shape[-2] - h + 1, (), generator=gen))
        left = int(torch.randint(0, x.shape[-1] - w + 1, (), generator=gen))
        x, y = x[..., top:top + h, left:left + w], y[..., top:top + h, left:left + w]
    if recipe.hflip and x.ndim == 3 and bool(torch.rand((), generator=gen) < 0.5):
        x, y = x.flip(-1), y.flip(-1)
    return x, y


def _stack(items: Sequence[tuple[torch.Tensor, torch.Tensor]], indices: Sequence[int]
           ) -> tuple[torch.Tensor, torch.Tensor]:
    shapes = {tuple(x.shape) for x, _ in items}
    if len(shapes) > 1:
        raise ValueError(f"the items {list(indices)[:4]} have different shapes {sorted(shapes)}"
                         "; pass `crop=(height, width)` (random crops) or `batch_size=1`.")
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def _logits(model: Any, x: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
    """The model's scores with the classes in dimension 1, and the resolved layout."""
    out = S.check_output(model(x))
    if layout == "auto":
        layout = S.infer_layout(tuple(out.shape), tuple(x.shape[1:2]), None)
    spec = S.LAYOUTS[layout]
    if out.ndim != spec.ndim:
        raise ValueError(f"the model output has shape {tuple(out.shape)}; layout {layout!r} "
                         f"expects {spec.ndim} dimensions.")
    return out.movedim(spec.class_dim, 1), layout


def _check_target(logits: torch.Tensor, y: torch.Tensor, ignore_index: int, step: int) -> None:
    if tuple(logits.shape[2:]) != tuple(y.shape[1:]):
        raise ValueError(f"the model output has components of shape {tuple(logits.shape[2:])} "
                         f"but the targets have {tuple(y.shape[1:])}.")
    bad = (y != ignore_index) & ((y < 0) | (y >= logits.shape[1]))
    if bool(bad.any()):
        value = int(y[bad][0])
        raise ValueError(f"a target of batch {step} holds label {value}, outside 0..."
                         f"{logits.shape[1] - 1} (the model's classes) and not the "
                         f"`ignore_index` {ignore_index}.")


@torch.no_grad()
def _validate(model: Any, data: Any, indices: Sequence[int], sampler: Sampler,
              recipe: TrainRecipe, layout: str, device: torch.device
              ) -> tuple[float | None, float | None]:
    """(clean, noisy) pixel accuracy over the labelled components of the validation
    items; the noise is the same at every epoch (one draw per item)."""
    if not indices:
        return None, None
    model.eval()
    correct = [0, 0]
    total = 0
    for i in indices:
        x, y = _item(data, i)
        x, y = x.to(device)[None], y.to(device)[None]
        gen = _generator(recipe.seed, _VAL, i, device)
        labelled = y != recipe.ignore_index
        for k, inp in enumerate((x, sampler.perturb(x, generator=gen))):
            logits, _ = _logits(model, inp, layout)
            correct[k] += int(((logits.argmax(1) == y) & labelled).sum())
        total += int(labelled.sum())
    if total == 0:
        return None, None
    return correct[0] / total, correct[1] / total


def _header(model: nn.Module, sampler: Sampler, recipe: TrainRecipe, fingerprint: str,
            val_fingerprint: str | None, n_train: int, n_val: int, start: str) -> dict:
    from smoothing.models.user import describe_model

    return {
        "recipe": recipe.to_dict(), "sampler": repr(sampler), "model": describe_model(model),
        "start_model": start, "data_fingerprint": fingerprint,
        "val_data_fingerprint": val_fingerprint, "num_train": n_train, "num_val": n_val,
    }


def _resume_mismatch(old: dict, new: dict) -> list[str]:
    return [f"{k}: {old.get(k)!r} in the state, {new[k]!r} now" for k in new
            if old.get(k) != new[k]]


def _metadata(header: dict, sampler: Sampler, history: list, steps: int, seconds: float,
              device: torch.device) -> dict[str, Any]:
    recipe = header["recipe"]
    sigma = getattr(sampler, "sigma", None)
    return {
        "sigma": float(sigma) if isinstance(sigma, int | float) else None,
        "sampler": header["sampler"],
        "train": {
            "method": recipe["method"], "epochs": recipe["epochs"], "seed": recipe["seed"],
            "data_fingerprint": header["data_fingerprint"],
            "val_data_fingerprint": header["val_data_fingerprint"],
            "recipe": recipe, "steps": steps, "num_train": header["num_train"],
            "num_val": header["num_val"], "start_model": header["start_model"],
            "history": history, "seconds": round(seconds, 2), "device": str(device),
            "torch": str(torch.__version__),
        },
    }


def train_for_smoothing(
    model: nn.Module,
    dataset: Any,
    sampler: Sampler,
    *,
    epochs: int,
    method: str = "noise",
    batch_size: int = 16,
    optimizer: str = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    momentum: float = 0.9,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    m: int = 2,
    lam: float = 10.0,
    eta: float = 0.5,
    val_fraction: float = 0.1,
    val_dataset: Any = None,
    ignore_index: int = 255,
    hflip: bool = False,
    crop: tuple[int, int] | None = None,
    seed: int = 0,
    layout: str = "auto",
    out: str | Path | None = None,
    resume: bool = True,
    checkpoint_every: int | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    r"""Train (or fine-tune) a segmentation model for randomized smoothing.

    A smoothed model certifies only what its base model predicts *under the noise*;
    a model trained on clean inputs predicts noisy ones badly. This trains it under
    the noise of ``sampler`` -- the object that certification uses, through the same
    :meth:`samplers.Sampler.perturb`, so training and certification noise cannot
    drift apart.

    Parameters
    ----------
    model : torch.nn.Module
        The model, trained in place (a pretrained model is fine-tuned). Its output
        is a tensor of logits in ``layout`` (wrap dict or tuple outputs in
        :class:`smoothing.adapters.OutputSelector`).
    dataset : map-style data set
        ``len(dataset)`` and ``dataset[i] = (input, target[, ...])``: an image
        (C, H, W) and int labels (H, W), or a point cloud (N, d) and labels (N,),
        e.g. :class:`~smoothing.datasets.SyntheticStreets` or
        :class:`~smoothing.datasets.FolderDataset`.
    sampler : samplers.Sampler
        The smoothing distribution, e.g. ``GaussianL2(0.25)`` or ``LaplaceL1(0.5)``:
        every training input is ``sampler.perturb(x)``.
    epochs : int
        Passes over the training split (>= 1).
    method : {'noise', 'consistency'}, default 'noise'
        ``'noise'``: cross-entropy on one noisy copy of every input (Cohen et al.
        [1]_). ``'consistency'``: ``m`` noisy copies, cross-entropy plus ``lam``
        times the KL divergence of every component's prediction to the mean
        prediction over the copies, plus ``eta`` times that mean's entropy (Jeong &
        Shin [2]_, :func:`~smoothing.train.consistency_loss`). Each step then runs
        ``m * batch_size`` forward passes.
    batch_size : int, default 16
        Inputs per step.
    optimizer : {'adamw', 'sgd'}, default 'adamw'
        With ``lr``, ``weight_decay`` (and ``momentum`` for SGD).
    lr, weight_decay, momentum : float
        Optimiser settings (defaults 1e-3, 1e-4, 0.9).
    schedule : {'cosine', 'constant'}, default 'cosine'
        Learning rate over the steps, after ``warmup_steps`` of linear warm-up
        (:meth:`TrainRecipe.lr_at`).
    warmup_steps : int, default 0
    m : int, default 2
        Noisy copies per input for ``'consistency'`` (>= 2).
    lam, eta : float, default 10.0, 0.5
        Weights of the KL and entropy terms (Jeong & Shin's code defaults, with
        ``m = 2`` as in all their Gaussian experiments).
    val_fraction : float, default 0.1
        Share of ``dataset`` held out for validation (a seeded random split), in
        [0, 1); ignored with ``val_dataset``.
    val_dataset : data set, optional
        Validation data instead of a split of ``dataset``.
    ignore_index : int, default 255
        Label of unlabelled components: left out of the cross-entropy and the
        validation accuracy (the consistency terms use every component).
    hflip : bool, default False
        Flip images horizontally at random (with their labels).
    crop : (int, int), optional
        Train on random crops of this (height, width); needed for images of
        different sizes (validation uses the whole images).
    seed : int, default 0
        Seeds the split, the order, the noise, the augmentation and the global torch
        RNG at every step (dropout): the same seed gives the same weights, also
        across a resume. The model's initial weights are the caller's.
    layout : {'auto', 'BCHW', 'BHWC', 'BNC', 'BCN'}, default 'auto'
        Layout of the model's output, as in :class:`~smoothing.SegCertify`.
    out : path, optional
        Folder for ``train_state.pt`` (resumable state, written after every epoch and
        every ``checkpoint_every`` steps) and ``model.pt`` (the trained weights,
        written at the end). ``None``: nothing is written.
    resume : bool, default True
        Continue from ``out/train_state.pt`` if it exists (it must come from the same
        recipe, sampler, data and starting model); ``False`` starts afresh.
    checkpoint_every : int, optional
        Also write the state every this many steps.
    device : str or torch.device, default 'auto'
        ``'auto'``: CUDA, else MPS, else CPU. The model is moved there.
    progress : bool, default True
        A progress bar over the steps (tqdm on a terminal, plain lines elsewhere).
    log : callable, optional
        Receives one line per epoch (and on resume).

    Returns
    -------
    TrainResult
        The trained model, its metadata, the per-epoch history and the files.

    Raises
    ------
    TypeError
        If an item of ``dataset`` is not (input, target) tensors, or the model
        returns a dict or a tuple.
    ValueError
        For a bad option, an empty data set, items of different shapes without
        ``crop``, labels outside the model's classes (other than ``ignore_index``),
        a training state from another recipe, data or starting model
        (:class:`TrainStateMismatchError`), or a loss that is not finite (the last
        good state stays on disk).
    smoothing._io.FolderLockedError
        If another process is training into ``out``.

    Notes
    -----
    **Reproducibility.** Every random choice is drawn from a generator seeded by
    ``(seed, what, step)``, and the state holds the weights, the optimiser and the
    history, so a run killed at any point (even by SIGKILL: files are written
    atomically) and resumed gives bit-identical weights on the same machine and
    software. On a GPU this needs deterministic kernels
    (:func:`torch.use_deterministic_algorithms`).

    **Cost.** ``epochs * ceil(n_train / batch_size)`` steps of ``batch_size`` (times
    ``m`` for consistency) forward and backward passes, plus one clean and one noisy
    forward pass per validation item and epoch.

    References
    ----------
    .. [1] J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified Adversarial Robustness via
       Randomized Smoothing", ICML 2019.
    .. [2] J. Jeong, J. Shin, "Consistency Regularization for Certified Robustness of
       Smoothed Classifiers", NeurIPS 2020.

    Examples
    --------
    >>> import torch
    >>> from samplers import GaussianL2
    >>> from smoothing.models import SmallUNet
    >>> from smoothing.datasets import SyntheticStreets
    >>> from smoothing.train import train_for_smoothing
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = SmallUNet(num_classes=8, width=4, depth=1)
    >>> data = SyntheticStreets(8, split="train", height=16, width=32)
    >>> result = train_for_smoothing(model, data, GaussianL2(0.25), epochs=1, batch_size=4,
    ...                              method="consistency", device="cpu", progress=False)
    >>> result.metadata["sigma"], result.metadata["train"]["method"], len(result.history)
    (0.25, 'consistency', 1)
    """
    recipe = TrainRecipe(
        method=method, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
        weight_decay=weight_decay, momentum=momentum, schedule=schedule,
        warmup_steps=warmup_steps, m=m if method == "consistency" else 1, lam=lam, eta=eta,
        val_fraction=0.0 if val_dataset is not None else val_fraction,
        ignore_index=ignore_index, hflip=hflip, crop=crop, seed=seed)
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    S.check_sampler(sampler)
    layout = S.check_layout(layout)
    if checkpoint_every is not None:
        checkpoint_every = S.check_int(checkpoint_every, "checkpoint_every")
    dev = resolve_device(device)
    if not hasattr(dataset, "__len__") or len(dataset) < 1:
        raise ValueError("`dataset` is empty (or has no len()).")
    say = log or (lambda _line: None)

    from smoothing.models.user import model_fingerprint

    start_model = model_fingerprint(model)
    model.to(dev)
    if layout == "auto":
        layout = S.resolve_layout(layout, model, _item(dataset, 0)[0])
    train_idx, val_idx = _split(len(dataset), recipe, val_dataset is not None)
    val_data = val_dataset if val_dataset is not None else dataset
    if val_dataset is not None:
        val_idx = list(range(len(val_dataset)))
    header = _header(model, sampler, recipe, data_fingerprint(dataset),
                     data_fingerprint(val_dataset) if val_dataset is not None else None,
                     len(train_idx), len(val_idx), start_model)

    opt_cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.SGD
    extra = {"momentum": recipe.momentum} if recipe.optimizer == "sgd" else {}
    opt = opt_cls(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, **extra)
    per_epoch = math.ceil(len(train_idx) / recipe.batch_size)
    total = recipe.epochs * per_epoch

    out_dir = Path(out).expanduser() if out is not None else None
    state_path = out_dir / STATE_FILE if out_dir is not None else None
    weights_path = out_dir / WEIGHTS_FILE if out_dir is not None else None
    lock = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(out_dir, ".train.lock")
        lock.acquire()
    try:
        step, epoch_loss, history, seconds = 0, (0.0, 0), [], 0.0
        if resume and state_path is not None and state_path.is_file():
            state = read_state(state_path)
            diff = _resume_mismatch(state["header"], header)
            if diff:
                raise TrainStateMismatchError(state_path, diff)
            try:
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError, KeyError) as err:
                raise ValueError(f"the training state '{state_path}' does not fit the model: "
                                 f"{err}") from err
            step, history = int(state["step"]), list(state["history"])
            epoch_loss = (float(state["epoch_loss"][0]), int(state["epoch_loss"][1]))
            seconds = float(history[-1].get("seconds", 0.0)) if history else 0.0
            say(f"resuming from step {step}/{total} ('{state_path}')")
        start_step = step

        def save_state() -> None:
            if state_path is not None:
                write_state(state_path, step=step, model=model, optimizer=opt,
                            epoch_loss=epoch_loss, history=history, header=header)

        bar = progress_bar(total=total, initial=step, desc=f"train ({recipe.method})",
                           unit="step", enabled=progress)
        t0 = time.perf_counter() - seconds
        forked = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=forked):
            while step < total:
                epoch, b = divmod(step, per_epoch)
                order = torch.randperm(len(train_idx),
                                       generator=_generator(recipe.seed, _ORDER, epoch))
                batch_idx = [train_idx[j] for j in
                             order[b * recipe.batch_size:(b + 1) * recipe.batch_size].tolist()]
                aug = _generator(recipe.seed, _AUGMENT, step)
                items = [_augment(*_item(dataset, i), recipe, aug, i) for i in batch_idx]
                x, y = _stack(items, batch_idx)
                x, y = x.to(dev), y.to(dev)
                torch.manual_seed(_stream_seed(recipe.seed, _TORCH, step))  # dropout etc.
                for group in opt.param_groups:
                    group["lr"] = recipe.lr_at(step, total)
                model.train()
                copies = x if recipe.m == 1 else x.repeat(recipe.m, *([1] * (x.ndim - 1)))
                noisy = sampler.perturb(copies, generator=_generator(recipe.seed, _NOISE,
                                                                     step, dev))
                logits, layout = _logits(model, noisy, layout)
                _check_target(logits, y, recipe.ignore_index, step)
                if recipe.method == "noise":
                    loss = noise_loss(logits, y, ignore_index=recipe.ignore_index)
                else:
                    loss = consistency_loss(logits, y, recipe.m, lam=recipe.lam, eta=recipe.eta,
                                            ignore_index=recipe.ignore_index)
                if not bool(torch.isfinite(loss)):
                    raise ValueError(f"the training loss is not finite at step {step} (lr "
                                     f"{recipe.lr_at(step, total):.3g}); lower `lr`. The last "
                                     "saved state is kept.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                epoch_loss = (epoch_loss[0] + float(loss.detach()) * len(batch_idx),
                              epoch_loss[1] + len(batch_idx))
                bar.update(1)
                if step % per_epoch == 0:
                    clean, noisy_acc = _validate(model, val_data, val_idx, sampler, recipe,
                                                 layout, dev)
                    history.append({
                        "epoch": step // per_epoch, "step": step,
                        "lr": recipe.lr_at(step - 1, total),
                        "train_loss": epoch_loss[0] / max(1, epoch_loss[1]),
                        "val_accuracy": clean, "val_accuracy_noisy": noisy_acc,
                        "seconds": round(time.perf_counter() - t0, 2),
                    })
                    epoch_loss = (0.0, 0)
                    h = history[-1]
                    say(f"epoch {h['epoch']}/{recipe.epochs}: loss {h['train_loss']:.4f}, "
                        f"val acc {_pct(clean)} clean, {_pct(noisy_acc)} noisy, "
                        f"{h['seconds']:.0f}s")
                    save_state()
                elif checkpoint_every is not None and step % checkpoint_every == 0:
                    save_state()
        bar.close()
        seconds = time.perf_counter() - t0
        model.eval()
        metadata = _metadata(header, sampler, history, step, seconds, dev)
        try:
            model.metadata = metadata
        except (AttributeError, TypeError):  # pragma: no cover - a model that refuses it
            pass
        if weights_path is not None:
            save_weights(model, weights_path, metadata)
            say(f"wrote {weights_path}")
    finally:
        if lock is not None:
            lock.release()
    return TrainResult(model, metadata, history, weights_path, state_path, start_step)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
