"""Benchmark a run's tau grid: a 3-tau grid against a 1-tau run, in the same process.

Since run format 2 a ``segcertify certify`` run samples once per (sigma, n) and
tests every tau on those counts (:meth:`smoothing.SegCertify.retest`), so extra tau
should cost only their tests. This script times
:meth:`smoothing.runs.CertificationRun.execute` of the same inputs, model and
seed with ``--tau 0.75`` and with ``--tau 0.6 0.75 0.9`` into fresh folders,
alternating the two in ``--rounds`` rounds, and reports the fastest and the median
round of each and the ratio of the fastest (the least disturbed by other load on a
shared machine; target: at most 1.1). The model is the built-in
``streets-unet-sigma0.25`` on CPU, one torch thread.

Usage::

    python benchmarks/bench_tau_grid.py                  # writes docs/benchmarks.md
    python benchmarks/bench_tau_grid.py --quick --out -  # smoke test, print only
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from _doc import DOC, write_section  # benchmarks/ is on sys.path when run as a script

from smoothing import runs as runner

TARGET = 1.1


def _time_run(tau: tuple[float, ...], args: argparse.Namespace, tmp: Path, tag: str) -> float:
    cfg = runner.RunConfig(dataset="streets", image_size=(args.height, args.width),
                           num_inputs=args.inputs, n0=10, n=(args.n,), tau=tau,
                           alpha=0.001, batch_size=args.batch_size)
    with warnings.catch_warnings():  # --quick's n cannot certify: fine for timing
        warnings.simplefilter("ignore", runner.ImpossibleGridPointWarning)
        run = runner.prepare(cfg, device="cpu")
    t0 = time.perf_counter()
    run.execute(tmp / tag, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating timed rounds")
    parser.add_argument("--inputs", type=int, default=2, help="inputs per run")
    parser.add_argument("--n", type=int, default=200, help="testing samples")
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--out", default=str(DOC),
                        help="Markdown file to update, or - to print only")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.inputs, args.n, args.height, args.width = 1, 1, 40, 16, 32
    torch.set_num_threads(1)
    grids = {"1 tau (0.75)": (0.75,), "3 tau (0.6, 0.75, 0.9)": (0.6, 0.75, 0.9)}
    times: dict[str, list[float]] = {k: [] for k in grids}
    with tempfile.TemporaryDirectory() as tmp:
        _time_run((0.75,), args, Path(tmp), "warm-up")
        for r in range(args.rounds):
            for name, tau in grids.items():
                times[name].append(_time_run(tau, args, Path(tmp), f"{r}-{len(tau)}"))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    one, three = best["1 tau (0.75)"], best["3 tau (0.6, 0.75, 0.9)"]
    ratio = three / one
    med_ratio = med["3 tau (0.6, 0.75, 0.9)"] / med["1 tau (0.75)"]
    lines = [
        f"`python benchmarks/bench_tau_grid.py` · {platform.processor() or platform.machine()}"
        f", torch {torch.__version__}, 1 thread · streets-unet-sigma0.25 on "
        f"{args.height} x {args.width} scenes, {args.inputs} inputs, n0 = 10, n = {args.n}, "
        f"batch {args.batch_size} · {args.rounds} alternating rounds",
        "",
        "| grid | fastest run (s) | median run (s) | ratio to 1 tau (fastest) | (median) |",
        "|---|---|---|---|---|",
        f"| 1 tau (0.75) | {one:.3g} | {med['1 tau (0.75)']:.3g} | 1.00 | 1.00 |",
        f"| 3 tau (0.6, 0.75, 0.9) | {three:.3g} | {med['3 tau (0.6, 0.75, 0.9)']:.3g} | "
        f"{ratio:.3f} | {med_ratio:.3f} |",
        "",
        f"Target: a 3-tau grid costs at most {TARGET}x a 1-tau run: "
        f"{'met' if ratio <= TARGET else 'NOT met'} ({ratio:.3f}x). The grid samples once "
        "per (sigma, n) and tests each tau on the same counts; each row remains its own "
        "1 - alpha certificate.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        write_section("bench_tau_grid", "Tau grids (one sampling per sigma and n)", text,
                      Path(args.out))


if __name__ == "__main__":
    main()
