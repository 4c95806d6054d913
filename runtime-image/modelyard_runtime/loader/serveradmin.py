"""The sidecar's calls to the model server's admin API (dynamic mode): load a version once it is published.

The server serves load/unload only on its admin listener, on the pod's loopback (``modelyard-server --admin-port``),
optionally behind a bearer token from a mounted Secret. The address comes from the sidecar's own flags, never from a
request, and must be a loopback address: the sidecar never sends the token anywhere else. Plain ``http.client``, so
no proxy variable can redirect the call.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from modelyard_runtime.loader.errors import UsageError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class ServerAdmin:
    host: str
    port: int
    token_file: Path | None = None
    timeout: float = 600.0  # a load includes session creation and warm-up

    @classmethod
    def parse(cls, url: str, token_file: Path | None = None) -> ServerAdmin:
        """``http://127.0.0.1:8082`` → a client; UsageError for another scheme or a non-loopback host."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK or parts.path not in ("", "/"):
            raise UsageError(f"--server-admin {url}: expected http://127.0.0.1:PORT (the server's admin API, loopback)")
        try:
            port = parts.port or 80
        except ValueError:
            raise UsageError(f"--server-admin {url}: invalid port") from None
        return cls(parts.hostname, port, token_file)

    def load(self, model: str) -> tuple[int, str]:
        """POST the repository load of ``model``: (HTTP status, the server's error message or "")."""
        headers = {"Content-Type": "application/json"}
        if self.token_file is not None:
            try:
                headers["Authorization"] = "Bearer " + self.token_file.read_text().strip()
            except OSError as exc:
                return 0, f"cannot read the admin token file {self.token_file}: {exc.strerror or exc}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("POST", f"/v2/repository/models/{quote(model, safe='')}/load", body=b"{}", headers=headers)
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            return 0, f"the server's admin API at {self.host}:{self.port} is not reachable: {exc}"
        finally:
            conn.close()
        if response.status == 200:
            return 200, ""
        try:
            message = str(json.loads(body)["error"])
        except (ValueError, KeyError, TypeError):
            message = body[:200].decode(errors="replace")
        return response.status, message
