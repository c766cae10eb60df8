"""The run store: the only code that reads or writes a run folder.

A run folder::

    OUT/config.json                       the run's options and digest (a resume must match)
    OUT/results.jsonl                     one JSON line per finished (input, grid point)
    OUT/results.rank{r}.jsonl             the same, of rank r of a torchrun job
    OUT/labels/<input>-<grid>.npz         certified label maps (ABSTAIN = -1), guesses, counts
    OUT/summary.csv, OUT/summary.md       one row per grid point (the paper's Tables 1/2)
    OUT/radius_maps/<input>-<s,n>.npz     (a radius-maps run) per-component radius layers
    OUT/radius_maps.csv, OUT/figures/     (a radius-maps run) one row / figure per map
    OUT/.lock, OUT/.lock.rank{r}          held while a process writes

Two layers, as optuna's journal storage: :mod:`smoothing.runs._journal` writes and
reads whole JSON lines (bytes only); :class:`RunStore` replays them into the run's
state and owns every check (:mod:`smoothing.runs._checks`): a record counts only
if it agrees with ``config.json`` (grid point, options, inputs, digest, value
ranges) and its ``.npz`` file is there, whole and of the right shape. Anything
else is skipped with one :class:`RunFolderWarning` naming the file, the line and
why, and a resume computes that pair again. A finished pair is its ``.npz`` file
(written atomically) followed by its record (one ``os.write``, then ``fsync``), so
a killed run loses at most the pairs it was working on.

**Locks.** A process writes only while it holds the folder's job lock ``.lock``
and its rank's ``.lock.rank{r}``: exclusively for a single run, a summary, a merge
or a migration; shared by the ranks of one torchrun job (each holds its own rank
lock exclusively). So a run beside a live torchrun job is refused, and so is a
torchrun rank beside a live run; the OS drops a killed process's lock.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from smoothing._io import FolderLock, remove_stale_temps, temp_tag, write_atomic
from smoothing.runs import _journal
from smoothing.runs._checks import (
    FOLDERS,
    FORMAT,
    FORMAT_VERSION,
    KINDS,
    MAP_IGNORES,
    NOT_COMPARED,
    RunInfo,
    arrays_file,
    arrays_name,
    check_arrays,
    check_blob,
    check_record,
    digest,
    file_field,
)
from smoothing.runs._journal import RunFolderWarning, rank_results_path, result_files
from smoothing.runs.config import DATASETS, OMITTED_AT_DEFAULT, GridPoint, RunConfig

__all__ = [
    "RunFolderWarning",
    "RunLock",
    "RunStore",
    "Scan",
    "append_record",
    "check_output_dir",
    "config_record",
    "read_config",
    "read_records",
    "repair_jsonl",
]

#: The byte layer, under the names of earlier versions.
append_record = _journal.append_line
repair_jsonl = _journal.repair


class RunLock:
    """The locks a writer of a run folder holds: the job lock and its rank's lock.

    ``world_size == 1`` (a single run, a summary, a merge) takes ``.lock``
    exclusively, rank ``r`` of a torchrun job shares it; either then takes
    ``.lock.rank{r}`` exclusively. Both are released (and their files removed) by
    :meth:`release`, also after an error.
    """

    def __init__(self, out: Path, rank: int = 0, world_size: int = 1) -> None:
        self._job = FolderLock(out, ".lock", shared=world_size > 1)
        self._rank = FolderLock(out, f".lock.rank{rank}")
        self.exclusive = world_size == 1

    def acquire(self) -> None:
        """Take both locks or raise :class:`smoothing._io.FolderLockedError` (a ValueError)."""
        self._job.acquire()
        try:
            self._rank.acquire()
        except BaseException:
            self._job.release()
            raise

    def release(self) -> None:
        self._rank.release()
        self._job.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class Scan:
    """What :meth:`RunStore.scan` found: the run, its usable records, how many were not.

    Attributes
    ----------
    info : RunInfo
        The checked ``config.json``.
    records : list of dict
        One checked record per (input, grid point), the first usable one of the
        files (``results.jsonl``, then the rank files), in file order.
    skipped : int
        Lines and records skipped with a warning (not JSON, failing a check, or
        with a missing or broken ``.npz`` file).
    """

    info: RunInfo
    records: list[dict[str, Any]]
    skipped: int


class RunStore:
    """The reader and writer of one run folder (see the module's docstring).

    Parameters
    ----------
    out : str or os.PathLike
        The run folder.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     RunStore(d).is_run()
    False
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self._digest: str | None = None

    # ----------------------------------------------------------------- config
    @property
    def config_path(self) -> Path:
        return self.out / "config.json"

    def is_run(self) -> bool:
        """Whether the folder holds a ``config.json``."""
        return self.config_path.is_file()

    def info(self) -> RunInfo:
        """The checked ``config.json`` (ValueError naming the file and the problem)."""
        path = self.config_path
        try:
            blob = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError) as err:
            raise ValueError(f"'{path}' is not a readable run configuration: {err}") from err
        return check_blob(blob, path)

    def check_resume(self, blob: Mapping[str, Any]) -> bool:
        """Whether a run with ``config.json`` content ``blob`` may write here: resume?

        Returns ``True`` if the folder holds the same run (a resume), ``False`` if it
        is new (absent, or empty of results). Writes nothing. A run extended with
        more inputs (a larger ``num_inputs``, nothing else changed) is a resume
        (:func:`_grows_inputs`).

        Raises
        ------
        ValueError
            If the folder is a file, holds results without a ``config.json``, holds
            a run of format 1, of another kind or with other options (named), or
            its ``config.json`` fails its checks.
        """
        out = self.out
        if out.exists() and not out.is_dir():
            raise ValueError(f"`out` '{out}' exists and is not a directory.")
        if not self.config_path.exists():
            # config.json is written before any results: re-check it (another rank may
            # have just started this run)
            if self._holds_results() and not self.config_path.exists():
                raise ValueError(f"'{out}' holds results but no config.json (an older "
                                 "segcertify's or another program's); use another `out`.")
            return False
        old = self.info()
        if old.version < 2:
            raise ValueError(
                f"'{out}' holds a run of an older segcertify (run format version "
                f"{old.version}; this version writes {FORMAT_VERSION}: one sampling per "
                "(sigma, n) shared by every tau, so the results for the same seed differ); "
                "it cannot be resumed: choose another `out` (`summarize` still reads it).")
        kind = blob.get("kind", "certify")
        if old.kind != kind:
            raise ValueError(f"'{out}' holds a {old.kind.replace('_', '-')} run, not a "
                             f"{kind.replace('_', '-')} run; choose another `out`.")
        old_config, old_derived = dict(old.blob["config"]), dict(old.blob["derived"])
        if _grows_inputs(old.blob, blob):
            old_config["num_inputs"] = blob["config"]["num_inputs"]
            old_derived["dataset_size"] = blob["derived"]["dataset_size"]
        new_config = dict(blob["config"])
        if kind == "radius_maps":
            for key in MAP_IGNORES:
                old_config.pop(key, None)
                new_config.pop(key, None)
        diffs = _differences(old_config, new_config)
        diffs += _differences(old_derived, blob["derived"])
        diffs += _differences({"radius_maps": old.blob.get("radius_maps")},
                              {"radius_maps": blob.get("radius_maps")})
        if diffs:
            raise ValueError(
                f"'{out}' holds a run with other options ({'; '.join(diffs)}); resume with "
                "the same options or choose another `out`.")
        return True

    def _holds_results(self) -> bool:
        if not self.out.is_dir():
            return False
        if result_files(self.out) or (self.out / "radius_maps.csv").exists():
            return True
        return any(any((self.out / f).glob("*.npz")) for f in set(FOLDERS.values()))

    def lock(self, *, rank: int = 0, world_size: int = 1) -> RunLock:
        """The locks to hold while writing (not taken yet: ``with store.lock(): ...``)."""
        return RunLock(self.out, rank, world_size)

    def open(self, blob: Mapping[str, Any], *, rank: int = 0, world_size: int = 1) -> bool:
        """Prepare the folder for writing (the caller holds :meth:`lock`); resumed?

        Checks it (:meth:`check_resume`), writes ``config.json`` for a new run or one
        extended with more inputs, migrates a folder of format 2 to format 3 when
        this is a single writer, cuts a torn last line off the files it may append
        to and removes the temporary files of dead processes.
        """
        resumed = self.check_resume(blob)
        exclusive = world_size == 1
        for folder in {FOLDERS[k] for k in KINDS[blob.get("kind", "certify")]}:
            (self.out / folder).mkdir(parents=True, exist_ok=True)
        old = self.info() if resumed else None
        if old is not None and old.version < FORMAT_VERSION and exclusive:
            self._migrate(old)
            old = self.info()
        grown = old is not None and old.config["num_inputs"] != blob["config"]["num_inputs"]
        if old is None or grown:  # a new run, or one extended: (re)write its options
            new = {**blob, "format_version": FORMAT_VERSION, "digest": digest(blob)}
            if old is not None and old.version < FORMAT_VERSION:  # ranks: keep the format
                new = {k: v for k, v in new.items() if k != "digest"}
                new["format_version"] = old.version
            self._write(self.config_path, _dumps(new), rank)
        self._digest = digest(blob)
        files = result_files(self.out) if exclusive else [
            rank_results_path(self.out, rank, world_size)]
        for path in files:  # nobody else appends to these now
            _journal.repair(path)
        self.clean_temps(rank=None if exclusive else rank)
        return resumed

    def _migrate(self, old: RunInfo) -> None:
        """Format 2 -> 3: stamp every good record with the digest, then config.json.

        Lines that fail their checks are kept as they are (they stay skipped); a
        crash meanwhile leaves a folder that still reads as format 2 and migrates
        again.
        """
        for path in result_files(self.out):
            _journal.repair(path)
            lines = []
            for raw in path.read_bytes().split(b"\n")[:-1]:
                rec, _ = _journal.parse_line(raw)
                if (rec is not None and "config_digest" not in rec
                        and check_record(rec, old) is None):
                    raw = json.dumps({**rec, "config_digest": old.digest},
                                     separators=(",", ":")).encode()
                lines.append(raw + b"\n")
            self._write(path, b"".join(lines), 0)
        blob = {**old.blob, "format_version": FORMAT_VERSION, "kind": old.kind}
        blob["digest"] = digest(blob)
        self._write(self.config_path, _dumps(blob), 0)

    # ----------------------------------------------------------------- records
    def scan(self, *, arrays: bool = True) -> Scan:
        """Replay the results files: the usable records, checked (see :class:`Scan`).

        ``arrays=False`` does not look at the ``.npz`` files.
        """
        info = self.info()
        seen: dict[tuple[int, str], dict[str, Any]] = {}
        skipped: list[tuple[int, str]] = []
        for path in result_files(self.out):
            for number, rec in _journal.read_objects(path, skipped):
                why = check_record(rec, info)
                key = (rec["input"], rec["grid"]) if why is None else None
                if key in seen:
                    continue  # a duplicate: the first usable one counts
                if why is None and arrays:
                    why = check_arrays(self.out, rec, info)
                if why is not None:
                    _journal.skip(path, number, why)
                    skipped.append((number, why))
                    continue
                seen[key] = rec  # type: ignore[index]
        return Scan(info, list(seen.values()), len(skipped))

    def records(self) -> list[dict[str, Any]]:
        """The usable records (:meth:`scan`)."""
        return self.scan().records

    def done(self) -> set[tuple[int, str]]:
        """``(input, grid)`` of every usable record: what a resume skips."""
        return {(r["input"], r["grid"]) for r in self.records()}

    def add(self, record: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *,
            rank: int = 0, world_size: int = 1) -> dict[str, Any]:
        """Write one finished pair: its ``.npz`` file, then its record; the record.

        The caller holds :meth:`lock` and has called :meth:`open`. The record gets
        the file's name and size, the run's digest and ``rank``.
        """
        if self._digest is None:
            raise RuntimeError("RunStore.add before RunStore.open")
        kind = record["kind"]
        rel = arrays_name(kind, record["input"], record["grid"])
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        data = buf.getvalue()
        self._write(self.out / rel, data, rank)
        full = {**record, file_field(kind): rel, "labels_bytes": len(data),
                "config_digest": self._digest, "rank": rank}
        _journal.append_line(rank_results_path(self.out, rank, world_size), full)
        return full

    def load_arrays(self, record: Mapping[str, Any],
                    names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays of a checked record's ``.npz`` file (all, or ``names`` where
        present), read with ``allow_pickle=False``.

        Raises
        ------
        OSError, ValueError, KeyError, EOFError
            If the file cannot be read (the caller names it and goes on).
        """
        with np.load(self.out / arrays_file(record), allow_pickle=False) as z:
            wanted = z.files if names is None else [k for k in names if k in z.files]
            return {k: z[k] for k in wanted}

    # ----------------------------------------------------------------- other files
    def write_text(self, name: str, text: str, *, locked: bool = False) -> Path:
        """Write ``OUT/name`` atomically; under the exclusive lock unless ``locked``
        (the caller holds it). Stale temporary files are removed first."""
        path = self.out / name
        if locked:
            self._write(path, text.encode(), 0)
            return path
        with self.lock():
            self.clean_temps()
            self._write(path, text.encode(), 0)
        return path

    def write_bytes(self, name: str, data: bytes, *, rank: int = 0) -> Path:
        """Write ``OUT/name`` atomically (the caller holds :meth:`lock`)."""
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(path, data, rank)
        return path

    def clean_temps(self, *, rank: int | None = None) -> int:
        """Remove temporary files of dead processes (and this one's); how many.

        ``rank=None`` (the caller holds the exclusive lock): every such file of the
        folder; otherwise only those of ``rank`` (the other ranks may be writing).
        """
        removed = 0
        for folder in (self.out, *(self.out / f for f in ("labels", "radius_maps", "figures"))):
            if not folder.is_dir():
                continue
            removed += remove_stale_temps(folder, f".rank{rank or 0}")
            if rank is None:
                removed += remove_stale_temps(folder)
        return removed

    def _write(self, path: Path, data: bytes, rank: int) -> None:
        write_atomic(path, data, temp_tag(f".rank{rank}"))


def _dumps(blob: Mapping[str, Any]) -> bytes:
    return (json.dumps(blob, indent=2) + "\n").encode()


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key in NOT_COMPARED:
            continue
        # an option of OMITTED_AT_DEFAULT is absent at its default: name that default
        a, b = (old.get(key, OMITTED_AT_DEFAULT.get(key)),
                new.get(key, OMITTED_AT_DEFAULT.get(key)))
        if a == b:
            continue
        if key == "dataset_fingerprint" and isinstance(a, str) and isinstance(b, str):
            diffs.append(f"the data changed since the run started, a file under `data_root` "
                         f"was edited, added or removed: `dataset_fingerprint` {a[:12]}... -> "
                         f"{b[:12]}...")
        else:
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


# --------------------------------------------------------------------------- functions
def read_config(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked content of ``OUT/config.json`` (ValueError if it fails a check)."""
    return RunStore(out).info().blob


def read_records(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The usable records of a run folder, from every ``results*.jsonl``, deduplicated.

    A record is identified by ``(input, grid)``; the first usable occurrence wins.
    A torn last line is ignored; any other line, record or label file that fails a
    check is skipped with a :class:`RunFolderWarning` (:meth:`RunStore.scan`).
    """
    return RunStore(out_dir).records()


def check_output_dir(out_dir: str | os.PathLike[str], record: Mapping[str, Any]) -> bool:
    """Whether a run with ``config.json`` content ``record`` resumes ``out_dir``
    (:meth:`RunStore.check_resume`); writes nothing."""
    return RunStore(out_dir).check_resume(record)


def config_record(cfg: RunConfig, sha: str, num_classes: int, layout: str, kind: str,
                  size: int, grid: Iterable[GridPoint], device: Any) -> dict[str, Any]:
    """The content of a certify run's ``config.json`` (:meth:`RunStore.open` adds its
    digest when it writes it)."""
    try:
        from importlib.metadata import version

        pkg_version = version("segcertify")
    except Exception:  # pragma: no cover - not installed
        pkg_version = None
    import torch

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "certify",
        "config": cfg.to_dict(),
        "derived": {"checkpoint_sha256": sha, "num_classes": num_classes, "layout": layout,
                    "input_kind": kind, "dataset_size": size,
                    "grid": [g.key for g in grid]},
        "runtime": {"device": str(device), "torch": torch.__version__,
                    "segcertify": pkg_version,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }
