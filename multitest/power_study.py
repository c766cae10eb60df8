"""The power study of §6.1 on the oracle (Figs. 2, 5 and 6 of the paper): Monte Carlo
of JOINTCLASS, INDIVCLASS and SEGCERTIFY on :mod:`multitest.oracle`'s counts, exact
analytic curves where they exist, one tidy CSV row per (figure, method, N, gamma).

:func:`figures` holds the paper's settings, :func:`simulate` runs them (resumable
through a checkpoint folder of one JSON line per finished point), :func:`csv_text`
and :func:`read_csv` write and read the CSV. The plots are drawn from the CSV by
:mod:`smoothing.power_figures`; ``simulations/power_curves.py`` and the demo run the
whole study (:func:`smoothing.runs.power.main`).

Seeds: every (scenario, point, stream) task draws from ``SeedSequence(seed,
spawn_key=...)``, so a point's numbers do not depend on which other figures or points
are run, nor in which order; 6a and 6b share their oracle draws (common random
numbers), as do all methods at one point.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multitest import oracle

__all__ = [
    "ALL_FIGURES",
    "COLUMNS",
    "COMPUTED",
    "FIXED_BUDGETS",
    "N_GRID",
    "RELATIVE_BUDGETS",
    "Figure",
    "agreement",
    "budgets_for",
    "cell_float",
    "csv_text",
    "figures",
    "gamma_grid",
    "read_csv",
    "relative_budget",
    "simulate",
    "task_seed",
    "total_reps",
]

COLUMNS = (
    "figure", "method", "N", "k", "gamma", "n0", "n", "alpha", "tau", "budget", "reps",
    "certified_rate", "stderr", "certified_right_rate", "analytic_rate",
)
ALL_FIGURES = ("2a", "2b", "2c", "5", "6a", "6b")
COMPUTED = ("2a", "2b", "2c", "6a", "6b")  # figure 5 is drawn from 2b and 2c
N_GRID = (10**2, 10**3, 10**4, 10**5, 10**6)
RELATIVE_BUDGETS = (0.001, 0.01)  # b = floor(0.001 N), floor(0.01 N)
FIXED_BUDGETS = (1, 2, 4)

# stable integer codes for the seed tree: scenario -> code; streams
_SCENARIO_CODE = {"2a": 21, "2b": 22, "2c": 23, "6": 6}
_ORACLE_STREAM, _JOINT_STREAM = 0, 1


@dataclass(frozen=True)
class Figure:
    """Parameters of one figure of the paper."""

    name: str
    scenario: str  # figures with the same scenario share their oracle draws
    Ns: tuple[int, ...]
    k: int
    gammas: tuple[float, ...]
    n0: int
    n: int
    alpha: float
    tau: float
    methods: tuple[str, ...]
    reps: int = 100


def gamma_grid(step: float) -> tuple[float, ...]:
    """0 to 0.1 inclusive in steps of `step` (rounded to 1e-9 to avoid 0.30000000000000004)."""
    m = int(round(0.1 / step))
    return tuple(round(i * step, 9) for i in range(m + 1))


def figures(quick: bool = False, reps: int | None = None) -> dict[str, Figure]:
    """The figure specifications; `quick` coarsens the gamma grid and cuts repetitions."""
    grid = gamma_grid(0.01 if quick else 0.001)
    main = ("jointclass", "indivclass", "segcertify_bonferroni", "segcertify_holm")

    def r(full: int, fast: int) -> int:
        return reps if reps is not None else (fast if quick else full)

    return {
        "2a": Figure("2a", "2a", (100,), 1, grid, 100, 100, 1e-3, 0.75, main, reps=r(600, 60)),
        "2b": Figure("2b", "2b", (100,), 1, grid, 1000, 1000, 1e-3, 0.75, main, reps=r(600, 20)),
        "2c": Figure("2c", "2c", N_GRID, 0, (0.05,), 1000, 1000, 0.1, 0.9,
                     ("segcertify_bonferroni", "segcertify_holm"), reps=r(100, 5)),
        "6a": Figure("6a", "6", N_GRID, 1, (0.05,), 1000, 1000, 0.1, 0.9,
                     ("segcertify_holm", "segcertify_kfwer"), reps=r(100, 5)),
        "6b": Figure("6b", "6", N_GRID, 1, (0.05,), 1000, 1000, 1e-3, 0.9,
                     ("segcertify_bonferroni", "segcertify_holm", "segcertify_kfwer"),
                     reps=r(100, 5)),
    }


def relative_budget(fraction: float, N: int) -> int:
    """The error budget ``floor(fraction N)`` (guarded against 0.001 * 1000 = 0.999...)."""
    return int(math.floor(fraction * N + 1e-9))


def budgets_for(N: int) -> list[int]:
    """Error budgets b > 0 of the k-FWER curves at N: 1, 2, 4, floor(0.001 N), floor(0.01 N)."""
    bs = set(FIXED_BUDGETS) | {relative_budget(f, N) for f in RELATIVE_BUDGETS}
    return sorted(b for b in bs if b > 0)


def task_seed(seed: int, scenario: str, point: int, stream: int) -> np.random.SeedSequence:
    """The seed of one task: independent of the order in which tasks run."""
    return np.random.SeedSequence(seed, spawn_key=(_SCENARIO_CODE[scenario], point, stream))


def _point_code(N: int, gamma: float) -> int:
    return N * 10**7 + int(round(gamma * 10**6))


# ---------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------
@dataclass
class _Acc:
    """Per-repetition rates of one curve point."""

    cert: list = field(default_factory=list)
    right: list = field(default_factory=list)

    def add(self, rates: oracle.Rates) -> None:
        self.cert.extend(rates.certified.tolist())
        self.right.extend(rates.certified_right.tolist())


def _curves(fig: Figure, N: int) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for m in fig.methods:
        if m == "segcertify_kfwer":
            out.extend((m, b) for b in budgets_for(N))
        elif m.startswith("segcertify"):
            out.append((m, 0))
        else:
            out.append((m, None))
    return out


def _analytic(fig: Figure, method: str, N: int, gamma: float) -> float | None:
    if method == "segcertify_bonferroni":
        return oracle.analytic_segcertify_bonferroni(N, fig.k, gamma, fig.n0, fig.n, fig.alpha,
                                                     fig.tau).certified
    if method == "indivclass":
        return oracle.analytic_indivclass(N, fig.k, gamma, fig.n0, fig.n, fig.alpha).certified
    return None


def _checkpoint_path(folder: Path, scenario: str, group: Sequence[Figure], seed: int) -> Path:
    """The file of one scenario's finished points; its name hashes every setting."""
    key = json.dumps([seed, scenario, [repr(f) for f in group]]).encode()
    return folder / f"{scenario}-{hashlib.sha256(key).hexdigest()[:16]}.jsonl"


