"""The run store: the only code that reads or writes a run folder.

A run folder::

    OUT/config.json                       the run's options (a resume must match them)
    OUT/results.jsonl                     one JSON line per finished (input, grid point)
    OUT/results.rank{r}.jsonl             the same, of rank r of a torchrun job
    OUT/labels/<input>-<grid>.npz         certified label maps (ABSTAIN = -1)
    OUT/summary.csv, OUT/summary.md       one row per grid point (the paper's Tables 1/2)

A finished (input, grid point) is one line of ``results.jsonl``, written with a single
``os.write`` and ``fsync`` after its label file is in place, so a killed run loses at
most the pairs it was working on.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smoothing._io import remove_stale_temps, temp_tag, write_atomic
from smoothing.runs.config import DATASETS, GridPoint, RunConfig

__all__ = [
    "append_record",
    "check_output_dir",
    "read_config",
    "read_records",
    "repair_jsonl",
    "config_record",
    "open_output",
    "save_arrays",
]

_FORMAT = "segcertify.run"
#: 2: the noise is drawn once per (sigma, n) and every tau is tested on those counts
#: (version 1 drew it again for every tau, so its results differ for the same seed).
_FORMAT_VERSION = 2
_NOT_COMPARED = frozenset({"checkpoint", "data_root", "trust_program", "follow_symlinks"})



def save_arrays(path: Path, rank: int, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue(), tag=temp_tag(f".rank{rank}"))


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``path`` with a single ``os.write``, then fsync."""
    line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write to '{path}' ({written} of {len(line)} bytes).")
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_jsonl(path: Path) -> int:
    """Cut a trailing partial line (a write killed midway) off ``path``; bytes removed."""
    if not path.is_file():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:  # scan back for the last newline, 64 kB at a time
            start = max(0, end - (1 << 16))
            f.seek(start)
            chunk = f.read(end - start)
            if end == size and chunk.endswith(b"\n"):
                return 0
            pos = chunk.rfind(b"\n")
            if pos >= 0:
                end = start + pos + 1
                break
            end = start
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    return size - end


