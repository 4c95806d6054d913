"""A hypothesis fuzzer over gRPC ``ModelInfer``: requests built from any names, datatypes, shapes (huge, negative,
too many dimensions), raw or typed contents of any size, parameters of any kind and requested outputs with any class
count, mixed with well-formed ones. No answer may be a server error (INTERNAL, UNKNOWN, UNAVAILABLE, DATA_LOSS), and
the server's memory stays bounded."""

from __future__ import annotations

from collections import Counter
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ..serving import Server
from .conftest import rss_bytes

EXAMPLES = 600
SERVER_ERRORS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE,
                 grpc.StatusCode.DATA_LOSS}  # fmt: skip
DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
             "BYTES"]  # fmt: skip
INT64 = st.integers(-(2**63), 2**63 - 1)

names = st.sampled_from(["A", "B", "IN_FP32", "IN_BYTES", "data", ""]) | st.text(max_size=12)
dims = st.integers(0, 8) | st.sampled_from([-1, 2**31, 2**40, 2**62]) | INT64
shapes = st.lists(dims, max_size=4) | st.lists(st.integers(0, 2), min_size=60, max_size=70)
params = st.dictionaries(
    st.sampled_from(["sequence_id", "sequence_start", "classification", "binary_data_size", "shared_memory_region",
                     "priority", "timeout", "x"]),
    st.one_of(INT64.map(lambda v: service_pb2.InferParameter(int64_param=v)),
              st.booleans().map(lambda v: service_pb2.InferParameter(bool_param=v)),
              st.text(max_size=8).map(lambda v: service_pb2.InferParameter(string_param=v)),
              st.floats(allow_nan=True).map(lambda v: service_pb2.InferParameter(double_param=v))),
    max_size=2,
)  # fmt: skip


def _mostly(usual: st.SearchStrategy[str], other: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``usual`` nine times in ten: requests mostly reach a model (unknown names only ever meet the 404 path)."""
    return st.integers(0, 9).flatmap(lambda n: usual if n else other)


def _tensor(draw: st.DrawFn, request: Any) -> None:
    tensor = request.inputs.add(name=draw(names), datatype=draw(st.sampled_from([*DATATYPES, "FOO", ""])))
    tensor.shape.extend(draw(shapes))
    for key, value in draw(params).items():
        tensor.parameters[key].CopyFrom(value)
    kind = draw(st.sampled_from(["none", "int", "fp32", "bytes", "bool"]))
    if kind == "int":
        tensor.contents.int_contents.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=16)))
    elif kind == "fp32":
        tensor.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32), max_size=16)))
    elif kind == "bytes":
        tensor.contents.bytes_contents.extend(draw(st.lists(st.binary(max_size=8), max_size=16)))
    elif kind == "bool":
        tensor.contents.bool_contents.extend(draw(st.lists(st.booleans(), max_size=16)))


@st.composite
def random_requests(draw: st.DrawFn) -> Any:
    request = service_pb2.ModelInferRequest(
        model_name=draw(_mostly(st.sampled_from(["calc", "types", "image"]), st.text(max_size=12))),
        model_version=draw(_mostly(st.sampled_from(["", "1"]), st.text(max_size=4))),
        id=draw(st.text(max_size=8)),
    )
    for key, value in draw(params).items():
        request.parameters[key].CopyFrom(value)
    for _ in range(draw(st.integers(0, 3))):
        _tensor(draw, request)
    raw = draw(st.sampled_from(["none", "each", "mismatched"]))
    if raw != "none":
        count = len(request.inputs) + (1 if raw == "mismatched" else 0)
        request.raw_input_contents.extend(draw(st.lists(st.binary(max_size=96), min_size=count, max_size=count)))
    for _ in range(draw(st.integers(0, 2))):
        output = request.outputs.add(name=draw(st.sampled_from(["OUT0", "OUT1", "probs", "OUT_FP32"]) | names))
        if draw(st.booleans()):
            output.parameters["classification"].CopyFrom(
                draw(params.map(lambda p: next(iter(p.values()), None))) or service_pb2.InferParameter(int64_param=2)
            )
    return request  # fmt: skip


@st.composite
def calc_requests(draw: st.DrawFn) -> Any:
    """Well-formed requests to ``calc`` (binary_op, max_batch_size 8), some with a classification of OUT0."""
    rows = draw(st.integers(1, 8))
    request = service_pb2.ModelInferRequest(model_name="calc", model_version=draw(st.sampled_from(["", "1"])))
    for name in ("A", "B"):
        request.inputs.add(name=name, datatype="FP32", shape=[rows, 4])
        values = draw(st.lists(st.floats(width=32, allow_nan=True), min_size=4 * rows, max_size=4 * rows))
        request.raw_input_contents.append(np.array(values, np.float32).tobytes())
    if draw(st.booleans()):
        output = request.outputs.add(name="OUT0")
        output.parameters["classification"].int64_param = draw(st.integers(0, 6))
    return request


@pytest.fixture(scope="module")
def stub(fuzz_server: Server) -> service_pb2_grpc.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(fuzz_server.grpc)
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


def test_model_infer_fuzz_gives_no_server_error(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, fuzz_server: Server
) -> None:
    codes: Counter[str] = Counter()
    failures: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(st.one_of(random_requests(), calc_requests()))
    def one(request: Any) -> None:
        code, details = grpc.StatusCode.OK, ""
        try:
            stub.ModelInfer(request, timeout=10)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
        codes[code.name] += 1
        if code in SERVER_ERRORS:
            failures.append(f"{code.name}: {details} for {str(request)[:500]}")
        assert code not in SERVER_ERRORS, f"{code.name}: {details}"

    warm = service_pb2.ModelInferRequest(model_name="calc")
    for name in ("A", "B"):
        warm.inputs.add(name=name, datatype="FP32", shape=[1, 4])
        warm.raw_input_contents.append(np.ones(4, np.float32).tobytes())
    for _ in range(50):
        stub.ModelInfer(warm, timeout=10)
    before = rss_bytes(fuzz_server.proc.pid)
    one()
    after = rss_bytes(fuzz_server.proc.pid)
    print(f"\ngRPC ModelInfer fuzz: {sum(codes.values())} requests, {dict(codes.most_common())}; "
          f"server RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")  # fmt: skip
    assert not failures, failures[:3]
    assert codes["OK"] >= 50  # the well-formed share did reach the model
    assert codes["INVALID_ARGUMENT"] >= 100
    assert after <= before * 1.10 + 8 * 2**20
