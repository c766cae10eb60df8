"""Per-component certified radius maps of a data set: a run (``segcertify radius-maps``).

For every selected input and every (sigma, n) of the grid, ONE sampling of
SEGCERTIFY gives the counts, and :func:`smoothing._radius.radius_map_from_counts`
turns them into every component's own certified radius (simultaneously valid at
``alpha``). It is a run like ``certify``'s (:mod:`smoothing.runs.store`): its
options are in ``config.json`` (``kind: radius_maps``, with ``method`` and
``levels``), it holds the folder's lock, every map is a checked record, and a rerun
resumes it (a rerun with other options is refused). The noise of input ``i`` at
``(sigma, n)`` is ``certify``'s, :func:`~smoothing.runs.config.noise_seed` of
``GridPoint.sample_key``: the counts equal a ``certify`` run's, and ``tau`` plays no
part (nor do ``correction`` and ``k``: :data:`IGNORED_OPTIONS`). ``source=`` a
finished certify run folder takes the counts from its label files instead of
sampling (the run's options must be the same).

Written to ``OUT``:

``radius_maps/{index:06d}-sigma{s}-n{n}.npz``
    ``radius`` (float32, component shape; 0 where abstaining), ``labels`` (the
    certified class, -1 where abstaining), ``p_lower``, ``guesses``, ``counts``,
    ``target`` (ground truth) and, for RGB images, ``image``.
``results.jsonl``
    One record per map (certified fraction, certified accuracy, radii, timings,
    noise seed), written after its ``.npz``.
``figures/{index:06d}-sigma{s}-n{n}.png``
    The input, its radius map (radius as colour, abstentions white) and the
    certified labels against the ground truth (certified but wrong in red).
``radius_maps.csv``
    One row per map, written from the checked records at the end of every run.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smoothing.datasets._common import IGNORE_INDEX
from smoothing.runs._checks import MAP_IGNORES, NOT_COMPARED, RunInfo
from smoothing.runs._journal import RunFolderWarning
from smoothing.runs.config import GridPoint, RunConfig, fmt_value, noise_seed
from smoothing.runs.engine import CertificationRun
from smoothing.runs.store import RunStore

__all__ = ["COLUMNS", "IGNORED_OPTIONS", "radius_maps_record", "run_config",
           "write_radius_maps"]

#: Options of a certify run that a radius map does not use (nor compare on resume).
IGNORED_OPTIONS: tuple[str, ...] = MAP_IGNORES

COLUMNS = ("input", "sigma", "n", "n0", "alpha", "method", "levels", "certified",
           "certified_accuracy", "mean_radius", "mean_certified_radius", "max_radius",
           "time_sampling", "time_testing", "noise_seed", "file")


def run_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    """The options of the certify run in ``run_dir`` (its checked ``config.json``)."""
    info = RunStore(run_dir).info()
    if info.kind != "certify":
        raise ValueError(f"`from_run` '{run_dir}' holds a {info.kind} run, not a certify run.")
    try:  # a radius map is flat: a hierarchical run's maps are those of its fine classes
        return RunConfig(**{**info.config, "hierarchy": None, "hierarchy_rule": "nested"})
    except TypeError as err:
        raise ValueError(f"'{run_dir}/config.json' has options this version does not know "
                         f"({err}).") from err


def radius_maps_record(run: CertificationRun, method: str,
                       levels: Sequence[float] | None) -> dict[str, Any]:
    """The ``config.json`` content of a radius-maps run of ``run``'s options."""
    blob = copy.deepcopy(run.record)
    blob["kind"] = "radius_maps"
    blob["derived"]["grid"] = [g.sample_key for g in _points(run.grid)]
    blob["radius_maps"] = {"method": method,
                           "levels": None if levels is None else [float(v) for v in levels]}
    return blob


def _points(grid: Sequence[GridPoint]) -> list[GridPoint]:
    """One grid point per sampling (sigma, n), in grid order."""
    points: dict[str, GridPoint] = {}
    for g in grid:
        points.setdefault(g.sample_key, g)
    return list(points.values())


def write_radius_maps(run: CertificationRun, out: str | os.PathLike[str], *,
                      method: str = "bonferroni", levels: Sequence[float] | None = None,
                      figures: bool = True, progress: bool = True,
                      source: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Write the radius maps of ``run`` into the run folder ``out``; resumable.

    Parameters
    ----------
    run : CertificationRun
        The prepared run (:func:`~smoothing.runs.prepare`); its ``tau`` is not used.
    out : str or os.PathLike
        The folder (a folder of the same radius-maps run is resumed).
    method : {'bonferroni', 'ladder'}
        Simultaneous lower bounds (:func:`multitest.simultaneous_lower_bounds`).
    levels : sequence of float, optional
        The ladder of ``method='ladder'``.
    figures : bool, default True
        Draw a figure per map (images only); recorded maps without one get it.
    progress : bool, default True
        A progress bar on stderr.
    source : str or os.PathLike, optional
        A certify run folder of the same options: its recorded counts are used
        (no sampling); maps it has no usable counts for are sampled, with the same
        noise.

    Returns
    -------
    (computed, reused) : (int, int)
        Maps computed now, and how many of them took their counts from ``source``.

    Raises
    ------
    ValueError
        As :meth:`RunStore.check_resume` (another run's folder, other options,
        a live run there) and if ``source`` is no certify run of ``run``'s options.
    """
    from tqdm import tqdm

    store = RunStore(out)
    blob = radius_maps_record(run, method, levels)
    counts_from = _SourceRun(source, run) if source is not None else None
    if counts_from is not None:
        blob["runtime"]["source"] = str(Path(source).resolve())
    store.check_resume(blob)  # before the lock creates the folder
    images = run.layout in ("BCHW", "BHWC")
    computed = reused = 0
    with store.lock():
        store.open(blob)
        done = store.done()
        points = _points(run.grid)
        bar = tqdm(run.indices, desc="radius-maps", unit="input", file=sys.stderr,
                   disable=not progress)
        for index in bar:
            todo = [g for g in points if (index, g.sample_key) not in done]
            if not todo:
                continue
            item = run.dataset[index]
            x, target = item[0], item[1].numpy()
            for g in todo:
                found = counts_from.counts(index, g) if counts_from is not None else None
                record, arrays = _one_map(run, index, x, target, g, method, levels, found)
                record = store.add(record, arrays)  # the layers first, then the record
                if figures and images:
                    _figure(store, run, record, arrays)
                computed += 1
                reused += found is not None
        checked = store.records()
        if figures and images:
            _draw_missing(store, run, checked)
        store.write_text("radius_maps.csv", _csv(checked), locked=True)
    return computed, reused


def _one_map(run: CertificationRun, index: int, x: torch.Tensor, target: np.ndarray,
             g: GridPoint, method: str, levels: Sequence[float] | None,
             found: tuple[np.ndarray, np.ndarray, float] | None,
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from smoothing._radius import radius_map_from_counts

    cfg = run.config
    certifier = run.certifiers[g.key]
    seed = noise_seed(cfg.seed, index, g.sample_key)
    if found is None:
        cert = certifier.certify(x, generator=torch.Generator().manual_seed(seed))
        guesses, counts, t_sampling = cert.guesses.numpy(), cert.counts.numpy(), \
            cert.time_sampling
    else:
        guesses, counts, t_sampling = found
    t0 = time.perf_counter()
    rmap = radius_map_from_counts(torch.from_numpy(counts.astype(np.int64)),
                                  torch.from_numpy(guesses.astype(np.int64)), g.n,
                                  certifier.sampler, alpha=cfg.alpha, method=method,
                                  levels=levels)
    t_testing = time.perf_counter() - t0
    radius, labels = rmap.radius.numpy(), rmap.labels.numpy()
    dtype = np.int16 if run.num_classes < 2**15 else np.int32
    arrays = {"radius": radius.astype(np.float32), "labels": labels.astype(dtype),
              "p_lower": rmap.p_lower.numpy(), "guesses": guesses.astype(dtype),
              "counts": counts.astype(np.int32), "target": target}
    if _rgb(x):
        arrays["image"] = x.numpy()
    valid = target != IGNORE_INDEX
    correct = (labels == target) & valid
    record = {
        "kind": "radius_map", "input": index, "grid": g.sample_key, "sigma": g.sigma,
        "n": g.n, "n0": cfg.n0, "alpha": rmap.alpha, "method": rmap.method,
        "levels": None if rmap.levels is None else list(rmap.levels),
        "sound": rmap.sound, "num_components": int(radius.size),
        "certified": float((labels != -1).mean()) if labels.size else 0.0,
        "certified_accuracy": float(correct.sum() / max(1, valid.sum())),
        "mean_radius": float(radius.mean()) if radius.size else 0.0,
        "mean_certified_radius": float(np.where(correct, radius, 0).sum()
                                       / max(1, valid.sum())),
        "max_radius": float(radius.max()) if radius.size else 0.0,
        "time_sampling": float(t_sampling), "time_testing": t_testing, "noise_seed": seed,
        "counts_from": "run" if found is not None else "sampling",
    }  # fmt: skip
    return record, arrays


def _rgb(x: torch.Tensor) -> bool:
    return x.ndim == 3 and (x.shape[0] == 3 or x.shape[-1] == 3)


def _figure_name(rec: dict[str, Any]) -> str:
    return f"figures/{Path(rec['file']).stem}.png"


def _draw_missing(store: RunStore, run: CertificationRun, records: list[dict[str, Any]]) -> None:
    """Draw the figure of every recorded map that has none (a run killed meanwhile, or
    one with ``figures=False``)."""
    for rec in records:
        if not (store.out / _figure_name(rec)).exists():
            arrays = store.load_arrays(rec, ("radius", "labels", "target", "image"))
            _figure(store, run, rec, arrays)


def _figure(store: RunStore, run: CertificationRun, rec: dict[str, Any],
            arrays: dict[str, np.ndarray]) -> None:
    """The figure of one map: input, radius map, certified labels vs the ground truth."""
    from smoothing.figures import radius_map_figure

    threat = run.certifiers[next(iter(run.certifiers))].sampler.threat_model
    fig = radius_map_figure(
        arrays.get("image"), arrays["radius"], target=arrays["target"],
        labels=arrays["labels"], ignore_index=IGNORE_INDEX, threat_model=threat,
        title=f"input {rec['input']}: sigma = {rec['sigma']:g}, n = {rec['n']}, "
              f"{rec['method']}, alpha = {rec['alpha']:g}"
              + ("" if rec.get("sound", True) else " [HEURISTIC]"))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    store.write_bytes(_figure_name(rec), buf.getvalue())


def _csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in sorted(records, key=lambda r: (r["input"], r["sigma"], r["n"])):
        row = {k: r.get(k) for k in COLUMNS}
        row["levels"] = "" if r.get("levels") is None else " ".join(
            f"{v:.6g}" for v in r["levels"])
        writer.writerow(row)
    return buf.getvalue()


class _SourceRun:
    """The counts of a finished certify run of the same options, per (input, sampling)."""

    def __init__(self, source: str | os.PathLike[str], run: CertificationRun) -> None:
        self.store = RunStore(source)
        scan = self.store.scan()
        self.info: RunInfo = scan.info
        if self.info.kind != "certify":
            raise ValueError(f"`from_run` '{source}' holds a {self.info.kind} run, not a "
                             "certify run.")
        diffs = [f"`{k}` {json.dumps(a)} -> {json.dumps(b)}"
                 for section in ("config", "derived")
                 for k, a, b in _pairs(self.info.blob[section], run.record[section])
                 if k not in (*NOT_COMPARED, *IGNORED_OPTIONS, "grid") and a != b]
        if diffs:
            raise ValueError(f"`from_run` '{source}' is a run with other options "
                             f"({'; '.join(diffs)}); its counts cannot make these maps.")
        self.records: dict[tuple[int, str], dict[str, Any]] = {}
        for rec in scan.records:
            if rec["kind"] == "certify":
                key = f"sigma{fmt_value(rec['sigma'])}-n{rec['n']}"
                self.records.setdefault((rec["input"], key), rec)
        self.num_classes = run.num_classes

    def counts(self, index: int, g: GridPoint) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(guesses, counts, sampling seconds) of ``index`` at ``g``'s sampling, or
        ``None`` (with a warning) if the run has no usable ones."""
        rec = self.records.get((index, g.sample_key))
        if rec is None:
            return None
        path = self.store.out / rec["labels_file"]
        try:
            arrays = self.store.load_arrays(rec, ("guesses", "counts"))
            guesses, counts = arrays["guesses"], arrays["counts"]
        except (OSError, ValueError, KeyError, EOFError) as err:
            why = f"cannot be read ({err})"
        else:
            why = _bad_counts(guesses, counts, g.n, self.num_classes, rec["num_components"])
        if why is not None:
            warnings.warn(f"'{path}' {why}; input {index} at {g.sample_key} is sampled anew.",
                          RunFolderWarning, stacklevel=2)
            return None
        return guesses, counts, float(rec["time_sampling"])


def _bad_counts(guesses: np.ndarray, counts: np.ndarray, n: int, num_classes: int,
                size: int) -> str | None:
    if guesses.shape != counts.shape or guesses.size != size:
        return f"holds guesses {guesses.shape} and counts {counts.shape}, not {size} components"
    if guesses.dtype.kind not in "iu" or counts.dtype.kind not in "iu":
        return "holds guesses or counts that are no integers"
    if guesses.size and (guesses.min() < 0 or guesses.max() >= num_classes):
        return f"holds guesses outside [0, {num_classes})"
    if counts.size and (counts.min() < 0 or counts.max() > n):
        return f"holds counts outside [0, n={n}]"
    return None


def _pairs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))]
