"""Infer requests and responses of the REST binding, JSON and binary tensor extension (pure).

A request body is JSON, optionally followed by raw tensor bytes; the header
``Inference-Header-Content-Length`` gives the JSON's length. Inputs with ``parameters.binary_data_size``
take their bytes from the tail in order; the others carry ``data`` in the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelyard_runtime.errors import BadRequestError
from modelyard_runtime.protocol.datatypes import (
    DatatypeError,
    decode_tensor,
    element_count,
    encode_tensor,
    numpy_dtype,
    protocol_datatype,
)

HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass
class RequestedOutput:
    name: str
    binary: bool


@dataclass
class InferRequest:
    inputs: dict[str, npt.NDArray[Any]]
    datatypes: dict[str, str]
    outputs: list[RequestedOutput] | None
    binary_output: bool
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _json_data(data: Any, datatype: str, shape: list[int]) -> npt.NDArray[Any]:
    flat = np.asarray(data, dtype=object).reshape(-1) if datatype == "BYTES" else None
    if datatype == "BYTES":
        assert flat is not None
        out = np.empty(len(flat), dtype=np.object_)
        for i, item in enumerate(flat):
            out[i] = item.encode() if isinstance(item, str) else bytes(item)
        array = out
    else:
        try:
            array = np.asarray(data, dtype=numpy_dtype(datatype)).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise BadRequestError(f"data does not fit datatype {datatype}: {exc}") from None
    if array.size != element_count(shape):
        raise BadRequestError(f"shape {shape} needs {element_count(shape)} elements, data has {array.size}")
    return array.reshape(shape)


def parse_infer_request(body: bytes, header_length: int | None) -> InferRequest:
    if header_length is not None and not 0 <= header_length <= len(body):
        raise BadRequestError(f"{HEADER_LENGTH} {header_length} does not fit a body of {len(body)} bytes")
    head = body if header_length is None else body[:header_length]
    tail = memoryview(body)[len(head) :]
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise BadRequestError("request needs an 'inputs' list")
    inputs: dict[str, npt.NDArray[Any]] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    try:
        for item in doc["inputs"]:
            name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
            if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
                raise BadRequestError("each input needs name, datatype and shape")
            if name in inputs:
                raise BadRequestError(f"input {name!r} given twice")
            size = (item.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                if offset + int(size) > len(tail):
                    raise BadRequestError(f"input {name!r} claims {size} binary bytes beyond the body")
                inputs[name] = decode_tensor(tail[offset : offset + int(size)], datatype, shape)
                offset += int(size)
            elif "data" in item:
                inputs[name] = _json_data(item["data"], datatype, shape)
            else:
                raise BadRequestError(f"input {name!r} has neither data nor binary_data_size")
            datatypes[name] = datatype
    except DatatypeError as exc:
        raise BadRequestError(str(exc)) from None
    if offset != len(tail):
        raise BadRequestError(f"{len(tail) - offset} binary bytes after the last input")
    params = doc.get("parameters") or {}
    outputs = None
    if doc.get("outputs") is not None:
        outputs = [
            RequestedOutput(o["name"], bool((o.get("parameters") or {}).get("binary_data", False)))
            for o in doc["outputs"]
        ]
    request_id = doc.get("id")
    return InferRequest(
        inputs=inputs,
        datatypes=datatypes,
        outputs=outputs,
        binary_output=bool(params.get("binary_data_output", False)),
        id=str(request_id) if request_id is not None else None,
        parameters=params,
    )


def _json_values(array: npt.NDArray[Any]) -> list[Any]:
    flat = array.reshape(-1)
    if flat.dtype == np.object_:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    return list(flat.tolist())


def build_infer_response(
    model: str,
    version: str,
    request: InferRequest,
    outputs: dict[str, npt.NDArray[Any]],
) -> tuple[bytes, int | None]:
    """The response body and, when binary tensors follow the JSON, the JSON's length."""
    wanted = request.outputs or [RequestedOutput(n, request.binary_output) for n in outputs]
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
            entry["data"] = _json_values(array)
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request.id is not None:
        doc["id"] = request.id
    head = orjson.dumps(doc)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
