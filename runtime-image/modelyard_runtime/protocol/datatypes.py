"""Tensor datatypes of the Open Inference Protocol and their byte encodings (pure).

Binary tensors are little-endian and row-major; BOOL is one byte per element; a BYTES tensor is a run
of elements, each a 4-byte little-endian length followed by that many bytes (Triton's layout, which
``tritonclient`` writes and reads).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.protocol.checks import MAX_DIMS, ShapeError, checked_count

_TO_NUMPY: dict[str, npt.DTypeLike] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_FROM_NUMPY = {np.dtype(v): k for k, v in _TO_NUMPY.items() if k != "BYTES"}
# ONNX tensor element types (onnx.TensorProto enum names, as ONNX Runtime reports them) → protocol
_FROM_ONNX = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}  # fmt: skip
_TO_ONNX = {v: k for k, v in _FROM_ONNX.items()}

DATATYPES = tuple(_TO_NUMPY)
_LEN = struct.Struct("<I")


class DatatypeError(ValueError):
    """A datatype, shape or payload that does not fit the protocol (a client error: HTTP 400)."""


def numpy_dtype(datatype: str) -> np.dtype[np.generic]:
    try:
        return np.dtype(_TO_NUMPY[datatype])
    except KeyError:
        raise DatatypeError(f"unsupported datatype {datatype!r}; expected one of {', '.join(DATATYPES)}") from None


def protocol_datatype(dtype: npt.DTypeLike) -> str:
    """The protocol name of a numpy dtype (object and string arrays are BYTES)."""
    dt = np.dtype(dtype)
    if dt.kind in ("O", "S", "U"):
        return "BYTES"
    try:
        return _FROM_NUMPY[dt]
    except KeyError:
        raise DatatypeError(f"numpy dtype {dt} has no Open Inference Protocol datatype") from None


def from_onnx_type(onnx_type: str) -> str:
    try:
        return _FROM_ONNX[onnx_type]
    except KeyError:
        raise DatatypeError(f"ONNX type {onnx_type} has no Open Inference Protocol datatype") from None


def onnx_type(datatype: str) -> str:
    """The ONNX Runtime type string of a protocol datatype (``FP32`` -> ``tensor(float)``); KeyError when none."""
    return _TO_ONNX[datatype]


def element_count(shape: Sequence[int]) -> int:
    """The element count of a shape a client declared, checked (:func:`~.checks.checked_count`)."""
    try:
        return checked_count(shape)
    except ShapeError as exc:
        raise DatatypeError(str(exc)) from None


# What JSON ``data`` may hold per datatype, as Triton has it: integers for the integer types (not 1.5, "1" or true),
# numbers for the floating-point types (not strings or booleans), booleans for BOOL, strings for BYTES (bytes from
# gRPC's bytes_contents).
_ALLOWED: dict[str, tuple[frozenset[type], str]] = {
    "BOOL": (frozenset({bool}), "true or false"),
    "BYTES": (frozenset({str, bytes}), "strings"),
    **{t: (frozenset({int}), "integers") for t in ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                                                    "INT64")},
    **{t: (frozenset({int, float}), "numbers") for t in ("FP16", "FP32", "FP64")},
}  # fmt: skip
_JSON_KIND = {bool: "a boolean", int: "an integer", float: "a number with a fraction", str: "a string",
              bytes: "bytes", dict: "an object", list: "a list", type(None): "null"}  # fmt: skip


def _flatten(values: Any, datatype: str) -> list[Any]:
    """Row-major values from a flat or nested list (no deeper than a tensor's rank: no recursion on client input)."""
    if not isinstance(values, list):
        raise DatatypeError(f"{datatype} data must be a list, got {_JSON_KIND.get(type(values), 'something else')}")
    flat: list[Any] = values
    for _ in range(MAX_DIMS + 1):
        if not flat or not isinstance(flat[0], list):
            return flat
        if not all(isinstance(item, list) for item in flat):
            raise DatatypeError(f"{datatype} data mixes lists and values at one level of nesting")
        if len(set(map(len, flat))) > 1:
            raise DatatypeError(f"{datatype} data is ragged: nested lists of one level differ in length")
        flat = [item for row in flat for item in row]
    raise DatatypeError(f"{datatype} data is nested deeper than {MAX_DIMS} levels")


def array_from_values(values: Any, datatype: str, shape: Sequence[int]) -> npt.NDArray[Any]:
    """Tensor values as a (possibly nested) list, row-major, → an array of ``shape`` and ``datatype``.

    What JSON ``data`` and gRPC's typed contents carry. The shape is checked first, then the count of values against
    it, then each value's type (Triton's rules: ``1.5`` or ``"1"`` is no INT32, ``"1"`` or ``true`` no FP32, ``1``
    no BOOL), then the range (``-1`` or ``300`` as UINT8); any of these is a DatatypeError, a client error. BYTES
    elements are strings (stored as UTF-8) or ``bytes``.
    """
    count = element_count(shape)
    dtype = numpy_dtype(datatype)
    flat = _flatten(values, datatype)
    if len(flat) != count:
        raise DatatypeError(f"shape {list(shape)} needs {count} elements, data has {len(flat)}")
    allowed, noun = _ALLOWED.get(datatype, (frozenset(), "values"))
    if not allowed.issuperset(map(type, flat)):
        i, item = next((i, v) for i, v in enumerate(flat) if type(v) not in allowed)
        raise DatatypeError(
            f"{datatype} data must be {noun}: element {i} is {_JSON_KIND.get(type(item), 'something else')}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=np.object_)
        array[:] = [v.encode() if isinstance(v, str) else v for v in flat]
        return array.reshape(shape)
    try:
        return np.asarray(flat, dtype=dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DatatypeError(f"data does not fit datatype {datatype}: {exc}") from None


def decode_bytes(buffer: bytes | memoryview, count: int) -> npt.NDArray[np.object_]:
    """``count`` length-prefixed BYTES elements → a 1-D object array of ``bytes``."""
    view = memoryview(buffer)
    if 4 * count > len(view):  # before allocating: every element costs at least its 4-byte length
        raise DatatypeError(f"BYTES tensor of {count} elements needs at least {4 * count} bytes, got {len(view)}")
    out = np.empty(count, dtype=np.object_)
    offset = 0
    for i in range(count):
        if offset + 4 > len(view):
            raise DatatypeError(f"BYTES tensor ends after {i} of {count} elements")
        (length,) = _LEN.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise DatatypeError(f"BYTES element {i} claims {length} bytes but only {len(view) - offset} remain")
        out[i] = bytes(view[offset : offset + length])
        offset += length
    if offset != len(view):
        raise DatatypeError(f"BYTES tensor has {len(view) - offset} trailing bytes after {count} elements")
    return out


def encode_bytes(array: npt.NDArray[np.generic]) -> bytes:
    """An object/string array (row-major) → length-prefixed elements."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = item.encode() if isinstance(item, str) else bytes(item)  # type: ignore[call-overload]
        parts.append(_LEN.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def decode_tensor(buffer: bytes | memoryview, datatype: str, shape: Sequence[int]) -> npt.NDArray[np.generic]:
    """Raw tensor bytes → an array of ``shape``; fixed-size types become a zero-copy read-only view."""
    count = element_count(shape)
    if datatype == "BYTES":
        return decode_bytes(buffer, count).reshape(shape)
    dtype = numpy_dtype(datatype).newbyteorder("<")
    expected = count * dtype.itemsize
    if len(buffer) != expected:
        raise DatatypeError(f"{datatype} tensor of shape {list(shape)} needs {expected} bytes, got {len(buffer)}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def encode_tensor(array: npt.NDArray[np.generic]) -> bytes:
    """An array → raw little-endian row-major bytes (length-prefixed elements for BYTES)."""
    if protocol_datatype(array.dtype) == "BYTES":
        return encode_bytes(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
