"""modelyard-server over HTTP, exercised with the real tritonclient against a real process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from ..models import ONNX_TYPES, binary_op, identity_all_types
from ..serving import Server, run_server


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("repo")
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    binary_op(repo / "calc" / "2" / "model.onnx", "Mul")
    identity_all_types(repo / "types" / "1" / "model.onnx")
    with run_server(repo, env={"MODELYARD_MAX_BODY_BYTES": "1Mi"}) as s:
        yield s
        assert "ready: 3 model version(s)" in s.output()


@pytest.fixture(scope="module")
def server(running: Server) -> str:
    return running.http


@pytest.fixture(scope="module")
def admin(running: Server) -> str:
    return running.admin


@pytest.fixture
def client(server: str) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(server)


def calc_inputs(a: np.ndarray, b: np.ndarray, binary: bool = True) -> list[httpclient.InferInput]:
    ins = []
    for name, arr in (("A", a), ("B", b)):
        inp = httpclient.InferInput(name, list(arr.shape), "FP32")
        inp.set_data_from_numpy(arr, binary_data=binary)
        ins.append(inp)
    return ins


A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 3, dtype=np.float32)


def test_health_and_server_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "modelyard"
    assert {"binary_tensor_data", "model_repository", "statistics"} <= set(meta["extensions"])


def test_model_metadata_marks_variable_dims(client: httpclient.InferenceServerClient) -> None:
    meta = client.get_model_metadata("calc", "1")
    assert meta["inputs"] == [
        {"name": "A", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "B", "datatype": "FP32", "shape": [-1, 4]},
    ]
    assert [o["name"] for o in meta["outputs"]] == ["OUT0", "OUT1"]
    assert client.is_model_ready("calc", "2")
    assert not client.is_model_ready("calc", "9")
    assert client.get_model_config("calc")["max_batch_size"] == 0


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_versions(client: httpclient.InferenceServerClient, binary: bool) -> None:
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("OUT0", "OUT1")]
    v1 = client.infer("calc", calc_inputs(A, B, binary), model_version="1", outputs=outputs)
    np.testing.assert_array_equal(v1.as_numpy("OUT0"), A + B)
    np.testing.assert_array_equal(v1.as_numpy("OUT1"), A - B)
    assert v1.get_response()["model_version"] == "1"
    latest = client.infer("calc", calc_inputs(A, B, binary), outputs=outputs)  # unversioned: highest
    np.testing.assert_array_equal(latest.as_numpy("OUT0"), A * B)
    assert latest.get_response()["model_version"] == "2"


def test_requested_output_subset(client: httpclient.InferenceServerClient) -> None:
    result = client.infer(
        "calc", calc_inputs(A, B), model_version="1", outputs=[httpclient.InferRequestedOutput("OUT1")]
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["OUT1"]
    assert result.as_numpy("OUT0") is None


def sample(datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([[b"fraud", "h\u00e9".encode()], [b"", b"\x00\x01"]], dtype=np.object_)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    return (np.arange(4).reshape(2, 2) + 1).astype(np.dtype(ONNX_DTYPES[datatype]))


ONNX_DTYPES = {
    "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64", "INT8": "int8",
    "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64",
}  # fmt: skip


@pytest.mark.parametrize("datatype", list(ONNX_TYPES))
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_every_datatype_round_trips(client: httpclient.InferenceServerClient, datatype: str, binary: bool) -> None:
    # FP16 has no JSON encoding: its input always travels binary, and the server answers it binary
    # even when JSON was asked for, which tritonclient reads transparently.
    inputs = []
    for name in ONNX_TYPES:
        arr = sample(name)
        inp = httpclient.InferInput(f"IN_{name}", list(arr.shape), name)
        inp.set_data_from_numpy(arr, binary_data=binary or name == "FP16")
        inputs.append(inp)
    out = [httpclient.InferRequestedOutput(f"OUT_{datatype}", binary_data=binary)]
    result = client.infer("types", inputs, outputs=out)
    got = result.as_numpy(f"OUT_{datatype}")
    expected = sample(datatype)
    if datatype == "BYTES" and not binary:
        expected = np.array([[v.decode() for v in row] for row in expected], dtype=np.object_)  # JSON: text
    assert got.shape == expected.shape
    assert got.tolist() == expected.tolist()


def post(server: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://{server}{path}", data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_request_without_id_is_fine(server: str) -> None:
    body = {"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]} for n in ("A", "B")]}
    status, doc = post(server, "/v2/models/calc/versions/1/infer", json.dumps(body).encode())
    assert status == 200
    assert "id" not in doc
    assert doc["outputs"][0]["data"] == [2, 4, 6, 8]
    body["id"] = "req-7"
    assert post(server, "/v2/models/calc/versions/1/infer", json.dumps(body).encode())[1]["id"] == "req-7"


@pytest.mark.parametrize(
    ("model", "version", "a", "b", "status", "message"),
    [
        ("calc", "1", np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), "400", "must have shape [-1, 4]"),
        ("calc", "1", np.zeros((2, 4), np.float64), np.zeros((2, 4), np.float64), "400", "must be FP32, got FP64"),
        ("nope", "", A, B, "404", "unknown model 'nope'"),
        ("calc", "7", A, B, "404", "unknown version '7'"),
    ],
)
def test_errors(
    client: httpclient.InferenceServerClient,
    model: str,
    version: str,
    a: np.ndarray,
    b: np.ndarray,
    status: str,
    message: str,
) -> None:
    inputs = []
    for name, arr in (("A", a), ("B", b)):
        inp = httpclient.InferInput(name, list(arr.shape), "FP64" if arr.dtype == np.float64 else "FP32")
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, inputs, model_version=version)
    assert info.value.status() == status
    assert message in info.value.message()


def test_missing_input_and_bad_json_are_400(server: str) -> None:
    body = {"inputs": [{"name": "A", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    status, doc = post(server, "/v2/models/calc/infer", json.dumps(body).encode())
    assert (status, doc["error"]) == (400, "missing input 'B' for model calc")
    status, doc = post(server, "/v2/models/calc/infer", b"{not json")
    assert status == 400
    assert "not valid JSON" in doc["error"]


CALC = [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]} for n in ("A", "B")]


@pytest.mark.parametrize(
    ("model", "body", "fragment"),
    [
        ("types", {"inputs": [{"name": "IN_UINT8", "datatype": "UINT8", "shape": [1], "data": [-1]}]},
         "data does not fit datatype UINT8"),
        ("types", {"inputs": [{"name": "IN_INT8", "datatype": "INT8", "shape": [1], "data": [300]}]},
         "data does not fit datatype INT8"),
        ("types", {"inputs": [{"name": "IN_BYTES", "datatype": "BYTES", "shape": [1], "data": [5]}]},
         "BYTES data must be strings: element 0 is an integer"),
        ("calc", {"inputs": [5]}, "input 0 must be a JSON object"),
        ("calc", {"inputs": [{"name": "A", "datatype": "FP32", "shape": ["x"], "data": [1]}]},
         "shape must be a list of integers"),
        ("calc", {"inputs": [{**CALC[0], "parameters": {"binary_data_size": "a"}}]},
         "binary_data_size must be a non-negative integer"),
        ("calc", {"inputs": [{**CALC[0], "parameters": []}]}, "parameters of input 'A' must be a JSON object"),
        ("calc", {"inputs": CALC, "outputs": [{}]}, "output 0 must be an object with a name"),
        ("calc", {"inputs": CALC, "outputs": {"name": "OUT0"}}, "'outputs' must be a list"),
        ("calc", {"inputs": CALC, "parameters": [1]}, "parameters must be a JSON object"),
    ],
)  # fmt: skip
def test_malformed_requests_are_400_with_the_reason(server: str, model: str, body: Any, fragment: str) -> None:
    status, doc = post(server, f"/v2/models/{model}/infer", json.dumps(body).encode())
    assert (status, fragment in doc["error"]) == (400, True), doc


def test_body_over_the_limit_is_413(server: str) -> None:
    status, doc = post(server, "/v2/models/calc/infer", b" " * (2 * 2**20))
    assert status == 413
    assert "too large" in doc["error"]


def test_metrics_count_known_traffic(server: str, client: httpclient.InferenceServerClient) -> None:
    def count() -> float:
        text = urllib.request.urlopen(f"http://{server}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(
                'modelyard_inference_requests_total{code="200",model="calc",protocol="http",version="1"}'
            ):
                return float(line.split()[-1])
        return 0.0

    before = count()
    for _ in range(5):
        client.infer("calc", calc_inputs(A, B), model_version="1")
    assert count() == before + 5
    text = urllib.request.urlopen(f"http://{server}/metrics", timeout=5).read().decode()
    assert 'modelyard_model_loaded{model="types",version="1"} 1.0' in text
    assert "modelyard_model_load_duration_seconds_count" in text
    assert 'modelyard_model_memory_bytes{model="calc",version="2"}' in text


def test_statistics_and_repository_index_over_http(
    server: str, admin: str, client: httpclient.InferenceServerClient
) -> None:
    before = client.get_inference_statistics("calc", "1")["model_stats"][0]["inference_stats"]["success"]["count"]
    for _ in range(2):
        client.infer("calc", calc_inputs(A, B), model_version="1")
    stats = client.get_inference_statistics("calc", "1")["model_stats"]
    assert [(s["name"], s["version"]) for s in stats] == [("calc", "1")]
    assert stats[0]["inference_stats"]["success"]["count"] == before + 2
    everything = client.get_inference_statistics()["model_stats"]
    assert {(s["name"], s["version"]) for s in everything} == {("calc", "1"), ("calc", "2"), ("types", "1")}
    index = client.get_model_repository_index()
    assert {(m["name"], m["version"], m["state"]) for m in index} == {
        ("calc", "1", "READY"), ("calc", "2", "READY"), ("types", "1", "READY"),
    }  # fmt: skip
    status, doc = post(admin, "/v2/repository/models/ghost/load", b"")
    assert status == 404
    assert "no model 'ghost'" in doc["error"]
    status, doc = post(server, "/v2/repository/index", b"[1]")
    assert status == 400
    assert "JSON object" in doc["error"]


def test_a_config_override_on_load_is_refused_clearly(admin: str) -> None:
    body = json.dumps({"parameters": {"config": '{"max_batch_size": 4}'}}).encode()
    status, doc = post(admin, "/v2/repository/models/calc/load", body)
    assert status == 400
    assert "config.yaml" in doc["error"]


def test_requests_for_unknown_models_share_one_label(server: str) -> None:
    for name in ("ghost-a", "ghost-b"):
        status, _ = post(server, f"/v2/models/{name}/infer", b'{"inputs": []}')
        assert status == 404
    text = urllib.request.urlopen(f"http://{server}/metrics", timeout=5).read().decode()
    assert "ghost-a" not in text
    assert 'modelyard_inference_requests_total{code="404",model="(unknown)",protocol="http",version=""}' in text
