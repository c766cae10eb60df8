"""Benchmark reduced precision and torch.compile in SEGCERTIFY's forward passes.

For the built-in U-Net (``streets-unet-sigma0.25``) at two image sizes, every
combination of ``precision`` in {float32, bfloat16, float16} and ``compile`` in {off,
on} is measured on the device of the run (``--device auto``: CUDA if there is one):

* **forward**: images per second of the model's forward pass alone, on a fixed noisy
  batch of ``--batch`` images under ``torch.inference_mode``;
* **certify**: wall seconds of one :meth:`smoothing.SegCertify.certify` call
  (``n0 + n`` samples in batches of ``--batch``) and the share of pixels whose
  certified label (or abstention) equals the float32 eager run's, with the same noise.

A warm-up call per configuration pays the compilation (every certify batch has the
warm-up's shape). Then all configurations of one image size are timed in
``--repeat`` interleaved rounds, so that a change of the machine's load (it is shared)
hits them alike, and the best round of each counts.

Speed-ups are ratios against float32 eager measured in the same run. The compile
column also says when compilation failed and the model ran eagerly. The selfie network
of ``smoothing.real`` runs in the LiteRT (TFLite) interpreter, not in torch:
``precision`` and ``compile`` do not reach it, so it has no rows.

Usage::

    python benchmarks/bench_precision.py                   # writes docs/benchmarks.md
    python benchmarks/bench_precision.py --quick --out -   # smoke test, print only
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import torch
from _doc import write_section  # benchmarks/ is on sys.path when run as a script

from samplers import GaussianL2
from smoothing import SegCertify
from smoothing._precision import CompileFallbackWarning, check_autocast

PRECISIONS = ("float32", "bfloat16", "float16")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> tuple[float, object]:
    """(wall seconds, result) of one call, the device synchronised at both ends."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def prepare(model, x, batch, configs, args) -> dict:
    """A certifier per (precision, compile), warmed up (compiled) on the benchmark batch."""
    setups = {}
    for precision, compile in configs:
        try:
            check_autocast(x.device, precision)
        except ValueError as err:
            setups[precision, compile] = {"note": f"not supported: {err}"}
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CompileFallbackWarning)
            seg = SegCertify(model, GaussianL2(0.25), num_classes=8, n0=args.n0, n=args.n,
                             tau=0.75, alpha=0.001, batch_size=args.batch,
                             precision=precision, compile=compile)
            fast = seg.base_classifier
            with torch.inference_mode():
                fast(batch)  # warm-up: compiles (same shapes as every certify batch)
        fell = [w for w in caught if issubclass(w.category, CompileFallbackWarning)]
        note = f"compile fell back: {str(fell[0].message)[:120]}" if fell else ""
        setups[precision, compile] = {"seg": seg, "fast": fast, "note": note,
                                      "forward": float("inf"), "certify": float("inf")}
    return setups


def measure_size(model, x, args) -> list[dict]:
    """Every configuration on one image size, timed in interleaved rounds (so that a
    change of the machine's load hits all of them alike); best round per config."""
    configs = [(p, c) for c in ((False, True) if args.compile else (False,))
               for p in PRECISIONS]
    batch = GaussianL2(0.25).perturb(x.expand(args.batch, *x.shape),
                                     generator=torch.Generator(x.device).manual_seed(1))
    torch._dynamo.reset()  # a fresh cache per size: no recompile limit carried over
    setups = prepare(model, x, batch, configs, args)
    live = [c for c in configs if "seg" in setups[c]]
    labels = {}
    for _ in range(args.repeat):
        for c in live:
            with torch.inference_mode():
                t, _ = timed(lambda: setups[c]["fast"](batch), x.device)  # noqa: B023
            setups[c]["forward"] = min(setups[c]["forward"], t)
    for r in range(args.repeat):
        for c in live:
            if r and setups[c]["certify"] > args.slow:
                continue  # one certification of a very slow configuration is enough
            t, cert = timed(lambda: setups[c]["seg"].certify(  # noqa: B023
                x, generator=torch.Generator().manual_seed(0)), x.device)
            setups[c]["certify"] = min(setups[c]["certify"], t)
            labels[c] = cert.labels
    ref = setups["float32", False]
    rows = []
    for c in configs:
        st = setups[c]
        row = {"precision": c[0], "compile": c[1], "note": st["note"]}
        if "seg" in st:
            row.update(forward_img_s=args.batch / st["forward"], certify_s=st["certify"],
                       forward_speedup=ref["forward"] / st["forward"],
                       certify_speedup=ref["certify"] / st["certify"],
                       compiled=bool(st["seg"].compiled),
                       same_labels=float((labels[c] == labels["float32", False])
                                         .float().mean()))
        rows.append(row)
    return rows


