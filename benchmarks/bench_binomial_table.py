"""When binomial_pvalues tabulates over 0..n: the table against direct evaluation.

    python benchmarks/bench_binomial_table.py            # writes its docs/benchmarks.md section
    python benchmarks/bench_binomial_table.py --quick    # small sizes, prints only

With a scalar ``n``, ``binomial_pvalues`` fills a table over the count values that
occur and gathers (O(N + n) array work, one incomplete beta per distinct count) when
``multitest._binomial.uses_table(n, N)`` says so, and otherwise evaluates the
incomplete beta once per count (O(N), whatever ``n``). This measures both routes in
the same run, for ``n + 1`` from 1 to 256 times the number of counts N, on counts
that are all different (uniform on 0..n: the table's worst case) and on binomial
counts (few distinct values: the usual case). Ratios are direct time / table time,
so > 1 means the table is faster; compare ratios, not times, across runs.
"""

from __future__ import annotations

import argparse

import numpy as np
from _doc import best_time, write_section  # benchmarks/ is on sys.path when run as a script

from multitest import _kernels as K
from multitest._binomial import binomial_pvalue_table, pvalues_of_counts
from multitest._table import TABLE_ENTRIES_PER_COUNT, uses_table


def run(sizes, per_count, repeat, seed):
    rng = np.random.default_rng(seed)
    rows = []  # (N, (n + 1) / N, counts, table time, direct time, chosen route)
    for N in sizes:
        for ratio in per_count:
            n = ratio * N - 1
            for kind in ("distinct", "binomial"):
                if kind == "distinct":
                    counts = rng.integers(0, n + 1, N)
                else:
                    counts = rng.binomial(n, 0.9, N)

                def table(c=counts, n=n):
                    return binomial_pvalue_table(n, 0.75, K.presence(c, n))[c]

                def direct(c=counts, n=n):
                    return pvalues_of_counts(n, 0.75, c)

                rows.append((N, ratio, kind, best_time(table, repeat),
                             best_time(direct, repeat),
                             "table" if uses_table(n, N) else "direct"))
    return rows


def to_markdown(rows) -> str:
    lines = ["| N counts | (n + 1) / N | counts | table | direct | direct / table | "
             "route chosen |",
             "|---:|---:|---|---:|---:|---:|---|"]
    for N, ratio, kind, t_table, t_direct, route in rows:
        lines.append(f"| {N:,} | {ratio} | {kind} | {t_table * 1e6:.0f} µs | "
                     f"{t_direct * 1e6:.0f} µs | {t_direct / t_table:.2f} | {route} |")
    lines.append("")
    lines.append(f"The table is used up to (n + 1) / N = {TABLE_ENTRIES_PER_COUNT} (and "
                 "2^24 entries); past that the direct route keeps memory at O(N).")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no doc update")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        rows = run([1_000], [1, 16, 64], 3, args.seed)
    else:
        rows = run([100, 10_000, 100_000], [1, 4, 16, 64, 256], args.repeat, args.seed)
    md = to_markdown(rows)
    print("\n" + md)
    if not args.quick:
        path = write_section("bench_binomial_table", "binomial p-values: table or direct", md)
        print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
