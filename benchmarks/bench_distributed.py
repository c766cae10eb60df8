"""Benchmark sharded sampling: certify one input with 1 vs several torch.distributed processes.

Every configuration certifies the same input with the same total ``n0 + n`` samples
in fresh processes: one process (no process group), or ``torchrun`` with ``gloo``
(CPU) or ``nccl`` (one process per GPU), each rank drawing its share of the samples.
We time :meth:`smoothing.distributed.DistributedSegCertify.certify` on rank 0
(after one warm-up call and a barrier, so start-up and process-group creation are
excluded) and report the median over repetitions and the speed-up against one
process. On CPUs the thread counts matter as much as the process counts, so the
CPU configurations state both: 1 process x 1 thread, 1 process x T threads and
P processes x T/P threads use the same cores.

Workloads: ``unet`` -- an untrained ``smoothing.models.SmallUNet`` (8 classes) on
one 3 x 128 x 256 image (compute-bound); ``tiny`` -- a 1x1 convolution on the same
image with a single batch per phase, so that the time is the fixed per-input cost
of the protocol (control messages, input hash, two all_reduce of the counts).

Usage::

    python benchmarks/bench_distributed.py                    # writes docs/distributed.md
    python benchmarks/bench_distributed.py --quick --out -    # smoke test, print only
    python benchmarks/bench_distributed.py --nproc 1 2 4 --threads 1   # more processes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _doc import write_section  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "distributed.md"


# ---------------------------------------------------------------------------
# one rank (run under torchrun, or alone)
# ---------------------------------------------------------------------------
def build(workload: str, *, quick: bool, device: torch.device):
    """(certifier, input) for a workload."""
    from samplers import GaussianL2
    from smoothing import SegCertify
    from smoothing.models import SmallUNet

    h, w = (64, 128) if quick else (128, 256)
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    if workload == "unet":
        model, n0, n, batch = SmallUNet(num_classes=8), 10, 100 if quick else 200, 10
    elif workload == "tiny":
        model, n0, n, batch = torch.nn.Conv2d(3, 8, 1), 10, 100, 100
    else:
        raise ValueError(f"unknown workload {workload!r}")
    certifier = SegCertify(model.to(device).eval(), GaussianL2(0.25), num_classes=8, n0=n0,
                           n=n, tau=0.75, alpha=0.001, batch_size=batch)
    return certifier, x


def worker(args: argparse.Namespace) -> None:
    """Time ``args.reps`` certifications on this rank; rank 0 writes them to ``args.result``."""
    from smoothing.distributed import DistributedSegCertify, init_from_env

    torch.set_num_threads(args.threads)
    ctx = init_from_env(timeout_s=600)
    try:
        device = ctx.device if ctx is not None else torch.device(args.device)
        certifier, x = build(args.workload, quick=args.quick, device=device)
        dist_cert = DistributedSegCertify(certifier, ctx)
        dist_cert.certify(x, seed=0)  # warm-up
        times = []
        for rep in range(args.reps):
            if ctx is not None:
                ctx.barrier()
            t0 = time.perf_counter()
            cert = dist_cert.certify(x, seed=1 + rep)
            times.append(time.perf_counter() - t0)
        if ctx is None or ctx.is_main:
            Path(args.result).write_text(json.dumps({
                "times": times, "certified_fraction": cert.certified_fraction,
                "n0": certifier.n0, "n": certifier.n, "batch_size": certifier.batch_size,
                "shape": list(x.shape), "backend": None if ctx is None else ctx.backend,
            }))
    finally:
        if ctx is not None:
            ctx.destroy()


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_config(workload: str, nproc: int, threads: int, args: argparse.Namespace) -> dict:
    """Run one configuration in fresh processes; rank 0's timings."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        script = [str(Path(__file__).resolve()), "--worker", "--workload", workload,
                  "--threads", str(threads), "--reps", str(args.reps), "--result", str(result),
                  "--device", args.device] + (["--quick"] if args.quick else [])
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads))
        if nproc == 1:
            cmd = [sys.executable, *script]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
                   f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1",
                   f"--master-port={free_port()}", *script]
        subprocess.run(cmd, env=env, check=True, timeout=args.timeout)
        row = json.loads(result.read_text())
    return {"workload": workload, "processes": nproc, "threads": threads,
            "median_s": statistics.median(row["times"]), "min_s": min(row["times"]), **row}


