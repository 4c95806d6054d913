"""The OpenAPI 3.0 document of the inference ports' REST API, served at ``GET /v2/openapi.json``.

It describes the Open Inference Protocol's REST endpoints (KServe V2: health, metadata, inference) with Triton's
extensions this server implements (binary tensor data, classification, model configuration, statistics, the
repository index), and TensorFlow Serving's REST API (``/v1/models/...``, :mod:`.tfserving`), as this server
answers them: every status code it can give and the body of each. The fuzz tier (``tests/fuzz``) runs schemathesis
against the served document.
"""

from __future__ import annotations

from typing import Any

from modelyard_runtime.protocol.datatypes import DATATYPES

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref("Error")}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_ERRORS = {
    "400": "a bad request: the message names the input and the rule",
    "404": "unknown model or version, or an endpoint of an unsupported feature",
    "408": "the request body did not arrive within --body-timeout-seconds",
    "413": "request body above --max-body-bytes (also once decoded)",
    "415": "a Content-Encoding the server does not decode",
    "429": "beyond --max-inflight-requests or --max-buffered-bytes; retry after Retry-After",
    "500": "the model failed on valid inputs",
    "503": "server not ready, version not loaded, or its load failed",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _error(_ERRORS[code]) for code in codes}


def _model_params(versioned: bool, pattern: str | None = None) -> list[dict[str, Any]]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1, **({"pattern": pattern} if pattern else {})}
    params = [{"name": "model", "in": "path", "required": True, "schema": schema}]
    if versioned:
        params.append({"name": "version", "in": "path", "required": True, "schema": schema})
    return params


_BUSY = ("400", "408", "413", "415", "429")  # what any request with a body may get before it is looked at
_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "Ready": {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}},
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("TensorMetadata")},
        },
    },
    "ModelConfig": {
        "description": "Triton's model configuration (JSON form); BYTES tensors are TYPE_STRING",
        "type": "object",
        "required": ["name", "platform", "max_batch_size", "input", "output"],
        "properties": {
            "name": {"type": "string"},
            "platform": {"type": "string"},
            "backend": {"type": "string"},
            "max_batch_size": {"type": "integer", "minimum": 0},
            "input": {"type": "array", "items": {"type": "object"}},
            "output": {"type": "array", "items": {"type": "object"}},
            "dynamic_batching": {"type": "object"},
        },
    },
    "Parameters": {"type": "object", "additionalProperties": True},
    "RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "maxItems": 64, "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
            "data": {"type": "array", "description": "row-major values, flat or nested; absent with binary_data_size"},
        },
    },
    "RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data": {"type": "boolean"},
                    "classification": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 2**31 - 1,
                        "description": "the classification extension's class count (0: off)",
                    },
                },
            },
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
            "inputs": {"type": "array", "items": _ref("RequestInput")},
            "outputs": {"type": "array", "items": _ref("RequestOutput")},
        },
    },
    "ResponseOutput": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "parameters": _ref("Parameters"),
            "data": {"type": "array"},
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _ref("Parameters"),
            "outputs": {"type": "array", "items": _ref("ResponseOutput")},
        },
    },
    "ModelStatistics": {
        "type": "object",
        "required": ["model_stats"],
        "properties": {
            "model_stats": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "version", "inference_stats"],
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "inference_count": {"type": "integer"},
                        "execution_count": {"type": "integer"},
                        "inference_stats": {"type": "object"},
                    },
                },
            }
        },
    },
    "RepositoryIndex": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "version", "state", "reason"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string", "enum": ["READY", "LOADING", "UNAVAILABLE"]},
                "reason": {"type": "string"},
            },
        },
    },
}


def _model_paths(versioned: bool) -> dict[str, Any]:
    base = "/v2/models/{model}" + ("/versions/{version}" if versioned else "")
    params = _model_params(versioned)
    infer_body = {
        "required": True,
        "description": "JSON; with the binary tensor data extension the JSON is followed by raw tensor bytes and the "
        "Inference-Header-Content-Length header gives the JSON's length",
        "content": {_JSON: {"schema": _ref("InferRequest")}},
    }
    infer_ok = {
        "description": "the outputs; when some travel as binary data the body is JSON followed by their bytes, the "
        "content type application/octet-stream and Inference-Header-Content-Length the JSON's length",
        "content": {_JSON: {"schema": _ref("InferResponse")},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }  # fmt: skip
    header = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
              "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}  # fmt: skip
    return {
        base: {"get": {"summary": "model metadata", "parameters": params,
                       "responses": {"200": _ok(_ref("ModelMetadata")), **_errors("400", "404", "429", "503")}}},
        base + "/ready": {"get": {"summary": "model readiness", "parameters": params,
                                  "responses": {"200": _ok(_ref("Ready")), **_errors("400", "404", "429"),
                                                "503": _ok(_ref("Ready"), "not ready")}}},
        base + "/config": {"get": {"summary": "model configuration (Triton's)", "parameters": params,
                                   "responses": {"200": _ok(_ref("ModelConfig")),
                                                 **_errors("400", "404", "429", "503")}}},
        base + "/stats": {"get": {"summary": "model statistics", "parameters": params,
                                  "responses": {"200": _ok(_ref("ModelStatistics")),
                                                **_errors("400", "404", "429", "503")}}},
        base + "/infer": {"post": {"summary": "inference", "parameters": [*params, header], "requestBody": infer_body,
                                   "responses": {"200": infer_ok, **_errors(*_BUSY, "404", "500", "503")}}},
    }  # fmt: skip


_TF_SCHEMAS: dict[str, Any] = {
    "TfModelStatus": {
        "type": "object",
        "required": ["model_version_status"],
        "properties": {
            "model_version_status": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["version", "state", "status"],
                    "properties": {
                        "version": {"type": "string"},
                        "state": {"type": "string", "enum": ["START", "LOADING", "AVAILABLE", "UNLOADING", "END"]},
                        "status": {
                            "type": "object",
                            "required": ["error_code", "error_message"],
                            "properties": {"error_code": {"type": "string"}, "error_message": {"type": "string"}},
                        },
                    },
                },
            }
        },
    },
    "TfModelMetadata": {
        "type": "object",
        "required": ["model_spec", "metadata"],
        "properties": {
            "model_spec": {
                "type": "object",
                "required": ["name", "signature_name", "version"],
                "properties": {
                    "name": {"type": "string"},
                    "signature_name": {"type": "string"},
                    "version": {"type": "string"},
                },
            },
            "metadata": {
                "type": "object",
                "required": ["signature_def"],
                "properties": {
                    "signature_def": {
                        "type": "object",
                        "required": ["signature_def"],
                        "properties": {"signature_def": {"type": "object", "required": ["serving_default"]}},
                    }
                },
            },
        },
    },
    "TfPredictRequest": {
        "description": "row format (instances: one item per batch row) or columnar format (inputs), not both",
        "type": "object",
        "properties": {
            "signature_name": {"type": "string", "description": "serving_default (the only signature), or absent"},
            "instances": {"type": "array", "minItems": 1},
            "inputs": {"description": "a tensor (one input), or an object keyed by input name"},
        },
    },
    "TfPredictResponse": {
        "description": "predictions (row format) or outputs (columnar format), as the request",
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {"predictions": {"type": "array"}, "outputs": {}},
    },
}


