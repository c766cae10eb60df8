"""Benchmark the radius-map bounds against references, measured in the same run.

    python benchmarks/bench_radius_maps.py            # full table, writes docs/benchmarks.md
    python benchmarks/bench_radius_maps.py --quick    # small sizes, prints only

Counts are drawn as in a segmentation (most components near ``n``). Rows:

* ``bonferroni`` -- :func:`multitest.simultaneous_lower_bounds` against
  ``scipy.stats.beta.ppf(alpha / N, c, n - c + 1)`` on every component;
* ``ladder (L=8)`` -- against ``multitest.holm`` on the materialised N x L
  binomial p-values (the definition);
* both against the fixed-tau test step of SEGCERTIFY (``certify_counts``, Holm):
  what a radius map costs next to the certificate it extends.

Each time is the best of ``--repeat`` runs after a warm-up call. Ratios are reference
time divided by ours (> 1: ours is faster); compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
from _doc import best_time, fmt, write_section  # benchmarks/ is on sys.path when run as a script
from scipy import stats

import multitest as mt


def ladder_reference(counts, n, alpha, levels):
    P = np.stack([mt.binomial_pvalues(counts, n, t) for t in levels], axis=1)
    rej = mt.holm(P.reshape(-1), alpha).reject.reshape(P.shape)
    return np.where(rej, levels[None, :], 0.0).max(axis=1)


def measure(counts, n, alpha, levels, repeat):
    """Check ours against the references once, then time all five."""
    N = counts.size

    def bonf():
        return mt.simultaneous_lower_bounds(counts, n, alpha)

    def bonf_ref():
        return np.where(counts > 0, stats.beta.ppf(alpha / N, np.maximum(counts, 1),
                                                   n - counts + 1), 0.0)

    def lad():
        return mt.simultaneous_lower_bounds(counts, n, alpha, method="ladder", levels=levels)

    def lad_ref():
        return ladder_reference(counts, n, alpha, levels)

    def fixed():
        return mt.certify_counts(counts, n, 0.75, alpha)

    np.testing.assert_allclose(bonf().p_lower, bonf_ref(), rtol=1e-9)
    np.testing.assert_array_equal(lad().p_lower, lad_ref())
    return {name: best_time(fn, repeat) for name, fn in
            (("bonf", bonf), ("bonf_ref", bonf_ref), ("lad", lad), ("lad_ref", lad_ref),
             ("fixed", fixed))}


def run(sizes, ns, repeat, seed):
    rng = np.random.default_rng(seed)
    alpha = 0.001
    rows = []
    for N in sizes:
        for n in ns:
            counts = rng.binomial(n, rng.choice([0.6, 0.9, 0.99, 1.0], size=N,
                                                p=[0.05, 0.1, 0.25, 0.6]))
            t = measure(counts, n, alpha, mt.ladder_levels(n, N, alpha), repeat)
            fixed = "fixed-tau certify_counts (holm)"
            rows += [
                ("bonferroni", N, n, t["bonf"], "scipy beta.ppf per component", t["bonf_ref"]),
                ("ladder (L=8)", N, n, t["lad"], "holm on N x L p-values", t["lad_ref"]),
                ("bonferroni", N, n, t["bonf"], fixed, t["fixed"]),
                ("ladder (L=8)", N, n, t["lad"], fixed, t["fixed"]),
            ]
    return rows


def to_markdown(rows) -> str:
    lines = ["| bounds | N | n | ours | reference | reference time | ratio |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for task, N, n, ours, ref, tref in rows:
        lines.append(f"| {task} | {N:,} | {n} | {fmt(ours)} | {ref} | {fmt(tref)} | "
                     f"{tref / ours:,.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes, ns = ((10_000,), (100,)) if args.quick else ((10_000, 1_000_000), (100, 1000))
    md = to_markdown(run(sizes, ns, args.repeat, args.seed))
    print(md)
    if not args.quick:
        cpu = platform.processor() or platform.machine()
        intro = (f"`python benchmarks/bench_radius_maps.py` ({cpu}, best of {args.repeat}; "
                 "ratio = reference / ours). A ratio below 1 against the fixed-tau test is "
                 "the extra cost of the map.")
        write_section("radius_maps", "multitest: radius-map bounds", intro + "\n\n" + md)


if __name__ == "__main__":
    main()
