"""AWS Signature Version 4 for S3 requests (pure: strings, hashlib and hmac; the clock is a parameter).

Signs ``host``, ``range`` and every ``x-amz-*`` header; the payload hash is that of the (empty) body of
the GET/HEAD requests the loader sends.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, quote, unquote, urlsplit

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print a secret, even in a traceback
        return f"Credentials(access_key={self.access_key[:4]}…, secret_key=***)"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    creds: Credentials,
    *,
    region: str,
    now: datetime,
    service: str = "s3",
    payload_hash: str = EMPTY_SHA256,
) -> dict[str, str]:
    """``headers`` plus ``x-amz-date``, ``x-amz-content-sha256``, the session token and ``Authorization``."""
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    out = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_hash
    if creds.session_token:
        out["x-amz-security-token"] = creds.session_token
    host = parts.netloc
    if (parts.scheme == "http" and host.endswith(":80")) or (parts.scheme == "https" and host.endswith(":443")):
        host = host.rsplit(":", 1)[0]
    to_sign = {"host": host}
    for k, v in out.items():
        lk = k.lower()
        if lk.startswith("x-amz-") or lk == "range":
            to_sign[lk] = " ".join(v.strip().split())
    names = sorted(to_sign)
    canonical_headers = "".join(f"{n}:{to_sign[n]}\n" for n in names)
    signed_headers = ";".join(names)
    canonical_uri = quote(unquote(parts.path or "/"), safe="/-_.~")  # S3: encoded once, never twice
    canonical = "\n".join(
        [method, canonical_uri, canonical_query(parts.query), canonical_headers, signed_headers, payload_hash]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(
        signing_key(creds.secret_key, date, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    out["Authorization"] = (
        f"{ALGORITHM} Credential={creds.access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out
