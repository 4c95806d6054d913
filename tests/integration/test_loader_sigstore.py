"""Sigstore keyless signatures, verified offline by ``modelyard-loader`` from a supplied trust root.

``support.sigstore_fixture.LocalSigstore`` is a made-up sigstore instance (Fulcio root, CT log, Rekor log)
whose bundles go through sigstore-python's full verifier unchanged: certificate chain at the log's time,
embedded SCT, identity and issuer, Merkle inclusion proof, signed checkpoint and inclusion promise, DSSE
signature, and the log body's consistency with the envelope. The loader runs as a subprocess with every
proxy variable pointing at a closed port and an empty HOME (no TUF cache), so any network access fails.
Every failure must exit 5 and publish nothing (issue 4, checklist item 3).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from support.loader import PLAIN_ONNX, leftovers, result, run_loader
from support.sigstore_fixture import Leaf, LocalSigstore

SIGNATURE_FAILED = 5
IDENTITY = "release-bot@models.example.com"
ISSUER = "https://accounts.example.com"
WORKFLOW = "https://git.example.com/acme/models/.ci/release.yml@refs/heads/main"


@pytest.fixture(scope="module")
def sigstore() -> LocalSigstore:
    return LocalSigstore()


@pytest.fixture(scope="module")
def leaf(sigstore: LocalSigstore) -> Leaf:
    return sigstore.issue(IDENTITY, ISSUER)


@pytest.fixture(scope="module")
def trust_root(sigstore: LocalSigstore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore.trust_config(tmp_path_factory.mktemp("trust") / "trust_root.json")


def make_model(root: Path) -> Path:
    model = root / "model"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.onnx").write_bytes(PLAIN_ONNX)
    (model / "1" / "labels.txt").write_text("cat\ndog\n")
    (model / "config.yaml").write_text("batching: {maxBatchSize: 8}\n")
    return model


@pytest.fixture
def signed(tmp_path: Path, sigstore: LocalSigstore, leaf: Leaf) -> tuple[Path, Path]:
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    sigstore.sign(model, sig, leaf)
    return model, sig


def fetch(model: Path, sig: Path, dest: Path, trust_root: Path | None, identity: str = IDENTITY,
          issuer: str = ISSUER) -> subprocess.CompletedProcess[str]:  # fmt: skip
    trust = ["--trust-root", str(trust_root)] if trust_root else []
    closed = "http://127.0.0.1:9"  # discard port: nothing listens, any request through a proxy fails
    offline = {"HOME": str(dest.parent / "home"), "HTTPS_PROXY": closed, "HTTP_PROXY": closed,
               "https_proxy": closed, "http_proxy": closed, "ALL_PROXY": closed, "NO_PROXY": ""}  # fmt: skip
    return run_loader("fetch", "--uri", str(model), "--dest", str(dest), "--allow-file", "--signature", str(sig),
                      "--sigstore-identity", identity, "--sigstore-issuer", issuer, *trust, env=offline)  # fmt: skip


def assert_rejected(p: subprocess.CompletedProcess[str], dest: Path, *needles: str) -> None:
    assert p.returncode == SIGNATURE_FAILED, p.stderr
    assert "signature verification failed (sigstore)" in p.stderr
    for needle in needles:
        assert needle in p.stderr, p.stderr
    assert not dest.exists()
    assert leftovers(dest.parent, dest.name) == []


def test_keyless_signature_verifies_offline(signed: tuple[Path, Path], trust_root: Path, tmp_path: Path) -> None:
    model, sig = signed
    p = fetch(model, sig, tmp_path / "d", trust_root)
    assert result(p)["signature"] == {"verified": True, "method": "sigstore"}
    assert (tmp_path / "d" / "1" / "model.onnx").read_bytes() == PLAIN_ONNX
    assert (tmp_path / "d" / "1" / "labels.txt").read_text() == "cat\ndog\n"


def test_wrong_identity(signed: tuple[Path, Path], trust_root: Path, tmp_path: Path) -> None:
    model, sig = signed
    p = fetch(model, sig, tmp_path / "d", trust_root, identity="someone-else@models.example.com")
    assert_rejected(p, tmp_path / "d", "SANs do not match")


def test_wrong_issuer(signed: tuple[Path, Path], trust_root: Path, tmp_path: Path) -> None:
    model, sig = signed
    p = fetch(model, sig, tmp_path / "d", trust_root, issuer="https://token.actions.example.org")
    assert_rejected(p, tmp_path / "d", "OIDCIssuer does not match")


def test_tampered_byte(signed: tuple[Path, Path], trust_root: Path, tmp_path: Path) -> None:
    model, sig = signed
    (model / "1" / "labels.txt").write_text("cat\ndoh\n")
    assert_rejected(fetch(model, sig, tmp_path / "d", trust_root), tmp_path / "d", "labels.txt")


def test_extra_file(signed: tuple[Path, Path], trust_root: Path, tmp_path: Path) -> None:
    model, sig = signed
    (model / "1" / "extra.onnx").write_bytes(PLAIN_ONNX)
    assert_rejected(fetch(model, sig, tmp_path / "d", trust_root), tmp_path / "d")


@pytest.mark.parametrize(
    ("replace", "why"),
    [
        ("ca", "certificate chain"),  # a trust root whose Fulcio CA is another instance's
        ("rekor_key", "invalid log entry"),  # the log entry is not signed by a trusted Rekor
        ("ct_key", "SCT"),  # the certificate's SCT is not from a trusted CT log
    ],
)
def test_trust_root_without_our_keys(signed: tuple[Path, Path], sigstore: LocalSigstore, tmp_path: Path,
                                     replace: str, why: str) -> None:  # fmt: skip
    model, sig = signed
    other = LocalSigstore(name="other")
    path = tmp_path / "wrong.json"
    if replace == "ca":
        wrong = sigstore.trust_config(path, ca=other.ca_cert)
    elif replace == "rekor_key":
        wrong = sigstore.trust_config(path, rekor_key=other.rekor_key.public_key())
    else:
        wrong = sigstore.trust_config(path, ct_key=other.ct_key.public_key())
    assert_rejected(fetch(model, sig, tmp_path / "d", wrong), tmp_path / "d", why)


def test_certificate_from_an_untrusted_fulcio(sigstore: LocalSigstore, trust_root: Path, tmp_path: Path) -> None:
    """A rogue CA issues the right identity and issuer; the log entry is even genuine: still rejected."""
    rogue = LocalSigstore(name="rogue", ct_key=sigstore.ct_key, rekor_key=sigstore.rekor_key)
    model = make_model(tmp_path)
    rogue.sign(model, tmp_path / "model.sig", rogue.issue(IDENTITY, ISSUER))
    assert_rejected(fetch(model, tmp_path / "model.sig", tmp_path / "d", trust_root), tmp_path / "d", "chain")


def test_short_lived_certificate_is_checked_at_the_log_time(sigstore: LocalSigstore, trust_root: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """Fulcio certificates live ten minutes: one that expired hours ago verifies, because the log's
    integrated time falls inside its validity; a log time after it expired does not."""
    old = sigstore.issue(IDENTITY, ISSUER, not_before=sigstore.epoch - dt.timedelta(hours=3))
    assert old.cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    model = make_model(tmp_path)
    sigstore.sign(model, tmp_path / "ok.sig", old)
    assert fetch(model, tmp_path / "ok.sig", tmp_path / "d1", trust_root).returncode == 0
    late = old.cert.not_valid_after_utc + dt.timedelta(minutes=1)
    sigstore.sign(model, tmp_path / "late.sig", old, integrated_time=late)
    assert_rejected(fetch(model, tmp_path / "late.sig", tmp_path / "d2", trust_root), tmp_path / "d2",
                    "not valid at validation time")  # fmt: skip


def test_workflow_uri_identity(sigstore: LocalSigstore, trust_root: Path, tmp_path: Path) -> None:
    """CI identities are URIs in the SAN (e.g. a workflow path and ref), not e-mail addresses."""
    model = make_model(tmp_path)
    sigstore.sign(model, tmp_path / "model.sig", sigstore.issue(WORKFLOW, ISSUER))
    p = fetch(model, tmp_path / "model.sig", tmp_path / "d", trust_root, identity=WORKFLOW)
    assert result(p)["signature"]["method"] == "sigstore"
    p = fetch(model, tmp_path / "model.sig", tmp_path / "d2", trust_root, identity=WORKFLOW + "x")
    assert_rejected(p, tmp_path / "d2", "SANs do not match")


@pytest.mark.parametrize(
    ("field", "why"),
    [("integratedTime", "invalid inclusion promise"), ("canonicalizedBody", "inclusion proof"), ("envelope", "DSSE")],
)
def test_forged_bundle(signed: tuple[Path, Path], trust_root: Path, tmp_path: Path, field: str, why: str) -> None:
    """Changing the log's time, the logged body, or the signed envelope breaks the bundle."""
    model, sig = signed
    bundle = json.loads(sig.read_text())
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    if field == "integratedTime":  # one second later: the inclusion promise no longer matches
        entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
    elif field == "canonicalizedBody":  # the same JSON with one more space: the inclusion proof fails
        body = base64.b64decode(entry["canonicalizedBody"]).replace(b'"kind":"dsse"', b'"kind": "dsse"')
        entry["canonicalizedBody"] = base64.b64encode(body).decode()
    else:  # a re-signed payload by a key that is not the certificate's: the DSSE check fails
        bundle["dsseEnvelope"]["payload"] = bundle["dsseEnvelope"]["payload"][:-8] + "AAAAAAAA"
    sig.write_text(json.dumps(bundle))
    assert_rejected(fetch(model, sig, tmp_path / "d", trust_root), tmp_path / "d", why)


def test_unreadable_trust_root_is_a_usage_error(signed: tuple[Path, Path], tmp_path: Path) -> None:
    model, sig = signed
    (tmp_path / "bad.json").write_text('{"mediaType": "nonsense"}')
    for trust in (tmp_path / "bad.json", tmp_path / "missing.json"):
        p = fetch(model, sig, tmp_path / "d", trust)
        assert p.returncode == 2, p.stderr
        assert "cannot use the sigstore verification material" in p.stderr
        assert not (tmp_path / "d").exists()


def test_without_trust_root_and_network_the_error_says_so(signed: tuple[Path, Path], tmp_path: Path) -> None:
    """Without --trust-root the library would fetch the public-good root; offline that fails clearly."""
    model, sig = signed
    p = fetch(model, sig, tmp_path / "d", None)
    assert p.returncode == 2, p.stderr
    assert "pass --trust-root FILE to verify offline" in p.stderr
    assert not (tmp_path / "d").exists()
