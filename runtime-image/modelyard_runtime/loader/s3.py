"""``s3://BUCKET/KEY`` and ``s3://BUCKET/PREFIX/``: a small S3 client (SigV4, ListObjectsV2, ranged GETs).

Credentials (:func:`credentials`): the credentials Secret's keys, a shared credentials file in it, or AWS's
default chain through botocore's credential providers (environment, web identity token file, profile files,
container and instance credentials); none: unsigned requests (public buckets). Signing is our own SigV4
(``sigv4``); botocore only finds and refreshes the credentials. Endpoint, region and path or virtual-hosted
addressing: :func:`settings`. A Secret's ``caBundle`` key is trusted besides the system's CAs for this store.
A key that names no object is read as a prefix (``KEY/``); a URI ending in ``/`` always is.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from modelyard_runtime.loader import secretdir
from modelyard_runtime.loader.archive_rules import EntryKind, entry_problem, safe_relative
from modelyard_runtime.loader.download import MIN_PART, download
from modelyard_runtime.loader.errors import FetchError, UnsafeContentError, UsageError
from modelyard_runtime.loader.net import open_url, read_all
from modelyard_runtime.loader.sigv4 import Credentials, sign
from modelyard_runtime.loader.sources import Fetched, SourceOptions, download_options, place_single, safe_file_name
from modelyard_runtime.loader.tree import tree_digest_of
from modelyard_runtime.loader.uri import ArtifactURI, redact

MAX_KEYS = 100_000
MAX_LISTING_PAGE = 16 << 20
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class _Static:
    """Credentials that never change (a Secret's keys), in the shape of botocore's credential objects."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds

    def get(self) -> Credentials:
        return self.creds


class _Botocore:
    """Credentials from a botocore provider chain; temporary ones (web identity, assumed roles, container and
    instance credentials) are refreshed by botocore before they expire, so a long download keeps signing."""

    def __init__(self, found: Any) -> None:
        self.found = found

    def get(self) -> Credentials:
        from botocore.exceptions import BotoCoreError, ClientError

        try:  # a deferred provider (web identity, assume-role) calls STS here, on first use and when refreshing
            frozen = self.found.get_frozen_credentials()
        except (BotoCoreError, ClientError) as e:
            raise FetchError(f"S3 credentials ({self.found.method}): {type(e).__name__}: {e}") from None
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


def _chain(credentials_file: str | None = None, profile: str | None = None) -> _Botocore | None:
    """AWS's default credential chain through botocore's own providers: the environment (AWS_ACCESS_KEY_ID, ...),
    AssumeRoleWithWebIdentity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN: IRSA, EKS Pod Identity's token
    file), the shared credentials and config files (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, AWS_PROFILE,
    assume-role and credential_process profiles), the container credentials endpoint and the instance metadata
    service. ``credentials_file``/``profile``: a shared credentials file from the credentials Secret instead."""
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover  (a runtime dependency; only a broken image lacks it)
        raise UsageError("S3 credentials need botocore, which this image lacks") from None
    session = botocore.session.Session()
    if credentials_file:
        session.set_config_variable("credentials_file", credentials_file)
    if profile:
        session.set_config_variable("profile", profile)
    try:
        found = session.get_credentials()
    except BotoCoreError as e:  # e.g. a profile that does not exist, an unreadable token file, STS refusing
        raise FetchError(f"S3 credentials: {type(e).__name__}: {e}") from None
    return _Botocore(found) if found is not None else None


def credentials(opts: SourceOptions) -> _Static | _Botocore | None:
    """The S3 credentials, first found wins: the credentials Secret's accessKeyId/secretAccessKey (or the
    AWS_* file names KServe uses), a shared credentials file in the Secret (key ``credentials``, profile from the
    key ``profile``), then AWS's default chain (:func:`_chain`). None: requests go unsigned (public buckets)."""
    d = opts.credentials_dir
    ak = secretdir.read_key(d, "accessKeyId", "AWS_ACCESS_KEY_ID")
    sk = secretdir.read_key(d, "secretAccessKey", "AWS_SECRET_ACCESS_KEY")
    if ak and sk:
        return _Static(Credentials(ak, sk, secretdir.read_key(d, "sessionToken", "AWS_SESSION_TOKEN")))
    if ak or sk:
        raise UsageError(f"{d}: needs both accessKeyId and secretAccessKey")
    shared = secretdir.key_path(d, "credentials")
    if shared:
        found = _chain(shared, secretdir.read_key(d, "profile") or "default")
        if found is None:
            raise UsageError(f"{d}: the shared credentials file holds no credentials for its profile")
        return found
    return _chain()


def _is_aws(host: str) -> bool:
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


@dataclass(frozen=True)
class S3Settings:
    endpoint: str  # scheme://host[:port], no path
    region: str
    style: str  # path | virtual


def settings(opts: SourceOptions, bucket: str) -> S3Settings:
    """Endpoint, region and addressing style: the loader's flags (a ModelVersion's spec.artifact.s3), then the
    credentials Secret's keys ``endpoint``, ``region``, ``addressingStyle``, then the environment (the chart's
    values: AWS_ENDPOINT_URL_S3, AWS_REGION, MODELYARD_LOADER_S3_ADDRESSING_STYLE), then AWS's defaults."""
    d = opts.credentials_dir
    env = os.environ.get
    region = (
        opts.s3_region or secretdir.read_key(d, "region") or env("AWS_REGION") or env("AWS_DEFAULT_REGION")
    ) or "us-east-1"
    endpoint = (
        opts.s3_endpoint
        or secretdir.read_key(d, "endpoint")
        or env("AWS_ENDPOINT_URL_S3")
        or env("AWS_ENDPOINT_URL")
        or f"https://s3.{region}.amazonaws.com"
    ).rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise UsageError(f"S3 endpoint {redact(endpoint)!r}: expected http(s)://HOST[:PORT]")
    style = (
        opts.s3_addressing_style
        or secretdir.read_key(d, "addressingStyle")
        or env("MODELYARD_LOADER_S3_ADDRESSING_STYLE")
        or ""
    ).lower()
    if style not in ("", "path", "virtual"):
        raise UsageError(f"S3 addressing style {style!r}: expected path or virtual")
    if not style:  # AWS's endpoints: virtual-hosted (path-style is deprecated there); S3-compatible stores: path
        style = "virtual" if _is_aws(parts.hostname) and "." not in bucket else "path"
    if style == "virtual" and "." in bucket and parts.scheme == "https":
        raise UsageError(f"bucket {bucket!r} has dots: virtual-hosted https would fail the certificate; use path")
    return S3Settings(endpoint, region, style)


class S3Client:
    def __init__(self, opts: SourceOptions, bucket: str) -> None:
        self.settings = settings(opts, bucket)
        self.region = self.settings.region
        self.endpoint = self.settings.endpoint
        self.creds = credentials(opts)
        ca = secretdir.key_path(opts.credentials_dir, "caBundle")
        policy = replace(opts.policy, extra_ca_file=ca) if ca else opts.policy
        self.opts = replace(opts, policy=policy)
        # a Secret's keys are sent (as signatures) only to the hosts its 'host' key names, when it has one
        if self.creds is not None and secretdir.read_key(opts.credentials_dir, "host"):
            hosts = secretdir.bound_hosts(opts.credentials_dir, "")
            secretdir.require_host(self.endpoint, hosts, f"s3://{bucket}")

    def signer(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        if self.creds is None:
            return headers
        return sign(method, url, headers, self.creds.get(), region=self.region, now=datetime.now(UTC))

    def url(self, bucket: str, key: str = "", query: dict[str, str] | None = None) -> str:
        if self.settings.style == "virtual":
            scheme, rest = self.endpoint.split("://", 1)
            u = f"{scheme}://{bucket}.{rest}/"
        else:
            u = f"{self.endpoint}/{bucket}"
            if key:
                u += "/"
        if key:
            u += quote(key, safe="/-_.~")
        if query:
            u += "?" + urlencode(sorted(query.items()), quote_via=quote, safe="-_.~")
        return u

    def head(self, bucket: str, key: str) -> int:
        with open_url("HEAD", self.url(bucket, key), self.opts.policy, signer=self.signer) as resp:
            resp.read()
            return resp.status

    def list(self, bucket: str, prefix: str, label: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        token: str | None = None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            status, body, _ = read_all(
                self.url(bucket, "", q), self.opts.policy, max_bytes=MAX_LISTING_PAGE, signer=self.signer
            )
            if status != 200:
                raise FetchError(f"{label}: listing failed with HTTP {status}{_s3_error(body)}")
            try:
                root = ET.fromstring(body)  # noqa: S314  (see the import)
            except ET.ParseError as e:
                raise FetchError(f"{label}: unreadable listing ({e})") from None
            for c in root.iter(f"{_NS}Contents"):
                key = c.findtext(f"{_NS}Key") or ""
                size = int(c.findtext(f"{_NS}Size") or "0")
                out.append((key, size))
            if len(out) > MAX_KEYS:
                raise UnsafeContentError(f"{label}: more than {MAX_KEYS} objects below the prefix")
            if root.findtext(f"{_NS}IsTruncated") == "true":
                token = root.findtext(f"{_NS}NextContinuationToken")
                if not token:
                    raise FetchError(f"{label}: truncated listing without a continuation token")
            else:
                return out


def _s3_error(body: bytes) -> str:
    try:
        code = ET.fromstring(body).findtext("Code")  # noqa: S314
    except ET.ParseError:
        return ""
    return f" ({code})" if code else ""


def fetch_into(uri: ArtifactURI, tree: Path, scratch: Path, opts: SourceOptions) -> Fetched:
    client = S3Client(opts, uri.host)
    opts = client.opts  # with the Secret's CA bundle, if it has one
    label = uri.safe
    bucket, key = uri.host, uri.path
    if key and not key.endswith("/"):
        status = client.head(bucket, key)
        if status == 200:
            raw = scratch / "download"
            got = download(client.url(bucket, key), str(raw), download_options(opts, label, client.signer))
            name = safe_file_name(key.rsplit("/", 1)[-1])
            return place_single(
                raw, name, tree, "sha256:" + got.sha256, got.size, label=label, max_bytes=opts.max_bytes
            )
        if status not in (403, 404):
            raise FetchError(f"{label}: HTTP {status}")
        key += "/"
    return _fetch_prefix(client, bucket, key, tree, opts, label)


def _fetch_prefix(client: S3Client, bucket: str, prefix: str, tree: Path, opts: SourceOptions, label: str) -> Fetched:
    objects = [(k, s) for k, s in client.list(bucket, prefix, label) if not (k.endswith("/") and s == 0)]
    if not objects:
        raise FetchError(f"{label}: no object or prefix by that name (or access denied)")
    total = sum(s for _, s in objects)
    if total > opts.max_bytes:
        raise UnsafeContentError(f"{label}: {total} bytes exceed the size limit of {opts.max_bytes} bytes")
    plan: list[tuple[str, str]] = []
    for key, _ in objects:
        rel = key[len(prefix) :]
        problem = entry_problem(rel, EntryKind.FILE)
        if problem:
            raise UnsafeContentError(f"{label}: refused object name: {problem}")
        plan.append((key, safe_relative(rel)))

    def one(item: tuple[str, str], size: int) -> tuple[str, str]:
        key, rel = item
        target = tree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        dopts = download_options(opts, f"{label}{rel}", client.signer)
        dopts.parallel = opts.parallel if size >= 2 * MIN_PART else 1
        dopts.progress = opts.progress and size >= 2 * MIN_PART
        got = download(client.url(bucket, key), str(target), dopts)
        return rel, got.sha256

    sizes = dict(objects)
    with ThreadPoolExecutor(max_workers=max(1, opts.parallel)) as pool:
        entries = list(pool.map(lambda it: one(it, sizes[it[0]]), plan))
    return Fetched(tree_digest_of(entries), total, "directory")
