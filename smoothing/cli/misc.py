"""``segcertify models`` and ``segcertify demo``."""

from __future__ import annotations

import argparse

from smoothing.cli._common import check_out, out_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Add ``models`` and ``demo`` to the subcommands ``sub``."""
    p = sub.add_parser("models", help="list the built-in models")
    p.set_defaults(func=run_models)

    p = sub.add_parser("demo", help="quick end-to-end demonstration on built-in data")
    p.add_argument("--out", required=True, type=out_dir, metavar="DIR", help="output folder")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="small settings, minutes on a CPU (default)")
    mode.add_argument("--full", dest="quick", action="store_false",
                      help="the settings of docs/builtin-results.md (~20 min on 2 cores)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_demo)


def run_models(args: argparse.Namespace) -> int:
    """The handler of ``segcertify models``."""
    from smoothing.models import BUILTIN_MODELS

    for spec in BUILTIN_MODELS.values():
        print(f"{spec.name:34s} {spec.arch:9s} {spec.num_classes:3d} classes  "
              f"sigma={spec.sigma:<5g} {spec.input_layout:15s} {spec.dataset}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """The handler of ``segcertify demo``."""
    check_out(args.out)
    from smoothing.runs.demo import run_demo as demo

    demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    return 0
