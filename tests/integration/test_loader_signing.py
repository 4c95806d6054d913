"""Signatures in the OpenSSF model-signing format, verified by the loader before anything is published:
a public key, a certificate chain (CA + leaf made with openssl), signatures inside the artifact, single
files, and over HTTP. Every failure must exit with code 5 and publish nothing (checklist items 1–3)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.httpserver import FileServer, serve
from support.loader import PLAIN_ONNX, result, run_loader, tar_bytes
from support.signing import ca_and_leaf, ec_key, sign_with_certificate, sign_with_key

SIGNATURE_FAILED = 5


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    priv, pub = ec_key(d, "signer")
    _, other_pub = ec_key(d, "other")
    ca, leaf_key, leaf = ca_and_leaf(d, "good")
    other_ca, _, _ = ca_and_leaf(d, "rogue")
    return {"priv": priv, "pub": pub, "other_pub": other_pub, "ca": ca, "leaf_key": leaf_key, "leaf": leaf,
            "other_ca": other_ca}  # fmt: skip


def make_model(root: Path) -> Path:
    model = root / "model"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.onnx").write_bytes(PLAIN_ONNX)
    (model / "config.yaml").write_text("batching: {maxBatchSize: 8}\n")
    (model / "1" / "vocab.txt").write_text("a\nb\n")
    return model


@pytest.fixture
def signed(tmp_path: Path, keys: dict[str, Path]) -> tuple[Path, Path]:
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    sign_with_key(model, sig, keys["priv"])
    return model, sig


def fetch_signed(model: Path, sig: Path, dest: Path, *trust: str) -> tuple[int, str]:
    p = run_loader("fetch", "--uri", str(model), "--dest", str(dest), "--allow-file", "--signature", str(sig), *trust)
    return p.returncode, p.stderr if p.returncode else p.stdout


def test_key_signature_verifies(signed: tuple[Path, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    model, sig = signed
    p = run_loader("fetch", "--uri", str(model), "--dest", str(tmp_path / "d"), "--allow-file",
                   "--signature", str(sig), "--public-key", str(keys["pub"]))  # fmt: skip
    assert result(p)["signature"] == {"verified": True, "method": "key"}
    assert (tmp_path / "d" / "1" / "model.onnx").read_bytes() == PLAIN_ONNX


def test_tampered_byte(signed: tuple[Path, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    model, sig = signed
    (model / "1" / "vocab.txt").write_text("a\nc\n")
    code, err = fetch_signed(model, sig, tmp_path / "d", "--public-key", str(keys["pub"]))
    assert code == SIGNATURE_FAILED, err
    assert "vocab.txt" in err
    assert not (tmp_path / "d").exists()


def test_extra_unsigned_file(signed: tuple[Path, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    model, sig = signed
    (model / "1" / "extra.onnx").write_bytes(PLAIN_ONNX)
    code, err = fetch_signed(model, sig, tmp_path / "d", "--public-key", str(keys["pub"]))
    assert code == SIGNATURE_FAILED, err
    assert not (tmp_path / "d").exists()


def test_deleted_file(signed: tuple[Path, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    model, sig = signed
    (model / "config.yaml").unlink()
    code, err = fetch_signed(model, sig, tmp_path / "d", "--public-key", str(keys["pub"]))
    assert code == SIGNATURE_FAILED, err
    assert not (tmp_path / "d").exists()


def test_wrong_key(signed: tuple[Path, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    model, sig = signed
    code, err = fetch_signed(model, sig, tmp_path / "d", "--public-key", str(keys["other_pub"]))
    assert code == SIGNATURE_FAILED, err
    assert not (tmp_path / "d").exists()


def test_garbage_signature(signed: tuple[Path, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    model, sig = signed
    sig.write_text("{not a bundle")
    code, err = fetch_signed(model, sig, tmp_path / "d", "--public-key", str(keys["pub"]))
    assert code == SIGNATURE_FAILED, err


def test_certificate_chain(tmp_path: Path, keys: dict[str, Path]) -> None:
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    sign_with_certificate(model, sig, keys["leaf_key"], keys["leaf"], [keys["ca"]])
    code, out = fetch_signed(model, sig, tmp_path / "ok", "--certificate-chain", str(keys["ca"]))
    assert code == 0, out
    code, err = fetch_signed(model, sig, tmp_path / "bad", "--certificate-chain", str(keys["other_ca"]))
    assert code == SIGNATURE_FAILED, err
    assert not (tmp_path / "bad").exists()


def test_signature_stored_inside_the_artifact(tmp_path: Path, keys: dict[str, Path]) -> None:
    model = make_model(tmp_path)
    sign_with_key(model, tmp_path / "model.sig", keys["priv"])
    shutil.move(tmp_path / "model.sig", model / "model.sig")
    code, out = fetch_signed(model, model / "model.sig", tmp_path / "d", "--public-key", str(keys["pub"]))
    assert code == 0, out
    assert (tmp_path / "d" / "model.sig").exists()


def test_single_file_artifact(tmp_path: Path, keys: dict[str, Path]) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(PLAIN_ONNX)
    sign_with_key(f, tmp_path / "model.sig", keys["priv"])
    code, out = fetch_signed(f, tmp_path / "model.sig", tmp_path / "d", "--public-key", str(keys["pub"]))
    assert code == 0, out
    f.write_bytes(PLAIN_ONNX.replace(b"Identity", b"Identitz"))  # still well-formed, one byte changed
    code, err = fetch_signed(f, tmp_path / "model.sig", tmp_path / "d2", "--public-key", str(keys["pub"]))
    assert code == SIGNATURE_FAILED, err


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FileServer]:
    (tmp_path / "site").mkdir()
    with serve(tmp_path / "site") as srv:
        yield srv


def test_archive_over_http_with_signature_and_cache(site: FileServer, tmp_path: Path, keys: dict[str, Path]) -> None:
    model = make_model(tmp_path)
    sign_with_key(model, site.root / "model.sig", keys["priv"])
    files = [(str(p.relative_to(model)), p.read_bytes()) for p in sorted(model.rglob("*")) if p.is_file()]
    (site.root / "model.tar.gz").write_bytes(tar_bytes(files))
    digest = run_loader("digest", str(site.root / "model.tar.gz")).stdout.strip()
    args = ["--allow-hosts", "127.0.0.1", "--signature", site.url + "/model.sig", "--public-key", str(keys["pub"]),
            "--digest", digest, "--cache", str(tmp_path / "cache")]  # fmt: skip
    p = run_loader("fetch", "--uri", site.url + "/model.tar.gz", "--dest", str(tmp_path / "d1"), *args)
    assert result(p)["signature"]["verified"] is True
    # a cache hit is verified again against the signature, and the wrong key still fails
    p = run_loader("fetch", "--uri", site.url + "/model.tar.gz", "--dest", str(tmp_path / "d2"), *args)
    assert result(p)["cacheHit"] is True
    bad = [a if a != str(keys["pub"]) else str(keys["other_pub"]) for a in args]
    p = run_loader("fetch", "--uri", site.url + "/model.tar.gz", "--dest", str(tmp_path / "d3"), *bad)
    assert p.returncode == SIGNATURE_FAILED, p.stderr
    assert not (tmp_path / "d3").exists()


@pytest.mark.parametrize(
    "trust",
    [
        (),  # --signature without any trust material
        ("--sigstore-identity", "ci@example.com"),  # identity without issuer
        ("--public-key", "k.pub", "--certificate-chain", "ca.pem"),  # two methods at once
    ],
)
def test_signature_usage_errors(signed: tuple[Path, Path], tmp_path: Path, trust: tuple[str, ...]) -> None:
    model, sig = signed
    code, _ = fetch_signed(model, sig, tmp_path / "d", *trust)
    assert code == 2


def test_trust_material_without_signature_is_a_usage_error(tmp_path: Path, keys: dict[str, Path]) -> None:
    p = run_loader("fetch", "--uri", "https://models.example.com/m.onnx", "--dest", str(tmp_path / "d"),
                   "--public-key", str(keys["pub"]))  # fmt: skip
    assert p.returncode == 2
