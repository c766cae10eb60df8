"""Crash-safe file writes shared by the runner, the demo, checkpoints and merges."""

from __future__ import annotations

import hashlib
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


# --------------------------------------------------------------------------- locks
try:  # POSIX
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None
try:  # Windows
    import msvcrt as _msvcrt
except ImportError:  # POSIX
    _msvcrt = None


class FolderLockedError(ValueError):
    """Another live process holds the lock of an output folder.

    A :class:`ValueError`, so that callers which turn bad options into one error
    line (the CLI: exit status 2) treat it the same way.
    """


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists on this machine (``False`` for pid <= 0)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFO
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class FolderLock:
    """An exclusive, non-blocking lock on a folder: the file ``folder/name``.

    :meth:`acquire` takes an OS lock on the file (``fcntl.flock`` on POSIX,
    ``msvcrt.locking`` on Windows) and writes this process's id into it; the OS
    drops the lock when the process dies, so a lock file left by a dead process
    (a stale lock) is simply taken over. Where the file system offers no such lock,
    the file is created exclusively and a stale one is recognised by its pid naming
    no live process.
    :meth:`release` deletes the file while still holding it, and :meth:`acquire`
    checks after locking that the path still names the file it locked.

    ``shared=True`` takes a shared lock instead (``LOCK_SH``): any number of shared
    holders, but none beside an exclusive one. The ranks of one torchrun job share
    the folder's job lock this way, while a single run takes it exclusively. The
    last shared holder to leave deletes the file. Where the OS offers no shared
    lock (Windows, file systems without locks), a shared lock is not taken at all
    (:attr:`held` stays ``False``) and only the exclusive locks protect the folder.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with FolderLock(d):
    ...         try:
    ...             FolderLock(d).acquire()
    ...         except FolderLockedError:
    ...             print("refused")
    refused
    """

    def __init__(self, folder: str | os.PathLike[str], name: str = ".lock", *,
                 shared: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.shared = shared
        self._fd: int | None = None
        self._exclusive_file = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (creating the folder) or raise :class:`FolderLockedError`."""
        if self._fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _os_lock(fd, self.shared)
            if locked is None and self.shared:  # no shared OS locks here: not taken
                os.close(fd)
                return
            if locked is None:  # no OS locks here: an exclusive file with a pid
                empty = os.fstat(fd).st_size == 0
                os.close(fd)
                fd = None
                if empty:  # created just now, or released: nobody's
                    self.path.unlink(missing_ok=True)
                fd = self._create_exclusive()
            elif not locked:
                raise self._refusal()
            elif not _same_file(fd, self.path):  # released and deleted meanwhile
                os.close(fd)
                fd = None
                return self.acquire()
            if not self.shared:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"{os.getpid()}\n".encode())
                os.fsync(fd)
            elif not pid_alive(_read_pid(self.path) or 0):  # first live holder: named
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            if fd is not None:
                os.close(fd)
            self._exclusive_file = False
            raise
        self._fd = fd

    def _create_exclusive(self) -> int:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid is not None and pid_alive(pid):
                    raise self._refusal() from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            self._exclusive_file = True
            return fd
        raise self._refusal()

    def _refusal(self) -> FolderLockedError:
        pid = _read_pid(self.path)
        who = f"process {pid}" if pid is not None else "another process"
        return FolderLockedError(
            f"'{self.folder}' is in use by another run ({who} holds '{self.path.name}'); "
            "wait for it to finish or choose another `out`."
        )

    def release(self) -> None:
        """Drop the lock (a no-op if it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self.shared and not _os_lock(fd, shared=False):
            # other holders remain (taking it exclusively failed): leave the file
            _os_unlock(fd)
            os.close(fd)
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:  # pragma: no cover
            pass
        # delete the file while still holding it: a process that opened it meanwhile
        # sees that the path no longer names its file and starts again
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - Windows cannot delete an open file
            pass
        if not self._exclusive_file:
            _os_unlock(fd)
        os.close(fd)
        self._exclusive_file = False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _os_lock(fd: int, shared: bool = False) -> bool | None:
    """Lock ``fd`` without waiting: True, False (held elsewhere), None (unsupported)."""
    try:
        if _fcntl is not None:
            _fcntl.flock(fd, (_fcntl.LOCK_SH if shared else _fcntl.LOCK_EX) | _fcntl.LOCK_NB)
        elif shared:  # pragma: no cover - msvcrt has no shared locks
            return None
        elif _msvcrt is not None:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            _msvcrt.locking(fd, _msvcrt.LK_NBLCK, 1)
        else:  # pragma: no cover
            return None
    except (BlockingIOError, PermissionError):
        return False
    except OSError as err:  # e.g. ENOLCK on a file system without locks
        import errno

        if err.errno in (errno.EAGAIN, errno.EACCES, errno.EDEADLK):
            return False
        return None
    return True


def _os_unlock(fd: int) -> None:
    try:
        if _fcntl is not None:
            _fcntl.flock(fd, _fcntl.LOCK_UN)
        elif _msvcrt is not None:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            _msvcrt.locking(fd, _msvcrt.LK_UNLCK, 1)
    except OSError:  # pragma: no cover - closing the file drops it anyway
        pass


def temp_tag(marker: str = "") -> str:
    """A :func:`write_atomic` tag unique to this process: ``{marker}.{pid}``."""
    return f"{marker}.{os.getpid()}"


def remove_stale_temps(folder: str | os.PathLike[str], marker: str = "") -> int:
    """Delete this process's and dead processes' temporary files in ``folder``.

    Removes ``.*{marker}.{pid}.tmp`` (:func:`temp_tag`) whose ``pid`` is this
    process or no live process, and the pid-less ``.*{marker}.tmp`` of older
    versions; files of a live process are kept. Returns how many were removed.
    """
    removed = 0
    for path in Path(folder).glob(f".*{marker}.*tmp"):
        stem = path.name[: -len(".tmp")]
        head, _, pid = stem.rpartition(".")
        if pid.isdigit() and head.endswith(marker):
            stale = int(pid) == os.getpid() or not pid_alive(int(pid))
        else:
            stale = stem.endswith(marker) and bool(marker)
        if stale:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
