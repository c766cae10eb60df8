"""Benchmark multitest against scipy/statsmodels, measured in the same run.

    python benchmarks/bench_multitest.py            # full table, writes docs/benchmarks.md
    python benchmarks/bench_multitest.py --quick    # small sizes, prints only

Each time is the best of ``--repeat`` runs after a warm-up call (numba compiles on
first use; see docs/multitest.md for compile cost). Ratios are reference time
divided by ours, so > 1 means we are faster. Machines are noisy: compare ratios, not
absolute times, across runs.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from _doc import write_section  # benchmarks/ is on sys.path when run as a script
from scipy import stats
from statsmodels.stats.multitest import multipletests as sm_multipletests

import multitest as mt


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up (compilation, caches)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fmt(t: float) -> str:
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.0f} µs"


def lehmann_romano_numpy(p, alpha, k):
    """Sort-based reference for the k-FWER step-down (statsmodels has none)."""
    N = p.size
    order = np.argsort(p)
    j = np.arange(1, N + 1)
    crit = (k * alpha) / (N + k - np.maximum(j, k))
    fail = np.flatnonzero(p[order] > crit)
    r = fail[0] if fail.size else N
    reject = np.zeros(N, dtype=bool)
    reject[order[:r]] = True
    return reject


def run(sizes, ns, repeat, hommel_sizes):
    rng = np.random.default_rng(0)
    rows = []  # (task, N, n, ours, reference name, reference time, ratio)
    tau, alpha = 0.75, 0.001

    def add(task, N, n, ours, ref_name, ref_t, note=""):
        rows.append((task, N, n, ours, ref_name, ref_t, ref_t / ours, note))
        print(f"{task:<34} N={N:>9} n={n!s:>6}  ours {fmt(ours):>10}  "
              f"{ref_name} {fmt(ref_t):>10}  ratio {ref_t / ours:8.1f}{note}", flush=True)

    for N in sizes:
        for n in ns:
            counts = rng.binomial(n, 0.97, size=N).astype(np.int64)
            counts[: N // 20] = rng.binomial(n, 0.7, size=N // 20)
            t_copy = best_time(lambda c=counts: np.copy(c), repeat)
            t_ours_p = best_time(lambda c=counts, n=n: mt.binomial_pvalues(c, n, tau), repeat)
            t_sf = best_time(lambda c=counts, n=n: stats.binom.sf(c - 1, n, tau), repeat)
            add("p-values", N, n, t_ours_p, "scipy binom.sf", t_sf)
            m = min(N, 10_000)
            sub = counts[:m]
            t0 = time.perf_counter()
            for c in sub:
                stats.binomtest(int(c), n, tau, alternative="greater")
            t_loop = (time.perf_counter() - t0) * N / m
            add("p-values", N, n, t_ours_p, "binomtest loop*", t_loop,
                " (*timed on 10^4, extrapolated)" if N > m else "")
            pv = mt.binomial_pvalues(counts, n, tau)
            t_sm_holm = best_time(lambda p=pv: sm_multipletests(p, alpha, method="holm"), repeat)
            t_holm = best_time(lambda p=pv: mt.holm(p, alpha), repeat)
            add("holm (decisions)", N, n, t_holm, "statsmodels holm", t_sm_holm)
            t_holm_adj = best_time(lambda p=pv: mt.holm(p, alpha).pvalues_adjusted, repeat)
            add("holm (decisions + adjusted)", N, n, t_holm_adj, "statsmodels holm", t_sm_holm)
            t_sm_bonf = best_time(
                lambda p=pv: sm_multipletests(p, alpha, method="bonferroni"), repeat)
            add("bonferroni", N, n, best_time(lambda p=pv: mt.bonferroni(p, alpha), repeat),
                "statsmodels bonferroni", t_sm_bonf)
            k = max(2, N // 1000)
            add("lehmann_romano (k=N/1000)", N, n,
                best_time(lambda p=pv, k=k: mt.lehmann_romano(p, alpha, k=k), repeat),
                "numpy sort-based", best_time(
                    lambda p=pv, k=k: lehmann_romano_numpy(p, alpha, k), repeat))
            t_end = best_time(lambda c=counts, n=n: mt.certify_counts(c, n, tau, alpha), repeat)
            t_ref_end = best_time(lambda c=counts, n=n: sm_multipletests(
                stats.binom.sf(c - 1, n, tau), alpha, method="holm"), repeat)
            add("counts -> holm (end to end)", N, n, t_end, "binom.sf + statsmodels", t_ref_end)
            rows.append(("np.copy(counts) floor", N, n, t_copy, "counts -> holm / copy",
                         t_end, t_end / t_copy, ""))
            print(f"{'copy floor':<34} N={N:>9} n={n!s:>6}  copy {fmt(t_copy):>10}  "
                  f"counts->holm / copy = {t_end / t_copy:.2f}", flush=True)

    for N in sizes:  # continuous p-values: no ties for statsmodels' sort to exploit
        pu = rng.uniform(size=N) ** 4
        add("holm (decisions), continuous p", N, "-",
            best_time(lambda p=pu: mt.holm(p, alpha), repeat), "statsmodels holm",
            best_time(lambda p=pu: sm_multipletests(p, alpha, method="holm"), repeat))

    for N in sizes:  # inputs on which the rank iteration settles slowly, or never
        signal = rng.uniform(size=N) < 0.9
        pz = stats.norm.sf(rng.normal(size=N) + 6.5 * signal)  # z-tests, 90% strong signal
        add("holm (decisions), z-test mixture", N, "-",
            best_time(lambda p=pz: mt.holm(p, alpha), repeat), "statsmodels holm",
            best_time(lambda p=pz: sm_multipletests(p, alpha, method="holm"), repeat))
        pc = rng.permutation(alpha / (N - np.arange(N)))  # every p on its critical value
        add("holm (decisions), p on the critical values", N, "-",
            best_time(lambda p=pc: mt.holm(p, alpha), repeat), "statsmodels holm",
            best_time(lambda p=pc: sm_multipletests(p, alpha, method="holm"), repeat))

    hommel = getattr(mt, "hommel", None)
    if hommel is not None:
        for N in hommel_sizes:
            p = rng.uniform(size=N) ** 4
            t_ours = best_time(lambda p=p: hommel(p, 0.05).pvalues_adjusted, repeat)
            if N <= 10_000:
                t_ref = best_time(lambda p=p: sm_multipletests(p, 0.05, method="hommel"), 1)
                note = ""
            else:  # statsmodels is O(N^2): time at 10^4 and extrapolate
                q = p[:10_000]
                t_ref = best_time(lambda q=q: sm_multipletests(q, 0.05, method="hommel"),
                                  1) * (N / 10_000) ** 2
                note = " (*statsmodels timed at 10^4, extrapolated as N^2)"
            add("hommel", N, "-", t_ours, "statsmodels hommel", t_ref, note)
    return rows


def to_markdown(rows) -> str:
    lines = [
        f"Measured on `{platform.machine()}`, {platform.python_implementation()} "
        f"{platform.python_version()}, numpy {np.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. Best of repeats after a warm-up; ratio = "
        "reference / ours (> 1: we are faster). Regenerate with "
        "`python benchmarks/bench_multitest.py`.",
        "",
        "| task | N | n | ours | reference | reference time | ratio |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for task, N, n, ours, ref_name, ref_t, ratio, note in rows:
        lines.append(f"| {task} | {N:,} | {n} | {fmt(ours)} | {ref_name}{note} | "
                     f"{fmt(ref_t)} | {ratio:,.1f} |")
    return "\n".join(lines)


# (task, N, n or None for any, reference row task or None, what is compared, target)
TARGETS = [
    ("counts -> holm (end to end)", 2_097_152, None, "ratio", 200.0,
     "counts -> Holm at N = 2M: >= 200x scipy binom.sf + statsmodels"),
    ("np.copy(counts) floor", 2_097_152, None, "inverse", 4.0,
     "counts -> Holm at N = 2M: within 4x of np.copy(counts)"),
    ("holm (decisions)", 2_097_152, None, "ratio", 20.0,
     "Holm on binomial p-values (n + 1 distinct values) at N = 2M: >= 20x statsmodels"),
    ("holm (decisions), continuous p", 2_097_152, None, "ratio", 20.0,
     "Holm on continuous p-values at N = 2M: >= 20x statsmodels"),
    ("hommel", 100_000, None, "ratio", 100.0, "Hommel at N = 10^5: >= 100x statsmodels"),
]


def targets_markdown(rows) -> str:
    """The issue's speed targets against the rows just measured (worst case over n)."""
    lines = ["| target | measured (worst over n) | met |", "|---|---:|---|"]
    for task, N, _, kind, goal, text in TARGETS:
        vals = [r[6] for r in rows if r[0] == task and r[1] == N]
        if not vals:
            continue
        if kind == "ratio":
            worst = min(vals)
            ok = worst >= goal
            shown = f"{worst:,.1f}x"
        else:  # ours / copy must stay below goal
            worst = max(vals)
            ok = worst <= goal
            shown = f"{worst:.2f}x the copy"
        lines.append(f"| {text} | {shown} | {'yes' if ok else '**no**'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no doc update")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if args.quick:
        rows = run([10_000], [100], 3, [1_000])
    else:
        rows = run([10_000, 1_000_000, 2_097_152], [100, 10_000], args.repeat,
                   [10_000, 100_000])
    md = to_markdown(rows) + "\n\n**Targets** (issue 2, this 2-core machine):\n\n" + \
        targets_markdown(rows)
    print("\n" + md)
    if not args.quick:
        print(f"\nwritten to {write_section('bench_multitest', 'multitest', md)}")


if __name__ == "__main__":
    main()
