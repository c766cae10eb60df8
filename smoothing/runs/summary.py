"""The summary of a run folder: one row per grid point (the paper's Tables 1 and 2)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smoothing._labels import HEADERS, HEURISTIC_FOOTNOTE, is_unsound, soundness_note
from smoothing.metrics import iou_pair_sum, miou_pooled
from smoothing.runs._journal import RunFolderWarning
from smoothing.runs.config import fmt_value
from smoothing.runs.store import RunStore

__all__ = ["FORWARD_COLUMN", "HIERARCHY_COLUMNS", "SHARED_SAMPLING_NOTE", "SUMMARY_COLUMNS",
           "Summary", "forward_label", "summarize", "write_summary"]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "method", "sampler", "sigma", "tau", "n", "n0", "alpha", "correction", "k",
    "num_inputs", "accuracy", "miou", "miou_dataset", "abstain_pct", "time_per_input_s",
    "radius", "sound",
)  # fmt: skip
#: The columns a hierarchical run's ``summary.csv`` adds after :data:`SUMMARY_COLUMNS`
#: (empty in the base row): pooled :class:`~smoothing.metrics.HierarchicalMetrics` --
#: ``cig`` (per component, divided by log C), % of components abstained on at every
#: level, % certified (and certified correctly) at the fine level and at any coarser
#: level, and the data-set mIoU of the level-1 view (NaN for a one-level hierarchy).
HIERARCHY_COLUMNS: tuple[str, ...] = (
    "hierarchy", "hierarchy_rule", "cig", "hier_abstain_pct", "certified_fine_pct",
    "certified_coarse_pct", "accuracy_fine_pct", "accuracy_coarse_pct", "miou_coarse",
)  # fmt: skip
#: The column a run whose model ran in reduced precision or compiled adds at the end of
#: ``summary.csv`` (:func:`forward_label`, in every row, the base row too): such
#: results are of that base classifier, not of the float32 model.
FORWARD_COLUMN = "precision"


def forward_label(config: Mapping[str, Any]) -> str | None:
    """How a run's base classifier ran, where it is not the float32 eager model.

    ``None`` for float32 without compilation (``precision`` and ``compile`` absent
    from ``config``, as in runs written before these options existed).

    Examples
    --------
    >>> forward_label({}) is None
    True
    >>> forward_label({"precision": "bfloat16"})
    'bfloat16'
    >>> forward_label({"compile": True})
    'float32, torch.compile'
    >>> forward_label({"precision": "float16", "compile": "aot_eager"})
    'float16, torch.compile aot_eager'
    """
    precision, compile = config.get("precision", "float32"), config.get("compile", False)
    if precision == "float32" and compile is False:
        return None
    if compile is False:
        return str(precision)
    return f"{precision}, torch.compile" + ("" if compile is True else f" {compile}")




# --------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Summary:
    """The table of a run: one row per grid point (plus the clean base model).

    Attributes
    ----------
    rows : tuple of dict
        Keys :data:`SUMMARY_COLUMNS`.
    header : str
        One line naming the model, the data set and the sampler.
    skipped : int, default 0
        Lines and records of the run folder left out because they failed their
        checks (each was warned about); the Markdown table says so under it.
    hierarchical : bool, default False
        A hierarchical run: the rows also have :data:`HIERARCHY_COLUMNS`.
    forward : str, optional
        :func:`forward_label` of a run whose model ran in reduced precision or
        compiled: the rows also have :data:`FORWARD_COLUMN`, and the Markdown table
        names it in every row.
    """

    rows: tuple[dict[str, Any], ...]
    header: str
    skipped: int = 0
    hierarchical: bool = False
    forward: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV columns: :data:`SUMMARY_COLUMNS`, then :data:`HIERARCHY_COLUMNS` for
        a hierarchical run, then :data:`FORWARD_COLUMN` for a run in reduced precision
        or compiled."""
        return (SUMMARY_COLUMNS + (HIERARCHY_COLUMNS if self.hierarchical else ())
                + ((FORWARD_COLUMN,) if self.forward is not None else ()))

    def to_csv(self) -> str:
        """The rows as CSV text (``summary.csv``)."""
        buf = io.StringIO()
        columns = self.columns
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
        return buf.getvalue()

    def to_markdown(self) -> str:
        """The rows as a Markdown table in the shape of the paper's Tables 1 and 2."""
        heads = [HEADERS[k] for k in ("sigma", "tau", "n", "n0", "correction", "num_inputs",
                                      "accuracy", "miou", "abstain", "time", "radius")]
        if self.hierarchical:
            heads += ["CIG", "% coarse cert.", "% abstain (any level)"]
        lines = [
            self.header,
            "",
            "| | " + " | ".join(heads) + " |",
            "|---" * (len(heads) + 1) + "|",
        ]
        tag = "" if self.forward is None else f", {self.forward}"
        for r in self.rows:
            base = r["method"] == "base"
            cells = [
                f"base model (clean{tag})" if base
                else soundness_note("SegCertify" + (f" ({self.forward})" if tag else ""),
                                    r["sound"]),
                "–" if base else fmt_value(r["sigma"]), "–" if base else fmt_value(r["tau"]),
                "–" if base else str(r["n"]), "–" if base else str(r["n0"]),
                "–" if base else f"{r['correction']}" + (f" (k={r['k']})" if r["k"] != 1 else ""),
                str(r["num_inputs"]), _num(r["accuracy"], ".3f"), _num(r["miou"], ".3f"),
                "–" if base else _num(r["abstain_pct"], ".1f"),
                _num(r["time_per_input_s"], ".3g"), "–" if base else _num(r["radius"], ".3f"),
            ]  # fmt: skip
            if self.hierarchical:
                cells += ["–"] * 3 if base else [
                    _num(r["cig"], ".3f"), _num(r["certified_coarse_pct"], ".1f"),
                    _num(r["hier_abstain_pct"], ".1f")]
            lines.append("| " + " | ".join(cells) + " |")
        if any(is_unsound(r["sound"]) for r in self.rows):
            lines += ["", HEURISTIC_FOOTNOTE]
        if _shares_sampling(self.rows):
            lines += ["", SHARED_SAMPLING_NOTE]
        if self.hierarchical:
            lines += ["", HIERARCHY_NOTE]
        if self.skipped:
            lines += ["", skipped_note(self.skipped)]
        return "\n".join(lines) + "\n"


