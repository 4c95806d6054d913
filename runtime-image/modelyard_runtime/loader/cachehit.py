"""A cache hit: an entry placed into the staging tree and, with ``--cache-verify``, checked against the *pinned
digest* before anything is published.

The entry's own index is no evidence: whoever can write the cache folder can rewrite an index too. So a verified
hit hashes what it stages by the rule a download is checked by, against the digest the caller pinned:

- ``file``: the one staged file's sha256 (under the name of the fetch that filled the entry);
- ``directory``: the tree digest of the staged files (every file of the entry, whatever its index lists);
- ``archive``: the archive's bytes, kept in the entry (``source/archive``), copied while hashed and extracted again
  with the same checks as a download;
- ``oci``: the manifest's bytes (``source/manifest.json``), then every layer against its descriptor: a file layer's
  staged file, an extracted layer's blob (``source/blobs/<hex>``, copied while hashed and extracted again).

The kind itself must be one the URI can produce. Without verification the entry's files are linked as its index
lists them (the node folder is trusted); an archive's or a blob's bytes are hashed on the way all the same.
Anything wrong raises ``CacheMiss``: the caller evicts the entry and fetches from the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard_runtime.loader import oci
from modelyard_runtime.loader.archive import extract
from modelyard_runtime.loader.archive_rules import archive_kind, safe_relative
from modelyard_runtime.loader.cache import Cache
from modelyard_runtime.loader.errors import LoaderError
from modelyard_runtime.loader.sources import Fetched, SourceOptions, single_name
from modelyard_runtime.loader.tree import copy_file_hashing, hash_file, link_or_copy, tree_digest, walk_files
from modelyard_runtime.loader.uri import ArtifactURI


class CacheMiss(Exception):  # noqa: N818  (a miss is an outcome, not an error)
    """The entry cannot be used: why (evict it and fetch)."""


def possible_kinds(uri: ArtifactURI) -> set[str]:
    """The kinds of artifact a fetch of ``uri`` can produce."""
    if uri.scheme == "oci":
        return {"oci"}
    single = "archive" if archive_kind(single_name(uri)) else "file"
    return {single} if uri.scheme in ("http", "https") else {single, "directory"}


def restore(
    cache: Cache, digest: str, index: dict[str, object], uri: ArtifactURI, tree: Path, scratch: Path, *,
    verify: bool, opts: SourceOptions,
) -> Fetched:  # fmt: skip
    """Stage the entry of ``digest`` below ``tree`` (``scratch`` for raw bytes); CacheMiss when it is not usable."""
    kind = str(index.get("kind"))
    if kind not in possible_kinds(uri):
        raise CacheMiss(f"its kind {kind!r} is not what {uri.safe} can be")
    entry = cache.entry(digest)
    size = int(str(index.get("size", 0)))
    try:
        if kind == "archive":
            return _archive(entry, digest, uri, tree, scratch, opts)
        if kind == "oci":
            return _oci(entry, digest, uri, tree, scratch, verify=verify, opts=opts)
        if not verify:
            files = index.get("files")
            if not isinstance(files, dict) or not files:
                raise CacheMiss("its index lists no files")
            cache.materialize(digest, tree, sorted(str(f) for f in files))
            return Fetched(digest, size, kind)
        files_here = walk_files(entry / "tree", label="cache entry")
        if kind == "file" and len(files_here) != 1:
            raise CacheMiss(f"it holds {len(files_here)} files, not the artifact's one file")
        for rel in files_here:
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(entry / "tree" / rel, tree / rel)
        if kind == "file":  # what is staged is what is hashed (a link shares the file, not a moment in time)
            actual, size = "sha256:" + hash_file(tree / files_here[0]), (tree / files_here[0]).stat().st_size
        else:
            actual, size = tree_digest(tree, label="cache entry")
    except (OSError, LoaderError, ValueError, KeyError) as e:
        raise CacheMiss(f"cannot be read ({type(e).__name__}: {e})") from None
    if actual != digest:
        raise CacheMiss(f"its content hashes to {actual}, not the pinned digest")
    return Fetched(digest, size, kind)


def _archive(entry: Path, digest: str, uri: ArtifactURI, tree: Path, scratch: Path, opts: SourceOptions) -> Fetched:
    raw = scratch / "download"
    hexdigest, size = copy_file_hashing(entry / "source" / "archive", raw, max_bytes=opts.max_bytes, label="cache")
    if "sha256:" + hexdigest != digest:
        raise CacheMiss(f"its archive hashes to sha256:{hexdigest}, not the pinned digest")
    extract(raw, archive_kind(single_name(uri)) or "", tree, label=uri.safe, max_bytes=opts.max_bytes)
    return Fetched(digest, size, "archive")


def _oci(
    entry: Path, digest: str, uri: ArtifactURI, tree: Path, scratch: Path, *, verify: bool, opts: SourceOptions
) -> Fetched:
    body = (entry / "source" / "manifest.json").read_bytes()
    if len(body) > oci.MAX_MANIFEST:
        raise CacheMiss("its manifest is larger than a manifest may be")
    layers = oci.manifest_layers(oci.parse_manifest(body, digest, uri.safe), uri.safe, opts.max_bytes)

    def blob(i: int, layer: dict[str, Any]) -> Path:
        want = str(layer["digest"])
        raw = scratch / f"layer-{i}"
        if oci.is_file_layer(layer):
            rel = safe_relative(str(layer["annotations"][oci.TITLE]))
            link_or_copy(entry / "tree" / rel, raw)
            if not verify:
                return raw
            actual = "sha256:" + hash_file(raw)
        else:
            source = entry / "source" / "blobs" / want.split(":", 1)[1]
            actual = "sha256:" + copy_file_hashing(source, raw, max_bytes=opts.max_bytes, label="cache")[0]
        if actual != want:
            raise CacheMiss(f"layer {i} hashes to {actual}, not its descriptor's {want}")
        return raw

    oci.place_layers(layers, blob, tree, scratch, opts, uri.safe)
    return Fetched(digest, sum(int(layer.get("size", 0)) for layer in layers), "oci")
