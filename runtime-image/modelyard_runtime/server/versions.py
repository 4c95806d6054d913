"""A loaded model version: opening and warming up its backend, what it tells clients about itself, and the check
of a request's inputs against its signature."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.backends import Backend, load_backend
from modelyard_runtime.backends.options import parse_backend_options
from modelyard_runtime.metrics import VersionMetrics
from modelyard_runtime.modelconfig import ModelConfig
from modelyard_runtime.protocol.checks import check_inputs
from modelyard_runtime.protocol.datatypes import numpy_dtype
from modelyard_runtime.samples import read_samples
from modelyard_runtime.server.batcher import INLINE_BELOW_NS, Batcher, Outputs, Timing
from modelyard_runtime.server.stats import ModelStats

log = logging.getLogger("modelyard.server")


class LoadError(RuntimeError):
    """A version could not be loaded; the message says which and why."""


def _open_backend(path: Path, config: ModelConfig) -> Backend:
    return load_backend(path, parse_backend_options(config.backend, model_file=path))


def batchable(backend: Backend) -> bool:
    """Batching needs a variable leading dimension on every input and output."""
    tensors = [*backend.inputs, *backend.outputs]
    return bool(tensors) and all(t.shape and t.shape[0] == -1 for t in tensors)


def _warmup_inputs(backend: Backend) -> dict[str, npt.NDArray[Any]]:
    inputs: dict[str, npt.NDArray[Any]] = {}
    for t in backend.inputs:
        shape = [d if d >= 0 else 1 for d in t.shape]
        if t.datatype == "BYTES":
            inputs[t.name] = np.full(shape, b"", dtype=np.object_)
        else:
            inputs[t.name] = np.zeros(shape, dtype=numpy_dtype(t.datatype))
    return inputs


def load_samples(where: Path, backend: Backend) -> list[dict[str, npt.NDArray[Any]]]:
    """Warm-up inputs from a JSON file of request bodies (:mod:`modelyard_runtime.samples`); ValueError naming the
    sample at fault."""
    return read_samples(where, (t.name for t in backend.inputs))


def _warm_up_with_samples(name: str, version: str, backend: Backend, config: ModelConfig) -> None:
    """Real inputs: a sample the model rejects fails the load (it would fail the same request from a client)."""
    assert config.warmup_samples is not None
    samples = load_samples(Path(config.warmup_samples), backend)
    names = [o.name for o in backend.outputs]
    runs = config.warmup_runs or len(samples)
    for i in range(runs):
        try:
            backend.run(samples[i % len(samples)], names)
        except Exception as exc:
            raise ValueError(f"warm-up sample {i % len(samples)} failed: {exc}") from exc
    log.info("warmed up %s version %s with %d inference(s) on %d sample(s)", name, version, runs, len(samples))


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


def resident_bytes() -> int | None:
    """The process's resident set size now (Linux's /proc/self/statm); None where there is no such file."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def reported_memory(platform: str, grown: int | None, backend_bytes: int) -> int:
    """``modelyard_model_memory_bytes`` of a version: the RSS growth while it opened (:func:`open_version`), except
    for a TensorRT engine, whose memory is on the GPU, where the engine's own figure (plan plus the context's device
    memory) is reported; the backend's figure (the file's size for ONNX) where RSS cannot be read."""
    if platform == "tensorrt_plan" or grown is None:
        return backend_bytes
    return grown


def open_version(name: str, version: str, path: Path, config: ModelConfig) -> tuple[Backend, float, int | None]:
    """Open a version's backend and warm it up (blocking: run it off the event loop); returns it, the seconds, and
    the bytes the process's resident set grew by meanwhile (the version's memory as measured; None where RSS cannot
    be read). Loads that overlap (a preload beside the web stack's imports, parallel loads) each count the growth
    of the overlap: an upper bound then."""
    started = time.perf_counter()
    before = resident_bytes()
    backend = _open_backend(path, config)
    if config.warmup_samples:
        try:
            _warm_up_with_samples(name, version, backend, config)
        except Exception:
            backend.close()
            raise
    elif config.warmup_runs:
        inputs = _warmup_inputs(backend)
        names = [o.name for o in backend.outputs]
        try:
            for _ in range(config.warmup_runs):
                backend.run(inputs, names)
        except Exception as exc:  # a model may reject zero-filled inputs; serving can still work
            log.warning("warm-up of %s version %s failed (set warmup: false to skip it): %s", name, version, exc)
        else:
            log.info("warmed up %s version %s with %d inference(s)", name, version, config.warmup_runs)
    after = resident_bytes()
    grown = max(after - before, 0) if after is not None and before is not None else None
    return backend, time.perf_counter() - started, grown


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
