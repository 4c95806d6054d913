"""What one server holds at once: requests in flight and request bytes buffered, over both protocols (pure).

Without a cap, every client that opens a connection and sends a request costs the server memory until the request
ends, so enough slow or large requests take the pod down (OOM-killed) instead of slowing it. Here each request takes
a :class:`Ticket` before any of its body is read: beyond ``max_requests`` requests in flight, or once the bytes
held would pass ``max_bytes``, it is refused at once with :class:`~modelyard_runtime.errors.TooManyRequestsError`
(HTTP 429, gRPC RESOURCE_EXHAUSTED), which the client may retry. A ticket's bytes grow as its body arrives and all
are given back when the request ends, however it ends.

Single-threaded by design: both bindings call it from the event loop's thread only.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard_runtime.errors import TooManyRequestsError


@dataclass
class Admission:
    max_requests: int
    max_bytes: int
    requests: int = 0  # in flight now
    bytes: int = 0  # buffered now, by all tickets
    refused: int = 0  # since start

    def enter(self) -> Ticket:
        """A ticket for one request; TooManyRequestsError when ``max_requests`` are in flight already."""
        if self.requests >= self.max_requests:
            self.refused += 1
            raise TooManyRequestsError(
                f"server busy: {self.requests} requests in flight, the limit is {self.max_requests}; retry later"
            )
        self.requests += 1
        return Ticket(self)


class Ticket:
    """One request's share of the limits; :meth:`close` gives it back (idempotent)."""

    __slots__ = ("_admission", "bytes", "closed")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.bytes = 0
        self.closed = False

    def reserve(self, count: int) -> None:
        """Hold ``count`` more bytes for this request, or raise TooManyRequestsError (holding nothing more)."""
        admission = self._admission
        if admission.bytes + count > admission.max_bytes:
            admission.refused += 1
            raise TooManyRequestsError(
                f"server busy: {admission.bytes} bytes of requests buffered, {count} more would pass the limit of "
                f"{admission.max_bytes}; retry later",
                reason="buffered_bytes",
            )
        admission.bytes += count
        self.bytes += count

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._admission.requests -= 1
        self._admission.bytes -= self.bytes
        self.bytes = 0

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
