"""``segcertify train``: train or fine-tune a model under the smoothing noise.

The model and data options are certify's (:func:`~smoothing.cli._common.add_model_options`,
:func:`~smoothing.cli._common.add_data_options`, read by
:func:`~smoothing.cli._common.model_data_fields`); :mod:`smoothing.runs.training`
loads them as a certification run does and calls
:func:`smoothing.train.train_for_smoothing`. The parser is built from the standard
library only; the handler imports torch.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from smoothing.cli._common import (
    PROG,
    add_data_options,
    add_model_options,
    check_out,
    model_data_fields,
    out_dir,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["add_parsers"]

#: Choices of the parser, kept here so that building it imports no torch;
#: tests/test_cli_train.py checks them against :mod:`smoothing.train` and
#: :data:`smoothing.runs.training.TRAIN_SAMPLERS`.
TRAIN_SAMPLER_NAMES: tuple[str, ...] = ("gaussian", "laplace")
METHOD_NAMES: tuple[str, ...] = ("noise", "consistency")
OPTIMIZER_NAMES: tuple[str, ...] = ("adamw", "sgd")
SCHEDULE_NAMES: tuple[str, ...] = ("cosine", "constant")
#: Defaults of the options that apply to one method or optimizer only (given
#: otherwise, they are refused).
CONSISTENCY_DEFAULTS = {"m": 2, "lam": 10.0, "eta": 0.5}
SGD_DEFAULTS = {"momentum": 0.9}
#: Data options that select the training inputs: not repeated in the certify hint.
_SELECTION = frozenset({"split", "num_inputs", "start", "stride"})


def add_parsers(sub: Any) -> None:
    """Add ``train`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "train", help="train or fine-tune a model under the smoothing noise; resumable",
        description="Train or fine-tune a segmentation model under the noise it will be "
                    "certified with (noise augmentation or consistency regularization); "
                    "rerun the same command to resume. Starting model: --model NAME "
                    "(fine-tune a built-in model), --checkpoint PATH [--arch] (fine-tune a "
                    "checkpoint of a built-in architecture), --model-factory MODULE:FUNCTION "
                    "[--checkpoint WEIGHTS] (your architecture), or --arch alone (a freshly "
                    "initialised built-in architecture).")
    add_model_options(p)
    add_data_options(p)
    _set_help(p, "--model", "built-in model to fine-tune (see `segcertify models`); no "
                            "default: give one of --model, --checkpoint, --model-factory, "
                            "--arch")
    _set_help(p, "--arch", "built-in architecture: of --checkpoint (required for a plain "
                           "state_dict), or alone a freshly initialised one with the data "
                           "set's classes (--model-kwargs adds to its arguments)")
    _set_help(p, "--checkpoint", "a checkpoint of a built-in architecture to fine-tune, or "
                                 "the starting weights of --model-factory's model "
                                 "(TorchScript files and exported programs cannot be "
                                 "trained)")
    _set_help(p, "--trust-program", "not used by train: programs cannot be trained")
    _set_help(p, "--split", "split to train on (default: train)")
    g = p.add_argument_group("noise")
    g.add_argument("--sampler", default="gaussian", choices=TRAIN_SAMPLER_NAMES,
                   help="training noise, as certify's --sampler (default: %(default)s)")
    g.add_argument("--sigma", type=float, metavar="S",
                   help="noise level: Gaussian std, Laplace scale (default: the starting "
                        "model's training sigma, if it records one)")
    g.add_argument("--quantize-bits", type=int, choices=(8, 16),
                   help="train under certify's quantized noise (samplers.Quantized): the "
                        "images are rounded to the 8- or 16-bit grid and so is the noise")
    g = p.add_argument_group("training")
    g.add_argument("--method", default="noise", choices=METHOD_NAMES,
                   help="noise: cross-entropy on a noisy copy (Cohen et al.); consistency: "
                        "plus the consistency regularizer over --m copies (Jeong & Shin) "
                        "(default: %(default)s)")
    g.add_argument("--epochs", type=int, required=True, help="passes over the training inputs")
    g.add_argument("--batch-size", type=int, default=16,
                   help="inputs per optimiser step (default: %(default)s)")
    g.add_argument("--optimizer", default="adamw", choices=OPTIMIZER_NAMES,
                   help="default: %(default)s")
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: %(default)s)")
    g.add_argument("--weight-decay", type=float, default=1e-4,
                   help="default: %(default)s")
    g.add_argument("--momentum", type=float,
                   help="momentum of --optimizer sgd (default: 0.9)")
    g.add_argument("--schedule", default="cosine", choices=SCHEDULE_NAMES,
                   help="learning rate after the warm-up (default: %(default)s)")
    g.add_argument("--warmup-steps", type=int, default=0,
                   help="steps of linear warm-up (default: %(default)s)")
    g.add_argument("--m", type=int, help="noisy copies per input of --method consistency "
                                         "(default: 2)")
    g.add_argument("--lam", type=float, help="weight of the KL term of --method consistency "
                                             "(default: 10)")
    g.add_argument("--eta", type=float, help="weight of the entropy term of --method "
                                             "consistency (default: 0.5)")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the inputs held out for validation, a seeded split, in "
                        "[0, 1) (default: %(default)s)")
    g.add_argument("--hflip", action="store_true", help="random horizontal flips (images)")
    g.add_argument("--crop", nargs=2, type=int, metavar=("H", "W"),
                   help="train on random H x W crops (needed for images of different sizes)")
    g.add_argument("--seed", type=int, default=0,
                   help="seeds the initial weights of a fresh model, the split, the order, "
                        "the noise and the augmentation (default: %(default)s)")
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, type=out_dir, metavar="DIR",
                   help="output folder: model.pt, train_state.pt, train.json")
    g.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                   help="also save the resumable state every this many steps (default: after "
                        "every epoch only)")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N, mps "
                        "(default: %(default)s)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train, _train_parser=p)  # its option groups: certify_command


def _set_help(p: argparse.ArgumentParser, flag: str, text: str) -> None:
    """Replace the help of ``flag`` (a shared option whose meaning differs here)."""
    p._option_string_actions[flag].help = text


def recipe_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~smoothing.train.TrainRecipe` fields of the training options.

    ``--m``, ``--lam``, ``--eta`` belong to ``--method consistency`` and
    ``--momentum`` to ``--optimizer sgd``; given otherwise they are refused (they
    would change nothing).

    Examples
    --------
    >>> from smoothing.cli import build_parser
    >>> args = build_parser().parse_args(["train", "--out", "o", "--epochs", "2",
    ...                                   "--method", "consistency", "--lam", "5"])
    >>> opts = recipe_options(args)
    >>> opts["m"], opts["lam"], opts["momentum"]
    (2, 5.0, 0.9)
    """
    chosen = {"consistency": args.method == "consistency", "sgd": args.optimizer == "sgd"}
    opts: dict[str, Any] = {}
    for defaults, flag, value in ((CONSISTENCY_DEFAULTS, "--method", "consistency"),
                                  (SGD_DEFAULTS, "--optimizer", "sgd")):
        for name, default in defaults.items():
            given = getattr(args, name)
            if given is not None and not chosen[value]:
                raise ValueError(f"`--{name}` applies to `{flag} {value}` only; got "
                                 f"`--{name} {given}` with `{flag} "
                                 f"{args.method if value == 'consistency' else args.optimizer}`.")
            opts[name] = default if given is None else given
    return dict(
        method=args.method, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup_steps=args.warmup_steps,
        val_fraction=args.val_fraction, hflip=args.hflip,
        crop=tuple(args.crop) if args.crop else None, seed=args.seed, **opts,
    )  # fmt: skip


def run_train(args: argparse.Namespace) -> int:
    """The handler of ``segcertify train`` (exit status)."""
    check_out(args.out)
    options = recipe_options(args)
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ValueError(f"`--checkpoint-every` must be an integer >= 1; got "
                         f"{args.checkpoint_every}.")
    from smoothing.runs.config import RunConfig
    from smoothing.runs.training import prepare_training
    from smoothing.train import TrainRecipe

    recipe = TrainRecipe(**options)
    config = RunConfig(**model_data_fields(args), sampler=args.sampler,
                       sigma=(args.sigma,) if args.sigma is not None else None,
                       quantize_bits=args.quantize_bits)
    run = prepare_training(config, recipe, args.out, device=args.device)

    def log(line: str) -> None:
        print(f"{PROG}: {line}", file=sys.stderr)

    result = run.execute(checkpoint_every=args.checkpoint_every,
                         progress=not args.no_progress, log=log)
    steps = result.metadata["train"]["steps"]
    if result.resumed_from == steps:
        done = f"{steps} steps, all done before: nothing retrained"
    elif result.resumed_from:
        done = f"{steps} steps, resumed at step {result.resumed_from}"
    else:
        done = f"{steps} steps"
    print(f"{PROG}: trained '{result.weights_path}' ({done}); certify it with: "
          f"{certify_command(args, run)}")
    return 0


def certify_command(args: argparse.Namespace, run: Any) -> str:
    """The ``segcertify certify`` command that certifies ``run``'s ``model.pt`` on the
    data set's default (test) split, with the training noise."""
    parser = getattr(args, "_train_parser", None)
    words = ["segcertify", "certify"]
    if not run.builtin_architecture:  # the factory's model: its flags, then the weights
        words += _given(args, parser, "model", skip={"model", "checkpoint", "arch",
                                                     "trust_program"})
    words += ["--checkpoint", str(run.out / "model.pt")]
    words += _given(args, parser, "data", skip=_SELECTION)
    if run.config.sampler != "gaussian":
        words += ["--sampler", run.config.sampler]
    words += ["--sigma", format(run.config.sigma[0], "g")]
    if run.config.quantize_bits is not None:
        words += ["--quantize-bits", str(run.config.quantize_bits)]
    out = Path(args.out)
    words += ["--out", str(out.parent / f"{out.resolve().name}-certify")]
    return " ".join(shlex.quote(w) for w in words)


def _given(args: argparse.Namespace, parser: argparse.ArgumentParser | None, group: str,
           skip: frozenset[str] | set[str]) -> list[str]:
    """The flags of option group ``group`` given with other than their defaults."""
    if parser is None:
        return []
    words: list[str] = []
    for g in parser._action_groups:
        if g.title != group:
            continue
        for action in g._group_actions:
            if action.dest in skip or not action.option_strings:
                continue
            value = getattr(args, action.dest, None)
            if value is None or value == action.default:
                continue
            flag = next((o for o in action.option_strings if o.startswith("--")),
                        action.option_strings[0])
            if action.nargs == 0:  # store_true
                words.append(flag)
            elif isinstance(value, list | tuple):
                words += [flag, *(str(v) for v in value)]
            else:
                words += [flag, str(value)]
    return words
