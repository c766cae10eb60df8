"""Write a benchmark's Markdown table into its own marked section of docs/benchmarks.md."""

from __future__ import annotations

import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(name: str, title: str, md: str, doc: Path = DOC) -> Path:
    """Replace (or append) the block between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{start}\n{md.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text,
                      flags=re.S)
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n" + block + "\n"
    doc.write_text(text)
    return doc


def best_time(fn, repeat: int) -> float:
    """Fastest of ``repeat`` timed calls of ``fn`` after one warm-up call (compilation,
    caches)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fmt(t: float) -> str:
    """A duration in s, ms or µs."""
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.0f} µs"
