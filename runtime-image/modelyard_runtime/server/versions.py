"""A loaded model version: what it tells clients about itself and the check of a request's inputs against its
signature (opening and warming up its backend: server/opening.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt

from modelyard_runtime.backends import Backend
from modelyard_runtime.metrics import VersionMetrics
from modelyard_runtime.modelconfig import ModelConfig
from modelyard_runtime.protocol.checks import check_inputs
from modelyard_runtime.server.batcher import INLINE_BELOW_NS, Batcher, Outputs, Timing
from modelyard_runtime.server.stats import ModelStats

log = logging.getLogger("modelyard.server")


class LoadError(RuntimeError):
    """A version could not be loaded; the message says which and why."""


def batchable(backend: Backend) -> bool:
    """Batching needs a variable leading dimension on every input and output."""
    tensors = [*backend.inputs, *backend.outputs]
    return bool(tensors) and all(t.shape and t.shape[0] == -1 for t in tensors)


MAX_LABELS_BYTES = 16 * 2**20


def tensor_settings(backend: Backend, config: ModelConfig, folders: Sequence[Path]) -> dict[str, list[str]]:
    """config.yaml's ``inputs`` and ``outputs`` checked against the model, and each output's labels read from the
    first of ``folders`` that has its label file (one label per line). LoadError names what does not fit."""
    inputs = {t.name: t for t in backend.inputs}
    outputs = {t.name for t in backend.outputs}
    for name, fmt in config.input_formats.items():
        tensor = inputs.get(name)
        if tensor is None:
            raise LoadError(f"config.yaml names input {name!r}, which the model does not have: {', '.join(inputs)}")
        if fmt != "FORMAT_NONE" and len(tensor.shape) not in (3, 4):
            raise LoadError(f"input {name!r} has {len(tensor.shape)} dimensions; {fmt} needs 3 (4 with the batch)")
    labels: dict[str, list[str]] = {}
    for name, file_name in config.label_files.items():
        if name not in outputs:
            raise LoadError(f"config.yaml names output {name!r}, which the model does not have: {', '.join(outputs)}")
        found = next((folder / file_name for folder in folders if (folder / file_name).is_file()), None)
        if found is None:
            raise LoadError(
                f"label file {file_name!r} of output {name!r} is in neither the version's nor the model's folder"
            )
        if found.stat().st_size > MAX_LABELS_BYTES:
            raise LoadError(f"label file {file_name!r} is larger than {MAX_LABELS_BYTES} bytes")
        labels[name] = found.read_text(encoding="utf-8", errors="replace").splitlines()
    return labels


def reported_memory(platform: str, grown: int | None, backend_bytes: int) -> int:
    """``modelyard_model_memory_bytes`` of a version: the RSS growth while it opened (:func:`open_version`), except
    for a TensorRT engine, whose memory is on the GPU, where the engine's own figure (plan plus the context's device
    memory) is reported; the backend's figure (the file's size for ONNX) where RSS cannot be read."""
    if platform == "tensorrt_plan" or grown is None:
        return backend_bytes
    return grown


@dataclass(eq=False)
class LoadedModel:
    name: str
    version: str
    path: Path
    backend: Backend
    config: ModelConfig
    load_seconds: float
    max_batch_size: int = 0  # > 0: the first dimension is the batch (as in Triton's model configuration)
    max_queue_delay_ms: float = 0.0
    batcher: Batcher | None = None
    refs: int = 0
    last_used: float = field(default_factory=time.monotonic)
    retired: bool = False  # unloaded or evicted: no new requests; closed when refs reach 0
    stats: ModelStats = field(default_factory=ModelStats)
    metrics: VersionMetrics | None = None  # bound when the data plane wraps the version
    compute_ewma_ns: int = INLINE_BELOW_NS  # starts in the pool until a few runs show the model is small
    labels: dict[str, list[str]] = field(default_factory=dict)  # output -> class labels (classification extension)
    measured_bytes: int | None = None  # RSS growth while it opened (open_version); None: not measurable here

    @property
    def memory_bytes(self) -> int:
        return int(self.backend.memory_bytes)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.backend.platform,
            "inputs": [t.to_json() for t in self.backend.inputs],
            "outputs": [t.to_json() for t in self.backend.outputs],
        }

    def model_config(self) -> dict[str, Any]:
        """Triton's model configuration (JSON form); with batching the batch dimension is implicit."""

        def tensor(t: Any) -> dict[str, Any]:
            dims = t.shape[1:] if self.max_batch_size > 0 else t.shape
            # Triton's DataType enum calls BYTES TYPE_STRING (perf_analyzer and tritonclient read it so)
            data_type = "TYPE_STRING" if t.datatype == "BYTES" else f"TYPE_{t.datatype}"
            return {"name": t.name, "data_type": data_type, "dims": dims}

        def input_tensor(t: Any) -> dict[str, Any]:
            entry = tensor(t)
            fmt = self.config.input_formats.get(t.name, "FORMAT_NONE")
            if fmt != "FORMAT_NONE":
                entry["format"] = fmt
            return entry

        def output_tensor(t: Any) -> dict[str, Any]:
            entry = tensor(t)
            if t.name in self.config.label_files:
                entry["label_filename"] = self.config.label_files[t.name]
            return entry

        config: dict[str, Any] = {
            "name": self.name,
            "platform": self.backend.platform,
            "backend": "tensorrt" if self.backend.platform.startswith("tensorrt") else "onnxruntime",
            "max_batch_size": self.max_batch_size,
            "input": [input_tensor(t) for t in self.backend.inputs],
            "output": [output_tensor(t) for t in self.backend.outputs],
        }
        if self.batcher is not None:
            config["dynamic_batching"] = {
                "max_queue_delay_microseconds": int(self.max_queue_delay_ms * 1000),
                "preferred_batch_size": list(self.config.preferred_batch_sizes),
            }
        return config

    def validate(self, inputs: dict[str, npt.NDArray[Any]], datatypes: dict[str, str]) -> None:
        """BadRequestError unless the inputs are exactly the model's, with its datatypes, shapes and batch size."""
        shapes = {name: array.shape for name, array in inputs.items()}
        check_inputs(self.name, self.backend.inputs, shapes, datatypes, self.max_batch_size)


def run_timed(backend: Backend, inputs: dict[str, npt.NDArray[Any]], names: list[str]) -> tuple[Outputs, Timing]:
    t0 = time.perf_counter_ns()
    outputs = backend.run(inputs, names)
    return outputs, Timing(infer_ns=time.perf_counter_ns() - t0)
