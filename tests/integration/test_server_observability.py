"""What a real modelyard-server (and loader) tells its operators (issue 15 item 1, issue 12 item 3): JSON log lines
(``--log-format json``), the access log (``--access-log``) for HTTP and gRPC requests made with tritonclient, requests
refused at the limits counted by limit and in the request counter, a client that leaves before its answer counted as
499, process metrics, and each version's memory as measured at load; the loader's JSON lines.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families

from ..models import binary_op, repeated_matmul
from ..serving import SERVER, Server, run_server
from ..support.processes import json_lines as parse_json_lines
from .test_server_limits import GOOD, grpc_infer, open_body, post, wait_until_served

SECRET = "Bearer do-not-log-me"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("observability")
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    repeated_matmul(repo / "slow" / "1" / "model.onnx")
    args = ["--log-format", "json", "--access-log", "--max-inflight-requests", "4", "--body-timeout-seconds", "5"]
    with run_server(repo, *args) as s:
        yield s
        log = s.output()
        assert "Traceback" not in log, log[-3000:]
        assert "do-not-log-me" not in log  # a header's value never reaches the log


def json_lines(server: Server) -> list[dict[str, Any]]:
    """Every line the server wrote, each parsed as JSON (a line that is not JSON fails here)."""
    return parse_json_lines(server.output())


def access_lines(server: Server, **match: Any) -> list[dict[str, Any]]:
    return [
        d for d in json_lines(server)
        if d.get("logger") == "modelyard.access" and all(d.get(k) == v for k, v in match.items())
    ]  # fmt: skip


def wait_for(check: Any, what: str, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def samples(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(server: Server, name: str, **labels: str) -> float:
    return samples(server).get((name, frozenset(labels.items())), 0.0)


def calc_inputs(module: Any) -> list[Any]:
    inputs = []
    for name in "AB":
        tensor = module.InferInput(name, [1, 4], "FP32")
        tensor.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
        inputs.append(tensor)
    return inputs


def test_every_line_is_one_json_object_with_the_common_fields(server: Server) -> None:
    lines = json_lines(server)
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert line["time"].endswith("Z")
        assert line["time"][10] == "T"
    assert any(d["logger"] == "modelyard.server" and d["message"].startswith("ready:") for d in lines)


def test_an_http_request_gets_an_access_log_line(server: Server) -> None:
    client = httpclient.InferenceServerClient(server.http)
    result = client.infer("calc", calc_inputs(httpclient), headers={"Authorization": SECRET})
    assert result.as_numpy("OUT0").tolist() == [[0, 2, 4, 6]]
    (line,) = wait_for(lambda: access_lines(server, protocol="http", status=200), "the access line")
    assert line["method"] == "POST /v2/models/calc/infer"
    assert (line["model"], line["version"], line["peer"]) == ("calc", "1", "127.0.0.1")
    assert line["duration_ms"] > 0
    assert line["request_bytes"] > 32  # the JSON header and two binary tensors of 16 bytes
    assert line["level"] == "INFO"
    assert "data" not in line
    assert "inputs" not in line


def test_a_grpc_request_gets_an_access_log_line(server: Server) -> None:
    client = grpcclient.InferenceServerClient(server.grpc)
    client.infer("calc", calc_inputs(grpcclient), headers={"authorization": SECRET})
    (line,) = wait_for(lambda: access_lines(server, protocol="grpc", status=200), "the access line")
    assert line["method"] == "/inference.GRPCInferenceService/ModelInfer"
    assert (line["model"], line["version"]) == ("calc", "1")
    assert line["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:"))
    assert line["duration_ms"] > 0
    assert line["request_bytes"] >= 32


def test_requests_refused_at_the_in_flight_cap_are_counted(server: Server) -> None:
    before = samples(server)
    held = [open_body(server, 100, b"{") for _ in range(4)]  # four requests in flight, bodies incomplete
    try:
        time.sleep(0.2)
        assert post(server, json.dumps(GOOD).encode())[0] == 429
        assert grpc_infer(server)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        for sock in held:
            sock.close()
    wait_until_served(server)
    after = samples(server)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("modelyard_requests_rejected_total", protocol="http", reason="inflight") == 1
    assert grew("modelyard_requests_rejected_total", protocol="grpc", reason="inflight") == 1
    for protocol in ("http", "grpc"):
        labels = {"model": "calc", "version": "", "protocol": protocol, "code": "429"}
        assert grew("modelyard_inference_requests_total", **labels) == 1, protocol
    assert access_lines(server, protocol="http", status=429, model="calc")
    assert access_lines(server, protocol="grpc", status=429, model="calc")


def test_a_client_that_leaves_before_its_answer_is_counted_as_499(server: Server) -> None:
    labels = {"model": "slow", "version": "1", "protocol": "http"}
    assert metric(server, "modelyard_inference_requests_total", **labels, code="200") == 0
    rows = np.ones((8, 512), dtype=np.float32).tolist()
    body = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [8, 512], "data": rows}]}).encode()
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    sock.sendall(
        b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )
    time.sleep(0.05)  # the server has the request and runs it
    sock.close()
    wait_for(lambda: metric(server, "modelyard_inference_requests_total", **labels, code="499"), "a 499 sample")
    assert metric(server, "modelyard_inference_requests_total", **labels, code="200") == 0
    assert metric(server, "modelyard_inference_requests_total", **labels, code="500") == 0
    (line,) = access_lines(server, model="slow")
    assert line["status"] == 499
    assert line["request_bytes"] == len(body)


def test_process_metrics_and_each_versions_memory_as_measured(server: Server) -> None:
    found = samples(server)
    assert found[("process_resident_memory_bytes", frozenset())] > 50 * 2**20
    assert found[("process_cpu_seconds_total", frozenset())] > 0
    memory = {
        m: found.get(("modelyard_model_memory_bytes", frozenset({("model", m), ("version", "1")})))
        for m in ("calc", "slow")
    }
    assert None not in memory.values(), memory
    # RSS growth while each version opened: ONNX Runtime's one-off start-up (tens of MiB) goes to the first one
    assert sum(memory.values()) > 2**20, memory  # type: ignore[arg-type]
    assert all(v >= 0 for v in memory.values()), memory  # type: ignore[operator]


LOADER = str(Path(SERVER).parent / "modelyard-loader")


def test_the_loader_writes_json_lines(tmp_path: Path) -> None:
    """``modelyard-loader --log-format json`` (or MODELYARD_LOG_FORMAT): its lines and failures, one JSON object a
    line; its result stays on stdout."""
    model = binary_op(tmp_path / "src" / "model.onnx", "Add")
    ok = subprocess.run(
        [LOADER, "fetch", "--uri", str(model), "--dest", str(tmp_path / "out"), "--allow-file", "--log-format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    lines = [json.loads(line) for line in ok.stderr.splitlines()]
    assert {d["logger"] for d in lines} == {"modelyard-loader"}
    assert any(d["message"] == f"fetching {model}" and d["level"] == "INFO" for d in lines), lines
    assert json.loads(ok.stdout)["sizeBytes"] == model.stat().st_size  # the result stays on stdout, as before
    failed = subprocess.run(
        [LOADER, "fetch", "--uri", str(tmp_path / "missing.onnx"), "--dest", str(tmp_path / "o2"), "--allow-file"],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "MODELYARD_LOG_FORMAT": "json"},
    )  # fmt: skip
    assert failed.returncode != 0
    *_, last = [json.loads(line) for line in failed.stderr.splitlines()]
    assert (last["level"], last["reason"]) == ("ERROR", "FetchFailed")
    assert last["time"].endswith("Z")
