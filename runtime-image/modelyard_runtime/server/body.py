"""Reading an HTTP request body with a deadline and a share of the server's buffered-bytes cap.

A client that sends its headers and then trickles the body (slowloris) would otherwise hold a request, its
connection and what it has sent so far for as long as it likes. The body must arrive within ``seconds``
(408 and the connection closed otherwise), may not pass ``limit`` bytes (413, as ``--max-body-bytes``), and its
bytes count against the request's :class:`~modelyard_runtime.server.limits.Ticket` as they arrive (429 once the
server holds too much). A declared Content-Length is reserved whole before reading, so an over-large claim is
refused before any of it is buffered.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from modelyard_runtime.errors import BadRequestError, ClientGoneError, RequestTimeoutError, TooLargeError
from modelyard_runtime.protocol.encoding import decode_body
from modelyard_runtime.server.limits import Ticket


async def read_limited(request: web.Request, ticket: Ticket, *, limit: int, seconds: float) -> bytes:
    """The raw body (before any Content-Encoding is decoded)."""
    declared = request.content_length
    if declared is not None:
        if declared > limit:
            raise TooLargeError(f"request body too large: {declared} bytes declared, the limit is {limit}")
        ticket.reserve(declared)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise TooLargeError(f"request body too large: above {limit} bytes")
                if declared is None:
                    ticket.reserve(len(chunk))
                chunks.append(chunk)
    except ConnectionError:
        raise ClientGoneError(f"the client closed the connection after {size} bytes of the body") from None
    except HttpProcessingError as exc:  # a broken chunked encoding, a body shorter than its Content-Length ...
        raise BadRequestError(f"request body is malformed: {exc.message}") from None
    except TimeoutError:
        raise RequestTimeoutError(
            f"request body not received within {seconds:g}s ({size} bytes arrived"
            + (f" of {declared})" if declared is not None else ")")
        ) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: web.Request, ticket: Ticket, *, limit: int, seconds: float) -> bytes:
    """The body, decoded by its Content-Encoding (:func:`~modelyard_runtime.protocol.encoding.decode_body`): the
    library's own decoding is off, so a bad body is a 400, an unknown coding a 415 and a bomb a 413. What decoding
    adds beyond the raw body counts against the ticket too."""
    raw = await read_limited(request, ticket, limit=limit, seconds=seconds)
    body = decode_body(raw, request.headers.get("Content-Encoding"), limit)
    if body is not raw:
        ticket.reserve(max(0, len(body) - len(raw)))
    return body
