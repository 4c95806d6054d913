#!/usr/bin/env python3
"""Pod discovery for the dev cluster's Prometheus, over Prometheus's HTTP service discovery.

Debian's ``prometheus`` package is built without Kubernetes service discovery (``kubernetes_sd_configs`` is an
unknown field there), so ``hack/devcluster up --prometheus`` runs this bridge beside it: on every request it lists
the pods from the API server (with Prometheus's own read-only client certificate) and answers the target groups
``kubernetes_sd_configs`` with ``role: pod`` would produce: one target per declared container port, at
``podIP:port``, with the same ``__meta_kubernetes_*`` labels. The relabelling the chart documents
(docs/rollouts.md) therefore applies unchanged.

    python3 hack/promsd.py --server URL --ca CA --cert CRT --key KEY --port PORT

``GET /targets`` answers the target groups; ``GET /healthz`` answers 200 while the API server can be listed.
Standard library only, like hack/devcluster.py.
"""

from __future__ import annotations

import argparse
import http.server
import json
import re
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def sanitize(name: str) -> str:
    """A Kubernetes label name as a Prometheus label-name suffix, the way Kubernetes SD writes it."""
    return _INVALID.sub("_", name)


def target_groups(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The groups ``kubernetes_sd_configs`` (role pod) yields for ``pods``: pods without an IP have no targets."""
    groups = []
    for pod in pods:
        meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
        ip = status.get("podIP", "")
        if not ip:
            continue
        ready = any(c.get("type") == "Ready" for c in status.get("conditions", []) if c.get("status") == "True")
        common = {
            "__meta_kubernetes_namespace": meta.get("namespace", ""),
            "__meta_kubernetes_pod_name": meta.get("name", ""),
            "__meta_kubernetes_pod_uid": meta.get("uid", ""),
            "__meta_kubernetes_pod_ip": ip,
            "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
            "__meta_kubernetes_pod_host_ip": status.get("hostIP", ""),
            "__meta_kubernetes_pod_phase": status.get("phase", ""),
            "__meta_kubernetes_pod_ready": "true" if ready else "false",
        }
        for key, value in (meta.get("labels") or {}).items():
            common[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
            common[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
        for key, value in (meta.get("annotations") or {}).items():
            common[f"__meta_kubernetes_pod_annotation_{sanitize(key)}"] = value
            common[f"__meta_kubernetes_pod_annotationpresent_{sanitize(key)}"] = "true"
        targets = []
        containers = [(c, "false") for c in spec.get("containers", [])]
        containers += [(c, "true") for c in spec.get("initContainers", [])]
        for container, init in containers:
            for port in container.get("ports", []):
                number = str(port.get("containerPort", ""))
                targets.append(
                    {
                        "targets": [f"{ip}:{number}"],
                        "labels": {
                            **common,
                            "__meta_kubernetes_pod_container_name": container.get("name", ""),
                            "__meta_kubernetes_pod_container_init": init,
                            "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                            "__meta_kubernetes_pod_container_port_number": number,
                            "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
                        },
                    }
                )
        groups.extend(targets)
    return groups


class Lister:
    def __init__(self, server: str, ca: str, cert: str, key: str) -> None:
        self.url = f"{server.rstrip('/')}/api/v1/pods"
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)

    def pods(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url, timeout=5, context=self.ctx) as resp:
            return list(json.loads(resp.read())["items"])


def serve(lister: Lister, port: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/targets", "/healthz"):
                self._answer(404, {"error": f"no such path {self.path}: /targets or /healthz"})
                return
            try:
                pods = lister.pods()
            except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
                self._answer(503, {"error": f"listing pods failed: {exc}"})
                return
            self._answer(200, target_groups(pods) if self.path == "/targets" else {"pods": len(pods)})

        def _answer(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/promsd.py", description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="API server URL")
    parser.add_argument("--ca", required=True, help="CA certificate of the API server")
    parser.add_argument("--cert", required=True, help="client certificate")
    parser.add_argument("--key", required=True, help="client key")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    args = parser.parse_args(argv)
    try:
        lister = Lister(args.server, args.ca, args.cert, args.key)
    except (OSError, ssl.SSLError) as exc:
        print(f"promsd: cannot load the certificates: {exc}", file=sys.stderr)
        return 2
    serve(lister, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
