"""The ONNX Runtime backend with options from config.yaml, on real CPU sessions of small generated models.

The CPU onnxruntime in CI has no CUDA or TensorRT provider, which is exactly the situation the errors and the
fallback are for.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelyard_runtime.backends import BackendUnavailableError, load_backend, parse_backend_options
from modelyard_runtime.backends.onnx import OnnxBackend, missing_library, model_bytes
from modelyard_runtime.errors import UnavailableError
from modelyard_runtime.protocol.datatypes import numpy_dtype

from ..models import binary_op, identity_all_types

CPU = "CPUExecutionProvider"


def _model(tmp_path: Path) -> Path:
    return binary_op(tmp_path / "adder" / "1" / "model.onnx")


def _load(path: Path, raw: dict[str, Any] | None, cache_root: Path) -> Any:
    return load_backend(path, parse_backend_options(raw, model_file=path, cache_root=cache_root))


def _check_adds(backend: Any) -> None:
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 10, dtype=np.float32)
    out = backend.run({"A": a, "B": b}, ["OUT0", "OUT1"])
    np.testing.assert_array_equal(out["OUT0"], a + b)
    np.testing.assert_array_equal(out["OUT1"], a - b)


def test_default_options_run_on_the_cpu(tmp_path: Path) -> None:
    backend = _load(_model(tmp_path), None, tmp_path)
    assert isinstance(backend, OnnxBackend)
    assert backend.platform == "onnxruntime_onnx"
    assert backend.providers == [CPU]
    assert [t.to_json() for t in backend.inputs] == [
        {"name": "A", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "B", "datatype": "FP32", "shape": [-1, 4]},
    ]
    _check_adds(backend)


def test_threads_optimization_and_execution_mode_reach_the_session(tmp_path: Path) -> None:
    import onnxruntime as ort

    raw = {
        "providers": ["cpu"],
        "intra_op_threads": 2,
        "inter_op_threads": 2,  # with 1, ONNX Runtime itself switches parallel back to sequential
        "graph_optimization": "basic",
        "execution_mode": "parallel",
    }
    backend = _load(_model(tmp_path), raw, tmp_path)
    so = backend.session.get_session_options()
    assert so.intra_op_num_threads == 2
    assert so.inter_op_num_threads == 2
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"  # sleeping workers by default
    _check_adds(backend)
    spinning = _load(_model(tmp_path / "s"), {"thread_spinning": True}, tmp_path).session.get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):  # left to ONNX Runtime's default
        spinning.get_session_config_entry("session.intra_op.allow_spinning")
    disabled = _load(_model(tmp_path / "d"), {"graph_optimization": "disable"}, tmp_path)
    assert disabled.session.get_session_options().graph_optimization_level == (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    _check_adds(disabled)


def test_cuda_on_a_cpu_build_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        _load(_model(tmp_path), {"providers": ["cuda", "cpu"]}, tmp_path)
    message = str(info.value)
    assert "CUDAExecutionProvider (install onnxruntime-gpu" in message
    assert "this onnxruntime has: " in message
    assert CPU in message


def test_tensorrt_provider_on_a_cpu_build_names_the_packages(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        _load(_model(tmp_path), {"providers": ["tensorrt", "cpu"]}, tmp_path)
    assert "TensorrtExecutionProvider (install onnxruntime-gpu plus the TensorRT libraries" in str(info.value)


def test_allow_fallback_runs_on_the_cpu_and_logs_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _model(tmp_path)
    raw = {"providers": ["tensorrt", "cuda", "cpu"], "allow_fallback": True}
    with caplog.at_level(logging.WARNING, logger="modelyard_runtime.backends"):
        backend = _load(path, raw, tmp_path / "cache")
    assert backend.providers == [CPU]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert str(path) in text
    assert "TensorrtExecutionProvider (install onnxruntime-gpu plus the TensorRT libraries" in text
    assert "CUDAExecutionProvider (install onnxruntime-gpu" in text
    assert text.endswith("allow_fallback is set, falling back to CPUExecutionProvider")
    assert not (tmp_path / "cache").exists()  # the TensorRT caches are only made for a TensorRT session
    _check_adds(backend)


def test_allow_fallback_with_only_gpu_providers_still_gets_the_cpu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="modelyard_runtime.backends"):
        backend = _load(_model(tmp_path), {"providers": ["cuda"], "allow_fallback": True}, tmp_path)
    assert backend.providers == [CPU]
    assert "falling back to CPUExecutionProvider" in caplog.text
    _check_adds(backend)


def test_missing_onnxruntime_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _model(tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as where the package is not installed
    with pytest.raises(BackendUnavailableError, match="needs the Python package onnxruntime"):
        _load(path, None, tmp_path)


def test_the_old_constructor_still_works_and_close_releases_the_session(tmp_path: Path) -> None:
    backend = OnnxBackend(_model(tmp_path))
    _check_adds(backend)
    backend.close()
    assert backend.session is None
    with pytest.raises(UnavailableError, match="unloaded"):
        _check_adds(backend)


def test_string_tensors_round_trip_as_bytes(tmp_path: Path) -> None:
    backend = _load(identity_all_types(tmp_path / "id" / "1" / "model.onnx"), {"graph_optimization": "all"}, tmp_path)
    feed = {t.name: np.zeros((1, 2), dtype=numpy_dtype(t.datatype)) for t in backend.inputs if t.datatype != "BYTES"}
    feed["IN_BYTES"] = np.array([[b"caf\xc3\xa9", b""]], dtype=np.object_)
    out = backend.run(feed, ["OUT_BYTES"])["OUT_BYTES"]
    assert out.tolist() == [[b"caf\xc3\xa9", b""]]


def _external_data_model(path: Path) -> tuple[Path, Path]:
    weights = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(1024, 4), "W")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", 1024])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n", 4])
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"])], "ext", [x], [y], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    return path, path.parent / "weights.bin"


def test_memory_bytes_counts_external_data_files(tmp_path: Path) -> None:
    path, data = _external_data_model(tmp_path / "ext" / "1" / "model.onnx")
    (path.parent / "README.md").write_text("not part of the model " * 100)
    assert data.stat().st_size == 4096 * 4
    expected = path.stat().st_size + data.stat().st_size
    assert model_bytes(path) == expected
    backend = _load(path, None, tmp_path)
    assert backend.memory_bytes == expected
    x = np.ones((2, 1024), dtype=np.float32)
    np.testing.assert_allclose(
        backend.run({"X": x}, ["Y"])["Y"], x @ np.arange(4096, dtype=np.float32).reshape(1024, 4)
    )


def test_memory_bytes_of_a_self_contained_model_is_its_size(tmp_path: Path) -> None:
    path = _model(tmp_path)
    (path.parent / "weights.bin").write_bytes(b"\0" * 1000)  # beside it, but the model does not name it
    assert model_bytes(path) == path.stat().st_size


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        ("libcublasLt.so.12: cannot open shared object file: No such file or directory", True),
        ("Failed to load library libonnxruntime_providers_tensorrt.so with error: libnvinfer.so.10", True),
        ("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from m.onnx failed", False),
    ],
)
def test_library_load_failures_are_told_apart_from_model_errors(message: str, missing: bool) -> None:
    assert missing_library(message) is missing
