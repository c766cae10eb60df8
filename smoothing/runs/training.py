"""Training a model for smoothing from the options of a run: ``segcertify train``.

The model and the data set come from the model and data fields of a
:class:`~smoothing.runs.RunConfig`, read by the functions that certification uses
(:func:`~smoothing.runs.loading.load_any_model`,
:func:`~smoothing.runs.loading.open_dataset`,
:func:`~smoothing.runs.loading.make_sampler`): whatever ``certify`` can read,
``train`` can train on, and the trained ``model.pt`` is what ``certify
--checkpoint`` reads. :func:`prepare_training` checks everything and loads the
model and the data without writing; :meth:`TrainingRun.execute` takes the folder's
lock, records the options in ``OUT/train.json`` and runs
:func:`smoothing.train.train_for_smoothing`, which resumes ``OUT/train_state.pt``.

The output folder::

    OUT/train.json        the options, resolved (written when training starts)
    OUT/train_state.pt    the resumable state (every epoch, every checkpoint_every steps)
    OUT/model.pt          the trained weights and their metadata (at the end)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from samplers import Sampler
from smoothing import _sampling as S
from smoothing._io import write_atomic
from smoothing.runs.config import DATASETS, MAX_SEED, RunConfig, check_config
from smoothing.runs.loading import (
    OnGrid,
    dataset_classes,
    default_sigma,
    load_any_model,
    make_sampler,
    model_kind,
    open_dataset,
    select_inputs,
)
from smoothing.runs.store import RunLock
from smoothing.train import (
    TrainRecipe,
    TrainResult,
    TrainStateMismatchError,
    resolve_device,
    train_for_smoothing,
)
from smoothing.train._loop import STATE_FILE, WEIGHTS_FILE

__all__ = ["RECORD_FILE", "TRAIN_SAMPLERS", "TrainingRun", "prepare_training"]

#: The options of a training folder (written when training starts).
RECORD_FILE = "train.json"
RECORD_FORMAT = "segcertify-train-run"
RECORD_VERSION = 1
#: Samplers a model can be trained under (their ``perturb`` adds noise to the input).
TRAIN_SAMPLERS: tuple[str, ...] = ("gaussian", "laplace")
#: The split a data set is trained on unless ``split`` says otherwise.
TRAIN_SPLIT = "train"
#: ``arch`` without ``checkpoint``: a freshly initialised built-in architecture, built
#: by this factory with the data set's number of classes.
ARCH_FACTORIES: dict[str, str] = {"unet": "smoothing.models:SmallUNet",
                                  "pointnet": "smoothing.models:PointNetSeg"}
#: RunConfig fields of certification only: not used by training, not recorded.
_CERTIFY_ONLY = ("n0", "n", "tau", "alpha", "correction", "k", "batch_size", "seed", "axis",
                 "skip_impossible", "hierarchy", "hierarchy_rule")
#: RunConfig fields that do not change the trained weights (not compared on a resume).
_NOT_COMPARED = ("trust_program", "follow_symlinks", "class_names")
_OWN_FILES = frozenset({RECORD_FILE, STATE_FILE, WEIGHTS_FILE})


@dataclass(frozen=True)
class TrainingRun:
    """A checked training run, ready to :meth:`execute` (nothing written yet).

    Attributes
    ----------
    config : RunConfig
        The model and data options, resolved: the starting model, the split, the
        number of inputs and the one ``sigma``.
    recipe : TrainRecipe
        The training options (``m`` is 1 for ``'noise'``).
    model : torch.nn.Module
        The starting model (fine-tuned in place), on the CPU.
    dataset : Dataset
        The selected training inputs (on the ``quantize_bits`` grid, if given).
    sampler : samplers.Sampler
        The training noise: the sampler that ``certify`` builds from the same options.
    out : pathlib.Path
        The output folder.
    device : torch.device
        Where the model trains.
    layout : str
        The model output's layout (``'BCHW'`` images, ``'BNC'`` point clouds).
    record : dict
        What ``OUT/train.json`` holds: the resolved options and the recipe.
    """

    config: RunConfig
    recipe: TrainRecipe
    model: nn.Module
    dataset: Any
    sampler: Sampler
    out: Path
    device: torch.device
    layout: str
    record: dict[str, Any]

    @property
    def builtin_architecture(self) -> bool:
        """Whether the model is a built-in architecture: ``model.pt`` is then a
        :func:`smoothing.models.save_checkpoint` file (``certify --checkpoint`` alone
        reads it), else the weights of the ``model_factory``'s model."""
        from smoothing.models import ARCHITECTURES

        return any(type(self.model) is cls for cls in ARCHITECTURES.values())

    def describe(self) -> str:
        """One line: the starting model, the data, the noise, the method, the folder
        (``training streets-unet-clean on streets (train, 100 inputs) under
        GaussianL2(sigma=0.25, point_cloud=False), method noise, 2 epoch(s), into
        'runs/ft'``)."""
        cfg = self.config
        start = cfg.model or cfg.checkpoint or self.record["model_description"]
        return (f"training {start} on {cfg.dataset} ({cfg.split or 'all'}, {cfg.num_inputs} "
                f"inputs) under {self.sampler!r}, method {self.recipe.method}, "
                f"{self.recipe.epochs} epoch(s), into '{self.out}'")

    def execute(self, *, checkpoint_every: int | None = None, progress: bool = True,
                log: Any = None) -> TrainResult:
        """Train into :attr:`out`, resuming its state; the result of
        :func:`~smoothing.train.train_for_smoothing` (``log`` receives
        :meth:`describe` once the folder is locked, then the loop's lines).

        Holds the folder's lock (``OUT/.lock``, as a certification run does) while it
        writes: a second process on the same folder is refused
        (:class:`smoothing._io.FolderLockedError`, a ValueError).

        Raises
        ------
        ValueError
            If the folder holds a run with other options (checked again under the
            lock), another process writes it, or its training state comes from
            other data or another starting model.
        """
        if checkpoint_every is not None:
            checkpoint_every = S.check_int(checkpoint_every, "checkpoint_every")
        with RunLock(self.out):
            _check_folder(self.out, self.record)
            path = self.out / RECORD_FILE
            text = json.dumps(self.record, indent=2, sort_keys=True) + "\n"
            if not path.is_file() or path.read_text() != text:
                write_atomic(path, text.encode())
            if log is not None:
                log(self.describe())
            try:
                return train_for_smoothing(
                    self.model, self.dataset, self.sampler, **_recipe_kwargs(self.recipe),
                    layout=self.layout, out=self.out, resume=True,
                    checkpoint_every=checkpoint_every, device=self.device,
                    progress=progress, log=log)
            except TrainStateMismatchError as err:
                raise ValueError(
                    f"`out` '{self.out}' holds the training state of another run "
                    f"({'; '.join(err.differences)}): the data or the starting model "
                    f"changed; choose another `out`, or delete '{err.path}' to start "
                    "afresh.") from err


