"""Benchmark LatticeGaussian sampling against GaussianL2 on the same tensor shape.

Both samplers perturb the same 8-bit batch (default 8 x 3 x 512 x 1024, float32)
with a seeded generator; the two are alternated in one process and the median
time of each, and the median of the per-repetition ratios LatticeGaussian /
GaussianL2, are reported (target <= 1.5x). The first call of each is a warm-up
(numba's compiled kernel is cached on disk, the decimal table built once per
sigma). ``--torch-path`` also times the tensor-operation path that non-CPU
devices use.

Usage::

    python benchmarks/bench_lattice.py                  # writes docs/benchmarks.md
    python benchmarks/bench_lattice.py --quick --out -  # smoke test, print only
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from _doc import write_section  # benchmarks/ is on sys.path when run as a script

from samplers import GaussianL2, LatticeGaussian
from samplers._lattice import _perturb_torch

ROOT = Path(__file__).resolve().parents[1]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[8, 3, 512, 1024])
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="small shape, 3 repetitions")
    parser.add_argument("--torch-path", action="store_true",
                        help="also time the tensor-operation path (other devices)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="markdown file whose 'bench_lattice' section is replaced "
                             "('-': print only)")
    args = parser.parse_args()
    if args.quick:
        args.shape, args.reps = [2, 3, 64, 128], 3
    torch.set_num_threads(args.threads)
    dev = args.device
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    x = (torch.randint(0, 256, args.shape, generator=gen, device=dev) / 255.0)
    gauss, lattice = GaussianL2(args.sigma), LatticeGaussian(args.sigma)
    runs = {"GaussianL2": lambda: gauss.perturb(x, generator=gen),
            "LatticeGaussian": lambda: lattice.perturb(x, generator=gen)}
    if args.torch_path:
        def torch_path():
            bits = torch.empty(x.shape, dtype=torch.int64, device=dev)
            bits.random_(generator=gen)
            return _perturb_torch(x, bits, lattice._tab)
        runs["LatticeGaussian (tensor ops)"] = torch_path
    for fn in runs.values():  # warm-up
        fn()
    times = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, fn in runs.items():
            times[name].append(timed(fn, dev))
    base = times["GaussianL2"]
    cpu = platform.processor() or platform.machine()
    lines = [
        f"`python benchmarks/bench_lattice.py{' --quick' if args.quick else ''}"
        f"{' --torch-path' if args.torch_path else ''}` on {dev} ({cpu}, "
        f"{torch.get_num_threads()} torch threads), torch {torch.__version__}: one "
        f"`perturb` of a {' x '.join(map(str, args.shape))} float32 8-bit batch, "
        f"sigma = {args.sigma}, {args.reps} alternating repetitions, medians; ratio = "
        "median over repetitions of (time / GaussianL2's time in the same repetition).",
        "",
        "| sampler | median (s) | ratio to GaussianL2 |",
        "|---|---:|---:|",
    ]
    ratios = {}
    for name, ts in times.items():
        ratios[name] = statistics.median(t / b for t, b in zip(ts, base, strict=True))
        lines.append(f"| {name} | {statistics.median(ts):.3f} | {ratios[name]:.2f}x |")
    met = "met" if ratios["LatticeGaussian"] <= 1.5 else "NOT met"
    lines += ["", f"Target LatticeGaussian <= 1.5x GaussianL2: {met} "
              f"({ratios['LatticeGaussian']:.2f}x) on this machine."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        write_section("bench_lattice", "LatticeGaussian sampling (samplers)", text,
                      Path(args.out))


if __name__ == "__main__":
    main()
