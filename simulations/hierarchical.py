"""Hierarchical vs flat certification on the built-in parts and streets (issue 22).

For every input and noise seed, ONE hierarchical sampling (``n0`` guesses, ``n``
counts of every node on the guessed path) is made with
:class:`smoothing.HierarchicalSegCertify`; the rules below are decided from the
same counts (common random numbers):

* ``flat-holm`` -- SEGCERTIFY with Holm: the fine level of ``nested-holm`` (the
  labels of the flat certificate, bit for bit);
* ``ahc-holm`` -- the level choice of Anani et al. (ICML 2024) from counts: the
  fine class where all ``n0`` guesses agree, its coarse class otherwise, one Holm
  test over the components;
* ``nested-bonferroni`` -- every node on the guessed path at ``alpha / N``, the
  finest rejected one reported;
* ``nested-holm`` -- Holm on the fine level, every coarser node at Holm's final
  critical value ``alpha / (N - R)`` (:func:`multitest.certify_nested_counts`);
* ``nested-holm-topdown`` -- ``nested-holm`` on the path guessed top-down (the most
  frequent coarse class first); a second sampling with the same noise.

Settings (the issue's): sigma 0.25, n0 10, n 100, tau 0.75, alpha 0.001; parts:
the first 8 test objects of ``SyntheticParts`` (2048 points, xyz), model
``parts-pointnet-sigma0.25``, hierarchy ``parts`` (part -> object); streets: the first
10 test scenes of ``SyntheticStreets`` (64 x 128), model ``streets-unet-sigma0.25``,
hierarchy ``streets`` (the 7 Cityscapes categories).

Outputs (``--out``, default ``docs/results``; ``--figures``, default
``docs/figures``): ``hierarchical.csv`` (one row per dataset, rule and seed, plus
the mean over the seeds, ``seed = 'mean'``), ``hierarchical_table.md``,
``hierarchical_examples.npz`` and ``hierarchical.png`` (drawn from the CSV and the
npz; ``--plot-only`` redraws it). ``--quick``: one 256-point object and one 16 x 32
scene, n0 6, n 40, one seed (seconds; used by the tests).

Usage::

    python -m simulations.hierarchical          # ~20 min on 2 busy CPU cores
    python -m simulations.hierarchical --quick --out /tmp/h --figures /tmp/h
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RULES = ("flat-holm", "ahc-holm", "nested-bonferroni", "nested-holm", "nested-holm-topdown")
LABELS = {
    "flat-holm": "flat (Holm)",
    "ahc-holm": "AHC-style (Holm)",
    "nested-bonferroni": "nested Bonferroni",
    "nested-holm": "nested Holm (step-down)",
    "nested-holm-topdown": "nested Holm, top-down guess",
}
SHORT = {"flat-holm": "flat", "ahc-holm": "AHC-style", "nested-bonferroni": "nested\nBonferroni",
         "nested-holm": "nested\nHolm", "nested-holm-topdown": "nested Holm\ntop-down"}
COLUMNS = ("dataset", "model", "hierarchy", "sigma", "n0", "n", "tau", "alpha", "rule",
           "seed", "inputs", "components", "abstain_pct", "certified_fine_pct",
           "certified_coarse_pct", "accuracy_fine_pct", "accuracy_coarse_pct", "accuracy_pct",
           "cig", "cig_nats", "miou_fine", "miou_coarse", "flat_abstained_pct",
           "flat_abstained_groupable_pct", "flat_abstained_fine_share",
           "flat_abstained_coarse_share")


@dataclass(frozen=True)
class Settings:
    parts_objects: int = 8
    parts_points: int = 2048
    streets_images: int = 10
    streets_size: tuple[int, int] = (64, 128)
    seeds: tuple[int, ...] = (0, 1, 2)
    sigma: float = 0.25
    n0: int = 10
    n: int = 100
    tau: float = 0.75
    alpha: float = 0.001
    batch: int = 110

    @classmethod
    def quick(cls) -> Settings:
        return cls(parts_objects=1, parts_points=256, streets_images=1, streets_size=(16, 32),
                   seeds=(0,), n0=6, n=40, batch=46)


def noise_seed(seed: int, index: int) -> int:
    """The noise seed of input ``index`` under the run seed ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def studies(settings: Settings) -> list[dict[str, Any]]:
    """The two data sets: model, sampler, hierarchy and ``(input, target)`` pairs."""
    from samplers import GaussianL2
    from smoothing.datasets import STREET_PALETTE, SyntheticParts, SyntheticStreets
    from smoothing.figures import part_palette

    parts = SyntheticParts(settings.parts_objects, split="test", seed=0,
                           num_points=settings.parts_points, normals=False)
    h, w = settings.streets_size
    streets = SyntheticStreets(settings.streets_images, split="test", seed=0, height=h, width=w)
    return [
        {"dataset": "parts", "model": "parts-pointnet-sigma0.25", "hierarchy": "parts",
         "sampler": GaussianL2(settings.sigma, point_cloud=True), "palette": part_palette(50),
         "items": [(parts[i][0], parts[i][1].numpy()) for i in range(len(parts))]},
        {"dataset": "streets", "model": "streets-unet-sigma0.25", "hierarchy": "streets",
         "sampler": GaussianL2(settings.sigma), "palette": STREET_PALETTE,
         "items": [(streets[i][0], streets[i][1].numpy()) for i in range(len(streets))]},
    ]


