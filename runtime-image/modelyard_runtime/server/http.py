"""The REST binding of the Open Inference Protocol (aiohttp), a thin adapter over the DataPlane."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelyard_runtime import version as modelyard_version
from modelyard_runtime.errors import (
    Code,
    ForbiddenError,
    NotFoundError,
    ServingError,
    TooManyRequestsError,
    public_message,
)
from modelyard_runtime.protocol.checks import SHARED_MEMORY, check_header_length
from modelyard_runtime.protocol.rest import HEADER_LENGTH, build_infer_response, flag, json_object, parse_infer_request
from modelyard_runtime.server import tfserving
from modelyard_runtime.server.core import EXTENSIONS, DataPlane
from modelyard_runtime.server.httpcommon import (
    PLANE,
    SETTINGS,
    TICKET,
    Counted,
    HttpSettings,
    access_method,
    read_body,
)

log = logging.getLogger("modelyard.server")
UNLIMITED = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})  # probes must answer under load too
ADMIN_ONLY = (
    "the repository API's load and unload are not served on the inference ports; "
    "use the admin API (modelyard-server --admin-port, on loopback by default)"
)


def error(code: Code, message: str) -> web.Response:
    return web.json_response({"error": message}, status=code.http)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServingError as exc:
        response = error(exc.code, public_message(exc.message))
        if exc.code is Code.REQUEST_TIMEOUT:  # the rest of a trickled body is not worth reading (lingering on)
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()  # closes once the answer is written
        elif exc.code is Code.TOO_MANY_REQUESTS:
            response.headers["Retry-After"] = "1"
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        return error(Code.TOO_LARGE, f"request body too large: {exc.text}")
    except web.HTTPException as exc:
        if exc.status >= 400:  # keeps the exception's headers: a 405 must list what is Allowed
            headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
            return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error(Code.INTERNAL, "internal error (the server log has the details)")


@web.middleware
async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request but health checks and metrics takes a ticket (server.limits) before its body is read: 429
    beyond the server's caps, and its bytes given back however it ends."""
    if request.path in UNLIMITED:
        return await handler(request)
    plane = request.app[PLANE]
    inference = _INFERENCE.get(request.match_info.route.handler)  # the metrics' protocol of an inference route
    try:
        ticket = request.app[SETTINGS].admission.enter()
    except TooManyRequestsError as exc:  # refused before its handler runs: an inference request is counted here
        plane.count_rejected(inference or "http", exc.reason)
        if inference is not None:
            model, version = _name(request)
            plane.count_request(
                model, version or "", None, inference, exc.code.http, 0.0,
                method=access_method(request), request_bytes=request.content_length or 0, peer=request.remote or "",
            )  # fmt: skip
        raise
    with ticket:
        request[TICKET] = ticket
        try:
            return await handler(request)
        except TooManyRequestsError as exc:  # its body would pass the buffered-bytes cap (counted by the handler)
            plane.count_rejected(inference or "http", exc.reason)
            raise


def _name(request: web.Request) -> tuple[str, str | None]:
    """The model and version a request names (TF Serving's routes name them alike)."""
    return request.match_info["model"], request.match_info.get("version") or None


async def live(request: web.Request) -> web.Response:
    return web.json_response({"live": True})


def _readiness(ready: bool) -> web.Response:
    return web.json_response({"ready": ready}, status=200 if ready else Code.UNAVAILABLE.http)


async def ready(request: web.Request) -> web.Response:
    return _readiness(request.app[PLANE].reports_ready)


async def server_metadata(request: web.Request) -> web.Response:
    return web.json_response({"name": "modelyard", "version": modelyard_version(), "extensions": EXTENSIONS})


async def model_metadata(request: web.Request) -> web.Response:
    return web.json_response((await request.app[PLANE].describe(*_name(request))).metadata())


