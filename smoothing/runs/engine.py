"""Resumable certification runs: the engine behind ``segcertify certify``.

A run certifies a range of inputs of a data set with :class:`~smoothing.SegCertify`
at every point of a grid ``sigma x tau x n`` into one run folder
(:mod:`smoothing.runs.store` owns its files).

The run is **resumable**: a killed run loses at most the pairs it was working on, and
a restart with the same options skips everything that is recorded. It is
**reproducible**: the noise of input ``i`` at grid point ``g`` comes from a generator
seeded by ``(seed, i, g)`` only (:func:`~smoothing.runs.config.noise_seed`), so the
results do not depend on resumes, on the order of the inputs or on the other inputs
and grid points of the run.

The steps are separate so that nothing is written before everything is checked:
:func:`prepare` validates the options, loads the model, opens the data set and runs
the model once; the store checks a resumed folder; then
:meth:`CertificationRun.execute` writes.

One module (~620 lines, about half docstrings): :func:`prepare` and
:class:`CertificationRun` share the resolved run (model, grid, certifiers) and are the
two halves of one call; splitting them would only move that state between files.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smoothing._precision import fast_forward
from smoothing._progress import interactive, progress_bar
from smoothing._sampling import check_int
from smoothing.datasets._common import IGNORE_INDEX
from smoothing.distributed import DistContext, DistributedSegCertify
from smoothing.metrics import confusion_matrix, intersection_union, iou_pair_sum
from smoothing.runs.config import (
    DATASETS,
    GridPoint,
    RunConfig,
    check_config,
    noise_seed,
    plan_grid,
)
from smoothing.runs.loading import (
    OnGrid,
    checkpoint_info,
    custom_data,
    data_fingerprint,
    dataset_classes,
    default_sigma,
    given_model,
    load_any_model,
    make_sampler,
    model_kind,
    open_dataset,
    predict_clean,
    resolve_device,
    select_inputs,
)
from smoothing.runs.store import RunStore, config_record
from smoothing.runs.summary import summarize, write_summary
from smoothing.segcertify import SegCertify, check_k_components

__all__ = [
    "CertificationRun",
    "RunReport",
    "batch_sizes",
    "input_metrics",
    "hierarchy_record",
    "prepare",
    "probe_batches",
    "resolve_hierarchy",
    "run_certification",
]


def nan_to_none(value: float) -> float | None:
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
        "accuracy": nan_to_none(correct / valid if valid else float("nan")),
        "abstain_rate": nan_to_none(abstain / valid if valid else float("nan")),
        "miou": nan_to_none(miou),
        "intersection": tp.astype(int).tolist(),
        "union": union.astype(int).tolist(),
    }



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
    base_classifier : torch.nn.Module or callable, optional
        The model as every certifier runs it: under :func:`torch.autocast` in
        ``config.precision`` and/or compiled
        (:class:`~smoothing._precision.FastForward`, one for the whole run), else the
        model itself (``None`` means that too). The clean "base" row is computed with
        it, so that it is the accuracy of the base classifier that is certified.
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
    certifiers: dict[str, Any] = field(repr=False)
    hierarchy: Any = None  # smoothing.hierarchy.Hierarchy of a hierarchical run
    base_classifier: Any = None

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
            :func:`~smoothing.runs.shards.rank_results_path`. The noise does not depend
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
            (a ValueError) If another live process is writing to ``out_dir``: a
            writer holds the folder's job lock ``.lock`` (exclusively; shared by the
            ranks of one torchrun job) and its rank's ``.lock.rank{rank}`` for the
            whole run (:class:`~smoothing.runs.store.RunLock`); locks of dead
            processes are taken over.
        OSError
            If the folder cannot be written (read-only, full disk): what was written
            stays consistent, and the same command resumes once the cause is gone.
        """
        check_int(world_size, "world_size", low=1)
        if not 0 <= check_int(rank, "rank", low=0) < world_size:
            raise ValueError(f"`rank` must lie in [0, {world_size}); got {rank}.")
        if sample_ctx is not None and world_size != 1:
            raise ValueError("`world_size` must be 1 with `sample_ctx` (every rank certifies "
                             f"every input); got {world_size}.")
        if sample_ctx is not None and self.hierarchy is not None:
            raise ValueError("sharded sampling (`sample_ctx`, --shard samples) does not support "
                             "`hierarchy` yet; shard the inputs instead.")
        store = RunStore(out_dir)
        writer = sample_ctx is None or sample_ctx.is_main
        lock = store.lock(rank=rank, world_size=world_size)
        try:
            return self._execute(store, rank, world_size, progress, sample_ctx, writer, lock)
        finally:
            lock.release()

    def _execute(self, store: RunStore, rank: int, world_size: int, progress: bool,
                 sample_ctx: DistContext | None, writer: bool, lock: Any) -> RunReport:
        state: tuple[str | None, bool, set[tuple[int, str]]] = (None, False, set())
        failure: BaseException | None = None
        if writer:
            try:
                store.check_resume(self.record)  # before the lock creates the folder
                lock.acquire()
                state = (None, store.open(self.record, rank=rank, world_size=world_size),
                         store.done())
            except (ValueError, OSError) as err:
                failure, state = err, (str(err), False, set())
        if sample_ctx is not None:
            state = sample_ctx.broadcast_object(state)
        error, resumed, done = state
        if failure is not None:
            raise failure
        if error is not None:
            raise ValueError(error)
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
                    computed += self._run_input(index, todo, store, rank, world_size, bar,
                                                sample_ctx, writer)
                    bar.update(1)
        finally:
            bar.close()
        return RunReport(store.out, resumed, skipped, computed)

    def _run_input(self, index: int, todo: list[str], store: RunStore, rank: int,
                   world_size: int, bar: Any, sample_ctx: DistContext | None = None,
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
            if writer:  # the labels first, then the record
                store.add({**record, **extra}, arrays, rank=rank, world_size=world_size)
        return len(todo)

    def _evaluate_base(self, index: int, x: torch.Tensor,
                       y: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        t0 = time.perf_counter()
        forward = self.model if self.base_classifier is None else self.base_classifier
        pred = predict_clean(forward, x, layout=self.layout, num_classes=self.num_classes)
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
            cert = certifier.retest(first, tau=g.tau)
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
            "radius": nan_to_none(cert.radius), "sound": cert.sound,
            **input_metrics(labels, y, self.num_classes),
            "threshold": cert.threshold, "noise_seed": seed, "sampling": g.sample_key,
            "sampling_reused": first is not None,
            "time_sampling": cert.time_sampling, "time_testing": cert.time_testing,
        }  # fmt: skip
        if sample_ctx is not None:
            record["sample_ranks"] = sample_ctx.world_size
        dtype = _label_dtype(self.num_classes)
        counts = cert.counts.numpy()
        arrays = {"labels": labels.astype(dtype), "guesses": cert.guesses.numpy().astype(dtype)}
        if self.hierarchy is not None:
            record.update(hierarchy_record(self.hierarchy, cfg.hierarchy_rule, cert.nodes.numpy(),
                                           y))
            counts = counts[..., 0]  # the guessed fine class's: the flat run's counts
            arrays.update(nodes=cert.nodes.numpy().astype(np.int32),
                          levels=cert.levels.numpy().astype(np.int8))
        arrays["counts"] = counts.astype(np.int32)
        return record, arrays


def hierarchy_record(hierarchy: Any, rule: str, nodes: np.ndarray,
                     target: np.ndarray) -> dict[str, Any]:
    """The fields a hierarchical run adds to a certify record: the hierarchy's name,
    fingerprint and rule, and ``hier``, the input's
    :meth:`~smoothing.metrics.HierarchicalMetrics.state` (what summaries pool)."""
    from smoothing.metrics import HierarchicalMetrics

    metrics = HierarchicalMetrics(hierarchy, ignore_index=IGNORE_INDEX)
    metrics.update(nodes, target)
    return {"hierarchy": hierarchy.name, "hierarchy_sha256": hierarchy.fingerprint,
            "hierarchy_rule": rule, "hier": metrics.state()}


def resolve_hierarchy(spec: str, num_classes: int) -> tuple[Any, str]:
    """The :class:`~smoothing.hierarchy.Hierarchy` of ``spec`` (a built-in name or a JSON
    file) over ``num_classes`` classes, and ``spec`` as recorded: a built-in name as is,
    a file as its absolute path."""
    from smoothing.hierarchy import BUILTIN_HIERARCHIES, load_hierarchy

    h = load_hierarchy(spec, classes=num_classes)
    return h, spec if spec in BUILTIN_HIERARCHIES else str(Path(spec).expanduser().resolve())


def _label_dtype(num_classes: int) -> type[np.signedinteger]:
    return np.int16 if num_classes < 2**15 else np.int32


def _progress_bar(total: int, initial: int, progress: bool, rank: int, world_size: int) -> Any:
    """tqdm on a terminal, plain lines elsewhere (:func:`smoothing._progress.progress_bar`)."""
    desc = "certify" if world_size == 1 else f"certify (rank {rank})"
    return progress_bar(total=total, initial=initial, desc=desc, unit="input",
                        enabled=progress, file=sys.stderr, dynamic_ncols=True)


def batch_sizes(config: RunConfig) -> list[int]:
    """Every batch size a single-process run sends to the model, ascending.

    1 for the clean evaluation, and for ``n0`` and each ``n`` the full batches of
    ``batch_size`` and the last, partial one (:func:`smoothing._sampling.iter_predictions`).
    Sharded sampling (``--shard samples``) batches each rank's share of ``n0`` and
    ``n`` instead.

    Examples
    --------
    >>> batch_sizes(RunConfig(n0=10, n=(100, 120), batch_size=50))
    [1, 10, 20, 50]
    """
    sizes = {1}
    for num in (config.n0, *config.n):
        sizes.add(min(config.batch_size, num))
        if num > config.batch_size and num % config.batch_size:
            sizes.add(num % config.batch_size)
    return sorted(sizes)


def probe_batches(model: Any, x: torch.Tensor, config: RunConfig) -> None:
    """Run ``model`` once on a batch of each of :func:`batch_sizes` copies of ``x``.

    One input first, then the largest batch, so that a model that cannot take
    ``batch_size`` inputs (a program exported or traced with a fixed batch size, or
    too little memory) stops the run before anything is written.

    Raises
    ------
    ValueError
        If the model fails on one input with a ``RuntimeError`` or ``AssertionError``
        (the guards of an exported program), fails on a larger batch with any error,
        or returns a batch of another size; the message names the batch size and
        ``batch_size``.
    """
    from smoothing._sampling import model_device, set_eval

    sizes = batch_sizes(config)
    x = x.to(model_device(model, x))
    set_eval(model)
    for b in [1, *sizes[:0:-1]]:
        try:
            with torch.inference_mode():
                out = model(x.expand(b, *x.shape).contiguous())
        except (RuntimeError, AssertionError) as err:
            said = " ".join(str(err).split()) or type(err).__name__
        except Exception as err:  # it ran on one input: the batch size is the cause
            if b == 1:
                raise
            said = " ".join(str(err).split()) or type(err).__name__
        else:
            shape = getattr(out, "shape", None)
            if shape is None or len(shape) == 0 or shape[0] == b:
                continue  # not a tensor: the output checks name what is wrong
            said = f"it returned a batch of {shape[0]}"
        what = f"a batch of {b} inputs" if b > 1 else "one input"
        raise ValueError(
            f"the model fails on {what} of shape {tuple(x.shape)}: {said}. The run sends "
            f"batches of {', '.join(map(str, sizes))} (`batch_size` {config.batch_size}, "
            f"`n0` {config.n0}, `n` {', '.join(map(str, config.n))}): a model exported or "
            "traced with a fixed batch size needs a dynamic batch dimension (e.g. "
            "torch.export.Dim); otherwise pass a `batch_size` it accepts (1 for a model "
            "that takes one input at a time)."
        )


def prepare(config: RunConfig, *, device: str | torch.device = "auto",
            model: Any = None, data: Any = None) -> CertificationRun:
    """Validate a run completely without writing anything.

    Checks the options, loads the model (``num_classes`` must match the data set),
    opens the data set, builds every sampler and certifier and runs the model on
    the first selected input, once for each batch size the run will send
    (:func:`batch_sizes`), in ``config.precision`` but not compiled (``compile``
    compiles at the run's first forward pass; a failure there falls back to the
    eager model with one :class:`~smoothing._precision.CompileFallbackWarning`).

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
        For an invalid option or a model that does not fit the data set, or that
        fails on one of the run's batch sizes (:func:`probe_batches`), or a
        ``precision`` that autocast cannot run on ``device``.
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
        config, custom, num_classes = custom_data(config, data)
    check_config(config, custom)
    dev = resolve_device(device)
    info = custom or DATASETS[config.dataset]
    if custom is None:
        num_classes = dataset_classes(config)
    trained = None
    if model is None:
        model, sha, cfg, description = load_any_model(config, num_classes, dev)
        trained = checkpoint_info(config)
    else:
        model, sha, cfg, description = given_model(config, model, dev)
    kind, layout = model_kind(model, info.kind)
    # the base classifier of the whole run (clean row, every certifier): the model, or
    # ONE autocast / compiled wrapper of it that the certifiers share. The probes below
    # run it uncompiled: compiling takes up to minutes, paid when the run starts (after
    # the resume check), not by a run that is then refused.
    forward = fast_forward(model, precision=config.precision, compile=config.compile)
    probe = fast_forward(model, precision=config.precision) if config.compile else forward
    if kind != info.kind:
        raise ValueError(
            f"the model takes {'images' if kind == 'image' else 'point clouds'} but dataset "
            f"{config.dataset!r} holds {'images' if info.kind == 'image' else 'point clouds'}."
        )
    cfg = replace(cfg, split=cfg.split or info.default_split,
                  num_inputs=cfg.num_inputs or info.default_num_inputs,
                  sigma=default_sigma(cfg, model, trained))
    if cfg.dataset == "streets":
        cfg = replace(cfg, image_size=tuple(cfg.image_size or (64, 128)))
    if cfg.data_root is not None:
        cfg = replace(cfg, data_root=str(Path(cfg.data_root).expanduser().resolve()))
    if cfg.dataset == "folder":  # the defaults, recorded
        cfg = replace(cfg, ignore_index=IGNORE_INDEX if cfg.ignore_index is None
                      else cfg.ignore_index, channels=cfg.channels or 3)
    hierarchy = None
    if cfg.hierarchy is not None:  # before the data set opens: a bad file stops here
        hierarchy, spec = resolve_hierarchy(cfg.hierarchy, cfg.class_names or num_classes)
        cfg = replace(cfg, hierarchy=spec)
    normals = getattr(model, "in_channels", 3) == 6
    length = cfg.start + cfg.stride * (cfg.num_inputs - 1) + 1 if info.synthetic else None
    dataset = data if data is not None else open_dataset(cfg, normals, length)
    indices = select_inputs(cfg, len(dataset))
    cfg = replace(cfg, num_inputs=len(indices))
    fingerprint = data_fingerprint(dataset, indices) if data is not None else None
    if cfg.dataset == "folder":  # its files' bytes: a resume with edited files is refused
        check_items(dataset, indices)
        fingerprint = dataset.fingerprint()
    if cfg.quantize_bits is not None:
        dataset = OnGrid(dataset, cfg.quantize_bits)
    probe_batches(probe, dataset[indices[0]][0], cfg)  # a fixed batch size fails here
    first = predict_clean(probe, dataset[indices[0]][0], layout=layout,
                          num_classes=num_classes)
    check_k_components(cfg.k, first.numel())  # k-FWER with k > N promises nothing
    grid = plan_grid(cfg, first.numel())
    samplers_ = {s: make_sampler(cfg.sampler, s, kind, cfg.axis, cfg.quantize_bits,
                                 cfg.channels or 3) for s in cfg.sigma}
    certifiers = {g.key: _certifier(forward, samplers_[g.sigma], g, cfg, num_classes, layout,
                                    hierarchy) for g in grid}
    record = config_record(cfg, sha, num_classes, layout, kind, len(dataset), grid, dev)
    if hierarchy is not None:
        tree = {k: v for k, v in hierarchy.to_dict().items() if k != "name"}
        record["derived"].update(hierarchy_tree=tree, hierarchy_sha256=hierarchy.fingerprint)
    if description is not None:
        record["derived"]["model_description"] = description
    if fingerprint is not None:
        record["derived"]["dataset_fingerprint"] = fingerprint
    if trained is not None:  # how the checkpoint was trained: shown, not compared
        record["checkpoint_metadata"] = trained
    return CertificationRun(cfg, model, dataset, indices, grid, record, dev, layout,
                            num_classes, certifiers, hierarchy, forward)


def check_items(dataset: Any, indices: range) -> None:
    """Read every selected item once, so that a file that cannot be decoded, a label
    outside the classes or a mask of another size stops the run before anything is
    written (the error names the file)."""
    for index in indices:
        dataset[index]


def _certifier(model: Any, sampler: Any, g: GridPoint, cfg: RunConfig, num_classes: int,
               layout: str, hierarchy: Any) -> Any:
    """The certifier of grid point ``g``: flat, or over ``hierarchy`` when given.

    ``model`` is the run's base classifier (:func:`~smoothing._precision.fast_forward`
    of ``cfg.precision`` and ``cfg.compile``): a flat certifier built with the same
    options runs it as it is (and records them in its certificates); the hierarchical
    one takes it as its model."""
    common = {"n0": cfg.n0, "n": g.n, "tau": g.tau, "alpha": cfg.alpha,
              "correction": cfg.correction, "k": cfg.k, "batch_size": cfg.batch_size,
              "layout": layout}
    if hierarchy is None:
        return SegCertify(model, sampler, num_classes=num_classes, precision=cfg.precision,
                          compile=cfg.compile, **common)
    from smoothing.hierarchical import HierarchicalSegCertify

    return HierarchicalSegCertify(model, sampler, hierarchy=hierarchy,
                                  rule=cfg.hierarchy_rule, **common)



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


