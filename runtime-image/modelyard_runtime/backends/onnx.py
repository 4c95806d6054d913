"""ONNX Runtime backend: the CPU provider everywhere; CUDA and TensorRT providers with onnxruntime-gpu.

A requested provider that this onnxruntime build lacks, or that ONNX Runtime could not create on this machine (it
then quietly drops it and runs on what is left), is an error naming what is missing, unless the config sets
``allow_fallback``: then the session falls back provider by provider down to the CPU and a WARNING says so.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.backends import BackendUnavailableError, TensorMeta
from modelyard_runtime.backends.options import (
    CPU,
    CUDA,
    TENSORRT,
    BackendOptions,
    ort_fallback_chain,
    parse_backend_options,
    render_ort_providers,
    trt_cache_dirs,
)
from modelyard_runtime.errors import BadRequestError, UnavailableError
from modelyard_runtime.loader.onnxscan import ProtobufError, external_locations
from modelyard_runtime.protocol.datatypes import from_onnx_type

log = logging.getLogger(__name__)

_PROVIDER_PACKAGES = {
    CUDA: "onnxruntime-gpu (this onnxruntime is a build without CUDA)",
    TENSORRT: "onnxruntime-gpu plus the TensorRT libraries (Python package tensorrt)",
}
_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
_EXTERNAL_DATA_SCAN_LIMIT = 64 << 20  # a model with external data keeps only the graph in the .onnx file


def _dims(shape: list[Any]) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def _dim_names(shape: list[Any]) -> tuple[str | None, ...]:
    """The model's symbolic dimensions (``batch``): inputs that share one must agree on its size."""
    return tuple(d if isinstance(d, str) and d else None for d in shape)


def import_onnxruntime() -> Any:
    try:
        return importlib.import_module("onnxruntime")  # lazily: the import costs ~0.3 s and GPU builds are large
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the onnxruntime backend needs the Python package onnxruntime (or onnxruntime-gpu): {exc}"
        ) from None


def _names(providers: list[tuple[str, dict[str, str]]]) -> str:
    return ", ".join(name for name, _ in providers)


def _missing_message(missing: list[str], available: list[str]) -> str:
    hints = "; ".join(f"{p} (install {_PROVIDER_PACKAGES.get(p, 'a build of onnxruntime with it')})" for p in missing)
    return f"execution provider not available: {hints}; this onnxruntime has: {', '.join(available)}"


def session_options(ort: Any, options: BackendOptions) -> Any:
    """An ``onnxruntime.SessionOptions`` with threads, graph optimization and execution mode from the config."""
    so = ort.SessionOptions()
    if options.intra_op_threads:
        so.intra_op_num_threads = options.intra_op_threads
    if options.inter_op_threads:
        so.inter_op_num_threads = options.inter_op_threads
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[options.graph_optimization])
    so.execution_mode = getattr(ort.ExecutionMode, _MODES[options.execution_mode])
    if not options.thread_spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so


def create_session(ort: Any, path: Path, options: BackendOptions) -> Any:
    """An InferenceSession on exactly the providers asked for, or on a logged fallback when the config allows it."""
    available = list(ort.get_available_providers())
    wanted = render_ort_providers(options)
    missing = [name for name, _ in wanted if name not in available]
    if missing:
        message = _missing_message(missing, available)
        if not options.allow_fallback:
            raise BackendUnavailableError(f"{path}: {message}")
        wanted = [(name, opts) for name, opts in wanted if name in available] or [(CPU, {})]
        log.warning("%s: %s; allow_fallback is set, falling back to %s", path, message, _names(wanted))
    attempts = ort_fallback_chain(wanted) if options.allow_fallback else [wanted]
    for number, providers in enumerate(attempts, start=1):
        try:
            _make_cache_dirs(providers)
            # enable_fallback=0: ONNX Runtime's own fallback only prints to stdout; ours logs and obeys the config
            session = ort.InferenceSession(
                str(path), sess_options=session_options(ort, options), providers=providers, enable_fallback=0
            )
        except Exception as exc:
            if number == len(attempts):
                gpu = [name for name, _ in providers if name != CPU]
                if gpu and missing_library(str(exc)):
                    raise BackendUnavailableError(
                        f"{path}: ONNX Runtime could not load the libraries of {', '.join(gpu)}: {exc}"
                    ) from exc
                raise
            log.warning(
                "%s: ONNX Runtime could not create a session with %s (%s); allow_fallback is set, trying %s",
                path, _names(providers), exc, _names(attempts[number]),
            )  # fmt: skip
            continue
        actual = list(session.get_providers())
        dropped = [name for name, _ in providers if name not in actual]
        if dropped:
            message = (
                f"ONNX Runtime could not create {', '.join(dropped)} on this machine and would run on "
                f"{', '.join(actual)} (its log says why: usually CUDA 12 / cuDNN 9 or TensorRT libraries that "
                "cannot be loaded, or no visible GPU)"
            )
            if not options.allow_fallback:
                raise BackendUnavailableError(f"{path}: {message}")
            log.warning("%s: %s; allow_fallback is set, continuing on %s", path, message, ", ".join(actual))
        return session
    raise AssertionError("unreachable: the last attempt either returns or raises")


