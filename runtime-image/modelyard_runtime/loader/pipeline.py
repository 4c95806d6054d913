"""The fetch pipeline: cache or source → digest check → content checks → signature → cache fill → compile → publish.

Order matters: nothing is published (and nothing enters the cache) before the pinned digest matched, the
tree passed the content checks and the signature verified. A format served through a compiler (PMML) is compiled
after that, into the published tree only (:mod:`modelyard_runtime.loader.compiling`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard_runtime import logs
from modelyard_runtime.loader import cachehit, safety, signature
from modelyard_runtime.loader.cache import Cache
from modelyard_runtime.loader.compiling import COMPILED_FORMATS, Compiled, compile_into
from modelyard_runtime.loader.errors import IntegrityError, LoaderError, SignatureError, UsageError
from modelyard_runtime.loader.publish import Staging
from modelyard_runtime.loader.sources import Fetched, SourceOptions, fetch_into
from modelyard_runtime.loader.tree import walk_files
from modelyard_runtime.loader.uri import ArtifactURI, check_digest, parse

MAX_SIGNATURE_BYTES = 16 << 20


@dataclass
class FetchRequest:
    uri: str
    dest: Path
    digest: str | None = None
    cache: Path | None = None
    cache_verify: bool = False
    require_digest: bool = False
    allow_file: bool = False
    pvc_root: str = "/mnt/pvc"
    model_format: str = "onnx"  # spec.format; pmml is compiled to model.onnx before publishing
    compiled_digest: str | None = None  # the compiled model's digest the validation recorded (pods check it)
    signature: signature.SignatureOptions = field(default_factory=signature.SignatureOptions)
    source: SourceOptions = field(default_factory=SourceOptions)


@dataclass
class FetchResult:
    uri: str  # redacted
    digest: str
    size: int
    kind: str
    files: list[str]
    signature: str | None  # verification method, None when unsigned
    cache_hit: bool
    seconds: float
    compiled: Compiled | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "uri": self.uri,
            "digest": self.digest,
            "sizeBytes": self.size,
            "kind": self.kind,
            "files": self.files[:50],
            "fileCount": len(self.files),
            "signature": {"verified": self.signature is not None, "method": self.signature},
            "cacheHit": self.cache_hit,
            "seconds": round(self.seconds, 3),
            **({"compiled": self.compiled.as_dict()} if self.compiled else {}),
        }


def log(msg: str, **fields: Any) -> None:
    """One line on stderr: text, or JSON with ``fields`` under ``--log-format json`` (modelyard_runtime.logs)."""
    logs.line("modelyard-loader", msg, **fields)


def run_fetch(req: FetchRequest) -> FetchResult:
    start = time.monotonic()
    uri = parse(req.uri, allow_file=req.allow_file, pvc_root=req.pvc_root)
    pinned = check_digest(req.digest) if req.digest else None
    if uri.scheme == "oci":
        if pinned and pinned != uri.digest:
            raise UsageError(f"{uri.safe}: --digest {pinned} differs from the reference's digest")
        pinned = uri.digest
    if req.require_digest and not pinned:
        raise UsageError(f"{uri.safe}: a pinned --digest is required (--require-digest)")
    method = req.signature.method()  # usage errors before any network traffic
    if req.compiled_digest:
        if req.model_format not in COMPILED_FORMATS:
            raise UsageError(f"--compiled-digest is for a compiled format ({', '.join(COMPILED_FORMATS)})")
        req.compiled_digest = check_digest(req.compiled_digest)
    compiled: Compiled | None = None
    cache = _open_cache(req.cache) if req.cache and pinned else None
    if req.cache and not pinned:
        log("no --digest given: the cache is not used (it is keyed by pinned digests)")
    with Staging(req.dest) as staging:
        lock = cache.lock(pinned) if cache and pinned else contextlib.nullcontext()
        with lock:
            got = _from_cache(cache, pinned, uri, staging, req) if cache and pinned else None
            hit = got is not None
            if got is not None:
                log(f"cache hit for {pinned}" + (" (verified against the pinned digest)" if req.cache_verify else ""))
            else:
                log(f"fetching {uri.safe}")
                got = fetch_into(uri, staging.tree, staging.scratch, req.source)
                if pinned and got.digest != pinned:
                    raise IntegrityError(f"{uri.safe}: digest mismatch: expected {pinned}, got {got.digest}")
            digest, size, kind = got.digest, got.size, got.kind
            files = safety.scan(staging.tree, label=uri.safe)
            if not files:
                raise IntegrityError(f"{uri.safe}: the artifact is empty")
            if method is not None:
                _verify_signature(uri, req, staging, files, kind)
                log(f"signature verified ({method})")
            if cache and pinned and not hit:
                try:
                    cache.insert(pinned, staging.tree, got)
                except OSError as e:  # a full or read-only cache costs the next start a download, nothing more
                    log(f"could not add {pinned} to the cache ({type(e).__name__}: {e})")
        if req.model_format in COMPILED_FORMATS:
            try:
                compiled = compile_into(staging.tree, files, req.model_format, req.compiled_digest, uri.safe)
            except LoaderError as e:  # the artifact was fetched and verified: the validation's result says so
                e.artifact = {"digest": digest, "sizeBytes": size}
                raise
            log(f"compiled {compiled.source} to {compiled.model} ({compiled.digest}) in {compiled.seconds:.3f}s")
        staging.publish()
    log(f"published {uri.safe} ({digest}) at {req.dest}")
    return FetchResult(uri.safe, digest, size, kind, files, method, hit, time.monotonic() - start, compiled)


def _open_cache(root: Path) -> Cache | None:
    """The cache at ``root``, or None with a log line when this process cannot use it.

    A cache only saves time, so one that is not usable never fails a fetch: a node directory that the kubelet
    created for a hostPath belongs to root, and a loader running as another user cannot write there.
    """
    try:
        cache = Cache(root)
        for sub in Cache.SUBDIRS:
            if not os.access(cache.root / sub, os.W_OK | os.X_OK):
                raise PermissionError(f"{cache.root / sub} is not writable by uid {os.getuid()}")
    except OSError as e:
        log(f"the cache {root} cannot be used, fetching without it ({type(e).__name__}: {e})")
        return None
    return cache


def _from_cache(cache: Cache, digest: str, uri: ArtifactURI, staging: Staging, req: FetchRequest) -> Fetched | None:
    """The entry of ``digest`` staged (checked against ``digest`` with ``--cache-verify``), or None after evicting
    an entry that cannot be used (the caller fetches from the store)."""
    index = cache.lookup(digest)
    if index is None:
        return None
    try:
        return cachehit.restore(
            cache, digest, index, uri, staging.tree, staging.scratch, verify=req.cache_verify, opts=req.source
        )
    except cachehit.CacheMiss as e:
        cache.evict(digest, str(e))
        staging.reset()
        return None


def _verify_signature(uri: ArtifactURI, req: FetchRequest, staging: Staging, files: list[str], kind: str) -> None:
    sig_uri = parse(str(req.signature.uri), allow_file=req.allow_file, pvc_root=req.pvc_root)
    sig_tree = staging.scratch / "signature"
    sig_scratch = staging.scratch / "signature-raw"
    sig_tree.mkdir()
    sig_scratch.mkdir()
    src = dataclasses.replace(req.source, max_bytes=MAX_SIGNATURE_BYTES, progress=False)
    fetch_into(sig_uri, sig_tree, sig_scratch, src)
    sig_files = walk_files(sig_tree, label=sig_uri.safe)
    if len(sig_files) != 1:
        raise SignatureError(f"{sig_uri.safe}: expected one signature file, found {len(sig_files)}")
    sig_name = sig_files[0]
    # A signature stored inside the artifact (s3://b/m/42/model.sig for s3://b/m/42/) is not part of
    # what was signed: verify a hard-linked view of the tree without it.
    inside = sig_uri.raw.startswith(uri.raw.rstrip("/") + "/")
    sig_rel = sig_uri.raw[len(uri.raw.rstrip("/")) + 1 :] if inside else None
    view = staging.scratch / "view"
    for rel in files:
        if rel == sig_rel:
            continue
        target = view / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(staging.tree / rel, target)
    model: Path = view
    if kind == "file" and len(files) == 1:
        model = view / files[0]
    signature.verify(model, sig_tree / sig_name, req.signature)
