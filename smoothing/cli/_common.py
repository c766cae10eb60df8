"""Shared pieces of the ``segcertify`` commands: the parser class, the option groups
and the :class:`~smoothing.runs.RunConfig` built from them.

Standard library only: building the parser imports neither torch nor numpy.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from smoothing import runs



PROG = "segcertify"

#: Choices of the parser, kept here so that building it imports neither torch nor the
#: runner; tests/test_cli_startup.py checks them against ``runner.DATASETS``,
#: ``runner.SAMPLERS`` and ``smoothing.CERTIFYING_CORRECTIONS``.
DATASET_NAMES: tuple[str, ...] = ("streets", "parts", "cityscapes", "pascal-context",
                                  "shapenet-part", "folder")
SAMPLER_NAMES: tuple[str, ...] = ("gaussian", "laplace", "rotation-z", "rotation-3d")
CORRECTION_NAMES: tuple[str, ...] = ("bonferroni", "generalized_bonferroni", "holm",
                                     "lehmann_romano")
#: Built-in hierarchies of ``--hierarchy`` (:data:`smoothing.hierarchy.BUILTIN_HIERARCHIES`;
#: tests/test_hierarchy_runs.py checks them against it and smoothing/hierarchies/).
HIERARCHY_NAMES: tuple[str, ...] = ("cityscapes", "cityscapes-ahc", "streets", "parts",
                                    "shapenet-part")
#: Rules of ``--hierarchy-rule`` (:data:`smoothing.hierarchical.RULES`).
HIERARCHY_RULE_NAMES: tuple[str, ...] = ("nested", "adaptive")
#: Rotation axes of ``--sampler rotation-z`` (:class:`samplers.RotationZ`).
AXIS_NAMES: tuple[str, ...] = ("x", "y", "z")
#: Precisions of ``--precision`` (:data:`smoothing.runs.config.PRECISION_NAMES`;
#: tests/test_precision_runs.py checks them against it).
PRECISION_NAMES: tuple[str, ...] = ("float32", "bfloat16", "float16")
#: Packages of the ``torch`` extra (``pip install 'segcertify[torch]'``).
_TORCH_EXTRA = frozenset({"torch", "tqdm", "PIL"})


class UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit."""


class Formatter(argparse.HelpFormatter):
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


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)  # subparsers are _Parser too
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)



class VersionAction(argparse.Action):
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



