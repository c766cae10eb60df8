"""The byte layer of a run folder: whole JSON lines appended, read back tolerantly.

It knows files, lines and JSON objects, nothing of runs (that is
:mod:`smoothing.runs.store`, which replays these objects and checks each one); the
split of optuna's journal storage, whose backend writes and reads log lines only.

* :func:`append_line` writes a line with ONE ``os.write`` (``O_APPEND``), then
  ``fsync``: a crash leaves at most a torn *last* line, never a torn middle.
* :func:`read_objects` splits the bytes on ``b"\\n"`` only (a U+2028 inside a JSON
  string is no line break), ignores a torn last line (no ``b"\\n"`` yet: a write in
  progress or killed) and skips every other line that is not UTF-8, not JSON or not
  a JSON object, with one :class:`RunFolderWarning` naming the file, the line number
  and why (:func:`skip`; the store skips records that fail its checks the same
  way). A reader never stops at a bad line: the run stays resumable.
* :func:`repair` cuts the torn last line off (a writer does it before appending).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from smoothing._sampling import check_int

__all__ = ["RESULTS_NAME", "RunFolderWarning", "append_line", "check_rank", "parse_line",
           "rank_results_path", "read_objects", "repair", "result_files", "skip"]

#: Results file of a single process; rank ``r`` of ``w > 1`` writes ``results.rank{r}.jsonl``.
RESULTS_NAME = "results.jsonl"
_RANK_FILE = re.compile(r"^results\.rank(\d+)\.jsonl$")


class RunFolderWarning(UserWarning):
    """A line, record or file of a run folder that is skipped (it is named, with why).

    Issued from one place (:func:`skip`), so Python's default filter shows each
    message once per process even when a run and its summary read the same line.
    """


def append_line(path: str | os.PathLike[str], obj: Mapping[str, Any]) -> None:
    """Append ``obj`` as one JSON line to ``path`` with a single ``os.write``, then fsync.

    Raises
    ------
    ValueError
        If ``obj`` holds NaN or infinity (JSON has no such numbers).
    OSError
        If the write fails or is short (a full disk): the line may then be torn,
        which the next :func:`repair` cuts off.
    """
    line = (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write to '{path}' ({written} of {len(line)} bytes); "
                          "is the disk full?")
        os.fsync(fd)
    finally:
        os.close(fd)


def repair(path: str | os.PathLike[str]) -> int:
    """Cut a torn last line (a write killed midway) off ``path``; the bytes removed.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "r.jsonl"
    ...     _ = p.write_bytes(b'{"a": 1}\\n{"a": 2, "b')
    ...     repair(p), p.read_bytes()
    (11, b'{"a": 1}\\n')
    """
    path = Path(path)
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


def read_objects(path: str | os.PathLike[str], skipped: list[tuple[int, str]] | None = None,
                 ) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every complete JSON-object line of ``path``.

    Blank lines are skipped silently, a torn last line too; any other line that is
    no JSON object is skipped with a :class:`RunFolderWarning` naming ``path``, its
    line number (counted from 1) and why; ``(number, why)`` is appended to
    ``skipped`` if given.

    Examples
    --------
    >>> import tempfile, warnings
    >>> with tempfile.TemporaryDirectory() as d, warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     p = Path(d) / "r.jsonl"
    ...     _ = p.write_bytes('{"a": 1}\\n[1]\\n{"s": "x\\u2028y"}\\n{"a":'.encode())
    ...     got = list(read_objects(p))
    >>> got
    [(1, {'a': 1}), (3, {'s': 'x\\u2028y'})]
    >>> print(str(w[0].message).split("r.jsonl")[1])
    ': line 2 skipped: not a JSON object (a list).
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    lines.pop()  # after the last b"\n": empty, or a torn line (ignored)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        obj, why = parse_line(raw)
        if why is not None:
            skip(path, number, why)
            if skipped is not None:
                skipped.append((number, why))
            continue
        yield number, obj


def skip(path: Path, number: int, why: str) -> None:
    """Warn that line ``number`` of ``path`` is skipped, and why (once per message)."""
    warnings.warn(f"'{path}': line {number} skipped: {why}.", RunFolderWarning, stacklevel=1)


def parse_line(raw: bytes) -> tuple[Any, str | None]:
    """``(object, None)`` for a line holding a JSON object, else ``(None, why not)``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as err:
        return None, f"not valid JSON ({err})"
    if not isinstance(obj, dict):
        return None, f"not a JSON object (a {_json_type(obj)})"
    return obj, None


def _json_type(obj: object) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if obj is None else names.get(type(obj), type(obj).__name__)


def result_files(out: str | os.PathLike[str]) -> list[Path]:
    """``results.jsonl`` (if present), then ``results.rank{r}.jsonl`` by rank."""
    out = Path(out)
    ranked = sorted(((int(m.group(1)), p) for p in out.glob("results.rank*.jsonl")
                     if (m := _RANK_FILE.match(p.name))), key=lambda t: t[0])
    single = [out / RESULTS_NAME] if (out / RESULTS_NAME).is_file() else []
    return single + [p for _, p in ranked]


def rank_results_path(out_dir: str | os.PathLike, rank: int, world_size: int) -> Path:
    """The results file of rank ``rank``: ``results.jsonl`` alone, ``results.rank{r}.jsonl`` else.

    Examples
    --------
    >>> rank_results_path("out", 0, 1).as_posix(), rank_results_path("out", 1, 4).as_posix()
    ('out/results.jsonl', 'out/results.rank1.jsonl')
    """
    world_size, rank = check_rank(world_size, rank)
    name = RESULTS_NAME if world_size == 1 else f"results.rank{rank}.jsonl"
    return Path(out_dir) / name


def check_rank(world_size: object, rank: object) -> tuple[int, int]:
    """``(world_size, rank)`` as ints with ``0 <= rank < world_size`` (ValueError else)."""
    world_size = check_int(world_size, "world_size", low=1)
    rank = check_int(rank, "rank", low=0)
    if rank >= world_size:
        raise ValueError(f"`rank` must lie in [0, world_size={world_size}); got {rank}.")
    return world_size, rank
