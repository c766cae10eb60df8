"""Measured gains of the randomized test and of quantized smoothing on real counts.

Built-in street scenes (the shipped ``streets-unet-sigma0.25`` checkpoint) and the
real MediaPipe selfie network on the astronaut photo. Every input is quantized to
8 bits first (``round(255 x) / 255``; the quantized sampler requires it, and both
samplers then see the same input). For every (data, n), the noise is sampled ONCE
per sampler:

* ``GaussianL2(sigma)``: one SEGCERTIFY sampling (``n0`` guesses, ``n`` counts);
  its counts are tested twice at every ``tau``: with the conservative binomial
  p-value and with the exact randomized one (``randomized=True``, ``U`` from a
  numpy Generator seeded from ``--seed``) -- comparison (a), same counts;
* ``Quantized(GaussianL2(sigma), bits=8)`` (same sigma, the noise rounded to the
  8-bit grid: sound in floating point): its own sampling, tested the same two
  ways -- comparison (b) is GaussianL2 vs Quantized with the conservative test.

Holm at ``alpha = 0.001``; ``tau`` in {0.75, 0.9}. Ground truth: the data set's
labels for the streets (255 ignored), the network's clean prediction (on the 8-bit
image) for the selfie network (certified accuracy = certified agreement).

Outputs: ``certificates_real.csv`` and ``.md`` in ``--out`` (default
``docs/results``) and ``certificates_real.png`` in ``--figures`` (default
``docs/figures``); ``--plot-only`` redraws the figure and table from the CSV.
``--quick``: one small street scene, n = 50, no selfie network (seconds; tests).
The same seed gives the same CSV. Every run also writes ``certificates_radius.md``
(to ``--out``): the certified radius of GaussianL2, of the removed
``LatticeGaussian`` (its Rényi bound, :func:`renyi_lattice_radius`) and of
``Quantized`` at 8 and 16 bits, from the formulas alone.

Usage::

    python -m simulations.certificates_real          # a few minutes on 2 CPU cores
    python -m simulations.certificates_real --quick --out /tmp/cr --figures /tmp/cr
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulations._streets_selfie import Settings, load_studies, write_csv

TAUS = (0.75, 0.9)
SAMPLERS = ("GaussianL2", "Quantized")
#: The radius table's noise levels and thresholds.
RADIUS_SIGMAS = (0.12, 0.25, 0.5)
RADIUS_TAUS = (0.75, 0.9, 0.99, 0.999)
TESTS = ("conservative", "randomized")
COLUMNS = ("dataset", "model", "sigma", "n", "n0", "alpha", "correction", "inputs",
           "components", "sampler", "test", "tau", "radius", "certified",
           "certified_accuracy", "seed")


def quantize_8bit(x: Any) -> Any:
    """``round(255 x) / 255`` clipped to [0, 1]: the float nearest to ``k / 255``.

    Examples
    --------
    >>> import torch
    >>> quantize_8bit(torch.tensor([0.0, 0.25, 1.2, -0.1]))
    tensor([0.0000, 0.2510, 1.0000, 0.0000])
    """
    return (x.clamp(0, 1) * 255).round() / 255


def _seed(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def evaluate(counts: np.ndarray, guesses: np.ndarray, target: np.ndarray, n: int,
             alpha: float, seed: int) -> dict[tuple[str, float], tuple[np.ndarray, np.ndarray]]:
    """Certified and certified-and-right masks of both tests at every tau, same counts.

    ``target == 255`` is ignored (the masks cover the other components only). The
    randomized test draws its ``U`` from ``numpy.random.default_rng(seed)``, the
    same draws at every tau.

    Examples
    --------
    >>> counts = np.array([50, 49, 45, 40]); guesses = np.zeros(4, int)
    >>> out = evaluate(counts, guesses, np.zeros(4, int), 50, 0.01, seed=0)
    >>> out["conservative", 0.75][0].tolist()
    [True, True, False, False]
    """
    import multitest

    valid = target != 255
    out = {}
    for tau in TAUS:
        for test in TESTS:
            kw = ({"randomized": True, "rng": np.random.default_rng(seed)}
                  if test == "randomized" else {})
            rej = multitest.certify_counts(counts, n, tau, alpha, method="holm", **kw).reject
            out[test, tau] = (rej[valid], (rej & (guesses == target))[valid])
    return out


def _run_dataset(dataset: str, model: Any, model_name: str, sigma: float,
                 inputs: list[tuple[Any, np.ndarray]], s: Settings, seed: int,
                 num_classes: int) -> list[dict[str, Any]]:
    import torch

    from samplers import GaussianL2, Quantized
    from smoothing import SegCertify

    rows = []
    for si, sampler in enumerate((GaussianL2(sigma), Quantized(GaussianL2(sigma), bits=8))):
        name = type(sampler).__name__
        for n in s.ns:
            seg = SegCertify(model, sampler, num_classes=num_classes, n0=s.n0, n=n,
                             tau=TAUS[0], alpha=s.alpha, correction="holm",
                             batch_size=s.batch)
            acc: dict[tuple[str, float], list[tuple[np.ndarray, np.ndarray]]] = {}
            for i, (x, target) in enumerate(inputs):
                g = torch.Generator().manual_seed(_seed(seed, len(dataset), si, n, i))
                cert = seg.certify(x, generator=g)
                res = evaluate(cert.counts.numpy(), cert.guesses.numpy(), target, n,
                               s.alpha, _seed(seed, len(dataset), si, n, i, 1))
                for k, v in res.items():
                    acc.setdefault(k, []).append(v)
            for (test, tau), parts in acc.items():
                certified = np.concatenate([p[0] for p in parts])
                right = np.concatenate([p[1] for p in parts])
                rows.append({
                    "dataset": dataset, "model": model_name, "sigma": sigma, "n": n,
                    "n0": s.n0, "alpha": s.alpha, "correction": "holm",
                    "inputs": len(inputs), "components": certified.size, "sampler": name,
                    "test": test, "tau": tau, "radius": float(sampler.radius(tau)),
                    "certified": float(certified.mean()),
                    "certified_accuracy": float(right.mean()), "seed": seed})
    return rows


def _key(r: dict[str, str]) -> tuple:
    return (r["dataset"] != "streets", r["dataset"], int(r["n"]), float(r["tau"]),
            SAMPLERS.index(r["sampler"]), TESTS.index(r["test"]))


def markdown(rows: list[dict[str, str]]) -> str:
    """The docs table from the CSV rows (numbers as written in the CSV).

    Examples
    --------
    >>> row = {"dataset": "streets", "sigma": "0.25", "n": "100", "tau": "0.75",
    ...        "sampler": "GaussianL2", "test": "conservative", "radius": "0.168",
    ...        "certified": "0.9", "certified_accuracy": "0.8", "components": "10"}
    >>> print(markdown([row]).splitlines()[2])
    | streets | 0.25 | 100 | 0.75 | GaussianL2 | conservative | 0.168 | 0.9 | 0.8 |
    """
    cols = ("dataset", "sigma", "n", "tau", "sampler", "test", "radius", "certified",
            "certified_accuracy")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted(rows, key=_key):
        lines.append("| " + " | ".join(r[c] for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot(out: Path, figures: Path) -> Path:
    """Grouped bars per (data, n, tau) from the CSV in ``out``, and the table.

    Top row: certified accuracy of each (sampler, test), the certified radius
    written on the bar. Bottom row: the difference to GaussianL2 with the
    conservative test, in percentage points (the gains are small next to the bars).
    """
    from smoothing.figures import _new_figure, _save, read_rows

    rows = read_rows(out / "certificates_real.csv")
    (out / "certificates_real.md").write_text(markdown(rows))
    panels = sorted({(r["dataset"], int(r["n"])) for r in rows},
                    key=lambda g: (g[0] != "streets", g))
    fig = _new_figure((max(3.6 * len(panels), 5.0), 6.2))
    grid = fig.subplots(2, len(panels), squeeze=False, sharey="row",
                        gridspec_kw={"height_ratios": (3, 2)})
    bars = (("GaussianL2", "conservative", "C0", None, "GaussianL2, conservative test"),
            ("GaussianL2", "randomized", "C1", None,
             "GaussianL2, randomized test (randomized certificate, same counts)"),
            ("Quantized", "conservative", "C2", "//",
             "Quantized, 8 bits (sound in floating point; own counts), conservative test"),
            ("Quantized", "randomized", "C3", "//",
             "Quantized, randomized test (randomized certificate)"))
    width = 0.8 / len(bars)
    for col, (ds, n) in enumerate(panels):
        ax, dax = grid[0, col], grid[1, col]

        def sel(samp: str, test: str, ds: str = ds, n: int = n) -> dict[float, dict]:
            return {float(r["tau"]): r for r in rows if r["dataset"] == ds
                    and int(r["n"]) == n and r["sampler"] == samp and r["test"] == test}

        base = sel("GaussianL2", "conservative")
        for b, (samp, test, color, hatch, label) in enumerate(bars):
            got = sel(samp, test)
            xs = np.arange(len(TAUS)) + (b - (len(bars) - 1) / 2) * width
            ys = [float(got[t]["certified_accuracy"]) if t in got else 0.0 for t in TAUS]
            ax.bar(xs, ys, width, color=color, hatch=hatch, edgecolor="k", lw=0.4,
                   label=label)
            for x, t, y in zip(xs, TAUS, ys, strict=True):
                if t in got:
                    ax.text(x, y + 0.01, f"R={float(got[t]['radius']):.3f}", fontsize=5.5,
                            rotation=90, ha="center", va="bottom")
            if b:
                d = [100 * (y - float(base[t]["certified_accuracy"])) if t in base else 0.0
                     for t, y in zip(TAUS, ys, strict=True)]
                dax.bar(xs, d, width, color=color, hatch=hatch, edgecolor="k", lw=0.4)
        for a in (ax, dax):
            a.set_xticks(np.arange(len(TAUS)), [f"tau = {t}" for t in TAUS], fontsize=8)
            a.grid(axis="y", alpha=0.3)
        dax.axhline(0, color="k", lw=0.6)
        ax.set_ylim(0, 1.25)
        ax.set_title(f"{ds}, n = {n} (Holm, alpha = {rows[0]['alpha']})", fontsize=9)
    grid[0, 0].set_ylabel("certified accuracy\n(R: certified l2 radius)", fontsize=8)
    grid[1, 0].set_ylabel("difference to GaussianL2,\nconservative (pp)", fontsize=8)
    ncol = 2 if len(panels) >= 3 else 1
    fig.legend(*grid[0, 0].get_legend_handles_labels(), loc="lower center", ncol=ncol,
               fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.035 * len(bars) / ncol + 0.015, 1, 1))
    path = figures / "certificates_real.png"
    _save(fig, path, 110)
    return path


def renyi_lattice_radius(sigma: float, tau: float) -> float:
    r"""The radius of the removed ``LatticeGaussian`` (discrete Gaussian, Rényi bound).

    :math:`\sigma\sqrt2(\sqrt{\ln 2} - \sqrt{\ln(1/\tau)})`: the class keeps
    probability > 1/2 under every 8-bit shift within it (its sampling error, below
    3e-10, is neglected here, in its favour).

    Examples
    --------
    >>> round(renyi_lattice_radius(0.25, 0.75), 4)
    0.1047
    """
    return sigma * math.sqrt(2) * (math.sqrt(math.log(2)) - math.sqrt(math.log(1 / tau)))


def radius_markdown() -> str:
    """The certified l2 radius of each sampler at every (sigma, tau) of the table.

    Examples
    --------
    >>> row = radius_markdown().splitlines()[2]  # ratios to GaussianL2, rounded down
    >>> row.split(" | ")[2:5]
    ['0.0809388', '0.0502659 (0.621035x)', '0.0809387 (0.999999x)']
    """
    from samplers import GaussianL2, Quantized

    lines = ["| sigma | tau | GaussianL2 (not float-sound) | LatticeGaussian, removed "
             "(Rényi) | Quantized, 8 bits | Quantized, 16 bits |",
             "|---:|---:|---:|---:|---:|---:|"]
    for sigma in RADIUS_SIGMAS:
        base = GaussianL2(sigma)
        q8, q16 = Quantized(base, bits=8), Quantized(base, bits=16)
        for tau in RADIUS_TAUS:
            ref = base.radius(tau)
            cells = [f"{r:.6g} ({math.floor(r / ref * 1e6) / 1e6:.6f}x)" for r in
                     (renyi_lattice_radius(sigma, tau), q8.radius(tau), q16.radius(tau))]
            lines.append(f"| {sigma} | {tau} | {ref:.6g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(settings: Settings, *, out: Path, figures: Path, seed: int, cache: str | None,
        threads: int) -> list[dict[str, Any]]:
    """Sample, test, write the CSV, the table and the figure; return the rows."""
    import torch

    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    rows = []
    for st in load_studies(settings, cache=cache, threads=threads, prepare=quantize_8bit):
        rows += _run_dataset(st.dataset, st.model, st.model_name, st.sigma, st.inputs,
                             settings, seed, num_classes=st.num_classes)
    write_csv(rows, COLUMNS, out / "certificates_real.csv", lineterminator="\n")
    (out / "certificates_radius.md").write_text(radius_markdown())
    plot(out, figures)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument("--quick", action="store_true", help="one small scene, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", help="asset cache of smoothing.real (default: ~/.cache)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figure and table from the CSV in --out")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    if args.plot_only:
        print(plot(args.out, args.figures))
        return 0
    settings = Settings.quick() if args.quick else Settings()
    rows = run(settings, out=args.out, figures=args.figures, seed=args.seed,
               cache=args.cache, threads=args.threads)
    print((args.out / "certificates_real.md").read_text(), end="")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
