"""A version's own backend and warm-up (``--version-config``, rendered from a ModelVersion's spec.runtime and
spec.warmup) through a real modelyard-server, and the termination message of a server that cannot start."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from devcluster import free_port

from ..models import binary_op, failing_model
from ..serving import SERVER, run_server

A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 3, dtype=np.float32)
CPU_ONLY = {"backend": {"kind": "onnxruntime", "device_id": 0, "allow_fallback": False,
                        "providers": ["CPUExecutionProvider"]}}  # fmt: skip
CUDA_FIRST = {"backend": {"kind": "onnxruntime", "device_id": 0, "allow_fallback": False,
                          "providers": [{"name": "CUDAExecutionProvider", "options": {"use_tf32": False}},
                                        "CPUExecutionProvider"]}}  # fmt: skip


def flag(target: str, document: dict[str, object]) -> list[str]:
    return ["--version-config", f"{target}={json.dumps(document)}"]


def infer(client: httpclient.InferenceServerClient, model: str, version: str = "") -> np.ndarray:
    ins = []
    for name, arr in (("A", A), ("B", B)):
        inp = httpclient.InferInput(name, list(arr.shape), "FP32")
        inp.set_data_from_numpy(arr)
        ins.append(inp)
    return np.asarray(client.infer(model, ins, model_version=version).as_numpy("OUT0"))


def failed_start(repo: Path, tmp_path: Path, *args: str) -> tuple[int, dict[str, str], str]:
    """Run a static server that must not come up; its exit code, termination message and output."""
    termination = tmp_path / "termination-log"
    proc = subprocess.run(
        [SERVER, "--model-repository", str(repo), "--host", "127.0.0.1", "--http-port", str(free_port()),
         "--grpc-port", str(free_port()), "--admin-port", "0", "--termination-log", str(termination), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "MODELYARD_CACHE_DIR": str(tmp_path / "c")},
    )  # fmt: skip
    return proc.returncode, json.loads(termination.read_text()), proc.stderr


def test_a_provider_the_image_lacks_stops_the_start_with_a_reason_never_runs_on_the_cpu(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    code, message, stderr = failed_start(repo, tmp_path, *flag("calc:1", CUDA_FIRST))
    assert code != 0
    assert message["reason"] == "ExecutionProviderUnavailable"
    assert "CUDAExecutionProvider (install onnxruntime-gpu" in message["message"]
    assert "cannot load calc version 1" in message["message"]
    assert "ready:" not in stderr


def test_the_cpu_provider_and_warmup_requests_apply_to_their_version_only(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    binary_op(repo / "calc" / "2" / "model.onnx", op="Sub")
    args = [*flag("calc:1", {**CPU_ONLY, "warmup": {"runs": 3}}), *flag("calc:2", {**CPU_ONLY, "warmup": {"runs": 0}})]
    with run_server(repo, *args) as s:
        client = httpclient.InferenceServerClient(s.http)
        np.testing.assert_array_equal(infer(client, "calc", "1"), A + B)
        np.testing.assert_array_equal(infer(client, "calc", "2"), A - B)
        output = s.output()
    assert "warmed up calc version 1 with 3 inference(s)" in output
    assert "warmed up calc version 2" not in output  # runs: 0 is no warm-up, not the default of one
    # readiness came after the warm-up
    assert output.index("warmed up calc version 1") < output.index("ready:")


def test_a_gpu_version_beside_a_cpu_version_is_unavailable_with_the_reason_in_dynamic_mode(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    binary_op(repo / "calc" / "2" / "model.onnx")
    args = ["--load-mode", "dynamic", *flag("calc:1", CPU_ONLY), *flag("calc:2", CUDA_FIRST)]
    with run_server(repo, *args, env={"MODELYARD_CACHE_DIR": str(tmp_path / "c")}) as s:
        client = httpclient.InferenceServerClient(s.http)
        np.testing.assert_array_equal(infer(client, "calc", "1"), A + B)
        with pytest.raises(httpclient.InferenceServerException, match="CUDAExecutionProvider"):
            infer(client, "calc", "2")  # asked for CUDA: never served on the CPU


def test_warmup_samples_are_real_inputs_cycled_before_ready(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    samples = tmp_path / "warmup" / "calc" / "1"
    samples.mkdir(parents=True)
    requests = [{"inputs": [{"name": n, "datatype": "FP32", "shape": [r, 4], "data": [[1.0] * 4] * r}
                            for n in ("A", "B")]} for r in (1, 2, 3)]  # fmt: skip
    (samples / "warmup.json").write_text(json.dumps(requests))
    with run_server(repo, *flag("calc:1", {**CPU_ONLY, "warmup": {"runs": 7, "samples": str(samples)}})) as s:
        np.testing.assert_array_equal(infer(httpclient.InferenceServerClient(s.http), "calc"), A + B)
        output = s.output()
    assert "warmed up calc version 1 with 7 inference(s) on 3 sample(s)" in output
    assert output.index("warmed up calc version 1") < output.index("ready:")


def test_a_sample_the_model_rejects_fails_the_load_with_the_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    failing_model(repo / "calc" / "1" / "model.onnx")  # reshapes a [batch, 4] sum to [3]: fails at run time
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps({"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
                                              for n in ("A", "B")]}))  # fmt: skip
    code, message, _ = failed_start(repo, tmp_path, *flag("calc:1", {**CPU_ONLY, "warmup": {"samples": str(samples)}}))
    assert code != 0
    assert message["reason"] == "ModelLoadFailed"
    assert "warm-up sample 0 failed" in message["message"]


def test_preferred_batch_sizes_of_a_version_reach_its_model_configuration(tmp_path: Path) -> None:
    """spec.batching.preferredBatchSizes travels in the version's --version-config (dynamic_batching) and is what
    the server schedules with and reports in Triton's model configuration; the other version keeps none."""
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    binary_op(repo / "calc" / "2" / "model.onnx", op="Sub")
    batching = {"dynamic_batching": {"preferred_batch_size": [2, 4]}}
    args = [*flag("calc:1", {**CPU_ONLY, **batching}), *flag("calc:2", CPU_ONLY), "--max-batch-size", "8"]
    with run_server(repo, *args) as s:
        client = httpclient.InferenceServerClient(s.http)
        np.testing.assert_array_equal(infer(client, "calc", "1"), A + B)
        one = client.get_model_config("calc", "1")
        two = client.get_model_config("calc", "2")
    assert one["dynamic_batching"]["preferred_batch_size"] == [2, 4]
    assert two["dynamic_batching"]["preferred_batch_size"] == []
