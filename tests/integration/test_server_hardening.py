"""Client input never makes modelyard-server answer 5xx or spend memory it did not receive (issue 12, deliverable 2).

One real server; each bad input goes over HTTP (raw requests, as a hostile client would send them) and over gRPC
(Triton's service, raw messages), and every answer must be a client error that names the problem and shows no
traceback, exception class or file path.
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import secrets
import time
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from ..models import binary_op, failing_model, identity, identity_all_types, slow_model
from ..serving import Server, run_server
from ..support.processes import memory_mib

MAX_BODY = 2**20
INTERNAL_NAMES = re.compile(
    r"Traceback|File \"|<class|\b\w*(?:Error|Exception)\b|::|\.py\b|\.h:\d|\.cc\b|/tmp/|/onnxruntime_src|/work/"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("hardening")
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    identity_all_types(repo / "types" / "1" / "model.onnx")
    failing_model(repo / "failing" / "1" / "model.onnx")
    (repo / "failing" / "config.yaml").write_text("warmup: false\n")
    slow_model(repo / "slow" / "1" / "model.onnx")
    for datatype in ("INT32", "FP32", "BOOL", "UINT8"):
        identity(repo / f"id-{datatype.lower()}" / "1" / "model.onnx", datatype)
    with run_server(repo, env={"MODELYARD_MAX_BODY_BYTES": str(MAX_BODY)}) as s:
        yield s
        log = s.output()
        assert "Traceback" not in log, log[-3000:]
        assert " ERROR " not in log, log[-3000:]


def assert_clean(message: str) -> None:
    assert message, "no message"
    found = INTERNAL_NAMES.search(message)
    assert found is None, f"internal name {found.group(0)!r} in {message!r}"


# --- transports ------------------------------------------------------------------------------------------------------


def post(server: Server, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """A raw POST; the status and the error message (or the body for a 200)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status == 200:
        return 200, data.decode(errors="replace")
    return response.status, json.loads(data)["error"]


def infer_http(server: Server, model: str, doc: dict[str, Any], tail: bytes = b"", **headers: str) -> tuple[int, str]:
    head = json.dumps(doc).encode()
    if tail:
        headers = {"Inference-Header-Content-Length": str(len(head)), **headers}
    return post(server, f"/v2/models/{model}/infer", head + tail, headers)


def binary_input(name: str, datatype: str, shape: list[int], raw: bytes) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(raw)}}


def infer_grpc(
    server: Server, model: str, inputs: list[tuple[str, str, list[int], bytes]], timeout: float = 30
) -> tuple[grpc.StatusCode, str]:
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, datatype, shape, raw in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(raw)
    return call_grpc(server, "ModelInfer", request, timeout)


def call_grpc(server: Server, method: str, request: Any, timeout: float = 30) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def both(server: Server, model: str, inputs: list[tuple[str, str, list[int], bytes]]) -> list[tuple[Any, str]]:
    """The same binary request over HTTP and gRPC."""
    tail = b"".join(raw for *_, raw in inputs)
    doc = {"inputs": [binary_input(n, d, s, raw) for n, d, s, raw in inputs]}
    return [infer_http(server, model, doc, tail), infer_grpc(server, model, inputs)]


def assert_bad_request(answers: list[tuple[Any, str]], fragment: str) -> None:
    (status, http_message), (code, grpc_message) = answers
    assert (status, code) == (400, grpc.StatusCode.INVALID_ARGUMENT), answers
    for message in (http_message, grpc_message):
        assert fragment in message, answers
        assert_clean(message)


# --- shapes and counts -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "fragment"),
    [
        ("FP32", [2**40, 2**40], b"\0" * 4, "has more than 1099511627776 (2**40) elements"),
        ("BYTES", [2**62, 2**62], b"\0" * 4, "has more than 1099511627776 (2**40) elements"),
        ("FP32", [0, 2**62], b"", "has more than 1099511627776 (2**40) elements"),
        ("FP32", [1] * 65, b"\0" * 4, "shape has 65 dimensions; at most 64 are allowed"),
        ("FP32", [-1, 1], b"\0" * 4, "has a negative dimension"),
        ("FP32", [3, 1], b"\0" * 4, "FP32 tensor of shape [3, 1] needs 12 bytes, got 4"),
        ("BYTES", [2, 1], b"\0" * 4, "BYTES tensor of 2 elements needs at least 8 bytes, got 4"),
    ],
)
def test_impossible_shapes_are_client_errors(
    server: Server, datatype: str, shape: list[int], raw: bytes, fragment: str
) -> None:
    assert_bad_request(both(server, "types", [(f"IN_{datatype}", datatype, shape, raw)]), fragment)


def test_a_bytes_tensor_declaring_1e8_elements_with_4_bytes_costs_no_memory(server: Server) -> None:
    inputs = [("IN_BYTES", "BYTES", [10**8], b"\0\0\0\0")]
    both(server, "types", inputs)  # whatever the first request of a kind costs (imports, buffers) is paid now
    before = memory_mib(server.proc.pid)
    for _ in range(3):
        answers = both(server, "types", inputs)
    after = memory_mib(server.proc.pid)
    assert_bad_request(answers, "BYTES tensor of 100000000 elements needs at least 400000000 bytes, got 4")
    assert after["VmRSS"] - before["VmRSS"] < 5, (before, after)
    assert after["VmHWM"] - before["VmHWM"] < 5, (before, after)  # not even for a moment (800 MB before the fix)