def skipped_note(skipped: int) -> str:
    """The note under a table that leaves out ``skipped`` bad lines or records."""
    return (f"{skipped} line{'s' if skipped != 1 else ''} of the results failed their checks "
            "and are not counted (see the warnings); resume the run (its `certify` command "
            "again) to compute those (input, grid point) pairs anew.")


#: The note under a table whose rows of several tau share one sampling per (sigma, n).
SHARED_SAMPLING_NOTE = (
    "Rows with the same sigma and n test every tau on ONE sampling (the same counts); "
    "each row is its own certificate, valid with probability 1 - alpha, not "
    "simultaneously over the tau of the grid. Their times each include that shared "
    "sampling."
)


#: The note under a hierarchical run's table.
HIERARCHY_NOTE = (
    "acc., mIoU and % abstain are those of the fine classes (the flat certificate); CIG is "
    "the certified information gain per component divided by log C (docs/hierarchical.md), "
    "% coarse cert. the components certified at a coarser node of the hierarchy."
)


def _shares_sampling(rows: Sequence[Mapping[str, Any]]) -> bool:
    pairs = [(r["sigma"], r["n"]) for r in rows if r["method"] != "base"]
    return len(pairs) != len(set(pairs))


def _num(value: float | None, spec: str) -> str:
    return "nan" if value is None or math.isnan(value) else format(value, spec)


def _pooled(records: list[dict[str, Any]]) -> dict[str, float]:
    inter = np.sum([r["intersection"] for r in records], axis=0)
    union = np.sum([r["union"] for r in records], axis=0)
    valid = sum(r["num_valid"] for r in records)
    sums = [iou_pair_sum(r["intersection"], r["union"]) for r in records]
    pair_sum, pairs = sum(a for a, _ in sums), sum(b for _, b in sums)
    return {
        "accuracy": sum(r["num_correct"] for r in records) / valid if valid else math.nan,
        "abstain_pct": 100.0 * sum(r["num_abstain"] for r in records) / valid
        if valid else math.nan,
        "miou": pair_sum / pairs if pairs else math.nan,
        "miou_dataset": miou_pooled(inter, union),
    }


def _hierarchy_row(records: list[dict[str, Any]], hierarchy: Any,
                   config: Mapping[str, Any]) -> dict[str, Any]:
    """:data:`HIERARCHY_COLUMNS` of a grid point's records (their ``hier`` states pooled)."""
    from smoothing.metrics import HierarchicalMetrics

    m = HierarchicalMetrics(hierarchy)
    for r in records:
        m.add_state(r["hier"])
    certified, correct = 100.0 * m.certified_fraction(), 100.0 * m.certified_accuracy()
    return {
        "hierarchy": records[0]["hierarchy"], "hierarchy_rule": config["hierarchy_rule"],
        "cig": m.cig, "hier_abstain_pct": 100.0 * m.abstain_rate,
        "certified_fine_pct": float(certified[0]),
        "certified_coarse_pct": float(certified[1:].sum()),
        "accuracy_fine_pct": float(correct[0]), "accuracy_coarse_pct": float(correct[1:].sum()),
        "miou_coarse": m.miou(1) if hierarchy.num_levels > 1 else math.nan,
    }  # fmt: skip


