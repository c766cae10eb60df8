"""Benchmark Quantized sampling against its continuous base sampler on the same input.

For each case (noise x bit depth x layout), ``Quantized(base, bits)`` and ``base``
perturb the same float32 input on the grid, alternated in one process; reported
are the median times and the median of the per-repetition ratios Quantized / base
(target <= 1.35x on the CPU). Two layouts:

* ``copies``: one image broadcast to a batch (a view with stride 0), what
  SEGCERTIFY's sampling passes to ``perturb``;
* ``batch``: a batch of distinct images.

On the CPU the numba kernels run; on any other device (``--device cuda``, the
default when CUDA is available) the tensor-operation path. ``--torch-path`` also
times the tensor path on the CPU. Warm-up calls first (numba's compiled kernels are
cached on disk, the alias tables built once per sigma and bit depth).

Usage::

    python benchmarks/bench_quantized.py                  # writes docs/benchmarks.md
    python benchmarks/bench_quantized.py --quick --out -  # smoke test, print only
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from _doc import write_section  # benchmarks/ is on sys.path when run as a script

from samplers import GaussianL2, LaplaceL1, Quantized
from samplers._quantized import _draw_torch

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.35


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def cases(sigma: float, shape: list[int], device: str, gen: torch.Generator):
    """(name, base, quantized, input) for every noise, bit depth and layout."""
    for base in (GaussianL2(sigma), LaplaceL1(sigma / math.sqrt(2))):
        for bits in (8, 16):
            q = Quantized(base, bits=bits)
            L = q.levels
            batch = torch.randint(0, L + 1, shape, generator=gen, device=device) / L
            copies = batch[:1].expand(shape[0], *shape[1:])
            for layout, x in (("copies", copies), ("batch", batch)):
                yield f"{type(base).__name__}, {bits} bit, {layout}", base, q, x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[8, 3, 256, 512])
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="small shape, 3 repetitions")
    parser.add_argument("--torch-path", action="store_true",
                        help="also time the tensor-operation path on the CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="markdown file whose 'bench_quantized' section is replaced "
                             "('-': print only)")
    args = parser.parse_args()
    if args.quick:
        args.shape, args.reps = [2, 3, 64, 128], 3
    torch.set_num_threads(args.threads)
    dev = args.device
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    rows = []
    for name, base, q, x in cases(args.sigma, args.shape, dev, gen):
        runs = {"base": lambda b=base, x=x: b.perturb(x, generator=gen),
                "quantized": lambda q=q, x=x: q.perturb(x, generator=gen)}
        if args.torch_path and dev == "cpu":
            runs["tensor path"] = lambda q=q, x=x: _draw_torch(
                x, x.contiguous().reshape(-1), gen, q._tab, q.levels)
        for fn in runs.values():  # warm-up
            fn()
        times = {k: [] for k in runs}
        for _ in range(args.reps):
            for k, fn in runs.items():
                times[k].append(timed(fn, dev))
        ratio = {k: statistics.median(t / b for t, b in zip(ts, times["base"], strict=True))
                 for k, ts in times.items()}
        rows.append((name, statistics.median(times["base"]),
                     statistics.median(times["quantized"]), ratio["quantized"],
                     min(times["quantized"]) / min(times["base"]), ratio.get("tensor path")))
    cpu = platform.processor() or platform.machine()
    where = (f"{dev} ({torch.cuda.get_device_name(dev)})" if dev.startswith("cuda")
             else f"cpu ({cpu}, {torch.get_num_threads()} torch threads)")
    lines = [
        f"`python benchmarks/bench_quantized.py{' --quick' if args.quick else ''}"
        f"{' --torch-path' if args.torch_path else ''}` on {where}, torch "
        f"{torch.__version__}: one `perturb` of a {' x '.join(map(str, args.shape))} "
        f"float32 input on the grid, GaussianL2(sigma = {args.sigma}) and LaplaceL1 of the "
        f"same variance, {args.reps} alternating repetitions; ratio = median over "
        "repetitions of (Quantized's time / the base sampler's time in the same "
        "repetition); best ratio = fastest Quantized / fastest base (less sensitive to other "
        "load on a shared machine). `copies`: one image broadcast to the batch, as "
        "SEGCERTIFY samples; `batch`: distinct images.",
        "",
        "| case | base (s) | Quantized (s) | ratio | best ratio |"
        + (" tensor path ratio |" if args.torch_path and dev == "cpu" else ""),
        "|---|---:|---:|---:|---:|" + ("---:|" if args.torch_path and dev == "cpu" else ""),
    ]
    for name, tb, tq, r, rb, rt in rows:
        lines.append(f"| {name} | {tb:.4f} | {tq:.4f} | {r:.2f}x | {rb:.2f}x |"
                     + (f" {rt:.2f}x |" if rt is not None else ""))
    worst = max(r[3] for r in rows)
    met = "met" if worst <= TARGET else "NOT met"
    lines += ["", f"Target Quantized <= {TARGET}x its base sampler on the CPU: "
              + (f"{met} (worst case {worst:.2f}x) on this machine." if dev == "cpu"
                 else f"not applicable on {dev} (worst case {worst:.2f}x).")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        write_section("bench_quantized", "Quantized sampling (samplers)", text, Path(args.out))


if __name__ == "__main__":
    main()