def test_inputs_whose_batch_dimensions_disagree_never_reach_the_model(server: Server) -> None:
    for b_rows in (3, 1):  # 3: ONNX Runtime failed (500); 1: it broadcast B silently
        answers = both(
            server, "calc", [("A", "FP32", [2, 4], b"\0" * 32), ("B", "FP32", [b_rows, 4], b"\0" * 16 * b_rows)]
        )
        assert_bad_request(answers, f"inputs of model calc disagree on dimension 'batch': 'A' has 2, 'B' has {b_rows}")


def test_duplicate_input_names_are_refused_on_both_protocols(server: Server) -> None:
    inputs = [("A", "FP32", [1, 4], b"\0" * 16), ("A", "FP32", [1, 4], b"\0" * 16), ("B", "FP32", [1, 4], b"\0" * 16)]
    assert_bad_request(both(server, "calc", inputs), "input 'A' given twice")


# --- HTTP only: the header, the body's encoding, JSON --------------------------------------------------------------

GOOD = {"inputs": [binary_input(n, "FP32", [1, 4], b"\0" * 16) for n in "AB"]}
GOOD_JSON = {"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]} for n in "AB"]}


@pytest.mark.parametrize("value", ["١٢", "²", "-5", "+12", "0x10", "1e3"])
def test_the_binary_header_length_must_be_ascii_digits(server: Server, value: str) -> None:
    head = json.dumps(GOOD).encode()
    headers = {"Inference-Header-Content-Length": value.encode().decode("latin-1")}  # UTF-8 bytes on the wire
    status, message = post(server, "/v2/models/calc/infer", head + b"\0" * 32, headers)
    assert status == 400
    assert "Inference-Header-Content-Length must be a decimal number of bytes (ASCII digits)" in message
    assert_clean(message)


@pytest.mark.parametrize("path", ["/v2/models/calc/infer", "/v2/repository/index"])
def test_json_nested_beyond_the_limit_is_a_client_error(server: Server, path: str) -> None:
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000):
        status, message = post(server, path, deep)
        assert status == 400
        assert "not valid JSON: depth limit exceeded" in message
        assert_clean(message)


@pytest.mark.parametrize(
    ("encoding", "body", "status", "fragment"),
    [
        ("gzip", b"not gzip at all", 400, "request body is not valid gzip data"),
        ("gzip", gzip.compress(json.dumps(GOOD_JSON).encode())[:-8], 400, "request body is not valid gzip data"),
        ("deflate", b"\xff\xfe not deflate", 400, "request body is not valid deflate data"),
        ("gzip", gzip.compress(b" " * (2 * MAX_BODY)), 413, f"above {MAX_BODY} bytes once gzip-decoded"),
        ("zstd", json.dumps(GOOD_JSON).encode(), 415, "Content-Encoding 'zstd' is not supported"),
        ("br", json.dumps(GOOD_JSON).encode(), 415, "Content-Encoding 'br' is not supported"),
        ("foo", json.dumps(GOOD_JSON).encode(), 415, "Content-Encoding 'foo' is not supported"),
    ],
)
def test_bodies_that_cannot_be_decoded(server: Server, encoding: str, body: bytes, status: int, fragment: str) -> None:
    got, message = post(server, "/v2/models/calc/infer", body, {"Content-Encoding": encoding})
    assert (got, fragment in message) == (status, True), message
    assert_clean(message)


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress), ("identity", bytes)]
)
def test_bodies_that_decode_are_served(server: Server, encoding: str, compress: Any) -> None:
    status, body = post(server, "/v2/models/calc/infer", compress(json.dumps(GOOD_JSON).encode()),
                        {"Content-Encoding": encoding})  # fmt: skip
    assert status == 200
    assert json.loads(body)["outputs"][0]["data"] == [2, 4, 6, 8]


@pytest.mark.parametrize(
    ("datatype", "value", "fragment"),
    [
        ("INT32", 1.5, "INT32 data must be integers: element 0 is a number with a fraction"),
        ("INT32", "1", "INT32 data must be integers: element 0 is a string"),
        ("INT32", True, "INT32 data must be integers: element 0 is a boolean"),
        ("UINT8", 1.0, "UINT8 data must be integers: element 0 is a number with a fraction"),
        ("FP32", "1", "FP32 data must be numbers: element 0 is a string"),
        ("FP32", True, "FP32 data must be numbers: element 0 is a boolean"),
        ("BOOL", 1, "BOOL data must be true or false: element 0 is an integer"),
        ("BOOL", "true", "BOOL data must be true or false: element 0 is a string"),
    ],
)
def test_json_values_of_the_wrong_type_are_refused_as_triton_does(
    server: Server, datatype: str, value: Any, fragment: str
) -> None:
    doc = {"inputs": [{"name": f"IN_{datatype}", "datatype": datatype, "shape": [1, 1], "data": [value]}]}
    status, message = infer_http(server, f"id-{datatype.lower()}", doc)
    assert (status, message) == (400, f"input 'IN_{datatype}': {fragment}")


