"""The pure parts of hack/images.py: apt sources for the base, cache keys, archive naming."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tarfile
from pathlib import Path

import pytest

import images


def test_host_debian_sources_keep_the_base_suite_from_deb822_and_one_line_files(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Enabled: no\nTypes: deb\nURIs: http://old.example/debian\nSuites: bookworm\nComponents: main\n"
    )
    one_line = tmp_path / "extra.list"
    one_line.write_text("# deb http://commented.example/debian bookworm main\n"
                        "deb [arch=amd64] http://other.example/debian bookworm-backports main\n"
                        "deb https://vendor.example/cloud cloud-sdk-bookworm main\n")  # fmt: skip
    signed = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
    assert images.host_debian_sources([deb822, one_line, tmp_path / "absent.list"]) == [
        f"deb {signed} http://mirror.example/debian bookworm main contrib",
        f"deb {signed} http://mirror.example/debian bookworm-updates main contrib",
        "deb http://mirror.example/debian-security bookworm-security main",
        "deb [arch=amd64] http://other.example/debian bookworm-backports main",
    ]


def test_tree_digest_follows_contents_and_ignores_caches(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    first = images.tree_digest(["pkg"], root=tmp_path)
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (pkg / "b.pyc").write_bytes(b"\0")
    assert images.tree_digest(["pkg"], root=tmp_path) == first
    (pkg / "a.py").write_text("x = 2\n")
    assert images.tree_digest(["pkg"], root=tmp_path) != first
    assert images.tree_digest(["missing"], root=tmp_path) != images.tree_digest(["other"], root=tmp_path)


def context(revision: str = "abc", gpu_extras: str = "gpu") -> images.Context:
    revisions = dict.fromkeys(images.IMAGES, revision)
    return images.Context(version="1.2.3", revisions=revisions, source="https://example/src", gpu_extras=gpu_extras)


def test_image_keys_change_with_the_commit_and_differ_per_image() -> None:
    keys = {name: images.image_key(spec, context()) for name, spec in images.IMAGES.items()}
    assert len(set(keys.values())) == len(images.IMAGES)
    assert all(images.image_key(spec, context("def")) != keys[name] for name, spec in images.IMAGES.items())
    gpu, cpu = images.IMAGES["modelyard-runtime-gpu"], images.IMAGES["modelyard-runtime"]
    assert images.image_key(gpu, context(gpu_extras="gpu,tensorrt")) != keys[gpu.name]
    assert images.image_key(cpu, context(gpu_extras="gpu,tensorrt")) == keys[cpu.name]


def test_revision_is_the_last_commit_of_the_image_inputs() -> None:
    revision = images.git_revision(["pyproject.toml"])
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", revision)
    assert images.git_revision(["no/such/path"]) in (images.git_revision([]).removesuffix("-dirty"), "unknown")


def test_archive_names_the_image_for_oci_tools_and_containerd(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "blobs" / "sha256" / "aa").write_bytes(b"{}")
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    manifest = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:aa", "size": 2}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    archive = tmp_path / "image.tar"
    images.write_archive(layout, archive, "ghcr.io/modelyard/x:1.0")
    with tarfile.open(archive) as tar:
        assert tar.getnames()[:2] == ["oci-layout", "index.json"]
        assert all(m.uid == 0 and m.mtime == 0 for m in tar.getmembers())
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["annotations"] == {
        "org.opencontainers.image.ref.name": "ghcr.io/modelyard/x:1.0",
        "io.containerd.image.name": "ghcr.io/modelyard/x:1.0",
    }


def test_select_accepts_lists_and_refuses_unknown_names() -> None:
    assert [s.name for s in images.select(["modelyard-runtime,modelyard-operator"])] == [
        "modelyard-operator",
        "modelyard-runtime",
    ]
    assert [s.name for s in images.select(None)] == ["modelyard-operator", "modelyard-runtime", "modelyard-runtime-gpu"]
    assert [s.target for s in images.select(["modelyard-runtime-tf"])] == ["tf"]  # on request only: it is large
    with pytest.raises(images.ImageError, match="unknown image"):
        images.select(["modelyard-nope"])


def test_unpacked_size_counts_uncompressed_layers_once(tmp_path: Path) -> None:
    blobs = tmp_path / "layout" / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    raw = [b"a" * 3000, b"b" * 70]
    layers = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gzip.compress(raw[0]))},
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(raw[1])},
    ]
    config = put(
        json.dumps({"rootfs": {"diff_ids": [f"sha256:{hashlib.sha256(r).hexdigest()}" for r in raw]}}).encode()
    )
    manifest = put(json.dumps({"config": {"digest": config}, "layers": layers}).encode())
    (tmp_path / "layout" / "index.json").write_text(json.dumps({"manifests": [{"digest": manifest}]}))
    sizes = tmp_path / "sizes.json"
    assert images.unpacked_size(tmp_path / "layout", sizes) == 3070
    (blobs / layers[0]["digest"].split(":")[1]).write_bytes(b"")  # the remembered size is used, not the blob
    assert images.unpacked_size(tmp_path / "layout", sizes) == 3070
