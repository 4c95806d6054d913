"""Keys, a CA with a leaf certificate (made with ``openssl``), and OpenSSF model-signing bundles for tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from model_signing import signing

_EXT = """[ca_ext]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[leaf_ext]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def ec_key(d: Path, name: str) -> tuple[Path, Path]:
    """(private key, public key) PEM files."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
    _openssl("ec", "-in", f"{name}.key", "-pubout", "-out", f"{name}.pub", cwd=d)
    return d / f"{name}.key", d / f"{name}.pub"


def ca_and_leaf(d: Path, name: str) -> tuple[Path, Path, Path]:
    """(CA certificate, leaf key, leaf certificate) PEM files; the leaf is issued by the CA."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "ext.cnf").write_text(_EXT)
    ec_key(d, f"{name}-ca")
    _openssl("req", "-x509", "-new", "-key", f"{name}-ca.key", "-subj", f"/CN={name} CA", "-days", "2",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", f"{name}-ca.pem", cwd=d)  # fmt: skip
    ec_key(d, f"{name}-leaf")
    _openssl("req", "-new", "-key", f"{name}-leaf.key", "-subj", f"/CN={name} signer", "-out", f"{name}.csr", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.pem", "-CAkey", f"{name}-ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-extensions", "leaf_ext",
             "-out", f"{name}-leaf.pem", cwd=d)  # fmt: skip
    return d / f"{name}-ca.pem", d / f"{name}-leaf.key", d / f"{name}-leaf.pem"


def sign_with_key(model: Path, signature: Path, private_key: Path) -> None:
    signing.Config().use_elliptic_key_signer(private_key=private_key).sign(model, signature)


def sign_with_certificate(model: Path, signature: Path, key: Path, cert: Path, chain: list[Path]) -> None:
    signing.Config().use_certificate_signer(private_key=key, signing_certificate=cert, certificate_chain=chain).sign(
        model, signature
    )
