"""Infer requests and responses of the REST binding, JSON and binary tensor extension (pure).

A request body is JSON, optionally followed by raw tensor bytes; the header
``Inference-Header-Content-Length`` gives the JSON's length. Inputs with ``parameters.binary_data_size``
take their bytes from the tail in order; the others carry ``data`` in the JSON.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelyard_runtime.errors import BadRequestError
from modelyard_runtime.protocol.checks import check_supported
from modelyard_runtime.protocol.classification import class_count
from modelyard_runtime.protocol.datatypes import (
    DatatypeError,
    array_from_values,
    decode_tensor,
    encode_tensor,
    protocol_datatype,
)

HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass
class RequestedOutput:
    name: str
    binary: bool
    class_count: int = 0  # > 0: the classification extension's top classes instead of the tensor


@dataclass
class InferRequest:
    inputs: dict[str, npt.NDArray[Any]]
    datatypes: dict[str, str]
    outputs: list[RequestedOutput] | None
    binary_output: bool
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object body (empty: ``{}``), parsed with orjson: nesting beyond 1024 levels is a 400, never a
    recursion error."""
    if not body.strip():
        return {}
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadRequestError("request body must be a JSON object")
    return parsed


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` when it is a JSON object, ``{}`` when absent (null), else a bad request naming ``what``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(f"{what} must be a JSON object")
    return value


def flag(value: Any, what: str) -> bool:
    """A boolean parameter (pass ``False`` when absent); anything but true/false, null included, is a bad request
    naming ``what``."""
    if not isinstance(value, bool):
        raise BadRequestError(f"{what} must be true or false, got {value!r}"[:200])
    return value


def _binary_size(item: dict[str, Any], name: str) -> int | None:
    size = _object(item.get("parameters"), f"parameters of input {name!r}").get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadRequestError(f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}")
    return size


def _requested_outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequestError("'outputs' must be a list")
    outputs = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequestError(f"output {i} must be an object with a name")
        params = _object(item.get("parameters"), f"parameters of output {item['name']!r}")
        count = class_count(params.get("classification", 0), item["name"])
        binary = flag(params.get("binary_data", False), f"parameters.binary_data of output {item['name']!r}")
        outputs.append(RequestedOutput(item["name"], binary, count))
    return outputs


def parse_infer_request(body: bytes, header_length: int | None) -> InferRequest:
    """A request body → its inputs (decoded, checked against their declared shapes) and what it asks back.

    ``header_length`` is the parsed ``Inference-Header-Content-Length`` (:func:`~.checks.check_header_length`)."""
    if header_length is not None and not 0 <= header_length <= len(body):
        raise BadRequestError(f"{HEADER_LENGTH} {header_length} does not fit a body of {len(body)} bytes")
    head = body if header_length is None else body[:header_length]
    tail = memoryview(body)[len(head) :]
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if b"NaN" in head or b"Infinity" in head:
            hint = " (NaN and Infinity are not JSON numbers: send such a tensor as binary data, binary_data_size)"
        raise BadRequestError(f"request is not valid JSON: {exc}{hint}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise BadRequestError("request needs an 'inputs' list")
    inputs: dict[str, npt.NDArray[Any]] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    params = _object(doc.get("parameters"), "parameters")
    tensors = [*doc["inputs"], *(doc.get("outputs") or [] if isinstance(doc.get("outputs"), list) else [])]
    check_supported(
        params, [t["parameters"] for t in tensors if isinstance(t, dict) and isinstance(t.get("parameters"), dict)]
    )
    for i, item in enumerate(doc["inputs"]):
        if not isinstance(item, dict):
            raise BadRequestError(f"input {i} must be a JSON object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
            raise BadRequestError(f"input {i} needs a name, a datatype and a shape")
        if name in inputs:
            raise BadRequestError(f"input {name!r} given twice")
        try:
            size = _binary_size(item, name)
            if size is not None:
                if offset + size > len(tail):
                    raise BadRequestError(f"input {name!r} claims {size} binary bytes beyond the body")
                inputs[name] = decode_tensor(tail[offset : offset + size], datatype, shape)
                offset += size
            elif "data" in item:
                inputs[name] = array_from_values(item["data"], datatype, shape)
            else:
                raise BadRequestError(f"input {name!r} has neither data nor binary_data_size")
        except DatatypeError as exc:
            raise BadRequestError(f"input {name!r}: {exc}") from None
        datatypes[name] = datatype
    if offset != len(tail):
        raise BadRequestError(f"{len(tail) - offset} binary bytes after the last input")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError("'id' must be a string")
    return InferRequest(
        inputs=inputs,
        datatypes=datatypes,
        outputs=_requested_outputs(doc.get("outputs")),
        binary_output=flag(params.get("binary_data_output", False), "parameters.binary_data_output"),
        id=request_id,
        parameters=params,
    )


# JSON has no NaN or infinities. Outputs that hold them are written with the tokens NaN, Infinity and -Infinity (what
# JavaScript's and Python's serialisers write, and what tritonclient's JSON parser reads back as float nan/inf); a
# client whose parser refuses them asks for the output as binary data. orjson cannot write the tokens, so such values
# go through as placeholder strings, unique to the response, that are then replaced by the bare tokens.
_NON_FINITE = {"nan": b"NaN", "inf": b"Infinity", "-inf": b"-Infinity"}


def _json_values(array: npt.NDArray[Any], marker: str) -> list[Any]:
    flat = array.reshape(-1)
    if flat.dtype == np.object_:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    values = list(flat.tolist())
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        values = [v if math.isfinite(v) else f"{marker}{v}" for v in values]
    return values


def build_infer_response(
    model: str,
    version: str,
    request: InferRequest,
    outputs: dict[str, npt.NDArray[Any]],
) -> tuple[bytes, int | None]:
    """The response body and, when binary tensors follow the JSON, the JSON's length."""
    wanted = request.outputs or [RequestedOutput(n, request.binary_output) for n in outputs]
    marker = f"\u0000{secrets.token_hex(8)}:"  # for NaN and infinities (see _NON_FINITE); no client chooses it
    non_finite = False
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for want in wanted:
        array = outputs[want.name]
        datatype = protocol_datatype(array.dtype)
        entry: dict[str, Any] = {"name": want.name, "datatype": datatype, "shape": list(array.shape)}
        if want.binary or datatype == "FP16":  # FP16 cannot travel as JSON numbers
            raw = encode_tensor(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = _json_values(array, marker)
            non_finite = non_finite or (array.dtype.kind == "f" and not np.isfinite(array).all())
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request.id is not None:
        doc["id"] = request.id
    head = orjson.dumps(doc)
    if non_finite:
        quoted = orjson.dumps(marker)[:-1]  # the opening quote and the marker as orjson escapes it
        for text, token in _NON_FINITE.items():
            head = head.replace(quoted + text.encode() + b'"', token)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
