"""TensorFlow Serving's REST API in JSON: predict requests and responses, model status and metadata (pure).

The rules are TF Serving's own (its ``api_rest.md`` and ``util/json_tensor.cc``), so that a TF Serving client only
changes the host:

- A predict request is ``{"signature_name"?, "instances": [...]}`` (row format: one item per batch row, a value
  when the model has one input, else an object keyed by input name; every item must have the same shape) or
  ``{"signature_name"?, "inputs": value | {name: value}}`` (columnar format: whole tensors). Not both.
- The response mirrors it: ``{"predictions": [...]}`` (one item per row of the outputs, an object keyed by output
  name when there are several) or ``{"outputs": value | {name: value}}``.
- A string (BYTES) value may be ``{"b64": "<base64>"}``; string outputs whose name ends in ``_bytes`` are written
  so, the others as strings.
- Float values may be the tokens ``NaN``, ``Infinity`` and ``-Infinity``, in requests and responses.

Every tensor is checked dense (the shape is taken from the first element at each level, every list must match it)
and no deeper than MAX_DIMS before anything is allocated; values are typed by the model's datatype with the
protocol's own rules (:func:`~.datatypes.array_from_values`).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelyard_runtime.errors import BadRequestError
from modelyard_runtime.protocol.checks import MAX_DIMS, TensorSpec
from modelyard_runtime.protocol.datatypes import DatatypeError, array_from_values

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
BYTES_SUFFIX = "_bytes"  # string outputs with this name suffix are written as {"b64": ...}

# protocol datatype -> TensorFlow's DataType enum name (tensorflow/core/framework/types.proto)
TF_DTYPES = {
    "BOOL": "DT_BOOL", "UINT8": "DT_UINT8", "UINT16": "DT_UINT16", "UINT32": "DT_UINT32", "UINT64": "DT_UINT64",
    "INT8": "DT_INT8", "INT16": "DT_INT16", "INT32": "DT_INT32", "INT64": "DT_INT64", "FP16": "DT_HALF",
    "FP32": "DT_FLOAT", "FP64": "DT_DOUBLE", "BYTES": "DT_STRING",
}  # fmt: skip


class Format(enum.Enum):
    ROW = "instances"
    COLUMNAR = "inputs"


@dataclass
class PredictRequest:
    inputs: dict[str, npt.NDArray[Any]]
    datatypes: dict[str, str]
    format: Format


def load_json(body: bytes) -> Any:
    """A request body as TF Serving reads it: JSON that may hold ``NaN``, ``Infinity`` and ``-Infinity``. orjson
    parses it (nesting beyond 1024 levels is a 400); only a body it refuses that has such tokens is read again by
    the standard library, whose nesting limit is a 400 too."""
    if not body.strip():
        raise BadRequestError("JSON Parse error: The document is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"NaN" not in body and b"Infinity" not in body:
            raise BadRequestError(f"JSON Parse error: {exc}") from None
    try:
        return json.loads(body)
    except RecursionError:
        raise BadRequestError("JSON Parse error: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"JSON Parse error: {exc}") from None


def _is_b64(value: Any) -> bool:
    """``{"b64": "<string>"}`` and nothing else, as TF Serving recognises a binary value."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _b64(value: dict[str, str], where: str) -> bytes:
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"{where}: unable to base64 decode {text[:40]!r}") from None


def _dense(value: Any, where: str) -> tuple[list[Any], list[int]]:
    """A (nested) JSON value → its leaves, row-major, and its shape. The shape comes from the first element at each
    level (TF Serving's rule); every list must then match it, so a ragged or unevenly nested value is a 400.
    Iterative: no recursion on client input."""
    shape: list[int] = []
    item = value
    while isinstance(item, list):
        if len(shape) == MAX_DIMS:
            raise BadRequestError(f"{where}: nested deeper than {MAX_DIMS} levels")
        shape.append(len(item))
        if not item:
            break
        item = item[0]
    level: list[Any] = [value]
    for depth, size in enumerate(shape):
        below: list[Any] = []
        for part in level:
            if not isinstance(part, list):
                raise BadRequestError(f"{where}: a value at level {depth + 1} where shape {shape} needs a list")
            if len(part) != size:
                raise BadRequestError(
                    f"{where}: a list of {len(part)} at level {depth + 1} where shape {shape} needs {size}"
                )
            below.extend(part)
        level = below
    return level, shape


