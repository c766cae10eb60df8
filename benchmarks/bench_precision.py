"""Benchmark reduced precision and torch.compile in SEGCERTIFY's forward passes.

For the built-in U-Net (``streets-unet-sigma0.25``) at two image sizes, every
combination of ``precision`` in {float32, bfloat16, float16} and ``compile`` in {off,
on} is measured on the device of the run (``--device auto``: CUDA if there is one):

* **forward**: images per second of the model's forward pass alone, on a fixed noisy
  batch of ``--batch`` images under ``torch.inference_mode`` (best of ``--repeat``
  after a warm-up call, which also pays the compilation);
* **certify**: wall seconds of one :meth:`smoothing.SegCertify.certify` call
  (``n0 + n`` samples in batches of ``--batch``; with compilation, the first,
  compiling call is not timed) and the share of pixels whose certified label (or
  abstention) equals the float32 eager run's, with the same noise.

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
import platform
import time
import warnings

import torch
from _doc import write_section  # benchmarks/ is on sys.path when run as a script

from samplers import GaussianL2
from smoothing import SegCertify
from smoothing._precision import CompileFallbackWarning, FastForward, check_autocast

PRECISIONS = ("float32", "bfloat16", "float16")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_rate(fast: FastForward, batch: torch.Tensor, repeat: int) -> float:
    """Images per second of ``fast(batch)`` (best of ``repeat`` after one warm-up)."""
    best = float("inf")
    with torch.inference_mode():
        for k in range(repeat + 1):
            sync(batch.device)
            t0 = time.perf_counter()
            fast(batch)
            sync(batch.device)
            if k:
                best = min(best, time.perf_counter() - t0)
    return len(batch) / best


def measure(model, x, precision: str, compile: bool, args, reference) -> dict:
    """One row: forward rate, certify seconds, label agreement with ``reference``."""
    row = {"precision": precision, "compile": compile}
    try:
        check_autocast(x.device, precision)
    except ValueError as err:
        return {**row, "note": f"not supported: {err}"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CompileFallbackWarning)
        seg = SegCertify(model, GaussianL2(0.25), num_classes=8, n0=args.n0, n=args.n,
                         tau=0.75, alpha=0.001, batch_size=args.batch, precision=precision,
                         compile=compile)
        fast = seg._forward if isinstance(seg._forward, FastForward) else FastForward(model)
        noisy = GaussianL2(0.25).perturb(x.expand(args.batch, *x.shape),
                                         generator=torch.Generator(x.device).manual_seed(1))
        row["forward_img_s"] = forward_rate(fast, noisy, args.repeat)
        gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        if compile:
            seg.certify(x, generator=gen())  # warm-up: compiles on the first call
        sync(x.device)
        t0 = time.perf_counter()
        cert = seg.certify(x, generator=gen())
        sync(x.device)
        row["certify_s"] = time.perf_counter() - t0
    fell = [w for w in caught if issubclass(w.category, CompileFallbackWarning)]
    row["compiled"] = bool(seg.compiled)
    row["note"] = f"compile fell back: {str(fell[0].message)[:120]}" if fell else ""
    labels = cert.labels
    row["labels"] = labels
    row["same_labels"] = (float((labels == reference).float().mean())
                          if reference is not None else 1.0)
    return row


def run(args) -> tuple[list[dict], str]:
    from smoothing.models import load_model

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    model = load_model("streets-unet-sigma0.25", device=device)
    sizes = [(16, 32), (32, 64)] if args.quick else [(32, 64), (64, 128)]
    rows = []
    for h, w in sizes:
        x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(2)).to(device)
        reference = None
        base = {}
        for compile in (False, True):
            for precision in PRECISIONS:
                if compile and not args.compile:
                    continue
                torch.manual_seed(0)
                if compile:  # a fresh dynamo cache: no recompile limit carried over
                    torch._dynamo.reset()
                row = measure(model, x, precision, compile, args, reference)
                row["size"] = f"{h} x {w}"
                if not compile and precision == "float32":
                    reference, base = row["labels"], row
                for key in ("forward_img_s", "certify_s"):
                    if key in row and key in base:
                        ratio = (row[key] / base[key] if key == "forward_img_s"
                                 else base[key] / row[key])
                        row[key.split("_")[0] + "_speedup"] = ratio
                row.pop("labels", None)
                print(row, flush=True)
                rows.append(row)
    return rows, str(device)


def to_markdown(rows: list[dict], device: str, args) -> str:
    threads = torch.get_num_threads()
    gpu = (torch.cuda.get_device_name(0) if device.startswith("cuda") else None)
    lines = [
        f"Measured by `benchmarks/bench_precision.py` on **{gpu or 'CPU'}** ({platform.machine()}, "
        f"{threads} torch threads, torch {torch.__version__}); model `streets-unet-sigma0.25` "
        f"(SmallUNet, 8 classes); forward: a batch of {args.batch} noisy images, best of "
        f"{args.repeat}; certify: one `SegCertify.certify` with n0 = {args.n0}, n = {args.n}, "
        f"batches of {args.batch}, σ = 0.25, τ = 0.75 (compiled: after one warm-up call); "
        "speed-ups "
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
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="leave out the compiled rows")
    parser.add_argument("--out", default="doc", help="'doc': docs/benchmarks.md; '-': print")
    args = parser.parse_args(argv)
    rows, device = run(args)
    md = to_markdown(rows, device, args)
    if args.out == "-":
        print(md)
    else:
        print(write_section("bench_precision", "Reduced precision and torch.compile", md))


if __name__ == "__main__":
    main()
