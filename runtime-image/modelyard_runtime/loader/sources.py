"""Sources: put an artifact's content below a staging tree and return its digest.

- one object (HTTP URL, S3 key, PVC or local file): its sha256; an archive (.tar, .tar.gz/.tgz, .zip by
  name) is extracted into the tree, any other file lands as ``tree/<file name>``;
- a directory (S3 prefix, PVC or local directory): the tree digest (see ``tree``);
- an OCI artifact: the manifest digest named in the reference (every blob checked against its descriptor).
"""

from __future__ import annotations

import base64
import os
import posixpath
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelyard_runtime.loader import secretdir
from modelyard_runtime.loader.archive import extract
from modelyard_runtime.loader.archive_rules import archive_kind
from modelyard_runtime.loader.download import DownloadOptions, download
from modelyard_runtime.loader.errors import FetchError, UnsafeContentError, UsageError
from modelyard_runtime.loader.net import NetPolicy, Signer
from modelyard_runtime.loader.tree import copy_file_hashing, copy_tree_hashing
from modelyard_runtime.loader.uri import ArtifactURI


@dataclass
class SourceOptions:
    policy: NetPolicy = field(default_factory=NetPolicy)
    max_bytes: int = 64 << 30
    parallel: int = 4
    progress: bool = True
    credentials_dir: str | None = None  # mounted Secret (see secretdir): S3, HTTP and OCI credentials
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_addressing_style: str | None = None  # path | virtual (None: the Secret's key, the environment, or auto)
    oci_username: str | None = None
    oci_password_file: str | None = None
    docker_config: str | None = None
    oci_plain_http: bool = False


@dataclass
class Fetched:
    digest: str
    size: int
    kind: str  # file | archive | directory | oci
    # What a cache entry keeps besides the published files, so that a hit can be checked against the pinned digest
    # again: the raw bytes that hash to it or to a descriptor it pins (an archive; an OCI manifest and the blobs of
    # extracted layers), as {name below the entry's source/: file in the scratch directory}.
    evidence: dict[str, Path] = field(default_factory=dict)
    keep: list[str] | None = None  # the published files the entry keeps (None: all; an archive's: none)


def safe_file_name(name: str) -> str:
    name = name.replace("\\", "_").strip()
    if name in ("", ".", "..") or "\x00" in name:
        return "model"
    return name


def place_single(
    downloaded: Path, name: str, tree: Path, digest: str, size: int, *, label: str, max_bytes: int
) -> Fetched:
    kind = archive_kind(name)
    if kind:
        extract(downloaded, kind, tree, label=label, max_bytes=max_bytes)
        return Fetched(digest, size, "archive", evidence={"archive": downloaded}, keep=[])
    os.rename(downloaded, tree / name)
    return Fetched(digest, size, "file")


def single_name(uri: ArtifactURI) -> str:
    """The file name a single-object artifact lands as (and whose suffix marks an archive)."""
    if uri.scheme in ("http", "https"):
        return safe_file_name(unquote(posixpath.basename(urlsplit(uri.raw).path)))
    if uri.scheme == "s3":
        return safe_file_name(uri.path.rsplit("/", 1)[-1])
    return safe_file_name(Path(uri.path).name)


def download_options(opts: SourceOptions, label: str, signer: Signer | None = None) -> DownloadOptions:
    return DownloadOptions(
        policy=opts.policy,
        max_bytes=opts.max_bytes,
        parallel=opts.parallel,
        signer=signer,
        label=label,
        progress=opts.progress,
    )


def http_signer(uri: ArtifactURI, opts: SourceOptions) -> Signer | None:
    """The credentials Secret's ``Authorization`` for an http(s) artifact: ``token`` (Bearer) or ``username`` and
    ``password`` (Basic), sent only to the hosts its ``host`` key names (default: the URI's host) and never on a
    redirect to another origin. None without such keys."""
    token = secretdir.read_key(opts.credentials_dir, "token", "bearerToken")
    user = secretdir.read_key(opts.credentials_dir, "username")
    password = secretdir.read_key(opts.credentials_dir, "password")
    if token:
        header = f"Bearer {token}"
    elif user is not None and password is not None:
        header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif user is not None or password is not None:
        raise UsageError(f"{uri.safe}: the credentials Secret needs both username and password")
    else:
        return None
    hosts = secretdir.bound_hosts(opts.credentials_dir, uri.host)
    secretdir.require_host(uri.raw, hosts, uri.safe)

    def sign(method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Authorization": header} if secretdir.host_allowed(url, hosts) else headers

    return sign


def fetch_into(uri: ArtifactURI, tree: Path, scratch: Path, opts: SourceOptions) -> Fetched:
    label = uri.safe
    if uri.scheme in ("http", "https"):
        name = single_name(uri)
        raw = scratch / "download"
        got = download(uri.raw, str(raw), download_options(opts, label, http_signer(uri, opts)))
        return place_single(raw, name, tree, "sha256:" + got.sha256, got.size, label=label, max_bytes=opts.max_bytes)
    if uri.scheme in ("file", "pvc"):
        return _fetch_local(Path(uri.path), tree, scratch, opts, label)
    if uri.scheme == "s3":
        from modelyard_runtime.loader import s3

        return s3.fetch_into(uri, tree, scratch, opts)
    if uri.scheme == "oci":
        from modelyard_runtime.loader import oci

        return oci.fetch_into(uri, tree, scratch, opts)
    raise UsageError(f"{label}: unsupported scheme")


def _fetch_local(path: Path, tree: Path, scratch: Path, opts: SourceOptions, label: str) -> Fetched:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FetchError(f"{label}: no such file or directory") from None
    except OSError as e:
        raise FetchError(f"{label}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeContentError(f"{label}: is a symbolic link (refused)")
    if stat.S_ISDIR(st.st_mode):
        digest, size = copy_tree_hashing(path, tree, max_bytes=opts.max_bytes, label=label)
        return Fetched(digest, size, "directory")
    raw = scratch / "download"
    hexdigest, size = copy_file_hashing(path, raw, max_bytes=opts.max_bytes, label=label)
    name = safe_file_name(path.name)
    return place_single(raw, name, tree, "sha256:" + hexdigest, size, label=label, max_bytes=opts.max_bytes)
