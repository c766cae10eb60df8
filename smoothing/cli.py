"""The ``segcertify`` command line (also ``python -m smoothing``).

Subcommands:

``certify``
    Certify a data set with SEGCERTIFY over a grid of (sigma, tau, n); resumable
    (:mod:`smoothing.runner` does the work).
``summarize OUT``
    Rebuild the summary table of a run folder from its saved results.
``models``
    List the built-in models.
``demo``
    The quick end-to-end demonstration (:func:`smoothing.demo.run_demo`).
``radius-maps``
    Per-component certified radius maps, an ``.npz`` layer and a figure per input
    (:mod:`smoothing.radius_maps`).

Bad options, missing files, a model that does not fit the data set and a resume
with other options all end with ONE line ``segcertify: error: ...`` on stderr and
exit status 2, before anything is written. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smoothing import runner
from smoothing._labels import HEURISTIC
from smoothing.segcertify import CERTIFYING_CORRECTIONS

__all__ = ["build_parser", "main"]

PROG = "segcertify"


class _UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _fail(message: object) -> int:
    """Print ONE error line (newlines folded) and return exit status 2."""
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME",
                   help="built-in model (see `segcertify models`); default: "
                        "streets-unet-sigma0.25 for streets, parts-pointnet-normals-sigma0.25 "
                        "for parts")
    g.add_argument("--checkpoint", metavar="PATH", help="your own torch checkpoint instead")
    g.add_argument("--arch", choices=("unet", "pointnet"),
                   help="architecture of --checkpoint (required for a plain state_dict)")


def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="streets", choices=tuple(runner.DATASETS),
                   help="streets/parts are built in; the others need --data-root "
                        "(default: %(default)s)")
    g.add_argument("--data-root", metavar="PATH", help="folder of a real data set")
    g.add_argument("--split", help="default: val (cityscapes, pascal-context), else test")
    g.add_argument("--image-size", nargs=2, type=int, metavar=("H", "W"),
                   help="streets: scene size (default 64 128); cityscapes/pascal-context: "
                        "resize to H x W (default: native)")
    g.add_argument("--num-points", type=int, default=2048,
                   help="points per cloud (default: %(default)s)")
    g.add_argument("--data-seed", type=int, default=0,
                   help="seed of the synthetic data / ShapeNet resampling (default: %(default)s)")
    g.add_argument("--num-inputs", type=int,
                   help="how many inputs (default: 100 streets, 96 parts, all otherwise)")
    g.add_argument("--start", "--first", dest="start", type=int, default=0,
                   help="first index (default: %(default)s; --first under torchrun)")
    g.add_argument("--stride", type=int, default=1,
                   help="step between indices (default: %(default)s)")


def _add_certify_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("certification (lists make a grid)")
    g.add_argument("--sampler", default="gaussian", choices=tuple(runner.SAMPLERS),
                   help="smoothing noise (default: %(default)s)")
    g.add_argument("--sigma", nargs="+", type=float, metavar="S",
                   help="noise level(s): Gaussian/rotation std, Laplace scale (default: the "
                        "model's training sigma)")
    g.add_argument("--n0", type=int, default=10, help="guessing samples (default: %(default)s)")
    g.add_argument("--n", "--num-samples", dest="n", nargs="+", type=int, default=[100],
                   metavar="N", help="testing samples (default: 100; spell it --num-samples "
                                     "under torchrun, whose parser takes --n for its own)")
    g.add_argument("--tau", nargs="+", type=float, default=[0.75], metavar="T",
                   help="threshold(s) in [0.5, 1) (default: 0.75)")
    g.add_argument("--alpha", type=float, default=0.001,
                   help="FWER of each certificate (default: %(default)s)")
    g.add_argument("--correction", default="holm", choices=sorted(CERTIFYING_CORRECTIONS),
                   help="multiple-testing correction (default: %(default)s)")
    g.add_argument("--k", type=int, default=1,
                   help="k of the k-FWER corrections (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=50,
                   help="noisy copies per forward pass (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="noise seed (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``segcertify`` (errors raise instead of exiting).

    Examples
    --------
    >>> args = build_parser().parse_args(["certify", "--out", "run", "--tau", "0.75", "0.9"])
    >>> args.command, args.dataset, args.tau, args.n
    ('certify', 'streets', [0.75, 0.9], [100])
    """
    parser = _Parser(prog=PROG, description="Certified segmentation by randomized smoothing "
                                            "(SEGCERTIFY).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("certify", help="certify a data set over a (sigma, tau, n) grid; "
                                       "resumable", description="Certify a data set with "
                                       "SEGCERTIFY; rerun the same command to resume.")
    _add_model_options(p)
    _add_data_options(p)
    _add_certify_options(p)
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA if available), cpu, cuda, cuda:N (default: %(default)s)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--shard", choices=("inputs", "samples"), default="inputs",
                   help="under torchrun: split the inputs over the ranks, or split every "
                        "input's samples over them (default: %(default)s)")
    p.set_defaults(func=_cmd_certify)

    p = sub.add_parser("summarize", help="rebuild summary.csv/.md from a run folder")
    p.add_argument("out", type=Path, metavar="OUT", help="the run folder")
    p.set_defaults(func=_cmd_summarize)

    p = sub.add_parser("models", help="list the built-in models")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("demo", help="quick end-to-end demonstration on built-in data")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="small settings, minutes on a CPU (default)")
    mode.add_argument("--full", dest="quick", action="store_false",
                      help="the settings of docs/builtin-results.md (~20 min on 2 cores)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)

    from smoothing import radius_maps  # its handler imports torch only when it runs

    radius_maps.add_parser(sub, option_groups=(_add_model_options, _add_data_options,
                                               _add_certify_options))
    return parser


def _config_from_args(args: argparse.Namespace) -> runner.RunConfig:
    return runner.RunConfig(
        dataset=args.dataset, model=args.model, checkpoint=args.checkpoint, arch=args.arch,
        data_root=args.data_root, split=args.split,
        image_size=tuple(args.image_size) if args.image_size else None,
        num_points=args.num_points, data_seed=args.data_seed, sampler=args.sampler,
        sigma=tuple(args.sigma) if args.sigma else None, n0=args.n0, n=tuple(args.n),
        tau=tuple(args.tau), alpha=args.alpha, correction=args.correction, k=args.k,
        batch_size=args.batch_size, num_inputs=args.num_inputs, start=args.start,
        stride=args.stride, seed=args.seed,
    )  # fmt: skip


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


def _prepare(args: argparse.Namespace, device: object) -> runner.CertificationRun:
    """Validate everything (no writes); warnings are shown only if it succeeds."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        run = runner.prepare(_config_from_args(args), device=device)
        runner.check_output_dir(args.out, run.record)
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return run


def _print_summary(out: Path, summary: runner.Summary) -> None:
    csv_path, md_path = runner.write_summary(out, summary)
    print(summary.to_markdown(), end="")
    print(f"{PROG}: wrote {csv_path} and {md_path}", file=sys.stderr)


def _cmd_certify(args: argparse.Namespace) -> int:
    try:
        ctx = _distributed()
    except (ValueError, TypeError, OSError) as err:
        return _fail(err)
    try:
        return _certify(args, ctx)
    finally:
        if ctx is not None:
            ctx.destroy()


def _certify(args: argparse.Namespace, ctx: Any) -> int:
    try:
        device = ctx.device if ctx is not None and args.device == "auto" else args.device
        run = _prepare(args, device)
    except (ValueError, TypeError, OSError) as err:
        return _fail(err)
    if (ctx is None or ctx.is_main) and not all(c.sound for c in run.certifiers.values()):
        print(f"{PROG}: warning: sampler {args.sampler!r} with correction "
              f"{args.correction!r} gives certificates that are {HEURISTIC}: the radius is "
              "not a proven bound; every table row of this run is marked so.",
              file=sys.stderr)
    by_samples = ctx is not None and args.shard == "samples"
    rank, world_size = (0, 1) if ctx is None or by_samples else (ctx.rank, ctx.world_size)
    try:
        report = run.execute(args.out, rank=rank, world_size=world_size,
                             progress=not args.no_progress,
                             sample_ctx=ctx if by_samples else None)
    except ValueError as err:
        return _fail(err)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
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
        _print_summary(args.out, runner.summarize(args.out))
    return 0


def _cmd_summarize(args: argparse.Namespace) -> int:
    try:
        summary = runner.summarize(args.out)
    except (ValueError, OSError) as err:
        return _fail(err)
    _print_summary(args.out, summary)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from smoothing.models import BUILTIN_MODELS

    for spec in BUILTIN_MODELS.values():
        print(f"{spec.name:34s} {spec.arch:9s} {spec.num_classes:3d} classes  "
              f"sigma={spec.sigma:<5g} {spec.input_layout:15s} {spec.dataset}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from smoothing.demo import run_demo
    except ImportError as err:
        return _fail(f"the demo is not available: {err}")
    try:
        run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    except (ValueError, TypeError, OSError) as err:
        return _fail(err)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``segcertify`` with ``argv`` (default: ``sys.argv[1:]``); the exit status.

    Returns 0 on success, 2 for a usage or validation error (one line on stderr,
    nothing written), 130 when interrupted.
    """
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as err:
        return _fail(err)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else _fail(exc.code)
    return args.func(args)
