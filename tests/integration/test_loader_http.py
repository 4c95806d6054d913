"""``modelyard-loader fetch`` over HTTP against a real range-capable server started by the test.

Covers: ranged parallel download, servers without ranges, resume after dropped connections, a tampered
byte, archives and every kind of escaping entry, the SSRF guard (loopback, metadata, cluster names,
redirects), code-executing formats, ONNX external data escaping the model directory, size limits,
credential redaction and two loaders racing on one cache.
"""

from __future__ import annotations

import json
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from support.httpserver import FileServer, serve
from support.loader import PLAIN_ONNX, file_digest, leftovers, result, run_loader, sha256, tar_bytes, zip_bytes

ALLOW = ("--allow-hosts", "127.0.0.1")
BLOB = os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "blob.bin").write_bytes(BLOB)
    with serve(root) as srv:
        yield srv


def fetch(srv: FileServer, path: str, dest: Path, *extra: str) -> tuple[int, str, str]:
    p = run_loader("fetch", "--uri", srv.url + path, "--dest", str(dest), *ALLOW, *extra)
    return p.returncode, p.stdout, p.stderr


def test_parallel_ranged_download_publishes_verified_file(site: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "m" / "1"
    code, out, err = fetch(site, "/blob.bin", dest, "--digest", sha256(BLOB), "--parallel", "4")
    assert code == 0, err
    assert (dest / "blob.bin").read_bytes() == BLOB
    assert json.loads(out)["digest"] == sha256(BLOB)
    ranges = [h.get("Range") for _, _, h in site.requests]
    assert ranges[0] == "bytes=0-0"
    assert len([r for r in ranges[1:] if r]) >= 1
    assert "fetched" in err
    assert "(100%)" in err
    assert leftovers(dest.parent, "1") == []


def test_server_without_ranges_single_stream(site: FileServer, tmp_path: Path) -> None:
    site.mode = "no-range"
    code, _, err = fetch(site, "/blob.bin", tmp_path / "d", "--digest", sha256(BLOB))
    assert code == 0, err
    assert (tmp_path / "d" / "blob.bin").read_bytes() == BLOB


def test_resume_after_dropped_connections(site: FileServer, tmp_path: Path) -> None:
    site.mode, site.drops = "drop", 3
    code, _, err = fetch(site, "/blob.bin", tmp_path / "d", "--digest", sha256(BLOB), "--parallel", "1")
    assert code == 0, err
    assert file_digest(tmp_path / "d" / "blob.bin") == sha256(BLOB)
    assert site.drops == 0
    resumed = [h["Range"] for _, _, h in site.requests if h.get("Range", "bytes=0-").split("=")[1][0] != "0"]
    assert resumed, "no request resumed past byte 0"


def test_no_range_server_restarts_after_a_drop(site: FileServer, tmp_path: Path) -> None:
    site.ranges, site.mode, site.drops = False, "drop", 1
    code, _, err = fetch(site, "/blob.bin", tmp_path / "d", "--digest", sha256(BLOB))
    assert code == 0, err
    assert site.drops == 0
    assert len(site.requests) == 2  # the probe's full body dropped half-way, then one complete stream
    assert file_digest(tmp_path / "d" / "blob.bin") == sha256(BLOB)


def test_tampered_byte_fails_closed(site: FileServer, tmp_path: Path) -> None:
    tampered = bytearray(BLOB)
    tampered[12345] ^= 1
    (site.root / "blob.bin").write_bytes(bytes(tampered))
    dest = tmp_path / "out" / "v1"
    code, _, err = fetch(site, "/blob.bin", dest, "--digest", sha256(BLOB))
    assert code == 4, err
    assert "digest mismatch" in err
    assert not dest.exists()
    assert leftovers(dest.parent, "v1") == []


def test_previous_content_survives_a_failed_fetch(site: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "v1"
    dest.mkdir()
    (dest / "old.onnx").write_bytes(b"old")
    code, _, _ = fetch(site, "/blob.bin", dest, "--digest", sha256(b"other"))
    assert code == 4
    assert (dest / "old.onnx").read_bytes() == b"old"


def test_size_limit(site: FileServer, tmp_path: Path) -> None:
    code, _, err = fetch(site, "/blob.bin", tmp_path / "d", "--max-bytes", "1M")
    assert code == 6, err
    assert "size limit" in err
    assert not (tmp_path / "d").exists()


def test_archives_are_extracted(site: FileServer, tmp_path: Path) -> None:
    (site.root / "m.tar.gz").write_bytes(
        tar_bytes([("model/1/model.onnx", PLAIN_ONNX), ("model/config.yaml", b"a: 1")])
    )
    (site.root / "m.zip").write_bytes(zip_bytes([("saved_model.pb", b"pb"), ("variables/v.index", b"ix")]))
    assert fetch(site, "/m.tar.gz", tmp_path / "t")[0] == 0
    assert (tmp_path / "t" / "model" / "1" / "model.onnx").read_bytes() == PLAIN_ONNX
    assert fetch(site, "/m.zip", tmp_path / "z")[0] == 0
    assert (tmp_path / "z" / "variables" / "v.index").read_bytes() == b"ix"


def _member(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info


ESCAPES = {
    "dotdot.tar.gz": tar_bytes([("ok.onnx", b"x"), ("../escaped.txt", b"pwned")]),
    "absolute.tar.gz": tar_bytes([("/tmp/modelyard-escaped.txt", b"pwned")]),
    "symlink.tar.gz": tar_bytes([_member("link", tarfile.SYMTYPE, "/etc/passwd")]),
    "hardlink.tar.gz": tar_bytes([_member("hard", tarfile.LNKTYPE, "/etc/passwd")]),
    "device.tar": tar_bytes([_member("null", tarfile.CHRTYPE)], gz=False),
    "fifo.tar": tar_bytes([_member("pipe", tarfile.FIFOTYPE)], gz=False),
    "dotdot.zip": zip_bytes([("a/../../escaped.txt", b"pwned")]),
    "absolute.zip": zip_bytes([("/escaped.txt", b"pwned")]),
    "symlink.zip": zip_bytes([("link", b"/etc/passwd")], symlinks=("link",)),
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_archive_escapes_are_refused(site: FileServer, tmp_path: Path, name: str) -> None:
    (site.root / name).write_bytes(ESCAPES[name])
    dest = tmp_path / "deep" / "out"
    code, _, err = fetch(site, f"/{name}", dest)
    assert code == 6, err
    assert "refused archive" in err
    assert not dest.exists()
    assert not (tmp_path / "deep" / "escaped.txt").exists()
    assert leftovers(dest.parent, "out") == []


@pytest.mark.parametrize("name", ["model.pkl", "model.pt", "weights.joblib"])
def test_code_formats_refused_by_name(site: FileServer, tmp_path: Path, name: str) -> None:
    (site.root / name).write_bytes(b"\x80\x04\x95harmless")
    code, _, err = fetch(site, f"/{name}", tmp_path / "d")
    assert code == 6, err
    assert not (tmp_path / "d").exists()


def test_pickle_refused_by_content(site: FileServer, tmp_path: Path) -> None:
    import pickle

    (site.root / "model.bin").write_bytes(pickle.dumps({"w": [1, 2]}, protocol=4))
    code, _, err = fetch(site, "/model.bin", tmp_path / "d")
    assert code == 6, err
    assert "pickle" in err


def _onnx_with_external(location: str) -> bytes:
    w = numpy_helper.from_array(np.ones((4,), dtype="float32"), "W")
    w.data_location = TensorProto.EXTERNAL
    e = w.external_data.add()
    e.key, e.value = "location", location
    w.ClearField("raw_data")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y], initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "missing.bin"])
def test_onnx_external_data_escape_refused(site: FileServer, tmp_path: Path, location: str) -> None:
    archive = tar_bytes([("m/model.onnx", _onnx_with_external(location)), ("m/w.bin", b"\0" * 16)])
    (site.root / "m.tar.gz").write_bytes(archive)
    code, _, err = fetch(site, "/m.tar.gz", tmp_path / "d")
    assert code == 6, err
    assert "external data refused" in err
    assert not (tmp_path / "d").exists()


def test_onnx_external_data_inside_the_directory_is_fine(site: FileServer, tmp_path: Path) -> None:
    archive = tar_bytes([("model.onnx", _onnx_with_external("w.bin")), ("w.bin", np.ones(4, "float32").tobytes())])
    (site.root / "m.tar.gz").write_bytes(archive)
    code, _, err = fetch(site, "/m.tar.gz", tmp_path / "d")
    assert code == 0, err
    model = onnx.load(str(tmp_path / "d" / "model.onnx"))
    assert model.graph.initializer[0].name == "W"


def test_symlink_in_local_directory_model_refused(tmp_path: Path) -> None:
    src = tmp_path / "model"
    src.mkdir()
    (src / "model.onnx").write_bytes(b"x")
    (src / "data.bin").symlink_to("/etc/passwd")
    p = run_loader("fetch", "--uri", str(src), "--dest", str(tmp_path / "d"), "--allow-file")
    assert p.returncode == 6, p.stderr
    assert "symbolic link" in p.stderr
    assert not (tmp_path / "d").exists()


def test_local_paths_need_allow_file(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(PLAIN_ONNX)
    p = run_loader("fetch", "--uri", f"file://{tmp_path}/m.onnx", "--dest", str(tmp_path / "d"))
    assert p.returncode == 2
    p = run_loader("fetch", "--uri", f"file://{tmp_path}/m.onnx", "--dest", str(tmp_path / "d"), "--allow-file")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "d" / "m.onnx").read_bytes() == PLAIN_ONNX


def test_pvc_uri_maps_to_the_mounted_claim(tmp_path: Path) -> None:
    claim = tmp_path / "pvc" / "models-claim" / "fraud" / "42"
    claim.mkdir(parents=True)
    (claim / "model.onnx").write_bytes(PLAIN_ONNX)
    (claim / "extra").mkdir()
    (claim / "extra" / "vocab.txt").write_bytes(b"v")
    dig = run_loader("digest", str(claim)).stdout.strip()
    p = run_loader(
        "fetch", "--uri", "pvc://models-claim/fraud/42", "--dest", str(tmp_path / "d"),
        "--pvc-root", str(tmp_path / "pvc"), "--digest", dig,
    )  # fmt: skip
    assert result(p)["kind"] == "directory"
    assert (tmp_path / "d" / "extra" / "vocab.txt").read_bytes() == b"v"


def test_loopback_refused_without_allowlist(site: FileServer, tmp_path: Path) -> None:
    p = run_loader("fetch", "--uri", site.url + "/blob.bin", "--dest", str(tmp_path / "d"))
    assert p.returncode == 6, p.stderr
    assert "loopback" in p.stderr
    assert site.requests == []


def test_allowlist_from_the_environment(site: FileServer, tmp_path: Path) -> None:
    p = run_loader(
        "fetch", "--uri", site.url + "/blob.bin", "--dest", str(tmp_path / "d"),
        env={"MODELYARD_LOADER_ALLOW_HOSTS": "10.0.0.0/8,127.0.0.0/8"},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://kubernetes.default.svc/api",
        "http://minio.storage.svc.cluster.local:9000/models/m.onnx",
        "http://localhost:8080/m.onnx",
        "http://10.0.0.1/m.onnx",
    ],
)
def test_ssrf_targets_refused(tmp_path: Path, uri: str) -> None:
    p = run_loader("fetch", "--uri", uri, "--dest", str(tmp_path / "d"), "--timeout", "2")
    assert p.returncode == 6, p.stderr
    assert "refused to connect" in p.stderr


