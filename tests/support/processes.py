"""The server processes tests start: waiting until one listens, probing its health endpoints, reading its JSON log,
and stopping it (SIGTERM, a grace period, then SIGKILL)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def probe(port: int, path: str) -> int:
    """The HTTP status of GET 127.0.0.1:``port``/``path`` (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of a log, each parsed as JSON (a line that is not JSON fails here)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}") from None
    return out


def wait_port(
    proc: subprocess.Popen[Any], port: int, describe: Callable[[], str], timeout: float = 30.0, host: str = "127.0.0.1"
) -> None:
    """Return once something accepts on ``host``:``port``; RuntimeError with ``describe()`` (e.g. the process's
    log) when ``proc`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
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


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (the peak) of a process, in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def sidecar_address(proc: subprocess.Popen[str], timeout: float = 30.0, seen: list[str] | None = None) -> str:
    """The host:port a ``modelyard-loader sidecar`` started with ``--listen 127.0.0.1:0`` announced on stderr
    (empty when it exited or said nothing in time). The lines read on the way are added to ``seen``: the sidecar's
    work may start, and log, before the announcement."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if seen is not None and line:
            seen.append(line)
        if not line:
            return ""
        if "sidecar API on http://" in line:
            return line.split("http://", 1)[1].split(" ", 1)[0]
    return ""
