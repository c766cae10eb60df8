"""The end-to-end demonstration on built-in data (``python -m smoothing demo``).

:func:`run_demo` runs, on a CPU in a few minutes:

1. the power study of §6.1 on the synthetic oracle, in its quick mode
   (:func:`smoothing.runs.power.main`, i.e. ``simulations/power_curves.py --quick``)
   -> ``power/``;
2. SEGCERTIFY on built-in :class:`~smoothing.datasets.SyntheticStreets` scenes with
   the shipped U-Nets (``sigma`` 0.25 and 0.5 with the model trained at that
   ``sigma``, and the non-robust ``streets-unet-clean``), for a grid of ``n`` and
   ``tau``, plus an l2 PGD attack on the non-robust model for Fig. 1 -> ``streets/``;
3. SEGCERTIFY with :class:`samplers.RotationZ` (rotation smoothing, App. B.5) on
   built-in :class:`~smoothing.datasets.SyntheticParts` objects with a shipped
   PointNet -> ``rotation/``;

saving every certified label map, count and timing (``.npz``) **first**. Only then
:func:`write_tables` reads the saved files back into tidy CSVs and the tables
(Table 1 and Table 7 of the paper, CSV + Markdown), and :func:`draw_figures`
draws the figures from the saved files; both can be re-run on a finished
output folder.

Output folder::

    manifest.json            what was run (the configuration, files, timings)
    power/                   power_curves.csv, power_fig*.png
    streets/                 data.npz, base_<model>.npz, cert_<model>_sigma<s>_n<n>.npz,
                             attack.npz
    streets_attack.csv/.md   accuracy of the base models under l2 PGD
    rotation/                data.npz, base.npz, cert_sigma<s>.npz
    streets_table.csv/.md    Table 1 analogue        streets_per_image.csv
    streets_curve.csv        accuracy per (run, tau) for Fig. 3
    rotation_table.csv/.md   Table 7 analogue        rotation_per_cloud.csv
    rotation_curve.csv       accuracy per (sigma, tau)
    figures/                 fig1_streets.png, streets_tau.png,
                             cert_acc_radius_streets.png, cert_acc_radius_rotation.png

**Several tau from one sampling run.** The guesses and counts of SEGCERTIFY do
not depend on ``tau``; only the test does. Each sampling run is therefore done
once (``SegCertify.certify`` with the first ``tau``) and re-tested with
:func:`multitest.certify_counts` for every ``tau`` of the grid. The labels are
exactly those of ``SegCertify(..., tau=t).certify`` with the same generator seed
(tested), and each tau's certificate holds with probability ``1 - alpha`` on its
own. The time per input reported for a ``tau`` is the sampling time of its run
plus the time of its test, i.e. what a separate run would take.

**Resuming.** Every ``.npz`` is written atomically (a temporary file, then
``os.replace``) and stores, under ``meta``, the settings that determine it. Running
the demo again into the same folder reuses every complete file whose settings
match and recomputes only the others, so a killed demo loses at most the sampling
run or attack it was in; the power study is skipped when its marker
``power/demo_power.json`` matches. ``manifest.json`` lists ``files_computed`` and
``files_reused``; reused files keep their original timings. To start afresh, use a
new folder (or delete the old one).

**One demo per folder.** A demo holds the lock file ``.lock`` in its folder while it
runs (:class:`smoothing._io.FolderLock`, as a certification run does); a second demo
into the same folder is refused before it writes anything, and a lock left by a
killed demo is taken over. Every file is written atomically
(:func:`smoothing._io.write_atomic`), and a start removes the temporary files of
killed demos.

**Modules.** :mod:`~smoothing.runs.demo.config` (:class:`DemoConfig`, the presets and
their checks), :mod:`~smoothing.runs.demo.steps` (the computing steps and their
result files), :mod:`~smoothing.runs.demo.tables`, :mod:`~smoothing.runs.demo.figures`
and :mod:`~smoothing.runs.demo.run` (:func:`run_demo`).

**Seeds.** Every sampling run and attack draws from its own generator seeded by
``SeedSequence([seed, ...])`` of the demo's ``seed`` and the run's parameters,
so a number does not depend on which other runs are done. The data are the
built-in ``test`` splits with data seed 0.
"""

from smoothing.runs.demo.config import CLEAN_MODEL, FULL, QUICK, DemoConfig
from smoothing.runs.demo.figures import draw_figures
from smoothing.runs.demo.run import run_demo
from smoothing.runs.demo.tables import write_tables

__all__ = ["CLEAN_MODEL", "FULL", "QUICK", "DemoConfig", "draw_figures", "run_demo",
           "write_tables"]
