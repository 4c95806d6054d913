"""A real S3-compatible server process (moto's standalone server) for loader tests, and plain-HTTP uploads."""

from __future__ import annotations

import http.client
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from devcluster import free_port

from .processes import stop, wait_port


class S3Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    def _request(self, method: str, path: str, body: bytes = b"") -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, quote(path, safe="/-_.~"), body=body, headers={"Content-Length": str(len(body))})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def create_bucket(self, bucket: str) -> None:
        assert self._request("PUT", f"/{bucket}") == 200

    def put(self, bucket: str, key: str, data: bytes) -> None:
        assert self._request("PUT", f"/{bucket}/{key}", data) == 200


@contextmanager
def moto_server() -> Iterator[S3Server]:
    port = free_port()
    binary = str(Path(sys.executable).parent / "moto_server")
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(proc, port, lambda: "moto_server did not start")
        yield S3Server(port)
    finally:
        stop(proc, 10)
