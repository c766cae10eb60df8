"""The power study of §6.1 as a command: ``simulations/power_curves.py`` and step 1 of
the demo (:mod:`smoothing.runs.demo`) run :func:`main`.

The simulation is :mod:`multitest.power_study` (on :mod:`multitest.oracle`'s counts),
the figures :mod:`smoothing.power_figures`; this module parses the options, resumes
from the checkpoint folder and writes ``power_curves.csv`` and the figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from multitest.power_study import (
    ALL_FIGURES,
    COMPUTED,
    agreement,
    csv_text,
    figures,
    read_csv,
    simulate,
    total_reps,
)
from smoothing._io import temp_tag, write_atomic
from smoothing.power_figures import plot

__all__ = ["main"]


def _parse_figures(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in ALL_FIGURES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"`--figures` takes a comma-separated subset of {','.join(ALL_FIGURES)}; got {text!r}."
        )
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """The command line of the power study (``simulations/power_curves.py``); exit status.

    Simulates the figures asked for (resuming from ``OUT/checkpoint/``), writes
    ``OUT/power_curves.csv`` and draws ``OUT/power_fig*.png`` from it; ``--plot-only``
    redraws the figures from an existing CSV. Every file is written atomically.
    """
    from tqdm import tqdm

    parser = argparse.ArgumentParser(
        description="Power curves of Figs. 2, 5 and 6 of Fischer et al. (2021) on the oracle.")
    parser.add_argument("--out", type=Path, default=Path("results/power_curves"),
                        help="output directory (default: results/power_curves/)")
    parser.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions per point for every figure (default: per figure)")
    parser.add_argument("--figures", type=_parse_figures, default=list(ALL_FIGURES),
                        help="comma-separated subset of 2a,2b,2c,5,6a,6b (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="coarse gamma grid (step 0.01) and few repetitions: < 30 s")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the PNGs from an existing OUT/power_curves.csv")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--fresh", action="store_true",
                        help="recompute every point (ignore OUT/checkpoint/)")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error(f"`--reps` must be an integer >= 1; got {args.reps}.")
    if args.seed < 0:
        parser.error(f"`--seed` must be >= 0; got {args.seed}.")
    out: Path = args.out
    csv_path = out / "power_curves.csv"
    t0 = time.perf_counter()
    if args.plot_only:
        if not csv_path.exists():
            parser.error(f"--plot-only needs {csv_path}, which does not exist.")
        rows = read_csv(csv_path)
    else:
        specs = figures(quick=args.quick, reps=args.reps)
        wanted = set(args.figures)
        if "5" in wanted:
            wanted |= {"2b", "2c"}
        figs = [specs[name] for name in COMPUTED if name in wanted]
        ckpt = out / "checkpoint"
        if args.fresh and ckpt.exists():
            for old in ckpt.glob("*.jsonl"):
                old.unlink()
        bar = tqdm(total=total_reps(figs), disable=args.no_progress, unit="rep",
                   desc="power curves")
        rows = simulate(figs, args.seed, bar=bar, checkpoint=ckpt)
        bar.close()
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(csv_path, csv_text(rows).encode(), tag=temp_tag())
        rows = read_csv(csv_path)  # plots come from the CSV, as in --plot-only
    out.mkdir(parents=True, exist_ok=True)
    paths = plot(rows, out, args.figures)
    dt = time.perf_counter() - t0
    if not args.plot_only:
        print(f"wrote {csv_path} ({len(rows)} rows)")
        npts, zmax = agreement(rows)
        print(f"Monte Carlo vs exact: {npts} points with stderr > 0, "
              f"max |MC - exact| / stderr = {zmax:.2f}")
    for p in paths:
        print(f"wrote {p}")
    print(f"done in {dt:.1f} s")
    return 0
