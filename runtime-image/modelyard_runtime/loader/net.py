"""HTTP(S) requests that go through the SSRF guard: names are resolved once, every address is checked,
the connection is made to exactly those addresses (no second resolution a rebinding DNS could answer
differently), and every redirect is checked again before it is followed.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from modelyard_runtime.loader import ssrf
from modelyard_runtime.loader.errors import BlockedAddressError, FetchError, UsageError
from modelyard_runtime.loader.uri import origin, redact

USER_AGENT = "modelyard-loader/0.1"
REDIRECTS = (301, 302, 303, 307, 308)
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

# signs a request: (method, url, headers) -> headers to send (S3 SigV4, OCI bearer tokens)
Signer = Callable[[str, str, dict[str, str]], dict[str, str]]


@dataclass
class NetPolicy:
    allow: ssrf.Allowlist = field(default_factory=ssrf.Allowlist)
    timeout: float = 30.0
    ca_file: str | None = None  # extra CAs (PEM), trusted besides the system's: --ca-file, MODELYARD_LOADER_CA_FILE
    max_redirects: int = 5
    extra_ca_file: str | None = None  # one store's own CA (a credentials Secret's caBundle)
    _ssl: ssl.SSLContext | None = field(default=None, init=False, repr=False, compare=False)

    def ssl_context(self) -> ssl.SSLContext:
        """Built once per policy (loading the CA bundle takes milliseconds, and every request and redirect
        needs it); a context is safe to share between the download threads."""
        if self._ssl is None:
            context = ssl.create_default_context()
            for extra in (self.ca_file or os.environ.get("MODELYARD_LOADER_CA_FILE"), self.extra_ca_file):
                if extra:
                    try:
                        context.load_verify_locations(cafile=extra)
                    except (OSError, ssl.SSLError) as e:
                        raise UsageError(f"CA bundle {extra}: {e}") from None
            self._ssl = context
        return self._ssl


def resolve_checked(host: str, port: int, policy: NetPolicy) -> list[str]:
    """The addresses of ``host`` after the SSRF guard accepted each of them."""
    if not policy.allow.allows_name(host):
        reason = ssrf.blocked_name_reason(host)
        if reason:  # refused by name, before any DNS query
            raise BlockedAddressError(f"refused to connect to {host}: {reason}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise FetchError(f"cannot resolve {host}: {e}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    reason = ssrf.decide(host, addresses, policy.allow)
    if reason:
        raise BlockedAddressError(
            f"refused to connect to {host}: {reason} (allow it with --allow-hosts {ssrf.normalize_host(host)})"
        )
    return addresses


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket:
    last: OSError | None = None
    for addr in addresses:
        try:
            return socket.create_connection((addr, port), timeout=timeout)
        except OSError as e:
            last = e
    raise last or OSError("no address")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout or 30.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._addresses = addresses
        self._ctx = context

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout or 30.0)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self.host)


class Response:
    """An open response plus the URL it finally came from (after redirects)."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, url: str) -> None:
        self.conn = conn
        self.raw = resp
        self.url = url
        self.status = resp.status
        self.headers = resp.headers

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()

    def readinto(self, buf: memoryview) -> int:
        return self.raw.readinto(buf)

    def close(self) -> None:
        self.raw.close()
        self.conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_url(
    method: str,
    url: str,
    policy: NetPolicy,
    headers: Mapping[str, str] | None = None,
    *,
    body: bytes | None = None,
    signer: Signer | None = None,
) -> Response:
    """Send one request, following redirects (each target checked by the SSRF guard).

    Credentials never follow a redirect to another origin (scheme, host and port; pre-signed blob URLs
    carry their own): ``signer`` signs requests to the original origin only, and credential headers among
    ``headers`` (``Authorization``, ``Proxy-Authorization``, ``Cookie``) are dropped elsewhere. Raises
    ``FetchError`` on network errors; the caller decides what a status code means.
    """
    home = origin(url)
    current = url
    for _ in range(policy.max_redirects + 1):
        parts = urlsplit(current)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"{redact(url)}: cannot follow to {redact(current)}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = resolve_checked(parts.hostname, port, policy)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = _PinnedHTTPS(parts.hostname, port, addresses, policy.timeout, policy.ssl_context())
        else:
            conn = _PinnedHTTP(parts.hostname, port, addresses, policy.timeout)
        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
        if origin(current) != home:
            hdrs = {k: v for k, v in hdrs.items() if k.lower() not in CREDENTIAL_HEADERS}
        elif signer is not None:
            hdrs = signer(method, current, hdrs)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            conn.request(method, target, body=body, headers=hdrs)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise FetchError(f"{redact(current)}: {type(e).__name__}: {e}") from None
        if resp.status in REDIRECTS and resp.getheader("Location"):
            location = urljoin(current, resp.getheader("Location", ""))
            resp.read()
            conn.close()
            if parts.scheme == "https" and location.startswith("http:"):
                raise FetchError(f"{redact(current)}: refused redirect from https to plain http")
            if resp.status == 303:
                method, body = "GET", None
            current = location
            continue
        return Response(conn, resp, current)
    raise FetchError(f"{redact(url)}: more than {policy.max_redirects} redirects")


def read_all(
    url: str,
    policy: NetPolicy,
    *,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    signer: Signer | None = None,
) -> tuple[int, bytes, Response]:
    """GET ``url`` into memory (manifests, listings, tokens); refuses bodies over ``max_bytes``."""
    with open_url("GET", url, policy, headers, signer=signer) as resp:
        data = resp.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FetchError(f"{redact(url)}: response larger than {max_bytes} bytes")
        return resp.status, data, resp