async def model_ready(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    return _readiness(plane.reports_ready and plane.is_ready(*_name(request)))


async def model_config(request: web.Request) -> web.Response:
    return web.json_response((await request.app[PLANE].describe(*_name(request))).model_config())


async def model_stats(request: web.Request) -> web.Response:
    name = request.match_info.get("model")
    return web.json_response({"model_stats": request.app[PLANE].statistics(name, request.match_info.get("version"))})


async def repository_index(request: web.Request) -> web.Response:
    doc = json_object(await read_body(request))
    return web.json_response(request.app[PLANE].index(ready_only=flag(doc.get("ready", False), "'ready'")))


async def admin_only(request: web.Request) -> web.Response:
    """Load and unload on an inference port: whoever reaches the Service must not be able to take a model offline."""
    raise ForbiddenError(ADMIN_ONLY)


# Triton's HTTP endpoints of features this server does not implement: a 404 that says why, not a bare "Not Found"
_UNSERVED = {
    "/v2/systemsharedmemory": SHARED_MEMORY,
    "/v2/cudasharedmemory": "CUDA " + SHARED_MEMORY,
    "/v2/trace": "trace settings are not supported",
    "/v2/logging": "log settings are not supported",
}


async def unserved(request: web.Request) -> web.Response:
    prefix = next(p for p in _UNSERVED if request.path.startswith(p))
    raise NotFoundError(f"{request.method} {prefix}: {_UNSERVED[prefix]}")


async def unserved_trace(request: web.Request) -> web.Response:
    raise NotFoundError(f"{request.method} {request.path[:200]}: {_UNSERVED['/v2/trace']}")


async def infer(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    model_name, version = _name(request)
    with Counted(request, model_name, version, "http") as count:
        header_length = check_header_length(request.headers.get(HEADER_LENGTH))
        body = await read_body(request)
        count.size = len(body)
        async with plane.use(model_name, version) as model:
            count.model = model
            parsed = parse_infer_request(body, header_length)
            names = [o.name for o in parsed.outputs] if parsed.outputs else None
            classes = {o.name: o.class_count for o in parsed.outputs or ()}
            outputs = await plane.infer(model, parsed.inputs, parsed.datatypes, names, classes)
        payload, json_length = build_infer_response(model.name, model.version, parsed, outputs)
        headers = {HEADER_LENGTH: str(json_length)} if json_length is not None else {}
        content_type = "application/octet-stream" if json_length is not None else "application/json"
        # a client that went away while its request ran gets nothing: counted 499 (nginx's "client closed request")
        return web.Response(body=payload, headers=headers, content_type=content_type)


_INFERENCE: dict[object, str] = {infer: "http", tfserving.predict: "tfserving"}


async def openapi(request: web.Request) -> web.Response:
    from modelyard_runtime.server.openapi import document  # on first use: off the path to readiness

    return web.json_response(document(modelyard_version()))


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[PLANE].metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(plane: DataPlane, settings: HttpSettings) -> web.Application:
    # auto_decompress off: read_body decodes, with its own errors and the size limit applied after decoding
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[errors, admit],
        handler_args={"auto_decompress": False},
    )
    app[PLANE] = plane
    app[SETTINGS] = settings
    r = app.router
    r.add_get("/v2/health/live", live)
    r.add_get("/v2/health/ready", ready)
    r.add_get("/v2", server_metadata)
    r.add_get("/metrics", metrics)
    r.add_get("/v2/openapi.json", openapi)
    r.add_get("/v2/models/stats", model_stats)  # before /v2/models/{model}, which would match it too
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        r.add_get(prefix, model_metadata)
        r.add_get(prefix + "/ready", model_ready)
        r.add_get(prefix + "/config", model_config)
        r.add_post(prefix + "/infer", infer)
        r.add_get(prefix + "/stats", model_stats)
    r.add_post("/v2/repository/index", repository_index)
    for prefix in _UNSERVED:
        r.add_route("*", prefix + "{tail:(/.*)?}", unserved)
    r.add_route("*", "/v2/models/{model}/trace/setting", unserved_trace)
    r.add_post("/v2/repository/models/{model}/load", admin_only)
    r.add_post("/v2/repository/models/{model}/unload", admin_only)
    tfserving.add_routes(r)
    return app
