"""Native TensorRT backend for serialized engines (``model.plan``), written against the TensorRT 10 runtime API.

EXPERIMENTAL: written from the documented TensorRT 10 and cuda-python APIs (the names it uses are also in the
TensorRT 11 bindings and cuda-bindings 13) and unit-tested in its pure parts (``backends/plan.py``), but it has not
run on a GPU yet (see docs/backends.md).

The engine is deserialized with ``tensorrt.Runtime``; its I/O tensors are read with the name-based API; device
buffers come from cuda-python's runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` in cuda-python
before 12.6) and grow as larger batches arrive; each request sets the input shapes on one execution context, copies
inputs to the GPU, runs ``execute_async_v3`` on the backend's stream and copies the outputs back. One execution
context per model: runs are serialized by a lock (the server's batcher is what gives throughput). Engines whose I/O
uses shape tensors, data-dependent output shapes or types without a protocol datatype (BF16, FP8, INT4) are refused
at load with a message naming the tensor. Optimization profile 0 is used.
"""

from __future__ import annotations

import importlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.backends import BackendUnavailableError, TensorMeta
from modelyard_runtime.backends.options import BackendOptions
from modelyard_runtime.backends.plan import (
    IOTensor,
    PlanError,
    buffer_capacity,
    plan_bindings,
    resolve_input_shapes,
    trt_datatype,
)
from modelyard_runtime.errors import BadRequestError, UnavailableError

log = logging.getLogger(__name__)

TENSORRT_PACKAGE = "tensorrt (the TensorRT 10 or newer Python runtime)"
CUDA_PACKAGE = "cuda-python (module cuda.bindings.runtime, or cuda.cudart before 12.6)"
_CUDART_MODULES = ("cuda.bindings.runtime", "cuda.cudart")


def import_tensorrt_runtime(*, allow_fallback: bool = False) -> tuple[Any, Any]:
    """``(tensorrt, cudart)``, or a :class:`BackendUnavailableError` naming every missing package at once."""
    missing: list[str] = []
    trt: Any = None
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        missing.append(TENSORRT_PACKAGE)
    cudart: Any = None
    for module in _CUDART_MODULES:
        try:
            cudart = importlib.import_module(module)
            break
        except ImportError:
            continue
    if cudart is None:
        missing.append(CUDA_PACKAGE)
    if missing:
        note = " (allow_fallback does not apply: nothing else can run a TensorRT plan)" if allow_fallback else ""
        raise BackendUnavailableError(
            f"the tensorrt backend needs the Python package(s) {'; '.join(missing)}, not installed here; "
            f"use the GPU image, or serve the ONNX model with kind: onnxruntime{note}"
        )
    return trt, cudart


class _Cuda:
    """The few CUDA runtime calls the backend makes, with errors turned into exceptions."""

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart

    def check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            _, text = self.rt.cudaGetErrorString(err)
            name = getattr(err, "name", err)
            raise RuntimeError(f"CUDA error {name}: {text.decode() if isinstance(text, bytes) else text}")
        return rest[0] if len(rest) == 1 else None

    def malloc(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMalloc(nbytes)))

    def free(self, pointer: int) -> None:
        self.check(self.rt.cudaFree(pointer))

    def to_device(self, pointer: int, array: npt.NDArray[Any], stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check(self.rt.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, stream))

    def to_host(self, array: npt.NDArray[Any], pointer: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpyAsync(array.ctypes.data, pointer, array.nbytes, kind, stream))


