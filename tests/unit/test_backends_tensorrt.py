"""The TensorRT plan backend without a GPU: datatypes, shapes, binding plans, and the error when it is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from modelyard_runtime.backends import BackendUnavailableError, load_backend
from modelyard_runtime.backends.options import parse_backend_options
from modelyard_runtime.backends.plan import (
    Binding,
    IOTensor,
    PlanError,
    buffer_capacity,
    plan_bindings,
    resolve_input_shapes,
    trt_datatype,
)
from modelyard_runtime.backends.tensorrt import import_tensorrt_runtime
from modelyard_runtime.errors import BadRequestError

IMAGES = IOTensor("images", True, "FP16", (-1, 3, 224, 224), (1, 3, 224, 224), (32, 3, 224, 224))
MASK = IOTensor("mask", True, "BOOL", (-1, -1), (1, 1), (32, 512))
SCORES = IOTensor("scores", False, "FP32", (-1, 1000))
TENSORS = [IMAGES, MASK, SCORES]


@pytest.mark.parametrize(
    ("trt_name", "datatype"),
    [
        ("FLOAT", "FP32"),
        ("DataType.FLOAT", "FP32"),
        ("HALF", "FP16"),
        ("INT8", "INT8"),
        ("INT32", "INT32"),
        ("INT64", "INT64"),
        ("BOOL", "BOOL"),
        ("UINT8", "UINT8"),
    ],
)
def test_tensorrt_datatypes(trt_name: str, datatype: str) -> None:
    assert trt_datatype(trt_name) == datatype


@pytest.mark.parametrize("trt_name", ["BF16", "DataType.FP8", "INT4", "FP4"])
def test_types_without_a_protocol_datatype_are_refused_naming_the_tensor(trt_name: str) -> None:
    with pytest.raises(PlanError, match=r"tensor 'logits' has TensorRT type \w+, which no protocol datatype matches"):
        trt_datatype(trt_name, "logits")


def test_unknown_type_is_refused() -> None:
    with pytest.raises(PlanError, match="unknown TensorRT type 'COMPLEX'; supported: FLOAT, HALF"):
        trt_datatype("COMPLEX")


def test_input_shapes_resolve_within_the_profile() -> None:
    shapes = resolve_input_shapes([IMAGES, MASK], {"images": (8, 3, 224, 224), "mask": (8, 77)})
    assert shapes == {"images": (8, 3, 224, 224), "mask": (8, 77)}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"images": (8, 3, 224, 224)}, r"missing input\(s\) mask"),
        ({"images": (1, 3, 224, 224), "mask": (1, 1), "extra": (1,)}, r"unknown input\(s\) extra; the engine has"),
        ({"images": (8, 3, 224), "mask": (8, 7)}, r"input 'images': shape \[8, 3, 224\] has rank 3, the engine wants"),
        ({"images": (8, 1, 224, 224), "mask": (8, 7)}, "input 'images': dimension 1 is 1, the engine fixes it at 3"),
        (
            {"images": (64, 3, 224, 224), "mask": (8, 7)},
            r"dimension 0 is 64, outside the engine's optimization",
        ),
        ({"images": (8, 3, 224, 224), "mask": (8, 0)}, r"input 'mask': dimension 1 is 0, outside .* \[1, 512\]"),
    ],
)
def test_bad_request_shapes_are_client_errors(given: dict[str, tuple[int, ...]], message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        resolve_input_shapes([IMAGES, MASK], given)


def test_binding_plan_sizes_every_tensor_in_engine_order() -> None:
    bindings = plan_bindings(TENSORS, {"images": (2, 3, 224, 224), "mask": (2, 5)}, {"scores": (2, 1000)})
    assert bindings == [
        Binding("images", True, (2, 3, 224, 224), np.dtype(np.float16), 2 * 3 * 224 * 224 * 2),
        Binding("mask", True, (2, 5), np.dtype(np.bool_), 10),
        Binding("scores", False, (2, 1000), np.dtype(np.float32), 8000),
    ]


def test_scalar_and_empty_tensors() -> None:
    scalar = IOTensor("t", True, "INT64", ())
    empty = IOTensor("e", False, "FP32", (-1, 4))
    bindings = plan_bindings([scalar, empty], {"t": ()}, {"e": (0, 4)})
    assert [(b.shape, b.nbytes) for b in bindings] == [((), 8), ((0, 4), 0)]


def test_data_dependent_output_shapes_are_refused() -> None:
    with pytest.raises(PlanError, match=r"output 'scores' has shape \[-1, 1000\] .* data-dependent output shapes"):
        plan_bindings(TENSORS, {"images": (2, 3, 224, 224), "mask": (2, 5)}, {"scores": (-1, 1000)})


@pytest.mark.parametrize(
    ("current", "needed", "capacity"),
    [(0, 0, 256), (0, 1, 256), (0, 256, 256), (0, 257, 512), (512, 100, 512), (512, 0, 512), (512, 600, 768)],
)
def test_device_buffers_grow_aligned_and_are_reused(current: int, needed: int, capacity: int) -> None:
    assert buffer_capacity(current, needed) == capacity


def _block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import`` of these modules fail as it does where the packages are not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_missing_tensorrt_and_cuda_python_are_both_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _block(monkeypatch, "tensorrt", "cuda.bindings.runtime", "cuda.cudart")
    with pytest.raises(BackendUnavailableError) as info:
        import_tensorrt_runtime()
    message = str(info.value)
    assert "tensorrt (the TensorRT 10 or newer Python runtime)" in message
    assert "cuda-python (module cuda.bindings.runtime, or cuda.cudart" in message
    assert "allow_fallback" not in message


def test_load_backend_for_a_plan_without_tensorrt_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _block(monkeypatch, "tensorrt")
    plan = tmp_path / "fraud" / "1" / "model.plan"
    plan.parent.mkdir(parents=True)
    plan.write_bytes(b"not really an engine")
    options = parse_backend_options({"allow_fallback": True}, model_file=plan, cache_root=tmp_path)
    assert options.kind == "tensorrt"
    with pytest.raises(BackendUnavailableError) as info:
        load_backend(plan, options)
    assert "the tensorrt backend needs the Python package(s) tensorrt" in str(info.value)
    assert "allow_fallback does not apply: nothing else can run a TensorRT plan" in str(info.value)
