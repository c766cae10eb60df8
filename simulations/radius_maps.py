"""Radius maps vs the fixed-tau grid: built-in streets and the real selfie network.

For every input and every ``n``, ONE SEGCERTIFY sampling (``n0`` guesses, ``n``
counts) is made. From its counts:

* ``map-bonferroni`` -- per-component radius map, Clopper-Pearson at alpha / N;
* ``map-ladder`` -- radius map by Holm over the default ladder
  (:func:`multitest.ladder_levels`, 8 levels);
* ``map-ladder-grid`` -- radius map by Holm over the ladder of the grid's taus;
* ``grid-holm`` -- today's fixed-tau grid: one Holm certificate at ``alpha`` per
  ``tau`` (each valid on its own, NOT simultaneously; in practice one sampling per
  ``tau``: here the taus share the counts, which has the same distribution per
  tau), the certified accuracy at radius r being the best ``tau`` with
  ``radius(tau) >= r``;
* ``grid-holm-alpha/L`` -- the same grid at ``alpha / L`` per ``tau``: valid
  simultaneously, the same family budget as one map at ``alpha``.

Ground truth: the data set's labels for the streets (255 ignored), the network's
clean prediction for the selfie network (certified accuracy = certified agreement).

Outputs (``--out``, default ``docs/results``; figures in ``--figures``, default
``docs/figures``): ``radius_maps_curve.csv`` (certified accuracy vs radius, one row
per (dataset, n, method, radius)), ``radius_maps_table.csv/.md`` (one row per
(dataset, n, method)), ``radius_maps_examples.npz`` and the figures
``radius_maps_curve.png`` and ``radius_maps_example.png`` (drawn from those files;
``--plot-only`` redraws them). ``--quick``: one small street scene, n = 50, no selfie
network (seconds; used by the tests).

Usage::

    python -m simulations.radius_maps            # ~5 min on 2 CPU cores
    python -m simulations.radius_maps --quick --out /tmp/rm --figures /tmp/rm
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulations._streets_selfie import Settings, load_studies, write_csv

GRID_TAUS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
METHODS = ("map-bonferroni", "map-ladder", "map-ladder-grid", "grid-holm",
           "grid-holm-alpha/L")
CURVE_COLUMNS = ("dataset", "model", "sigma", "n", "n0", "alpha", "method", "samplings",
                 "simultaneous", "radius", "certified_accuracy")
TABLE_COLUMNS = ("dataset", "model", "sigma", "n", "n0", "alpha", "inputs", "components",
                 "method", "samplings", "simultaneous", "certified", "certified_accuracy",
                 "mean_certified_radius", "median_certified_radius", "seed")


def _per_input(seg: Any, cert: Any, target: np.ndarray, alpha: float) -> dict[str, Any]:
    """Per-component radii/correctness of every method from one certificate."""
    import multitest

    n = cert.params["n"]
    N = cert.counts.numel()
    valid = target != 255
    out: dict[str, Any] = {}
    grid_levels = np.array(GRID_TAUS)
    for method, kw in (("map-bonferroni", {"method": "bonferroni"}),
                       ("map-ladder", {"method": "ladder"}),
                       ("map-ladder-grid", {"method": "ladder", "levels": grid_levels})):
        rmap = seg.radius_map(cert, alpha=alpha, **kw)
        correct = (rmap.labels.numpy() == target) & valid
        out[method] = {"radius": rmap.radius.numpy()[valid], "correct": correct[valid]}
    for method, a in (("grid-holm", alpha), ("grid-holm-alpha/L", alpha / len(GRID_TAUS))):
        counts = cert.counts.numpy()
        acc, cert_any, best = [], [], np.zeros(N)
        for tau in GRID_TAUS:
            rej = multitest.certify_counts(counts, n, tau, a, method="holm").reject
            ok = rej & (cert.guesses.numpy() == target) & valid
            acc.append(ok[valid])
            cert_any.append(rej[valid])
            best = np.where(ok.reshape(-1), seg.sampler.radius(tau), best)
        out[method] = {"per_tau": acc, "certified": cert_any,
                       "best": best.reshape(target.shape)[valid]}
    return out


def _summarise(dataset: str, model: str, sigma: float, n: int, s: Settings, seed: int,
               per_inputs: list[dict[str, Any]], radius_of_tau: Any, rgrid: np.ndarray
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from smoothing.figures import certified_accuracy_at_radius

    curve, table = [], []
    base = {"dataset": dataset, "model": model, "sigma": sigma, "n": n, "n0": s.n0,
            "alpha": s.alpha}
    for method in METHODS:
        samplings = len(GRID_TAUS) if method == "grid-holm" else 1
        simultaneous = method != "grid-holm"
        if method.startswith("map"):
            radius = np.concatenate([p[method]["radius"] for p in per_inputs])
            correct = np.concatenate([p[method]["correct"] for p in per_inputs])
            acc_r = [(correct & (radius >= r)).mean() if r > 0 else
                     (correct & (radius > 0)).mean() for r in rgrid]
            certified_radius = np.where(correct, radius, 0.0)
            certified = float((radius > 0).mean())
        else:
            per_tau = [np.concatenate([p[method]["per_tau"][k] for p in per_inputs])
                       for k in range(len(GRID_TAUS))]
            accs = [float(a.mean()) for a in per_tau]
            radii = [radius_of_tau(t) for t in GRID_TAUS]
            acc_r = certified_accuracy_at_radius(radii, accs, np.maximum(rgrid, 1e-12))
            certified_radius = np.concatenate([p[method]["best"] for p in per_inputs])
            certified = max(float(np.concatenate([p[method]["certified"][k]
                                                  for p in per_inputs]).mean())
                            for k in range(len(GRID_TAUS)))
        for r, a in zip(rgrid, acc_r, strict=True):
            curve.append({**base, "method": method, "samplings": samplings,
                          "simultaneous": simultaneous, "radius": float(r),
                          "certified_accuracy": float(a)})
        pos = certified_radius[certified_radius > 0]
        table.append({**base, "inputs": len(per_inputs), "components": certified_radius.size,
                      "method": method, "samplings": samplings, "simultaneous": simultaneous,
                      "certified": certified,
                      "certified_accuracy": float(acc_r[0]),
                      "mean_certified_radius": float(certified_radius.mean()),
                      "median_certified_radius": float(np.median(pos)) if pos.size else 0.0,
                      "seed": seed})
    return curve, table


def _run_dataset(dataset: str, model: Any, model_name: str, sigma: float,
                 inputs: list[tuple[Any, np.ndarray]], s: Settings, seed: int,
                 examples: dict[str, np.ndarray]) -> tuple[list, list]:
    import torch

    from samplers import GaussianL2
    from smoothing import SegCertify

    sampler = GaussianL2(sigma)
    rgrid = np.linspace(0.0, sampler.radius(0.995), 201)
    curve, table = [], []
    for n in s.ns:
        seg = SegCertify(model, sampler, num_classes=2 if dataset == "selfie" else 8,
                         n0=s.n0, n=n, tau=GRID_TAUS[0], alpha=s.alpha, correction="holm",
                         batch_size=s.batch)
        per_inputs = []
        for i, (x, target) in enumerate(inputs):
            g = torch.Generator().manual_seed(int(np.random.SeedSequence(
                [seed, i, n, len(dataset)]).generate_state(1)[0]))
            cert = seg.certify(x, generator=g)
            per_inputs.append(_per_input(seg, cert, target, s.alpha))
            if i == 0 and n == max(s.ns):
                examples[f"{dataset}_image"] = x.numpy()
                examples[f"{dataset}_radius"] = seg.radius_map(cert).radius.numpy()
                examples[f"{dataset}_radius_ladder"] = seg.radius_map(
                    cert, method="ladder").radius.numpy()
        c, t = _summarise(dataset, model_name, sigma, n, s, seed, per_inputs,
                          sampler.radius, rgrid)
        curve += c
        table += t
    return curve, table


def _write_markdown(rows: list[dict[str, str]], path: Path) -> None:
    """The table of the docs (from the CSV rows; timings left out: see benchmarks/)."""
    cols = ("dataset", "sigma", "n", "method", "samplings", "simultaneous", "certified",
            "certified_accuracy", "mean_certified_radius", "median_certified_radius")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(
            f"{float(r[c]):.4f}" if "." in r[c] and c != "sigma" else r[c] for c in cols)
            + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(out: Path, figures: Path) -> list[Path]:
    """Draw the curve and example figures from the CSV and npz in ``out``."""
    from smoothing.figures import _as_rgb_image, _new_figure, _save, read_rows

    _write_markdown(read_rows(out / "radius_maps_table.csv"), out / "radius_maps_table.md")
    rows = read_rows(out / "radius_maps_curve.csv")
    groups = sorted({(r["dataset"], int(r["n"])) for r in rows},
                    key=lambda g: (g[0] != "streets", g))
    fig = _new_figure((4.2 * len(groups), 3.4))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    styles = {"map-bonferroni": ("C0", "-"), "map-ladder": ("C1", "-"),
              "map-ladder-grid": ("C2", "-"), "grid-holm": ("C3", "--"),
              "grid-holm-alpha/L": ("C4", ":")}
    for ax, (ds, n) in zip(axes, groups, strict=True):
        for method, (color, ls) in styles.items():
            sel = [r for r in rows if r["dataset"] == ds and int(r["n"]) == n
                   and r["method"] == method]
            label = method + (" (L samplings, not simultaneous)" if method == "grid-holm"
                              else "")
            ax.plot([float(r["radius"]) for r in sel],
                    [float(r["certified_accuracy"]) for r in sel],
                    color=color, ls=ls, label=label, lw=1.4)
        reach = [float(r["radius"]) for r in rows if r["dataset"] == ds
                 and int(r["n"]) == n and float(r["certified_accuracy"]) > 0]
        ax.set_xlim(0, 1.15 * max(reach, default=1.0))
        ax.set_title(f"{ds}, n = {n}", fontsize=9)
        ax.set_xlabel("l2 radius", fontsize=8)
        ax.set_ylabel("certified accuracy", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    paths = [figures / "radius_maps_curve.png"]
    _save(fig, paths[0], 110)
    with np.load(out / "radius_maps_examples.npz") as z:
        names = sorted({k.rsplit("_image", 1)[0] for k in z.files if k.endswith("_image")})
        fig = _new_figure((9.6, 3.0 * len(names)))
        axes = fig.subplots(len(names), 3, squeeze=False)
        for row, ds in zip(axes, names, strict=True):
            img = _as_rgb_image(z[f"{ds}_image"])
            row[0].imshow(img, interpolation="nearest")
            row[0].set_title(f"{ds}: input", fontsize=9)
            top = float(max(z[f"{ds}_radius"].max(), z[f"{ds}_radius_ladder"].max(), 1e-12))
            for ax, key, name in ((row[1], "radius", "Bonferroni map"),
                                  (row[2], "radius_ladder", "ladder map")):
                from matplotlib import colormaps

                r = z[f"{ds}_{key}"]
                im = ax.imshow(np.ma.masked_where(r <= 0, r),
                               cmap=colormaps["viridis"].with_extremes(bad="white"),
                               vmin=0, vmax=top, interpolation="nearest")
                ax.set_title(f"{name} (white: abstain)", fontsize=9)
            fig.colorbar(im, ax=row[2], fraction=0.046, pad=0.04, label="l2 radius")
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
        fig.tight_layout()
        paths.append(figures / "radius_maps_example.png")
        _save(fig, paths[1], 110)
    return paths


def run(settings: Settings, *, out: Path, figures: Path, seed: int, cache: str | None,
        threads: int) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    curve, table, examples = [], [], {}
    for st in load_studies(settings, cache=cache, threads=threads):
        c, t = _run_dataset(st.dataset, st.model, st.model_name, st.sigma, st.inputs,
                            settings, seed, examples)
        curve += c
        table += t
    write_csv(curve, CURVE_COLUMNS, out / "radius_maps_curve.csv")
    write_csv(table, TABLE_COLUMNS, out / "radius_maps_table.csv")
    np.savez_compressed(out / "radius_maps_examples.npz", **examples)
    plot(out, figures)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument("--quick", action="store_true", help="one small scene, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", help="asset cache of smoothing.real (default: ~/.cache)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figures from the CSV and npz in --out")
    args = parser.parse_args(argv)
    if args.plot_only:
        for p in plot(args.out, args.figures):
            print(p)
        return 0
    settings = Settings.quick() if args.quick else Settings()
    table = run(settings, out=args.out, figures=args.figures, seed=args.seed,
                cache=args.cache, threads=args.threads)
    print((args.out / "radius_maps_table.md").read_text(), end="")
    return 0 if table else 1


if __name__ == "__main__":
    raise SystemExit(main())
