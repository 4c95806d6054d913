"""Loading behaviour of a real modelyard-server: static readiness, dynamic loading, eviction, unload in flight,
version weights and batching switched off for models without a batch dimension, observed through tritonclient, the
repository API and /metrics (how batches form: test_server_batching.py)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from modelyard_runtime.metrics import ServerMetrics
from modelyard_runtime.server.core import DataPlane

from ..models import binary_op, failing_model, matmul_chain, power_chain
from ..serving import Server, run_server

A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 3, dtype=np.float32)


def calc_inputs(a: np.ndarray, b: np.ndarray) -> list[grpcclient.InferInput]:
    ins = []
    for name, arr in (("A", a), ("B", b)):
        inp = grpcclient.InferInput(name, list(arr.shape), "FP32")
        inp.set_data_from_numpy(arr)
        ins.append(inp)
    return ins


def metric(server: Server, name: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if m and all(w in m.group(1).split(",") for w in wanted):
            return float(m.group(2))
    return 0.0


def states(client: grpcclient.InferenceServerClient) -> dict[str, str]:
    rows = client.get_model_repository_index(as_json=True)["models"]
    return {f"{r['name']}/{r['version']}": r["state"] for r in rows}


def test_static_mode_is_unavailable_until_loaded_and_warmed_up(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    matmul_chain(repo / "slow" / "1" / "model.onnx", width=512, depth=40)
    (repo / "slow" / "config.yaml").write_text("warmup:\n  runs: 600\n")  # ~1 s of warm-up before ready
    with run_server(repo, ready=False) as s:
        assert s.status("/v2/health/live") == 200
        assert s.status("/v2/health/ready") == 503
        client = httpclient.InferenceServerClient(s.http)
        inp = httpclient.InferInput("X", [1, 512], "FP32")
        inp.set_data_from_numpy(np.ones((1, 512), np.float32))
        with pytest.raises(InferenceServerException) as exc:
            client.infer("slow", [inp])
        assert exc.value.status() == "503"
        assert "not ready" in exc.value.message()
        deadline = time.monotonic() + 60
        while s.status("/v2/health/ready") != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.infer("slow", [inp]).as_numpy("Y").shape == (1, 512)
        assert "loaded slow version 1" in s.output()


def test_bad_config_stops_a_static_server_with_the_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    (repo / "calc" / "config.yaml").write_text("max_batch_sise: 4\n")
    with pytest.raises(AssertionError, match=r"unknown key.*max_batch_sise"), run_server(repo):
        pass


def test_dynamic_mode_loads_on_first_request_once(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    binary_op(repo / "calc" / "2" / "model.onnx", "Mul")
    with run_server(repo, "--load-mode", "dynamic") as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        assert states(client) == {"calc/1": "UNAVAILABLE", "calc/2": "UNAVAILABLE"}
        assert not client.is_model_ready("calc")
        with ThreadPoolExecutor(8) as pool:  # eight first requests at once: one load
            results = list(pool.map(lambda _: client.infer("calc", calc_inputs(A, B)).as_numpy("OUT0"), range(8)))
        for out in results:
            np.testing.assert_array_equal(out, A * B)
        assert metric(s, "modelyard_model_load_duration_seconds_count", model="calc", version="2") == 1
        assert metric(s, "modelyard_model_loaded", model="calc", version="2") == 1
        assert metric(s, "modelyard_model_memory_bytes", model="calc", version="2") > 0
        assert states(client) == {"calc/1": "UNAVAILABLE", "calc/2": "READY"}
        np.testing.assert_array_equal(client.infer("calc", calc_inputs(A, B), "1").as_numpy("OUT0"), A + B)
        assert states(client) == {"calc/1": "READY", "calc/2": "READY"}


def test_least_recently_used_version_is_evicted_under_the_budget(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for name in ("a", "b", "c"):  # ~1 MB each; the budget holds two
        matmul_chain(repo / name / "1" / "model.onnx", width=256, depth=4)
    x = grpcclient.InferInput("X", [1, 256], "FP32")
    x.set_data_from_numpy(np.ones((1, 256), np.float32))
    with run_server(repo, "--load-mode", "dynamic", "--memory-budget", "2500Ki") as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        client.infer("a", [x])
        client.infer("b", [x])
        client.infer("a", [x])  # a is now more recent than b
        client.infer("c", [x])
        assert states(client) == {"a/1": "READY", "b/1": "UNAVAILABLE", "c/1": "READY"}
        reasons = {r["name"]: r.get("reason", "") for r in client.get_model_repository_index(as_json=True)["models"]}
        assert "evicted" in reasons["b"]
        client.infer("b", [x])  # comes back on demand, evicting a (the least recently used now)
        assert states(client) == {"a/1": "UNAVAILABLE", "b/1": "READY", "c/1": "READY"}
        assert metric(s, "modelyard_model_loaded", model="a", version="1") == 0


def test_dynamic_mode_loads_the_versions_it_must_serve_before_it_is_ready(tmp_path: Path) -> None:
    """--serve in dynamic mode: loaded as soon as published, without a request, and ready only once loaded."""
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    binary_op(repo / "calc" / "2" / "model.onnx", "Mul")  # on disk, not required: loaded on demand only
    staged = binary_op(tmp_path / "staged" / "model.onnx", "Sub")
    with run_server(repo, "--load-mode", "dynamic", "--serve", "calc:1", "--serve", "late:1", ready=False) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        wait_for_state(client, "calc/1", "READY")  # loaded without a request
        assert not client.is_server_ready()  # late:1 is not published yet
        (repo / "late").mkdir()
        staged.parent.rename(repo / "late" / "1")  # what the loader sidecar does: an atomic rename
        wait_for_state(client, "late/1", "READY")
        deadline = time.monotonic() + 10
        while not client.is_server_ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.is_server_ready()
        assert states(client) == {"calc/1": "READY", "calc/2": "UNAVAILABLE", "late/1": "READY"}
        assert metric(s, "modelyard_model_load_duration_seconds_count", model="calc", version="1") == 1


def test_a_required_version_that_fails_to_load_keeps_the_pod_unready_with_the_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.onnx").write_bytes(b"not a model")
    with run_server(repo, "--load-mode", "dynamic", "--serve", "broken:1", ready=False) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        deadline = time.monotonic() + 10
        while not reason(client, "broken/1") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reason(client, "broken/1"), "no reason in the repository index"
        time.sleep(2.5)  # two more rescans: the same files are not tried again
        assert metric(s, "modelyard_model_load_failures_total", model="broken", version="1") == 1
        assert not client.is_server_ready()


def test_the_versions_a_pod_must_serve_are_never_evicted(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for name in ("a", "b", "c"):  # ~1 MB each; the budget holds two
        matmul_chain(repo / name / "1" / "model.onnx", width=256, depth=4)
    x = grpcclient.InferInput("X", [1, 256], "FP32")
    x.set_data_from_numpy(np.ones((1, 256), np.float32))
    with run_server(repo, "--load-mode", "dynamic", "--memory-budget", "2500Ki", "--serve", "a:1") as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        assert states(client)["a/1"] == "READY"  # ready means loaded
        client.infer("b", [x])
        client.infer("c", [x])  # a is the least recently used, but the pod must serve it: b goes
        assert states(client) == {"a/1": "READY", "b/1": "UNAVAILABLE", "c/1": "READY"}
        assert client.is_server_ready()


def wait_for_state(client: grpcclient.InferenceServerClient, key: str, state: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while states(client).get(key) != state:
        assert time.monotonic() < deadline, f"{key} never {state}: {states(client)}"
        time.sleep(0.1)


def reason(client: grpcclient.InferenceServerClient, key: str) -> str:
    for row in client.get_model_repository_index(as_json=True)["models"]:
        if f"{row['name']}/{row.get('version', '')}" == key:
            return str(row.get("reason", ""))
    return ""


def test_a_model_above_the_budget_is_refused_with_the_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    matmul_chain(repo / "big" / "1" / "model.onnx", width=256, depth=4)
    x = grpcclient.InferInput("X", [1, 256], "FP32")
    x.set_data_from_numpy(np.ones((1, 256), np.float32))
    with run_server(repo, "--load-mode", "dynamic", "--memory-budget", "100Ki") as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        with pytest.raises(InferenceServerException) as exc:
            client.infer("big", [x])
        assert exc.value.status() == "StatusCode.UNAVAILABLE"
        assert "more than the memory budget" in exc.value.message()


def test_unload_waits_for_requests_in_flight(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    power_chain(repo / "slow" / "1" / "model.onnx", depth=64)
    n = 1536
    x = grpcclient.InferInput("X", [n, n], "FP32")
    x.set_data_from_numpy(np.full((n, n), 1e-3, np.float32))
    with run_server(repo) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        outcome: dict[str, object] = {}

        def slow_request() -> None:
            try:
                outcome["shape"] = client.infer("slow", [x]).as_numpy("Y").shape
            except InferenceServerException as exc:  # pragma: no cover - reported below
                outcome["error"] = exc

        worker = threading.Thread(target=slow_request)
        worker.start()
        deadline = time.monotonic() + 10
        while metric(s, "modelyard_inference_inflight_requests", model="slow", version="1") < 1:
            assert time.monotonic() < deadline, "the slow request never started"
            time.sleep(0.01)
        httpclient.InferenceServerClient(s.admin).unload_model("slow")
        assert not client.is_model_ready("slow")
        with pytest.raises(InferenceServerException) as exc:
            client.infer("slow", [x])
        assert exc.value.status() == "StatusCode.UNAVAILABLE"
        worker.join(timeout=60)
        assert outcome == {"shape": (n, n)}, outcome  # the request in flight finished normally
        assert "unloaded slow version 1" in s.output()


def test_unversioned_requests_follow_the_weight_table_and_its_changes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    binary_op(repo / "calc" / "2" / "model.onnx", "Mul")
    config = repo / "calc" / "config.yaml"
    config.write_text('version_weights: {"1": 75, "2": 25}\n')
    with run_server(repo) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        versions = [client.infer("calc", calc_inputs(A, B)).get_response().model_version for _ in range(8)]
        assert sorted(versions) == ["1"] * 6 + ["2"] * 2
        assert client.infer("calc", calc_inputs(A, B), "2").get_response().model_version == "2"
        config.write_text('version_weights: {"1": 0, "2": 100}\n')
        time.sleep(1.5)  # the server re-reads config.yaml at most once a second
        versions = [client.infer("calc", calc_inputs(A, B)).get_response().model_version for _ in range(4)]
        assert versions == ["2"] * 4
        config.write_text("version_weights: [broken\n")  # a bad edit keeps the last good table
        time.sleep(1.5)
        assert client.infer("calc", calc_inputs(A, B)).get_response().model_version == "2"
        assert "keeping the previous settings of calc" in s.output()


def test_batching_is_off_for_models_without_a_batch_dimension(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    power_chain(repo / "square" / "1" / "model.onnx", depth=1, n=2)  # fixed [2, 2]: no batch dimension
    with run_server(repo, "--max-batch-size", "8", "--max-queue-delay-ms", "5") as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        assert client.get_model_config("square", as_json=True)["config"].get("max_batch_size", 0) == 0
        x = grpcclient.InferInput("X", [2, 2], "FP32")
        x.set_data_from_numpy(np.eye(2, dtype=np.float32))
        np.testing.assert_array_equal(client.infer("square", [x]).as_numpy("Y"), np.eye(2))
        assert "batching is off" in s.output()


def test_weights_from_a_config_map_style_folder_follow_its_updates(tmp_path: Path) -> None:
    """Kubernetes updates a ConfigMap volume by swapping a ``..data`` symlink; the server must notice."""
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    binary_op(repo / "calc" / "2" / "model.onnx", "Mul")
    mount = tmp_path / "cm" / "calc"

    def publish(text: str, generation: int) -> None:
        data = mount / f"..{generation}"
        data.mkdir(parents=True)
        (data / "config.yaml").write_text(text)
        link = mount / "..data_tmp"
        link.symlink_to(data.name)
        link.replace(mount / "..data")  # atomic, as the kubelet does
        if not (mount / "config.yaml").is_symlink():
            (mount / "config.yaml").symlink_to("..data/config.yaml")

    publish('version_weights: {"1": 100}\n', 1)
    with run_server(repo, "--model-config-dir", str(tmp_path / "cm")) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        assert {client.infer("calc", calc_inputs(A, B)).get_response().model_version for _ in range(4)} == {"1"}
        publish('version_weights: {"1": 50, "2": 50}\n', 2)
        time.sleep(1.5)
        versions = [client.infer("calc", calc_inputs(A, B)).get_response().model_version for _ in range(4)]
        assert sorted(versions) == ["1", "1", "2", "2"]


def test_a_model_that_fails_at_run_time_is_a_500_with_the_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    failing_model(repo / "broken" / "1" / "model.onnx")
    with run_server(repo) as s:
        http = httpclient.InferenceServerClient(s.http)
        inputs = []
        for name in ("A", "B"):
            inp = httpclient.InferInput(name, [2, 4], "FP32")
            inp.set_data_from_numpy(A)
            inputs.append(inp)
        with pytest.raises(InferenceServerException) as exc:
            http.infer("broken", inputs)
        assert exc.value.status() == "500"
        assert "model broken version 1 failed" in exc.value.message()
        grpc = grpcclient.InferenceServerClient(s.grpc)
        with pytest.raises(InferenceServerException) as exc:
            grpc.infer("broken", calc_inputs(A, B))
        assert exc.value.status() == "StatusCode.INTERNAL"
        assert metric(s, "modelyard_inference_requests_total", model="broken", protocol="grpc", code="500") == 1
        assert metric(s, "modelyard_inference_requests_total", model="broken", protocol="http", code="500") == 1
        assert s.status("/v2/health/live") == 200  # the server is fine


def test_a_static_server_without_models_stays_unready_until_one_appears(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    with run_server(repo, ready=False) as s:
        time.sleep(1.5)
        assert s.status("/v2/health/ready") == 503  # answering 404 to everything must not count as ready
        binary_op(repo / "calc" / "1" / "model.onnx", "Add")
        deadline = time.monotonic() + 15
        while s.status("/v2/health/ready") != 200:
            assert time.monotonic() < deadline, s.output()
            time.sleep(0.1)
        client = grpcclient.InferenceServerClient(s.grpc)
        np.testing.assert_array_equal(client.infer("calc", calc_inputs(A, B)).as_numpy("OUT0"), A + B)
        assert "not ready until one appears" in s.output()


def test_stopping_while_waiting_for_models_is_prompt(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    with run_server(repo, ready=False) as s:
        s.proc.terminate()
        assert s.proc.wait(timeout=10) == 0
        assert "stopping before ready" in s.output()


def test_sigterm_with_drain_fails_readiness_but_keeps_answering_until_the_drain_ends(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    with run_server(repo, "--drain-seconds", "3") as s:
        grpc = grpcclient.InferenceServerClient(s.grpc)
        assert grpc.is_server_ready()
        s.proc.terminate()
        deadline = time.monotonic() + 5
        while s.status("/v2/health/ready") != 503:  # endpoints would drop the pod now ...
            assert time.monotonic() < deadline, s.output()
            time.sleep(0.05)
        draining_since = time.monotonic()
        assert s.status("/v2/health/live") == 200
        assert not grpc.is_server_ready()
        answered = 0
        while time.monotonic() - draining_since < 2:  # ... while clients that still have it get answers
            np.testing.assert_array_equal(grpc.infer("calc", calc_inputs(A, B)).as_numpy("OUT0"), A + B)
            answered += 1
            time.sleep(0.05)
        assert s.proc.poll() is None
        assert s.proc.wait(timeout=10) == 0
        stopped_after = time.monotonic() - draining_since
        assert answered > 10
        assert 0.9 <= stopped_after <= 5, stopped_after
        assert "draining: readiness now fails" in s.output()


def test_a_second_signal_ends_the_drain_at_once(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    with run_server(repo, "--drain-seconds", "60") as s:
        s.proc.terminate()
        deadline = time.monotonic() + 5
        while "draining:" not in s.output():
            assert time.monotonic() < deadline, s.output()
            time.sleep(0.05)
        s.proc.terminate()
        assert s.proc.wait(timeout=10) == 0


def test_a_cancelled_caller_does_not_strand_the_others_waiting_on_the_same_load(tmp_path: Path) -> None:
    """Dynamic loading coalesces concurrent loads of a version; the first caller giving up (a client that
    disconnects) must not leave the others waiting forever, and the finished load is kept."""
    repo = tmp_path / "repo"
    binary_op(repo / "m" / "1" / "model.onnx")
    binary_op(repo / "m" / "2" / "model.onnx", op="Mul")
    (repo / "m" / "config.yaml").write_text("warmup:\n  runs: 200\n")

    async def scenario() -> None:
        plane = DataPlane(repo, ServerMetrics(), mode="dynamic")
        await plane.start()
        try:
            first = asyncio.create_task(plane.acquire("m", "1"))
            await asyncio.sleep(0)  # the first caller starts the load
            second = asyncio.create_task(plane.acquire("m", "1"))
            await asyncio.sleep(0)  # the second waits on the same load
            assert {r["version"]: r["state"] for r in plane.index()} == {"1": "LOADING", "2": "UNAVAILABLE"}
            first.cancel()
            model = await asyncio.wait_for(second, timeout=30)
            with pytest.raises(asyncio.CancelledError):
                await first
            outputs = await plane.infer(model, {"A": A, "B": B}, {"A": "FP32", "B": "FP32"}, None)
            np.testing.assert_array_equal(outputs["OUT0"], A + B)
            await plane.release(model)

            only = asyncio.create_task(plane.acquire("m", "2"))
            await asyncio.sleep(0)
            only.cancel()  # nobody waits any more: the load still finishes and the version is kept
            with pytest.raises(asyncio.CancelledError):
                await only
            for _ in range(300):
                if plane.is_ready("m", "2"):
                    break
                await asyncio.sleep(0.05)
            assert plane.is_ready("m", "2")
            assert {r["version"]: r["state"] for r in plane.index()} == {"1": "READY", "2": "READY"}
        finally:
            await plane.close()

    asyncio.run(scenario())
