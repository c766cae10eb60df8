"""Power of JOINTCLASS, INDIVCLASS and SEGCERTIFY on the oracle of §6.1 (Figs. 2, 5, 6).

Monte Carlo on the oracle's counts (:mod:`multitest.oracle`), exact analytic
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

The study lives in the library, so that the demo (``python -m smoothing demo``) can
run it without importing this script: :mod:`multitest.power_study` simulates,
:mod:`smoothing.power_figures` draws, :func:`smoothing.runs.power.main` is this
command. The names below are re-exported for existing callers.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a script: this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from multitest import oracle  # noqa: E402
from multitest.power_study import (  # noqa: E402
    ALL_FIGURES,
    COLUMNS,
    COMPUTED,
    FIXED_BUDGETS,
    N_GRID,
    RELATIVE_BUDGETS,
    Figure,
    agreement,
    budgets_for,
    csv_text,
    figures,
    gamma_grid,
    read_csv,
    simulate,
    task_seed,
    total_reps,
)
from smoothing.power_figures import (  # noqa: E402
    COLORS,
    EXACT_LABEL,
    LABELS,
    MIN_SMOOTH_POINTS,
    plot,
    smooth,
    smooths,
)
from smoothing.runs.power import main  # noqa: E402

__all__ = [
    "ALL_FIGURES", "COLORS", "COLUMNS", "COMPUTED", "EXACT_LABEL", "FIXED_BUDGETS",
    "LABELS", "MIN_SMOOTH_POINTS", "N_GRID", "RELATIVE_BUDGETS", "Figure", "agreement",
    "budgets_for", "csv_text", "figures", "gamma_grid", "main", "oracle", "plot",
    "read_csv", "simulate", "smooth", "smooths", "task_seed", "total_reps",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
