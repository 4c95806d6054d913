"""modelyard-server over gRPC (Triton's GRPCInferenceService), exercised with the real tritonclient.grpc."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from ..models import ONNX_TYPES, binary_op, identity_all_types
from ..serving import Server, run_server

A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 3, dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("grpc-repo")
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    binary_op(repo / "calc" / "2" / "model.onnx", "Mul")
    identity_all_types(repo / "types" / "1" / "model.onnx")
    with run_server(repo, env={"MODELYARD_MAX_BODY_BYTES": "8Mi"}) as s:
        yield s


@pytest.fixture
def client(server: Server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(server.grpc)


def calc_inputs(a: np.ndarray, b: np.ndarray) -> list[grpcclient.InferInput]:
    return calc_inputs_as("FP32", a, b)


def grpc_status(exc: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return str(exc.value.status())


def test_health_and_metadata(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("calc")
    assert client.is_model_ready("calc", "1")
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "modelyard"
    assert {"binary_tensor_data", "model_repository", "statistics", "model_configuration"} <= set(meta["extensions"])
    model = client.get_model_metadata("calc", as_json=True)
    assert model["versions"] == ["2"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in model["inputs"]] == [
        ("A", "FP32", ["-1", "4"]),
        ("B", "FP32", ["-1", "4"]),
    ]  # int64 shapes travel as strings in protobuf's JSON form
    config = client.get_model_config("calc", as_json=True)["config"]
    assert config["name"] == "calc"
    assert config.get("max_batch_size", 0) == 0  # batching is off unless configured


def test_infer_picks_versions_and_answers_in_raw_contents(client: grpcclient.InferenceServerClient) -> None:
    result = client.infer("calc", calc_inputs(A, B))
    assert result.get_response().model_version == "2"
    np.testing.assert_array_equal(result.as_numpy("OUT0"), A * B)
    np.testing.assert_array_equal(result.as_numpy("OUT1"), A - B)
    assert len(result.get_response().raw_output_contents) == 2
    v1 = client.infer("calc", calc_inputs(A, B), model_version="1", request_id="r-1")
    assert v1.get_response().id == "r-1"
    np.testing.assert_array_equal(v1.as_numpy("OUT0"), A + B)


def test_requested_output_subset(client: grpcclient.InferenceServerClient) -> None:
    result = client.infer("calc", calc_inputs(A, B), outputs=[grpcclient.InferRequestedOutput("OUT1")])
    assert [o.name for o in result.get_response().outputs] == ["OUT1"]
    np.testing.assert_array_equal(result.as_numpy("OUT1"), A - B)


def sample(datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([[b"ab", "é".encode()], [b"", b"xyz"]], dtype=np.object_)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    dtype = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.get(datatype) or np.dtype(datatype.lower())
    return (np.arange(4).reshape(2, 2) * 3 + 1).astype(dtype)


@pytest.mark.parametrize("datatype", list(ONNX_TYPES))
def test_every_datatype_round_trips(client: grpcclient.InferenceServerClient, datatype: str) -> None:
    inputs = []
    for name in ONNX_TYPES:
        inp = grpcclient.InferInput(f"IN_{name}", [2, 2], name)
        inp.set_data_from_numpy(sample(name))
        inputs.append(inp)
    result = client.infer("types", inputs, outputs=[grpcclient.InferRequestedOutput(f"OUT_{datatype}")])
    out = result.as_numpy(f"OUT_{datatype}")
    np.testing.assert_array_equal(out, sample(datatype))
    assert result.get_output(f"OUT_{datatype}").datatype == datatype


def calc_inputs_as(datatype: str, a: np.ndarray, b: np.ndarray) -> list[grpcclient.InferInput]:
    ins = []
    for name, arr in (("A", a), ("B", b)):
        inp = grpcclient.InferInput(name, list(arr.shape), datatype)
        inp.set_data_from_numpy(arr)
        ins.append(inp)
    return ins


@pytest.mark.parametrize(
    ("model", "version", "inputs", "status", "fragment"),
    [
        ("nope", "", calc_inputs(A, B), "StatusCode.NOT_FOUND", "unknown model"),
        ("calc", "9", calc_inputs(A, B), "StatusCode.NOT_FOUND", "unknown version"),
        ("calc", "", calc_inputs(A, B)[:1], "StatusCode.INVALID_ARGUMENT", "missing input 'B'"),
        ("calc", "", calc_inputs(A.reshape(4, 2), B.reshape(4, 2)), "StatusCode.INVALID_ARGUMENT", "shape"),
        ("calc", "", calc_inputs_as("FP64", A.astype(np.float64), B.astype(np.float64)),
         "StatusCode.INVALID_ARGUMENT", "must be FP32"),
    ],
)  # fmt: skip
def test_errors_use_the_shared_code_table(
    client: grpcclient.InferenceServerClient,
    model: str,
    version: str,
    inputs: list[grpcclient.InferInput],
    status: str,
    fragment: str,
) -> None:
    with pytest.raises(InferenceServerException) as exc:
        client.infer(model, inputs, model_version=version)
    assert grpc_status(exc) == status
    assert fragment in exc.value.message()


def test_large_messages_pass_and_the_limit_is_resource_exhausted(client: grpcclient.InferenceServerClient) -> None:
    big = np.ones((200_000, 4), dtype=np.float32)  # 6.4 MB over two inputs: above gRPC's 4 MiB default
    result = client.infer("calc", calc_inputs(big, big), outputs=[grpcclient.InferRequestedOutput("OUT0")])
    assert result.as_numpy("OUT0").shape == (200_000, 4)
    assert float(result.as_numpy("OUT0")[-1, -1]) == 1.0
    huge = np.ones((350_000, 4), dtype=np.float32)  # 11.2 MB: above the server's 8 MiB limit
    with pytest.raises(InferenceServerException) as exc:
        client.infer("calc", calc_inputs(huge, huge))
    assert grpc_status(exc) == "StatusCode.RESOURCE_EXHAUSTED"


def test_statistics_count_known_traffic(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    with run_server(repo) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        for _ in range(3):
            client.infer("calc", calc_inputs(A, B))
        with pytest.raises(InferenceServerException):
            client.infer("calc", calc_inputs(A, B)[:1])
        stats = client.get_inference_statistics("calc", as_json=True)["model_stats"]
    assert len(stats) == 1
    assert stats[0]["version"] == "1"
    assert stats[0]["inference_stats"]["success"]["count"] == "3"
    assert stats[0]["inference_stats"]["fail"]["count"] == "1"
    assert stats[0]["execution_count"] == "3"
    assert int(stats[0]["inference_stats"]["compute_infer"]["ns"]) > 0


def test_repository_index_load_unload(tmp_path: Path) -> None:
    """Load and unload are refused on the gRPC port (PERMISSION_DENIED) and served by the admin API; gRPC sees the
    outcome: the model not ready, UNAVAILABLE, the index's reason, readiness of the server false until reloaded."""
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    binary_op(repo / "other" / "1" / "model.onnx", "Mul")
    with run_server(repo) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        admin = httpclient.InferenceServerClient(s.admin)
        index = client.get_model_repository_index(as_json=True)["models"]
        assert {(m["name"], m["state"]) for m in index} == {("calc", "READY"), ("other", "READY")}
        for call in (client.unload_model, client.load_model):
            with pytest.raises(InferenceServerException) as exc:
                call("other")
            assert grpc_status(exc) == "StatusCode.PERMISSION_DENIED"
            assert "admin API" in exc.value.message()
        assert client.is_model_ready("other")
        admin.unload_model("other")
        assert not client.is_model_ready("other")
        assert not client.is_server_ready()  # a version it must serve is unloaded: out of the endpoints
        with pytest.raises(InferenceServerException) as exc:
            client.infer("other", calc_inputs(A, B))
        assert grpc_status(exc) == "StatusCode.UNAVAILABLE"
        index = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
        assert index["other"]["state"] == "UNAVAILABLE"
        assert index["other"]["reason"] == "unloaded"
        admin.load_model("other")
        assert client.is_server_ready()
        np.testing.assert_array_equal(client.infer("other", calc_inputs(A, B)).as_numpy("OUT0"), A * B)
        with pytest.raises(InferenceServerException) as http_exc:
            admin.load_model("missing")
        assert http_exc.value.status() == "404"