def _leaves(leaves: list[Any], datatype: str, where: str) -> list[Any]:
    """String values as UTF-8 bytes and ``{"b64": ...}`` decoded, for a BYTES tensor; others as they are (their
    types are checked by :func:`~.datatypes.array_from_values`)."""
    if datatype != "BYTES":
        for leaf in leaves:
            if isinstance(leaf, dict):
                raise BadRequestError(f"{where}: an object where {TF_DTYPES.get(datatype, datatype)} needs numbers")
        return leaves
    out: list[Any] = []
    for leaf in leaves:
        if isinstance(leaf, str):
            out.append(leaf.encode())
        elif isinstance(leaf, dict):
            if not _is_b64(leaf):
                raise BadRequestError(f'{where}: an object that is not {{"b64": "<base64 string>"}}')
            out.append(_b64(leaf, where))
        else:
            out.append(leaf)
    return out


def _array(leaves: list[Any], datatype: str, shape: list[int], where: str) -> npt.NDArray[Any]:
    try:
        return array_from_values(_leaves(leaves, datatype, where), datatype, shape)
    except DatatypeError as exc:
        raise BadRequestError(f"{where}: {exc}") from None


def _rows(instances: Any, specs: Sequence[TensorSpec]) -> dict[str, npt.NDArray[Any]]:
    if not isinstance(instances, list):
        raise BadRequestError("'instances' must be a list")
    if not instances:
        raise BadRequestError("no values in the 'instances' list")
    names = [s.name for s in specs]
    objects = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not objects and len(specs) > 1:
        raise BadRequestError(
            f"'instances' is a plain list, but the model has {len(specs)} inputs: each instance must be an object "
            f"with the keys {', '.join(names)}"
        )
    leaves: dict[str, list[Any]] = {n: [] for n in names}
    shapes: dict[str, list[int]] = {}
    for i, item in enumerate(instances):
        is_object = isinstance(item, dict) and not _is_b64(item)
        if objects and not is_object:
            raise BadRequestError(f"expecting an object but got a value or list at item {i} of 'instances'")
        if not objects and is_object:
            raise BadRequestError(f"expecting a value or list but got an object at item {i} of 'instances'")
        if objects and set(item) != set(names):
            raise BadRequestError(f"item {i} of 'instances' must have exactly the keys {', '.join(names)}")
        for name in names:
            where = f"item {i} of 'instances', input {name!r}" if objects else f"item {i} of 'instances'"
            values, shape = _dense(item[name] if objects else item, where)
            first = shapes.setdefault(name, shape)
            if shape != first:
                raise BadRequestError(
                    f"{where}: shape {shape}, but item 0 has {first}; every instance must have the same shape"
                )
            leaves[name].extend(values)
    by_name = {s.name: s for s in specs}
    return {
        n: _array(leaves[n], by_name[n].datatype, [len(instances), *shapes[n]], f"input {n!r} of 'instances'")
        for n in names
    }


def _columns(value: Any, specs: Sequence[TensorSpec]) -> dict[str, npt.NDArray[Any]]:
    if not isinstance(value, dict) or _is_b64(value):
        if len(specs) > 1:
            raise BadRequestError(
                f"'inputs' is a plain value or list, but the model has {len(specs)} inputs: send an object keyed by "
                f"input name ({', '.join(s.name for s in specs)})"
            )
        tensors = {specs[0].name: value}
    else:
        for spec in specs:
            if spec.name not in value:
                raise BadRequestError(f"Missing named input: {spec.name} in 'inputs' object.")
        tensors = {s.name: value[s.name] for s in specs}  # other keys are ignored, as TF Serving does
    arrays = {}
    for spec in specs:
        where = f"input {spec.name!r} of 'inputs'"
        leaves, shape = _dense(tensors[spec.name], where)
        arrays[spec.name] = _array(leaves, spec.datatype, shape, where)
    return arrays


def parse_predict(body: bytes, specs: Sequence[TensorSpec]) -> PredictRequest:
    """A ``:predict`` body → the model's inputs (named and typed by ``specs``, the model's inputs) and its format.
    Shapes are checked against the model by the data plane, like any inference request's."""
    doc = load_json(body)
    if not isinstance(doc, dict):
        raise BadRequestError("the request body must be a JSON object")
    signature = doc.get("signature_name", "")
    if not isinstance(signature, str):
        raise BadRequestError("'signature_name' key must be a string value.")
    if signature not in ("", DEFAULT_SIGNATURE):
        raise BadRequestError(f'Serving signature name: "{signature[:200]}" not found in signature def')
    if "instances" in doc and "inputs" in doc:
        raise BadRequestError("expecting only one of 'inputs' or 'instances' keys")
    if not specs:
        raise BadRequestError("the model takes no inputs")
    if "instances" in doc:
        fmt, inputs = Format.ROW, _rows(doc["instances"], specs)
    elif "inputs" in doc:
        fmt, inputs = Format.COLUMNAR, _columns(doc["inputs"], specs)
    else:
        raise BadRequestError("Missing 'inputs' or 'instances' key")
    return PredictRequest(inputs, {s.name: s.datatype for s in specs}, fmt)


