"""The loader's cache hit is checked against the *pinned digest*, not only the entry's own index (docs/loader.md,
"Cache"): the real ``modelyard-loader`` as a process, a real HTTP server, local directories and a real registry.

Each tamper test plays someone who can write the cache folder: they change a cached file *and* rewrite the entry's
index to match, so a check against the index alone would pass. With ``--cache-verify`` the loader refuses the entry
(evicts it), fetches the artifact again and publishes the pinned content; with the store gone it fails with the
store's error and publishes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from support.httpserver import FileServer, serve
from support.loader import PLAIN_ONNX, file_digest, leftovers, run_loader, sha256, tar_bytes
from support.registry import Registry, registry

ALLOW = ("--allow-hosts", "127.0.0.1")
MODEL = PLAIN_ONNX
OTHER = onnx.load_from_string(PLAIN_ONNX)
OTHER.doc_string = "not the pinned model"
TAMPERED = OTHER.SerializeToString()  # a well-formed model: the content checks pass, only the digest can tell
ARCHIVE = tar_bytes([("model.onnx", PLAIN_ONNX), ("config.yaml", b"batching: {maxBatchSize: 4}\n")])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "model.onnx").write_bytes(MODEL)
    (root / "model.tar.gz").write_bytes(ARCHIVE)
    with serve(root) as srv:
        yield srv


def entry_of(cache: Path, digest: str) -> Path:
    return cache / "sha256" / digest.split(":", 1)[1]


def tamper(entry: Path, rel: str, data: bytes) -> None:
    """Replace ``rel`` of the entry with ``data`` and rewrite the index so that it agrees (what a writer of the
    folder can do)."""
    target = entry / rel
    os.chmod(target, 0o644)
    target.write_bytes(data)
    index = json.loads((entry / "index.json").read_text())
    if rel.startswith("tree/"):
        index["files"][rel.removeprefix("tree/")] = hashlib.sha256(data).hexdigest()
    (entry / "index.json").write_text(json.dumps(index))


def fetch(uri: str, dest: Path, digest: str, cache: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    p = run_loader("fetch", "--uri", uri, "--dest", str(dest), *ALLOW, "--digest", digest, "--cache", str(cache),
                   *extra)  # fmt: skip
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0 else {}), p.stderr


def test_a_tampered_file_is_refused_and_fetched_again(site: FileServer, tmp_path: Path) -> None:
    cache, digest, uri = tmp_path / "cache", sha256(MODEL), site.url + "/model.onnx"
    assert fetch(uri, tmp_path / "d1", digest, cache, "--cache-verify")[0] == 0
    tamper(entry_of(cache, digest), "tree/model.onnx", TAMPERED)

    # without verification the entry's index is trusted: this is what --cache-verify is for
    code, out, err = fetch(uri, tmp_path / "trusting", digest, cache)
    assert code == 0, err
    assert out["cacheHit"] is True
    assert (tmp_path / "trusting" / "model.onnx").read_bytes() == TAMPERED

    requests = len(site.requests)
    code, out, err = fetch(uri, tmp_path / "d2", digest, cache, "--cache-verify")
    assert code == 0, err
    assert "evicted: its content hashes to sha256:" in err, err
    assert "not the pinned digest" in err, err
    assert out["cacheHit"] is False
    assert len(site.requests) > requests, "the artifact was not fetched again"
    assert file_digest(tmp_path / "d2" / "model.onnx") == digest
    # the entry was refilled from the store, and the next start hits it
    assert file_digest(entry_of(cache, digest) / "tree" / "model.onnx") == digest
    code, out, err = fetch(uri, tmp_path / "d3", digest, cache, "--cache-verify")
    assert (code, out["cacheHit"]) == (0, True), err


def test_a_tampered_hit_with_the_store_gone_fails_and_publishes_nothing(site: FileServer, tmp_path: Path) -> None:
    cache, digest = tmp_path / "cache", sha256(MODEL)
    assert fetch(site.url + "/model.onnx", tmp_path / "d1", digest, cache, "--cache-verify")[0] == 0
    tamper(entry_of(cache, digest), "tree/model.onnx", TAMPERED)
    dest = tmp_path / "models" / "m" / "1"
    code, _, err = fetch(site.url + "/gone.onnx", dest, digest, cache, "--cache-verify")
    assert code == 3, err  # FetchFailed: the store's answer, after the cache entry was refused
    assert "not the pinned digest" in err, err
    assert "404" in err, err
    assert not dest.exists()
    assert leftovers(dest.parent, "1") == []
    assert not entry_of(cache, digest).exists(), "the refused entry stayed in the cache"


def test_a_directory_with_an_added_file_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "store" / "fraud"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.onnx").write_bytes(MODEL)
    digest = run_loader("digest", str(model)).stdout.strip()
    cache = tmp_path / "cache"
    local = ("--allow-file",)
    assert fetch(str(model), tmp_path / "d1", digest, cache, "--cache-verify", *local)[0] == 0
    entry = entry_of(cache, digest)
    # an extra file the index also lists: the index agrees, the tree digest does not
    (entry / "tree" / "extra.onnx").write_bytes(MODEL)
    index = json.loads((entry / "index.json").read_text())
    index["files"]["extra.onnx"] = hashlib.sha256(MODEL).hexdigest()
    (entry / "index.json").write_text(json.dumps(index))
    code, out, err = fetch(str(model), tmp_path / "d2", digest, cache, "--cache-verify", *local)
    assert code == 0, err
    assert out["cacheHit"] is False
    assert "not the pinned digest" in err, err
    assert sorted(p.name for p in (tmp_path / "d2").rglob("*") if p.is_file()) == ["model.onnx"]


def test_an_archive_hit_is_extracted_again_from_its_verified_bytes(site: FileServer, tmp_path: Path) -> None:
    cache, digest, uri = tmp_path / "cache", sha256(ARCHIVE), site.url + "/model.tar.gz"
    assert fetch(uri, tmp_path / "d1", digest, cache, "--cache-verify")[0] == 0
    entry = entry_of(cache, digest)
    assert file_digest(entry / "source" / "archive") == digest
    assert list((entry / "tree").iterdir()) == []  # the extracted files are not trusted from the cache
    code, out, err = fetch(site.url + "/gone.tar.gz", tmp_path / "d2", digest, cache, "--cache-verify")
    assert (code, out["cacheHit"]) == (0, True), err
    assert (tmp_path / "d2" / "model.onnx").read_bytes() == PLAIN_ONNX
    # a changed archive is refused even without --cache-verify: its bytes are hashed as they are copied
    tamper(entry, "source/archive", tar_bytes([("model.onnx", b"other")]))
    code, out, err = fetch(uri, tmp_path / "d3", digest, cache)
    assert (code, out["cacheHit"]) == (0, False), err
    assert "its archive hashes to" in err, err
    assert (tmp_path / "d3" / "model.onnx").read_bytes() == PLAIN_ONNX


def test_an_entry_of_the_first_layout_is_evicted(site: FileServer, tmp_path: Path) -> None:
    """Entries written before hits were checked against the pinned digest have no evidence: fetched again."""
    cache, digest, uri = tmp_path / "cache", sha256(MODEL), site.url + "/model.onnx"
    assert fetch(uri, tmp_path / "d1", digest, cache)[0] == 0
    index_file = entry_of(cache, digest) / "index.json"
    index = json.loads(index_file.read_text())
    del index["format"]
    index_file.write_text(json.dumps(index))
    code, out, err = fetch(uri, tmp_path / "d2", digest, cache, "--cache-verify")
    assert (code, out["cacheHit"]) == (0, False), err
    assert "an index of another layout" in err


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry(tmp_path_factory.mktemp("registry")) as r:
        yield r


def test_oci_hits_are_checked_against_the_manifest_digest(reg: Registry, tmp_path: Path) -> None:
    work = tmp_path / "push"
    (work / "saved").mkdir(parents=True)
    (work / "model.onnx").write_bytes(MODEL)
    (work / "saved" / "config.yaml").write_text("a: 1\n")
    digest = reg.push_files("models/cached:1", ["model.onnx:application/vnd.onnx", "saved"], cwd=work)
    uri, cache = f"oci://{reg.host}/models/cached@{digest}", tmp_path / "cache"
    net = ("--oci-plain-http", "--cache-verify")
    code, out, err = fetch(uri, tmp_path / "d1", digest, cache, *net)
    assert (code, out["cacheHit"]) == (0, False), err
    entry = entry_of(cache, digest)
    assert file_digest(entry / "source" / "manifest.json") == digest
    assert len(list((entry / "source" / "blobs").iterdir())) == 1  # the packed directory's blob
    code, out, err = fetch(uri, tmp_path / "d2", digest, cache, *net)
    assert (code, out["cacheHit"]) == (0, True), err
    assert sorted(p.relative_to(tmp_path / "d2").as_posix() for p in (tmp_path / "d2").rglob("*") if p.is_file()) == [
        "model.onnx",
        "saved/config.yaml",
    ]
    # a file layer changed in the cache (index rewritten to match) no longer hashes to its descriptor
    tamper(entry, "tree/model.onnx", TAMPERED)
    code, out, err = fetch(uri, tmp_path / "d3", digest, cache, *net)
    assert (code, out["cacheHit"]) == (0, False), err
    assert "not its descriptor's" in err, err
    assert file_digest(tmp_path / "d3" / "model.onnx") == sha256(MODEL)
    # an extracted layer's blob changed in the cache: refused the same way
    (blob,) = (entry_of(cache, digest) / "source" / "blobs").iterdir()
    os.chmod(blob, 0o644)
    blob.write_bytes(tar_bytes([("saved/config.yaml", b"a: 2\n")]))
    code, out, err = fetch(uri, tmp_path / "d4", digest, cache, *net)
    assert (code, out["cacheHit"]) == (0, False), err
    assert (tmp_path / "d4" / "saved" / "config.yaml").read_text() == "a: 1\n"
