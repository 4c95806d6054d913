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


def element_count(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        if dim < 0:
            raise DatatypeError(f"shape {list(shape)} has a negative dimension")
        count *= dim
    return count


def array_from_values(values: Any, datatype: str, shape: Sequence[int]) -> npt.NDArray[Any]:
    """Tensor values as a (possibly nested) list, row-major, → an array of ``shape`` and ``datatype``.

    What JSON ``data`` and gRPC's typed contents carry. Values that do not fit the datatype (``-1`` or ``300`` as
    UINT8, a string as FP32, a BYTES element that is not a string) and a count that does not fit the shape are
    DatatypeError, a client error; BYTES elements are ``bytes`` or strings (stored as UTF-8).
    """
    count = element_count(shape)
    if datatype == "BYTES":
        try:
            flat = np.asarray(values, dtype=np.object_).reshape(-1)
        except ValueError as exc:
            raise DatatypeError(f"data does not fit datatype BYTES: {exc}") from None
        array = np.empty(len(flat), dtype=np.object_)
        for i, item in enumerate(flat):
            if isinstance(item, str):
                array[i] = item.encode()
            elif isinstance(item, bytes | bytearray):
                array[i] = bytes(item)
            else:
                raise DatatypeError(f"BYTES element {i} is {type(item).__name__}, not a string")
    else:
        dtype = numpy_dtype(datatype)
        try:
            array = np.asarray(values, dtype=dtype).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise DatatypeError(f"data does not fit datatype {datatype}: {exc}") from None
    if array.size != count:
        raise DatatypeError(f"shape {list(shape)} needs {count} elements, data has {array.size}")
    return array.reshape(shape)


def decode_bytes(buffer: bytes | memoryview, count: int) -> npt.NDArray[np.object_]:
    """``count`` length-prefixed BYTES elements → a 1-D object array of ``bytes``."""
    view = memoryview(buffer)
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