@pytest.mark.parametrize(
    ("datatype", "field", "values", "fragment"),
    [
        ("UINT8", "uint_contents", [300], "does not fit datatype UINT8"),
        ("INT8", "int_contents", [-200], "does not fit datatype INT8"),
        ("UINT16", "uint_contents", [70000], "does not fit datatype UINT16"),
        ("FP32", "fp32_contents", [1.0, 2.0], "needs 1 elements, data has 2"),
    ],
)
def test_typed_contents_that_do_not_fit_are_invalid_argument(
    server: Server, datatype: str, field: str, values: list[Any], fragment: str
) -> None:
    """Clients that send typed InferTensorContents instead of raw bytes (tritonclient always sends raw)."""
    request = service_pb2.ModelInferRequest(model_name="types")
    tensor = request.inputs.add(name=f"IN_{datatype}", datatype=datatype, shape=[1])
    getattr(tensor.contents, field).extend(values)
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as exc:
            stub.ModelInfer(request, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (exc.value.details() or "")


def test_a_failed_request_is_counted_before_the_client_sees_the_status(
    server: Server, client: grpcclient.InferenceServerClient
) -> None:
    """abort() sends the status at once: counting after it let a client read /metrics before its own request."""

    def count() -> float:
        text = urllib.request.urlopen(f"http://{server.http}/metrics", timeout=5).read().decode()
        prefix = 'modelyard_inference_requests_total{code="400",model="calc",protocol="grpc",version="2"} '
        return next((float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0)

    before = count()
    seen = []
    for i in range(1, 61):
        with pytest.raises(InferenceServerException):
            client.infer("calc", calc_inputs(A, B)[:1], model_version="2")  # missing input B: 400
        seen.append(count() - before == i)
    assert all(seen), f"{seen.count(False)} of {len(seen)} requests not yet counted when the client had its status"
