"""``modelyard-loader sidecar --versions-file`` beside a real dynamic-mode ``modelyard-server``: the versions a pod is
told to hold beyond its own are fetched, verified, loaded with their own settings, and removed (and retired by the
server) when they leave the file; a bad one fails alone, and the pod's own version is never removed."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from onnx import TensorProto, helper

from devcluster import free_port
from support.httpserver import FileServer, serve
from support.loader import LOADER, sha256
from support.processes import sidecar_address

from ..serving import Server, run_server, wait_ready


def _scale(factor: float) -> bytes:
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["batch", 4])
    out = helper.make_tensor_value_info("OUT", TensorProto.FLOAT, ["batch", 4])
    k = helper.make_tensor("K", TensorProto.FLOAT, [], [factor])
    graph = helper.make_graph([helper.make_node("Mul", ["A", "K"], ["OUT"])], "g", [a], [out], [k])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


DOUBLE, TRIPLE = _scale(2.0), _scale(3.0)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "double.onnx").write_bytes(DOUBLE)
    (root / "triple.onnx").write_bytes(TRIPLE)
    with serve(root) as srv:
        yield srv


@contextmanager
def sidecar(repo: Path, *args: str) -> Iterator[tuple[str, list[str]]]:
    """The sidecar's address and its log lines so far (read in a thread: the pipe must never fill)."""
    proc = subprocess.Popen(
        [LOADER, "sidecar", "--repository", str(repo), "--listen", "127.0.0.1:0", "--allow-hosts", "127.0.0.1",
         "--no-progress", *args],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    address = sidecar_address(proc, seen=lines)  # a first pass may log before the sidecar announces its address
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        assert address, "the sidecar did not start"
        yield address, lines
    finally:
        proc.kill()
        proc.wait()
        reader.join(5)


def call(address: str, method: str, path: str, body: object | None = None, token: str | None = None) -> tuple[int, Any]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)
    response = conn.getresponse()
    payload = json.loads(response.read() or b"null")
    conn.close()
    return response.status, payload