def _summary_row(records: list[dict[str, Any]], config: Mapping[str, Any]) -> dict[str, Any]:
    first = records[0]
    base = first["kind"] == "base"
    times = [r["time_forward"] if base else r["time_sampling"] + r["time_testing"]
             for r in records]
    row = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(_pooled(records))
    row.update(method=first["kind"], num_inputs=len(records),
               time_per_input_s=float(np.mean(times)))
    if base:
        row.update(abstain_pct=0.0)
    else:
        row.update({k: first[k] for k in ("sigma", "tau", "n", "n0", "alpha", "correction", "k",
                                          "radius", "sound")})
        row["sampler"] = _sampler_name(config)
    return row


def _sampler_name(config: Mapping[str, Any]) -> str | None:
    """The sampler's name, with its bit depth when quantized (``gaussian-q8``)."""
    bits = config.get("quantize_bits")
    return config.get("sampler") if bits is None else f"{config.get('sampler')}-q{bits}"


def summarize(out_dir: str | os.PathLike[str]) -> Summary:
    """Rebuild the summary table of a run folder from its saved results.

    Reads the checked records of the folder (:meth:`RunStore.scan`: every
    ``results*.jsonl`` of all ranks, deduplicated by (input, grid point), each record
    agreeing with ``config.json`` and with its label file in place; the others are
    skipped with a warning and counted in :attr:`Summary.skipped`). Accuracy and
    % abstain are pooled over all non-ignored
    components; ``miou`` averages the IoU over (input, class) pairs with a non-empty
    union (App. A.1 of the paper), ``miou_dataset`` over classes of the summed
    confusion matrix; times are means per input.

    Raises
    ------
    ValueError
        If the folder has no valid ``config.json``, is no certify run, or has no
        usable results.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise ValueError(f"`out` '{out}' is not a directory.")
    scan = RunStore(out).scan()
    blob, records = scan.info.blob, scan.records
    if scan.info.kind != "certify":
        raise ValueError(f"'{out}' holds radius maps, not a certify run; their table is "
                         "radius_maps.csv.")
    if not records:
        extra = f" ({scan.skipped} skipped, see the warnings)" if scan.skipped else ""
        raise ValueError(f"'{out}' holds no finished results yet{extra}.")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: int(r["input"])):
        groups.setdefault(r["grid"], []).append(r)
    config = blob["config"]
    rows = [_summary_row(g, config) for g in groups.values()]
    hierarchy = scan.info.hierarchy
    if hierarchy is not None:
        for row, g in zip(rows, groups.values(), strict=True):
            if row["method"] != "base":
                row.update(_hierarchy_row(g, hierarchy, config))
    rows.sort(key=lambda r: (r["method"] != "base", r["sigma"] or 0, r["tau"] or 0, r["n"] or 0))
    model = (config.get("model") or blob.get("derived", {}).get("model_description")
             or f"checkpoint {Path(config.get('checkpoint') or '').name}")
    split = "" if config["split"] is None else f" ({config['split']})"  # a folder: none
    header = (
        f"model `{model}` · dataset `{config['dataset']}`{split} · sampler "
        f"`{_sampler_name(config)}` · alpha = {config['alpha']} · seed {config['seed']}"
    )
    if hierarchy is not None:  # a built-in name, or a file's name
        header += (f" · hierarchy `{Path(config['hierarchy']).name}` "
                   f"({config['hierarchy_rule']})")
    forward = forward_label(config)
    if forward is not None:  # a reduced-precision / compiled result is labelled as such
        header += f" · model run in `{forward}`"
        for row in rows:
            row[FORWARD_COLUMN] = forward
    return Summary(tuple(rows), header, scan.skipped, hierarchy is not None, forward)


def write_summary(out_dir: str | os.PathLike[str], summary: Summary) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.md`` atomically; returns their paths.

    Takes the folder's exclusive lock (so never while a run writes there) and
    removes dead processes' temporary files first. A summary that leaves out bad
    records warns with their count (and its Markdown says so).

    Raises
    ------
    smoothing._io.FolderLockedError
        (a ValueError) If a run holds the folder.
    """
    import warnings

    store = RunStore(out_dir)
    if summary.skipped:
        warnings.warn(f"the summary of '{store.out}' leaves out {summary.skipped} bad "
                      "line(s) or record(s) of its results (warned about above); resume the "
                      "run to recompute those pairs.", RunFolderWarning,
                      stacklevel=2)
    with store.lock():
        store.clean_temps()
        paths = (store.write_text("summary.csv", summary.to_csv(), locked=True),
                 store.write_text("summary.md", summary.to_markdown(), locked=True))
    return paths