def test_redirect_to_an_allowed_host_is_followed(site: FileServer, tmp_path: Path) -> None:
    port = site.server_address[1]
    site.redirects["/moved.bin"] = f"http://localhost:{port}/blob.bin"
    code, _, err = fetch(site, "/moved.bin", tmp_path / "d", "--allow-hosts", "localhost", "--digest", sha256(BLOB))
    assert code == 0, err
    assert (tmp_path / "d" / "moved.bin").read_bytes() == BLOB


def test_redirect_to_metadata_refused(site: FileServer, tmp_path: Path) -> None:
    site.redirects["/creds"] = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    code, _, err = fetch(site, "/creds", tmp_path / "d")
    assert code == 6, err
    assert "169.254.169.254" in err
    assert not (tmp_path / "d").exists()


def test_redirect_to_unlisted_loopback_name_refused(site: FileServer, tmp_path: Path) -> None:
    site.redirects["/moved.bin"] = f"http://localhost:{site.server_address[1]}/blob.bin"
    code, _, err = fetch(site, "/moved.bin", tmp_path / "d")
    assert code == 6, err


def test_credentials_never_printed(site: FileServer, tmp_path: Path) -> None:
    uri = (
        site.url.replace("http://", "http://alice:s3cr3tpass@")
        + "/nope.bin?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIAXYZ"
    )
    p = run_loader("fetch", "--uri", uri, "--dest", str(tmp_path / "d"), *ALLOW)
    assert p.returncode == 3, p.stderr
    assert "404" in p.stderr
    for secret in ("s3cr3tpass", "alice", "abcdef0123", "AKIAXYZ"):
        assert secret not in p.stderr + p.stdout


