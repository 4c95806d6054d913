"""A minimal OpenID Connect issuer for tests: a discovery document and a JWKS served over HTTP on 127.0.0.1, and
RS256-signed ID tokens (what a Kubernetes service-account token projected for IRSA is). MinIO's STS trusts it to
answer AssumeRoleWithWebIdentity, so botocore's web identity provider can be tested end to end."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KID = "modelyard-test-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Issuer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def documents(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        jwk = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID, "n": _uint(numbers.n), "e": _uint(numbers.e)}
        discovery = {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        return {"/.well-known/openid-configuration": discovery, "/jwks": {"keys": [jwk]}}

    def token(self, audience: str, subject: str, lifetime: int = 3600) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": KID}
        claims = {"iss": self.url, "aud": audience, "sub": subject, "iat": now, "nbf": now - 5, "exp": now + lifetime}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"


class _Handler(BaseHTTPRequestHandler):
    server: Issuer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        doc = self.server.documents().get(self.path.split("?", 1)[0])
        body = json.dumps(doc).encode() if doc is not None else b"{}"
        self.send_response(200 if doc is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def oidc_issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    thread = threading.Thread(target=issuer.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        issuer.shutdown()
        issuer.server_close()
