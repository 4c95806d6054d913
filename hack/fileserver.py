"""A plain HTTP file server for a folder, on all of this host's addresses: the real node's pods reach it through
the bridge's gateway (10.244.100.1), as they would reach an artifact store. Used by ``make demo`` and the tests."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


ServerT = TypeVar("ServerT", bound=socketserver.BaseServer)


@contextlib.contextmanager
def serving(server: ServerT) -> Iterator[ServerT]:
    """Run ``server`` in a background thread for the length of a ``with`` block, then shut it down and close it."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[int]:
    """Serve ``root`` for the length of a ``with`` block; yields the port."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), functools.partial(_QuietFiles, directory=str(root)))
    server.daemon_threads = True
    with serving(server):
        yield int(server.server_address[1])
