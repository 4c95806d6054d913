"""Progress lines on stderr: bytes so far, rate and percent, at most about one line a second."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from modelyard_runtime import logs


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    def __init__(self, label: str, total: int | None, *, stream: TextIO | None = None, interval: float = 1.0) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._stream = stream or sys.stderr
        self._interval = interval
        self._start = time.monotonic()
        self._last = self._start

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last >= self._interval:
                self._last = now
                self._emit(now)

    def reset(self) -> None:
        with self._lock:
            self.done = 0

    def finish(self) -> None:
        with self._lock:
            self._emit(time.monotonic(), final=True)

    def _emit(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self._start, 1e-6)
        rate = self.done / elapsed
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        total = f" / {human(self.total)}" if self.total else ""
        word = "fetched" if final else "fetching"
        logs.line(
            "modelyard-loader",
            f"{word} {self.label}: {human(self.done)}{total}{pct} at {human(rate)}/s",
            stream=self._stream,
            bytes=self.done,
            total_bytes=self.total,
        )
