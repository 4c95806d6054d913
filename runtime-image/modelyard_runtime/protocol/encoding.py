"""Request bodies sent with a ``Content-Encoding``: decoded here, with a bound on what they may expand to (pure).

The HTTP server does not let its library decode bodies: an undecodable body must be the client's 400, an encoding
nobody decodes a 415, and a small body that expands beyond the size limit a 413, each with a message.
"""

from __future__ import annotations

import zlib

from modelyard_runtime.errors import BadRequestError, TooLargeError, UnsupportedEncodingError

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
SUPPORTED = ("identity", *_WBITS)


def decode_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` decoded as ``encoding`` (a Content-Encoding header; none or ``identity``: as it is), at most
    ``limit`` bytes once decoded. Only one coding is applied (``gzip, deflate`` is refused as unsupported)."""
    coding = (encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    wbits = _WBITS.get(coding)
    if wbits is None:
        shown = coding if len(coding) <= 40 else coding[:40] + "..."
        raise UnsupportedEncodingError(
            f"Content-Encoding {shown!r} is not supported; send gzip, deflate or an unencoded body"
        )
    attempts = [wbits, -zlib.MAX_WBITS] if coding == "deflate" else [wbits]  # deflate: zlib-wrapped, else raw
    for i, bits in enumerate(attempts):
        decoder = zlib.decompressobj(bits)
        try:
            out = decoder.decompress(body, limit + 1)
        except zlib.error as exc:
            if i + 1 < len(attempts):
                continue
            reason = str(exc).rpartition(": ")[2]  # zlib's "Error -3 while decompressing data: <reason>"
            raise BadRequestError(f"request body is not valid {coding} data: {reason}") from None
        if len(out) > limit or decoder.unconsumed_tail:
            raise TooLargeError(f"request body too large: above {limit} bytes once {coding}-decoded")
        if not decoder.eof:
            raise BadRequestError(f"request body is not valid {coding} data: the compressed stream is cut short")
        if decoder.unused_data:
            raise BadRequestError(f"request body has {len(decoder.unused_data)} bytes after its {coding} stream")
        return out
    raise AssertionError("unreachable: the last attempt returns or raises")
