"""Power of JOINTCLASS, INDIVCLASS and SEGCERTIFY on the oracle of §6.1 (Figs. 2, 5, 6).

Monte Carlo on the oracle's counts (:mod:`simulations.oracle`), exact analytic
curves where they exist (SEGCERTIFY-Bonferroni, INDIVCLASS), one tidy CSV, one PNG
per figure drawn from the CSV::

    python simulations/power_curves.py                      # full study, ~1 min
    python simulations/power_curves.py --quick --out /tmp/pc  # < 30 s
    python simulations/power_curves.py --plot-only --out results/power_curves

An interrupted run resumes: every finished (scenario, N, gamma) point is appended to
``OUT/checkpoint/<scenario>-<settings hash>.jsonl`` (one flushed and fsynced line a
point; a torn last line is ignored), and a rerun with the same settings and seed
restores those points instead of drawing them again. The result is identical to an
uninterrupted run; other settings write to another file. ``--fresh`` ignores
saved points.

Figures (the paper's parameters; ``reps`` are our defaults):

======  ====================  ===  =================  =========  =====  ====  ====
figure  N                     k    gamma              n0 = n     alpha  tau   reps
======  ====================  ===  =================  =========  =====  ====  ====
2a      100                   1    0 to 0.1 by 0.001  100        1e-3   0.75  600
2b      100                   1    0 to 0.1 by 0.001  1000       1e-3   0.75  600
2c      10^2 .. 10^6          0    0.05               1000       0.1    0.9   100
6a      10^2 .. 10^6          1    0.05               1000       0.1    0.9   100
6b      10^2 .. 10^6          1    0.05               1000       1e-3   0.9   100
======  ====================  ===  =================  =========  =====  ====  ====

Figure 5 is the unsmoothed 2b and 2c. Seeds: every (scenario, point, stream) task
draws from ``SeedSequence(seed, spawn_key=...)``, so a point's numbers do not depend
on which other figures or points are run, nor in which order; 6a and 6b share their
oracle draws (common random numbers), as do all methods at one point.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    from simulations import oracle
except ModuleNotFoundError:  # run as a script: python simulations/power_curves.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from simulations import oracle

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


def _relative_budget(fraction: float, N: int) -> int:
    """The error budget ``floor(fraction N)`` (guarded against 0.001 * 1000 = 0.999...)."""
    return int(math.floor(fraction * N + 1e-9))


def budgets_for(N: int) -> list[int]:
    """Error budgets b > 0 of the k-FWER curves at N: 1, 2, 4, floor(0.001 N), floor(0.01 N)."""
    bs = set(FIXED_BUDGETS) | {_relative_budget(f, N) for f in RELATIVE_BUDGETS}
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


def simulate(figs: Sequence[Figure], seed: int, *, progress: bool = True,
             checkpoint: Path | None = None) -> list[dict]:
    """Run the Monte Carlo for `figs` and return the CSV rows (dicts keyed by COLUMNS).

    With `checkpoint` (a folder), finished points are saved there and points saved
    by an earlier run with the same settings are restored rather than recomputed.
    """
    from tqdm import tqdm

    by_scenario: dict[str, list[Figure]] = {}
    for f in figs:
        by_scenario.setdefault(f.scenario, []).append(f)
    total = sum(len(g[0].Ns) * len(g[0].gammas) * max(f.reps for f in g)
                for g in by_scenario.values())
    bar = tqdm(total=total, disable=not progress, unit="rep", desc="power curves")
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
    bar.close()
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


def agreement(rows: list[dict]) -> tuple[int, float]:
    """Points with an exact value and ``stderr > 0``, and the largest ``|MC - exact| / stderr``."""
    z = [abs(_num(r["certified_rate"]) - _num(r["analytic_rate"])) / _num(r["stderr"])
         for r in rows if r["analytic_rate"] and r["stderr"] and _num(r["stderr"]) > 0]
    return len(z), max(z, default=0.0)


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------
# plots (from the CSV only)
# ---------------------------------------------------------------------------
LABELS = {
    "jointclass": "JointClass",
    "indivclass": "IndivClass",
    "segcertify_bonferroni": "SegCertify Bon",
    "segcertify_holm": "SegCertify Holm",
}
COLORS = {
    "jointclass": "tab:red",
    "indivclass": "tab:orange",
    "segcertify_bonferroni": "tab:blue",
    "segcertify_holm": "tab:green",
}


def _num(s: str) -> float:
    return float(s) if s != "" else math.nan


def _series(rows, figure, method, budget=None):
    sel = [r for r in rows if r["figure"] == figure and r["method"] == method
           and (budget is None or r["budget"] == str(budget))]
    return sel


def _arrays(sel, x):
    xs = np.array([_num(r[x]) for r in sel])
    order = np.argsort(xs)
    get = lambda c: np.array([_num(sel[i][c]) for i in order])  # noqa: E731
    return xs[order], get("certified_rate"), get("stderr"), get("analytic_rate")


#: Fewest gamma points a curve needs to be smoothed: on a coarser grid (the quick
#: mode's 11 points) a window-11 filter is one straight line through the whole curve.
MIN_SMOOTH_POINTS = 30


def smooths(num_points: int) -> bool:
    """Whether a curve of ``num_points`` gamma values is drawn smoothed (>= MIN_SMOOTH_POINTS).

    >>> smooths(11), smooths(101)
    (False, True)
    """
    return num_points >= MIN_SMOOTH_POINTS


def smooth(y: np.ndarray, window: int = 11, degree: int = 1) -> np.ndarray:
    """The paper's smoothing: Savitzky–Golay (window 11, degree 1), clipped to [0, 1].

    The plots apply it only where :func:`smooths` allows.
    """
    from scipy.signal import savgol_filter

    w = min(window, y.size if y.size % 2 else y.size - 1)
    if w <= degree:
        return np.clip(y, 0.0, 1.0)
    return np.clip(savgol_filter(y, w, degree), 0.0, 1.0)


def _band(ax, x, y, se, color):
    if np.all(np.isnan(se)):
        return
    se = np.nan_to_num(se)
    ax.fill_between(x, np.clip(y - 1.96 * se, 0, 1), np.clip(y + 1.96 * se, 0, 1),
                    color=color, alpha=0.2, linewidth=0)


EXACT_LABEL = "dashed: exact (analytic)"


def _gamma_panel(ax, rows, fig, smoothed) -> bool:
    """Draw the curves of `fig` over gamma; returns whether they were smoothed.

    `smoothed` asks for the paper's smoothing, which is applied only to curves with
    enough points (:func:`smooths`); the others are drawn raw, with markers. Every
    panel with an exact curve explains the dashed line in its legend.
    """
    did_smooth, exact = False, False
    for method in LABELS:
        sel = _series(rows, fig, method)
        if not sel:
            continue
        x, y, se, an = _arrays(sel, "gamma")
        c = COLORS[method]
        if smoothed and smooths(x.size):
            ax.plot(x, smooth(y), color=c, label=LABELS[method])
            did_smooth = True
        else:
            ax.plot(x, y, color=c, lw=0.9, label=LABELS[method],
                    marker="o" if x.size < MIN_SMOOTH_POINTS else None, ms=3)
            _band(ax, x, y, se, c)
        if not np.all(np.isnan(an)):
            ax.plot(x, an, color=c, ls="--", lw=1.1)
            exact = True
    if exact:
        ax.plot([], [], color="0.3", ls="--", lw=1.1, label=EXACT_LABEL)
    ax.set_xlabel(r"$\gamma$")
    ax.set_ylabel("certified rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    return did_smooth


def _params(rows, fig):
    sel = [r for r in rows if r["figure"] == fig]
    r = sel[0]
    tau = next((x["tau"] for x in sel if x["tau"]), "")
    Ns = sorted({int(x["N"]) for x in sel})
    N = f"{Ns[0]}" if len(Ns) == 1 else f"{Ns[0]:.0e}..{Ns[-1]:.0e}"
    gs = sorted({float(x["gamma"]) for x in sel})
    gamma = "" if len(gs) > 1 else f"gamma={gs[0]:g}, "
    reps = "/".join(sorted({x["reps"] for x in sel}, key=int))
    return (f"N={N}, k={r['k']}, {gamma}n0=n={r['n']}, alpha={r['alpha']}, tau={tau}, "
            f"reps={reps}")


def _n_panel(ax, rows, fig, budgets: bool):
    cmap = {"segcertify_bonferroni": "tab:blue", "segcertify_holm": "tab:green"}
    for method in ("segcertify_bonferroni", "segcertify_holm"):
        sel = _series(rows, fig, method)
        if not sel:
            continue
        x, y, se, an = _arrays(sel, "N")
        label = LABELS[method] + (" (b=0)" if budgets and method.endswith("holm") else "")
        ax.errorbar(x, y, yerr=1.96 * np.nan_to_num(se), color=cmap[method], marker="o",
                    ms=4, capsize=3, label=label)
        _band(ax, x, y, se, cmap[method])
        if not np.all(np.isnan(an)):
            ax.plot(x, an, color="k", ls="--", lw=0.9, marker="x", ms=6, zorder=5,
                    label=LABELS[method] + " exact")
    if budgets:
        curves = [(f"b={b}", lambda N, b=b: b) for b in FIXED_BUDGETS]
        curves += [(f"b={f:g}N", lambda N, f=f: _relative_budget(f, N))
                   for f in RELATIVE_BUDGETS]
        colors = ["tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
        Ns = sorted({int(r["N"]) for r in rows if r["figure"] == fig})
        for (label, bfun), c in zip(curves, colors, strict=True):
            pts = []
            for N in Ns:
                b = bfun(N)
                method = "segcertify_kfwer" if b > 0 else "segcertify_holm"
                sel = [r for r in _series(rows, fig, method, b) if int(r["N"]) == N]
                if sel:
                    pts.append((N, _num(sel[0]["certified_rate"]), _num(sel[0]["stderr"])))
            if pts:
                x, y, se = map(np.array, zip(*pts, strict=True))
                ax.errorbar(x, y, yerr=1.96 * np.nan_to_num(se), color=c, marker="s", ms=3,
                            capsize=2, lw=1, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel("certified rate")
    ax.grid(alpha=0.3)


def _left_title(did_smooth: bool, rows: list[dict], fig: str) -> str:
    """Title of the left panel of Fig. 2a/2b: smoothed, or why not."""
    if did_smooth:
        return "smoothed (Savitzky–Golay 11, deg. 1)"
    points = len({r["gamma"] for r in rows if r["figure"] == fig})
    return f"not smoothed: {points} γ points (smoothing needs ≥ {MIN_SMOOTH_POINTS})"


def plot(rows: list[dict], out: Path, names: Sequence[str]) -> list[Path]:
    """Draw the PNGs of `names` from the CSV rows; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = {r["figure"] for r in rows}
    written = []
    for name in names:
        need = {"5": {"2b", "2c"}}.get(name, {name})
        if not need <= present:
            continue
        if name in ("2a", "2b"):
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
            axes[0].set_title(_left_title(_gamma_panel(axes[0], rows, name, smoothed=True),
                                          rows, name), fontsize=9)
            _gamma_panel(axes[1], rows, name, smoothed=False)
            axes[1].set_title("raw, 95% band", fontsize=9)
            axes[0].legend(fontsize=8, loc="lower left")
            axes[1].legend(handles=[h for h in axes[1].get_lines()
                                    if h.get_label() == EXACT_LABEL], fontsize=8,
                           loc="lower left")
            fig.suptitle(f"Fig. {name}: {_params(rows, name)}", fontsize=10)
        elif name == "5":
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
            _gamma_panel(axes[0], rows, "2b", smoothed=False)
            axes[0].set_title("(a) unsmoothed Fig. 2b", fontsize=9)
            axes[0].legend(fontsize=8, loc="lower left")
            _n_panel(axes[1], rows, "2c", budgets=False)
            axes[1].set_title("(b) unsmoothed Fig. 2c", fontsize=9)
            axes[1].legend(fontsize=8, loc="lower left")
            fig.suptitle("Fig. 5 (95% bands; dashed: exact)", fontsize=10)
        else:
            fig, ax = plt.subplots(figsize=(6, 4))
            _n_panel(ax, rows, name, budgets=name.startswith("6"))
            ax.legend(fontsize=7, loc="lower left", ncol=2)
            ax.set_title(f"Fig. {name}: {_params(rows, name)}", fontsize=8)
        fig.tight_layout()
        path = out / f"power_fig{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def _parse_figures(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in ALL_FIGURES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"`--figures` takes a comma-separated subset of {','.join(ALL_FIGURES)}; got {text!r}."
        )
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Power curves of Figs. 2, 5 and 6 of Fischer et al. (2021) on the oracle.")
    parser.add_argument("--out", type=Path, default=Path("results/power_curves"),
                        help="output directory (default: results/power_curves/)")
    parser.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions per point for every figure (default: per figure)")
    parser.add_argument("--figures", type=_parse_figures, default=list(ALL_FIGURES),
                        help="comma-separated subset of 2a,2b,2c,5,6a,6b (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="coarse gamma grid (step 0.01) and few repetitions: < 30 s")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the PNGs from an existing OUT/power_curves.csv")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--fresh", action="store_true",
                        help="recompute every point (ignore OUT/checkpoint/)")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error(f"`--reps` must be an integer >= 1; got {args.reps}.")
    if args.seed < 0:
        parser.error(f"`--seed` must be >= 0; got {args.seed}.")
    out: Path = args.out
    csv_path = out / "power_curves.csv"
    t0 = time.perf_counter()
    if args.plot_only:
        if not csv_path.exists():
            parser.error(f"--plot-only needs {csv_path}, which does not exist.")
        rows = read_csv(csv_path)
    else:
        specs = figures(quick=args.quick, reps=args.reps)
        wanted = set(args.figures)
        if "5" in wanted:
            wanted |= {"2b", "2c"}
        figs = [specs[name] for name in COMPUTED if name in wanted]
        ckpt = out / "checkpoint"
        if args.fresh and ckpt.exists():
            for old in ckpt.glob("*.jsonl"):
                old.unlink()
        rows = simulate(figs, args.seed, progress=not args.no_progress, checkpoint=ckpt)
        write_csv(rows, csv_path)
        rows = read_csv(csv_path)  # plots come from the CSV, as in --plot-only
    out.mkdir(parents=True, exist_ok=True)
    paths = plot(rows, out, args.figures)
    dt = time.perf_counter() - t0
    if not args.plot_only:
        print(f"wrote {csv_path} ({len(rows)} rows)")
        npts, zmax = agreement(rows)
        print(f"Monte Carlo vs exact: {npts} points with stderr > 0, "
              f"max |MC - exact| / stderr = {zmax:.2f}")
    for p in paths:
        print(f"wrote {p}")
    print(f"done in {dt:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
