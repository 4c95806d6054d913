"""Each benchmark owns one section of ``benchmarks/RESULTS.md``, between its start and end markers."""

from __future__ import annotations


def splice(existing: str | None, section: str, start: str, end: str) -> str:
    """``existing`` with the text from ``start`` to ``end`` replaced by ``section`` (appended when absent)."""
    if not existing:
        return "# Benchmark results\n\n" + section
    if start in existing and end in existing:
        head, rest = existing.split(start, 1)
        _, tail = rest.split(end + "\n", 1) if end + "\n" in rest else rest.split(end, 1)
        return head + section + tail
    return existing.rstrip("\n") + "\n\n" + section
