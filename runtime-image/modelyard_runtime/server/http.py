"""The REST binding of the Open Inference Protocol (aiohttp), a thin adapter over the DataPlane."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelyard_runtime import __version__
from modelyard_runtime.errors import Code, ServingError
from modelyard_runtime.protocol.rest import HEADER_LENGTH, build_infer_response, parse_infer_request
from modelyard_runtime.server.core import DataPlane, LoadedModel

EXTENSIONS = ["binary_tensor_data", "model_configuration"]
PLANE: web.AppKey[DataPlane] = web.AppKey("plane", DataPlane)


def error(code: Code, message: str) -> web.Response:
    return web.json_response({"error": message}, status=code.http)


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServingError as exc:
        return error(exc.code, exc.message)
    except web.HTTPRequestEntityTooLarge as exc:
        return error(Code.TOO_LARGE, f"request body too large: {exc.text}")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return web.json_response({"error": exc.reason}, status=exc.status)
        raise


def _model(request: web.Request) -> LoadedModel:
    return request.app[PLANE].get(request.match_info["model"], request.match_info.get("version"))


async def live(request: web.Request) -> web.Response:
    return web.json_response({"live": True})


def _readiness(plane: DataPlane) -> web.Response:
    return web.json_response({"ready": plane.ready}, status=200 if plane.ready else Code.UNAVAILABLE.http)


async def ready(request: web.Request) -> web.Response:
    return _readiness(request.app[PLANE])


async def server_metadata(request: web.Request) -> web.Response:
    return web.json_response({"name": "modelyard", "version": __version__, "extensions": EXTENSIONS})


async def model_metadata(request: web.Request) -> web.Response:
    return web.json_response(_model(request).metadata())


async def model_ready(request: web.Request) -> web.Response:
    _model(request)  # 404 for an unknown model or version
    return _readiness(request.app[PLANE])


def _config_tensor(tensor: dict[str, Any]) -> dict[str, Any]:
    return {"name": tensor["name"], "data_type": f"TYPE_{tensor['datatype']}", "dims": tensor["shape"]}


async def model_config(request: web.Request) -> web.Response:
    model = _model(request)
    meta = model.metadata()
    return web.json_response(
        {
            "name": model.name,
            "platform": meta["platform"],
            "backend": "onnxruntime",
            "max_batch_size": 0,
            "input": [_config_tensor(t) for t in meta["inputs"]],
            "output": [_config_tensor(t) for t in meta["outputs"]],
        }
    )


async def infer(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    started = time.perf_counter()
    model_name, version = request.match_info["model"], request.match_info.get("version", "")
    status = Code.INTERNAL.http
    try:
        model = plane.get(model_name, version)
        version = model.version
        body = await request.read()
        header = request.headers.get(HEADER_LENGTH)
        parsed = parse_infer_request(body, int(header) if header is not None and header.isdigit() else None)
        inflight = plane.metrics.inflight.labels(model=model.name, version=version)
        inflight.inc()
        try:
            compute_started = time.perf_counter()
            names = [o.name for o in parsed.outputs] if parsed.outputs else None
            outputs = await plane.infer(model, parsed.inputs, parsed.datatypes, names)
            plane.metrics.compute.labels(model=model.name, version=version).observe(
                time.perf_counter() - compute_started
            )
        finally:
            inflight.dec()
        payload, json_length = build_infer_response(model.name, version, parsed, outputs)
        headers = {HEADER_LENGTH: str(json_length)} if json_length is not None else {}
        content_type = "application/octet-stream" if json_length is not None else "application/json"
        response = web.Response(body=payload, headers=headers, content_type=content_type)
        status = 200
        return response
    except ServingError as exc:
        status = exc.code.http
        raise
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        plane.metrics.requests.labels(model=model_name, version=version, protocol="http", code=str(status)).inc()
        if status == 200:
            plane.metrics.duration.labels(model=model_name, version=version).observe(time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[PLANE].metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(plane: DataPlane, *, max_body_bytes: int = 64 * 2**20) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[errors])
    app[PLANE] = plane
    r = app.router
    r.add_get("/v2/health/live", live)
    r.add_get("/v2/health/ready", ready)
    r.add_get("/v2", server_metadata)
    r.add_get("/metrics", metrics)
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        r.add_get(prefix, model_metadata)
        r.add_get(prefix + "/ready", model_ready)
        r.add_get(prefix + "/config", model_config)
        r.add_post(prefix + "/infer", infer)
    return app