def out_dir(text: str) -> Path:
    """The ``--out`` / ``OUT`` type: a folder path, never the empty string.

    ``--out ""`` would write into the current folder; spell that ``--out .``.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "the output folder must not be empty (it would be the current folder; write "
            "'.' for that)")
    return Path(text)


def check_out(path: Path, flag: str = "--out") -> None:
    """Refuse an output path that cannot be a folder, before anything is loaded.

    ``path`` must be a folder or not exist yet, and its nearest existing parent must be
    a folder: an ``--out`` that is a file or a device (``/dev/null``), or lies inside
    one (``FILE/sub``), is a ValueError naming ``flag``.
    """
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == path else f" lies inside '{p}', which"
                raise ValueError(f"`{flag}` '{path}'{where} is not a folder (a file or a "
                                 "device); choose a folder.")
            return


def missing_extra(err: ImportError) -> str | None:
    """The one-line message for a missing package of the ``torch`` extra, else ``None``."""
    root = (err.name or "").split(".")[0]
    if root not in _TORCH_EXTRA:
        return None
    return (f"this command needs {root!r}, which is not installed; install the torch "
            "extra: pip install 'segcertify[torch]'")


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME",
                   help="built-in model (see `segcertify models`); default: "
                        "streets-unet-sigma0.25 for streets, parts-pointnet-normals-sigma0.25 "
                        "for parts")
    g.add_argument("--checkpoint", metavar="PATH",
                   help="your own model instead: a checkpoint of the built-in architectures, "
                        "a TorchScript file or an exported program (torch.export.save; both "
                        "need --trust-program), or the weights of --model-factory's model")
    g.add_argument("--arch", choices=("unet", "pointnet"),
                   help="built-in architecture of --checkpoint (required for a plain "
                        "state_dict)")
    g.add_argument("--model-factory", metavar="MODULE:FUNCTION",
                   help="your own architecture: FUNCTION(**kwargs) of an importable module "
                        "(on PYTHONPATH) returns the model; --checkpoint holds its weights")
    g.add_argument("--model-kwargs", metavar="JSON",
                   help="keyword arguments of --model-factory, a JSON object")
    g.add_argument("--trust-program", action="store_true",
                   help="allow a TorchScript or exported-program --checkpoint: loading one "
                        "RUNS CODE from the file; only for files you trust")
    g.add_argument("--output-key", metavar="KEY",
                   help="the logits of a model that returns a dict (its key, e.g. out) or a "
                        "tuple (an index, e.g. 0)")


def add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="streets", choices=DATASET_NAMES,
                   help="streets/parts are built in; the others need --data-root; folder: "
                        "your own images/ and masks/ (with --num-classes) "
                        "(default: %(default)s)")
    g.add_argument("--data-root", metavar="PATH", help="folder of a real data set")
    g.add_argument("--split", help="default: val (cityscapes, pascal-context), none (folder: "
                                   "ROOT/images, ROOT/masks), else test")
    g.add_argument("--image-size", nargs=2, type=int, metavar=("H", "W"),
                   help="streets: scene size (default 64 128); cityscapes/pascal-context/"
                        "folder: resize to H x W (default: native)")
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
    g.add_argument("--follow-symlinks", action="store_true",
                   help="let --data-root's files resolve outside it through symbolic links "
                        "(refused by default)")
    g.add_argument("--num-classes", type=int, metavar="K",
                   help="folder: the classes of the label maps, 0..K-1 (required, 2 to 255)")
    g.add_argument("--ignore-index", type=int, metavar="V",
                   help="folder: the label of unlabelled pixels in the masks (default 255)")
    g.add_argument("--class-names", nargs="+", metavar="NAME",
                   help="folder: one name per class (default: 0 1 ...)")
    g.add_argument("--channels", type=int, metavar="C",
                   help="folder: image channels, 1 (grey) or 3 (RGB) for PNG/JPEG, any for "
                        "TIFF/NPY (default 3)")


def add_certify_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("certification (lists make a grid)")
    g.add_argument("--sampler", default="gaussian", choices=SAMPLER_NAMES,
                   help="smoothing noise (default: %(default)s)")
    g.add_argument("--sigma", nargs="+", type=float, metavar="S",
                   help="noise level(s): Gaussian/rotation std, Laplace scale (default: the "
                        "model's training sigma)")
    g.add_argument("--axis", choices=AXIS_NAMES,
                   help="rotation axis of --sampler rotation-z (default: z)")
    g.add_argument("--quantize-bits", type=int, choices=(8, 16),
                   help="quantized smoothing of --sampler gaussian/laplace: images are "
                        "rounded to the 8- or 16-bit grid and the noise to that grid, so the "
                        "certificate is sound in floating point (samplers.Quantized)")
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
    g.add_argument("--precision", default="float32", choices=PRECISION_NAMES,
                   help="run the model's forward pass under autocast in this dtype: the "
                        "certificate is then of the model as run in that precision (the "
                        "noise, counts and test stay exact; docs/cli.md) (default: "
                        "%(default)s)")
    g.add_argument("--compile", nargs="?", const=True, default=False, metavar="BACKEND",
                   help="torch.compile the model (a bare --compile: torch's default "
                        "backend, inductor); falls back to the eager model with a warning "
                        "if compilation fails")


def add_hierarchy_options(p: argparse.ArgumentParser) -> None:
    """``--hierarchy`` and ``--hierarchy-rule`` (``certify`` only)."""
    g = p.add_argument_group("hierarchical certification (docs/hierarchical.md)")
    g.add_argument("--hierarchy", metavar="NAME|FILE",
                   help="certify the finest node of a class hierarchy where the fine class "
                        f"must abstain: a built-in one ({', '.join(HIERARCHY_NAMES)}) or a "
                        "JSON file; --correction must be one of the FWER/k-FWER ones")
    g.add_argument("--hierarchy-rule", choices=HIERARCHY_RULE_NAMES, default="nested",
                   help="nested: every node of the guessed path tested, the finest certified "
                        "reported; adaptive: one node per component chosen on the n0 "
                        "samples (default: %(default)s)")


def model_kwargs(text: str | None) -> dict[str, Any] | None:
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


def model_data_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~smoothing.runs.RunConfig` fields of the model and data options
    (:func:`add_model_options`, :func:`add_data_options`): one reading for every
    command that takes a model and a data set (``certify``, ``radius-maps``, ``train``)."""
    return dict(
        dataset=args.dataset, model=args.model, checkpoint=args.checkpoint, arch=args.arch,
        model_factory=args.model_factory, model_kwargs=model_kwargs(args.model_kwargs),
        data_root=args.data_root, split=args.split,
        image_size=tuple(args.image_size) if args.image_size else None,
        num_points=args.num_points, data_seed=args.data_seed, num_inputs=args.num_inputs,
        start=args.start, stride=args.stride, trust_program=args.trust_program,
        follow_symlinks=args.follow_symlinks, output_key=args.output_key,
        num_classes=args.num_classes, ignore_index=args.ignore_index,
        class_names=tuple(args.class_names) if args.class_names else None,
        channels=args.channels,
    )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> runs.RunConfig:
    from smoothing.runs.config import RunConfig

    return RunConfig(
        **model_data_fields(args), sampler=args.sampler,
        sigma=tuple(args.sigma) if args.sigma else None, n0=args.n0, n=tuple(args.n),
        tau=tuple(args.tau), alpha=args.alpha, correction=args.correction, k=args.k,
        batch_size=args.batch_size, seed=args.seed, axis=args.axis,
        quantize_bits=args.quantize_bits, skip_impossible=args.skip_impossible,
        hierarchy=getattr(args, "hierarchy", None),
        hierarchy_rule=getattr(args, "hierarchy_rule", "nested"),
        precision=args.precision, compile=args.compile,
    )  # fmt: skip
