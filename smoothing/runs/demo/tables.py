"""The demo's tables, rebuilt from its saved ``.npz`` files: Table 1 and Table 7
analogues, per-input rows, accuracy curves and the attack table (CSV + Markdown),
each written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smoothing._io import temp_tag, write_atomic
from smoothing._labels import HEADERS
from smoothing.metrics import SegmentationMetrics
from smoothing.runs.demo.config import CLEAN_MODEL

__all__ = ["metrics", "read_manifest", "write_tables"]


def _fmt(value: Any, spec: str) -> str:
    """A Markdown cell: ``-`` for missing; spec ``'pct'`` prints a fraction in percent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if spec == "pct":
        return f"{100 * value:.1f}"
    return format(value, spec) if spec else str(value)


def _write_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str, str]],
                 csv_path: Path, md_path: Path | None, title: str) -> str:
    """Write ``rows`` as CSV (all keys) and, with ``md_path``, a Markdown table (each
    atomically); the Markdown text."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomic(csv_path, buf.getvalue().encode(), tag=temp_tag())
    lines = [f"**{title}**", "", "| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), f) for k, _, f in columns) + " |")
    text = "\n".join(lines) + "\n"
    if md_path is not None:
        write_atomic(md_path, text.encode(), tag=temp_tag())
    return text


def metrics(preds: Iterable[np.ndarray], targets: Iterable[np.ndarray], num_classes: int
             ) -> SegmentationMetrics:
    m = SegmentationMetrics(num_classes)
    for p, t in zip(preds, targets, strict=True):
        m.update(p, t)
    return m


def _image_row(m: SegmentationMetrics, seconds: float) -> dict[str, Any]:
    return {"accuracy": m.accuracy, "miou": m.miou_per_image, "miou_dataset": m.miou_dataset,
            "abstain_rate": m.abstain_rate, "seconds_per_input": seconds}


def _streets_tables(out: Path, entry: dict[str, Any]) -> tuple[dict[str, Path], str]:
    data = np.load(out / entry["data"])
    targets = list(data["labels"])
    table, per_image, curve = [], [], []
    for name, file in entry["base"].items():
        base = np.load(out / file)
        kind = "non-robust model" if name == CLEAN_MODEL else "base model"
        m = metrics(base["preds"], targets, 8)
        table.append({"model": name, "method": f"{kind}, no smoothing", "sigma": None,
                      "radius": None, "n0": None, "n": None, "tau": None,
                      **_image_row(m, float(base["seconds"].mean()))})
    shown = {tuple(p) for p in entry["table_taus"]}
    for run in entry["runs"]:
        saved = np.load(out / run["file"])
        for j, tau in enumerate(run["taus"]):
            secs = saved["time_sampling"] + saved["time_testing"][:, j]
            params = {"model": run["model"], "sigma": run["sigma"],
                      "radius": float(saved["radius"][j]), "n0": run["n0"], "n": run["n"],
                      "tau": tau}
            m = metrics(saved["labels"][:, j], targets, 8)
            row = {**params, **_image_row(m, float(secs.mean()))}
            curve.append(row)
            if (run["n"], tau) in shown:
                table.append({"model": run["model"], "method": "SegCertify", **params,
                              **_image_row(m, float(secs.mean()))})
            for i, (lab, tgt) in enumerate(zip(saved["labels"][:, j], targets, strict=True)):
                mi = metrics([lab], [tgt], 8)
                per_image.append({**params, "alpha": run["alpha"], "image": i,
                                  "num_components": mi.num_components,
                                  "num_correct": mi.num_correct,
                                  **_image_row(mi, float(secs[i]))})
    h = HEADERS
    cols = [("model", "model", ""), ("method", "", ""), ("sigma", h["sigma"], "g"),
            ("radius", h["radius"], ".3f"), ("n", h["n"], ""), ("tau", h["tau"], "g"),
            ("accuracy", h["accuracy"], ".3f"), ("miou", h["miou"], ".3f"),
            ("miou_dataset", h["miou_dataset"], ".3f"), ("abstain_rate", h["abstain"], "pct"),
            ("seconds_per_input", h["time"], ".2f")]
    title = (f"Table 1 analogue: {len(targets)} SyntheticStreets test scenes "
             f"{targets[0].shape[0]}x{targets[0].shape[1]}; SEGCERTIFY n0 = "
             f"{entry['runs'][0]['n0'] if entry['runs'] else '-'}, alpha = "
             f"{entry['runs'][0]['alpha'] if entry['runs'] else '-'}, Holm; "
             "% abstain = percentage of pixels abstained on; R = certified l2 radius")
    text = _write_table(table, cols, out / "streets_table.csv", out / "streets_table.md", title)
    _write_table(per_image, cols, out / "streets_per_image.csv", None, "")
    _write_table(curve, cols, out / "streets_curve.csv", None, "")
    paths = {k: out / f"streets_{k}.csv" for k in ("table", "per_image", "curve")}
    paths["table_md"] = out / "streets_table.md"
    if entry.get("attack"):
        text += "\n" + _attack_table(out, entry["attack"], len(targets))
        paths["attack"] = out / "streets_attack.csv"
        paths["attack_md"] = out / "streets_attack.md"
    return paths, text


def _attack_table(out: Path, file: str, num_images: int) -> str:
    a = np.load(out / file)
    rows = []
    for name, accs in zip(a["table_models"], a["table_accuracy"], strict=True):
        kind = "non-robust model" if str(name) == CLEAN_MODEL else "noise-trained base model"
        for eps, acc in zip(a["table_eps"], accs, strict=True):
            rows.append({"model": str(name), "kind": kind, "eps": float(eps),
                         "steps": int(a["steps"]), "accuracy": float(acc)})
    cols = [("model", "model", ""), ("kind", "", ""), ("eps", "PGD l2 budget ε", ".3f"),
            ("steps", "steps", ""), ("accuracy", "pixel acc. under attack", ".3f")]
    title = (f"l2 PGD on the base models without smoothing, {num_images} scenes; the first "
             f"budget is {float(a['eps']) / float(a['radius']):.2f} x the certified radius "
             f"R = {float(a['radius']):.3f} (sigma = {float(a['sigma']):g}, "
             f"tau = {float(a['tau']):g}). Image 0 attacked against {a['model']} and then "
             f"certified: {int(a['changed_certified'])} pixels certified on both the clean "
             "and the attacked input changed label.")
    return _write_table(rows, cols, out / "streets_attack.csv", out / "streets_attack.md",
                        title)


def _rotation_tables(out: Path, entry: dict[str, Any]) -> tuple[dict[str, Path], str]:
    data = np.load(out / entry["data"])
    targets = list(data["labels"])
    base = np.load(out / entry["base"])
    m = metrics(base["preds"], targets, 50)
    table = [{"model": entry["model"], "method": "base model, no smoothing", "axis": None,
              "sigma": None, "sigma_deg": None, "radius": None, "radius_deg": None,
              "n0": None, "n": None, "tau": None, "alpha": None, "accuracy": m.accuracy,
              "abstain_rate": 0.0, "seconds_per_input": float(base["seconds"].mean())}]
    per_cloud = []
    for run in entry["runs"]:
        saved = np.load(out / run["file"])
        for j, tau in enumerate(run["taus"]):
            secs = saved["time_sampling"] + saved["time_testing"][:, j]
            radius = float(saved["radius"][j])
            params = {"model": entry["model"], "axis": entry["axis"], "sigma": run["sigma"],
                      "sigma_deg": math.degrees(run["sigma"]), "radius": radius,
                      "radius_deg": math.degrees(radius), "n0": run["n0"], "n": run["n"],
                      "tau": tau, "alpha": run["alpha"]}
            m = metrics(saved["labels"][:, j], targets, 50)
            table.append({**params, "method": "SegCertify", "accuracy": m.accuracy,
                          "abstain_rate": m.abstain_rate,
                          "seconds_per_input": float(secs.mean())})
            for i, (lab, tgt) in enumerate(zip(saved["labels"][:, j], targets, strict=True)):
                mi = metrics([lab], [tgt], 50)
                per_cloud.append({**params, "cloud": i, "category": int(data["categories"][i]),
                                  "num_components": mi.num_components,
                                  "num_correct": mi.num_correct,
                                  "accuracy": mi.accuracy, "abstain_rate": mi.abstain_rate,
                                  "seconds_per_input": float(secs[i])})
    h = HEADERS
    cols = [("method", "", ""), ("sigma", f"{h['sigma']} (rad)", ".4g"),
            ("sigma_deg", f"{h['sigma']} (°)", ".2f"), ("tau", h["tau"], "g"),
            ("n0", h["n0"], ""), ("n", h["n"], ""), ("radius", f"{h['radius']} (rad)", ".4f"),
            ("radius_deg", f"{h['radius']} (°)", ".2f"), ("accuracy", h["accuracy"], ".3f"),
            ("abstain_rate", h["abstain"], "pct"), ("seconds_per_input", h["time"], ".2f")]
    alpha = entry["runs"][0]["alpha"] if entry["runs"] else "-"
    title = (f"Table 7 analogue: rotation about the {entry['axis']} axis, "
             f"{len(targets)} SyntheticParts test objects ({targets[0].shape[0]} points), "
             f"model {entry['model']} restricted to the object's category; alpha = {alpha}, "
             "Holm; % abstain = percentage of points abstained on; acc. = certified "
             "accuracy; R = certified rotation radius")
    text = _write_table(table, cols, out / "rotation_table.csv", out / "rotation_table.md",
                        title)
    _write_table(per_cloud, cols, out / "rotation_per_cloud.csv", None, "")
    _write_table(table[1:], cols, out / "rotation_curve.csv", None, "")
    paths = {k: out / f"rotation_{k}.csv" for k in ("table", "per_cloud", "curve")}
    paths["table_md"] = out / "rotation_table.md"
    return paths, text


def read_manifest(out_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    out = Path(out_dir)
    path = out / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"'{path}' does not exist: run `run_demo` into '{out}' first.")
    return out, json.loads(path.read_text())


def write_tables(out_dir: str | os.PathLike[str], *, echo: bool = True) -> dict[str, Path]:
    """Rebuild the CSV and Markdown tables of a demo folder from its saved ``.npz`` files.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`run_demo` (it holds ``manifest.json``).
    echo : bool, default True
        Print the Markdown tables.

    Returns
    -------
    dict of str to pathlib.Path
        The files written, e.g. ``'streets_table'``, ``'rotation_table_md'``.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no ``manifest.json``.
    """
    out, manifest = read_manifest(out_dir)
    paths: dict[str, Path] = {}
    for key, build in (("streets", _streets_tables), ("rotation", _rotation_tables)):
        if manifest.get(key):
            written, text = build(out, manifest[key])
            paths.update({f"{key}_{k}": p for k, p in written.items()})
            if echo:
                print("\n" + text)
    return paths
