"""Progress reports that suit where they go: tqdm bars on a terminal, plain lines elsewhere.

A tqdm bar redraws itself with carriage returns and ANSI escape codes; written to a
log file or a pipe (CI, ``nohup``, ``2> log``) that is noise. :func:`progress_bar`
therefore returns a tqdm bar only when the stream is a terminal, and otherwise a
:class:`PlainProgress` that prints one plain line now and then. A bar that starts
with finished work (a resumed run) says so: ``reused 20/20``. Pure Python (tqdm is
imported only for a terminal).
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["PlainProgress", "interactive", "progress_bar"]


def interactive(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: ``sys.stderr``) is a terminal.

    Examples
    --------
    >>> import io
    >>> interactive(io.StringIO())
    False
    """
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class PlainProgress:
    """tqdm's ``update``/``set_postfix_str``/``close`` as plain lines, no escape codes.

    Prints ``"<desc>: reused k/total <unit>s"`` at the start when ``initial > 0``,
    ``"<desc>: done/total <unit>s"`` after an update at most every ``interval``
    seconds, and the final count at :meth:`close` (with the reused count).

    Parameters
    ----------
    total, initial : int
        Work in all and work already done (reused) at the start.
    desc, unit : str
        Line prefix and the unit's name.
    file : text stream, optional
        Where the lines go (default: ``sys.stderr``).
    interval : float, default 10.0
        Seconds between two progress lines (0: a line per update).
    disable : bool, default False
        Print nothing.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = PlainProgress(total=20, initial=20, desc="certify", unit="input", file=out)
    >>> bar.close()
    >>> print(out.getvalue(), end="")
    certify: reused 20/20 inputs
    certify: 20/20 inputs (20 reused)
    """

    def __init__(self, *, total: int, initial: int = 0, desc: str = "progress",
                 unit: str = "it", file: IO[str] | None = None, interval: float = 10.0,
                 disable: bool = False) -> None:
        self.total, self.n, self.reused = int(total), int(initial), int(initial)
        self.desc, self.unit, self.interval, self.disable = desc, unit, interval, disable
        self.file = file
        self._last = time.monotonic()
        self._closed = False
        if self.reused and not disable:
            self._print(f"reused {self.reused}/{self.total} {self.unit}s")

    def _print(self, text: str) -> None:
        print(f"{self.desc}: {text}", file=sys.stderr if self.file is None else self.file,
              flush=True)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more done; print a line if ``interval`` seconds have passed."""
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self._last >= self.interval and self.n < self.total:
            self._last = now
            self._print(f"{self.n}/{self.total} {self.unit}s")

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Ignored (a terminal bar shows it; a log needs no per-step detail)."""

    def close(self) -> None:
        """Print the final count once."""
        if self._closed or self.disable:
            return
        self._closed = True
        reused = f" ({self.reused} reused)" if self.reused else ""
        self._print(f"{self.n}/{self.total} {self.unit}s{reused}")


def progress_bar(*, total: int, initial: int = 0, desc: str, unit: str = "it",
                 enabled: bool = True, file: IO[str] | None = None, **tqdm_kwargs: Any) -> Any:
    """A tqdm bar on a terminal, a :class:`PlainProgress` elsewhere; silent if not ``enabled``.

    A bar that starts with ``initial`` reused items says ``reused initial/total`` in its
    description.

    Examples
    --------
    >>> import io
    >>> bar = progress_bar(total=3, desc="certify", unit="input", file=io.StringIO())
    >>> type(bar).__name__
    'PlainProgress'
    """
    stream = sys.stderr if file is None else file
    if not enabled or not interactive(stream):
        return PlainProgress(total=total, initial=initial, desc=desc, unit=unit, file=stream,
                             disable=not enabled)
    from tqdm import tqdm

    if initial:
        desc = f"{desc} (reused {initial}/{total})"
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, **tqdm_kwargs)
