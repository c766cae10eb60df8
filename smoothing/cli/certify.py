"""``segcertify certify`` and ``segcertify summarize``: a resumable run over a data set.

The handlers import torch and :mod:`smoothing.runs` only when they run; errors
propagate to :func:`smoothing.cli.main`, which prints them as one line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path

from smoothing.cli._common import (
    PROG,
    add_certify_options,
    add_data_options,
    add_hierarchy_options,
    add_model_options,
    check_out,
    config_from_args,
    out_dir,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from smoothing import runs

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Add ``certify`` and ``summarize`` to the subcommands ``sub``."""
    p = sub.add_parser("certify", help="certify a data set over a (sigma, tau, n) grid; "
                                       "resumable", description="Certify a data set with "
                                       "SEGCERTIFY; rerun the same command to resume.")
    add_model_options(p)
    add_data_options(p)
    add_certify_options(p)
    add_hierarchy_options(p)
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, type=out_dir, metavar="DIR", help="output folder")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA if available), cpu, cuda, cuda:N, mps (default: %(default)s)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--shard", choices=("inputs", "samples"), default="inputs",
                   help="under torchrun: split the inputs over the ranks, or split every "
                        "input's samples over them (default: %(default)s)")
    p.set_defaults(func=run_certify)

    p = sub.add_parser("summarize", help="rebuild summary.csv/.md from a run folder")
    p.add_argument("out", type=out_dir, metavar="OUT", help="the run folder")
    p.set_defaults(func=run_summarize)


def _distributed() -> Any:
    """The torchrun context (:func:`smoothing.distributed.init_from_env`), or ``None``.

    ``None`` in a single process (``WORLD_SIZE`` unset or 1). Under torchrun with
    ``--shard inputs`` (the default), rank ``r`` of ``w`` certifies ``indices[r::w]``
    into ``results.rank{r}.jsonl``; with ``--shard samples`` all ranks certify every
    input together, each drawing its share of the samples, and only rank 0 writes
    (``results.jsonl``). Either way rank 0 writes the summary after a barrier.
    """
    if int(os.environ.get("WORLD_SIZE") or 1) <= 1:
        return None
    from smoothing.distributed import init_from_env

    return init_from_env()


def _prepare(args: argparse.Namespace, device: object) -> runs.CertificationRun:
    """Validate everything (no writes); warnings are shown only if it succeeds."""
    check_out(args.out)
    return prepare_run(config_from_args(args), device, args.out)


def prepare_run(config: runs.RunConfig, device: object, out: Path | None = None, *,
                grid_warnings: bool = True) -> runs.CertificationRun:
    """:func:`smoothing.runs.prepare` (and the check of ``out``, if given); its warnings
    are shown after it succeeds, a grid point's as one line (or not at all without
    ``grid_warnings``: a radius map does not use tau)."""
    from smoothing import runs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        run = runs.prepare(config, device=device)
        if out is not None:
            runs.check_output_dir(out, run.record)
    for w in caught:
        if issubclass(w.category, runs.ImpossibleGridPointWarning):
            if grid_warnings:
                print(f"{PROG}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return run


def print_training(run: runs.CertificationRun, sigma_given: bool) -> None:
    """One stderr line on how ``--checkpoint`` was trained, if its metadata says
    (:func:`smoothing.runs.loading.training_summary`), and the ``--sigma`` it gave."""
    from smoothing.runs.loading import training_summary

    text = training_summary(run.record.get("checkpoint_metadata"))
    if text is None:
        return
    name = Path(run.config.checkpoint or "").name
    train = run.record["checkpoint_metadata"].get("train")
    data = run.record["derived"].get("dataset_fingerprint")
    if data is not None and isinstance(train, dict) and train.get("data_fingerprint") == data:
        text += " (= this run's data: certificates on the training data)"
    sigma = ("" if sigma_given else
             f"; --sigma defaults to its {' '.join(f'{s:g}' for s in run.config.sigma)}")
    print(f"{PROG}: checkpoint '{name}' was trained with {text}{sigma}", file=sys.stderr)


@contextlib.contextmanager
def store_warnings() -> Iterator[None]:
    """Show the run store's warnings (a skipped line or record) and a failed
    ``--compile`` (:class:`~smoothing._precision.CompileFallbackWarning`) as one line
    each, ``segcertify: warning: ...``; other warnings as Python shows them."""
    from smoothing._precision import CompileFallbackWarning
    from smoothing.runs import RunFolderWarning

    original = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, RunFolderWarning | CompileFallbackWarning):
            print(f"{PROG}: warning: {message}", file=sys.stderr)
        else:
            original(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def print_summary(out: Path, summary: runs.Summary) -> None:
    """Print the table and write ``summary.csv``/``summary.md`` (not while a run
    holds the folder: it writes them when it finishes)."""
    from smoothing import runs
    from smoothing._io import FolderLockedError

    print(summary.to_markdown(), end="")
    try:
        csv_path, md_path = runs.write_summary(out, summary)
    except FolderLockedError:
        print(f"{PROG}: warning: '{out}' is in use by a run; summary.csv and summary.md are "
              "not written now (the run writes them when it finishes).", file=sys.stderr)
        return
    print(f"{PROG}: wrote {csv_path} and {md_path}", file=sys.stderr)


def run_certify(args: argparse.Namespace) -> int:
    """The handler of ``segcertify certify`` (exit status)."""
    ctx = _distributed()
    try:
        with store_warnings():
            return _certify(args, ctx)
    finally:
        if ctx is not None:
            ctx.destroy()


def _certify(args: argparse.Namespace, ctx: Any) -> int:
    device = ctx.device if ctx is not None and args.device == "auto" else args.device
    run = _prepare(args, device)
    if ctx is None or ctx.is_main:
        print_training(run, args.sigma is not None)
    if (ctx is None or ctx.is_main) and not all(c.sound for c in run.certifiers.values()):
        from smoothing._labels import HEURISTIC

        print(f"{PROG}: warning: sampler {args.sampler!r} with correction "
              f"{args.correction!r} gives certificates that are {HEURISTIC}: the radius is "
              "not a proven bound; every table row of this run is marked so.",
              file=sys.stderr)
    by_samples = ctx is not None and args.shard == "samples"
    rank, world_size = (0, 1) if ctx is None or by_samples else (ctx.rank, ctx.world_size)
    report = run.execute(args.out, rank=rank, world_size=world_size,
                         progress=not args.no_progress,
                         sample_ctx=ctx if by_samples else None)
    if ctx is not None:
        where = (f" (rank {ctx.rank} of {ctx.world_size}, "
                 f"{'samples' if by_samples else 'inputs'} sharded)")
    else:
        where = ""
    print(f"{PROG}: {report.out_dir}{where}: {report.computed} (input, grid point) pairs "
          f"computed, {report.skipped} were already done", file=sys.stderr)
    if ctx is not None:
        ctx.barrier()  # every rank's results are in before the summary
    if ctx is None or ctx.is_main:
        from smoothing import runs

        print_summary(args.out, runs.summarize(args.out))
    return 0


def run_summarize(args: argparse.Namespace) -> int:
    """The handler of ``segcertify summarize`` (exit status)."""
    check_out(args.out, "OUT")
    from smoothing import runs

    with store_warnings():
        print_summary(args.out, runs.summarize(args.out))
    return 0
