"""``s3://BUCKET/KEY`` and ``s3://BUCKET/PREFIX/``: a small S3 client (SigV4, ListObjectsV2, ranged GETs).

Credentials: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` from the environment,
or files ``accessKeyId``, ``secretAccessKey`` (and optionally ``sessionToken``) in ``--credentials-dir``
(a mounted Secret; KServe-style ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` file names work too).
Without credentials requests go unsigned (public buckets). The endpoint is ``--s3-endpoint`` /
``AWS_ENDPOINT_URL`` (S3-compatible stores) or AWS's regional endpoint; addressing is path-style.
A key that names no object is read as a prefix (``KEY/``); a URI ending in ``/`` always is.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from modelyard_runtime.loader.archive_rules import EntryKind, entry_problem, safe_relative
from modelyard_runtime.loader.download import MIN_PART, download
from modelyard_runtime.loader.errors import FetchError, UnsafeContentError, UsageError
from modelyard_runtime.loader.net import open_url, read_all
from modelyard_runtime.loader.sigv4 import Credentials, sign
from modelyard_runtime.loader.sources import Fetched, SourceOptions, download_options, place_single, safe_file_name
from modelyard_runtime.loader.tree import tree_digest_of
from modelyard_runtime.loader.uri import ArtifactURI

MAX_KEYS = 100_000
MAX_LISTING_PAGE = 16 << 20
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def credentials(opts: SourceOptions) -> Credentials | None:
    if opts.credentials_dir:
        d = Path(opts.credentials_dir)

        def read(*names: str) -> str | None:
            for n in names:
                if (d / n).is_file():
                    return (d / n).read_text().strip()
            return None

        ak = read("accessKeyId", "AWS_ACCESS_KEY_ID")
        sk = read("secretAccessKey", "AWS_SECRET_ACCESS_KEY")
        if ak and sk:
            return Credentials(ak, sk, read("sessionToken", "AWS_SESSION_TOKEN"))
        if ak or sk:
            raise UsageError(f"{opts.credentials_dir}: needs both accessKeyId and secretAccessKey")
    ak, sk = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if ak and sk:
        return Credentials(ak, sk, os.environ.get("AWS_SESSION_TOKEN"))
    return None


class S3Client:
    def __init__(self, opts: SourceOptions) -> None:
        self.opts = opts
        self.region = opts.s3_region or "us-east-1"
        self.endpoint = (opts.s3_endpoint or f"https://s3.{self.region}.amazonaws.com").rstrip("/")
        if not self.endpoint.startswith(("http://", "https://")):
            raise UsageError("--s3-endpoint must be an http(s) URL")
        self.creds = credentials(opts)

    def signer(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        if self.creds is None:
            return headers
        return sign(method, url, headers, self.creds, region=self.region, now=datetime.now(UTC))

    def url(self, bucket: str, key: str = "", query: dict[str, str] | None = None) -> str:
        u = f"{self.endpoint}/{bucket}"
        if key:
            u += "/" + quote(key, safe="/-_.~")
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
    client = S3Client(opts)
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
