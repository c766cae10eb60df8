"""Benchmark the start-up of the ``segcertify`` command line against ``import argparse``.

Every command runs in a fresh ``python`` subprocess (``PYTHONPATH`` = this checkout,
stdout/stderr to a pipe, ``.pyc`` files written by a warm-up run as an install
has them), the commands interleaved round by round so that a busy
machine slows them alike. We report the median wall time of ``repeats`` rounds and
its ratio to the baseline ``python -c "import argparse"`` measured in the same run.
``segcertify`` is run as the console script that ``pip`` writes (the same three
lines, from a temporary file); ``import torch`` is shown for scale (5 runs after the
rounds).

Target (issue 13.5): every ``--help`` <= 1.2x the baseline.

Usage::

    python benchmarks/bench_startup_cli.py                 # docs/benchmarks.md, docs/cli.md
    python benchmarks/bench_startup_cli.py --quick --out -  # smoke test, print only
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _doc import write_section  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.2

#: What ``pip install`` writes as the ``segcertify`` script (entry point smoothing.cli:main).
CONSOLE_SCRIPT = """\
import re
import sys
from smoothing.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


#: The least any argparse ``--help`` costs: one option, its help printed.
FLOOR = ("import argparse; p = argparse.ArgumentParser(prog='x'); "
         "p.add_argument('--flag', help='what the flag does ' * 8); p.parse_args(['--help'])")


def commands(script: str, *, torch: bool) -> dict[str, list[str]]:
    """Label -> argv; the first one is the baseline."""
    py = sys.executable
    cmds = {
        'python -c "import argparse"': [py, "-c", "import argparse"],
        "floor: a one-option argparse parser's --help": [py, "-c", FLOOR],
        "segcertify --help": [py, script, "--help"],
        "segcertify certify --help": [py, script, "certify", "--help"],
        "python -m smoothing --help": [py, "-m", "smoothing", "--help"],
    }
    if torch:
        cmds['python -c "import torch"'] = [py, "-c", "import torch"]
    return cmds


def time_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU = user + system) seconds of one subprocess (its exit status must be 0)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {proc.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu


def measure(repeats: int, *, torch: bool) -> list[dict[str, object]]:
    """Median seconds and ratio to the baseline of every command, interleaved rounds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an install has .pyc files: the warm-up writes them
    with tempfile.TemporaryDirectory() as tmp:
        script = str(Path(tmp) / "segcertify")
        Path(script).write_text(CONSOLE_SCRIPT)
        cmds = commands(script, torch=torch)
        for argv in cmds.values():  # warm the file cache and the .pyc files
            time_once(argv, env)
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
        scale = [k for k in cmds if k.endswith('"import torch"')]
        for _ in range(repeats):
            for label, argv in cmds.items():
                if label not in scale:
                    times[label].append(time_once(argv, env))
        for label in scale:  # for scale only, after the rounds (its seconds of disk and
            for _ in range(5):  # CPU would disturb the millisecond commands)
                times[label].append(time_once(cmds[label], env))
    base = [statistics.median(t[j] for t in next(iter(times.values()))) for j in (0, 1)]
    rows = []
    for label, ts in times.items():
        wall, cpu = (statistics.median(t[j] for t in ts) for j in (0, 1))
        rows.append({"command": label, "median_ms": 1e3 * wall, "ratio": wall / base[0],
                     "cpu_ms": 1e3 * cpu, "cpu_ratio": cpu / base[1], "runs": len(ts)})
    return rows


def to_markdown(rows: list[dict[str, object]], repeats: int) -> str:
    lines = [
        f"Measured by `benchmarks/bench_startup_cli.py` on {platform.machine()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}), median of "
        f"{repeats} interleaved subprocess runs each; ratio = median / median of "
        '`python -c "import argparse"` in the same run, for the wall time and for the '
        "CPU time (user + system: less sensitive to other load on the machine). Target: "
        f"every `--help` <= {TARGET}x (wall).",
        "",
        "| command | wall (ms) | ratio | CPU (ms) | CPU ratio | target met (wall) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        cmd = str(r["command"])
        met = ("yes" if float(r["ratio"]) <= TARGET else "**no**") if cmd.startswith(
            ("segcertify", "python -m")) else ""
        lines.append(f"| `{cmd}` | {float(r['median_ms']):.1f} | {float(r['ratio']):.3f}x "
                     f"| {float(r['cpu_ms']):.1f} | {float(r['cpu_ratio']):.3f}x | {met} |")
    lines += [
        "",
        "None of the `--help` commands imports torch, numpy, numba, scipy or the runner "
        "(`tests/test_cli_startup.py`). What they pay over `import argparse` is the help "
        "itself: argparse imports `textwrap` and `locale` and compiles its regular "
        "expressions to format it, and builds the parser (all subcommands); plus the two "
        "small modules `smoothing` and `smoothing.cli` (and `runpy` for `python -m`). "
        "The *floor* row is the least an argparse `--help` costs (a parser with one "
        "option): the segcertify rows stay within a few percent of it, so the 1.2x "
        "target sits at argparse's own cost of printing help. On this shared 2-core "
        "machine the ratios move by about +-0.1 between runs.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=31, help="rounds (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="5 rounds, no torch")
    ap.add_argument("--no-torch", action="store_true", help="skip the `import torch` row")
    ap.add_argument("--out", default=None,
                    help="'-' prints only; default: the start-up section of docs/benchmarks.md")
    args = ap.parse_args(argv)
    repeats = 5 if args.quick else args.repeats
    rows = measure(repeats, torch=not (args.quick or args.no_torch))
    md = to_markdown(rows, repeats)
    print(md)
    if args.out != "-":
        for doc in (None, ROOT / "docs" / "cli.md"):
            kwargs = {} if doc is None else {"doc": doc}
            path = write_section("startup-cli", "Start-up of the segcertify command line", md,
                                 **kwargs)
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
