"""Opening a model version's backend and warming it up: what static mode's preload runs in a thread while the web
stack imports. It imports only what opening needs (ONNX Runtime comes with the backend), not the metrics, the
batcher or asyncio, so session creation starts as soon as the interpreter can."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.backends import Backend, load_backend
from modelyard_runtime.backends.options import parse_backend_options
from modelyard_runtime.modelconfig import ModelConfig
from modelyard_runtime.protocol.datatypes import numpy_dtype
from modelyard_runtime.samples import read_samples

log = logging.getLogger("modelyard.server")


def import_engine(path: Path, config: ModelConfig) -> None:
    """Import ONNX Runtime when the version will open with it (~50-100 ms), so the main thread can wait for the
    session's start without much delay; other engines (TensorFlow, TensorRT: seconds) are left to open_version, whose
    import the web stack's overlaps. Any failure is left for open_version to report."""
    with contextlib.suppress(Exception):
        if parse_backend_options(config.backend, model_file=path).kind == "onnxruntime":
            from modelyard_runtime.backends.onnx import import_onnxruntime

            import_onnxruntime()


def _open_backend(path: Path, config: ModelConfig) -> Backend:
    return load_backend(path, parse_backend_options(config.backend, model_file=path))


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


def resident_bytes() -> int | None:
    """The process's resident set size now (Linux's /proc/self/statm); None where there is no such file."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


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