def certify_all(study: dict[str, Any], settings: Settings,
                progress: bool) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Rows of one data set (per rule and seed) and the label maps of its first input."""
    import torch

    from smoothing import HierarchicalMetrics, HierarchicalSegCertify
    from smoothing.hierarchy import builtin_hierarchy
    from smoothing.models import load_model

    model = load_model(study["model"])
    hier = builtin_hierarchy(study["hierarchy"])
    common = dict(hierarchy=hier, n0=settings.n0, n=settings.n, tau=settings.tau,
                  alpha=settings.alpha, batch_size=settings.batch)
    sampler = study["sampler"]
    nested = HierarchicalSegCertify(model, sampler, **common)
    topdown = HierarchicalSegCertify(model, sampler, guess="top_down", **common)
    deciders = {
        "ahc-holm": HierarchicalSegCertify(model, sampler, rule="adaptive", **common),
        "nested-bonferroni": HierarchicalSegCertify(model, sampler, correction="bonferroni",
                                                    **common),
    }
    rows, examples = [], {}
    for seed in settings.seeds:
        metrics = {r: HierarchicalMetrics(hier) for r in RULES}
        diag = np.zeros(4)  # flat-abstained: count, groupable, fine share, coarse share
        for index, (x, y) in enumerate(study["items"]):
            noise = noise_seed(seed, index)
            cert = nested.certify(x, generator=torch.Generator().manual_seed(noise))
            nodes = {
                "flat-holm": cert.labels, "nested-holm": cert.nodes,
                **{r: d.retest(cert).nodes for r, d in deciders.items()},
                "nested-holm-topdown": topdown.certify(
                    x, generator=torch.Generator().manual_seed(noise)).nodes,
            }
            for rule, v in nodes.items():
                metrics[rule].update(v, y)
            abst = (cert.labels == -1).numpy()
            c = cert.counts.numpy()[abst] / settings.n
            grouped = hier.leaf_counts[cert.paths.numpy()[abst]].max(axis=-1) > 1
            diag += [abst.sum(), grouped.sum(), c[..., 0].sum(), c[..., -1].sum()]
            if progress:
                print(f"{study['dataset']} seed {seed} input {index}: "
                      f"{cert.certified_fraction:.3f} certified, "
                      f"{cert.time_sampling:.1f} s sampling", flush=True)
            if seed == settings.seeds[0] and index == 0:
                examples = {f"{study['dataset']}_{r}": v.numpy() for r, v in nodes.items()}
                examples[f"{study['dataset']}_target"] = y
                examples[f"{study['dataset']}_input"] = x.numpy()
        for rule in RULES:
            rows.append(_row(study, settings, rule, seed, metrics[rule], diag))
    return rows, examples


def _row(study, settings, rule, seed, m, diag) -> dict[str, Any]:
    cert, acc = m.certified_fraction(), m.certified_accuracy()
    flat_abst = max(1.0, diag[0])
    return {
        "dataset": study["dataset"], "model": study["model"], "hierarchy": study["hierarchy"],
        "sigma": settings.sigma, "n0": settings.n0, "n": settings.n, "tau": settings.tau,
        "alpha": settings.alpha, "rule": rule, "seed": seed, "inputs": m.num_inputs,
        "components": m.num_components, "abstain_pct": 100 * m.abstain_rate,
        "certified_fine_pct": 100 * cert[0], "certified_coarse_pct": 100 * cert[1:].sum(),
        "accuracy_fine_pct": 100 * acc[0], "accuracy_coarse_pct": 100 * acc[1:].sum(),
        "accuracy_pct": 100 * m.accuracy, "cig": m.cig, "cig_nats": m.cig_nats,
        "miou_fine": m.miou(0, per_image=True),
        "miou_coarse": m.miou(m.hierarchy.num_levels - 1, per_image=True),
        "flat_abstained_pct": 100 * diag[0] / max(1, m.num_components),
        "flat_abstained_groupable_pct": 100 * diag[1] / flat_abst,
        "flat_abstained_fine_share": diag[2] / flat_abst,
        "flat_abstained_coarse_share": diag[3] / flat_abst,
    }


def with_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` plus, per (dataset, rule), the mean over the seeds (``seed='mean'``)."""
    out = list(rows)
    keys = dict.fromkeys((r["dataset"], r["rule"]) for r in rows)
    for dataset, rule in keys:
        group = [r for r in rows if (r["dataset"], r["rule"]) == (dataset, rule)]
        mean = dict(group[0], seed="mean", inputs=sum(r["inputs"] for r in group),
                    components=sum(r["components"] for r in group))
        for col in COLUMNS[COLUMNS.index("abstain_pct"):]:
            mean[col] = float(np.mean([r[col] for r in group]))
        out.append(mean)
    return out


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def markdown(rows: Sequence[dict[str, str]]) -> str:
    """The table of the means over the seeds, one row per (dataset, rule)."""
    head = ("| data | rule | fine certified | coarse certified | abstain | fine correct | "
            "coarse correct | CIG | mIoU fine | mIoU coarse |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        if r["seed"] != "mean":
            continue
        f = {k: float(v) for k, v in r.items() if k.endswith(("_pct", "cig", "_fine",
                                                               "_coarse"))}
        lines.append(
            f"| {r['dataset']} | {LABELS[r['rule']]} | {f['certified_fine_pct']:.1f} % | "
            f"{f['certified_coarse_pct']:.1f} % | {f['abstain_pct']:.2f} % | "
            f"{f['accuracy_fine_pct']:.1f} % | {f['accuracy_coarse_pct']:.1f} % | "
            f"{f['cig']:.3f} | {f['miou_fine']:.3f} | {f['miou_coarse']:.3f} |")
    return head + "\n".join(lines) + "\n"


def plot(rows: Sequence[dict[str, str]], examples: dict[str, np.ndarray], out: Path) -> None:
    """Label maps of one scene and one object per rule (coarse nodes lighter, abstain
    black), and the stacked fine/coarse/abstain shares of every rule."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from smoothing.datasets import STREET_PALETTE
    from smoothing.figures import colorize, node_palette, part_palette
    from smoothing.hierarchy import builtin_hierarchy

    shown = ("target", "flat-holm", "ahc-holm", "nested-holm")
    datasets = [d for d in ("streets", "parts") if f"{d}_target" in examples]
    fig = Figure(figsize=(3.0 * len(shown), 2.3 * len(datasets) + 2.6))
    grid = fig.add_gridspec(len(datasets) + 1, len(shown), height_ratios=[1] * len(datasets)
                            + [1.15])
    black = (0, 0, 0)
    for row, dataset in enumerate(datasets):
        hier = builtin_hierarchy(dataset)
        pal = node_palette(hier, STREET_PALETTE if dataset == "streets" else part_palette(50))
        for col, key in enumerate(shown):
            ax = fig.add_subplot(grid[row, col])
            labels = examples[f"{dataset}_{key}"]
            rgb = colorize(labels, pal, abstain_color=black) / 255.0
            if dataset == "streets":
                ax.imshow(rgb, interpolation="nearest")
            else:
                pts = examples[f"{dataset}_input"]
                order = np.argsort(pts[:, 2])
                ax.scatter(pts[order, 0], pts[order, 1], c=rgb[order], s=2, linewidths=0)
                ax.set_aspect("equal")
            title = "ground truth" if key == "target" else LABELS[key]
            if key != "target":
                lv = np.where(labels >= 0, hier.levels[np.maximum(labels, 0)], -1)
                title += (f"\nfine {np.mean(lv == 0):.0%}, coarse {np.mean(lv > 0):.0%}, "
                          f"abstain {np.mean(lv < 0):.1%}")
            ax.set_title(f"{dataset}: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    ax = fig.add_subplot(grid[len(datasets), :])
    means = [r for r in rows if r["seed"] == "mean"]
    xs, ticks = [], []
    for i, r in enumerate(means):
        x = i + means.index(r) // len(RULES) * 0.6  # a gap between the data sets
        fine, coarse = float(r["certified_fine_pct"]), float(r["certified_coarse_pct"])
        ax.bar(x, fine, color="#3b6ea5")
        ax.bar(x, coarse, bottom=fine, color="#a9c4e2")
        ax.bar(x, float(r["abstain_pct"]), bottom=fine + coarse, color="#222222")
        ax.text(x, 101, f"CIG {float(r['cig']):.3f}", ha="center", fontsize=6.5)
        xs.append(x)
        ticks.append(f"{r['dataset']}\n{SHORT[r['rule']]}")
    ax.set_xticks(xs, ticks, fontsize=6.5)
    ax.set_ylim(0, 108)
    ax.set_ylabel("% of components")
    ax.legend(handles=[Patch(color="#3b6ea5", label="fine certified"),
                       Patch(color="#a9c4e2", label="coarse certified"),
                       Patch(color="#222222", label="abstain")], fontsize=7,
              loc="lower right")
    fig.suptitle(f"Hierarchical certification (mean over seeds; sigma {means[0]['sigma']}, "
                 f"n0 {means[0]['n0']}, n {means[0]['n']}, tau {means[0]['tau']}, alpha "
                 f"{means[0]['alpha']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    if args.seeds:
        settings = Settings(**{**settings.__dict__, "seeds": tuple(args.seeds)})
    args.out.mkdir(parents=True, exist_ok=True)
    args.figures.mkdir(parents=True, exist_ok=True)
    csv_path, npz = args.out / "hierarchical.csv", args.out / "hierarchical_examples.npz"
    if not args.plot_only:
        import torch

        torch.set_num_threads(args.threads)
        rows, examples = [], {}
        for study in studies(settings):
            r, e = certify_all(study, settings, args.progress)
            rows += r
            examples.update(e)
        write_csv(with_means(rows), csv_path)
        np.savez_compressed(npz, **examples)
    table = read_csv(csv_path)
    (args.out / "hierarchical_table.md").write_text(markdown(table))
    with np.load(npz) as data:
        plot(table, dict(data), args.figures / "hierarchical.png")
    print(markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