def test_two_loaders_race_on_one_cache(site: FileServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    codes: list[int] = []

    def one(i: int) -> None:
        p = run_loader(
            "fetch", "--uri", site.url + "/blob.bin", "--dest", str(tmp_path / f"d{i}"), *ALLOW,
            "--digest", sha256(BLOB), "--cache", str(cache),
        )  # fmt: skip
        codes.append(p.returncode)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [0, 0]
    for i in range(2):
        assert file_digest(tmp_path / f"d{i}" / "blob.bin") == sha256(BLOB)
    entry = cache / "sha256" / sha256(BLOB).split(":")[1]
    index = json.loads((entry / "index.json").read_text())
    assert index["files"] == {"blob.bin": sha256(BLOB).split(":")[1]}
    assert file_digest(entry / "tree" / "blob.bin") == sha256(BLOB)
    assert list((cache / "tmp").iterdir()) == []
    full_gets = [h for _, _, h in site.requests if h.get("Range") == "bytes=0-0"]
    assert len(full_gets) == 1, "the second loader should have waited for the first and hit the cache"
    # a hit needs no server at all: a URI that 404s still publishes from the cache, verified
    p = run_loader(
        "fetch", "--uri", site.url + "/gone.bin", "--dest", str(tmp_path / "d3"), *ALLOW,
        "--digest", sha256(BLOB), "--cache", str(cache), "--cache-verify",
    )  # fmt: skip
    assert result(p)["cacheHit"] is True
    assert file_digest(tmp_path / "d3" / "blob.bin") == sha256(BLOB)


def test_corrupted_cache_entry_is_evicted_on_verify(site: FileServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ("--digest", sha256(BLOB), "--cache", str(cache), "--cache-verify")
    assert fetch(site, "/blob.bin", tmp_path / "d1", *args)[0] == 0
    cached = cache / "sha256" / sha256(BLOB).split(":")[1] / "tree" / "blob.bin"
    os.chmod(cached, 0o644)
    with open(cached, "r+b") as f:
        f.seek(100)
        f.write(b"X")
    code, out, err = fetch(site, "/blob.bin", tmp_path / "d2", *args)
    assert code == 0, err
    assert "evicted" in err
    assert json.loads(out)["cacheHit"] is False
    assert file_digest(tmp_path / "d2" / "blob.bin") == sha256(BLOB)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_loader("fetch", "--uri", "ftp://x/y", "--dest", str(tmp_path)).returncode == 2
    assert run_loader("fetch", "--dest", str(tmp_path)).returncode == 2
    assert (
        run_loader("fetch", "--uri", "https://a.example/m", "--dest", str(tmp_path), "--digest", "sha256:1").returncode
        == 2
    )


def test_cache_entry_with_a_missing_file_is_refetched(site: FileServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ("--digest", sha256(BLOB), "--cache", str(cache))
    assert fetch(site, "/blob.bin", tmp_path / "d1", *args)[0] == 0
    (cache / "sha256" / sha256(BLOB).split(":")[1] / "tree" / "blob.bin").unlink()
    code, out, err = fetch(site, "/blob.bin", tmp_path / "d2", *args)
    assert code == 0, err
    assert json.loads(out)["cacheHit"] is False
    assert file_digest(tmp_path / "d2" / "blob.bin") == sha256(BLOB)


def test_an_unusable_cache_only_costs_the_download(site: FileServer, tmp_path: Path) -> None:
    """A node cache the loader cannot write (here a file where the directory should be) is skipped, not fatal."""
    blocked = tmp_path / "cache"
    blocked.write_text("not a directory")
    code, out, err = fetch(site, "/blob.bin", tmp_path / "d", "--digest", sha256(BLOB), "--cache", str(blocked))
    assert code == 0, err
    assert "cannot be used, fetching without it" in err
    assert json.loads(out)["cacheHit"] is False
    assert file_digest(tmp_path / "d" / "blob.bin") == sha256(BLOB)
    assert blocked.read_text() == "not a directory"


def test_tree_digest_matches_the_documented_shell_recipe(tmp_path: Path) -> None:
    import subprocess

    model = tmp_path / "model"
    (model / "1" / "sub dir").mkdir(parents=True)
    (model / "1" / "model.onnx").write_bytes(PLAIN_ONNX)
    (model / "1" / "sub dir" / "Vocab.txt").write_text("a\n")
    (model / "config.yaml").write_text("x: 1\n")
    recipe = "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"
    shell = subprocess.run(["bash", "-c", recipe], cwd=model, capture_output=True, text=True, check=True)
    ours = run_loader("digest", str(model)).stdout.strip()
    assert ours == "sha256:" + shell.stdout.split()[0]
