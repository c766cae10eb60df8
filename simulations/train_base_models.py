"""Train the built-in base models on the built-in synthetic data (CPU, seeded).

Image models (``SyntheticStreets``, 8 classes, ``SmallUNet``): one trained without
noise (the paper's "non-robust model") and two with Gaussian noise augmentation,
sigma = 0.25 and 0.5 (Cohen et al., 2019). Point-cloud models (``SyntheticParts``,
50 global part labels, ``PointNetSeg``): xyz and xyz + normals, sigma = 0.25 and
0.5, noise on the positions only (§6.3 of the paper).

Every model is saved with :func:`smoothing.models.save_checkpoint` (float16 weights,
metadata with the training recipe and the measured test accuracies), and the
accuracies go to a tidy CSV (one row per model and evaluation noise level)::

    python simulations/train_base_models.py --out smoothing/checkpoints \\
        --csv results/base_models.csv --seed 0

Accuracies are measured on the reloaded checkpoint (float16 weights), on the
``test`` split, which shares no scene or object with the ``train`` split.

Resuming: checkpoints are written atomically, and a model whose checkpoint in
``--out`` is finished (it holds its test accuracies) and was trained with the same
seed, epochs and training-set size is not trained again; its CSV rows come from
that checkpoint. ``--fresh`` retrains every model.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from smoothing.datasets import (
    NUM_SHAPENET_PARTS,
    STREET_CLASSES,
    SyntheticParts,
    SyntheticStreets,
    part_mask,
)
from smoothing.models import (
    BUILTIN_MODELS,
    CHECKPOINT_DIR,
    ModelSpec,
    build_model,
    load_checkpoint,
    save_checkpoint,
)

EVAL_SIGMAS = (0.0, 0.25, 0.5)

# Per-kind recipe: data sizes, architecture, optimisation.
RECIPES = {
    "image": {
        "n_train": 2000, "n_test": 200, "height": 64, "width": 128, "epochs": 6,
        "batch_size": 16, "lr": 3e-3, "weight_decay": 1e-4,
        "arch_kwargs": {"width": 16, "depth": 2},
    },
    "points": {
        "n_train": 1200, "n_test": 240, "num_points": 2048, "epochs": 10,
        "batch_size": 16, "lr": 3e-3, "weight_decay": 1e-4, "arch_kwargs": {"width": 24},
    },
}  # fmt: skip


def stack_images(n: int, split: str, seed: int, height: int, width: int):
    """All items of a ``SyntheticStreets`` split as two tensors (N, 3, H, W), (N, H, W)."""
    ds = SyntheticStreets(n, split=split, seed=seed, height=height, width=width)
    items = [ds[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def stack_clouds(n: int, split: str, seed: int, num_points: int):
    """All items of a ``SyntheticParts`` split: points (N, P, 6), labels (N, P), categories (N,)."""
    ds = SyntheticParts(n, split=split, seed=seed, num_points=num_points)
    items = [ds[i] for i in range(n)]
    return (
        torch.stack([p for p, _, _ in items]),
        torch.stack([y for _, y, _ in items]),
        torch.tensor([c for _, _, c in items]),
    )


def _noisy(x: torch.Tensor, sigma: float, gen: torch.Generator, *, points: bool) -> torch.Tensor:
    if sigma == 0:
        return x
    noise = sigma * torch.randn(x.shape, generator=gen)
    if points and x.shape[-1] == 6:
        noise[..., 3:] = 0  # perturb the positions, never the normals
    return x + noise


def train(spec: ModelSpec, data, *, seed: int, epochs: int, log) -> tuple[nn.Module, float]:
    """Train the model of ``spec`` on ``data`` with Gaussian noise augmentation."""
    kind = "image" if spec.input_layout == "image" else "points"
    recipe = RECIPES[kind]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    in_channels = {"image": 3, "points": 3, "points+normals": 6}[spec.input_layout]
    model = build_model(
        spec.arch, num_classes=spec.num_classes, in_channels=in_channels, **recipe["arch_kwargs"]
    )
    x_all, y_all = data[0], data[1]
    if spec.input_layout == "points":
        x_all = x_all[..., :3].contiguous()
    n, bs = len(x_all), recipe["batch_size"]
    steps = epochs * math.ceil(n / bs)
    opt = torch.optim.AdamW(
        model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            x, y = x_all[idx], y_all[idx]
            if kind == "image":  # random horizontal flips
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                y = torch.where(flip[:, None, None], y.flip(-1), y)
            x = _noisy(x, spec.sigma, gen, points=kind == "points")
            logits = model(x)
            if kind == "points":
                logits = logits.transpose(1, 2)  # (B, C, N) for cross_entropy
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            total += y.numel()
        log(
            f"  {spec.name} epoch {epoch + 1}/{epochs}: loss {loss_sum / n:.3f}, "
            f"train acc {correct / total:.3f}, {time.perf_counter() - start:.0f}s"
        )
    return model.eval(), time.perf_counter() - start


@torch.no_grad()
def evaluate(model: nn.Module, spec: ModelSpec, data, sigma: float, seed: int) -> dict[str, float]:
    """Accuracy (and mIoU / in-category accuracy) of the base model under N(0, sigma^2) noise."""
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = data[0], data[1]
    if spec.input_layout == "points":
        x_all = x_all[..., :3].contiguous()
    kind = "image" if spec.input_layout == "image" else "points"
    preds, preds_cat = [], []
    for i in range(0, len(x_all), 20):
        logits = model(_noisy(x_all[i : i + 20], sigma, gen, points=kind == "points"))
        if kind == "image":
            preds.append(logits.argmax(1))
        else:
            preds.append(logits.argmax(-1))
            masks = torch.from_numpy(np.stack([part_mask(int(c)) for c in data[2][i : i + 20]]))
            preds_cat.append(logits.masked_fill(~masks[:, None, :], -math.inf).argmax(-1))
    pred = torch.cat(preds)
    out = {"accuracy": float((pred == y_all).float().mean())}
    if kind == "image":
        ious = []
        for c in range(spec.num_classes):
            union = int(((pred == c) | (y_all == c)).sum())
            if union:
                ious.append(int(((pred == c) & (y_all == c)).sum()) / union)
        out["miou"] = float(np.mean(ious))
    else:
        out["accuracy_in_category"] = float((torch.cat(preds_cat) == y_all).float().mean())
    return out


def _finished(path: Path, spec: ModelSpec, seed: int, epochs: int, n_train: int) -> dict | None:
    """The metadata of a finished checkpoint trained with these settings, else None."""
    if not path.exists():
        return None
    try:
        meta = load_checkpoint(path, arch=spec.arch, num_classes=spec.num_classes).metadata
    except (OSError, RuntimeError, ValueError, TypeError):
        return None  # unreadable: train again
    train = meta.get("train", {})
    same = (train.get("seed"), train.get("epochs"), train.get("n_train")) == (seed, epochs,
                                                                               n_train)
    return meta if same and "test_accuracy" in meta else None


def _csv_row(name: str, spec: ModelSpec, eval_sigma: float, res: dict, *, n_test: int,
             epochs: int, seconds: float, seed: int) -> dict:
    """One row of the CSV: a model's test accuracies under one evaluation noise level."""
    return {
        "model": name, "arch": spec.arch, "train_sigma": spec.sigma, "eval_sigma": eval_sigma,
        "accuracy": res["accuracy"], "miou": res.get("miou", ""),
        "accuracy_in_category": res.get("accuracy_in_category", ""), "n_test": n_test,
        "epochs": epochs, "train_seconds": seconds, "seed": seed,
    }


