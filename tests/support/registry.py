"""A real OCI registry (Debian's ``docker-registry``, the CNCF distribution registry) for loader tests,
pushed to with the ORAS CLI (``hack/build-oras.sh`` builds it; ``make oci-test-tools`` installs both) or
with plain registry API calls for image-style manifests."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt

from devcluster import free_port

from .processes import stop, wait_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def registry_binary() -> str:
    found = shutil.which("docker-registry") or shutil.which("registry")
    if not found:
        raise RuntimeError("docker-registry is not installed: run 'make oci-test-tools'")
    return found


@functools.cache
def oras_binary() -> str:
    if os.environ.get("ORAS"):
        return os.environ["ORAS"]
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "build-oras.sh")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


class Registry:
    def __init__(self, port: int, auth: tuple[str, str] | None, address: str = "127.0.0.1") -> None:
        self.port = port
        self.address = address
        self.host = f"{address}:{port}"
        self.auth = auth

    def oras(self, *args: str, cwd: Path) -> str:
        cmd = [oras_binary(), *args, "--plain-http"]
        if self.auth:
            cmd += ["-u", self.auth[0], "-p", self.auth[1]]
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                             env={**os.environ, "HOME": str(cwd), "DOCKER_CONFIG": str(cwd / ".docker")})  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    def push_files(
        self, ref: str, files: list[str], cwd: Path, artifact_type: str = "application/vnd.modelyard.model"
    ) -> str:
        """ORAS-push files (``name`` or ``name:mediatype``; a directory is packed) and return the manifest digest."""
        out = self.oras(
            "push", f"{self.host}/{ref}", "--artifact-type", artifact_type, *files, "--format", "json", cwd=cwd
        )
        digest: str = json.loads(out)["digest"]
        return digest

    def _api(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=30)
        h = {"Content-Length": str(len(body)), **(headers or {})}
        if self.auth:
            import base64

            h["Authorization"] = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        self.last_body = resp.read()
        conn.close()
        return resp

    def tags(self, repo: str) -> list[str]:
        """The repository's tags (none when it does not exist)."""
        resp = self._api("GET", f"/v2/{repo}/tags/list")
        if resp.status == 404:
            return []
        assert resp.status == 200, resp.status
        return list(json.loads(self.last_body).get("tags") or [])

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = self._api("POST", f"/v2/{repo}/blobs/uploads/")
        assert resp.status == 202, resp.status
        location = resp.getheader("Location", "")
        location = location.split(f"{self.address}:{self.port}", 1)[-1]
        sep = "&" if "?" in location else "?"
        resp = self._api("PUT", f"{location}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
        assert resp.status == 201, resp.status
        return digest

    def push_image(
        self,
        repo: str,
        layers: list[bytes],
        media: str = "application/vnd.oci.image.layer.v1.tar+gzip",
        titles: list[str] | None = None,
    ) -> str:
        """An image-style manifest (layers without titles unless ``titles``); returns its digest."""
        config = b"{}"
        layer_list: list[dict[str, object]] = []
        for i, data in enumerate(layers):
            layer: dict[str, object] = {"mediaType": media, "digest": self.push_blob(repo, data), "size": len(data)}
            if titles and i < len(titles):
                layer["annotations"] = {"org.opencontainers.image.title": titles[i]}
            layer_list.append(layer)
        config_digest = self.push_blob(repo, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 2},
            "layers": layer_list,
        }
        body = json.dumps(manifest).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        resp = self._api("PUT", f"/v2/{repo}/manifests/{digest}", body,
                         {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
        assert resp.status == 201, resp.status
        return digest


@contextmanager
def registry(
    root: Path, auth: tuple[str, str] | None = None, auth_yaml: str | None = None, address: str = "127.0.0.1"
) -> Iterator[Registry]:
    """``auth``: basic credentials (htpasswd); with ``auth_yaml`` (a token service) they go to that instead.
    ``address``: where it listens (the real node's bridge address, for pods)."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = [
        "version: 0.1",
        "log: {level: error}",
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}",
        f"http: {{addr: '{address}:{port}'}}",
    ]
    if auth_yaml:
        config.append(auth_yaml)
    elif auth:
        hashed = bcrypt.hashpw(auth[1].encode(), bcrypt.gensalt(rounds=4)).decode()
        (root / "htpasswd").write_text(f"{auth[0]}:{hashed}\n")
        config.append(f"auth: {{htpasswd: {{realm: modelyard-test, path: {root / 'htpasswd'}}}}}")
    (root / "config.yml").write_text("\n".join(config) + "\n")
    log = open(root / "registry.log", "wb")  # noqa: SIM115  (closed below, after the process)
    proc = subprocess.Popen([registry_binary(), "serve", str(root / "config.yml")], stdout=log, stderr=log)
    try:
        wait_port(proc, port, lambda: f"docker-registry did not start: {(root / 'registry.log').read_text()}",
                  host=address)  # fmt: skip
        yield Registry(port, auth, address)
    finally:
        stop(proc, 10)
        log.close()


def artifact_store(reg: Registry, secret: str = "store-creds") -> tuple[dict[str, Any], dict[str, str]]:  # noqa: S107
    """The operator's artifact store on ``reg`` (derived versions are pushed there): the credentials Secret to apply
    in the watched namespace, and the chart values that name the store and the Secret."""
    assert reg.auth is not None, "the store of these tests has basic auth"
    user, password = reg.auth
    manifest = {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": secret, "labels": {"modelyard.dev/artifact-credentials": "true"}},
                "data": {"username": base64.b64encode(user.encode()).decode(),
                         "password": base64.b64encode(password.encode()).decode()}}  # fmt: skip
    values = {"operator.artifactStore.uri": f"oci://{reg.host}/modelyard",
              "operator.artifactStore.credentialsSecret": secret,
              "operator.artifactStore.plainHTTP": "true"}  # fmt: skip
    return manifest, values
