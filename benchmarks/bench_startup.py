"""Start-up cost of multitest: import, first call, cold numba cache; ratios in one run.

    python benchmarks/bench_startup.py            # writes docs/benchmarks.md
    python benchmarks/bench_startup.py --quick    # fewer repeats, prints only

Every figure is measured in a fresh subprocess (same interpreter, same run), timed
inside it with ``time.perf_counter`` around the statement (interpreter start-up is
not counted), repeated, and the median reported. "Warm" means the numba cache
already holds the kernels (the run starts with one unrecorded call to fill it);
"cold" points ``NUMBA_CACHE_DIR`` at a new empty folder, as in a fresh install.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _doc import write_section  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]

TIMER = """
import time
_t0 = time.perf_counter()
{setup}
_t1 = time.perf_counter()
{stmt}
_t2 = time.perf_counter()
print(_t1 - _t0, _t2 - _t1)
"""

P = "import numpy as np; p = np.random.default_rng(0).uniform(size=1000) ** 4"
COUNTS = ("import numpy as np; "
          "c = np.random.default_rng(0).binomial(100, 0.97, size=1000).astype(np.{dtype})")


def measure(setup: str, stmt: str = "pass", *, cache_dir: str, repeat: int,
            fresh_cache: bool = False) -> tuple[float, float]:
    """Median (setup seconds, statement seconds) over `repeat` fresh subprocesses."""
    times = []
    for _ in range(repeat):
        env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=cache_dir)
        tmp = None
        if fresh_cache:
            tmp = tempfile.TemporaryDirectory()
            env["NUMBA_CACHE_DIR"] = tmp.name
        try:
            out = subprocess.run([sys.executable, "-c", TIMER.format(setup=setup, stmt=stmt)],
                                 env=env, capture_output=True, text=True, check=True,
                                 cwd=ROOT).stdout.split()
        finally:
            if tmp is not None:
                tmp.cleanup()
        times.append((float(out[-2]), float(out[-1])))
    return (statistics.median(t[0] for t in times), statistics.median(t[1] for t in times))


def fmt(t: float) -> str:
    return f"{t:.2f} s" if t >= 1 else f"{t * 1e3:.0f} ms"


def run(repeat: int, cold_repeat: int) -> tuple[list[tuple[str, float, str]], dict]:
    rows: list[tuple[str, float, str]] = []
    cache = tempfile.mkdtemp(prefix="numba-cache-")  # warm: filled once, then reused

    def warm(setup, stmt="pass"):
        measure(setup, stmt, cache_dir=cache, repeat=1)  # fill the cache
        return measure(setup, stmt, cache_dir=cache, repeat=repeat)

    def show(name, t, note=""):
        rows.append((name, t, note))
        print(f"{name:<62} {fmt(t):>9} {note}", flush=True)

    t_scipy = warm("import scipy.special")[0]
    show("`import scipy.special`", t_scipy)
    t_numba = warm("import numba")[0]
    show("`import numba`", t_numba)
    t_mt = warm("import multitest")[0]
    show("`import multitest`", t_mt, f"{t_mt / t_scipy:.2f}x `import scipy.special`")
    imp, first = warm(f"import multitest; {P}", "multitest.holm(p, 0.05)")
    show("warm cache: first `holm` call after the import", first,
         "(imports numba, loads the kernels it runs)")
    imp, first = measure(f"import multitest; {P}", "multitest.holm(p, 0.05)",
                         cache_dir=cache, repeat=cold_repeat, fresh_cache=True)
    t_cold = imp + first
    show("cold cache: `import multitest` + first `holm` call", t_cold,
         "(compiles only what holm runs)")
    _, first = measure(f"import multitest; {P}", "multitest.hommel(p, 0.05)",
                       cache_dir=cache, repeat=cold_repeat, fresh_cache=True)
    show("cold cache: first `hommel` call", first)
    _, first = measure(f"import multitest; {P}",
                       "multitest.holm(p, 0.05).pvalues_adjusted",
                       cache_dir=cache, repeat=cold_repeat, fresh_cache=True)
    show("cold cache: first `holm` call with adjusted p-values", first)
    per_dtype = {}
    for dtype in ("int64", "int32", "uint16", "uint8"):
        stmt = "multitest.certify_counts(c, 100, 0.75, 0.001)"
        setup = "import multitest; " + COUNTS.format(dtype=dtype)
        _, cold = measure(setup, stmt, cache_dir=cache, repeat=cold_repeat, fresh_cache=True)
        _, hot = warm(setup, stmt)
        per_dtype[dtype] = (cold, hot)
        show(f"first `certify_counts` call, {dtype} counts: cold / warm cache", cold,
             f"warm {fmt(hot)}")
    summary = {"scipy": t_scipy, "multitest": t_mt, "cold": t_cold}
    return rows, summary


def to_markdown(rows, summary, repeat, cold_repeat) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"Measured on `{platform.machine()}`, {platform.python_implementation()} "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}, load average "
        f"{load:.1f} on {os.cpu_count()} cores. Each figure is the median of "
        f"{repeat} fresh subprocesses ({cold_repeat} for cold-cache rows), timed inside "
        "the process (interpreter start-up excluded). Regenerate with "
        "`python benchmarks/bench_startup.py`.",
        "",
        "| what | time | note |",
        "|---|---:|---|",
    ]
    lines += [f"| {name} | {fmt(t)} | {note} |" for name, t, note in rows]
    ratio = summary["multitest"] / summary["scipy"]
    ok = summary["multitest"] <= 0.5 and ratio <= 1.5
    lines += [
        "",
        "**Targets** (issue 13, item 5): warm `import multitest` <= 0.5 s and <= 1.5x "
        f"`import scipy.special`: measured {fmt(summary['multitest'])}, {ratio:.2f}x "
        f"-- {'met' if ok else '**not met**'}. `import multitest` imports neither numba "
        "nor scipy; the first call of a procedure imports them and loads (warm) or "
        "compiles (cold) only the kernels that call runs. Cold cache, import + first "
        f"`holm` call: {fmt(summary['cold'])}.",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no doc update")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cold-repeat", type=int, default=3)
    args = parser.parse_args(argv)
    repeat, cold_repeat = (3, 1) if args.quick else (args.repeat, args.cold_repeat)
    rows, summary = run(repeat, cold_repeat)
    md = to_markdown(rows, summary, repeat, cold_repeat)
    print("\n" + md)
    if not args.quick:
        print(f"\nwritten to {write_section('bench_startup', 'multitest start-up', md)}")


if __name__ == "__main__":
    main()
