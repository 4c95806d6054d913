"""``modelyard-loader sidecar``: dynamic mode's loader, a native sidecar beside ``modelyard-server``.

It first fetches ``--uri`` into ``--dest`` when given (the version the pod was rendered for; ``--dest`` alone names
that version when another container fetched it, as in static loading), then serves a
small JSON API on a loopback address only (other containers of the pod can reach it, nothing outside):

- ``POST /fetch`` ``{"uri", "digest", "model", "version", "signature"?, "format"?, "compiledDigest"?}`` → fetches,
  verifies (``format``: onnx, the default, tensorrt or pmml, compiled and checked against ``compiledDigest``) and
  publishes into ``<repository>/<model>/<version>/`` atomically; answers ``200`` with the fetch result, or an error
  object ``{"ok": false, "reason", "message"}`` with 400 (bad request), 409 (unsafe content, digest or
  signature failure) or 502 (the store failed). Requests for the same model/version are serialized; a
  version already published with the same digest is answered without fetching again.
- ``GET /versions`` → what was published (and, with ``--versions-file``, what the file made it hold and what
  failed), ``GET /healthz`` → ``{"ok": true}``.

With ``--versions-file`` the sidecar also follows a list of versions the operator wants the pod to hold
(:mod:`modelyard_runtime.loader.heldversions`): fetched, loaded, and removed again when they leave the list.

With ``--server-admin http://127.0.0.1:PORT`` (the server's admin API; ``--server-admin-token-file`` for its bearer
token), each version published on request is then loaded by the server: the answer carries ``"loaded": true``, or
is a 502 ``{"ok": false, "reason": "ServerLoadFailed", ...}`` with the server's reason (the files stay published).

Trust material (public key, certificate chain, sigstore identity) and allowlists come from the sidecar's
own flags, never from a request.

The API opens only once the initial version is published, so ``modelyard-loader health`` (:func:`probe`) is the pod's
startup probe: the kubelet starts the server after it passes. A failed initial fetch ends the sidecar (its reason in
``--termination-log``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from modelyard_runtime.loader.cli import FORMATS, request_from_args
from modelyard_runtime.loader.errors import (
    FetchError,
    LoaderError,
    UsageError,
)
from modelyard_runtime.loader.heldversions import HeldVersions, check_names
from modelyard_runtime.loader.pipeline import FetchRequest, log, run_fetch
from modelyard_runtime.loader.serveradmin import ServerAdmin

MAX_BODY = 64 << 10


class Sidecar:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.repository: Path = args.repository
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.published: dict[str, dict[str, Any]] = {}
        self.server: ServerAdmin | None = None
        if getattr(args, "server_admin", None):
            self.server = ServerAdmin.parse(args.server_admin, args.server_admin_token_file)
        self.held: HeldVersions | None = None
        if getattr(args, "versions_file", None):
            dest = Path(args.dest) if args.dest else None
            own = f"{dest.parent.name}/{dest.name}" if dest is not None else None
            self.held = HeldVersions(
                args.versions_file, self.repository, self.fetch, own, lambda key: self.published.pop(key, None)
            )

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def request(self, body: dict[str, Any]) -> FetchRequest:
        model, version = str(body.get("model", "")), str(body.get("version", ""))
        check_names(model, version)
        uri = body.get("uri")
        if not isinstance(uri, str) or not uri:
            raise UsageError("uri is required")
        digest = body.get("digest")
        if digest is not None and not isinstance(digest, str):
            raise UsageError(f"digest must be a string (sha256:<64 hex>), not {type(digest).__name__}")
        req = request_from_args(
            self.args, uri=uri, dest=self.repository / model / version, digest=digest if digest else ""
        )
        if not digest:
            req.digest = None
        signature = body.get("signature")
        if signature is not None:
            if not isinstance(signature, str):
                raise UsageError("signature must be a URI")
            req.signature.uri = signature
        model_format, compiled = body.get("format", "onnx"), body.get("compiledDigest")
        if model_format not in FORMATS:
            raise UsageError(f"format must be one of {', '.join(FORMATS)}, not {model_format!r}")
        if compiled is not None and not isinstance(compiled, str):
            raise UsageError("compiledDigest must be a string (sha256:<64 hex>)")
        req.model_format, req.compiled_digest = model_format, compiled or None
        return req

    def fetch(self, body: dict[str, Any]) -> dict[str, Any]:
        req = self.request(body)
        key = f"{body['model']}/{body['version']}"
        with self._lock(key):
            done = self.published.get(key)
            if done and req.digest and done.get("digest") == req.digest and req.dest.exists():
                result = {**done, "alreadyPublished": True}
            else:
                result = run_fetch(req).as_dict()
                result.update(ok=True, model=body["model"], version=body["version"])
                self.published[key] = result
        if self.server is not None:  # also when already published: a version unloaded since is loaded again
            status, message = self.server.load(body["model"])
            if status != 200:
                error = ServerLoadError(
                    f"published, but the server did not load {key} ({status or 'no answer'}): {message}"
                )
                error.no_answer = status == 0
                raise error
            result = {**result, "loaded": True}
        return result


class ServerLoadError(LoaderError):
    reason = "ServerLoadFailed"
    no_answer = False  # the server did not answer at all (not up yet), rather than refusing the load


def _status(e: LoaderError) -> int:
    if isinstance(e, UsageError):
        return 400
    if isinstance(e, (FetchError, ServerLoadError)):
        return 502
    return 409


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"ok": True})
        elif self.path == "/versions":
            sidecar = self.server.sidecar
            payload: dict[str, Any] = {"versions": list(sidecar.published.values())}
            if sidecar.held is not None:
                payload["versionsFile"] = sidecar.held.status()
            self._send(200, payload)
        else:
            self._send(404, {"ok": False, "reason": "NotFound", "message": self.path})

    def do_POST(self) -> None:
        if self.path != "/fetch":
            self._send(404, {"ok": False, "reason": "NotFound", "message": self.path})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._send(400, {"ok": False, "reason": "InvalidRequest", "message": f"body of 1..{MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as e:
            self._send(400, {"ok": False, "reason": "InvalidRequest", "message": f"invalid JSON: {e}"})
            return
        try:
            self._send(200, self.server.sidecar.fetch(body))
        except LoaderError as e:
            log(f"fetch for {body.get('model')}/{body.get('version')} failed ({e.reason}): {e}")
            self._send(_status(e), {"ok": False, "reason": e.reason, "message": str(e)})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sidecar: Sidecar) -> None:
        super().__init__(address, _Handler)
        self.sidecar = sidecar


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise UsageError(f"--listen {text}: the sidecar API listens on a loopback address only")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--listen {text}: invalid port")
    return host, int(port)


def probe(listen: str, timeout: float) -> int:
    """``modelyard-loader health``: 0 when the sidecar's API at ``listen`` answers ``/healthz`` (it listens only once
    the initial version is published), 1 otherwise. The API is on the pod's loopback, which a kubelet's HTTP probe
    cannot reach: the pod's startup probe runs this in the container instead."""
    import http.client

    host, port = parse_listen(listen)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
    except OSError:
        ok = False
    finally:
        conn.close()
    return 0 if ok else 1


def run_sidecar(args: argparse.Namespace) -> int:
    address = parse_listen(args.listen)
    sidecar = Sidecar(args)
    if args.uri:
        if not args.dest:
            raise UsageError("--uri needs --dest")
        result = run_fetch(request_from_args(args))
        log(f"initial version published ({result.digest})")
    server = _Server(address, sidecar)

    def _terminate(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    stop = threading.Event()
    if sidecar.held is not None:
        threading.Thread(target=sidecar.held.follow, args=(stop,), name="versions-file", daemon=True).start()
    log(f"sidecar API on http://{address[0]}:{server.server_address[1]} (repository {args.repository})")
    sys.stderr.flush()
    server.serve_forever()
    stop.set()
    server.server_close()
    return 0