def _iter_lines(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # a partial last line: a write in progress or killed
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not _is_record(record):  # corrupt, or valid JSON that is no record
                print(f"warning: skipping an unreadable line in '{path}'", file=sys.stderr)
                continue
            yield record


#: Fields every record has (besides those of its kind), as :func:`summarize` reads them.
_RECORD_FIELDS = ("input", "grid", "kind", "num_valid", "num_correct", "num_abstain",
                  "intersection", "union")
_KIND_FIELDS = {
    "base": ("time_forward",),
    "certify": ("sigma", "tau", "n", "n0", "alpha", "correction", "k", "radius", "sound",
                "time_sampling", "time_testing"),
}


def _is_record(record: object) -> bool:
    """Whether a parsed line is a result record (a JSON object with the fields read)."""
    if not isinstance(record, dict) or record.get("kind") not in _KIND_FIELDS:
        return False
    if any(f not in record for f in (*_RECORD_FIELDS, *_KIND_FIELDS[record["kind"]])):
        return False
    index = record["input"]
    return (isinstance(index, int) and not isinstance(index, bool) and index >= 0
            and isinstance(record["grid"], str))


def read_records(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All finished records of a run folder, from every ``results*.jsonl``, deduplicated.

    A record is identified by ``(input, grid)``; the first occurrence wins, and a
    partial last line of a file is ignored.
    """
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for path in sorted(Path(out_dir).glob("results*.jsonl")):
        for rec in _iter_lines(path):
            seen.setdefault((int(rec["input"]), str(rec["grid"])), rec)
    return list(seen.values())


def read_config(out: Path) -> dict[str, Any]:
    path = out / "config.json"
    try:
        blob = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"'{path}' is not a readable run configuration: {err}") from err
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise ValueError(f"'{path}' is not a segcertify run configuration.")
    return blob


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key in _NOT_COMPARED:
            continue
        a, b = old.get(key), new.get(key)
        if a != b:
            diffs.append(f"`{key}` {json.dumps(a)} -> {json.dumps(b)}")
    return diffs


def _grows_inputs(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` asks for more inputs than the run ``old`` and differs in nothing else.

    The first ``num_inputs`` inputs of both runs are then the same and so is their
    noise (:func:`noise_seed` depends on the input and the grid point only), so the
    recorded results stay valid. A built-in synthetic data set is generated up to
    the last selected input, so its ``dataset_size`` grows too (item ``i`` does not
    depend on the length); a real data set's size must not change.
    """
    a, b = old.get("config", {}), new.get("config", {})
    na, nb = a.get("num_inputs"), b.get("num_inputs")
    if not (isinstance(na, int) and isinstance(nb, int) and nb > na):
        return False
    da, db = old.get("derived", {}), new.get("derived", {})
    size_a, size_b = da.get("dataset_size"), db.get("dataset_size")
    info = DATASETS.get(str(b.get("dataset")))
    if size_a != size_b and not (info is not None and info.synthetic
                                 and isinstance(size_a, int) and isinstance(size_b, int)
                                 and size_b > size_a):
        return False
    return not _differences({**a, "num_inputs": nb}, b) and not _differences(
        {**da, "dataset_size": size_b}, db)


def check_output_dir(out_dir: str | os.PathLike[str], record: Mapping[str, Any]) -> bool:
    """Check that a run with ``record`` (its ``config.json``) may write to ``out_dir``.

    Returns ``True`` if ``out_dir`` holds the same run (a resume), ``False`` if it is
    new (absent or empty of results). Writes nothing. A run extended with more inputs
    (a larger ``num_inputs``, nothing else changed) is a resume
    (:func:`_grows_inputs`).

    Raises
    ------
    ValueError
        If ``out_dir`` is a file, holds results without a ``config.json``, or holds a
        run with other options (the message names them).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`out` '{out}' exists and is not a directory.")
    if not (out / "config.json").exists():
        # config.json is written before any results: re-check it (another rank may
        # have just started this run)
        if (out.is_dir() and any(out.glob("results*.jsonl"))
                and not (out / "config.json").exists()):
            raise ValueError(f"'{out}' holds results but no config.json; use another `out`.")
        return False
    old = read_config(out)
    if old.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"'{out}' holds a run of an older segcertify (run format version "
            f"{old.get('format_version')}; this version writes {_FORMAT_VERSION}: one "
            "sampling per (sigma, n) shared by every tau, so the results for the same seed "
            "differ); it cannot be resumed: choose another `out` (`summarize` still reads it)."
        )
    old_config, old_derived = old.get("config", {}), old.get("derived", {})
    if _grows_inputs(old, record):
        old_config = {**old_config, "num_inputs": record["config"]["num_inputs"]}
        old_derived = {**old_derived, "dataset_size": record["derived"]["dataset_size"]}
    diffs = _differences(old_config, record["config"])
    diffs += _differences(old_derived, record["derived"])
    if diffs:
        raise ValueError(
            f"'{out}' holds a run with other options ({'; '.join(diffs)}); resume with the "
            "same options or choose another `out`."
        )
    return True




def open_output(out: Path, record: Mapping[str, Any], rank: int, world_size: int) -> bool:
    """Check/create the run folder for rank ``rank`` and clean its leftovers; resumed?

    Writes ``config.json`` for a new run or one extended with more inputs, cuts a torn
    last line off the rank's results file and removes stale temporary files.
    """
    from smoothing.runs.shards import rank_results_path

    resumed = check_output_dir(out, record)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    recorded = read_config(out).get("config", {}) if resumed else {}
    if not resumed or recorded.get("num_inputs") != record["config"].get("num_inputs"):
        # a new run, or one extended with more inputs: (re)write its options
        write_atomic(out / "config.json", (json.dumps(record, indent=2) + "\n").encode(),
                     temp_tag(f".rank{rank}"))
    repair_jsonl(rank_results_path(out, rank, world_size))
    for folder in (out, out / "labels"):  # only this process's or dead ones' temps
        remove_stale_temps(folder, f".rank{rank}")
    return resumed


def config_record(cfg: RunConfig, sha: str, num_classes: int, layout: str, kind: str,
                   size: int, grid: list[GridPoint], device: torch.device) -> dict[str, Any]:
    try:
        from importlib.metadata import version

        pkg_version = version("segcertify")
    except Exception:  # pragma: no cover - not installed
        pkg_version = None
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "config": cfg.to_dict(),
        "derived": {"checkpoint_sha256": sha, "num_classes": num_classes, "layout": layout,
                    "input_kind": kind, "dataset_size": size,
                    "grid": [g.key for g in grid]},
        "runtime": {"device": str(device), "torch": torch.__version__,
                    "segcertify": pkg_version,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }

