"""What training for smoothing buys: the clean built-in U-Net before and after fine-tuning.

The non-robust ``streets-unet-clean`` model (trained without noise) is fine-tuned under
Gaussian noise at sigma = 0.25 and at 0.5 with :func:`smoothing.train.train_for_smoothing`,
once with plain noise augmentation (``method='noise'``, Cohen et al.) and once with
consistency regularization (``method='consistency'``, Jeong & Shin, m = 2, lambda = 10,
eta = 0.5), at the **same budget**: the same number of optimiser steps, each with the
same number of forward passes (noise: ``batch`` inputs x 1 copy; consistency:
``batch / 2`` inputs x 2 copies), the same seed and the same training images. Every
model is then certified with SEGCERTIFY on the same test scenes at its sigma::

    nice python simulations/train_for_smoothing.py --csv docs/results/training_streets.csv \\
        --png docs/figures/training_streets.png

One row per (model, sigma) goes to the CSV (certified accuracy, abstention, clean and
noisy base-model accuracy, training wall and CPU seconds); the figure is drawn from the
CSV (``--plot-only`` redraws it).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

COLUMNS = ("model", "method", "sigma", "radius", "certified_accuracy", "abstain",
           "base_accuracy_noisy", "num_images", "n0", "n", "tau", "alpha", "train_steps",
           "train_forward_passes", "train_wall_s", "train_cpu_s", "certify_wall_s", "seed")


def base_accuracy_noisy(model: Any, data: list, sigma: float, seed: int) -> float:
    """Pixel accuracy of the base model on one Gaussian-noisy copy of every test image."""
    import torch

    from samplers import GaussianL2

    gen = torch.Generator().manual_seed(seed)
    right = total = 0
    with torch.inference_mode():
        for x, y in data:
            pred = model(GaussianL2(sigma).perturb(x[None], generator=gen)).argmax(1)[0]
            keep = y != 255
            right += int(((pred == y) & keep).sum())
            total += int(keep.sum())
    return right / total


def certify_all(model: Any, data: list, sigma: float, args: argparse.Namespace
                ) -> tuple[float, float, float]:
    """(certified accuracy, abstain rate, wall seconds) over the test scenes."""
    import numpy as np
    import torch

    from samplers import GaussianL2
    from smoothing import SegCertify
    from smoothing.metrics import abstain_rate, certified_accuracy

    seg = SegCertify(model, GaussianL2(sigma), num_classes=8, n0=args.n0, n=args.n,
                     tau=args.tau, alpha=args.alpha, batch_size=args.cert_batch)
    t0 = time.perf_counter()
    preds, targets = [], []
    for i, (x, y) in enumerate(data):
        cert = seg.certify(x, generator=torch.Generator().manual_seed(args.seed * 1000 + i))
        preds.append(cert.labels.numpy())
        targets.append(y.numpy().astype(np.int64))
    return (certified_accuracy(preds, targets), abstain_rate(preds, targets),
            time.perf_counter() - t0)


def fine_tune(method: str, sigma: float, train: Any, val: Any, args: argparse.Namespace
              ) -> tuple[Any, dict]:
    """The clean model fine-tuned by ``method`` at ``sigma``; (model, timing info)."""
    from samplers import GaussianL2
    from smoothing.models import load_model
    from smoothing.train import train_for_smoothing

    model = load_model("streets-unet-clean")
    consistency = method == "consistency"
    batch = args.batch // 2 if consistency else args.batch
    epochs = args.epochs if consistency else 2 * args.epochs  # same steps either way
    t0, c0 = time.perf_counter(), time.process_time()
    result = train_for_smoothing(
        model, train, GaussianL2(sigma), epochs=epochs, method=method, batch_size=batch,
        lr=args.lr, crop=(64, 64), hflip=True, val_dataset=val, seed=args.seed,
        device="cpu", progress=not args.no_progress,
        out=args.work / f"{method}-sigma{sigma:g}", resume=False, log=print)
    steps = result.metadata["train"]["steps"]
    return result.model, {"train_steps": steps, "train_forward_passes": steps * args.batch,
                          "train_wall_s": time.perf_counter() - t0,
                          "train_cpu_s": time.process_time() - c0}


def run(args: argparse.Namespace) -> list[dict]:
    import torch

    from samplers import GaussianL2
    from smoothing.datasets import SyntheticStreets
    from smoothing.models import load_model

    torch.set_num_threads(args.threads)
    h, w = 64, 128
    test = SyntheticStreets(args.num_images, split="test", seed=0, height=h, width=w)
    data = [(test[i][0], test[i][1]) for i in range(len(test))]
    train = SyntheticStreets(args.n_train, split="train", seed=args.seed, height=h, width=w)
    val = SyntheticStreets(args.n_val, split="val", seed=args.seed, height=h, width=w)
    rows = []
    for sigma in args.sigmas:
        for method in ("clean", "noise", "consistency"):
            if method == "clean":
                model, timing = load_model("streets-unet-clean"), {
                    "train_steps": 0, "train_forward_passes": 0, "train_wall_s": 0.0,
                    "train_cpu_s": 0.0}
            else:
                model, timing = fine_tune(method, sigma, train, val, args)
            acc, abstain, seconds = certify_all(model, data, sigma, args)
            row = {"model": "streets-unet-clean" + ("" if method == "clean" else
                                                    f" + {method} fine-tuning"),
                   "method": method, "sigma": sigma,
                   "radius": GaussianL2(sigma).radius(args.tau), "certified_accuracy": acc,
                   "abstain": abstain,
                   "base_accuracy_noisy": base_accuracy_noisy(model, data, sigma, args.seed),
                   "num_images": len(data), "n0": args.n0, "n": args.n, "tau": args.tau,
                   "alpha": args.alpha, **timing, "certify_wall_s": seconds,
                   "seed": args.seed}
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
                  flush=True)
            rows.append(row)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                             for k, v in row.items()})


def plot(csv_path: Path, png: Path) -> None:
    """Grouped bars: certified accuracy per sigma, clean / noise / consistency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    sigmas = sorted({float(r["sigma"]) for r in rows})
    methods = ("clean", "noise", "consistency")
    labels = {"clean": "clean-trained", "noise": "+ noise fine-tuning",
              "consistency": "+ consistency fine-tuning"}
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.26
    for k, method in enumerate(methods):
        values = [next((100 * float(r["certified_accuracy"]) for r in rows
                        if r["method"] == method and float(r["sigma"]) == s), 0.0)
                  for s in sigmas]
        bars = ax.bar([i + (k - 1) * width for i in range(len(sigmas))], values, width,
                      label=labels[method])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    first = rows[0]
    ax.set_xticks(range(len(sigmas)), [f"σ = {s:g}" for s in sigmas])
    ax.set_ylabel("certified accuracy (%)")
    ax.set_ylim(0, 118)
    ax.set_title(f"streets-unet-clean, SEGCERTIFY n = {first['n']}, τ = {first['tau']}, "
                 f"{first['num_images']} test scenes", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=Path("results/training_streets.csv"))
    parser.add_argument("--png", type=Path, default=Path("results/training_streets.png"))
    parser.add_argument("--work", type=Path, default=Path("results/training_runs"),
                        help="folder of the fine-tuning runs (checkpoints)")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[0.25, 0.5])
    parser.add_argument("--n-train", type=int, default=200, help="training scenes")
    parser.add_argument("--n-val", type=int, default=8, help="validation scenes")
    parser.add_argument("--epochs", type=int, default=1,
                        help="consistency epochs (noise runs twice as many at twice the "
                             "batch of inputs: the same steps and forward passes)")
    parser.add_argument("--batch", type=int, default=8,
                        help="forward passes per step (noise: inputs; consistency: 2 x half)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-images", type=int, default=12, help="test scenes certified")
    parser.add_argument("--n0", type=int, default=10)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--tau", type=float, default=0.75)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--cert-batch", type=int, default=55)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the CSV")
    args = parser.parse_args(argv)
    if not args.plot_only:
        write_csv(run(args), args.csv)
        print(f"wrote {args.csv}")
    plot(args.csv, args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
