"""A minimal Kubernetes API client: urllib plus the client certificate from a devcluster kubeconfig."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        conf = json.loads(kubeconfig.read_text())  # devcluster writes its kubeconfigs as JSON
        cluster = conf["clusters"][0]["cluster"]
        user = conf["users"][0]["user"]
        self.server = cluster["server"].rstrip("/")
        self.ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.ctx.load_cert_chain(user["client-certificate"], user["client-key"])

    def request(
        self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None, content_type: str = ""
    ) -> Any:
        url = self.server + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type or "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")[:500]) from None

    def get(self, path: str, **query: str) -> Any:
        return self.request("GET", path, query=query or None)

    def watch(self, path: str, resource_version: str, *, seconds: int = 5, **query: str) -> Iterator[dict[str, Any]]:
        """The watch events on the collection ``path`` after ``resource_version``, one dict each, until the API server
        ends the watch (after ``seconds``). A watch the server refuses raises :class:`ApiError`; one it ends with an
        error arrives as an ``ERROR`` event (410 Gone: the version was compacted, list again)."""
        query = {**query, "watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(seconds)}  # fmt: skip
        req = urllib.request.Request(self.server + path + "?" + urllib.parse.urlencode(query))
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=seconds + 10) as resp:
                for line in resp:
                    if line.strip():
                        yield json.loads(line)
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")[:500]) from None

    def get_or_none(self, path: str) -> Any:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")
