"""Benchmark SEGCERTIFY: overhead over bare forward passes, and peak memory vs n.

Two questions, measured on whatever device the model is on (CPU by default):

1. **Overhead.** SEGCERTIFY with ``n0 + n`` samples runs ``n0 + n`` forward passes
   plus noise, an argmax, the counting and the test. We time it against exactly the
   same forward passes (same batch sizes, same model, a fixed input batch, under
   ``torch.inference_mode``), alternating the two in one process, and report the
   median ratio. Target: <= 5 %.
2. **Memory.** Peak memory must not grow with ``n`` (samples are counted, never
   stored). Each ``n`` runs in a fresh subprocess that certifies twice; for the
   second run, on CPU we reset the kernel's peak-RSS counter (``VmHWM``, via
   ``/proc/self/clear_refs``) and report the process's peak resident set size
   during that run (torch's CPU allocations do not show in ``tracemalloc``), with
   glibc's ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed batches leave the resident
   set; on CUDA ``torch.cuda.max_memory_allocated``. The same forward passes alone
   ("bare") are measured the same way, so the difference is the algorithm's own.

Models: ``smoothing.models.SmallUNet`` (8 classes) on 256 x 512 images and
``smoothing.models.PointNetSeg`` (50 classes) on 2048 points, both untrained (the
speed of a forward pass does not depend on the weights).

Usage::

    python benchmarks/bench_segcertify.py                  # full run, writes the doc
    python benchmarks/bench_segcertify.py --quick --out -  # smoke test, print only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _doc import write_section  # benchmarks/ is on sys.path when run as a script

from samplers import GaussianL2
from smoothing import SegCertify

ROOT = Path(__file__).resolve().parents[1]
#: glibc: serve every block over 64 KiB by mmap and give it back on free, so that the
#: resident set follows live memory instead of the allocator's retained heap
#: (without it, fragmentation of the per-batch temporaries adds tens of MiB of noise).
MEMORY_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}


# ---------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------
def build(kind: str, *, quick: bool, device: str):
    """(model, one input, sampler, num_classes, batch_size, n0, n) for a workload."""
    from smoothing.models import PointNetSeg, SmallUNet

    torch.manual_seed(0)
    if kind == "image":
        h, w = (64, 128) if quick else (256, 512)
        model = SmallUNet(num_classes=8).to(device).eval()
        x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)).to(device)
        return model, x, GaussianL2(0.25), 8, 10, 10, 100
    if kind == "points":
        n_pts = 512 if quick else 2048
        model = PointNetSeg(num_classes=50, in_channels=3).to(device).eval()
        x = torch.randn(n_pts, 3, generator=torch.Generator().manual_seed(1)).to(device)
        x = x / x.norm(dim=1).max()
        return model, x, GaussianL2(0.25, point_cloud=True), 50, 50, 100, 1000
    raise ValueError(kind)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_forward(model, x, total: int, batch_size: int, device: str) -> float:
    """Seconds for ``total`` forward passes in the batches SEGCERTIFY would use."""
    batches = [min(batch_size, total - s) for s in range(0, total, batch_size)]
    inputs = {b: x.unsqueeze(0).expand(b, *x.shape).contiguous() for b in set(batches)}
    sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            model(inputs[b]).max(dim=1)  # the argmax every evaluation needs anyway
    sync(device)
    return time.perf_counter() - t0


def bare_forward_phases(model, x, n0: int, n: int, batch_size: int, device: str) -> float:
    return (bare_forward(model, x, n0, batch_size, device)
            + bare_forward(model, x, n, batch_size, device))


def time_workload(kind: str, reps: int, quick: bool, device: str) -> dict:
    model, x, sampler, c, bs, n0, n = build(kind, quick=quick, device=device)
    seg = SegCertify(model, sampler, num_classes=c, n0=n0, n=n, tau=0.75, alpha=0.001,
                     batch_size=bs)
    g = torch.Generator().manual_seed(0)
    seg.certify(x, generator=g)  # warm-up (allocator, numba kernels of multitest)
    bare_forward_phases(model, x, n0, n, bs, device)
    bare, total, sampling, testing = [], [], [], []
    for _ in range(reps):  # alternate, so drift hits both equally
        bare.append(bare_forward_phases(model, x, n0, n, bs, device))
        t0 = time.perf_counter()
        cert = seg.certify(x, generator=g)
        total.append(time.perf_counter() - t0)
        sampling.append(cert.time_sampling)
        testing.append(cert.time_testing)
    ratios = [t / b for t, b in zip(total, bare, strict=True)]
    return {
        "workload": kind, "shape": "x".join(map(str, x.shape)), "classes": c,
        "components": cert.labels.numel(), "n0": n0, "n": n, "batch_size": bs,
        "reps": reps, "bare_s": statistics.median(bare),
        "segcertify_s": statistics.median(total),
        "sampling_s": statistics.median(sampling), "testing_s": statistics.median(testing),
        "overhead": statistics.median(ratios) - 1.0,
        "certified_fraction": cert.certified_fraction,
    }


# ---------------------------------------------------------------------------
# memory: one subprocess per n
# ---------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in KiB (None if unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter VmHWM (Linux >= 4.0: clear_refs mode 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(kind: str, n: int, mode: str, quick: bool, device: str) -> None:
    """Peak memory of one SEGCERTIFY run (``mode='segcertify'``) or of the same
    forward passes alone (``mode='bare'``), after a warm-up run with ``n <= 100``."""
    model, x, sampler, c, bs, n0, _ = build(kind, quick=quick, device=device)

    def run(num: int, seed: int) -> None:
        if mode == "bare":
            bare_forward_phases(model, x, n0, num, bs, device)
            return
        seg = SegCertify(model, sampler, num_classes=c, n0=n0, n=num, tau=0.75,
                         alpha=0.001, batch_size=bs)
        seg.certify(x, generator=torch.Generator().manual_seed(seed))

    run(min(n, 100), 1)  # warm-up: numba kernels, allocator pools
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    reset = _reset_peak_rss()
    before = _status_kib("VmRSS") if reset else None
    t0 = time.perf_counter()
    run(n, 0)
    seconds = time.perf_counter() - t0
    if reset:
        peak, how = _status_kib("VmHWM"), "VmHWM after clear_refs"
    else:  # whole-process high-water mark (imports included)
        peak, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    out = {"workload": kind, "n": n, "mode": mode, "peak_rss_mib": peak / 1024,
           "rss_before_mib": (before or 0) / 1024, "seconds": seconds, "how": how}
    if device.startswith("cuda"):
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def memory_workload(kind: str, ns: list[int], quick: bool, device: str) -> list[dict]:
    rows = []
    for n in ns:
        for mode in ("bare", "segcertify"):
            cmd = [sys.executable, __file__, "--memory-child", kind, str(n), mode,
                   "--device", device]
            if quick:
                cmd.append("--quick")
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT,
                                 env=MEMORY_ENV)
            row = json.loads(res.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def markdown(timing: list[dict], memory: list[dict], args) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [  # the section's heading is written by write_section
        f"`python benchmarks/bench_segcertify.py{' --quick' if args.quick else ''}` on "
        f"{args.device} ({cpu}, {torch.get_num_threads()} torch threads), torch "
        f"{torch.__version__}, {args.reps} alternating repetitions, medians. Models are "
        "untrained `smoothing.models.SmallUNet` (8 classes) and `PointNetSeg` (50 classes); "
        "alpha = 0.001, tau = 0.75, sigma = 0.25, Holm.",
        "",
        "**Overhead over bare forward passes.** *bare* runs the same n0 + n forward passes "
        "(same batches, same model, plus the argmax over classes) on a fixed batch; "
        "*SEGCERTIFY* adds fresh noise per sample, output validation, counting on the "
        "device, moving the N counts to the CPU and the test. *overhead* is the median "
        "over repetitions of SEGCERTIFY / bare - 1 (target <= 5 %); on a shared machine "
        "run-to-run differences of a few percent are noise, so compare it with the spread "
        "of repeated runs before reading much into one digit.",
        "",
        "| workload | input | N | n0 + n | batch | bare (s) | SEGCERTIFY (s) | sampling (s) "
        "| testing (s) | overhead |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in timing:
        lines.append(
            f"| {r['workload']} | {r['shape']} | {r['components']} | {r['n0']} + {r['n']} | "
            f"{r['batch_size']} | {r['bare_s']:.2f} | {r['segcertify_s']:.2f} | "
            f"{r['sampling_s']:.2f} | {r['testing_s']:.4f} | {100 * r['overhead']:+.1f} % |"
        )
    key = "cuda_peak_mib" if args.device.startswith("cuda") else "peak_rss_mib"
    how = memory[0]["how"] if memory else ""
    lines += [
        "",
        "**Peak memory against n.** Each cell is a fresh process that runs once with "
        "n <= 100 (warm-up) and is measured on a second run: "
        + ("`torch.cuda.max_memory_allocated`." if key == "cuda_peak_mib" else
           f"peak resident set size of the whole process during that run ({how}; "
           "torch's CPU allocations are invisible to `tracemalloc`), with "
           "`MALLOC_MMAP_THRESHOLD_=65536` so that glibc returns freed batches to the OS "
           "and the resident set follows live memory rather than allocator retention.")
        + " *bare* runs only the same forward passes, so "
        "SEGCERTIFY - bare is the algorithm's extra memory. The counts themselves take "
        "N x C bytes (n0 phase, uint8) and N x 1 or 2 bytes (n phase: uint8 up to "
        "n = 255, int16 up to 32767).",
        "",
        "| workload | n | bare peak (MiB) | SEGCERTIFY peak (MiB) | extra (MiB) "
        "| SEGCERTIFY time (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by = {(r["workload"], r["n"], r["mode"]): r for r in memory}
    for kind, n in dict.fromkeys((r["workload"], r["n"]) for r in memory):
        bare, seg = by[kind, n, "bare"], by[kind, n, "segcertify"]
        lines.append(f"| {kind} | {n} | {bare[key]:.1f} | {seg[key]:.1f} | "
                     f"{seg[key] - bare[key]:+.1f} | {seg['seconds']:.1f} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small inputs (smoke test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workloads", nargs="+", default=["image", "points"])
    parser.add_argument("--memory-n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="markdown file whose 'bench_segcertify' section is replaced "
                             "('-': print only)")
    parser.add_argument("--csv", default=None, help="also write the timing rows as CSV")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the noise")
    parser.add_argument("--memory-child", nargs=3, metavar=("WORKLOAD", "N", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    if args.memory_child:
        kind, n, mode = args.memory_child
        memory_child(kind, int(n), mode, args.quick, args.device)
        return
    timing = []
    for kind in args.workloads:
        row = time_workload(kind, args.reps, args.quick, args.device)
        print(json.dumps(row), flush=True)
        timing.append(row)
    memory = []
    for kind in args.workloads:
        memory += memory_workload(kind, args.memory_n, args.quick, args.device)
    text = markdown(timing, memory, args)
    print(text)
    if args.out != "-":
        write_section("bench_segcertify", "SEGCERTIFY (smoothing)", text, Path(args.out))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(timing[0]))
            writer.writeheader()
            writer.writerows(timing)


if __name__ == "__main__":
    main()
