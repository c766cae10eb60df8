"""The demo itself: :func:`run_demo` checks its settings, takes the folder's lock, runs
the steps, then writes the tables, the figures and ``manifest.json``."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from smoothing._io import FolderLock, remove_stale_temps, temp_tag, write_atomic
from smoothing.runs.config import MAX_SEED, check_bounded
from smoothing.runs.demo.config import DemoConfig, resolve_config
from smoothing.runs.demo.figures import draw_figures
from smoothing.runs.demo.steps import ResultFiles, certify_rotation, certify_streets, run_power
from smoothing.runs.demo.tables import write_tables

__all__ = ["LOCK", "run_demo"]

#: The lock file a demo holds in its folder while it runs.
LOCK = ".lock"


def run_demo(out_dir: str | os.PathLike[str], *, quick: bool = True, seed: int = 0,
             progress: bool = True, config: DemoConfig | None = None,
             **overrides: Any) -> dict[str, Path]:
    """Run the end-to-end demonstration on built-in data and write its results.

    Parameters
    ----------
    out_dir : path
        Output folder (created); see the module docstring for its layout. A
        folder of an earlier, interrupted or finished run is resumed: every
        result file already there and complete for the same settings is reused.
    quick : bool, default True
        :data:`QUICK` settings (about a minute on 2 CPU cores) rather than
        :data:`FULL` (about 20 minutes).
    seed : int, default 0
        Root seed of all Monte-Carlo noise and attacks; the same seed gives the
        same numbers (times aside).
    progress : bool, default True
        Show tqdm progress bars.
    config : DemoConfig, optional
        Settings to use instead of the preset chosen by ``quick``.
    **overrides
        Fields of :class:`DemoConfig` to replace, e.g. ``n_images=2``.

    Returns
    -------
    dict of str to pathlib.Path
        Every file written, by name (``'manifest'``, ``'streets_table'``,
        ``'streets_table_md'``, ``'rotation_table'``, ``'fig1'``, ...).

    Raises
    ------
    ValueError
        If ``seed`` is outside [0, 2**64 - 1], ``out_dir`` is empty, a model name is
        unknown or of the wrong kind, a setting is out of range, or ``attack_run`` /
        ``table_taus`` are not among ``image_runs`` and ``taus``.
    smoothing._io.FolderLockedError
        (a ValueError) If another demo is writing into ``out_dir``: a demo holds
        the lock file ``out_dir/.lock`` while it runs (:data:`LOCK`).
    TypeError
        If ``seed`` is not an integer, ``config`` is not a :class:`DemoConfig`, or
        ``overrides`` names no field of :class:`DemoConfig`.

    Notes
    -----
    The computation runs on the CPU with torch's current number of threads.
    Results are written as ``.npz`` first (atomically: a temporary file, then a
    rename); tables and figures are then built from those files by
    :func:`write_tables` and :func:`draw_figures`.

    **Resuming.** Every ``.npz`` stores the settings it was computed with. A
    re-run into the same folder reuses each file whose settings match and
    recomputes only the missing, damaged or differently-configured ones, so a
    killed demo loses at most the run it was in. ``manifest.json`` lists them
    under ``files_computed`` and ``files_reused``, and its ``history`` keeps the
    timings of every finished invocation. The reused files keep their original
    timings. To start afresh, use a new folder or delete the old one.

    Examples
    --------
    >>> from smoothing.runs.demo import run_demo
    >>> paths = run_demo("results", n_images=2)  # doctest: +SKIP
    >>> paths["streets_table_md"].read_text()  # doctest: +SKIP
    """
    seed = check_bounded(seed, "seed", 0, MAX_SEED, "2**64 - 1")
    cfg = resolve_config(quick, config, overrides)
    if not os.fspath(out_dir).strip():
        raise ValueError("`out_dir` must name a folder; got an empty path (it would be the "
                         "current folder; write '.' for that).")
    out = Path(out_dir)
    lock = FolderLock(out, LOCK)  # creates the folder; a second demo into it is refused
    lock.acquire()
    try:
        for folder in (out, *(out / sub for sub in ("power", "streets", "rotation"))):
            remove_stale_temps(folder)  # of killed demos (a live one would hold the lock)
        return _run_locked(out, cfg, seed, progress, preset=None if config or overrides
                           else ("quick" if quick else "full"))
    finally:
        lock.release()


def _run_locked(out: Path, cfg: DemoConfig, seed: int, progress: bool,
                preset: str | None) -> dict[str, Path]:
    """The body of :func:`run_demo`, holding the folder's lock."""
    store = ResultFiles(out)
    timings: dict[str, float] = {}
    manifest: dict[str, Any] = {
        "seed": seed, "preset": preset, "config": asdict(cfg),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    history = _previous_history(out)
    t_start = time.perf_counter()
    if cfg.power_args is not None:
        t0 = time.perf_counter()
        manifest["power_computed"] = run_power(out / "power", cfg, seed, progress)
        timings["power"] = time.perf_counter() - t0
        manifest["power"] = "power/power_curves.csv"
    t0 = time.perf_counter()
    manifest["streets"] = certify_streets(out, cfg, seed, progress, store)
    timings["streets"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    manifest["rotation"] = certify_rotation(out, cfg, seed, progress, store)
    timings["rotation"] = time.perf_counter() - t0
    manifest["files_computed"], manifest["files_reused"] = store.computed, store.reused
    manifest["timings_s"] = timings
    _write_manifest(out, manifest)
    paths = {"manifest": out / "manifest.json"}
    if cfg.power_args is not None:
        paths["power_csv"] = out / "power" / "power_curves.csv"
    t0 = time.perf_counter()
    paths.update(write_tables(out))
    paths.update(draw_figures(out))
    timings["tables_and_figures"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    manifest["history"] = [*history, {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "timings_s": timings,
        "torch_threads": manifest["torch_threads"], "files_computed": len(store.computed),
        "files_reused": len(store.reused)}]
    _write_manifest(out, manifest)
    reused = f"; {len(store.reused)} result files reused" if store.reused else ""
    print(f"demo done in {timings['total']:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in timings.items() if k != 'total')}"
          f"{reused}); results in {out}")
    return paths


def _previous_history(out: Path) -> list[dict[str, Any]]:
    """The ``history`` of an earlier ``manifest.json`` in ``out`` (empty if none)."""
    try:
        history = json.loads((out / "manifest.json").read_text()).get("history", [])
    except (OSError, ValueError, AttributeError):
        return []
    return history if isinstance(history, list) else []


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1).encode(),
                 tag=temp_tag())
