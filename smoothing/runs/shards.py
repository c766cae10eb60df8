"""Sharded data sets under torchrun: which inputs each rank takes and where it writes.

Rank ``r`` of ``w`` certifies the disjoint slice :func:`shard_indices` of the inputs,
appends to its own :func:`rank_results_path`, resumes from every results file of the
folder (:func:`pending_indices`), and :func:`merge_results` (rank 0, after a barrier)
writes the combined ``results.jsonl``. These functions serve any JSON-lines records
(your own scripts' too: ``key='index'``); :mod:`smoothing.runs.store` reads the run
engine's records.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from smoothing._io import write_atomic
from smoothing._sampling import check_int

__all__ = [
    "RESULTS_NAME",
    "completed_keys",
    "merge_results",
    "pending_indices",
    "rank_results_path",
    "shard_indices",
]

#: Results file of a single process; rank ``r`` of ``w > 1`` writes ``results.rank{r}.jsonl``.
RESULTS_NAME = "results.jsonl"
_RANK_FILE = re.compile(r"^results\.rank(\d+)\.jsonl$")
_BACKENDS = ("gloo", "nccl")

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
    world_size, rank = _check_rank(world_size, rank)
    return indices[rank::world_size]


def rank_results_path(out_dir: str | os.PathLike, rank: int, world_size: int) -> Path:
    """The results file of rank ``rank``: ``results.jsonl`` alone, ``results.rank{r}.jsonl`` else.

    Examples
    --------
    >>> rank_results_path("out", 0, 1).as_posix(), rank_results_path("out", 1, 4).as_posix()
    ('out/results.jsonl', 'out/results.rank1.jsonl')
    """
    world_size, rank = _check_rank(world_size, rank)
    name = RESULTS_NAME if world_size == 1 else f"results.rank{rank}.jsonl"
    return Path(out_dir) / name


def completed_keys(out_dir: str | os.PathLike, *,
                   key: str | Sequence[str] = "index") -> set[Any]:
    """The keys of all records in ``results.jsonl`` and every ``results.rank*.jsonl``.

    ``key`` names the field that identifies a record, or several fields (then the
    keys are tuples, e.g. ``("input", "grid")`` for :mod:`smoothing.runs`
    records). Records without it are ignored. A last line cut short by a crash is
    ignored too (that input is simply redone).
    """
    keys = (_record_key(r, key) for r in _read_all(Path(out_dir)))
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
    The rank files are kept (they are what a resumed run reads).

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

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "results.rank0.jsonl").write_text('{"index": 0}\\n{"index": 2}\\n')
    ...     _ = (Path(d) / "results.rank1.jsonl").write_text('{"index": 1}\\n')
    ...     [r["index"] for r in merge_results(d)], (Path(d) / "results.jsonl").exists()
    ([0, 1, 2], True)
    """
    out = Path(out_dir)
    merged: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for record in _read_all(out):
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
    write_atomic(out / RESULTS_NAME, "".join(json.dumps(r) + "\n" for r in merged).encode())
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


def _result_files(out: Path) -> list[Path]:
    ranked = sorted(((int(m.group(1)), p) for p in out.glob("results.rank*.jsonl")
                     if (m := _RANK_FILE.match(p.name))), key=lambda t: t[0])
    single = [out / RESULTS_NAME] if (out / RESULTS_NAME).exists() else []
    return single + [p for _, p in ranked]


def _read_all(out: Path) -> Iterable[dict[str, Any]]:
    for path in _result_files(out):
        yield from _read_jsonl(path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if i == len(lines) - 1:  # cut short by a crash mid-write: redo that input
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({error}).") from error
        if not isinstance(record, dict):  # valid JSON but no record: as corrupt as above
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not a JSON object (a record); got "
                             f"{type(record).__name__}.")
        records.append(record)
    return records


def _plain(i: object) -> object:
    """A NumPy / torch scalar index as the Python int a JSON record holds."""
    return i.item() if hasattr(i, "item") else i



def _check_rank(world_size: object, rank: object) -> tuple[int, int]:
    world_size = check_int(world_size, "world_size")
    rank = check_int(rank, "rank", low=0)
    if rank >= world_size:
        raise ValueError(f"`rank` must lie in [0, world_size={world_size}); got {rank}.")
    return world_size, rank
