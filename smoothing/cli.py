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
exit status 2, before anything is written; messages name the flag (``--data-root``).
See ``docs/cli.md``.

Start-up: this module builds the parser from the standard library only; torch,
numpy and :mod:`smoothing.runner` are imported by the command handlers, so that
``segcertify --help`` costs about as much as ``import argparse``
(``benchmarks/bench_startup_cli.py``). Without torch installed, a command that
needs it ends with one line naming the ``torch`` extra.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from smoothing import runner

__all__ = ["build_parser", "main"]

PROG = "segcertify"

#: Choices of the parser, kept here so that building it imports neither torch nor the
#: runner; tests/test_cli_startup.py checks them against ``runner.DATASETS``,
#: ``runner.SAMPLERS`` and ``smoothing.CERTIFYING_CORRECTIONS``.
DATASET_NAMES: tuple[str, ...] = ("streets", "parts", "cityscapes", "pascal-context",
                                  "shapenet-part")
SAMPLER_NAMES: tuple[str, ...] = ("gaussian", "laplace", "rotation-z", "rotation-3d")
CORRECTION_NAMES: tuple[str, ...] = ("bonferroni", "generalized_bonferroni", "holm",
                                     "lehmann_romano")
#: Rotation axes of ``--sampler rotation-z`` (:class:`samplers.RotationZ`).
AXIS_NAMES: tuple[str, ...] = ("x", "y", "z")
#: Packages of the ``torch`` extra (``pip install 'segcertify[torch]'``).
_TORCH_EXTRA = frozenset({"torch", "tqdm", "PIL"})


class _UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit."""


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, sized without importing :mod:`shutil` (~2 ms of start-up)."""

    def __init__(self, prog: str, *args: Any, **kwargs: Any) -> None:
        if len(args) < 3 and kwargs.get("width") is None:  # width is the 4th parameter
            kwargs["width"] = _terminal_columns() - 2
        super().__init__(prog, *args, **kwargs)


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)  # subparsers are _Parser too
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _fail(message: object) -> int:
    """Print ONE error line (newlines folded, options named as flags); exit status 2."""
    text = _name_flags(" ".join(str(message).split()), build_parser())
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return 2


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (importlib.metadata is slow)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"{PROG} {_version()}")
        parser.exit()


def _version() -> str:
    """The installed distribution's version (``unknown`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("segcertify")
    except PackageNotFoundError:  # pragma: no cover - a source tree, not installed
        return "unknown (not installed)"


def _flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Python parameter name -> its flag (``data_root`` -> ``--data-root``), all commands."""
    names: dict[str, str] = {}
    parsers = [parser]
    while parsers:
        p = parsers.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings and action.dest != argparse.SUPPRESS:
                longs = [o for o in action.option_strings if o.startswith("--")]
                names.setdefault(action.dest, (longs or action.option_strings)[0])
    return names


def _name_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """Write the options of ``message`` as flags: `` `data_root` `` -> `` `--data-root` ``.

    The runner's messages name the Python parameters in backticks; the CLI user typed
    flags. Names without a flag (``out`` is positional in ``summarize``) stay.

    Examples
    --------
    >>> _name_flags("dataset 'cityscapes' needs `data_root` (its folder).", build_parser())
    "dataset 'cityscapes' needs `--data-root` (its folder)."
    >>> _name_flags("`n` must be >= 1; got 0.", build_parser())
    '`--n` must be >= 1; got 0.'
    """
    flags = _flag_names(parser)
    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)`",
                  lambda m: f"`{flags.get(m.group(1), m.group(1))}`", message)


def _missing_extra(err: ImportError) -> str | None:
    """The one-line message for a missing package of the ``torch`` extra, else ``None``."""
    root = (err.name or "").split(".")[0]
    if root not in _TORCH_EXTRA:
        return None
    return (f"this command needs {root!r}, which is not installed; install the torch "
            "extra: pip install 'segcertify[torch]'")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME",
                   help="built-in model (see `segcertify models`); default: "
                        "streets-unet-sigma0.25 for streets, parts-pointnet-normals-sigma0.25 "
                        "for parts")
    g.add_argument("--checkpoint", metavar="PATH",
                   help="your own model instead: a checkpoint of the built-in architectures, "
                        "a TorchScript file, an exported program (torch.export.save), or "
                        "the weights of --model-factory's model")
    g.add_argument("--arch", choices=("unet", "pointnet"),
                   help="built-in architecture of --checkpoint (required for a plain "
                        "state_dict)")
    g.add_argument("--model-factory", metavar="MODULE:FUNCTION",
                   help="your own architecture: FUNCTION(**kwargs) of an importable module "
                        "(on PYTHONPATH) returns the model; --checkpoint holds its weights")
    g.add_argument("--model-kwargs", metavar="JSON",
                   help="keyword arguments of --model-factory, a JSON object")


def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="streets", choices=DATASET_NAMES,
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
    g.add_argument("--sampler", default="gaussian", choices=SAMPLER_NAMES,
                   help="smoothing noise (default: %(default)s)")
    g.add_argument("--sigma", nargs="+", type=float, metavar="S",
                   help="noise level(s): Gaussian/rotation std, Laplace scale (default: the "
                        "model's training sigma)")
    g.add_argument("--axis", choices=AXIS_NAMES,
                   help="rotation axis of --sampler rotation-z (default: z)")
    g.add_argument("--n0", type=int, default=10, help="guessing samples (default: %(default)s)")
    g.add_argument("--n", "--num-samples", dest="n", nargs="+", type=int, default=[100],
                   metavar="N", help="testing samples (default: 100; spell it --num-samples "
                                     "under torchrun, whose parser takes --n for its own)")
    g.add_argument("--tau", nargs="+", type=float, default=[0.75], metavar="T",
                   help="threshold(s) in [0.5, 1) (default: 0.75)")
    g.add_argument("--alpha", type=float, default=0.001,
                   help="FWER of each certificate (default: %(default)s)")
    g.add_argument("--correction", default="holm", choices=CORRECTION_NAMES,
                   help="multiple-testing correction (default: %(default)s)")
    g.add_argument("--k", type=int, default=1,
                   help="k of the k-FWER corrections (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=50,
                   help="noisy copies per forward pass (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="noise seed (default: %(default)s)")
    g.add_argument("--skip-impossible", action="store_true",
                   help="leave out grid points whose n is too small to certify any "
                        "component (they are warned about, with the n needed, either way)")


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
    parser.add_argument("--version", action=_VersionAction,
                        help="print the installed segcertify version and exit")
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


def _model_kwargs(text: str | None) -> dict[str, Any] | None:
    """``--model-kwargs`` as a dict (ValueError naming the flag otherwise)."""
    if text is None:
        return None
    import json

    try:
        value = json.loads(text)
    except ValueError as err:
        raise ValueError(f"`--model-kwargs` must be a JSON object; got {text!r} ({err}).") \
            from err
    if not isinstance(value, dict):
        raise ValueError(f"`--model-kwargs` must be a JSON object; got {text!r}.")
    return value


def _config_from_args(args: argparse.Namespace) -> runner.RunConfig:
    from smoothing import runner

    return runner.RunConfig(
        dataset=args.dataset, model=args.model, checkpoint=args.checkpoint, arch=args.arch,
        model_factory=args.model_factory, model_kwargs=_model_kwargs(args.model_kwargs),
        data_root=args.data_root, split=args.split,
        image_size=tuple(args.image_size) if args.image_size else None,
        num_points=args.num_points, data_seed=args.data_seed, sampler=args.sampler,
        sigma=tuple(args.sigma) if args.sigma else None, n0=args.n0, n=tuple(args.n),
        tau=tuple(args.tau), alpha=args.alpha, correction=args.correction, k=args.k,
        batch_size=args.batch_size, num_inputs=args.num_inputs, start=args.start,
        stride=args.stride, seed=args.seed, axis=args.axis,
        skip_impossible=args.skip_impossible,
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
    from smoothing import runner

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        run = runner.prepare(_config_from_args(args), device=device)
        runner.check_output_dir(args.out, run.record)
    for w in caught:
        if issubclass(w.category, runner.ImpossibleGridPointWarning):
            print(f"{PROG}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return run


def _print_summary(out: Path, summary: runner.Summary) -> None:
    from smoothing import runner

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
        from smoothing._labels import HEURISTIC

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
        from smoothing import runner

        _print_summary(args.out, runner.summarize(args.out))
    return 0


def _cmd_summarize(args: argparse.Namespace) -> int:
    from smoothing import runner

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
        if _missing_extra(err):
            raise  # main() prints the one-line install hint
        return _fail(f"the demo is not available: {err}")
    try:
        run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    except (ValueError, TypeError, OSError) as err:
        return _fail(err)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def _memoize_gettext() -> Callable[[str], str]:
    """Make argparse translate each message once; return the original to restore.

    argparse passes every header and help string through :func:`gettext.gettext`,
    which searches the message catalogues again on each call (~30 calls, a few ms of
    a ``--help`` that should cost about an ``import argparse``). The answers do not
    change while the parser is built and used.
    """
    original: Callable[[str], str] = argparse._  # type: ignore[attr-defined]
    cache: dict[str, str] = {}

    def translate(message: str) -> str:
        if message not in cache:
            cache[message] = original(message)
        return cache[message]

    argparse._ = translate  # type: ignore[attr-defined]
    return original


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``segcertify`` with ``argv`` (default: ``sys.argv[1:]``); the exit status.

    Returns 0 on success, 2 for a usage or validation error (one line on stderr,
    nothing written) and for a bare ``segcertify`` (the usage on stderr), 130 when
    interrupted. A command whose packages of the ``torch`` extra are missing ends
    with one line naming ``pip install 'segcertify[torch]'``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    original = _memoize_gettext()
    try:
        parser = build_parser()
        if not argv:  # bare `segcertify`: the usage and the commands, as argparse would
            print(parser.format_help(), end="", file=sys.stderr)
            return 2
        args = parser.parse_args(argv)
    except _UsageError as err:
        return _fail(err)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else _fail(exc.code)
    finally:
        argparse._ = original  # type: ignore[attr-defined]
    try:
        return args.func(args)
    except ImportError as err:
        hint = _missing_extra(err)
        if hint is None:
            raise
        return _fail(hint)
