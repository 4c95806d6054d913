"""The pure checks that keep client input from becoming a 5xx: shapes and counts before any allocation, the
binary header's length, bodies with a Content-Encoding, inputs against a model's signature, and the scrubbing of
internal names from messages."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from dataclasses import dataclass

import pytest

from modelyard_runtime.errors import (
    BadRequestError,
    Code,
    TooLargeError,
    UnsupportedEncodingError,
    public_message,
)
from modelyard_runtime.protocol.checks import (
    MAX_DIMS,
    MAX_ELEMENTS,
    ShapeError,
    check_header_length,
    check_inputs,
    checked_count,
)
from modelyard_runtime.protocol.datatypes import DatatypeError, array_from_values, decode_tensor
from modelyard_runtime.protocol.encoding import decode_body


@pytest.mark.parametrize(
    ("shape", "count"),
    [([], 1), ([0], 0), ([2, 3], 6), ([1] * MAX_DIMS, 1), ([0, MAX_ELEMENTS], 0), ([MAX_ELEMENTS], MAX_ELEMENTS)],
)
def test_shapes_within_the_limits(shape: list[int], count: int) -> None:
    assert checked_count(shape) == count


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ([1] * (MAX_DIMS + 1), "65 dimensions; at most 64"),
        ([0, 2**62], "more than 1099511627776"),
        ([2**62, 2**62], "more than 1099511627776"),
        ([2**21, 2**20], "more than 1099511627776"),
        ([-1, 4], "negative dimension"),
        ([3, -4], "negative dimension"),
        ([1.0], "list of integers"),
        ([False], "list of integers"),
    ],
)
def test_shapes_beyond_the_limits(shape: list[object], message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        checked_count(shape)


def test_a_bytes_tensor_claiming_more_elements_than_its_bytes_allocates_nothing() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(DatatypeError, match="needs at least 400000000 bytes, got 4"):
            decode_tensor(b"\0\0\0\0", "BYTES", [10**8])
        with pytest.raises(DatatypeError, match="needs 100000000 elements, data has 1"):
            array_from_values(["x"], "BYTES", [10**8])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated to refuse the request"


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("0", 0), ("12", 12), ("000123", 123)])
def test_header_length_accepts_ascii_digits(value: str | None, expected: int | None) -> None:
    assert check_header_length(value) == expected


@pytest.mark.parametrize("value", ["١٢", "²", "-5", "+12", " 12", "1e3", "", "0x10", "9" * 19])
def test_header_length_refuses_anything_else(value: str) -> None:
    with pytest.raises(BadRequestError, match="Inference-Header-Content-Length must be a decimal number"):
        check_header_length(value)


def test_bodies_decode_by_their_content_encoding_within_the_limit() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_body(b"{}", None, 10) == b"{}"
    assert decode_body(b"{}", "identity", 10) == b"{}"
    assert decode_body(gzip.compress(b"abc"), "gzip", 10) == b"abc"
    assert decode_body(gzip.compress(b"abc"), "X-GZIP", 10) == b"abc"
    assert decode_body(zlib.compress(b"abc"), "deflate", 10) == b"abc"
    assert decode_body(raw.compress(b"abc") + raw.flush(), "deflate", 10) == b"abc"


@pytest.mark.parametrize(
    ("body", "encoding", "error", "message"),
    [
        (b"not gzip", "gzip", BadRequestError, "not valid gzip data"),
        (gzip.compress(b"abc")[:-6], "gzip", BadRequestError, "not valid gzip data"),
        (gzip.compress(b"abc") + b"xx", "gzip", BadRequestError, "2 bytes after its gzip stream"),
        (b"\xff\xff", "deflate", BadRequestError, "not valid deflate data"),
        (gzip.compress(b" " * 10_000), "gzip", TooLargeError, "above 100 bytes once gzip-decoded"),
        (b"{}", "zstd", UnsupportedEncodingError, "Content-Encoding 'zstd' is not supported"),
        (b"{}", "gzip, deflate", UnsupportedEncodingError, "is not supported"),
    ],
)
def test_bodies_that_do_not_decode(body: bytes, encoding: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decode_body(body, encoding, 100)


def test_the_code_table_answers_415_and_counts_499() -> None:
    assert UnsupportedEncodingError("x").code.http == 415
    assert TooLargeError("x").code.grpc == "RESOURCE_EXHAUSTED"
    assert Code.CANCELLED.http == 499


@dataclass(frozen=True)
class Spec:
    name: str
    datatype: str
    shape: list[int]
    dim_names: tuple[str | None, ...] = ()


CALC = [Spec("A", "FP32", [-1, 4], ("batch", None)), Spec("B", "FP32", [-1, 4], ("batch", None))]
FP32 = {"A": "FP32", "B": "FP32"}


def test_inputs_that_fit_the_signature() -> None:
    check_inputs("calc", CALC, {"A": (2, 4), "B": (2, 4)}, FP32)
    check_inputs("calc", CALC, {"A": (0, 4), "B": (0, 4)}, FP32)
    unnamed = [Spec("X", "FP32", [-1]), Spec("Y", "FP32", [-1])]
    check_inputs("m", unnamed, {"X": (2,), "Y": (5,)}, {"X": "FP32", "Y": "FP32"})  # unrelated dimensions


@pytest.mark.parametrize(
    ("shapes", "datatypes", "max_batch", "message"),
    [
        ({"A": (2, 4), "B": (3, 4)}, FP32, 0, "disagree on dimension 'batch': 'A' has 2, 'B' has 3"),
        ({"A": (2, 4), "B": (1, 4)}, FP32, 0, "disagree on dimension 'batch': 'A' has 2, 'B' has 1"),
        ({"A": (2, 4), "B": (3, 4)}, FP32, 8, "disagree on dimension 'batch'"),
        ({"A": (9, 4), "B": (9, 4)}, FP32, 8, "batch size 9 is above the model's max_batch_size 8"),
        ({"A": (2, 4)}, FP32, 0, "missing input 'B' for model calc"),
        ({"A": (2, 4), "B": (2, 4), "C": (1,)}, {**FP32, "C": "FP32"}, 0, "model calc has no input 'C'"),
        ({"A": (2, 4), "B": (2, 4)}, {"A": "FP32", "B": "FP64"}, 0, "input 'B' must be FP32, got FP64"),
        ({"A": (2, 3), "B": (2, 3)}, FP32, 0, r"input 'A' must have shape \[-1, 4\], got \[2, 3\]"),
    ],
)
def test_inputs_that_do_not_fit(
    shapes: dict[str, tuple[int, ...]], datatypes: dict[str, str], max_batch: int, message: str
) -> None:
    with pytest.raises(BadRequestError, match=message):
        check_inputs("calc", CALC, shapes, datatypes, max_batch)


ORT_RESHAPE = (
    "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. Name:'' Status "
    "Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:91 "
    "onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, onnxruntime::TensorShapeVector&, "
    "bool) input_shape_size == size was false. The input tensor cannot be reshaped to the requested shape. "
    "Input shape:{2,4}, requested shape:{3}"
)
ORT_BROADCAST = (
    "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Sub node. Name:'' Status Message: "
    "/onnxruntime_src/onnxruntime/core/providers/cpu/math/element_wise_ops.h:583 void "
    "onnxruntime::BroadcastIterator::Append(ptrdiff_t, ptrdiff_t) axis == 1 || axis == largest was false. "
    "Attempting to broadcast an axis by a dimension other than 1. 2 by 3"
)


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        (ORT_RESHAPE, "Reshape node. Name:'' Status Message: input_shape_size == size was false. The input tensor "
                      "cannot be reshaped to the requested shape. Input shape:{2,4}, requested shape:{3}"),
        (ORT_BROADCAST, "axis == 1 || axis == largest was false. Attempting to broadcast an axis"),
        ("Unexpected <class 'ValueError'>: array is too big", "Unexpected array is too big"),
        ("ValueError: bad value", "bad value"),
        ("failed: C:\\src\\ort\\x.cc:12 boom", "failed: boom"),
        ("unknown model 'a/b'", "unknown model 'a/b'"),
        ("input 'A' must have shape [-1, 4], got [2, 3]", "input 'A' must have shape [-1, 4], got [2, 3]"),
    ],
)  # fmt: skip
def test_public_messages_keep_the_reason_and_drop_internal_names(message: str, kept: str) -> None:
    public = public_message(message)
    assert kept in public
    for internal in ("/onnxruntime_src", ".h:", "::", "ONNXRuntimeError", "ValueError", "<class", "x.cc"):
        assert internal not in public
