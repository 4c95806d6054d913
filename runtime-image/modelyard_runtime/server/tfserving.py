"""TensorFlow Serving's REST API on the HTTP port, for every model served: a thin adapter over the same DataPlane as
the Open Inference Protocol's routes (the JSON is :mod:`modelyard_runtime.protocol.tfjson`).

``GET /v1/models/{m}[/versions/{v}]`` (status), ``GET .../metadata`` and ``POST .../{m}[/versions/{v}]:predict``
answer as TF Serving does, errors included (``{"error": "..."}``, 404 ``Servable not found for request: Latest(m)``).
Each model has one signature, ``serving_default``; ``:classify`` and ``:regress`` need a signature of their own
kind, which no model here has, and version labels do not exist here: both answer 400, as TF Serving answers a
signature of the wrong kind and an unknown label.
"""

from __future__ import annotations

from aiohttp import web

from modelyard_runtime.errors import BadRequestError, NotFoundError
from modelyard_runtime.protocol import tfjson
from modelyard_runtime.server.core import LoadedModel
from modelyard_runtime.server.httpcommon import PLANE, Counted, read_body
from modelyard_runtime.server.repository import version_key

NAME = "[^/:]+"  # a model, version or label in a path: no '/', and no ':' (which starts :predict)
PREFIXES = (f"/v1/models/{{model:{NAME}}}", f"/v1/models/{{model:{NAME}}}/versions/{{version:{NAME}}}")
LABELLED = f"/v1/models/{{model:{NAME}}}/labels/{{label:{NAME}}}"


def _name(request: web.Request) -> tuple[str, str | None]:
    return request.match_info["model"], request.match_info.get("version") or None


def _check_label(request: web.Request) -> None:
    label = request.match_info.get("label")
    if label is not None:
        raise BadRequestError(
            f"Unrecognized servable version label: {label[:200]} (modelyard-server has no version labels: name the "
            "version, /versions/<n>, or leave it out for the latest)"
        )


def _not_found(model: str, version: str | None) -> str:
    """TF Serving's message for a model or version it does not serve."""
    return f"Servable not found for request: {f'Specific({model}, {version})' if version else f'Latest({model})'}"


async def _acquire(request: web.Request) -> LoadedModel:
    model, version = _name(request)
    try:
        return await request.app[PLANE].acquire(model, version)
    except NotFoundError:
        raise NotFoundError(_not_found(model, version)) from None


async def status(request: web.Request) -> web.Response:
    """``GetModelStatus``: one entry per version the repository has, highest first."""
    _check_label(request)
    model, version = _name(request)
    rows = [r for r in request.app[PLANE].index() if r["name"] == model and version in (None, r["version"])]
    if not rows:
        raise NotFoundError(
            f"Could not find version {version} of model {model}"
            if version
            else f"Could not find any versions of model {model}"
        )
    rows.sort(key=lambda r: version_key(r["version"]), reverse=True)
    return web.json_response(
        {"model_version_status": [tfjson.version_status(r["version"], r["state"], r["reason"]) for r in rows]}
    )


async def metadata(request: web.Request) -> web.Response:
    """``GetModelMetadata`` of the version named, else of the latest."""
    _check_label(request)
    model, version = _name(request)
    try:
        loaded = await request.app[PLANE].describe(model, version)
    except NotFoundError:
        raise NotFoundError(_not_found(model, version)) from None
    backend = loaded.backend
    return web.json_response(tfjson.model_metadata(loaded.name, loaded.version, backend.inputs, backend.outputs))


async def predict(request: web.Request) -> web.Response:
    """``Predict``, counted like every inference request (protocol label ``tfserving``)."""
    plane = request.app[PLANE]
    model_name, version = _name(request)
    with Counted(request, model_name, version, "tfserving") as count:
        _check_label(request)
        body = await read_body(request)
        count.size = len(body)
        model = count.model = await _acquire(request)
        try:
            parsed = tfjson.parse_predict(body, model.backend.inputs)
            outputs = await plane.infer(model, parsed.inputs, parsed.datatypes, None)
        finally:
            await plane.release(model)
        names = [o.name for o in model.backend.outputs]
        payload = tfjson.build_predict_response({n: outputs[n] for n in names if n in outputs}, parsed.format)
        return web.Response(body=payload, content_type="application/json")


async def unsupported_method(request: web.Request) -> web.Response:
    """``:classify`` and ``:regress``: the model is looked up first (404 as for ``:predict``), then refused."""
    _check_label(request)
    model, version = _name(request)
    method = request.path.rpartition(":")[2]
    try:
        request.app[PLANE].is_ready(model, version)
    except NotFoundError:
        raise NotFoundError(_not_found(model, version)) from None
    raise BadRequestError(
        f":{method} needs a {method} signature, and modelyard-server serves one signature per model, "
        f"{tfjson.DEFAULT_SIGNATURE} (predict): use :predict"
    )


def add_routes(router: web.UrlDispatcher) -> None:
    for prefix in (*PREFIXES, LABELLED):
        router.add_get(prefix, status)
        router.add_get(prefix + "/metadata", metadata)
        router.add_post(prefix + ":predict", predict)
        router.add_post(prefix + ":classify", unsupported_method)
        router.add_post(prefix + ":regress", unsupported_method)
