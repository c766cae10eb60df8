"""When a table of p-values over 0..n beats evaluating each count (shared by the
conservative and the randomized p-value paths)."""

from __future__ import annotations

__all__ = ["TABLE_ENTRIES_PER_COUNT", "TABLE_MAX_ENTRIES", "uses_table"]

#: The table of p-values over 0..n is used when it has at most this many entries
#: per count (filling an entry costs ~1 ns, an incomplete beta ~100 ns) ...
TABLE_ENTRIES_PER_COUNT = 16
#: ... and at most this many entries in all (134 MB of float64).
TABLE_MAX_ENTRIES = 2**24


def uses_table(n: int, num_counts: int) -> bool:
    """Whether a table over 0..n is cheaper than evaluating each of `num_counts` counts."""
    return n + 1 <= min(TABLE_ENTRIES_PER_COUNT * num_counts, TABLE_MAX_ENTRIES)
