"""The server processes tests start: waiting until one listens, and stopping it (SIGTERM, a grace period, then
SIGKILL)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any


def wait_port(proc: subprocess.Popen[Any], port: int, describe: Callable[[], str], timeout: float = 30.0) -> None:
    """Return once something accepts on 127.0.0.1:``port``; RuntimeError with ``describe()`` (e.g. the process's
    log) when ``proc`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening on {port}: {describe()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not listening on {port} after {timeout:.0f}s: {describe()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
