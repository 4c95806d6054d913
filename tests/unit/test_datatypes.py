"""Protocol codecs, checked against tritonclient's own encoders (the client our users run)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.utils as tu

from modelyard_runtime.protocol.datatypes import (
    DATATYPES,
    DatatypeError,
    array_from_values,
    decode_tensor,
    encode_tensor,
    from_onnx_type,
    numpy_dtype,
    protocol_datatype,
)

FIXED = [d for d in DATATYPES if d != "BYTES"]


@pytest.mark.parametrize("datatype", FIXED)
def test_names_match_tritonclient(datatype: str) -> None:
    dtype = numpy_dtype(datatype)
    assert tu.np_to_triton_dtype(dtype) == datatype
    assert np.dtype(tu.triton_to_np_dtype(datatype)) == dtype
    assert protocol_datatype(dtype) == datatype


@pytest.mark.parametrize("datatype", FIXED)
def test_fixed_size_round_trip_is_zero_copy(datatype: str) -> None:
    rng = np.random.default_rng(7)
    array = (rng.random((2, 3, 4)) * 100).astype(numpy_dtype(datatype))
    raw = encode_tensor(array)
    assert raw == array.tobytes()  # little-endian host: the client sends exactly these bytes
    decoded = decode_tensor(raw, datatype, [2, 3, 4])
    np.testing.assert_array_equal(decoded, array)
    assert decoded.base is not None  # a view onto the request's buffer, not a copy


def test_bytes_layout_matches_tritonclient() -> None:
    array = np.array([[b"", b"fraud"], ["h\u00e9llo".encode(), b"\x00\xff"]], dtype=np.object_)
    ours = encode_tensor(array)
    theirs = tu.serialize_byte_tensor(array).item()  # a 0-d object array holding the bytes
    assert ours == theirs
    decoded = decode_tensor(theirs, "BYTES", [2, 2])
    assert decoded.tolist() == array.tolist()
    assert tu.deserialize_bytes_tensor(ours).tolist() == array.reshape(-1).tolist()


def test_strings_encode_as_utf8_bytes() -> None:
    assert protocol_datatype(np.array(["a"]).dtype) == "BYTES"
    assert decode_tensor(encode_tensor(np.array(["é", "b"], dtype=np.object_)), "BYTES", [2]).tolist() == [
        "é".encode(),
        b"b",
    ]


@pytest.mark.parametrize(
    ("raw", "datatype", "shape", "message"),
    [
        (b"\x00" * 7, "FP32", [2], "needs 8 bytes, got 7"),
        (b"\x00" * 8, "FP32", [-1, 2], "negative dimension"),
        (b"\x05\x00\x00\x00ab", "BYTES", [1], "claims 5 bytes"),
        (b"\x01\x00\x00\x00a\x00", "BYTES", [1], "trailing bytes"),
        (b"\x01\x00\x00\x00a\x00\x00\x00", "BYTES", [2], "ends after 1 of 2"),
        (b"\x00\x00\x00\x00", "BYTES", [10**8], "BYTES tensor of 100000000 elements needs at least 400000000 bytes"),
        (b"\x00\x00\x00\x00", "BYTES", [2**62, 2**62], r"more than 1099511627776 \(2\*\*40\) elements"),
        (b"", "FP32", [0, 2**62], r"more than 1099511627776 \(2\*\*40\) elements"),
        (b"\x00" * 4, "FP32", [1] * 65, "shape has 65 dimensions; at most 64"),
        (b"\x00" * 4, "FP32", [True], "shape must be a list of integers"),
        (b"", "COMPLEX64", [0], "unsupported datatype"),
    ],
)
def test_malformed_payloads_are_client_errors(raw: bytes, datatype: str, shape: list[int], message: str) -> None:
    with pytest.raises(DatatypeError, match=message):
        decode_tensor(raw, datatype, shape)


def test_onnx_types() -> None:
    assert from_onnx_type("tensor(float)") == "FP32"
    assert from_onnx_type("tensor(string)") == "BYTES"
    with pytest.raises(DatatypeError):
        from_onnx_type("tensor(complex64)")


@pytest.mark.parametrize(
    ("values", "datatype", "shape", "expected"),
    [
        ([[1, 2], [3, 4]], "UINT8", [2, 2], np.array([[1, 2], [3, 4]], dtype=np.uint8)),
        ([1, 2, 3, 4], "FP32", [2, 2], np.array([[1, 2], [3, 4]], dtype=np.float32)),
        ([True, False], "BOOL", [2], np.array([True, False])),
        (["a", b"b\x00"], "BYTES", [2, 1], np.array([[b"a"], [b"b\x00"]], dtype=np.object_)),
        ([], "INT64", [0, 3], np.zeros((0, 3), dtype=np.int64)),
    ],
)
def test_array_from_values(values: list[object], datatype: str, shape: list[int], expected: np.ndarray) -> None:
    array = array_from_values(values, datatype, shape)
    assert array.dtype == expected.dtype
    assert array.shape == expected.shape
    assert array.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("values", "datatype", "shape", "message"),
    [
        ([-1], "UINT8", [1], "does not fit datatype UINT8"),
        ([300], "UINT8", [1], "does not fit datatype UINT8"),
        ([2**64], "UINT64", [1], "does not fit datatype UINT64"),
        (["x"], "FP32", [1], "FP32 data must be numbers: element 0 is a string"),
        ([1, True], "FP32", [2], "FP32 data must be numbers: element 1 is a boolean"),
        ([1.5], "INT32", [1], "INT32 data must be integers: element 0 is a number with a fraction"),
        (["1"], "INT32", [1], "INT32 data must be integers: element 0 is a string"),
        ([True], "INT32", [1], "INT32 data must be integers: element 0 is a boolean"),
        ([1], "BOOL", [1], "BOOL data must be true or false: element 0 is an integer"),
        (["true"], "BOOL", [1], "BOOL data must be true or false: element 0 is a string"),
        ([None], "FP64", [1], "FP64 data must be numbers: element 0 is null"),
        ([{}], "INT32", [1], "INT32 data must be integers: element 0 is an object"),
        ([[1, 2], [3]], "FP32", [3], "ragged"),
        ([1, [2]], "FP32", [2], "element 1 is a list"),
        ({"a": 1}, "FP32", [1], "FP32 data must be a list, got an object"),
        ([[[[1]]]] * 1, "FP32", [1] * 65, "at most 64"),
        ([1, 2, 3], "FP32", [2, 2], r"shape \[2, 2\] needs 4 elements, data has 3"),
        ([5], "BYTES", [1], "BYTES data must be strings: element 0 is an integer"),
        ([["a", "b"], "c"], "BYTES", [2], "mixes lists and values"),
        ([1], "FP32", [-1], "negative dimension"),
        ([1], "COMPLEX64", [1], "unsupported datatype"),
    ],
)
def test_values_that_do_not_fit_are_client_errors(
    values: list[object], datatype: str, shape: list[int], message: str
) -> None:
    with pytest.raises(DatatypeError, match=message):
        array_from_values(values, datatype, shape)
