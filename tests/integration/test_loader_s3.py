"""``s3://`` against a real S3-compatible server process (moto's standalone server), through the loader's
own SigV4 client: single objects (ranged, parallel), prefixes (ListObjectsV2, several pages), archives,
credentials from the environment or a mounted secret directory, tampering, unsafe object names."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.loader import PLAIN_ONNX, file_digest, result, run_loader, sha256, tar_bytes
from support.s3server import S3Server, moto_server

BIG = os.urandom(20 * 1024 * 1024 + 3)
ENV = {"AWS_ACCESS_KEY_ID": "AKIDTESTONLY", "AWS_SECRET_ACCESS_KEY": "secret-test-only", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server() as srv:
        srv.create_bucket("models")
        srv.put("models", "fraud/42/model.onnx", PLAIN_ONNX)
        srv.put("models", "big/weights.bin", BIG)
        srv.put("models", "dir/1/a.bin", b"A" * 1000)
        srv.put("models", "dir/1/sub/b.bin", b"B" * 2000)
        srv.put("models", "dir/1/sub/c d+e.txt", b"space and plus")
        srv.put("models", "arch/m.tar.gz", tar_bytes([("model/w.bin", b"w" * 10)]))
        srv.put("models", "evil/..\\x", b"x")
        for i in range(1005):  # more than one ListObjectsV2 page (1000 keys)
            srv.put("models", f"many/f{i:04d}.bin", str(i).encode())
        yield srv


def s3_fetch(s3: S3Server, uri: str, dest: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    p = run_loader(
        "fetch", "--uri", uri, "--dest", str(dest), "--s3-endpoint", s3.endpoint, "--allow-hosts", "127.0.0.1",
        *extra, env=ENV if env is None else env,
    )  # fmt: skip
    return p.returncode, p.stderr if p.returncode else p.stdout


def test_big_object_parallel_ranged(s3: S3Server, tmp_path: Path) -> None:
    code, out = s3_fetch(s3, "s3://models/big/weights.bin", tmp_path / "d", "--digest", sha256(BIG), "--parallel", "4")
    assert code == 0, out
    assert file_digest(tmp_path / "d" / "weights.bin") == sha256(BIG)


def test_tampered_digest_fails_closed(s3: S3Server, tmp_path: Path) -> None:
    code, err = s3_fetch(s3, "s3://models/big/weights.bin", tmp_path / "d", "--digest", sha256(b"x"))
    assert code == 4, err
    assert not (tmp_path / "d").exists()


def test_prefix_as_directory_with_tree_digest(s3: S3Server, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    (ref / "sub").mkdir(parents=True)
    (ref / "a.bin").write_bytes(b"A" * 1000)
    (ref / "sub" / "b.bin").write_bytes(b"B" * 2000)
    (ref / "sub" / "c d+e.txt").write_bytes(b"space and plus")
    digest = run_loader("digest", str(ref)).stdout.strip()
    for i, uri in enumerate(("s3://models/dir/1/", "s3://models/dir/1")):
        dest = tmp_path / f"d{i}"
        code, out = s3_fetch(s3, uri, dest, "--digest", digest)
        assert code == 0, out
        assert (dest / "sub" / "c d+e.txt").read_bytes() == b"space and plus"
        assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["a.bin", "b.bin", "c d+e.txt"]


def test_prefix_listing_spans_pages(s3: S3Server, tmp_path: Path) -> None:
    code, out = s3_fetch(s3, "s3://models/many/", tmp_path / "d")
    assert code == 0, out
    assert len(list((tmp_path / "d").iterdir())) == 1005


def test_archive_object_is_extracted(s3: S3Server, tmp_path: Path) -> None:
    code, out = s3_fetch(s3, "s3://models/arch/m.tar.gz", tmp_path / "d")
    assert code == 0, out
    assert (tmp_path / "d" / "model" / "w.bin").read_bytes() == b"w" * 10


def test_credentials_from_a_mounted_secret_dir(s3: S3Server, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "accessKeyId").write_text("AKIDFROMFILE\n")
    (secret / "secretAccessKey").write_text("file-secret\n")
    code, out = s3_fetch(
        s3, "s3://models/fraud/42/model.onnx", tmp_path / "d", "--credentials-dir", str(secret), env={}
    )
    assert code == 0, out
    assert result_file(tmp_path / "d") == ["model.onnx"]


def result_file(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_missing_object_names_the_uri_without_secrets(s3: S3Server, tmp_path: Path) -> None:
    code, err = s3_fetch(s3, "s3://models/nope/model.onnx", tmp_path / "d")
    assert code == 3, err
    assert "s3://models/nope/model.onnx" in err
    assert "secret-test-only" not in err
    assert "AKIDTESTONLY" not in err


def test_endpoint_from_environment(s3: S3Server, tmp_path: Path) -> None:
    p = run_loader(
        "fetch", "--uri", "s3://models/fraud/42/model.onnx", "--dest", str(tmp_path / "d"),
        env={**ENV, "AWS_ENDPOINT_URL": s3.endpoint, "MODELYARD_LOADER_ALLOW_HOSTS": "127.0.0.1"},
    )  # fmt: skip
    assert result(p)["kind"] == "file"


def test_endpoint_on_loopback_needs_the_allowlist(s3: S3Server, tmp_path: Path) -> None:
    p = run_loader(
        "fetch", "--uri", "s3://models/fraud/42/model.onnx", "--dest", str(tmp_path / "d"),
        "--s3-endpoint", s3.endpoint, env=ENV,
    )  # fmt: skip
    assert p.returncode == 6, p.stderr


def test_unsafe_object_names_below_a_prefix_refused(s3: S3Server, tmp_path: Path) -> None:
    code, err = s3_fetch(s3, "s3://models/evil/", tmp_path / "d")
    assert code == 6, err
    assert "refused object name" in err
    assert not (tmp_path / "d").exists()
