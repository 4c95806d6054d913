"""``modelyard-loader validate`` as a process (what the ModelVersion validation Job runs) and the
``sidecar`` API of dynamic mode, both against a real HTTP server started by the test."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from onnx import TensorProto, helper

from modelyard_runtime.loader.validate import TERMINATION_LOG_LIMIT, compact
from support.httpserver import FileServer, serve
from support.loader import LOADER, sha256, tar_bytes
from support.loader import run_loader as run
from support.processes import sidecar_address


def _model(op: str = "Add") -> bytes:
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["batch", 4])
    b = helper.make_tensor_value_info("B", TensorProto.INT64, [2])
    out = helper.make_tensor_value_info("OUT", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node(op, ["A", "A"], ["OUT"])]
    graph = helper.make_graph(nodes, "g", [a, b], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


GOOD = _model()
BROKEN = _model("NoSuchOperator")
PLAN = b"a serialized TensorRT engine would be here"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "model.onnx").write_bytes(GOOD)
    (root / "broken.onnx").write_bytes(BROKEN)
    (root / "resnet.plan").write_bytes(PLAN)
    (root / "m.tar.gz").write_bytes(tar_bytes([("1/model.onnx", GOOD), ("config.yaml", b"x: 1")]))
    with serve(root) as srv:
        yield srv


def validate(site: FileServer, path: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    log = tmp_path / "termination-log"
    p = run("validate", "--uri", site.url + path, "--dest", str(tmp_path / "model"), "--allow-hosts", "127.0.0.1",
            "--termination-log", str(log), *extra)  # fmt: skip
    text = log.read_text()
    assert len(text.encode()) <= TERMINATION_LOG_LIMIT
    assert json.loads(p.stdout) == json.loads(text)
    return p.returncode, json.loads(text), p.stderr


def test_validate_reports_io_and_load_time(site: FileServer, tmp_path: Path) -> None:
    code, r, err = validate(site, "/model.onnx", tmp_path, "--digest", sha256(GOOD))
    assert code == 0, err
    assert r["ok"] is True
    assert r["reason"] == "Validated"
    assert r["artifact"] == {"digest": sha256(GOOD), "sizeBytes": len(GOOD)}
    assert r["signature"] == {"verified": False, "method": None}
    assert r["inputs"] == [{"name": "A", "datatype": "FP32", "shape": [-1, 4]},
                           {"name": "B", "datatype": "INT64", "shape": [2]}]  # fmt: skip
    assert r["outputs"] == [{"name": "OUT", "datatype": "FP32", "shape": [-1, 4]}]
    assert 0 < r["loadSeconds"] < 30


def test_validate_finds_the_model_in_a_directory_artifact(site: FileServer, tmp_path: Path) -> None:
    code, r, err = validate(site, "/m.tar.gz", tmp_path)
    assert code == 0, err
    assert r["model"] == "1/model.onnx"


def test_validate_digest_mismatch(site: FileServer, tmp_path: Path) -> None:
    code, r, _ = validate(site, "/model.onnx", tmp_path, "--digest", sha256(b"other"))
    assert code == 4
    assert r["ok"] is False
    assert r["reason"] == "DigestMismatch"
    assert "digest mismatch" in r["message"]
    assert not (tmp_path / "model").exists()


def test_validate_model_that_does_not_load(site: FileServer, tmp_path: Path) -> None:
    code, r, _ = validate(site, "/broken.onnx", tmp_path)
    assert code == 7
    assert r["reason"] == "ModelLoadFailed"
    assert r["artifact"]["digest"] == sha256(BROKEN)


def test_validate_checks_the_format_against_the_artifact(site: FileServer, tmp_path: Path) -> None:
    code, r, _ = validate(site, "/model.onnx", tmp_path / "a", "--format", "tensorrt")
    assert code == 7
    assert r["reason"] == "FormatMismatch"
    assert r["message"] == "format tensorrt: the artifact holds no TensorRT plan (.plan or .engine file)"
    code, r, _ = validate(site, "/resnet.plan", tmp_path / "b", "--format", "onnx")
    assert code == 7
    assert (r["reason"], r["message"]) == ("FormatMismatch", "format onnx: the artifact holds no .onnx model")


def test_a_plan_on_an_image_without_tensorrt_is_engine_unavailable(site: FileServer, tmp_path: Path) -> None:
    code, r, _ = validate(site, "/resnet.plan", tmp_path, "--format", "tensorrt")
    assert code == 7
    assert r["reason"] == "EngineUnavailable"
    assert "the tensorrt backend needs the Python package(s) tensorrt" in r["message"]
    assert r["artifact"]["digest"] == sha256(PLAN)  # fetched and verified before the engine was needed


def test_validate_ssrf_refusal_lands_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    p = run("validate", "--uri", "http://169.254.169.254/m.onnx", "--dest", str(tmp_path / "m"),
            "--termination-log", str(log))  # fmt: skip
    assert p.returncode == 6
    assert json.loads(log.read_text())["reason"] == "AddressBlocked"


def test_compact_keeps_within_the_termination_log_limit() -> None:
    many = [{"name": f"input_{i:04d}_" + "x" * 40, "datatype": "FP32", "shape": [-1, 3, 224, 224]} for i in range(300)]
    text = compact({"ok": True, "reason": "Validated", "message": "m", "inputs": many, "outputs": many})
    assert len(text.encode()) <= TERMINATION_LOG_LIMIT
    parsed = json.loads(text)
    assert parsed["truncated"] is True
    assert 0 < len(parsed["inputs"]) < 300


@pytest.fixture
def sidecar(site: FileServer, tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    repo = tmp_path / "models"
    proc = subprocess.Popen(
        [LOADER, "sidecar", "--repository", str(repo), "--listen", "127.0.0.1:0", "--allow-hosts", "127.0.0.1",
         "--uri", site.url + "/model.onnx", "--dest", str(repo / "fraud" / "1"), "--digest", sha256(GOOD)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    address = sidecar_address(proc)
    assert address, "the sidecar did not start"
    try:
        yield address, repo, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


def call(address: str, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = json.loads(resp.read())
    conn.close()
    return resp.status, payload


def test_sidecar_fetches_versions_on_request(site: FileServer, sidecar: tuple[str, Path, Any]) -> None:
    address, repo, proc = sidecar
    assert (repo / "fraud" / "1" / "model.onnx").read_bytes() == GOOD  # the initial version, before serving
    status, r = call(address, "POST", "/fetch",
                     {"uri": site.url + "/m.tar.gz", "model": "fraud", "version": "2", "digest": ""})  # fmt: skip
    assert status == 200, r
    assert (repo / "fraud" / "2" / "1" / "model.onnx").read_bytes() == GOOD
    bad = {"uri": site.url + "/model.onnx", "model": "fraud", "version": "3", "digest": sha256(b"x")}
    status, r = call(address, "POST", "/fetch", bad)
    assert status == 409
    assert r["reason"] == "DigestMismatch"
    assert not (repo / "fraud" / "3").exists()
    status, r = call(address, "POST", "/fetch", {"uri": site.url + "/model.onnx", "model": "../etc", "version": "1"})
    assert status == 400
    status, r = call(address, "POST", "/fetch", {"uri": "http://169.254.169.254/", "model": "m", "version": "1"})
    assert status == 409
    assert r["reason"] == "AddressBlocked"
    status, r = call(address, "GET", "/versions")
    assert [v["version"] for v in r["versions"]] == ["2"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("digest", [42, ["sha256:" + "0" * 64], {"sha256": "0" * 64}, True])
def test_sidecar_refuses_a_digest_that_is_no_string(
    site: FileServer, sidecar: tuple[str, Path, Any], digest: object
) -> None:
    address, repo, _ = sidecar
    body = {"uri": site.url + "/model.onnx", "model": "fraud", "version": "4", "digest": digest}
    status, r = call(address, "POST", "/fetch", body)
    assert status == 400, r
    assert r["reason"] == "InvalidArguments"
    assert "digest" in r["message"]
    assert not (repo / "fraud" / "4").exists()
    assert call(address, "GET", "/healthz") == (200, {"ok": True})


def test_sidecar_listens_on_loopback_only(tmp_path: Path) -> None:
    p = run("sidecar", "--repository", str(tmp_path), "--listen", "0.0.0.0:8090")
    assert p.returncode == 2
    assert "loopback" in p.stderr


def test_sys_executable_is_the_venv() -> None:
    assert Path(LOADER).parent == Path(sys.executable).parent