def write_versions(path: Path, entries: list[dict[str, Any]]) -> None:
    """As the kubelet updates a ConfigMap volume: the new content appears at once, never half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"versions": entries}))
    os.replace(tmp, path)


def until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def infer(server: Server, version: str | None) -> tuple[int, Any]:
    path = "/v2/models/fraud" + (f"/versions/{version}" if version else "") + "/infer"
    body = {"inputs": [{"name": "A", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    return call(server.http, "POST", path, body)


def states(server: Server, token: str) -> dict[str, str]:
    _, rows = call(server.admin, "POST", "/v2/repository/index", {}, token)
    return {r["version"]: r["state"] for r in rows if r["name"] == "fraud"}


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_the_sidecar_holds_the_versions_its_file_lists_and_drops_those_it_no_longer_lists(
    site: FileServer, tmp_path: Path, mode: str
) -> None:
    """Dynamic loading: the pod's sidecar fetches the pod's own version, then follows the file. Static loading: an
    init container fetched the pod's own version before the server started; a sidecar that only follows the file
    (``--dest`` without ``--uri``) adds the others to the running server."""
    repo, token, versions = tmp_path / "models", tmp_path / "token", tmp_path / "versions.json"
    repo.mkdir()
    token.write_text("s3cret")
    write_versions(versions, [])
    server_args = ["--load-mode", mode, "--admin-token-file", str(token), "--serve", "fraud:1",
                   "--max-batch-size", "8", "--max-queue-delay-ms", "1"]  # fmt: skip
    own = {"model": "fraud", "version": "1", "uri": site.url + "/double.onnx", "digest": sha256(DOUBLE)}
    second = {"model": "fraud", "version": "2", "uri": site.url + "/triple.onnx", "digest": sha256(TRIPLE),
              "config": {"max_batch_size": 4, "dynamic_batching": {"max_queue_delay_ms": 3}}}  # fmt: skip
    initial = ["--uri", own["uri"], "--dest", str(repo / "fraud" / "1"), "--digest", own["digest"]]
    if mode == "static":
        fetched = subprocess.run([LOADER, "fetch", "--allow-hosts", "127.0.0.1", "--no-progress", *initial],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        initial = ["--dest", str(repo / "fraud" / "1")]  # the pod's own version: never fetched again, never removed
    with run_server(repo, *server_args, ready=False) as s:
        admin = ["--server-admin", f"http://{s.admin}", "--server-admin-token-file", str(token)]
        with sidecar(repo, *initial, *admin, "--versions-file", str(versions)) as (address, log):
            wait_ready(s, timeout=30)

            def own_requests() -> int:
                return sum(r[1] == "/double.onnx" for r in site.requests)

            fetched_once = own_requests()
            write_versions(versions, [own, second])
            until(lambda: states(s, "s3cret").get("2") == "READY", "version 2 loaded")
            assert infer(s, "2")[1]["outputs"][0]["data"] == [3, 6, 9, 12]
            # its own settings, from the file's config: 3 ms of queue delay where the server's default is 1 ms
            _, config = call(s.http, "GET", "/v2/models/fraud/versions/2/config")
            assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 3000
            assert config["max_batch_size"] == 4
            _, config = call(s.http, "GET", "/v2/models/fraud/versions/1/config")
            assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 1000
            assert config["max_batch_size"] == 8  # the server's flags
            _, listed = call(address, "GET", "/versions")
            assert listed["versionsFile"] == {"held": ["fraud/1", "fraud/2"], "failed": []}
            assert own_requests() == fetched_once  # listed too, the pod's own version is not fetched again

            # a version whose artifact does not match its digest fails alone: never published, the pod serves on
            bad = {"model": "fraud", "version": "3", "uri": site.url + "/triple.onnx", "digest": sha256(DOUBLE)}
            # and one not in the store yet is tried again after a back-off, and held once it is there
            later = {"model": "fraud", "version": "5", "uri": site.url + "/later.onnx", "digest": sha256(DOUBLE)}
            write_versions(versions, [own, second, bad, later])
            until(lambda: len(call(address, "GET", "/versions")[1]["versionsFile"]["failed"]) == 2, "3 and 5 failed")
            failed = call(address, "GET", "/versions")[1]["versionsFile"]["failed"]
            assert sorted((f["key"], f["reason"]) for f in failed) == [
                ("fraud/3", "DigestMismatch"),
                ("fraud/5", "FetchFailed"),
            ]
            assert not (repo / "fraud" / "3").exists()
            assert "3" not in states(s, "s3cret")
            assert s.status("/v2/health/ready") == 200
            (site.root / "later.onnx").write_bytes(DOUBLE)
            until(lambda: states(s, "s3cret").get("5") == "READY", "version 5 loaded on a later attempt", timeout=20)
            failed = call(address, "GET", "/versions")[1]["versionsFile"]["failed"]
            assert [(f["key"], f["attempts"]) for f in failed] == [("fraud/3", 2)]  # tried again in the same pass

            # settings the server refuses: not loaded, not left published (no request finds it), its reason listed
            refused = {**second, "version": "4", "config": {"dynamic_batching": {"preferred_batch_size": [16]}}}
            write_versions(versions, [own, second, refused])  # 3 and 5 leave the file: 5 is removed again
            until(lambda: any(f["key"] == "fraud/4" for f in call(address, "GET", "/versions")[1]["versionsFile"]
                              ["failed"]), "version 4 refused")  # fmt: skip
            failed = call(address, "GET", "/versions")[1]["versionsFile"]["failed"]
            assert failed[0]["reason"] == "ServerLoadFailed"
            assert "exceeds max_batch_size 8" in failed[0]["message"]
            assert not (repo / "fraud" / "4").exists()
            until(lambda: "5" not in states(s, "s3cret"), "version 5 retired")
            answer = infer(s, None)
            assert "outputs" in answer[1], answer
            assert answer[1]["outputs"][0]["data"] == [3, 6, 9, 12]  # the highest version that loaded: 2

            # left out of the file: version 2 is removed and retired; the pod's own version 1 stays
            write_versions(versions, [])
            until(lambda: "2" not in states(s, "s3cret"), "version 2 retired")
            assert not (repo / "fraud" / "2").exists()
            assert not (repo / "fraud" / ".config" / "2.json").exists()
            assert infer(s, "2")[0] == 404
            assert infer(s, None)[1]["outputs"][0]["data"] == [2, 4, 6, 8]
            assert s.status("/v2/health/ready") == 200
            assert call(address, "GET", "/versions")[1]["versionsFile"] == {"held": [], "failed": []}
            assert any("fraud/2 removed (no longer listed)" in line for line in log)

            # a file that is not the expected JSON changes nothing, and is said once
            versions.write_text("{not json")
            time.sleep(2.5)
            assert sum("versions file:" in line and "is not JSON" in line for line in log) == 1
            assert states(s, "s3cret") == {"1": "READY"}


def test_restarts_names_and_a_server_that_starts_later(site: FileServer, tmp_path: Path) -> None:
    """Static loading as the operator renders it: the sidecar starts before the server (the server is asked again
    until it answers; the version stays published), a restarted server loads what the pod holds with the version's
    own settings, a restarted sidecar neither fetches again what it holds nor keeps what was dropped meanwhile, and
    an entry whose names would reach outside its folder touches nothing."""
    repo, versions = tmp_path / "models", tmp_path / "versions.json"
    repo.mkdir()
    own = {"model": "fraud", "version": "1", "uri": site.url + "/double.onnx", "digest": sha256(DOUBLE)}
    second = {"model": "fraud", "version": "2", "uri": site.url + "/triple.onnx", "digest": sha256(TRIPLE),
              "config": {"dynamic_batching": {"max_queue_delay_ms": 3}}}  # fmt: skip
    fetched = subprocess.run([LOADER, "fetch", "--allow-hosts", "127.0.0.1", "--no-progress", "--uri", own["uri"],
                              "--dest", str(repo / "fraud" / "1"), "--digest", own["digest"]],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    write_versions(versions, [own, second])
    admin_port = free_port()
    follower = ["--dest", str(repo / "fraud" / "1"), "--server-admin", f"http://127.0.0.1:{admin_port}",
                "--versions-file", str(versions)]  # fmt: skip
    server_args = ["--load-mode", "static", "--serve", "fraud:1", "--admin-port", str(admin_port),
                   "--max-batch-size", "8", "--max-queue-delay-ms", "1"]  # fmt: skip

    def triple_gets() -> int:
        return sum(r[1] == "/triple.onnx" for r in site.requests)

    with sidecar(repo, *follower) as (address, _log):
        until(lambda: (repo / "fraud" / "2").is_dir(), "version 2 published before the server runs")
        status = call(address, "GET", "/versions")[1]["versionsFile"]
        assert [(f["key"], f["reason"], f["attempts"]) for f in status["failed"]] == [
            ("fraud/2", "ServerLoadFailed", 0)
        ]
        with run_server(repo, *server_args) as s:
            until(lambda: call(address, "GET", "/versions")[1]["versionsFile"]["held"] == ["fraud/1", "fraud/2"],
                  "version 2 held once the server answers")  # fmt: skip
            assert infer(s, "2")[1]["outputs"][0]["data"] == [3, 6, 9, 12]
            fetches = triple_gets()
        # the server restarts (a container restart keeps the pod's emptyDir): it loads version 2 with its settings
        with run_server(repo, *server_args) as s:
            _, config = call(s.http, "GET", "/v2/models/fraud/versions/2/config")
            assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 3000
            assert infer(s, "2")[1]["outputs"][0]["data"] == [3, 6, 9, 12]
            assert triple_gets() == fetches
    # the sidecar restarts: still listed, version 2 is not fetched again
    with sidecar(repo, *follower) as (address, _log):
        until(lambda: call(address, "GET", "/versions")[1]["versionsFile"]["held"] == ["fraud/1", "fraud/2"],
              "held again after a restart")  # fmt: skip
        time.sleep(1.5)
        assert triple_gets() == fetches
    # dropped while the sidecar was down: the restarted sidecar removes it
    outside = [{"model": "..", "version": "x", "uri": site.url + "/triple.onnx", "config": {}},
               {"model": "fraud", "version": ".config", "uri": site.url + "/triple.onnx", "config": {}}]  # fmt: skip
    write_versions(versions, [own, *outside])
    with sidecar(repo, *follower) as (address, _log):
        until(lambda: not (repo / "fraud" / "2").exists(), "version 2 removed after the restart")
        until(lambda: len(call(address, "GET", "/versions")[1]["versionsFile"]["failed"]) == 2, "bad names refused")
        failed = call(address, "GET", "/versions")[1]["versionsFile"]["failed"]
        assert {f["reason"] for f in failed} == {"InvalidArguments"}
        assert not (tmp_path / ".config").exists()
        assert not (tmp_path / "x").exists()
        assert sorted(p.name for p in (repo / "fraud" / ".config").iterdir()) == []  # version 2's settings gone too
        assert (repo / "fraud" / "1" / "double.onnx").exists()


def test_an_unexpected_failure_is_that_versions_and_backed_off(site: FileServer, tmp_path: Path) -> None:
    """Something no loader error covers (here: a file where the settings folder belongs) fails that version alone,
    as "Internal", backed off like any failure; the follower carries on and holds it once the cause is gone."""
    repo, versions = tmp_path / "models", tmp_path / "versions.json"
    (repo / "fraud").mkdir(parents=True)
    (repo / "fraud" / ".config").write_text("in the way")
    second = {"model": "fraud", "version": "2", "uri": site.url + "/triple.onnx", "digest": sha256(TRIPLE),
              "config": {}}  # fmt: skip
    write_versions(versions, [second])
    with sidecar(repo, "--versions-file", str(versions)) as (address, log):
        until(lambda: bool(call(address, "GET", "/versions")[1]["versionsFile"]["failed"]), "version 2 failed")
        (failed,) = call(address, "GET", "/versions")[1]["versionsFile"]["failed"]
        assert (failed["key"], failed["reason"], failed["attempts"]) == ("fraud/2", "Internal", 1)
        time.sleep(2.5)
        tries = [line for line in log if "versions file: fraud/2:" in line]
        assert len(tries) == 1, tries  # backed off (5 s), not tried again every second
        assert "trying again in 5s" in tries[0]
        (repo / "fraud" / ".config").unlink()
        until(lambda: call(address, "GET", "/versions")[1]["versionsFile"]["held"] == ["fraud/2"], "held", timeout=20)
        assert (repo / "fraud" / "2" / "triple.onnx").read_bytes() == TRIPLE
