"""A tiny, offline sigstore instance for tests of keyless verification.

It plays the three public services a keyless signature depends on, with keys made per test session:

- **Fulcio**: a root CA (EC P-256) that issues short-lived leaf certificates with the sigstore profile
  (empty subject, critical SAN with the identity e-mail or URI, ``digitalSignature``, ``codeSigning``,
  the OIDC issuer in extensions 1.3.6.1.4.1.57264.1.1 (raw) and 1.3.6.1.4.1.57264.1.8 (DER UTF8String));
- **CT log**: every leaf carries one embedded SCT (RFC 6962 precertificate entry) signed by the CT key;
- **Rekor (v1)**: a ``dsse`` 0.0.1 entry for the DSSE envelope, placed in a Merkle tree of several
  entries (RFC 6962 leaf/node hashes) with an inclusion proof, a checkpoint (signed note) over the root,
  and a signed entry timestamp (the inclusion promise) that binds the integrated time.

``trust_config`` writes the ClientTrustConfig JSON (trusted root + signing config) that sigstore-python
reads from ``--trust-root``. The model itself is hashed and the in-toto statement DSSE-signed by the
``model_signing`` library (its elliptic-key signer, with the leaf's key); this module only wraps that
envelope into a sigstore bundle (v0.3) with the certificate and log entry. Nothing here talks to a network.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from model_signing import signing

OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
P256 = "PKIX_ECDSA_P256_SHA_256"


def _utc(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 log ID: the SHA-256 of the DER SubjectPublicKeyInfo."""
    return hashlib.sha256(_spki(key)).digest()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """CAs sign certificates and CRLs; leaves only sign (Fulcio's ``digitalSignature``)."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


# ---- RFC 6962 Merkle tree ---------------------------------------------------------------------


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return _leaf_hash(leaves[0])
    k = _split(len(leaves))
    return _node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` (RFC 6962 section 2.1.1), from the leaf upwards."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), merkle_root(leaves[:k])]


# ---- the instance -----------------------------------------------------------------------------


@dataclass
class Leaf:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@dataclass
class LocalSigstore:
    """Fulcio root, CT log key and Rekor log key of one made-up sigstore instance."""

    name: str = "modelyard-test"
    ca_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    ct_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    rekor_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    epoch: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(microsecond=0))
    ca_cert: x509.Certificate = field(init=False)
    log_index_base: int = 1000

    def __post_init__(self) -> None:
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.name),
            x509.NameAttribute(NameOID.COMMON_NAME, "fulcio"),
        ])  # fmt: skip
        ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.epoch - dt.timedelta(days=30))
            .not_valid_after(self.epoch + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    # -- Fulcio + CT ----------------------------------------------------------------------------

    def issue(self, identity: str, issuer: str, *, not_before: dt.datetime | None = None,
              lifetime: dt.timedelta = dt.timedelta(minutes=10)) -> Leaf:  # fmt: skip
        """A Fulcio-style leaf for ``identity`` (an e-mail, or a URI when it contains ``://``)."""
        start = (not_before or self.epoch - dt.timedelta(minutes=1)).replace(microsecond=0)
        key = ec.generate_private_key(ec.SECP256R1())
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity) if "://" in identity else x509.RFC822Name(identity)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_OID, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2_OID, _der(0x0C, issuer.encode())), critical=False)
        )
        # The precertificate is this certificate without the SCT list: the CT log signs its TBS.
        precert_tbs = builder.sign(self.ca_key, hashes.SHA256()).tbs_certificate_bytes
        sct = self._sct(precert_tbs, timestamp_ms=int(start.timestamp()) * 1000)
        sct_list = struct.pack(">H", len(sct)) + sct
        sct_ext = _der(0x04, struct.pack(">H", len(sct_list)) + sct_list)
        cert = builder.add_extension(x509.UnrecognizedExtension(SCT_LIST_OID, sct_ext), critical=False).sign(
            self.ca_key, hashes.SHA256()
        )
        assert cert.tbs_precertificate_bytes == precert_tbs, "the SCT must cover the certificate without it"
        return Leaf(key, cert)

    def _sct(self, precert_tbs: bytes, *, timestamp_ms: int) -> bytes:
        """One serialized SCT (RFC 6962 section 3.2) over a precertificate entry."""
        issuer_key_hash = key_id(self.ca_key.public_key())
        signed = (
            struct.pack(">BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, timestamp, precert_entry
            + issuer_key_hash + _u24(len(precert_tbs)) + precert_tbs
            + struct.pack(">H", 0)  # no extensions
        )  # fmt: skip
        sig = _sign(self.ct_key, signed)
        log_id = key_id(self.ct_key.public_key())
        return (
            struct.pack(">B", 0) + log_id + struct.pack(">QH", timestamp_ms, 0)
            + struct.pack(">BBH", 4, 3, len(sig)) + sig  # sha256, ecdsa
        )  # fmt: skip

    # -- Rekor ----------------------------------------------------------------------------------

    def log_entry(self, envelope: dict[str, Any], cert: x509.Certificate, integrated_time: int) -> dict[str, Any]:
        """A Rekor v1 ``dsse`` entry for ``envelope`` in a log of several entries, with proof and promise."""
        payload = base64.b64decode(envelope["payload"])
        body = rfc8785.dumps({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256",
                                 "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest()},
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                "signatures": [
                    {"signature": _b64(base64.b64decode(s["sig"])),
                     "verifier": _b64(cert.public_bytes(serialization.Encoding.PEM))}
                    for s in envelope["signatures"]
                ],
            },
        })  # fmt: skip
        # Our entry sits at position 5 of a 7-entry tree, so the proof has inner and border hashes.
        position, size = 5, 7
        leaves = [f"other entry {i}".encode() for i in range(size)]
        leaves[position] = body
        root = merkle_root(leaves)
        log_id = key_id(self.rekor_key.public_key())
        log_index = self.log_index_base + position
        # As in Rekor, the entry's log index is global and the proof's index is within the current tree.
        note = f"{self.name}-rekor - 4242\n{size}\n{_b64(root)}\n"
        note_sig = _b64(log_id[:4] + _sign(self.rekor_key, note.encode()))
        checkpoint = f"{note}\n\u2014 {self.name}-rekor {note_sig}\n"
        promise = rfc8785.dumps({
            "body": _b64(body),
            "integratedTime": integrated_time,
            "logID": log_id.hex(),
            "logIndex": log_index,
        })  # fmt: skip
        return {
            "logIndex": str(log_index),
            "logId": {"keyId": _b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.rekor_key, promise))},
            "inclusionProof": {
                "logIndex": str(position),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in inclusion_path(position, leaves)],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }

    # -- signing --------------------------------------------------------------------------------

    def sign(self, model: Path, signature: Path, leaf: Leaf, *, integrated_time: dt.datetime | None = None) -> None:
        """Sign ``model`` as ``leaf``'s holder and write a sigstore bundle to ``signature``.

        ``integrated_time`` is the log's time for the entry (default: one minute into the leaf's validity).
        """
        when = integrated_time or leaf.cert.not_valid_before_utc + dt.timedelta(minutes=1)
        with tempfile.TemporaryDirectory() as tmp:
            key_file = Path(tmp) / "leaf.key"
            key_file.write_bytes(
                leaf.key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            signer = signing.Config().use_elliptic_key_signer(private_key=key_file)  # type: ignore[no-untyped-call]
            signer.sign(model, Path(tmp) / "key.sig")
            envelope = json.loads((Path(tmp) / "key.sig").read_text())["dsseEnvelope"]
        envelope = {
            "payload": envelope["payload"],
            "payloadType": envelope["payloadType"],
            "signatures": [{"sig": s["sig"]} for s in envelope["signatures"]],
        }
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(leaf.cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [self.log_entry(envelope, leaf.cert, int(when.timestamp()))],
            },
            "dsseEnvelope": envelope,
        }
        signature.write_text(json.dumps(bundle, indent=2))

    # -- trust root -----------------------------------------------------------------------------

    def trust_config(self, path: Path, *, ca: x509.Certificate | None = None,
                     rekor_key: ec.EllipticCurvePublicKey | None = None,
                     ct_key: ec.EllipticCurvePublicKey | None = None) -> Path:  # fmt: skip
        """Write the ClientTrustConfig JSON for this instance (parts replaceable to build wrong roots)."""
        ca = ca or self.ca_cert
        rekor = rekor_key or self.rekor_key.public_key()
        ct = ct_key or self.ct_key.public_key()
        start = _utc(self.epoch - dt.timedelta(days=30))

        def log(url: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": _b64(_spki(key)), "keyDetails": P256, "validFor": {"start": start}},
                "logId": {"keyId": _b64(key_id(key))},
            }

        def service(url: str) -> dict[str, Any]:
            return {"url": url, "majorApiVersion": 1, "validFor": {"start": start}, "operator": self.name}

        config = {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [log("https://rekor.invalid", rekor)],
                "certificateAuthorities": [{
                    "subject": {"organization": self.name, "commonName": "fulcio"},
                    "uri": "https://fulcio.invalid",
                    "certChain": {"certificates": [{"rawBytes": _b64(ca.public_bytes(serialization.Encoding.DER))}]},
                    "validFor": {"start": start},
                }],
                "ctlogs": [log("https://ctfe.invalid/test", ct)],
                "timestampAuthorities": [],
            },
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service("https://fulcio.invalid")],
                "oidcUrls": [service("https://oauth2.invalid")],
                "rekorTlogUrls": [service("https://rekor.invalid")],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaUrls": [],
            },
        }  # fmt: skip
        path.write_text(json.dumps(config, indent=2))
        return path
