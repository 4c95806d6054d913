"""Each benchmark owns one section of ``benchmarks/RESULTS.md``, between its start and end markers."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def splice(existing: str | None, section: str, start: str, end: str) -> str:
    """``existing`` with the text from ``start`` to ``end`` replaced by ``section`` (appended when absent)."""
    if not existing:
        return "# Benchmark results\n\n" + section
    if start in existing and end in existing:
        head, rest = existing.split(start, 1)
        _, tail = rest.split(end + "\n", 1) if end + "\n" in rest else rest.split(end, 1)
        return head + section + tail
    return existing.rstrip("\n") + "\n\n" + section


def write_results(out_dir: Path, name: str, results: dict[str, Any], render: Callable[[dict[str, Any]], str],
                  start: str, end: str) -> None:  # fmt: skip
    """``out_dir/name/RESULTS.json`` with the raw numbers, and the section rendered into ``out_dir/RESULTS.md``."""
    own = out_dir / name
    own.mkdir(parents=True, exist_ok=True)
    (own / "RESULTS.json").write_text(json.dumps(results, indent=2) + "\n")
    md = out_dir / "RESULTS.md"
    md.write_text(splice(md.read_text() if md.is_file() else None, render(results), start, end))
    print(f"wrote {md} and {own / 'RESULTS.json'}", file=sys.stderr)


def run_facts(started: float, load_at_start: float) -> dict[str, Any]:
    """When and where a benchmark ran: date, wall seconds, load average at start and end, the machine."""
    import time

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_s": time.time() - started,
        "load": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
    }
