"""The pure half of the TensorRT plan backend: datatypes, shape resolution and binding plans (no tensorrt, no CUDA).

``backends/tensorrt.py`` reads an engine's I/O tensors into :class:`IOTensor` records and asks this module what
shapes to set and how many bytes each device buffer needs; everything here is testable without a GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modelyard_runtime.errors import BadRequestError
from modelyard_runtime.protocol.datatypes import numpy_dtype

# tensorrt.DataType member names → Open Inference Protocol datatypes
_FROM_TRT = {
    "FLOAT": "FP32",
    "HALF": "FP16",
    "INT8": "INT8",
    "INT32": "INT32",
    "INT64": "INT64",
    "BOOL": "BOOL",
    "UINT8": "UINT8",
}
# TensorRT types with no numpy dtype and no protocol datatype: an engine using them at its I/O cannot be served here
_UNSUPPORTED_TRT = ("BF16", "FP8", "INT4", "FP4", "E8M0")
_ALIGNMENT = 256  # cudaMalloc returns 256-byte aligned memory; round capacities to it


class PlanError(ValueError):
    """The engine uses something this backend does not support (raised at load, names the tensor)."""


def trt_datatype(trt_name: str, tensor: str = "") -> str:
    """``"FLOAT"`` or ``"DataType.FLOAT"`` (``str(trt.DataType.FLOAT)``) → ``"FP32"``."""
    name = trt_name.rsplit(".", 1)[-1].upper()
    if name in _FROM_TRT:
        return _FROM_TRT[name]
    what = f"tensor {tensor!r} has " if tensor else ""
    supported = ", ".join(_FROM_TRT)
    if name in _UNSUPPORTED_TRT:
        raise PlanError(f"{what}TensorRT type {name}, which no protocol datatype matches; supported: {supported}")
    raise PlanError(f"{what}unknown TensorRT type {trt_name!r}; supported: {supported}")


@dataclass(frozen=True)
class IOTensor:
    """One engine I/O tensor. ``shape`` has -1 for dynamic dims; inputs carry optimization profile 0's bounds."""

    name: str
    is_input: bool
    datatype: str  # protocol datatype
    shape: tuple[int, ...]
    min_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None

    @property
    def itemsize(self) -> int:
        return numpy_dtype(self.datatype).itemsize


def resolve_input_shapes(
    inputs: Sequence[IOTensor], given: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """Check request shapes against the engine and its profile; the shapes to pass to ``context.set_input_shape``."""
    expected = {t.name: t for t in inputs}
    unknown = sorted(set(given) - set(expected))
    if unknown:
        raise BadRequestError(f"unknown input(s) {', '.join(unknown)}; the engine has {', '.join(expected)}")
    missing = [name for name in expected if name not in given]
    if missing:
        raise BadRequestError(f"missing input(s) {', '.join(missing)}")
    resolved: dict[str, tuple[int, ...]] = {}
    for name, tensor in expected.items():
        shape = tuple(int(d) for d in given[name])
        if len(shape) != len(tensor.shape):
            raise BadRequestError(f"input {name!r}: shape {list(shape)} has rank {len(shape)}, the engine wants "
                                  f"rank {len(tensor.shape)} ({list(tensor.shape)})")  # fmt: skip
        for axis, (got, want) in enumerate(zip(shape, tensor.shape, strict=True)):
            if want >= 0 and got != want:
                raise BadRequestError(f"input {name!r}: dimension {axis} is {got}, the engine fixes it at {want}")
            low = tensor.min_shape[axis] if tensor.min_shape else 0
            high = tensor.max_shape[axis] if tensor.max_shape else None
            if got < low or (high is not None and got > high):
                raise BadRequestError(
                    f"input {name!r}: dimension {axis} is {got}, outside the engine's optimization profile "
                    f"[{low}, {high}] (min {list(tensor.min_shape or ())}, max {list(tensor.max_shape or ())})"
                )
        resolved[name] = shape
    return resolved


@dataclass(frozen=True)
class Binding:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]
    nbytes: int


def plan_bindings(
    tensors: Sequence[IOTensor],
    input_shapes: Mapping[str, tuple[int, ...]],
    output_shapes: Mapping[str, tuple[int, ...]],
) -> list[Binding]:
    """Shapes and byte sizes of every I/O tensor for one execution, in engine order.

    ``output_shapes`` are what TensorRT reports once the input shapes are set; a -1 left there means the output's
    shape depends on the data (needs an output allocator), which this backend does not support.
    """
    bindings = []
    for tensor in tensors:
        shape = input_shapes[tensor.name] if tensor.is_input else tuple(output_shapes[tensor.name])
        if any(d < 0 for d in shape):
            raise PlanError(
                f"output {tensor.name!r} has shape {list(shape)} after setting the input shapes: data-dependent "
                "output shapes are not supported by the tensorrt backend"
            )
        dtype = numpy_dtype(tensor.datatype)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        bindings.append(Binding(tensor.name, tensor.is_input, shape, dtype, count * dtype.itemsize))
    return bindings


def buffer_capacity(current: int, needed: int) -> int:
    """Bytes to allocate for a device buffer: keep the current one when it fits, else grow to an aligned size.

    Never 0: TensorRT wants a valid address even for an empty tensor.
    """
    needed = max(needed, 1)
    if needed <= current:
        return current
    return -(-needed // _ALIGNMENT) * _ALIGNMENT
