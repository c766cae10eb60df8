"""What training for smoothing buys: clean-trained U-Nets before and after fine-tuning.

A clean-trained (non-robust) U-Net is fine-tuned under Gaussian noise at sigma = 0.25
and at 0.5 with :func:`smoothing.train.train_for_smoothing`, once with plain noise
augmentation (``method='noise'``, Cohen et al.) and once with consistency
regularization (``method='consistency'``, Jeong & Shin, m = 2, lambda = 10, eta = 0.5),
at the **same budget**: the same number of optimiser steps, each with the same number
of forward passes (noise: ``batch`` inputs x 1 copy; consistency: ``batch / 2`` inputs
x 2 copies), the same seed and the same training data. Every model is then certified
with SEGCERTIFY on the same held-out data at its sigma. Two data sets (``--dataset``):

``streets`` (default)
    The shipped ``streets-unet-clean`` (trained without noise), fine-tuned on 200
    ``SyntheticStreets`` train scenes and certified on 12 test scenes (64 x 128).
``nuclei``
    The real stardist nuclei image (:mod:`smoothing.real.nuclei`; fetch it once with
    ``python -m smoothing.real fetch``), split by columns as in
    ``simulations/real_models.py``: the left half (512 x 256) for training, the right
    half held out. The clean model is trained here by the package's own nuclei
    training, :func:`smoothing.real.train_nuclei_model` with ``sigma = 0`` (its
    recipe with no noise); it is fine-tuned on 64 tiles of 96 x 96 of the left half
    (random 64 x 64 crops, flips) and certified on the whole held-out right half, one
    image of 131,072 pixels (one Holm family).

::

    nice python simulations/train_for_smoothing.py --csv docs/results/training_streets.csv \\
        --png docs/figures/training_streets.png
    nice python simulations/train_for_smoothing.py --dataset nuclei \\
        --csv docs/results/training_nuclei.csv --png docs/figures/training_nuclei.png
    python simulations/train_for_smoothing.py --dataset nuclei --quick --csv /tmp/q.csv \\
        --png /tmp/q.png --work /tmp/q             # smoke test, seconds

One row per (model, sigma) goes to the CSV (certified accuracy, abstention, the base
model's accuracy under noise, training wall and CPU seconds; for nuclei also the
certified nucleus IoU); the figure and the markdown table of ``docs/training.md``
(``--csv`` with the suffix ``.md``) are drawn from the CSV (``--plot-only`` redraws
them). ``--quick`` shrinks every budget (a smoke test, not a measurement). Exit
status 2 when the nuclei assets or their dependencies are missing.
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

COLUMNS = ("model", "method", "sigma", "radius", "certified_accuracy", "abstain",
           "base_accuracy_noisy", "num_images", "n0", "n", "tau", "alpha", "train_steps",
           "train_forward_passes", "train_wall_s", "train_cpu_s", "certify_wall_s", "seed")
NUCLEI_COLUMNS = (*COLUMNS[:6], "certified_iou", COLUMNS[6], "base_iou_clean",
                  "base_iou_noisy", *COLUMNS[7:])
METHODS = ("clean", "noise", "consistency")
# per data set: the defaults of every option left unset, and what --quick changes
DEFAULTS: dict[str, dict[str, Any]] = {
    "streets": {"n_train": 200, "n_val": 8, "epochs": 1, "batch": 8, "num_images": 12,
                "n0": 10, "n": 100},
    "nuclei": {"epochs": 12, "batch": 16, "n0": 10, "n": 100, "clean_steps": 600,
               "test_size": 0},
}
QUICK: dict[str, dict[str, Any]] = {
    "streets": {"n_train": 16, "n_val": 2, "epochs": 1, "num_images": 2, "n0": 4, "n": 60},
    "nuclei": {"epochs": 1, "n0": 4, "n": 60, "clean_steps": 10, "test_size": 64},
}
TILE, TILE_GRID, CROP = 96, (16, 4), (64, 64)  # nuclei fine-tuning tiles


def base_scores(model: Any, data: list, sigma: float, seed: int, num_classes: int
                ) -> dict[str, float]:
    """Pixel accuracy of the base model on one Gaussian-noisy copy of every test image;
    for 2 classes also its nucleus (class 1) IoU on the clean and the noisy images."""
    import torch

    from samplers import GaussianL2
    from smoothing.metrics import SegmentationMetrics

    gen = torch.Generator().manual_seed(seed)
    right = total = 0
    iou = {"clean": SegmentationMetrics(2, ignore_index=None),
           "noisy": SegmentationMetrics(2, ignore_index=None)}
    with torch.inference_mode():
        for x, y in data:
            pred = model(GaussianL2(sigma).perturb(x[None], generator=gen)).argmax(1)[0]
            keep = y != 255
            right += int(((pred == y) & keep).sum())
            total += int(keep.sum())
            if num_classes == 2:
                iou["noisy"].update(pred.numpy(), y.numpy())
                iou["clean"].update(model(x[None]).argmax(1)[0].numpy(), y.numpy())
    out = {"base_accuracy_noisy": right / total}
    if num_classes == 2:
        out |= {f"base_iou_{k}": float(m.iou_dataset()[1]) for k, m in iou.items()}
    return out


def certify_all(model: Any, data: list, sigma: float, num_classes: int,
                args: argparse.Namespace) -> dict[str, float]:
    """Certified accuracy, abstain rate, wall seconds; for 2 classes the nucleus IoU."""
    import numpy as np
    import torch

    from samplers import GaussianL2
    from smoothing import SegCertify
    from smoothing.metrics import SegmentationMetrics, abstain_rate, certified_accuracy

    seg = SegCertify(model, GaussianL2(sigma), num_classes=num_classes, n0=args.n0, n=args.n,
                     tau=args.tau, alpha=args.alpha, batch_size=args.cert_batch)
    t0 = time.perf_counter()
    preds, targets = [], []
    for i, (x, y) in enumerate(data):
        cert = seg.certify(x, generator=torch.Generator().manual_seed(args.seed * 1000 + i))
        preds.append(cert.labels.numpy())
        targets.append(y.numpy().astype(np.int64))
    seconds = time.perf_counter() - t0
    out = {"certified_accuracy": certified_accuracy(preds, targets),
           "abstain": abstain_rate(preds, targets), "certify_wall_s": seconds}
    if num_classes == 2:  # nucleus IoU, pooled; an abstained nucleus pixel is missed
        fg = SegmentationMetrics(2, ignore_index=None)
        for p, t in zip(preds, targets, strict=True):
            fg.update(p, t)
        out["certified_iou"] = float(fg.iou_dataset()[1])
    return out


def fine_tune(model: Any, method: str, sigma: float, train: Any, val: Any,
              args: argparse.Namespace) -> tuple[Any, dict]:
    """``model`` (trained in place) fine-tuned by ``method`` at ``sigma``; (model, timing).

    ``val=None``: no validation (nothing is selected by it in any case).
    """
    from samplers import GaussianL2
    from smoothing.train import train_for_smoothing

    consistency = method == "consistency"
    batch = args.batch // 2 if consistency else args.batch
    epochs = args.epochs if consistency else 2 * args.epochs  # same steps either way
    t0, c0 = time.perf_counter(), time.process_time()
    result = train_for_smoothing(
        model, train, GaussianL2(sigma), epochs=epochs, method=method, batch_size=batch,
        lr=args.lr, crop=CROP, hflip=True, val_dataset=val,
        val_fraction=0.1 if val is not None else 0.0, seed=args.seed, device="cpu",
        progress=not args.no_progress, out=args.work / f"{method}-sigma{sigma:g}",
        resume=False, log=print)
    steps = result.metadata["train"]["steps"]
    return result.model, {"train_steps": steps, "train_forward_passes": steps * args.batch,
                          "train_wall_s": time.perf_counter() - t0,
                          "train_cpu_s": time.process_time() - c0}


def measure(label: str, clean: Any, clean_timing: dict, train: Any, val: Any, data: list,
            num_classes: int, args: argparse.Namespace) -> list[dict]:
    """Certify ``clean`` and its two fine-tunings at every sigma: one row each."""
    from samplers import GaussianL2

    rows = []
    for sigma in args.sigmas:
        for method in METHODS:
            if method == "clean":
                model, timing = clean, clean_timing
            else:
                model, timing = fine_tune(copy.deepcopy(clean), method, sigma, train, val,
                                          args)
            row = {"model": label + ("" if method == "clean" else f" + {method} fine-tuning"),
                   "method": method, "sigma": sigma,
                   "radius": GaussianL2(sigma).radius(args.tau),
                   **certify_all(model, data, sigma, num_classes, args),
                   **base_scores(model, data, sigma, args.seed, num_classes),
                   "num_images": len(data), "n0": args.n0, "n": args.n, "tau": args.tau,
                   "alpha": args.alpha, **timing, "seed": args.seed}
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
                  flush=True)
            rows.append(row)
    same = {(r["sigma"], r["train_steps"], r["train_forward_passes"]) for r in rows
            if r["method"] != "clean"}
    if len(same) != len(args.sigmas):  # the budgets must match: a bug otherwise
        raise RuntimeError(f"noise and consistency budgets differ: {sorted(same)}")
    return rows


def run_streets(args: argparse.Namespace) -> list[dict]:
    from smoothing.datasets import SyntheticStreets
    from smoothing.models import load_model

    h, w = 64, 128
    test = SyntheticStreets(args.num_images, split="test", seed=0, height=h, width=w)
    data = [(test[i][0], test[i][1]) for i in range(len(test))]
    train = SyntheticStreets(args.n_train, split="train", seed=args.seed, height=h, width=w)
    val = SyntheticStreets(args.n_val, split="val", seed=args.seed, height=h, width=w)
    none = {"train_steps": 0, "train_forward_passes": 0, "train_wall_s": 0.0,
            "train_cpu_s": 0.0}
    return measure("streets-unet-clean", load_model("streets-unet-clean"), none, train, val,
                   data, 8, args)


def grid_tiles(image: Any, target: Any, size: int, grid: tuple[int, int]) -> list:
    """``rows x cols`` tiles of ``size`` x ``size``, evenly spaced over the (H, W) arrays,
    corners included: a list of ((1, size, size) float32, (size, size) int64) tensors."""
    import numpy as np
    import torch

    h, w = image.shape
    if size > min(h, w):
        raise ValueError(f"tiles of {size} pixels do not fit an image of {h} x {w}.")
    ys = np.linspace(0, h - size, grid[0]).round().astype(int)
    xs = np.linspace(0, w - size, grid[1]).round().astype(int)
    return [(torch.from_numpy(np.ascontiguousarray(image[y:y + size, x:x + size],
                                                   dtype=np.float32))[None],
             torch.from_numpy(np.ascontiguousarray(target[y:y + size, x:x + size],
                                                   dtype=np.int64)))
            for y in ys for x in xs]


def run_nuclei(args: argparse.Namespace) -> list[dict]:
    import numpy as np
    import torch

    from simulations.real_models import nuclei_halves
    from smoothing.real import TrainConfig, train_nuclei_model

    train_x, train_y, test_x, test_y = nuclei_halves(args.cache)
    if args.test_size:  # --quick: a corner of the held-out half
        test_x, test_y = test_x[:args.test_size, :args.test_size], \
            test_y[:args.test_size, :args.test_size]
    data = [(torch.from_numpy(np.ascontiguousarray(test_x))[None],
             torch.from_numpy(np.ascontiguousarray(test_y, dtype=np.int64)))]
    train = grid_tiles(train_x, train_y, TILE, TILE_GRID)  # the left half only
    config = TrainConfig(sigma=0.0, steps=args.clean_steps, seed=args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    clean = train_nuclei_model(train_x, train_y, config, progress=not args.no_progress)
    timing = {"train_steps": config.steps,
              "train_forward_passes": config.steps * config.batch_size,
              "train_wall_s": time.perf_counter() - t0, "train_cpu_s": time.process_time() - c0}
    return measure("nuclei-unet-clean", clean, timing, train, None, data, 2, args)


def write_csv(rows: list[dict], path: Path, columns: Sequence[str] = COLUMNS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                             for k, v in row.items()})


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


LABELS = {"clean": "clean-trained", "noise": "+ noise fine-tuning",
          "consistency": "+ consistency fine-tuning"}


def markdown_table(rows: list[dict]) -> str:
    """The table of ``docs/training.md`` from the CSV rows: the best certified accuracy
    (and nucleus IoU) of every sigma in bold; "certified wrong" = 1 - certified - abstain."""
    iou = "certified_iou" in rows[0]
    head = ["σ (R)", "model", "certified accuracy", "gain", "abstain", "certified wrong",
            *(["certified nucleus IoU"] if iou else []), "base under noise",
            *(["base nucleus IoU: clean / under noise"] if iou else []), "training CPU time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    pct = "{:.1f} %".format

    def bold(text: str, on: bool) -> str:
        return f"**{text}**" if on else text

    for sigma in dict.fromkeys(r["sigma"] for r in rows):
        group = [r for r in rows if r["sigma"] == sigma]
        clean = float(next(r for r in group if r["method"] == "clean")["certified_accuracy"])
        best = max(float(r["certified_accuracy"]) for r in group)
        best_iou = max(float(r["certified_iou"]) for r in group) if iou else None
        for r in group:
            acc = float(r["certified_accuracy"])
            top = acc == best
            gain = "" if r["method"] == "clean" else bold(f"{100 * (acc - clean):+.1f} pp", top)
            wrong = 1.0 - acc - float(r["abstain"])
            cpu = "–" if int(r["train_steps"]) == 0 else f"{float(r['train_cpu_s']):.0f} s"
            cells = [f"{float(sigma):g} ({float(r['radius']):.3f})", LABELS[r["method"]],
                     bold(pct(100 * acc), top), gain, pct(100 * float(r["abstain"])),
                     pct(100 * wrong),
                     *([bold(f"{float(r['certified_iou']):.3f}",
                             float(r["certified_iou"]) == best_iou)] if iou else []),
                     pct(100 * float(r["base_accuracy_noisy"])),
                     *([f"{float(r['base_iou_clean']):.3f} / {float(r['base_iou_noisy']):.3f}"]
                       if iou else []), cpu]
            lines.append("|" + "|".join(f" {c} " if c else " " for c in cells) + "|")
    return "\n".join(lines) + "\n"


def plot(csv_path: Path, png: Path, title: Callable[[dict], str]) -> None:
    """Grouped bars per sigma, clean / noise / consistency: certified accuracy, and
    the certified nucleus IoU in a second panel where the CSV has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_csv(csv_path)
    sigmas = sorted({float(r["sigma"]) for r in rows})
    panels = [("certified_accuracy", "certified accuracy (%)")]
    if "certified_iou" in rows[0]:
        panels.append(("certified_iou", "certified nucleus IoU (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 3.6), squeeze=False)
    width = 0.26
    for ax, (column, ylabel) in zip(axes[0], panels, strict=True):
        for k, method in enumerate(METHODS):
            values = [next((100 * float(r[column]) for r in rows
                            if r["method"] == method and float(r["sigma"]) == s), 0.0)
                      for s in sigmas]
            bars = ax.bar([i + (k - 1) * width for i in range(len(sigmas))], values, width,
                          label=LABELS[method])
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(range(len(sigmas)), [f"σ = {s:g}" for s in sigmas])
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 118)
        ax.legend(fontsize=8, loc="upper center", ncol=3, frameon=False)
    if len(panels) == 1:
        axes[0, 0].set_title(title(rows[0]), fontsize=9)
    else:
        fig.suptitle(title(rows[0]), fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


TITLES: dict[str, Callable[[dict], str]] = {
    "streets": lambda r: (f"streets-unet-clean, SEGCERTIFY n = {r['n']}, τ = {r['tau']}, "
                          f"{r['num_images']} test scenes"),
    "nuclei": lambda r: (f"nuclei U-Net, clean-trained, SEGCERTIFY n = {r['n']}, "
                         f"τ = {r['tau']}, held-out right half of the image"),
}


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser
            ) -> argparse.Namespace:
    """Fill the options left unset from the data set's defaults (and ``--quick``)."""
    preset = {**DEFAULTS[args.dataset], **(QUICK[args.dataset] if args.quick else {})}
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    name = f"training_{args.dataset}" + ("_quick" if args.quick else "")
    args.csv = args.csv or Path("results") / f"{name}.csv"
    args.png = args.png or Path("results") / f"{name}.png"
    args.work = args.work or Path("results") / f"{name}_runs"
    if args.batch < 2 or args.batch % 2:
        parser.error(f"--batch must be an even number >= 2 (consistency halves it); "
                     f"got {args.batch}.")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=tuple(DEFAULTS), default="streets")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budgets and test data: a smoke test, not a measurement")
    parser.add_argument("--csv", type=Path, help="default results/training_DATASET.csv")
    parser.add_argument("--png", type=Path, help="default results/training_DATASET.png")
    parser.add_argument("--work", type=Path,
                        help="folder of the fine-tuning runs (checkpoints)")
    parser.add_argument("--cache", default=None, help="asset cache of the nuclei image")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[0.25, 0.5])
    parser.add_argument("--n-train", type=int,
                        help="training scenes (streets; nuclei: 64 tiles, fixed)")
    parser.add_argument("--n-val", type=int, help="validation scenes (streets)")
    parser.add_argument("--epochs", type=int,
                        help="consistency epochs (noise runs twice as many at twice the "
                             "batch of inputs: the same steps and forward passes); "
                             "streets 1, nuclei 12")
    parser.add_argument("--batch", type=int,
                        help="forward passes per step (noise: inputs; consistency: 2 x "
                             "half); streets 8, nuclei 16")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clean-steps", type=int,
                        help="nuclei: steps of the clean training (600)")
    parser.add_argument("--test-size", type=int,
                        help="nuclei: certify only this top-left square of the held-out "
                             "half (0: all of it)")
    parser.add_argument("--num-images", type=int, help="test scenes certified (streets)")
    parser.add_argument("--n0", type=int)
    parser.add_argument("--n", type=int)
    parser.add_argument("--tau", type=float, default=0.75)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--cert-batch", type=int, default=55)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the PNG and the .md table from the CSV")
    args = resolve(parser.parse_args(argv), parser)
    md = args.csv.with_suffix(".md")
    if not args.plot_only:
        if args.dataset == "nuclei":
            from simulations.real_models import _missing

            problem = _missing(["nuclei"], args.cache)
            if problem:
                print(f"error: {problem}", file=sys.stderr)
                return 2
        import torch

        torch.set_num_threads(args.threads)
        runner = run_nuclei if args.dataset == "nuclei" else run_streets
        write_csv(runner(args), args.csv,
                  NUCLEI_COLUMNS if args.dataset == "nuclei" else COLUMNS)
        print(f"wrote {args.csv}")
    elif not args.csv.is_file():
        print(f"error: {args.csv} does not exist; run without --plot-only first.",
              file=sys.stderr)
        return 2
    md.write_text(markdown_table(read_csv(args.csv)))
    plot(args.csv, args.png, TITLES[args.dataset])
    print(f"wrote {md} and {args.png}")
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script: this checkout's packages
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