def _shape(dims: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


def read_io_tensors(trt: Any, engine: Any) -> list[IOTensor]:
    """The engine's I/O tensors through the TensorRT 10 name-based API, with profile 0's bounds for inputs."""
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        if engine.get_tensor_location(name) != trt.TensorLocation.DEVICE:
            raise PlanError(f"tensor {name!r} is a host-memory shape tensor; the tensorrt backend cannot bind it")
        dtype = engine.get_tensor_dtype(name)
        datatype = trt_datatype(getattr(dtype, "name", str(dtype)), name)
        shape = _shape(engine.get_tensor_shape(name))
        low = high = None
        if is_input:
            low_dims, _, high_dims = engine.get_tensor_profile_shape(name, 0)
            low, high = _shape(low_dims), _shape(high_dims)
        tensors.append(IOTensor(name, is_input, datatype, shape, low, high))
    return tensors


class TensorRTBackend:
    platform = "tensorrt_plan"

    def __init__(self, path: Path, options: BackendOptions) -> None:
        if options.kind != "tensorrt":
            raise ValueError(f"TensorRTBackend got options for kind {options.kind!r}")
        trt, cudart = import_tensorrt_runtime(allow_fallback=options.allow_fallback)
        self._cuda = _Cuda(cudart)
        self._lock = threading.Lock()
        self._buffers: dict[str, tuple[int, int]] = {}  # name → (device pointer, capacity in bytes)
        try:
            self._cuda.check(cudart.cudaSetDevice(options.device_id))
        except RuntimeError as exc:
            raise BackendUnavailableError(
                f"the tensorrt backend cannot use GPU {options.device_id}: {exc} "
                "(no NVIDIA driver, no visible GPU, or a driver older than the CUDA runtime)"
            ) from None
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        plan = path.read_bytes()
        self._engine: Any = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise RuntimeError(
                f"TensorRT {trt.__version__} could not deserialize {path}: an engine only loads with the TensorRT "
                "version and GPU it was built for (the TensorRT log above says which)"
            )
        self._tensors = read_io_tensors(trt, self._engine)
        self._context: Any = self._engine.create_execution_context()
        if self._context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for {path} (out of GPU memory?)")
        self._stream: Any = self._cuda.check(cudart.cudaStreamCreate())
        self.inputs = [TensorMeta(t.name, t.datatype, list(t.shape)) for t in self._tensors if t.is_input]
        self.outputs = [TensorMeta(t.name, t.datatype, list(t.shape)) for t in self._tensors if not t.is_input]
        # activation memory the context needs (TensorRT 10.1+ names it device_memory_size_v2) plus the plan's weights
        device_memory: Any = getattr(self._engine, "device_memory_size_v2", None)
        if device_memory is None:
            device_memory = getattr(self._engine, "device_memory_size", 0)
        self.memory_bytes = len(plan) + int(device_memory)
        log.info("TensorRT %s engine %s on device %d", trt.__version__, path, options.device_id)

    def _buffer(self, name: str, nbytes: int) -> int:
        pointer, capacity = self._buffers.get(name, (0, 0))
        wanted = buffer_capacity(capacity, nbytes)
        if wanted != capacity:
            if pointer:
                self._cuda.free(pointer)
                del self._buffers[name]
            pointer = self._cuda.malloc(wanted)
            self._buffers[name] = (pointer, wanted)
        return pointer

    def run(self, inputs: dict[str, npt.NDArray[Any]], output_names: list[str]) -> dict[str, npt.NDArray[Any]]:
        with self._lock:
            if self._context is None:
                raise UnavailableError("the model was unloaded")
            known = [t.name for t in self._tensors if not t.is_input]
            unknown = [n for n in output_names if n not in known]
            if unknown:
                raise BadRequestError(f"unknown output(s) {', '.join(unknown)}; the engine has {', '.join(known)}")
            shapes = resolve_input_shapes(
                [t for t in self._tensors if t.is_input], {n: tuple(a.shape) for n, a in inputs.items()}
            )
            for name, shape in shapes.items():
                if not self._context.set_input_shape(name, shape):
                    raise BadRequestError(f"input {name!r}: TensorRT rejected shape {list(shape)}")
            output_shapes = {
                t.name: _shape(self._context.get_tensor_shape(t.name)) for t in self._tensors if not t.is_input
            }
            bindings = plan_bindings(self._tensors, shapes, output_shapes)
            staged: list[npt.NDArray[Any]] = []  # host arrays must live until the stream is synchronized
            results: dict[str, npt.NDArray[Any]] = {}
            pointers = {}
            for binding in bindings:
                pointer = self._buffer(binding.name, binding.nbytes)
                pointers[binding.name] = pointer
                if not self._context.set_tensor_address(binding.name, pointer):
                    raise RuntimeError(f"TensorRT refused the device address of tensor {binding.name!r}")
            for binding in bindings:
                if binding.is_input:
                    given = inputs[binding.name]
                    if given.dtype != binding.dtype:
                        raise BadRequestError(f"input {binding.name!r}: datatype {given.dtype} but the engine "
                                              f"wants {binding.dtype}")  # fmt: skip
                    host = np.ascontiguousarray(given)
                    staged.append(host)
                    if host.nbytes:
                        self._cuda.to_device(pointers[binding.name], host, self._stream)
            if not self._context.execute_async_v3(int(self._stream)):  # TensorRT takes the raw handle
                raise RuntimeError("TensorRT execute_async_v3 failed (the TensorRT log says why)")
            for binding in bindings:
                if not binding.is_input and binding.name in output_names:
                    out = np.empty(binding.shape, dtype=binding.dtype)
                    if out.nbytes:
                        self._cuda.to_host(out, pointers[binding.name], self._stream)
                    results[binding.name] = out
            self._cuda.check(self._cuda.rt.cudaStreamSynchronize(self._stream))
            del staged
            return {name: results[name] for name in output_names}

    def close(self) -> None:
        """Free device buffers and the stream, then drop the context and engine (in that order)."""
        with self._lock:
            for pointer, _ in self._buffers.values():
                self._cuda.free(pointer)
            self._buffers.clear()
            if self._stream is not None:
                self._cuda.check(self._cuda.rt.cudaStreamDestroy(self._stream))
                self._stream = None
            self._context = None
            self._engine = None
