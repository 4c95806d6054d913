"""A real HTTP/1.1 file server for loader tests, started in a thread on 127.0.0.1.

Modes (set ``server.mode``): ``normal`` (Range requests answered with 206), ``no-range`` (always the whole
body with 200), ``drop`` (the first ``drops`` responses stop half-way through the body and the connection is
closed). ``redirects`` maps a path to a Location (absolute URL) answered with 302. Every request's method,
path and headers are recorded in ``requests``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fileserver import serving

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.root = root
        self.mode = "normal"
        self.ranges = True  # False: like "no-range", combinable with "drop"
        self.drops = 0
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def take_drop(self) -> bool:
        with self.lock:
            if self.mode == "drop" and self.drops > 0:
                self.drops -= 1
                return True
            return False


class _Handler(BaseHTTPRequestHandler):
    server: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        srv = self.server
        srv.requests.append((self.command, self.path, dict(self.headers.items())))
        path = self.path.split("?", 1)[0]
        if path in srv.redirects:
            self.send_response(302)
            self.send_header("Location", srv.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        file = (srv.root / path.lstrip("/")).resolve()
        if not file.is_file() or srv.root.resolve() not in file.parents:
            self.send_error(404)
            return
        st = file.stat()
        size = st.st_size
        etag = f'"{size}-{st.st_mtime_ns}"'
        start, end, status = 0, size, 200
        rng = self.headers.get("Range")
        if rng and srv.ranges and srv.mode != "no-range":
            m = _RANGE.match(rng)
            if_range = self.headers.get("If-Range")
            if m and (if_range is None or if_range == etag):
                start = int(m[1])
                end = min(int(m[2]) + 1, size) if m[2] else size
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        length = end - start
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        if srv.ranges and srv.mode != "no-range":
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if head:
            return
        self.wfile.flush()
        with open(file, "rb") as f:
            if length > 1 and srv.take_drop():
                f.seek(start)
                self.wfile.write(f.read(length // 2))
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.connection.sendfile(f, offset=start, count=length)


@contextmanager
def serve(root: Path, host: str = "127.0.0.1") -> Iterator[FileServer]:
    with serving(FileServer(root, host)) as srv:
        yield srv
