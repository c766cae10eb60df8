"""Per-component certified radius maps of a data set (``segcertify radius-maps``).

For every selected input and every (sigma, n) of the grid, ONE run of SEGCERTIFY's
sampling gives the counts, and :meth:`smoothing.SegCertify.radius_map` turns them
into every component's own certified radius (simultaneously valid at ``alpha``).
Written to ``OUT``:

``radius_maps/{index:06d}-sigma{s}-n{n}.npz``
    ``radius`` (float32, component shape; 0 where abstaining), ``labels`` (the
    certified class, -1 where abstaining), ``p_lower``, ``guesses``, ``counts``,
    ``target`` (ground truth) and, for images, ``image``.
``figures/{index:06d}-sigma{s}-n{n}.png``
    The input beside its radius map (radius as colour, abstentions white).
``radius_maps.csv``
    One row per (input, sigma, n): certified fraction, certified accuracy, mean
    certified radius, timings.

An existing ``.npz`` is skipped, so rerunning the command resumes it.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from smoothing.runs.config import noise_seed
from smoothing.runs.engine import CertificationRun

__all__ = ["COLUMNS", "write_radius_maps"]

COLUMNS = ("input", "sigma", "n", "n0", "alpha", "method", "levels", "certified",
           "certified_accuracy", "mean_radius", "mean_certified_radius", "max_radius",
           "time_sampling", "time_testing", "noise_seed", "file")


def _fmt(v: float) -> str:
    return f"{v:g}"


def write_radius_maps(run: CertificationRun, out: str | os.PathLike[str], *,
                      method: str = "bonferroni", levels: Sequence[float] | None = None,
                      figures: bool = True, progress: bool = True) -> int:
    """Write the radius maps of ``run`` into ``out``; the number written now."""
    from tqdm import tqdm

    from smoothing.figures import radius_map_figure

    out = Path(out)
    if run.layout not in ("BCHW", "BHWC"):
        figures = False  # point clouds: the .npz layers only
    (out / "radius_maps").mkdir(parents=True, exist_ok=True)
    if figures:
        (out / "figures").mkdir(parents=True, exist_ok=True)
    cfg = run.config
    tau = cfg.tau[0]
    points = [g for g in run.grid if g.tau == tau]
    csv_path = out / "radius_maps.csv"
    new_csv = not csv_path.exists()
    done = 0
    with open(csv_path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        if new_csv:
            writer.writeheader()
        for index in tqdm(run.indices, desc="radius-maps", unit="input", file=sys.stderr,
                          disable=not progress):
            item = run.dataset[index]
            x, target = item[0], item[1].numpy()
            for g in points:
                name = f"{index:06d}-sigma{_fmt(g.sigma)}-n{g.n}"
                npz = out / "radius_maps" / f"{name}.npz"
                if npz.exists():
                    continue
                certifier = run.certifiers[g.key]
                seed = noise_seed(cfg.seed, index, g.key)
                cert = certifier.certify(x, generator=torch.Generator().manual_seed(seed))
                rmap = certifier.radius_map(cert, method=method, levels=levels)
                radius = rmap.radius.numpy()
                labels = rmap.labels.numpy()
                arrays = {"radius": radius.astype(np.float32), "labels": labels,
                          "p_lower": rmap.p_lower.numpy(), "guesses": cert.guesses.numpy(),
                          "counts": cert.counts.numpy().astype(np.int32), "target": target}
                if x.ndim == 3:
                    arrays["image"] = x.numpy()
                tmp = npz.with_suffix(".tmp.npz")
                np.savez_compressed(tmp, **arrays)
                os.replace(tmp, npz)
                valid = target != 255
                correct = (labels == target) & valid
                writer.writerow({
                    "input": index, "sigma": g.sigma, "n": g.n, "n0": cfg.n0,
                    "alpha": rmap.alpha, "method": rmap.method,
                    "levels": "" if rmap.levels is None else " ".join(
                        f"{v:.6g}" for v in rmap.levels),
                    "certified": float((labels != -1).mean()),
                    "certified_accuracy": float(correct.sum() / max(1, valid.sum())),
                    "mean_radius": float(radius.mean()),
                    "mean_certified_radius": float(np.where(correct, radius, 0).sum()
                                                   / max(1, valid.sum())),
                    "max_radius": float(radius.max()) if radius.size else 0.0,
                    "time_sampling": cert.time_sampling, "time_testing": cert.time_testing,
                    "noise_seed": seed, "file": str(npz.relative_to(out)),
                })
                fh.flush()
                if figures:
                    radius_map_figure(
                        x, radius, out=out / "figures" / f"{name}.png",
                        threat_model=certifier.sampler.threat_model,
                        title=f"input {index}: sigma = {g.sigma:g}, n = {g.n}, "
                              f"{rmap.method}, alpha = {rmap.alpha:g}"
                              + ("" if rmap.sound else " [HEURISTIC]"))
                done += 1
    return done
