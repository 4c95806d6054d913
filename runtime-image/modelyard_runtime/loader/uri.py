"""Artifact URIs: parsing and redaction (pure: no I/O).

Supported: ``http(s)://``, ``s3://BUCKET/KEY-OR-PREFIX``, ``oci://REGISTRY/REPO@sha256:HEX``,
``pvc://CLAIM/PATH`` (a claim mounted at ``<pvc-root>/CLAIM``), ``file:///PATH`` (only when allowed) and
plain local paths. ``redact`` strips what must never be printed: user info and signature-bearing query
parameters (pre-signed S3 URLs, SAS tokens and the like).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from modelyard_runtime.loader.errors import UnsafeContentError, UsageError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_OCI_RE = re.compile(
    r"^(?P<registry>[A-Za-z0-9.-]+(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?@(?P<digest>sha256:[0-9a-f]{64})$"
)
_SECRET_PARAMS = re.compile(
    r"(signature|sig|token|secret|password|passwd|credential|key|auth|sas|session)", re.IGNORECASE
)
_CLAIM_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class ArtifactURI:
    scheme: str  # http | https | s3 | oci | pvc | file (file also stands for plain local paths)
    raw: str
    host: str = ""  # http(s): host; s3: bucket; oci: registry (host[:port]); pvc: claim
    path: str = ""  # http(s): path+query; s3: key or prefix; oci: repository; pvc/file: path
    digest: str = ""  # oci: the manifest digest of the reference

    @property
    def safe(self) -> str:
        return redact(self.raw)


def redact(uri: str) -> str:
    """``uri`` without user info and without the values of query parameters that may carry secrets."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if not parts.scheme or len(parts.scheme) == 1:  # local path (or a Windows drive letter)
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "REDACTED" if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of an http(s) URL, the default port filled in: credentials meant for one
    origin go to that origin only."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def check_digest(digest: str) -> str:
    if not DIGEST_RE.match(digest):
        raise UsageError(f"invalid digest {digest!r}: expected sha256:<64 lowercase hex>")
    return digest


def _clean_relative(path: str, what: str, uri: str) -> str:
    """A relative POSIX path without ``..``/empty segments (``""`` stands for the root)."""
    if "\\" in path or "\x00" in path:
        raise UnsafeContentError(f"{redact(uri)}: {what} contains a backslash or NUL")
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise UnsafeContentError(f"{redact(uri)}: {what} must not contain '..'")
    return "/".join(segments)


def parse(uri: str, *, allow_file: bool = False, pvc_root: str = "/mnt/pvc") -> ArtifactURI:
    """Parse an artifact URI; raise ``UsageError`` (or ``UnsafeContentError`` for traversal) when invalid."""
    if not uri or any(c in uri for c in "\r\n\t\x00"):
        raise UsageError("the artifact URI is empty or contains control characters")
    if uri.startswith("/") or uri.startswith("./") or "://" not in uri:
        if not allow_file:
            raise UsageError(f"{redact(uri)}: local paths need --allow-file")
        return ArtifactURI("file", uri, path=posixpath.normpath(uri))
    try:
        parts = urlsplit(uri)
    except ValueError as e:
        raise UsageError(f"{redact(uri)}: invalid URI ({e})") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise UsageError(f"{redact(uri)}: no host")
        try:
            _ = parts.port
        except ValueError:
            raise UsageError(f"{redact(uri)}: invalid port") from None
        return ArtifactURI(scheme, uri, host=parts.hostname, path=parts.path or "/")
    if scheme == "s3":
        bucket = parts.netloc
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
            raise UsageError(f"{redact(uri)}: invalid bucket name {bucket!r}")
        key = parts.path.lstrip("/")
        if parts.query or parts.fragment:
            raise UsageError(f"{redact(uri)}: s3 URIs take no query or fragment")
        return ArtifactURI("s3", uri, host=bucket, path=key)
    if scheme == "oci":
        m = _OCI_RE.match(uri[len("oci://") :])
        if not m:
            raise UsageError(
                f"{redact(uri)}: expected oci://REGISTRY/REPOSITORY[:TAG]@sha256:<64 hex> (pinned by digest)"
            )
        return ArtifactURI("oci", uri, host=m["registry"], path=m["repo"], digest=m["digest"])
    if scheme == "pvc":
        claim = parts.netloc
        if not _CLAIM_RE.match(claim) or len(claim) > 253:
            raise UsageError(f"{redact(uri)}: invalid claim name {claim!r}")
        rel = _clean_relative(parts.path, "the path inside the claim", uri)
        return ArtifactURI(
            "pvc",
            uri,
            host=claim,
            path=posixpath.join(pvc_root, claim, rel) if rel else posixpath.join(pvc_root, claim),
        )
    if scheme == "file":
        if not allow_file:
            raise UsageError(f"{redact(uri)}: file:// URIs need --allow-file")
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"{redact(uri)}: file:// URIs name no host")
        return ArtifactURI("file", uri, path=posixpath.normpath(parts.path))
    raise UsageError(f"{redact(uri)}: unsupported scheme {scheme!r} (http, https, s3, oci, pvc, file)")
