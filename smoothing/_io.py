"""Crash-safe file writes shared by the runner, the demo, checkpoints and merges."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, tag: str = "") -> None:
    """Write ``data`` to ``path`` atomically: a temporary file next to it
    (``.{name}{tag}.tmp``), fsync, rename. A process killed meanwhile leaves at most
    that temporary file, never a truncated ``path``; a failed write removes it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{tag}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
