"""``segcertify radius-maps``: per-component certified radius maps of a data set
(:mod:`smoothing.runs.radius_maps` does the work; torch is imported only when the
command runs)."""

from __future__ import annotations

import argparse
import sys

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
    g.add_argument("--out", required=True, type=out_dir, metavar="DIR", help="output folder")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA if available), cpu, cuda, cuda:N, mps (default: %(default)s)")
    g.add_argument("--no-figures", action="store_true", help="write the .npz layers only")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_radius_maps)


def run_radius_maps(args: argparse.Namespace) -> int:
    """The handler of ``segcertify radius-maps`` (exit status)."""
    if args.levels is not None and args.method != "ladder":
        raise ValueError("--levels needs --method ladder.")
    check_out(args.out)
    import multitest
    from smoothing import runs
    from smoothing.runs.radius_maps import write_radius_maps

    run = runs.prepare(config_from_args(args), device=args.device)
    multitest.simultaneous_lower_bounds([0], 1, run.config.alpha, method=args.method,
                                        levels=args.levels)  # validate early
    done = write_radius_maps(run, args.out, method=args.method, levels=args.levels,
                             figures=not args.no_figures, progress=not args.no_progress)
    print(f"{PROG}: {args.out}: {done} radius maps written ({args.out / 'radius_maps.csv'})",
          file=sys.stderr)
    return 0