def configurations(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(processes, threads per process) to run; the first is the baseline."""
    if args.device.startswith("cuda"):
        return [(p, args.threads or 1) for p in args.nproc]
    if args.threads:
        return [(p, args.threads) for p in args.nproc]
    cores = os.cpu_count() or 1
    out = [(1, 1)] + [(1, cores)] * (cores > 1)
    return out + [(p, max(1, cores // p)) for p in args.nproc if p > 1]


def markdown(rows: list[dict], args: argparse.Namespace, load: tuple[float, float]) -> str:
    cores = os.cpu_count()
    backend = "nccl" if args.device.startswith("cuda") else "gloo"
    lines = [
        f"`python benchmarks/bench_distributed.py` on {args.device} ({platform.machine()}, "
        f"{cores} cores{', shared with other jobs' if args.shared else ''}), torch "
        f"{torch.__version__}, backend {backend} for several processes; {args.rounds} launches "
        f"of every configuration (alternating) x {args.reps} timed calls after one warm-up "
        "call, median and minimum over all calls. *speed-up* is the baseline's median "
        f"(first row of each workload) over this row's. Load average (1 min) of the "
        f"machine: {load[0]:.2f} before, {load[1]:.2f} after.",
        "",
        "| workload | input | n0 + n | batch | processes x threads | median (s) | min (s) "
        "| speed-up |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for workload in dict.fromkeys(r["workload"] for r in rows):
        group = [r for r in rows if r["workload"] == workload]
        base = group[0]["median_s"]
        for r in group:
            shape = "x".join(map(str, r["shape"]))
            lines.append(
                f"| {workload} | {shape} | {r['n0']} + {r['n']} | {r['batch_size']} | "
                f"{r['processes']} x {r['threads']} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
                f"{base / r['median_s']:.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["unet", "tiny"])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2],
                        help="process counts to compare (the first is the baseline)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per process (0: CPU: 1 x 1, 1 x cores, then "
                             "cores / processes each)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per process launch")
    parser.add_argument("--rounds", type=int, default=2,
                        help="launches of every configuration, alternating")
    parser.add_argument("--quick", action="store_true", help="smaller input and n")
    parser.add_argument("--device", default="cpu",
                        help="'cpu' (gloo) or 'cuda' (nccl, one GPU per process)")
    parser.add_argument("--shared", action="store_true",
                        help="say in the doc that the machine was shared")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    parser.add_argument("--out", default=str(DOC),
                        help="markdown file whose 'bench_distributed' section is replaced "
                             "('-': print only)")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    load_before = os.getloadavg()[0]
    rows = []
    for workload in args.workloads:
        # alternate the configurations over rounds, so drifting load hits them all
        runs: dict[tuple[int, int], list[dict]] = {}
        for _ in range(args.rounds):
            for config in configurations(args):
                row = run_config(workload, *config, args)
                print(json.dumps({k: v for k, v in row.items() if k != "times"}), flush=True)
                runs.setdefault(config, []).append(row)
        for group in runs.values():
            times = [t for row in group for t in row["times"]]
            rows.append({**group[0], "times": times, "median_s": statistics.median(times),
                         "min_s": min(times)})
    text = markdown(rows, args, (load_before, os.getloadavg()[0]))
    print(text)
    if args.out != "-":
        write_section("bench_distributed", "Measured speed-up", text, Path(args.out))


if __name__ == "__main__":
    main()