_LIBRARY_ERRORS = ("cannot open shared object file", "failed to load library", "loadlibrary failed")


def missing_library(message: str) -> bool:
    """Whether an ONNX Runtime error says a provider's shared library (CUDA, cuDNN, TensorRT) could not be loaded."""
    lowered = message.lower()
    return any(marker in lowered for marker in _LIBRARY_ERRORS)


def _make_cache_dirs(providers: list[tuple[str, dict[str, str]]]) -> None:
    for directory in trt_cache_dirs(providers):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeError(
                f"cannot create the TensorRT cache directory {directory}: {exc} "
                "(set backend.cache_dir or MODELYARD_CACHE_DIR to a writable path)"
            ) from None


def model_bytes(path: Path) -> int:
    """Bytes on disk of the model: the .onnx file plus the external data files it names (weights kept outside).

    External data files are found with the loader's scanner of ONNX ``external_data`` ``location`` entries
    (only in files up to 64 MiB: a graph with external weights is small); only existing files beside the model
    count. A file the scanner cannot parse counts alone (ONNX Runtime then says what is wrong with it).
    """
    size = path.stat().st_size
    if size == 0 or size > _EXTERNAL_DATA_SCAN_LIMIT:
        return size
    try:
        locations = {location for _, location in external_locations(path.read_bytes())}
    except ProtobufError:
        return size
    base = path.parent.resolve()
    for location in sorted(locations - {""}):
        if "\x00" in location:
            continue  # no file has that name; resolve() would raise
        candidate = (base / location).resolve()
        if candidate != path.resolve() and candidate.is_relative_to(base) and candidate.is_file():
            size += candidate.stat().st_size
    return size


class OnnxBackend:
    platform = "onnxruntime_onnx"

    def __init__(self, path: Path, options: BackendOptions | None = None) -> None:
        options = options or parse_backend_options(None, model_file=path)
        if options.kind != "onnxruntime":
            raise ValueError(f"OnnxBackend got options for kind {options.kind!r}")
        ort = import_onnxruntime()
        self.options = options
        self.session: Any = create_session(ort, path, options)
        self.providers: list[str] = list(self.session.get_providers())
        self.inputs = [
            TensorMeta(i.name, from_onnx_type(i.type), _dims(i.shape), _dim_names(i.shape))
            for i in self.session.get_inputs()
        ]
        self.outputs = [TensorMeta(o.name, from_onnx_type(o.type), _dims(o.shape)) for o in self.session.get_outputs()]
        self.memory_bytes = model_bytes(path)

    def run(self, inputs: dict[str, npt.NDArray[Any]], output_names: list[str]) -> dict[str, npt.NDArray[Any]]:
        session = self.session
        if session is None:
            raise UnavailableError("the model was unloaded")
        feed = {name: to_ort_strings(name, arr) if arr.dtype == np.object_ else arr for name, arr in inputs.items()}
        results = session.run(output_names, feed)
        return {
            name: from_ort_strings(out) if out.dtype == np.object_ else out
            for name, out in zip(output_names, results, strict=True)
        }

    def close(self) -> None:
        """Drop the session; ONNX Runtime frees its memory once no running request holds it."""
        self.session = None


def to_ort_strings(name: str, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """ONNX string tensors are UTF-8 text in ONNX Runtime (bytes would be stringified as "b'...'")."""
    out = np.empty(array.shape, dtype=np.object_)
    flat_in, flat_out = array.reshape(-1), out.reshape(-1)
    for i, item in enumerate(flat_in):
        try:
            flat_out[i] = item.decode("utf-8") if isinstance(item, bytes) else str(item)
        except UnicodeDecodeError:
            raise BadRequestError(f"input {name!r}: ONNX string tensors need UTF-8, element {i} is not") from None
    return out


def from_ort_strings(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    out = np.empty(array.shape, dtype=np.object_)
    out.reshape(-1)[:] = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in array.reshape(-1)]
    return out
