"""What the REST APIs on the HTTP port share (the Open Inference Protocol's in :mod:`.http`, TensorFlow Serving's in
:mod:`.tfserving`): the application's keys, reading a body within the limits, and counting an inference request."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from modelyard_runtime.errors import Code, ServingError
from modelyard_runtime.server import body
from modelyard_runtime.server.core import DataPlane, LoadedModel
from modelyard_runtime.server.limits import Admission, Ticket

PLANE: web.AppKey[DataPlane] = web.AppKey("plane", DataPlane)
TICKET: web.RequestKey[Ticket] = web.RequestKey("ticket", Ticket)  # the request's share of the server's limits


@dataclass(frozen=True)
class HttpSettings:
    admission: Admission
    max_body_bytes: int = 64 * 2**20
    body_timeout_seconds: float = 60.0


SETTINGS: web.AppKey[HttpSettings] = web.AppKey("settings", HttpSettings)


def access_method(request: web.Request) -> str:
    """What an access-log line names: the method and the path (no query string, which may hold anything)."""
    return f"{request.method} {request.rel_url.raw_path}"


def client_gone(request: web.Request) -> bool:
    """The client closed its connection (aiohttp lets a handler finish after that; its answer reaches nobody)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def read_body(request: web.Request) -> bytes:
    """The decoded body, within the deadline, the size limit and the server's buffered-bytes cap
    (:func:`~modelyard_runtime.server.body.read_body`)."""
    settings = request.app[SETTINGS]
    return await body.read_body(
        request, request[TICKET], limit=settings.max_body_bytes, seconds=settings.body_timeout_seconds
    )


class Counted:
    """One inference request's metrics and access-log line, however it ends: 200, the error's status, or 499 when
    the client left (also when the server failed after it left: that failure reached nobody). Set ``model`` once a
    version is acquired and ``size`` once the body is read."""

    def __init__(self, request: web.Request, model_name: str, version: str | None, protocol: str) -> None:
        self.request = request
        self.model_name = model_name
        self.version = version
        self.protocol = protocol
        self.model: LoadedModel | None = None
        self.size = 0
        self.started = time.perf_counter()

    def __enter__(self) -> Counted:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        request = self.request
        if exc is None:
            status = Code.CANCELLED.http if client_gone(request) else 200
        elif isinstance(exc, ServingError):
            status = exc.code.http
        elif isinstance(exc, web.HTTPException):
            status = exc.status
        elif isinstance(exc, asyncio.CancelledError):  # the client went away: not the server's failure
            status = Code.CANCELLED.http
        else:
            status = Code.INTERNAL.http
        if status >= 500 and status != Code.CANCELLED.http and client_gone(request):
            status = Code.CANCELLED.http
        version = self.model.version if self.model is not None else self.version or ""
        request.app[PLANE].count_request(
            self.model_name, version, self.model, self.protocol, status, time.perf_counter() - self.started,
            method=access_method(request), request_bytes=self.size or request.content_length or 0,
            peer=request.remote or "",
        )  # fmt: skip
