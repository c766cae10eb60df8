"""Power study: certified rate of the exact randomized binomial test vs the conservative one.

The oracle of §6.1 (:mod:`simulations.oracle`) gives, per repetition, the guesses
and counts of ``N`` components from ``n0`` guessing and ``n`` counting samples.
The *same* counts are tested twice with :func:`multitest.certify_counts`: with the
conservative p-value ``P(X >= c)`` and with the randomized p-value
``P(X > c) + U P(X = c)`` (``randomized=True``, U from a seeded generator). Rows
of the CSV: one per (n, gamma, tau, correction, test) with the mean certified
fraction, the mean certified-and-right fraction, and their standard errors over
the repetitions; the figure plots certified fraction against gamma per n.

Usage::

    python -m simulations.randomized_power                 # writes docs/results/
    python -m simulations.randomized_power --quick --out /tmp/rp
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

import multitest
from simulations.oracle import sample_oracle

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["n", "n0", "N", "k", "gamma", "tau", "alpha", "correction", "test", "reps",
           "certified", "certified_se", "certified_right", "certified_right_se"]


def study(ns, gammas, taus, corrections, *, N: int, k: int, n0: int, alpha: float,
          reps: int, seed: int) -> list[dict]:
    """Every (n, gamma, tau, correction) cell, conservative and randomized on the same counts.

    Examples
    --------
    >>> rows = study([50], [0.05], [0.75], ["holm"], N=20, k=0, n0=10, alpha=0.01,
    ...              reps=2, seed=0)
    >>> [r["test"] for r in rows]
    ['conservative', 'randomized']
    """
    root = np.random.SeedSequence(seed)
    rows = []
    cells = [(n, g) for n in ns for g in gammas]
    for (n, gamma), child in zip(cells, root.spawn(len(cells)), strict=True):
        s_counts, s_u = child.spawn(2)
        sample = sample_oracle(N, k, gamma, n0, n, reps=reps, seed=s_counts)
        for tau in taus:
            for corr in corrections:
                u_rng = np.random.default_rng(s_u)  # same U for every (tau, correction)
                for test in ("conservative", "randomized"):
                    cert, right = np.empty(reps), np.empty(reps)
                    for r in range(reps):
                        kw = {"randomized": True, "rng": u_rng} if test == "randomized" else {}
                        rej = multitest.certify_counts(sample.counts[r], n, tau, alpha,
                                                       method=corr, **kw).reject
                        cert[r] = rej.mean()
                        right[r] = (rej & sample.right[r]).mean()
                    rows.append({
                        "n": n, "n0": n0, "N": N, "k": k, "gamma": gamma, "tau": tau,
                        "alpha": alpha, "correction": corr, "test": test, "reps": reps,
                        "certified": cert.mean(),
                        "certified_se": cert.std(ddof=1) / np.sqrt(reps) if reps > 1 else 0.0,
                        "certified_right": right.mean(),
                        "certified_right_se": (right.std(ddof=1) / np.sqrt(reps)
                                               if reps > 1 else 0.0),
                    })
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Certified fraction vs gamma, one panel per n, per tau (Holm), both tests."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({r["n"] for r in rows})
    taus = sorted({r["tau"] for r in rows})
    corr = "holm" if any(r["correction"] == "holm" for r in rows) else rows[0]["correction"]
    fig, axes = plt.subplots(1, len(ns), figsize=(4 * len(ns), 3.4), sharey=True,
                             squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        for i, tau in enumerate(taus):
            for test, style in (("conservative", "--"), ("randomized", "-")):
                sel = [r for r in rows if r["n"] == n and r["tau"] == tau
                       and r["correction"] == corr and r["test"] == test]
                sel.sort(key=lambda r: r["gamma"])
                ax.plot([r["gamma"] for r in sel], [r["certified"] for r in sel], style,
                        color=f"C{i}", marker="o", ms=3, label=f"tau={tau}, {test}")
        ax.set_title(f"n = {n} ({corr})")
        ax.set_xlabel("gamma (error rate of a component)")
    axes[0, 0].set_ylabel("certified fraction")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[50, 100, 300])
    parser.add_argument("--gammas", type=float, nargs="+",
                        default=[0.0, 0.01, 0.02, 0.05, 0.1, 0.15])
    parser.add_argument("--taus", type=float, nargs="+", default=[0.75, 0.9])
    parser.add_argument("--corrections", nargs="+", default=["holm", "bonferroni"])
    parser.add_argument("--N", type=int, default=1000, help="components per input")
    parser.add_argument("--k", type=int, default=0, help="bad components")
    parser.add_argument("--n0", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="N=100, 10 reps (smoke test)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    args = parser.parse_args()
    if args.quick:
        args.N, args.reps = 100, 10
    rows = study(args.ns, args.gammas, args.taus, args.corrections, N=args.N, k=args.k,
                 n0=args.n0, alpha=args.alpha, reps=args.reps, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "randomized_power.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows({c: (f"{r[c]:.6g}" if isinstance(r[c], float) else r[c]) for c in COLUMNS}
                    for r in rows)
    plot(rows, out / "randomized_power.png")
    for r in rows:
        if r["correction"] == args.corrections[0]:
            print(f"n={r['n']:4d} gamma={r['gamma']:<5} tau={r['tau']:<5} "
                  f"{r['test']:12s} certified={r['certified']:.4f}")


if __name__ == "__main__":
    main()
