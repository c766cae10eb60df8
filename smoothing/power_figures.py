"""The figures of the power study of §6.1 (Figs. 2, 5 and 6 of the paper), drawn from
the rows of its CSV (:mod:`multitest.power_study`), so that a figure can be redrawn
without simulating again.

:func:`plot` writes ``power_fig{name}.png`` per figure (atomically); the curves over
gamma are smoothed as in the paper (Savitzky-Golay, window 11, degree 1) only on
grids of at least :data:`MIN_SMOOTH_POINTS` points, and every panel with an exact
curve explains its dashed line. matplotlib and scipy are imported when drawing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multitest.power_study import FIXED_BUDGETS, RELATIVE_BUDGETS, cell_float, relative_budget
from smoothing._io import temp_tag, write_atomic

__all__ = ["COLORS", "EXACT_LABEL", "LABELS", "MIN_SMOOTH_POINTS", "plot", "smooth", "smooths"]

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


def _series(rows, figure, method, budget=None):
    sel = [r for r in rows if r["figure"] == figure and r["method"] == method
           and (budget is None or r["budget"] == str(budget))]
    return sel


def _arrays(sel, x):
    xs = np.array([cell_float(r[x]) for r in sel])
    order = np.argsort(xs)
    get = lambda c: np.array([cell_float(sel[i][c]) for i in order])  # noqa: E731
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
        curves += [(f"b={f:g}N", lambda N, f=f: relative_budget(f, N))
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
                    r = sel[0]
                    pts.append((N, cell_float(r["certified_rate"]), cell_float(r["stderr"])))
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
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        write_atomic(path, buf.getvalue(), tag=temp_tag())
        written.append(path)
    return written