@pytest.mark.parametrize(("datatype", "value"), [("INT32", -7), ("FP32", 2), ("FP32", 2.5), ("BOOL", True)])
def test_json_values_of_the_right_type_still_pass(server: Server, datatype: str, value: Any) -> None:
    doc = {"inputs": [{"name": f"IN_{datatype}", "datatype": datatype, "shape": [1, 1], "data": [[value]]}]}
    status, body = infer_http(server, f"id-{datatype.lower()}", doc)
    assert status == 200, body
    assert json.loads(body)["outputs"][0]["data"] == [value]


# --- failures that are not the client's, and requests the client gives up -------------------------------------------


def test_a_failing_model_stays_500_with_its_reason_and_no_internal_names(server: Server) -> None:
    (status, http_message), (code, grpc_message) = both(
        server, "failing", [("A", "FP32", [2, 4], b"\0" * 32), ("B", "FP32", [2, 4], b"\0" * 32)]
    )
    assert (status, code) == (500, grpc.StatusCode.INTERNAL)
    for message in (http_message, grpc_message):
        assert "model failing version 1 failed" in message
        assert "cannot be reshaped to the requested shape" in message  # the reason survives
        assert_clean(message)


def requests_total(server: Server, labels: str) -> float:
    text = urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10).read().decode()
    prefix = f"modelyard_inference_requests_total{{{labels}}} "
    return next((float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


def test_a_grpc_request_abandoned_at_its_deadline_counts_as_cancelled(server: Server) -> None:
    labels = 'code="{}",model="slow",protocol="grpc",version="1"'
    before = {code: requests_total(server, labels.format(code)) for code in ("499", "500")}
    rows = 8192  # ~230 GFLOP: seconds of compute for this model on any two cores; the deadline is a tenth of one
    client = grpcclient.InferenceServerClient(server.grpc)
    inputs = []
    for name in "AB":
        inp = grpcclient.InferInput(name, [rows, 4], "FP32")
        inp.set_data_from_numpy(np.zeros((rows, 4), np.float32))
        inputs.append(inp)
    with pytest.raises(InferenceServerException) as info:
        client.infer("slow", inputs, client_timeout=0.1)
    assert "Deadline" in str(info.value)
    deadline = time.monotonic() + 30
    while requests_total(server, labels.format("499")) == before["499"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert requests_total(server, labels.format("499")) == before["499"] + 1
    assert requests_total(server, labels.format("500")) == before["500"]


UNSERVED = ["SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "CudaSharedMemoryStatus", "TraceSetting",
            "LogSettings"]  # fmt: skip


def test_unimplemented_rpcs_answer_unimplemented_with_one_log_line(server: Server) -> None:
    for _ in range(3):
        for method in UNSERVED:
            code, message = call_grpc(server, method, getattr(service_pb2, f"{method}Request")())
            assert code == grpc.StatusCode.UNIMPLEMENTED
            assert message.startswith(f"{method}: ")
            assert "not supported" in message
            assert_clean(message)
    log = server.output()
    for method in UNSERVED:
        assert log.count(f"gRPC {method} answered UNIMPLEMENTED") == 1
    assert "NotImplementedError" not in log


# --- metric series -------------------------------------------------------------------------------------------------


def series(server: Server) -> set[str]:
    text = urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10).read().decode()
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_20000_requests_to_random_model_names_add_no_metric_series(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    channel = grpc.insecure_channel(server.grpc)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

    def send(i: int) -> None:
        name = f"m{secrets.token_hex(8)}"
        kind = i % 4
        if kind == 0:  # unknown model: 404
            conn.request("POST", f"/v2/models/{name}/infer", body=b'{"inputs": []}')
        elif kind == 1:  # unknown version of a known model: 404
            conn.request("POST", f"/v2/models/calc/versions/{secrets.token_hex(4)}/infer", body=b"{}")
        elif kind == 2:  # unknown model with a body the server refuses before looking the model up: 400
            conn.request(
                "POST", f"/v2/models/{name}/infer", body=b"{}", headers={"Inference-Header-Content-Length": "x"}
            )
        if kind < 3:
            response = conn.getresponse()
            response.read()
            assert response.status in (400, 404)
            return
        with pytest.raises(grpc.RpcError) as exc:  # unknown model over gRPC, a random version too
            stub.ModelInfer(service_pb2.ModelInferRequest(model_name=name, model_version=str(i)), timeout=10)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND

    try:
        for i in range(8):  # each kind once: their (unknown) series exist from now on
            send(i)
        before = series(server)
        for i in range(20000):
            send(i)
        after = series(server)
    finally:
        conn.close()
        channel.close()
    assert after - before == set(), sorted(after - before)[:10]
    assert 'modelyard_inference_requests_total{code="404",model="(unknown)",protocol="grpc",version=""}' in after
    assert 'modelyard_inference_requests_total{code="404",model="calc",protocol="http",version="(unknown)"}' in after
