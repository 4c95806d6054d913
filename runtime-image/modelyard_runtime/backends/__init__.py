"""Inference backends behind one interface; heavy libraries are imported only when a backend loads.

:func:`load_backend` picks the backend from :class:`~modelyard_runtime.backends.options.BackendOptions`
(parsed from the ``backend:`` mapping of ``DIR/<model>/config.yaml`` by
:func:`~modelyard_runtime.backends.options.parse_backend_options`). None of onnxruntime, tensorrt and
tensorflow is imported before a model of that kind loads, so the CPU image needs no GPU or TensorFlow packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy.typing as npt

from modelyard_runtime.backends.options import BackendOptions, parse_backend_options, render_ort_providers

__all__ = [
    "Backend",
    "BackendOptions",
    "BackendUnavailableError",
    "TensorMeta",
    "load_backend",
    "parse_backend_options",
    "render_ort_providers",
]


@dataclass(frozen=True)
class TensorMeta:
    name: str
    datatype: str
    shape: list[int]  # -1 marks a variable dimension
    dim_names: tuple[str | None, ...] = ()  # the model's names of its dimensions ("batch"), None where unnamed

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


class Backend(Protocol):
    platform: str
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    memory_bytes: int

    def run(self, inputs: dict[str, npt.NDArray[Any]], output_names: list[str]) -> dict[str, npt.NDArray[Any]]: ...

    def close(self) -> None:
        """Release the session or engine (called on unload; no run() is in flight by then)."""


class BackendUnavailableError(RuntimeError):
    """The backend or execution provider asked for is not installed; the message names the package."""


def load_backend(path: Path, options: BackendOptions) -> Backend:
    """Load ``path`` with the backend ``options.kind`` names (blocking: run it off the event loop).

    Raises :class:`BackendUnavailableError` naming the missing package (onnxruntime-gpu, tensorrt, cuda-python) unless
    ``options.allow_fallback`` lets an ONNX model fall back to the providers that are there (logged as a WARNING).
    """
    if options.kind == "onnxruntime":
        from modelyard_runtime.backends.onnx import OnnxBackend  # lazy: imports onnxruntime

        return OnnxBackend(path, options)
    if options.kind == "tensorrt":
        from modelyard_runtime.backends.tensorrt import TensorRTBackend  # lazy: imports tensorrt

        return TensorRTBackend(path, options)
    if options.kind == "tensorflow":
        from modelyard_runtime.backends.tensorflow import TensorFlowBackend  # lazy: imports tensorflow

        return TensorFlowBackend(path, options)
    raise ValueError(f"unknown backend kind {options.kind!r}")
