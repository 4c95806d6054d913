"""``oci://REGISTRY/REPOSITORY[:TAG]@sha256:HEX``: OCI artifacts (ORAS-style) and image layers, by digest.

The manifest is fetched by its digest and must hash to it; every layer is downloaded (parallel ranged
GETs, like any HTTP object) and must hash to its descriptor's digest. Layers are placed by kind:

- a layer with an ``org.opencontainers.image.title`` annotation is a file named by that title (ORAS
  ``push file``), or a directory when ORAS marked it ``io.deis.oras.content.unpack`` (a tar+gzip that is
  extracted below the title);
- a layer without a title whose media type is a tar (``...tar``, ``...tar+gzip``) is an image layer and is
  extracted into the destination, in order (a file that two layers both carry is refused).

Auth: anonymous, basic, or bearer tokens (the ``WWW-Authenticate`` challenge's realm, service and scope),
with credentials from ``--oci-username``/``--oci-password-file``, ``--credentials-dir`` (``username`` and
``password``, or ``.dockerconfigjson``), or a docker ``config.json`` (``--docker-config`` / ``$DOCKER_CONFIG``).
The registry is reached over https unless ``--oci-plain-http`` (tests against a local registry).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from modelyard_runtime.loader import secretdir
from modelyard_runtime.loader.archive import extract
from modelyard_runtime.loader.archive_rules import EntryKind, entry_problem, safe_relative
from modelyard_runtime.loader.download import download
from modelyard_runtime.loader.errors import FetchError, IntegrityError, UnsafeContentError, UsageError
from modelyard_runtime.loader.net import open_url, read_all
from modelyard_runtime.loader.sources import Fetched, SourceOptions, download_options
from modelyard_runtime.loader.uri import DIGEST_RE, ArtifactURI

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
TITLE = "org.opencontainers.image.title"
UNPACK = "io.deis.oras.content.unpack"
MAX_MANIFEST = 4 << 20
MAX_TOKEN = 1 << 20
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def _docker_config_auth(path: Path, registry: str) -> tuple[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    auths = data.get("auths", {}) if isinstance(data, dict) else {}
    for key in (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
        if entry.get("username"):
            return str(entry["username"]), str(entry.get("password", ""))
    return None


def registry_credentials(opts: SourceOptions, registry: str) -> tuple[str, str] | None:
    if opts.oci_username:
        if not opts.oci_password_file:
            raise UsageError("--oci-username needs --oci-password-file")
        return opts.oci_username, Path(opts.oci_password_file).read_text().strip()
    if opts.credentials_dir:
        d = Path(opts.credentials_dir)
        if (d / "username").is_file() and (d / "password").is_file():
            return (d / "username").read_text().strip(), (d / "password").read_text().strip()
        for name in (".dockerconfigjson", "config.json"):
            if (d / name).is_file() and (found := _docker_config_auth(d / name, registry)):
                return found
    config = opts.docker_config or os.environ.get("DOCKER_CONFIG")
    if config:
        p = Path(config)
        return _docker_config_auth(p / "config.json" if p.is_dir() else p, registry)
    return None


class Registry:
    def __init__(self, uri: ArtifactURI, opts: SourceOptions) -> None:
        self.opts = opts
        self.repo = uri.path
        self.label = uri.safe
        self.base = f"{'http' if opts.oci_plain_http else 'https'}://{uri.host}/v2/{self.repo}"
        self.creds = registry_credentials(opts, uri.host)
        # credentials go to the hosts the Secret's 'host' key names (default: the registry's), token service included
        self.hosts = secretdir.bound_hosts(opts.credentials_dir, uri.host.rsplit(":", 1)[0].strip("[]"))
        if self.creds:
            secretdir.require_host(self.base, self.hosts, self.label)
        self._auth: str | None = None
        self._lock = threading.Lock()
        self.scope = f"repository:{self.repo}:pull"  # what a token is asked for when the challenge names no scope

    def signer(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        with self._lock:
            auth = self._auth
        return {**headers, "Authorization": auth} if auth else headers

    def _basic(self) -> str | None:
        if not self.creds:
            return None
        return "Basic " + base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()

    def answer_challenge(self, challenge: str) -> None:
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            basic = self._basic()
            if not basic:
                raise FetchError(f"{self.label}: the registry wants credentials (--oci-username or --credentials-dir)")
            with self._lock:
                self._auth = basic
            return
        if scheme != "bearer":
            raise FetchError(f"{self.label}: unsupported registry auth scheme {scheme!r}")
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.get("realm")
        if not realm:
            raise FetchError(f"{self.label}: bearer challenge without a realm")
        query = {"service": params.get("service", ""), "scope": params.get("scope") or self.scope}
        headers = {}
        basic = self._basic()
        if basic and secretdir.host_allowed(realm, self.hosts):
            headers["Authorization"] = basic
        status, body, _ = read_all(
            f"{realm}?{urlencode(query)}", self.opts.policy, max_bytes=MAX_TOKEN, headers=headers
        )
        if status != 200:
            raise FetchError(f"{self.label}: the registry's token service answered HTTP {status}")
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except ValueError:
            token = None
        if not token:
            raise FetchError(f"{self.label}: the registry's token service returned no token")
        with self._lock:
            self._auth = f"Bearer {token}"

    def authorize(self, url: str, accept: str | None = None) -> None:
        """Make one request; when the registry challenges, get the credentials it asks for."""
        headers = {"Accept": accept} if accept else {}
        with open_url("HEAD", url, self.opts.policy, headers, signer=self.signer) as resp:
            resp.read()
            if resp.status == 401:
                self.answer_challenge(resp.headers.get("WWW-Authenticate", ""))

    def manifest(self, digest: str) -> tuple[dict[str, Any], bytes]:
        """The manifest ``digest`` names, parsed, and its bytes (which hash to it)."""
        url = f"{self.base}/manifests/{digest}"
        accept = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
        self.authorize(url, accept)
        status, body, _ = read_all(
            url, self.opts.policy, max_bytes=MAX_MANIFEST, headers={"Accept": accept}, signer=self.signer
        )
        if status == 401:
            raise FetchError(f"{self.label}: the registry refused the credentials (HTTP 401)")
        if status != 200:
            raise FetchError(f"{self.label}: manifest fetch failed with HTTP {status}")
        return parse_manifest(body, digest, self.label), body

    def blob(self, descriptor: dict[str, Any], target: Path) -> None:
        digest = str(descriptor.get("digest", ""))
        if not DIGEST_RE.fullmatch(digest):
            raise UnsafeContentError(f"{self.label}: a layer has an unsupported digest {digest!r}")
        dopts = download_options(self.opts, f"{self.label} layer {digest[:19]}", self.signer)
        got = download(f"{self.base}/blobs/{digest}", str(target), dopts)
        if "sha256:" + got.sha256 != digest:
            raise IntegrityError(f"{self.label}: layer digest mismatch: expected {digest}, got sha256:{got.sha256}")
        if got.size != int(descriptor.get("size", got.size)):
            raise IntegrityError(f"{self.label}: layer {digest} is {got.size} bytes, its descriptor says otherwise")


def parse_manifest(body: bytes, digest: str, label: str) -> dict[str, Any]:
    """The manifest in ``body``, which must hash to ``digest`` and be one image manifest (not an index)."""
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise IntegrityError(f"{label}: digest mismatch: expected {digest}, the manifest hashes to {actual}")
    try:
        manifest: dict[str, Any] = json.loads(body)
    except ValueError as e:
        raise FetchError(f"{label}: the manifest is not JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise FetchError(f"{label}: the manifest is not a JSON object")
    if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
        raise UsageError(f"{label}: the digest names an index; pin the digest of one manifest")
    return manifest


def manifest_layers(manifest: dict[str, Any], label: str, max_bytes: int) -> list[dict[str, Any]]:
    layers = manifest.get("layers") or []
    if not isinstance(layers, list) or not layers or not all(isinstance(layer, dict) for layer in layers):
        raise FetchError(f"{label}: the manifest has no layers")
    for layer in layers:
        if not DIGEST_RE.fullmatch(str(layer.get("digest", ""))):
            raise UnsafeContentError(f"{label}: a layer has an unsupported digest {layer.get('digest')!r}")
    total = sum(int(layer.get("size", 0)) for layer in layers)
    if total > max_bytes:
        raise UnsafeContentError(f"{label}: {total} bytes exceed the size limit of {max_bytes} bytes")
    return layers


def is_file_layer(layer: dict[str, Any]) -> bool:
    """A layer that lands as one file named by its title (its bytes are the file's: it hashes to the descriptor)."""
    annotations = layer.get("annotations") or {}
    return bool(annotations.get(TITLE)) and annotations.get(UNPACK) != "true"


def fetch_into(uri: ArtifactURI, tree: Path, scratch: Path, opts: SourceOptions) -> Fetched:
    reg = Registry(uri, opts)
    manifest, body = reg.manifest(uri.digest)
    layers = manifest_layers(manifest, uri.safe, opts.max_bytes)
    (scratch / "manifest.json").write_bytes(body)
    evidence = {"manifest.json": scratch / "manifest.json"}

    def blob(i: int, layer: dict[str, Any]) -> Path:  # the first authorized request fixed the credentials
        raw = scratch / f"layer-{i}"
        reg.blob(layer, raw)
        if not is_file_layer(layer):  # extracted: the cache keeps the blob, whose hash a hit checks again
            evidence[f"blobs/{str(layer['digest']).split(':', 1)[1]}"] = raw
        return raw

    keep = place_layers(layers, blob, tree, scratch, opts, uri.safe)
    return Fetched(uri.digest, sum(int(layer.get("size", 0)) for layer in layers), "oci", evidence, keep)


def place_layers(
    layers: list[dict[str, Any]],
    blob: Callable[[int, dict[str, Any]], Path],
    tree: Path,
    scratch: Path,
    opts: SourceOptions,
    label: str,
) -> list[str]:
    """Place each layer's blob (``blob(i, layer)`` gives its verified bytes) below ``tree``; the files of file
    layers (see :func:`is_file_layer`)."""
    files: list[str] = []
    for i, layer in enumerate(layers):
        media = str(layer.get("mediaType", ""))
        annotations = layer.get("annotations") or {}
        title = annotations.get(TITLE)
        if title:
            problem = entry_problem(title, EntryKind.FILE)
            if problem:
                raise UnsafeContentError(f"{label}: refused layer title: {problem}")
            rel = safe_relative(title)
            raw = blob(i, layer)
            if annotations.get(UNPACK) == "true":
                _unpack_directory(raw, media, rel, tree, scratch / f"unpack-{i}", opts, label)
            else:
                target = tree / rel
                if target.exists():
                    raise UnsafeContentError(f"{label}: two layers are titled {rel!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(raw, target)
                files.append(rel)
        elif media.endswith(("tar+gzip", "tar.gzip")) or media.endswith(".tar"):
            raw = blob(i, layer)
            extract(raw, "tar.gz" if "gzip" in media else "tar", tree, label=label, max_bytes=opts.max_bytes)
        else:
            raise UnsafeContentError(f"{label}: layer {i} ({media or 'no media type'}) has no title and is no tar")
    return files


def _unpack_directory(raw: Path, media: str, rel: str, tree: Path, work: Path, opts: SourceOptions, label: str) -> None:
    """An ORAS-packed directory: a tar whose entries all sit below the directory named by the title."""
    work.mkdir()
    extract(raw, "tar.gz" if "gzip" in media else "tar", work, label=label, max_bytes=opts.max_bytes)
    if not (work / rel).is_dir() or any(
        p.relative_to(work).parts[: len(Path(rel).parts)] != Path(rel).parts for p in work.rglob("*") if p.is_file()
    ):
        raise UnsafeContentError(f"{label}: the packed directory {rel!r} holds entries outside itself")
    target = tree / rel
    if target.exists():
        raise UnsafeContentError(f"{label}: two layers are titled {rel!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(work / rel, target)
