"""Backend options from config.yaml through a real modelyard-server: errors that name what is missing, the logged
fallback, the TensorRT plan backend on a machine without TensorRT, and a bad ``backend:`` key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from ..models import binary_op
from ..serving import run_server

A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 3, dtype=np.float32)


def calc_inputs() -> list[grpcclient.InferInput]:
    ins = []
    for name, arr in (("A", A), ("B", B)):
        inp = grpcclient.InferInput(name, list(arr.shape), "FP32")
        inp.set_data_from_numpy(arr)
        ins.append(inp)
    return ins


def test_unavailable_providers_and_backends_are_named_per_model(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "cpu" / "1" / "model.onnx")
    binary_op(repo / "gpu" / "1" / "model.onnx")
    (repo / "gpu" / "config.yaml").write_text("backend:\n  providers: [cuda, cpu]\n")
    plan = repo / "engine" / "1" / "model.plan"
    plan.parent.mkdir(parents=True)
    plan.write_bytes(b"a serialized engine would be here")
    with run_server(repo, "--load-mode", "dynamic", env={"MODELYARD_CACHE_DIR": str(tmp_path / "cache")}) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        np.testing.assert_array_equal(client.infer("cpu", calc_inputs()).as_numpy("OUT0"), A + B)
        with pytest.raises(InferenceServerException) as exc:
            client.infer("gpu", calc_inputs())
        assert exc.value.status() == "StatusCode.UNAVAILABLE"
        assert "CUDAExecutionProvider (install onnxruntime-gpu" in exc.value.message()
        with pytest.raises(InferenceServerException) as exc:
            client.infer("engine", calc_inputs())
        assert exc.value.status() == "StatusCode.UNAVAILABLE"
        assert "the tensorrt backend needs the Python package(s) tensorrt" in exc.value.message()
        reasons = {r["name"]: r.get("reason", "") for r in client.get_model_repository_index(as_json=True)["models"]}
        assert "onnxruntime-gpu" in reasons["gpu"]
        assert "cuda-python" in reasons["engine"]


def test_allow_fallback_serves_on_the_cpu_and_logs_the_warning(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    (repo / "calc" / "config.yaml").write_text(
        "backend:\n"
        "  providers: [{name: tensorrt, options: {trt_fp16_enable: true}}, cuda, cpu]\n"
        "  intra_op_threads: 1\n"
        "  graph_optimization: extended\n"
        "  allow_fallback: true\n"
    )
    with run_server(repo, env={"MODELYARD_CACHE_DIR": str(tmp_path / "cache")}) as s:
        client = httpclient.InferenceServerClient(s.http)
        ins = []
        for name, arr in (("A", A), ("B", B)):
            inp = httpclient.InferInput(name, list(arr.shape), "FP32")
            inp.set_data_from_numpy(arr)
            ins.append(inp)
        np.testing.assert_array_equal(client.infer("calc", ins).as_numpy("OUT0"), A + B)
        output = s.output()
    assert "WARNING" in output
    assert "allow_fallback is set, falling back to CPUExecutionProvider" in output
    assert "TensorrtExecutionProvider (install onnxruntime-gpu plus the TensorRT libraries" in output


def test_a_bad_backend_key_stops_a_static_server_with_the_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    (repo / "calc" / "config.yaml").write_text("backend:\n  provider: [cpu]\n")
    message = r"unknown key\(s\) in backend: provider; allowed: kind, providers"
    with pytest.raises(AssertionError, match=message), run_server(repo):
        pass