def _recipe_kwargs(recipe: TrainRecipe) -> dict[str, Any]:
    """``train_for_smoothing``'s keyword arguments of ``recipe``."""
    kwargs = recipe.to_dict()
    kwargs["crop"] = recipe.crop
    return kwargs


def prepare_training(config: RunConfig, recipe: TrainRecipe, out: str | Path, *,
                     device: str | torch.device = "auto") -> TrainingRun:
    """Check a training run completely and load its model and data, writing nothing.

    Parameters
    ----------
    config : RunConfig
        The model and data options of a certification run, and ``sampler``
        (``'gaussian'`` or ``'laplace'``), ``sigma`` (one value; default: the sigma
        recorded by a Gaussian model) and ``quantize_bits``. The certification
        options (``n``, ``tau``, ...) are not used. The starting model is one of:
        ``model`` (a built-in model, fine-tuned), ``checkpoint`` of a built-in
        architecture (fine-tuned), ``model_factory`` (your architecture; its fresh
        weights, or ``checkpoint``'s), or ``arch`` alone (a freshly initialised
        built-in architecture with the data set's classes; ``model_kwargs`` adds to
        its arguments). Data sets are read from ``split`` (default ``'train'``).
    recipe : TrainRecipe
        The training options (:func:`~smoothing.train.train_for_smoothing`).
    out : path
        The output folder: new, empty, or one this function trained into before
        (the same options resume it; others are refused).
    device : str or torch.device, default 'auto'
        Where to train (CUDA, else MPS, else CPU).

    Returns
    -------
    TrainingRun

    Raises
    ------
    ValueError, TypeError
        For a bad option, no starting model, a TorchScript or exported-program
        checkpoint (they cannot be trained), a model that does not fit the data
        set, or an ``out`` that holds other files or a run with other options.
    FileNotFoundError
        For a missing checkpoint or data folder.

    Notes
    -----
    The global torch seed is set to ``recipe.seed`` while the model is built (and
    restored after), so that a fresh architecture starts from the same weights on
    every run: a rerun then resumes it.

    Examples
    --------
    >>> import tempfile
    >>> from smoothing.runs import RunConfig
    >>> from smoothing.train import TrainRecipe
    >>> cfg = RunConfig(arch="unet", model_kwargs={"width": 4, "depth": 1}, sigma=0.25,
    ...                 image_size=(16, 32), num_inputs=8)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     run = prepare_training(cfg, TrainRecipe(epochs=1, batch_size=4), tmp,
    ...                            device="cpu")
    ...     result = run.execute(progress=False)
    ...     sorted(p.name for p in run.out.iterdir() if not p.name.startswith("."))
    ['model.pt', 'train.json', 'train_state.pt']
    >>> run.config.split, run.config.model_factory, result.metadata["sigma"]
    ('train', 'smoothing.models:SmallUNet', 0.25)
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"`config` must be a RunConfig; got {type(config).__name__}.")
    if not isinstance(recipe, TrainRecipe):
        raise TypeError(f"`recipe` must be a TrainRecipe; got {type(recipe).__name__}.")
    out = Path(out).expanduser()
    check_config(config)
    if config.sampler not in TRAIN_SAMPLERS:
        raise ValueError(f"`sampler` must be one of {', '.join(TRAIN_SAMPLERS)} for training; "
                         f"got {config.sampler!r}.")
    if config.sigma is not None and len(config.sigma) != 1:
        raise ValueError(f"`sigma` must be one value for training; got {config.sigma!r}.")
    if recipe.seed > MAX_SEED:
        raise ValueError(f"`seed` must be an integer in [0, 2**64 - 1]; got {recipe.seed}.")
    if recipe.method != "consistency" and recipe.m != 1:
        recipe = replace(recipe, m=1)  # as train_for_smoothing records it
    _check_folder(out, None)
    dev = resolve_device(device)
    info = DATASETS[config.dataset]
    num_classes = dataset_classes(config)
    cfg = _start_model(config, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # a fresh model's initial weights
        model, sha, cfg, description = load_any_model(cfg, num_classes, torch.device("cpu"))
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model_factory` must return a torch.nn.Module to be trained; got "
                        f"{type(model).__name__}.")
    if cfg.checkpoint is not None and Path(cfg.checkpoint) == (out / WEIGHTS_FILE).resolve():
        raise ValueError(f"`checkpoint` '{cfg.checkpoint}' is the file that training into "
                         f"`out` '{out}' writes; copy it elsewhere or choose another `out`.")
    kind, layout = model_kind(model, info.kind)
    if kind != info.kind:
        raise ValueError(
            f"the model takes {'images' if kind == 'image' else 'point clouds'} but dataset "
            f"{config.dataset!r} holds {'images' if info.kind == 'image' else 'point clouds'}.")
    (sigma,) = default_sigma(cfg, model)
    split = cfg.split or (TRAIN_SPLIT if info.default_split not in (None, "-") else None)
    cfg = replace(cfg, split=split, sigma=(sigma,),
                  num_inputs=cfg.num_inputs or info.default_num_inputs)
    if cfg.dataset == "streets":
        cfg = replace(cfg, image_size=tuple(cfg.image_size or (64, 128)))
    if cfg.data_root is not None:
        cfg = replace(cfg, data_root=str(Path(cfg.data_root).expanduser().resolve()))
    sampler = make_sampler(cfg.sampler, sigma, kind, None, cfg.quantize_bits, cfg.channels or 3)
    normals = getattr(model, "in_channels", 3) == 6
    length = (cfg.start + cfg.stride * (cfg.num_inputs - 1) + 1 if info.synthetic
              else None)
    dataset = open_dataset(cfg, normals, length)
    indices = select_inputs(cfg, len(dataset))
    cfg = replace(cfg, num_inputs=len(indices))
    data: Any = dataset
    if indices != range(len(dataset)):
        data = torch.utils.data.Subset(dataset, list(indices))
    if cfg.quantize_bits is not None:
        data = OnGrid(data, cfg.quantize_bits)
    _check_fit(model, data, recipe, layout, num_classes)
    record = {
        "format": RECORD_FORMAT, "version": RECORD_VERSION,
        "config": {k: v for k, v in cfg.to_dict().items()
                   if k not in _CERTIFY_ONLY and k not in _NOT_COMPARED},
        "recipe": recipe.to_dict(), "model_sha256": sha,
        "model_description": description, "num_classes": num_classes,
    }  # fmt: skip
    _check_folder(out, record)
    return TrainingRun(cfg, recipe, model, data, sampler, out, dev, layout, record)


def _start_model(cfg: RunConfig, num_classes: int) -> RunConfig:
    """The config naming a trainable starting model (``arch`` alone: a fresh one)."""
    from smoothing.models._files import PROGRAM_NAMES, checkpoint_kind

    if cfg.model is None and cfg.checkpoint is None and cfg.model_factory is None:
        if cfg.arch is None:
            raise ValueError(
                "training needs a starting model: `model` NAME (fine-tune a built-in "
                "model), `checkpoint` PATH (fine-tune a checkpoint of a built-in "
                "architecture, with its `arch` if it is a plain state_dict), "
                "`model_factory` MODULE:FUNCTION (your architecture), or `arch` alone "
                "(a freshly initialised built-in architecture).")
        if cfg.arch not in ARCH_FACTORIES:
            raise ValueError(f"`arch` must be one of {', '.join(ARCH_FACTORIES)}; got "
                             f"{cfg.arch!r}.")
        if cfg.model_kwargs is not None and not isinstance(cfg.model_kwargs, dict):
            raise TypeError(f"`model_kwargs` must be a JSON object (dict); got "
                            f"{cfg.model_kwargs!r}.")
        kwargs = {"num_classes": num_classes, **(cfg.model_kwargs or {})}
        return replace(cfg, arch=None, model_factory=ARCH_FACTORIES[cfg.arch],
                       model_kwargs=kwargs)
    if cfg.checkpoint is not None and cfg.model_factory is None:
        path = Path(cfg.checkpoint).expanduser()
        if path.is_file():  # a missing file is named by the loader
            kind = checkpoint_kind(path)
            if kind != "torch":
                raise ValueError(
                    f"`checkpoint` '{path}' is {PROGRAM_NAMES[kind]}, which cannot be "
                    "trained; train its architecture instead: `model_factory` (with its "
                    "weights as `checkpoint`) or a built-in `arch`.")
    return cfg


def _check_fit(model: nn.Module, data: Any, recipe: TrainRecipe, layout: str,
               num_classes: int) -> None:
    """The model's output on the first input, the crop and the validation split: the
    errors training would meet at its first step, before anything is written."""
    n = len(data)
    if n < 1:
        raise ValueError("the data set selects no input.")
    if recipe.val_fraction > 0 and max(1, round(recipe.val_fraction * n)) >= n:
        raise ValueError(f"`val_fraction` = {recipe.val_fraction} leaves no training input "
                         f"of the {n}; lower it or select more inputs (`num_inputs`).")
    x = data[0][0]
    if recipe.crop is not None:
        h, w = recipe.crop
        if x.ndim != 3 or x.shape[-2] < h or x.shape[-1] < w:
            raise ValueError(f"`crop` = {recipe.crop} does not fit the first input, of shape "
                             f"{tuple(x.shape)} (crops need images at least that large).")
        x = x[..., :h, :w]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = S.check_output(model(x.unsqueeze(0)))
    except RuntimeError as err:
        raise ValueError(f"the model cannot process an input of shape {tuple(x.shape)}: "
                         f"{err}") from err
    finally:
        model.train(was_training)
    if layout == "BCHW":
        expected = (1, num_classes, *x.shape[1:])
    else:
        expected = (1, x.shape[0], num_classes)
    if tuple(out.shape) != expected:
        raise ValueError(f"the model returned shape {tuple(out.shape)} for an input of shape "
                         f"{tuple(x.shape)}; expected {expected} ({num_classes} classes).")


def _check_folder(out: Path, record: dict[str, Any] | None) -> None:
    """``out`` is new, empty, or a training folder whose options are ``record``'s.

    Hidden files (locks, temporary files) are ignored. A folder that holds only
    ``train.json`` trained nothing yet: any options may replace it.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"`out` '{out}' is not a folder.")
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    other = sorted(names - _OWN_FILES)
    if other:
        raise ValueError(f"`out` '{out}' holds other files ({', '.join(other[:3])}); train "
                         "into a new or empty folder, or into one that `train` wrote.")
    if WEIGHTS_FILE in names and not names & {RECORD_FILE, STATE_FILE}:
        raise ValueError(f"`out` '{out}' holds a '{WEIGHTS_FILE}' of no training run here; "
                         "training would replace it: choose another `out`.")
    if record is None or RECORD_FILE not in names or not names & {STATE_FILE, WEIGHTS_FILE}:
        return
    path = out / RECORD_FILE
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"'{path}' is not readable JSON ({err}); delete the folder to "
                         "start afresh, or choose another `out`.") from err
    if not isinstance(old, dict) or old.get("format") != RECORD_FORMAT:
        raise ValueError(f"'{path}' is not the record of a segcertify training run.")
    diffs = []
    for section in ("config", "recipe"):
        before, now = old.get(section) or {}, record[section]
        diffs += [f"`{k}`: {before.get(k)!r} in '{path.name}', {now.get(k)!r} now"
                  for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    if not diffs and old.get("model_sha256") != record["model_sha256"]:
        diffs.append("the starting model's file changed (its SHA-256)")
    if diffs:
        raise ValueError(f"`out` '{out}' holds a training run with other options ("
                         + "; ".join(diffs) + "): run its command again to resume it, or "
                         "choose another `out`.")
