"""The loader sidecar and a real dynamic-mode modelyard-server in one "pod": what the sidecar publishes on request,
the server loads through its admin API (loopback, bearer token), since the inference ports refuse load/unload."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from onnx import TensorProto, helper

from support.httpserver import FileServer, serve
from support.loader import LOADER, sha256
from support.loader import run_loader as run
from support.processes import sidecar_address

from ..serving import Server, run_server, wait_ready


def _model() -> bytes:
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["batch", 4])
    out = helper.make_tensor_value_info("OUT", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Add", ["A", "A"], ["OUT"])], "g", [a], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


MODEL = _model()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "model.onnx").write_bytes(MODEL)
    with serve(root) as srv:
        yield srv


@contextmanager
def sidecar(repo: Path, *args: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [LOADER, "sidecar", "--repository", str(repo), "--listen", "127.0.0.1:0", "--allow-hosts", "127.0.0.1", *args],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    address = sidecar_address(proc)
    try:
        assert address, "the sidecar did not start"
        yield address
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()


def post(address: str, path: str, body: object, token: str | None = None) -> tuple[int, Any]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload


def states(server: Server, token: str) -> dict[tuple[str, str], str]:
    _, rows = post(server.admin, "/v2/repository/index", {}, token)
    return {(r["name"], r["version"]): r["state"] for r in rows}


def test_the_sidecar_has_the_server_load_what_it_publishes(site: FileServer, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    repo.mkdir()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    server_args = ["--load-mode", "dynamic", "--admin-token-file", str(token), "--serve", "fraud:1"]
    with run_server(repo, *server_args, ready=False) as s:
        initial = ["--uri", site.url + "/model.onnx", "--dest", str(repo / "fraud" / "1"), "--digest", sha256(MODEL)]
        admin = ["--server-admin", f"http://{s.admin}", "--server-admin-token-file", str(token)]
        with sidecar(repo, *initial, *admin) as address:
            wait_ready(s, timeout=30)  # not ready until the sidecar published fraud:1
            assert post(s.admin, "/v2/repository/models/fraud/unload", {}, "s3cret") == (200, {})
            assert s.status("/v2/health/ready") == 503
            status, r = post(address, "/fetch", {"uri": site.url + "/model.onnx", "model": "fraud", "version": "2",
                                                 "digest": sha256(MODEL)})  # fmt: skip
            assert status == 200, r
            assert r["loaded"] is True
            assert states(s, "s3cret") == {("fraud", "1"): "READY", ("fraud", "2"): "READY"}
            assert s.status("/v2/health/ready") == 200  # loaded again: back in the endpoints
        wrong = tmp_path / "wrong-token"
        wrong.write_text("guess")
        with sidecar(repo, "--server-admin", f"http://{s.admin}", "--server-admin-token-file", str(wrong)) as address:
            status, r = post(address, "/fetch", {"uri": site.url + "/model.onnx", "model": "other", "version": "1"})
            assert status == 502
            assert r["reason"] == "ServerLoadFailed"
            assert "(401)" in r["message"]
            assert (repo / "other" / "1" / "model.onnx").read_bytes() == MODEL  # published all the same


@pytest.mark.parametrize("url", ["http://10.0.0.1:8082", "https://127.0.0.1:8082", "http://example.com:8082"])
def test_the_server_admin_address_must_be_loopback_http(tmp_path: Path, url: str) -> None:
    p = run("sidecar", "--repository", str(tmp_path), "--server-admin", url)
    assert p.returncode == 2
    assert "the server's admin API, loopback" in p.stderr


def test_the_startup_probe_passes_only_once_the_sidecar_published_its_version(site: FileServer, tmp_path: Path) -> None:
    """``modelyard-loader health`` (the sidecar's startup probe) fails while the initial version is being fetched and
    passes once the API is up; a failed initial fetch ends the sidecar with its reason in the termination log."""
    repo = tmp_path / "models"
    assert run("health", "--listen", "127.0.0.1:1").returncode == 1  # nothing listens
    initial = ["--uri", site.url + "/model.onnx", "--dest", str(repo / "fraud" / "1"), "--digest", sha256(MODEL)]
    with sidecar(repo, *initial) as address:
        assert run("health", "--listen", address).returncode == 0
        assert (repo / "fraud" / "1" / "model.onnx").read_bytes() == MODEL
    log = tmp_path / "termination-log"
    wrong = ["--uri", site.url + "/model.onnx", "--dest", str(repo / "fraud" / "2"), "--digest", sha256(b"other")]
    p = run("sidecar", "--repository", str(repo), "--listen", "127.0.0.1:0", "--allow-hosts", "127.0.0.1", *wrong,
            "--termination-log", str(log))  # fmt: skip
    assert p.returncode == 4, p.stderr  # DigestMismatch: the container ends, the pod stays unready
    message = json.loads(log.read_text())
    assert message["reason"] == "DigestMismatch"
    assert "digest mismatch" in message["message"]
    assert not (repo / "fraud" / "2").exists()
    gone = ["--uri", site.url + "/gone.onnx", "--dest", str(tmp_path / "d"), "--termination-log", str(log)]
    p = run("fetch", "--allow-hosts", "127.0.0.1", *gone)
    assert p.returncode == 3
    assert json.loads(log.read_text())["reason"] == "FetchFailed"