# JSON has no NaN or infinities; TF Serving writes the bare tokens. orjson cannot, so such values go through as
# placeholder strings unique to the response, which are then replaced by the tokens (as the OIP binding does).
_NON_FINITE = {"nan": b"NaN", "inf": b"Infinity", "-inf": b"-Infinity"}


def _json_tensor(array: npt.NDArray[Any], name: str, marker: str) -> Any:
    """An output as what orjson writes: a numeric array itself (float32 in its shortest form), else nested lists."""
    if array.dtype.kind in "OSU":
        b64 = name.endswith(BYTES_SUFFIX)
        values: list[Any] = []
        for item in array.reshape(-1):
            raw = item if isinstance(item, bytes) else str(item).encode()
            values.append({"b64": base64.b64encode(raw).decode()} if b64 else raw.decode("utf-8", "replace"))
        out = np.empty(len(values), dtype=np.object_)
        out[:] = values
        return out.reshape(array.shape).tolist()
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        flat = [v if np.isfinite(v) else f"{marker}{float(v)}" for v in array.reshape(-1)]
        out = np.empty(len(flat), dtype=np.object_)
        out[:] = flat
        return out.reshape(array.shape).tolist()
    return array[()] if array.ndim == 0 else np.ascontiguousarray(array)  # (ascontiguousarray makes 0-d 1-d)


def build_predict_response(outputs: Mapping[str, npt.NDArray[Any]], fmt: Format) -> bytes:
    """The response to a ``:predict`` in the request's format, its outputs in the order given."""
    if not outputs:
        raise BadRequestError("the model returned no outputs")
    if fmt is Format.ROW:
        rows = 0
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] < 1:
                raise BadRequestError(
                    f"output {name!r} has shape {list(array.shape)}, no batch dimension to split into predictions; "
                    "send the request in the columnar format ('inputs')"
                )
            if rows and array.shape[0] != rows:
                raise BadRequestError(
                    f"output {name!r} has batch size {array.shape[0]}, another output {rows}; send the request in "
                    "the columnar format ('inputs')"
                )
            rows = array.shape[0]
    marker = f"\u0000{secrets.token_hex(8)}:"  # for NaN and infinities; no client chooses it
    values = {name: _json_tensor(array, name, marker) for name, array in outputs.items()}
    single = next(iter(values.values())) if len(values) == 1 else None
    doc: dict[str, Any]
    if fmt is Format.COLUMNAR:
        doc = {"outputs": single if len(values) == 1 else values}
    elif len(values) == 1:
        doc = {"predictions": single}
    else:
        doc = {"predictions": [{name: value[i] for name, value in values.items()} for i in range(rows)]}
    body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in outputs.values()):
        quoted = orjson.dumps(marker)[:-1]  # the opening quote and the marker as orjson escapes it
        for text, token in _NON_FINITE.items():
            body = body.replace(quoted + text.encode() + b'"', token)
    return body


def tensor_info(spec: TensorSpec) -> dict[str, Any]:
    """A tensor of a signature as TF Serving's metadata writes a ``TensorInfo`` (sizes are int64, so strings)."""
    names = list(spec.dim_names) + [None] * (len(spec.shape) - len(spec.dim_names))
    return {
        "dtype": TF_DTYPES.get(spec.datatype, "DT_INVALID"),
        "tensor_shape": {
            "dim": [{"size": str(size), "name": dim or ""} for size, dim in zip(spec.shape, names, strict=False)],
            "unknown_rank": False,
        },
        "name": spec.name,
    }


def model_metadata(
    name: str, version: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> dict[str, Any]:
    """``GET /v1/models/{m}[/versions/{v}]/metadata``: TF Serving's ``GetModelMetadataResponse`` in JSON, with the
    one signature served, ``serving_default``."""
    signature = {
        "inputs": {t.name: tensor_info(t) for t in inputs},
        "outputs": {t.name: tensor_info(t) for t in outputs},
        "method_name": PREDICT_METHOD,
        "defaults": {},
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": version},
        "metadata": {"signature_def": {"signature_def": {DEFAULT_SIGNATURE: signature}}},
    }


def version_status(version: str, state: str, reason: str) -> dict[str, Any]:
    """One version's entry of ``GetModelStatusResponse`` from its repository-index row (state READY, LOADING or
    UNAVAILABLE): AVAILABLE, LOADING; a version unloaded or evicted is END, one whose load failed END with error
    code UNKNOWN and the reason; one never loaded (dynamic mode loads it on its first request) START."""
    error = {"error_code": "OK", "error_message": ""}
    if state == "READY":
        tf_state = "AVAILABLE"
    elif state == "LOADING":
        tf_state = "LOADING"
    elif not reason:
        tf_state = "START"
    else:
        tf_state = "END"
        if not reason.startswith(("unloaded", "evicted")):
            error = {"error_code": "UNKNOWN", "error_message": reason}
    return {"version": version, "state": tf_state, "status": error}
