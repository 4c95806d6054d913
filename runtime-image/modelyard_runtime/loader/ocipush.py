"""Push one file to an OCI registry as an artifact the loader's ``oci://`` fetch reads back (ORAS's layout).

The artifact is an OCI image manifest whose only layer is the file, titled with its name
(``org.opencontainers.image.title``), and whose config is the empty descriptor (``{}``, OCI 1.1's
``application/vnd.oci.empty.v1+json``). Blobs go up in one monolithic upload each (POST, then PUT with the
digest), the manifest by tag. Auth is the fetch's (:class:`~modelyard_runtime.loader.oci.Registry`: anonymous,
basic, or bearer tokens), asking for the ``pull,push`` scope.

The result names the artifact by digest, ``oci://REGISTRY/REPOSITORY@sha256:...``: the reference a ModelVersion
pins, whatever the tag points at later.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urljoin

from modelyard_runtime.loader.errors import FetchError, UsageError
from modelyard_runtime.loader.net import open_url
from modelyard_runtime.loader.oci import MANIFEST_TYPES, TITLE, Registry
from modelyard_runtime.loader.sources import SourceOptions
from modelyard_runtime.loader.uri import ArtifactURI

EMPTY_CONFIG = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
ARTIFACT_TYPE = "application/vnd.modelyard.model.v1"
LAYER_TYPES = {".onnx": "application/vnd.modelyard.model.onnx", ".plan": "application/vnd.modelyard.model.tensorrt"}
_TARGET = re.compile(
    r"^oci://(?P<registry>[A-Za-z0-9.-]+(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)/"
    r"(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?$"
)


@dataclass(frozen=True)
class Pushed:
    uri: str  # oci://REGISTRY/REPOSITORY@sha256:... (the manifest's digest)
    digest: str  # the manifest's digest
    tag: str
    size_bytes: int  # the file's


def parse_target(target: str) -> tuple[str, str, str]:
    """``oci://REGISTRY/REPOSITORY[:TAG]`` as (registry, repository, tag); the tag defaults to ``latest``."""
    m = _TARGET.match(target)
    if not m:
        raise UsageError(f"push target {target!r}: expected oci://REGISTRY/REPOSITORY[:TAG] (lower-case repository)")
    return m["registry"], m["repo"], m["tag"] or "latest"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Pusher:
    def __init__(self, registry: str, repo: str, opts: SourceOptions) -> None:
        self.reg = Registry(ArtifactURI("oci", f"oci://{registry}/{repo}", registry, repo), opts)
        self.reg.scope = f"repository:{repo}:pull,push"
        self.opts = opts

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], what: str) -> tuple[int, str]:
        """One request, answering the registry's challenge once; (status, Location)."""
        for attempt in (1, 2):
            with open_url(method, url, self.opts.policy, headers, body=body, signer=self.reg.signer) as resp:
                resp.read()
                status, location = resp.status, resp.headers.get("Location", "")
                challenge = resp.headers.get("WWW-Authenticate", "")
            if status == 401 and attempt == 1:
                self.reg.answer_challenge(challenge)
                continue
            if status == 401:
                raise FetchError(f"{self.reg.label}: the registry refused the credentials for {what} (HTTP 401)")
            return status, location
        raise AssertionError("unreachable")

    def blob(self, data: bytes) -> str:
        digest = _digest(data)
        status, _ = self._send("HEAD", f"{self.reg.base}/blobs/{digest}", None, {}, "a blob check")
        if status == 200:
            return digest  # the registry has it already
        status, location = self._send("POST", f"{self.reg.base}/blobs/uploads/", b"", {"Content-Length": "0"},
                                      "an upload")  # fmt: skip
        if status != 202 or not location:
            raise FetchError(f"{self.reg.label}: starting a blob upload answered HTTP {status}")
        url = urljoin(self.reg.base + "/", location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
        status, _ = self._send("PUT", url, data, headers, "a blob")
        if status != 201:
            raise FetchError(f"{self.reg.label}: uploading blob {digest[:19]} answered HTTP {status}")
        return digest

    def manifest(self, tag: str, body: bytes) -> None:
        headers = {"Content-Type": MANIFEST_TYPES[0], "Content-Length": str(len(body))}
        status, _ = self._send("PUT", f"{self.reg.base}/manifests/{tag}", body, headers, "the manifest")
        if status != 201:
            raise FetchError(f"{self.reg.label}: putting the manifest answered HTTP {status}")


def push_file(path: Path, target: str, opts: SourceOptions, *, annotations: dict[str, str] | None = None) -> Pushed:
    """Push ``path`` to ``target`` (``oci://REGISTRY/REPOSITORY[:TAG]``) as a one-layer artifact."""
    registry, repo, tag = parse_target(target)
    data = path.read_bytes()
    pusher = _Pusher(registry, repo, opts)
    layer = pusher.blob(data)
    config = pusher.blob(EMPTY_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPES[0],
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": config, "size": len(EMPTY_CONFIG)},
        "layers": [
            {
                "mediaType": LAYER_TYPES.get(path.suffix, "application/octet-stream"),
                "digest": layer,
                "size": len(data),
                "annotations": {TITLE: path.name},
            }
        ],
        **({"annotations": annotations} if annotations else {}),
    }
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    pusher.manifest(tag, body)
    digest = _digest(body)
    return Pushed(f"oci://{registry}/{repo}@{digest}", digest, tag, len(data))