def run(args) -> tuple[list[dict], str]:
    from smoothing.models import load_model

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    model = load_model("streets-unet-sigma0.25", device=device)
    sizes = [(16, 32), (32, 64)] if args.quick else [(32, 64), (64, 128)]
    rows = []
    for h, w in sizes:
        x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(2)).to(device)
        for row in measure_size(model, x, args):
            row["size"] = f"{h} x {w}"
            print(row, flush=True)
            rows.append(row)
    return rows, str(device)


def to_markdown(rows: list[dict], device: str, args) -> str:
    threads = torch.get_num_threads()
    gpu = (torch.cuda.get_device_name(0) if device.startswith("cuda") else None)
    lines = [
        f"Measured by `benchmarks/bench_precision.py` on **{gpu or 'CPU'}** ({platform.machine()}, "
        f"{threads} torch threads, torch {torch.__version__}); model `streets-unet-sigma0.25` "
        f"(SmallUNet, 8 classes); forward: a batch of {args.batch} noisy images; certify: "
        f"one `SegCertify.certify` with n0 = {args.n0}, n = {args.n}, batches of "
        f"{args.batch}, σ = 0.25, τ = 0.75; after a warm-up call that compiles, all "
        f"configurations of one size are timed in {args.repeat} interleaved rounds and the "
        f"best round counts (a certification over {args.slow:g} s runs once); speed-ups "
        "against float32 eager in the same run; *same labels*: share of pixels whose "
        "certified label or abstention equals float32 eager's (same noise).",
        "",
        "| image | precision | compile | forward (img/s) | speed-up | certify (s) | "
        "speed-up | same labels | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "forward_img_s" not in r:
            lines.append(f"| {r['size']} | {r['precision']} | {'on' if r['compile'] else 'off'}"
                         f" | – | – | – | – | – | {r['note']} |")
            continue
        lines.append(
            f"| {r['size']} | {r['precision']} | {'on' if r['compile'] else 'off'} | "
            f"{r['forward_img_s']:.1f} | {r.get('forward_speedup', 1.0):.2f}x | "
            f"{r['certify_s']:.2f} | {r.get('certify_speedup', 1.0):.2f}x | "
            f"{100 * r['same_labels']:.2f} % | {r['note']} |")
    if not gpu:
        lines += ["", "**GPU rows are missing**: no GPU was available to this run. The same "
                  "command measures one (`--device cuda`); reduced precision and "
                  "channels_last (on by default on CUDA with a reduced precision or "
                  "compilation) are meant for GPUs."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small images, a smoke test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--n0", type=int, default=10)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved rounds; the best round counts")
    parser.add_argument("--slow", type=float, default=20.0,
                        help="seconds: a configuration whose certification takes longer "
                             "is certified once")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="leave out the compiled rows")
    parser.add_argument("--out", default="doc", help="'doc': docs/benchmarks.md; '-': print")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    rows, device = run(args)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    md = to_markdown(rows, device, args)
    md += (f"\n\nLoad average (1 min) at the start and the end: {load_before:.1f} and "
           f"{load_after:.1f} ({os.cpu_count()} CPUs); the run took "
           f"{time.perf_counter() - t0:.0f} s.")
    if args.out == "-":
        print(md)
    else:
        print(write_section("bench_precision", "Reduced precision and torch.compile", md))


if __name__ == "__main__":
    main()