def _rows_from_metadata(name: str, spec: ModelSpec, meta: dict, n_test: int) -> list[dict]:
    """The CSV rows of a finished model, from the accuracies stored in its checkpoint."""
    train = meta["train"]
    return [_csv_row(name, spec, float(key.removeprefix("sigma=")), res, n_test=n_test,
                     epochs=train["epochs"], seconds=train["seconds"], seed=train["seed"])
            for key, res in meta["test_accuracy"].items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--csv", type=Path, default=Path("results/base_models.csv"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
    parser.add_argument(
        "--models", nargs="+", default=list(BUILTIN_MODELS), choices=list(BUILTIN_MODELS)
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--n-train", type=int, default=None, help="override training-set sizes")
    parser.add_argument("--fresh", action="store_true",
                        help="retrain models whose finished checkpoint is already in --out")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, flush=True)

    data: dict[tuple[str, str], tuple] = {}

    def get_data(kind: str, split: str) -> tuple:
        if (kind, split) not in data:
            r = RECIPES[kind]
            n = r["n_test"] if split == "test" else (args.n_train or r["n_train"])
            t0 = time.perf_counter()
            if kind == "image":
                data[kind, split] = stack_images(n, split, args.seed, r["height"], r["width"])
            else:
                data[kind, split] = stack_clouds(n, split, args.seed, r["num_points"])
            log(f"generated {n} {kind} items ({split}) in {time.perf_counter() - t0:.1f}s")
        return data[kind, split]

    rows = []
    for name in args.models:
        spec = BUILTIN_MODELS[name]
        kind = "image" if spec.input_layout == "image" else "points"
        recipe = RECIPES[kind]
        epochs = args.epochs or recipe["epochs"]
        done = None if args.fresh else _finished(args.out / spec.checkpoint, spec, args.seed,
                                                 epochs, args.n_train or recipe["n_train"])
        if done is not None:
            log(f"{name}: finished checkpoint in {args.out}, not retrained")
            rows.extend(_rows_from_metadata(name, spec, done, recipe["n_test"]))
            continue
        log(f"training {name} ({spec.description})")
        model, seconds = train(
            spec, get_data(kind, "train"), seed=args.seed, epochs=epochs, log=log
        )
        meta = {
            "name": name,
            "sigma": spec.sigma,
            "input_layout": spec.input_layout,
            "dataset": spec.dataset,
            "classes": list(STREET_CLASSES) if kind == "image" else NUM_SHAPENET_PARTS,
            "train": {
                **{k: v for k, v in recipe.items() if k not in ("arch_kwargs", "epochs")},
                "seed": args.seed,
                "epochs": epochs,
                "n_train": len(get_data(kind, "train")[0]),
                "seconds": round(seconds, 1),
                "threads": args.threads,
                "torch": str(torch.__version__),
            },
        }
        path = save_checkpoint(model, args.out / spec.checkpoint, metadata=meta)
        reloaded = load_checkpoint(path, arch=spec.arch, num_classes=spec.num_classes)
        accuracy = {}
        for sigma in EVAL_SIGMAS:
            res = evaluate(reloaded, spec, get_data(kind, "test"), sigma, seed=args.seed + 1)
            accuracy[f"sigma={sigma}"] = {k: round(v, 4) for k, v in res.items()}
            rows.append(_csv_row(name, spec, sigma, res,
                                 n_test=len(get_data(kind, "test")[0]), epochs=epochs,
                                 seconds=round(seconds, 1), seed=args.seed))
            log(f"  test, noise sigma={sigma}: {res}")
        meta["test_accuracy"] = accuracy
        save_checkpoint(reloaded, path, metadata=meta)  # float16 -> float32 -> float16: exact
        log(f"saved {path} ({path.stat().st_size / 1e3:.0f} kB)")

    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
