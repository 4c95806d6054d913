"""The admin API off the data path, and readiness that follows what the pod must serve (issue 12, deliverable 1).

Load and unload are refused on the inference ports of every server (HTTP 403, gRPC PERMISSION_DENIED) and served on
the admin port, on loopback by default, with an optional bearer token read from a file (a mounted Secret). Readiness
(HTTP /v2/health/ready, gRPC ServerReady) is false while a version the pod must serve is unloaded or not there yet,
so Kubernetes takes such a pod out of its Service's endpoints.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ..models import binary_op
from ..serving import SERVER, Server, free_port, run_server


def request(address: str, path: str, body: bytes | None = b"", token: str | None = None) -> tuple[int, Any]:
    """POST ``body`` (GET when None); the status and the JSON answer."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    method = "GET" if body is None else "POST"
    req = urllib.request.Request(f"http://{address}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def grpc_call(server: Server, method: str, message: Any) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(server.grpc) as channel:
        try:
            getattr(service_pb2_grpc.GRPCInferenceServiceStub(channel), method)(message, timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def server_ready(server: Server) -> tuple[bool, bool]:
    """Readiness over HTTP and over gRPC."""
    return server.status("/v2/health/ready") == 200, grpcclient.InferenceServerClient(server.grpc).is_server_ready()


def wait_ready_state(server: Server, want: bool, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while server_ready(server) != (want, want):
        assert time.monotonic() < deadline, f"readiness never became {want}: {server_ready(server)}"
        time.sleep(0.1)


def infer_status(server: Server, model: str = "calc") -> int:
    doc = {"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]} for n in "AB"]}
    return server.status(f"/v2/models/{model}/infer", "POST", json.dumps(doc).encode())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    binary_op(tmp_path / "repo" / "calc" / "1" / "model.onnx", "Add")
    binary_op(tmp_path / "repo" / "other" / "1" / "model.onnx", "Mul")
    return tmp_path / "repo"


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_load_and_unload_are_refused_on_the_inference_ports(repo: Path, mode: str) -> None:
    with run_server(repo, "--load-mode", mode) as s:
        assert infer_status(s) == 200
        for action in ("load", "unload"):
            status, doc = request(s.http, f"/v2/repository/models/calc/{action}")
            assert status == 403
            assert "not served on the inference ports" in doc["error"]
        for method, message in (
            ("RepositoryModelLoad", service_pb2.RepositoryModelLoadRequest(model_name="calc")),
            ("RepositoryModelUnload", service_pb2.RepositoryModelUnloadRequest(model_name="calc")),
        ):
            code, details = grpc_call(s, method, message)
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert "not served on the inference ports" in details
        assert infer_status(s) == 200  # still served
        assert server_ready(s) == (True, True)
        assert request(s.http, "/v2/repository/index")[0] == 200  # reading the index stays on the data path


def test_unload_on_the_admin_port_makes_a_static_server_unready_until_loaded_again(repo: Path) -> None:
    with run_server(repo) as s:
        assert server_ready(s) == (True, True)
        assert request(s.admin, "/v2/repository/models/other/unload") == (200, {})
        assert server_ready(s) == (False, False)  # every version loaded at start is one the pod must serve
        assert request(s.admin, "/v2/health/ready", None)[1] == {"ready": False, "unserved": ["other:1"]}
        assert infer_status(s, "other") == 503
        assert infer_status(s, "calc") == 200  # the rest still answers while endpoints drop the pod
        assert request(s.admin, "/v2/repository/models/other/load") == (200, {})
        assert server_ready(s) == (True, True)
        assert infer_status(s, "other") == 200
        assert "admin 127.0.0.1:" in s.output()


def test_dynamic_readiness_follows_the_versions_the_pod_must_serve(repo: Path) -> None:
    """--serve names what the pod is for: not ready before the loader has published it, nor after an unload."""
    with run_server(repo, "--load-mode", "dynamic", "--serve", "calc:1", "--serve", "late:3", ready=False) as s:
        time.sleep(1.5)
        assert server_ready(s) == (False, False)  # late:3 is not on disk yet
        assert request(s.admin, "/v2/health/ready", None)[1]["unserved"] == ["late:3"]
        binary_op(repo / "late" / "3" / "model.onnx", "Sub")  # what the loader sidecar would publish
        wait_ready_state(s, True)
        assert infer_status(s, "late") == 200
        assert request(s.admin, "/v2/repository/models/calc/unload")[0] == 200
        assert server_ready(s) == (False, False)
        assert request(s.admin, "/v2/repository/models/other/unload")[0] == 200  # not required: no effect
        assert request(s.admin, "/v2/repository/models/calc/load")[0] == 200
        assert server_ready(s) == (True, True)


def test_the_admin_token_is_required_and_follows_the_file(repo: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-secret\n")
    with run_server(repo, "--load-mode", "dynamic", "--admin-token-file", str(token_file)) as s:
        path = "/v2/repository/models/calc/unload"
        for token in (None, "wrong", "first-secret-and-more", ""):
            status, doc = request(s.admin, path, token=token)
            assert status == 401
            assert "Authorization: Bearer" in doc["error"]
        assert server_ready(s) == (True, True)  # nothing was unloaded
        assert request(s.admin, path, token="first-secret") == (200, {})
        token_file.write_text("rotated")  # a Secret's new content: in force at the next request, no restart
        assert request(s.admin, "/v2/repository/models/calc/load", token="first-secret")[0] == 401
        assert request(s.admin, "/v2/repository/models/calc/load", token="rotated") == (200, {})
        assert "first-secret" not in s.output()
        assert "rotated" not in s.output()


def test_a_missing_token_file_stops_the_server_with_the_reason(repo: Path, tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="cannot read the admin token file"),
        run_server(repo, "--admin-token-file", str(tmp_path / "absent"), ready=False),
    ):
        pass


def local_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it is not a loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def test_the_admin_api_listens_on_loopback_only_by_default(repo: Path) -> None:
    address = local_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    with run_server(repo) as s:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, s.admin_port), timeout=2).close()
        assert request(s.admin, "/v2/repository/index")[0] == 200


def test_no_admin_api_at_all_with_port_0(repo: Path) -> None:
    with run_server(repo, "--admin-port", "0") as s:
        assert "admin off" in s.output()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", s.admin_port), timeout=2).close()
        assert request(s.http, "/v2/repository/models/calc/unload")[0] == 403


def test_an_admin_port_in_use_stops_the_server_with_the_reason(repo: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        # the process itself, not run_server: its HTTP port may open before the admin bind fails, so "listening"
        # says nothing; what counts is that it exits with the reason
        proc = subprocess.run(
            [SERVER, "--model-repository", str(repo), "--host", "127.0.0.1", "--http-port", str(free_port()),
             "--grpc-port", str(free_port()), "--admin-port", port],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode != 0
    assert f"cannot listen for the admin API on 127.0.0.1:{port}" in proc.stdout + proc.stderr
