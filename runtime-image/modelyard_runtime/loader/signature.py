"""Signature verification in the OpenSSF model-signing format (the ``model_signing`` library).

Three ways to establish trust, all offline: a public key (``--public-key``), a certificate chain
(``--certificate-chain``, PEM files of the signing CA chain), or sigstore keyless (``--sigstore-identity``,
``--sigstore-issuer`` and ``--trust-root``, a sigstore trust configuration / ClientTrustConfig JSON).
Verification runs on the staged tree before anything is published; any failure — a changed byte, an
extra or missing file, the wrong key — raises ``SignatureError`` (exit code 5). We never rely on the
library's own exit status: it raises, and we map the exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelyard_runtime.loader.errors import SignatureError, UsageError


@dataclass
class SignatureOptions:
    uri: str | None = None
    public_key: str | None = None
    certificate_chain: list[str] = field(default_factory=list)
    sigstore_identity: str | None = None
    sigstore_issuer: str | None = None
    trust_root: str | None = None

    def method(self) -> str | None:
        """``key``, ``certificate`` or ``sigstore``; None when no signature is expected."""
        if not self.uri:
            if self.public_key or self.certificate_chain or self.sigstore_identity:
                raise UsageError("--public-key/--certificate-chain/--sigstore-identity need --signature URI")
            return None
        chosen = [
            m
            for m, on in (
                ("key", bool(self.public_key)),
                ("certificate", bool(self.certificate_chain)),
                ("sigstore", bool(self.sigstore_identity or self.sigstore_issuer)),
            )
            if on
        ]
        if len(chosen) != 1:
            raise UsageError(
                "--signature needs exactly one of --public-key, --certificate-chain, "
                "or --sigstore-identity with --sigstore-issuer"
            )
        if chosen[0] == "sigstore" and not (self.sigstore_identity and self.sigstore_issuer):
            raise UsageError("sigstore verification needs both --sigstore-identity and --sigstore-issuer")
        return chosen[0]


def verify(model: Path, signature: Path, opts: SignatureOptions) -> str:
    """Verify ``model`` (a directory or one file) against ``signature``; return the method used."""
    method = opts.method()
    if method is None:
        raise UsageError("no signature options")
    try:
        from model_signing import verifying  # imported late: only signed artifacts pay for it
    except ImportError as e:  # pragma: no cover - a broken install
        raise SignatureError(f"the model_signing library is not installed: {e}") from None
    config = verifying.Config()  # type: ignore[no-untyped-call]
    try:
        if method == "key":
            config.use_elliptic_key_verifier(public_key=Path(str(opts.public_key)))
        elif method == "certificate":
            config.use_certificate_verifier(certificate_chain=[Path(p) for p in opts.certificate_chain])
        else:
            config.use_sigstore_verifier(
                identity=str(opts.sigstore_identity),
                oidc_issuer=str(opts.sigstore_issuer),
                trust_config=Path(opts.trust_root) if opts.trust_root else None,
            )
    except Exception as e:
        hint = ""
        if method == "sigstore" and not opts.trust_root:
            hint = (
                " (without --trust-root the public-good sigstore trust root is fetched over the network;"
                " pass --trust-root FILE to verify offline)"
            )
        raise UsageError(f"cannot use the {method} verification material: {type(e).__name__}: {e}{hint}") from None
    try:
        config.verify(model, signature)
    except Exception as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SignatureError(f"signature verification failed ({method}): {text[:300]}") from None
    return method
