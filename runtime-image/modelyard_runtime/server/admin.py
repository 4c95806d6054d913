"""The admin API: the repository's load and unload, off the data path.

Whoever reaches a model's Service reaches the inference ports, so load and unload are not served there (403 over
HTTP, PERMISSION_DENIED over gRPC): one request could take the model offline. They are served here instead, on
``--admin-host``:``--admin-port`` (loopback by default, so only the pod's own containers, such as the loader
sidecar, reach it; the rendered Service never exposes it) and, with ``--admin-token-file``, only to requests that
carry ``Authorization: Bearer <the file's content>``. The file is read again on every request, so a rotated Secret
takes effect without a restart.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from modelyard_runtime.errors import BadRequestError, UnauthenticatedError
from modelyard_runtime.protocol.rest import flag, json_object
from modelyard_runtime.server.core import CONFIG_OVERRIDE_UNSUPPORTED, DataPlane
from modelyard_runtime.server.http import errors

log = logging.getLogger("modelyard.server")
PLANE: web.AppKey[DataPlane] = web.AppKey("admin-plane", DataPlane)
MAX_ADMIN_BODY = 64 * 2**10


class TokenFile:
    """The bearer token in a mounted file; the last one read stays in force while the file cannot be read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.token = read_token(path)  # at start a missing or empty file is an error: no admin API without it

    def current(self) -> str:
        try:
            self.token = read_token(self.path)
        except ValueError as exc:
            log.warning("admin token: %s; keeping the previous token", exc)
        return self.token


TOKEN: web.AppKey[TokenFile] = web.AppKey("admin-token", TokenFile)


def read_token(path: Path) -> str:
    """The token in ``path`` without surrounding whitespace; ValueError when missing, unreadable or empty."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the admin token file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"the admin token file {path} is not UTF-8 text") from None
    if not token:
        raise ValueError(f"the admin token file {path} is empty")
    return token


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries ``Bearer <token>`` (compared in constant time)."""
    scheme, _, given = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@web.middleware
async def check_token(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    token = request.app.get(TOKEN)
    if token is not None and not authorized(request.headers.get("Authorization"), token.current()):
        raise UnauthenticatedError("the admin API needs Authorization: Bearer <token> (--admin-token-file)")
    return await handler(request)


async def _json(request: web.Request) -> dict[str, Any]:
    return json_object(await request.read())  # bounded by client_max_size: a 413 above it


async def repository_index(request: web.Request) -> web.Response:
    doc = await _json(request)
    return web.json_response(request.app[PLANE].index(ready_only=flag(doc.get("ready", False), "'ready'")))


async def repository_load(request: web.Request) -> web.Response:
    doc = await _json(request)
    if "config" in (doc.get("parameters") or {}):
        raise BadRequestError(CONFIG_OVERRIDE_UNSUPPORTED)
    await request.app[PLANE].load_model(request.match_info["model"])
    return web.json_response({})


async def repository_unload(request: web.Request) -> web.Response:
    await _json(request)
    await request.app[PLANE].unload_model(request.match_info["model"])
    return web.json_response({})


async def ready(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    return web.json_response({"ready": plane.reports_ready, "unserved": plane.unserved()})


def build_admin_app(plane: DataPlane, token: TokenFile | None) -> web.Application:
    app = web.Application(client_max_size=MAX_ADMIN_BODY, middlewares=[errors, check_token])
    app[PLANE] = plane
    if token is not None:
        app[TOKEN] = token
    r = app.router
    r.add_post("/v2/repository/index", repository_index)
    r.add_post("/v2/repository/models/{model}/load", repository_load)
    r.add_post("/v2/repository/models/{model}/unload", repository_unload)
    r.add_get("/v2/health/ready", ready)  # with the versions that keep it false, for whoever debugs the pod
    return app
