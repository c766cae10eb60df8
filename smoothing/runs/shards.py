"""Sharded data sets under torchrun: which inputs each rank takes and where it writes.

Rank ``r`` of ``w`` certifies the disjoint slice :func:`shard_indices` of the inputs,
appends to its own :func:`rank_results_path`, resumes from every results file of the
folder (:func:`pending_indices`), and :func:`merge_results` (rank 0, after a barrier)
writes the combined ``results.jsonl``. These functions serve any JSON-lines records
(your own scripts' too: ``key='index'``). They read lines as the run store does
(:func:`smoothing.runs._journal.read_objects`: a torn last line is ignored, any other
bad line skipped with a warning naming the file and line); in a folder of a
segcertify run (one with ``config.json``) they see only the records that pass the
store's checks (:class:`~smoothing.runs.store.RunStore`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from smoothing.runs._journal import (
    RESULTS_NAME,
    check_rank,
    rank_results_path,
    read_objects,
    result_files,
)
from smoothing.runs.store import RunStore

__all__ = [
    "RESULTS_NAME",
    "completed_keys",
    "merge_results",
    "pending_indices",
    "rank_results_path",
    "shard_indices",
]

T = TypeVar("T")


def shard_indices(indices: Sequence[T], rank: int, world_size: int) -> Sequence[T]:
    """Rank ``rank``'s slice ``indices[rank::world_size]`` of the inputs.

    The slices of the ranks are disjoint, cover ``indices`` and differ in length
    by at most one. Works for lists, ranges, NumPy arrays and tensors.

    Examples
    --------
    >>> shard_indices(list(range(7)), 1, 3)
    [1, 4]
    >>> [list(shard_indices(range(5), r, 2)) for r in range(2)]
    [[0, 2, 4], [1, 3]]
    """
    world_size, rank = check_rank(world_size, rank)
    return indices[rank::world_size]


def completed_keys(out_dir: str | os.PathLike, *,
                   key: str | Sequence[str] = "index") -> set[Any]:
    """The keys of all records in ``results.jsonl`` and every ``results.rank*.jsonl``.

    ``key`` names the field that identifies a record, or several fields (then the
    keys are tuples, e.g. ``("input", "grid")`` for :mod:`smoothing.runs`
    records). Records without it are ignored. A last line cut short by a crash is
    ignored too (that input is simply redone), and so is any other bad line, with a
    warning naming the file and the line.
    """
    keys = (_record_key(r, key) for r in _read_all(RunStore(out_dir)))
    return {k for k in keys if k is not None}


def pending_indices(indices: Sequence[T], out_dir: str | os.PathLike, rank: int,
                    world_size: int, *, key: str = "index") -> list[T]:
    """Rank ``rank``'s slice of ``indices`` minus the inputs already in any results file.

    Resuming is per rank: a rank skips what *any* results file of ``out_dir``
    records under ``key`` (so a run resumed with another world size does no input
    twice) and certifies the rest of its own slice, appending to its own file. It
    never depends on what the other ranks are writing now (their slices are
    disjoint from its own), so the ranks need not synchronise first.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "results.rank0.jsonl").write_text('{"index": 0}\\n{"index": 2}\\n')
    ...     pending_indices(range(6), d, 0, 2)
    [4]
    """
    done = completed_keys(out_dir, key=key)
    return [i for i in shard_indices(indices, rank, world_size) if _plain(i) not in done]


def merge_results(out_dir: str | os.PathLike, *,
                  key: str | Sequence[str] = "index") -> list[dict[str, Any]]:
    """Merge ``results.jsonl`` and all ``results.rank*.jsonl`` into ``results.jsonl``.

    Run it once after every rank has finished (on rank 0 after
    :meth:`DistContext.barrier`, or afterwards in one process); it is idempotent.
    The rank files are kept (they are what a resumed run reads). It holds the
    folder's exclusive lock while it works, so it is refused beside a live run.
    Bad lines are left out (each with a warning); in a segcertify run folder, so
    are records that fail the store's checks.

    Parameters
    ----------
    out_dir : path
        The output directory of the run.
    key : str or sequence of str, default 'index'
        Field(s) that identify a record: a record whose key was already seen is
        dropped (the first one wins), and the records are sorted by key when every
        record has one. ``("input", "grid")`` for :mod:`smoothing.runs` records.

    Returns
    -------
    list of dict
        The merged records, as written (compute the run's summary from them).

    Raises
    ------
    smoothing._io.FolderLockedError
        (a ValueError) If a run or another merge holds the folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "results.rank0.jsonl").write_text('{"index": 0}\\n{"index": 2}\\n')
    ...     _ = (Path(d) / "results.rank1.jsonl").write_text('{"index": 1}\\n')
    ...     [r["index"] for r in merge_results(d)], (Path(d) / "results.jsonl").exists()
    ([0, 1, 2], True)
    """
    store = RunStore(out_dir)
    with store.lock():
        merged: list[dict[str, Any]] = []
        seen: set[Any] = set()
        for record in _read_all(store):
            k = _record_key(record, key)
            if k is not None:
                if k in seen:
                    continue
                seen.add(k)
            merged.append(record)
        if merged and all(_record_key(r, key) is not None for r in merged):
            try:
                merged.sort(key=lambda r: _record_key(r, key))
            except TypeError:  # keys of mixed types: keep the file order
                pass
        store.write_text(RESULTS_NAME, "".join(json.dumps(r) + "\n" for r in merged),
                         locked=True)
    return merged


def _record_key(record: dict[str, Any], key: str | Sequence[str]) -> Any:
    """``record[key]``, or the tuple of the fields ``key``; ``None`` if one is missing."""
    if isinstance(key, str):
        return record.get(key)
    if any(k not in record for k in key):
        return None
    return tuple(_hashable(record[k]) for k in key)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _read_all(store: RunStore) -> Iterable[dict[str, Any]]:
    """The records of the folder: the store's checked ones in a run folder, else every
    JSON object line of every results file."""
    if store.is_run():
        yield from store.records()
        return
    for path in result_files(store.out):
        for _, record in read_objects(path):
            yield record


def _plain(i: object) -> object:
    """A NumPy / torch scalar index as the Python int a JSON record holds."""
    return i.item() if hasattr(i, "item") else i


