"""The demo's figures, redrawn from its saved files (:func:`draw_figures`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from smoothing._sampling import ABSTAIN
from smoothing.runs.demo.config import CLEAN_MODEL
from smoothing.runs.demo.tables import read_manifest, write_tables

__all__ = ["draw_figures"]


def draw_figures(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Redraw the demo's figures from its saved files.

    The accuracy-vs-radius figures read the ``*_curve.csv`` tables;
    :func:`write_tables` is run first if they are missing.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`run_demo`.

    Returns
    -------
    dict of str to pathlib.Path
        The PNG files written under ``out_dir/figures``: ``'fig1'`` (with an
        attack), ``'tau_panel'``, ``'cert_acc_streets'``, ``'cert_acc_rotation'``.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no ``manifest.json``.
    """
    from smoothing import figures

    out, manifest = read_manifest(out_dir)
    if any(manifest.get(k) and not (out / f"{k}_curve.csv").is_file()
           for k in ("streets", "rotation")):
        write_tables(out, echo=False)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    streets = manifest.get("streets")
    if streets:
        data = np.load(out / streets["data"])
        names = [str(c) for c in data["classes"]]
        if streets.get("attack"):
            a = np.load(out / streets["attack"])
            paths["fig1"] = fig_dir / "fig1_streets.png"
            figures.figure1_panel(
                a["image"], a["label"], a["pred_adv"], a["certified"], data["palette"],
                eps=float(a["eps"]), radius=float(a["radius"]),
                extra=[(f"(e) {a['model']},\nPGD on it, same budget",
                        a["pred_robust_adv"])],
                class_names=names,
                title=(f"(c) non-robust {a['clean_model']}; (d) SEGCERTIFY with "
                       f"{a['model']}, σ={float(a['sigma']):g}, τ={float(a['tau']):g}, "
                       f"n={int(a['n'])}"),
                out=paths["fig1"])
        if any(r["model"] != CLEAN_MODEL for r in streets["runs"]):
            paths["tau_panel"] = fig_dir / "streets_tau.png"
            _tau_panel(out, streets, data, names, paths["tau_panel"])
        paths["cert_acc_streets"] = fig_dir / "cert_acc_radius_streets.png"
        figures.plot_certified_accuracy_vs_radius(
            out / "streets_curve.csv", xlabel="l2 radius R = σ Φ⁻¹(τ) (pixel values in [0, 1])",
            title="SyntheticStreets: certified pixel accuracy vs radius (numbers: τ)",
            out=paths["cert_acc_streets"])
    if manifest.get("rotation"):
        paths["cert_acc_rotation"] = fig_dir / "cert_acc_radius_rotation.png"
        figures.plot_certified_accuracy_vs_radius(
            out / "rotation_curve.csv", group_keys=("sigma_deg", "n"), radius_key="radius_deg",
            xlabel=f"rotation radius about the {manifest['rotation']['axis']} axis (degrees)",
            title="SyntheticParts under rotation: certified point accuracy (numbers: τ)",
            out=paths["cert_acc_rotation"])
    return paths


def _tau_panel(out: Path, streets: dict[str, Any], data: Any, names: list[str],
               path: Path) -> Any:
    """Image 0: input, truth, base model, and the certified maps of the table's taus."""
    from smoothing import figures

    runs = [r for r in streets["runs"] if r["model"] != CLEAN_MODEL]
    model = runs[0]["model"]
    base = np.load(out / streets["base"][model])
    panels = [("ground truth", data["labels"][0]), (f"{model}, no smoothing", base["preds"][0])]
    for n, tau in streets["table_taus"]:
        for run in runs:
            if run["model"] == model and run["n"] == n and tau in run["taus"]:
                saved = np.load(out / run["file"])
                j = run["taus"].index(tau)
                lab = saved["labels"][0, j]
                frac = float((lab == ABSTAIN).mean())
                panels.append((f"SEGCERTIFY σ={run['sigma']:g}, n={n}, τ={tau:g}\n"
                               f"R={saved['radius'][j]:.3f}, abstain {frac:.1%}", lab))
    return figures.segmentation_panel(data["images"][0], panels, data["palette"],
                                      class_names=names, out=path)
