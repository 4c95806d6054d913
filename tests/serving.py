"""Start a real ``modelyard-server`` process on free ports for a test, and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devcluster import free_port

from .support.processes import stop, wait_port

SERVER = str(Path(sys.executable).parent / "modelyard-server")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log: Path
    admin_port: int = 0

    @property
    def admin(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def status(self, path: str, method: str = "GET", body: bytes | None = None) -> int:
        request = urllib.request.Request(f"http://{self.http}{path}", data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


def wait_listening(server: Server, timeout: float = 30) -> None:
    wait_port(server.proc, server.http_port, lambda: "\n" + server.output(), timeout)


def wait_ready(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited with {server.proc.returncode}:\n{server.output()}")
        with contextlib.suppress(OSError):
            if server.status("/v2/health/ready") == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"server not ready after {timeout}s:\n{server.output()}")


@contextlib.contextmanager
def run_server(repo: Path, *args: str, env: dict[str, str] | None = None, ready: bool = True) -> Iterator[Server]:
    """``modelyard-server`` on free ports over ``repo``; waits until ready unless ``ready=False``."""
    log = repo.parent / f"server-{repo.name}-{time.monotonic_ns()}.log"
    http_port, grpc_port, admin_port = free_port(), free_port(), free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [SERVER, "--model-repository", str(repo), "--host", "127.0.0.1",
             "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--admin-port", str(admin_port), *args],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )  # fmt: skip
    server = Server(proc, http_port, grpc_port, log, admin_port)
    try:
        if ready:
            wait_ready(server)
        else:
            wait_listening(server)
        yield server
    finally:
        stop(proc, 15)
