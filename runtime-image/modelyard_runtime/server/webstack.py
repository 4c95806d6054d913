"""aiohttp, imported without the TLS client set-up the server never uses.

Importing aiohttp builds its HTTP client's two default TLS contexts, and each reads the system's CA bundle
(``set_default_verify_paths``): about 50 ms of one core on the benchmark machine, spent while static mode opens the
model versions beside it, so it delays readiness. The server never opens a connection with aiohttp's client. This
module imports aiohttp with that call doing nothing, so both contexts trust no CA at all: were aiohttp's client ever
used with its default TLS setting in this process, a verified connection would fail (closed), never pass
unverified. :mod:`modelyard_runtime.server.cli` imports aiohttp this way before the web stack.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def no_ca_bundle() -> Iterator[None]:
    """While inside, new TLS contexts do not read the system's CA bundle (they trust no CA unless told one)."""
    original: Callable[[ssl.SSLContext], None] = ssl.SSLContext.set_default_verify_paths

    def skip(context: ssl.SSLContext) -> None:
        return None

    ssl.SSLContext.set_default_verify_paths = skip  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        ssl.SSLContext.set_default_verify_paths = original  # type: ignore[method-assign,assignment]


def import_aiohttp() -> None:
    """Import aiohttp (once) without loading the CA bundle for its client."""
    if "aiohttp" in sys.modules:
        return
    with no_ca_bundle():
        import aiohttp  # noqa: F401
