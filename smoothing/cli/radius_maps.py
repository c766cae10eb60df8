"""``segcertify radius-maps``: per-component certified radius maps of a data set
(:mod:`smoothing.runs.radius_maps` does the work; torch is imported only when the
command runs).

A radius-maps run is resumable like ``certify``'s. ``--from-run RUN`` takes the
options and the counts of a finished ``certify`` run instead of sampling again;
options given beside it must equal the run's (``--tau``, ``--correction`` and
``--k`` aside, which a map does not use; ``--checkpoint``/``--data-root`` may name a
new location).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smoothing.cli._common import (
    PROG,
    add_certify_options,
    add_data_options,
    add_model_options,
    check_out,
    config_from_args,
    out_dir,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Add the ``radius-maps`` subcommand to ``sub``."""
    p = sub.add_parser(
        "radius-maps", help="per-component certified radius maps (.npz + figure per input)",
        description="Certify every input once and write each component's own certified "
                    "radius, valid simultaneously at --alpha (see docs/certificates.md).")
    for add in (add_model_options, add_data_options, add_certify_options):
        add(p)
    g = p.add_argument_group("radius maps")
    g.add_argument("--method", default="bonferroni", choices=("bonferroni", "ladder"),
                   help="simultaneous lower bounds: Clopper-Pearson at alpha/N, or Holm "
                        "over a ladder of levels (default: %(default)s)")
    g.add_argument("--levels", nargs="+", type=float, metavar="T",
                   help="the ladder (--method ladder); default: multitest.ladder_levels")
    g.add_argument("--from-run", type=Path, metavar="RUN",
                   help="a certify run folder whose label files hold the counts: its options "
                        "and counts make the maps, without sampling again")
    g.add_argument("--out", required=True, type=out_dir, metavar="DIR", help="output folder")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA if available), cpu, cuda, cuda:N, mps (default: %(default)s)")
    g.add_argument("--no-figures", action="store_true", help="write the .npz layers only")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_radius_maps, subparser=p)


def run_radius_maps(args: argparse.Namespace) -> int:
    """The handler of ``segcertify radius-maps`` (exit status)."""
    if args.levels is not None and args.method != "ladder":
        raise ValueError("--levels needs --method ladder.")
    check_out(args.out)
    import multitest
    from smoothing.cli.certify import prepare_run, print_training, store_warnings
    from smoothing.runs.radius_maps import write_radius_maps

    config = config_from_args(args) if args.from_run is None else _config_of_run(args)
    multitest.simultaneous_lower_bounds([0], 1, config.alpha, method=args.method,
                                        levels=args.levels)  # validate early
    with store_warnings():
        run = prepare_run(config, args.device, grid_warnings=False)
        print_training(run, config.sigma is not None)
        computed, reused = write_radius_maps(
            run, args.out, method=args.method, levels=args.levels,
            figures=not args.no_figures, progress=not args.no_progress, source=args.from_run)
    where = f", {reused} from the counts of {args.from_run}" if args.from_run else ""
    print(f"{PROG}: {args.out}: {computed} radius maps computed{where} "
          f"({args.out / 'radius_maps.csv'})", file=sys.stderr)
    return 0


def _config_of_run(args: argparse.Namespace) -> Any:
    """The options of the certify run ``--from-run``; an option given on the command line
    (one that differs from its default) must equal the run's."""
    import json

    from smoothing.runs.config import OMITTED_AT_DEFAULT
    from smoothing.runs.radius_maps import IGNORED_OPTIONS, run_config

    recorded = run_config(args.from_run)
    given = config_from_args(args).to_dict()
    default = config_from_args(args.subparser.parse_args(["--out", "-"]))
    # options left out at their default (--precision, --compile) read as that default
    default_values = {**OMITTED_AT_DEFAULT, **default.to_dict()}
    theirs = {**OMITTED_AT_DEFAULT, **recorded.to_dict()}
    moved = {}
    for key, value in given.items():  # options left at None are absent from to_dict()
        if value in (default_values.get(key), theirs.get(key)) or key in IGNORED_OPTIONS:
            continue
        if key in ("checkpoint", "data_root"):  # the same file or folder, moved
            moved[key] = value
            continue
        raise ValueError(f"`{key}` {json.dumps(value)} differs from the "
                         f"{json.dumps(theirs.get(key))} "
                         f"of the run `--from-run` '{args.from_run}'; leave it out.")
    from dataclasses import replace

    return replace(recorded, **moved)