def _load_checkpoint(path: Path) -> dict[int, dict]:
    """point code -> {curve key: [cert, right]} of the complete lines of `path`."""
    done: dict[int, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a torn last line from a killed run
                continue
            done[int(rec["point"])] = rec["curves"]
    return done


def _append_checkpoint(path: Path, point: int, curves: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps({"point": point, "curves": curves}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _curve_key(fig: str, method: str, b: int | None) -> str:
    return f"{fig}|{method}|{'' if b is None else b}"


def _by_scenario(figs: Sequence[Figure]) -> dict[str, list[Figure]]:
    by_scenario: dict[str, list[Figure]] = {}
    for f in figs:
        by_scenario.setdefault(f.scenario, []).append(f)
    return by_scenario


def total_reps(figs: Sequence[Figure]) -> int:
    """The repetitions :func:`simulate` draws for `figs` (the length of its progress)."""
    return sum(len(g[0].Ns) * len(g[0].gammas) * max(f.reps for f in g)
               for g in _by_scenario(figs).values())


class _NoBar:
    def update(self, n: int) -> None:
        pass


def simulate(figs: Sequence[Figure], seed: int, *, bar: Any = None,
             checkpoint: Path | None = None) -> list[dict]:
    """Run the Monte Carlo for `figs` and return the CSV rows (dicts keyed by COLUMNS).

    With `checkpoint` (a folder), finished points are saved there and points saved
    by an earlier run with the same settings are restored rather than recomputed.
    `bar` (e.g. a tqdm bar of :func:`total_reps` steps) is advanced by every
    repetition done or restored.
    """
    bar = _NoBar() if bar is None else bar
    by_scenario = _by_scenario(figs)
    acc: dict[tuple, _Acc] = {}
    if checkpoint is not None:
        checkpoint.mkdir(parents=True, exist_ok=True)
    for scenario, group in by_scenario.items():
        ref = group[0]
        reps = max(f.reps for f in group)
        ckpt = None if checkpoint is None else _checkpoint_path(checkpoint, scenario, group,
                                                                  seed)
        saved = {} if ckpt is None else _load_checkpoint(ckpt)
        for N in ref.Ns:
            for gamma in ref.gammas:
                point = _point_code(N, gamma)
                keys = [(f.name, method, b) for f in group for method, b in _curves(f, N)]
                if point in saved:
                    for name, method, b in keys:
                        cert, right = saved[point][_curve_key(name, method, b)]
                        acc[(name, method, b, N, gamma)] = _Acc(list(cert), list(right))
                    bar.update(reps)
                    continue
                gen = np.random.default_rng(task_seed(seed, scenario, point, _ORACLE_STREAM))
                # large N: one repetition at a time (memory); small N: all at once
                chunk = reps if N * reps <= 2_000_000 else 1
                done = 0
                while done < reps:
                    m = min(chunk, reps - done)
                    sample = oracle.sample_oracle(N, ref.k, gamma, ref.n0, ref.n, reps=m,
                                                  seed=gen)
                    for f in group:
                        if done >= f.reps:
                            continue
                        use = sample if done + m <= f.reps else _head(sample, f.reps - done)
                        for method, b in _curves(f, N):
                            if method == "jointclass":
                                continue
                            a = acc.setdefault((f.name, method, b, N, gamma), _Acc())
                            if method == "indivclass":
                                a.add(oracle.indivclass_rates(use, f.alpha))
                            else:
                                corr = method.removeprefix("segcertify_")
                                a.add(oracle.segcertify_rates(use, f.tau, f.alpha,
                                                              correction=corr, budget=b))
                    done += m
                    bar.update(m)
                for f in group:
                    if "jointclass" in f.methods:
                        jseed = task_seed(seed, scenario, point, _JOINT_STREAM)
                        rates = oracle.jointclass_rates(N, f.k, gamma, f.n0, f.n, f.alpha,
                                                        reps=f.reps, seed=jseed)
                        acc.setdefault((f.name, "jointclass", None, N, gamma), _Acc()).add(rates)
                if ckpt is not None:
                    _append_checkpoint(ckpt, point, {
                        _curve_key(name, method, b): [acc[(name, method, b, N, gamma)].cert,
                                                      acc[(name, method, b, N, gamma)].right]
                        for name, method, b in keys})
    rows = []
    for f in figs:
        for N in f.Ns:
            for gamma in f.gammas:
                for method, b in _curves(f, N):
                    a = acc[(f.name, method, b, N, gamma)]
                    rows.append(_row(f, method, b, N, gamma, a))
    return rows


def _head(sample: oracle.OracleCounts, m: int) -> oracle.OracleCounts:
    return oracle.OracleCounts(sample.right[:m], sample.counts[:m], sample.n0, sample.n)


def _fmt(x: float | None, spec: str = ".8g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return format(x, spec)


def _row(f: Figure, method: str, b: int | None, N: int, gamma: float, a: _Acc) -> dict:
    cert = np.asarray(a.cert)
    reps = cert.size
    if reps < 2:
        stderr = None
    elif np.all(cert == cert[0]):  # exactly 0, not the rounding noise of the mean
        stderr = 0.0
    else:
        stderr = float(cert.std(ddof=1) / math.sqrt(reps))
    seg = method.startswith("segcertify")
    return {
        "figure": f.name, "method": method, "N": str(N), "k": str(f.k),
        "gamma": _fmt(gamma, "g"), "n0": str(f.n0), "n": str(f.n), "alpha": _fmt(f.alpha, "g"),
        "tau": _fmt(f.tau, "g") if seg else "", "budget": "" if b is None else str(b),
        "reps": str(reps), "certified_rate": _fmt(float(cert.mean())),
        "stderr": _fmt(stderr), "certified_right_rate": _fmt(float(np.mean(a.right))),
        "analytic_rate": _fmt(_analytic(f, method, N, gamma)),
    }


def cell_float(s: str) -> float:
    """A numeric CSV cell as a float (an empty cell is NaN)."""
    return float(s) if s != "" else math.nan


def agreement(rows: list[dict]) -> tuple[int, float]:
    """Points with an exact value and ``stderr > 0``, and the largest ``|MC - exact| / stderr``."""
    num = cell_float
    z = [abs(num(r["certified_rate"]) - num(r["analytic_rate"])) / num(r["stderr"])
         for r in rows if r["analytic_rate"] and r["stderr"] and num(r["stderr"]) > 0]
    return len(z), max(z, default=0.0)


def csv_text(rows: list[dict]) -> str:
    """The tidy CSV of `rows`: a header of :data:`COLUMNS`, one line per row."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