def _tf_paths() -> dict[str, Any]:
    """TensorFlow Serving's REST API (server.tfserving)."""
    label = {"name": "label", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^/:]+$"}}
    body = {"required": True, "content": {_JSON: {"schema": _ref("TfPredictRequest")}}}
    paths: dict[str, Any] = {}
    for versioned in (False, True):
        base = "/v1/models/{model}" + ("/versions/{version}" if versioned else "")
        params = _model_params(versioned, pattern="^[^/:]+$")
        paths[base] = {
            "get": {
                "summary": "TF Serving: model status",
                "parameters": params,
                "responses": {"200": _ok(_ref("TfModelStatus")), **_errors("404", "429")},
            }
        }
        paths[base + "/metadata"] = {
            "get": {
                "summary": "TF Serving: model metadata (signature_def)",
                "parameters": params,
                "responses": {"200": _ok(_ref("TfModelMetadata")), **_errors("404", "429", "503")},
            }
        }
        paths[base + ":predict"] = {
            "post": {
                "summary": "TF Serving: predict",
                "parameters": params,
                "requestBody": body,
                "responses": {"200": _ok(_ref("TfPredictResponse")), **_errors(*_BUSY, "404", "500", "503")},
            }
        }
        for method in ("classify", "regress"):
            paths[f"{base}:{method}"] = {
                "post": {
                    "summary": f"TF Serving: {method}, unsupported (no model has a {method} signature): 400",
                    "parameters": params,
                    "requestBody": {"required": False, "content": {_JSON: {"schema": {"type": "object"}}}},
                    "responses": {**_errors("400", "404", "429")},
                }
            }
    labelled = "/v1/models/{model}/labels/{label}"
    refused = {"responses": _errors("400", "404", "429")}  # 404: a label with ':' or '/' names no route
    paths[labelled] = {
        "get": {
            "summary": "TF Serving: version labels, unsupported: 400",
            "parameters": [*_model_params(False, pattern="^[^/:]+$"), label],
            **refused,
        }
    }
    return paths  # fmt: skip


def document(server_version: str) -> dict[str, Any]:
    """The OpenAPI document (a new dict on each call)."""
    refused = {"summary": "load/unload: served on the admin port only",
               "parameters": _model_params(False),
               "requestBody": {"required": False, "content": {_JSON: {"schema": {"type": "object"}}}},
               "responses": {"403": _error("not served on the inference ports"), **_errors(*_BUSY)}}  # fmt: skip
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": {"summary": "liveness", "responses": {"200": _ok(_ref("Live"))}}},
        "/v2/health/ready": {"get": {"summary": "readiness", "responses": {
            "200": _ok(_ref("Ready")), "503": _ok(_ref("Ready"), "not ready")}}},
        "/v2": {"get": {"summary": "server metadata",
                        "responses": {"200": _ok(_ref("ServerMetadata")), **_errors("429")}}},
        "/v2/models/stats": {"get": {"summary": "statistics of every loaded version",
                                     "responses": {"200": _ok(_ref("ModelStatistics")), **_errors("429")}}},
        **_model_paths(False),
        **_model_paths(True),
        "/v2/repository/index": {"post": {
            "summary": "repository index",
            "requestBody": {"required": False, "content": {_JSON: {"schema": {
                "type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
            "responses": {"200": _ok(_ref("RepositoryIndex")), **_errors(*_BUSY)}}},
        "/v2/repository/models/{model}/load": {"post": refused},
        "/v2/repository/models/{model}/unload": {"post": refused},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/v2/openapi.json": {"get": {"summary": "this document", "responses": {
            "200": _ok({"type": "object"}), **_errors("429")}}},
        **_tf_paths(),
    }  # fmt: skip
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "modelyard-server inference API",
            "version": server_version,
            "description": "The Open Inference Protocol (KServe V2) REST API with Triton's binary tensor data, "
            "classification, model configuration, statistics and repository index extensions, and TensorFlow "
            'Serving\'s REST API (/v1/models). Errors are {"error": "..."}. See docs/server.md.',
        },
        "paths": paths,
        "components": {"schemas": {**_SCHEMAS, **_TF_SCHEMAS}},
    }
