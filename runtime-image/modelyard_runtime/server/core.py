"""The transport-neutral data plane: repository scan, loading, request validation, inference.

HTTP (and later gRPC) are thin adapters over :class:`DataPlane`; errors are :mod:`modelyard_runtime.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt

from modelyard_runtime.backends import Backend, BackendUnavailableError
from modelyard_runtime.errors import BadRequestError, NotFoundError, UnavailableError
from modelyard_runtime.metrics import ServerMetrics

log = logging.getLogger("modelyard.server")
MODEL_FILES = ("model.onnx",)


def version_key(version: str) -> tuple[int, int | str]:
    """Numeric versions sort numerically and above names: "10" > "9" > "beta"."""
    return (1, int(version)) if version.isdigit() else (0, version)


def scan_repository(root: Path) -> dict[str, dict[str, Path]]:
    """``root/<model>/<version>/model.onnx`` → {model: {version: path}}."""
    found: dict[str, dict[str, Path]] = {}
    if not root.is_dir():
        return found
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for name in MODEL_FILES:
                if (version_dir / name).is_file():
                    found.setdefault(model_dir.name, {})[version_dir.name] = version_dir / name
    return found


@dataclass
class LoadedModel:
    name: str
    version: str
    backend: Backend
    load_seconds: float
    inference_count: int = 0
    last_inference_ms: int = 0
    stats: dict[str, list[int]] = field(default_factory=lambda: {"success": [0, 0], "fail": [0, 0]})

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.backend.platform,
            "inputs": [t.to_json() for t in self.backend.inputs],
            "outputs": [t.to_json() for t in self.backend.outputs],
        }

    def validate(self, inputs: dict[str, npt.NDArray[Any]], datatypes: dict[str, str]) -> None:
        expected = {t.name: t for t in self.backend.inputs}
        for name in inputs:
            if name not in expected:
                raise BadRequestError(f"model {self.name} has no input {name!r}; inputs: {', '.join(expected)}")
        for name, meta in expected.items():
            if name not in inputs:
                raise BadRequestError(f"missing input {name!r} for model {self.name}")
            if datatypes[name] != meta.datatype:
                raise BadRequestError(f"input {name!r} must be {meta.datatype}, got {datatypes[name]}")
            shape = list(inputs[name].shape)
            if len(shape) != len(meta.shape) or any(e not in (-1, s) for e, s in zip(meta.shape, shape, strict=True)):
                raise BadRequestError(f"input {name!r} must have shape {meta.shape}, got {shape}")


class DataPlane:
    def __init__(self, repository: Path, metrics: ServerMetrics, *, threads: int = 4) -> None:
        self.repository = repository
        self.metrics = metrics
        self.models: dict[str, dict[str, LoadedModel]] = {}
        self.ready = False
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="infer")

    async def load_all(self) -> None:
        """Static mode: load every model version found, off the event loop; ready when all loaded."""
        found = scan_repository(self.repository)
        if not found:
            log.warning("no models found under %s (expected <model>/<version>/model.onnx)", self.repository)
        loop = asyncio.get_running_loop()
        for model, versions in found.items():
            for version, path in versions.items():
                self.models.setdefault(model, {})[version] = await loop.run_in_executor(
                    self._pool, self._load, model, version, path
                )
        self.ready = True

    def _load(self, model: str, version: str, path: Path) -> LoadedModel:
        from modelyard_runtime.backends.onnx import OnnxBackend

        started = time.perf_counter()
        try:
            backend = OnnxBackend(path)
        except BackendUnavailableError:
            self.metrics.load_failures.labels(model=model, version=version).inc()
            raise
        except Exception as exc:
            self.metrics.load_failures.labels(model=model, version=version).inc()
            raise RuntimeError(f"cannot load {path}: {exc}") from exc
        seconds = time.perf_counter() - started
        self.metrics.load_duration.labels(model=model, version=version).observe(seconds)
        self.metrics.loaded.labels(model=model, version=version).set(1)
        self.metrics.memory.labels(model=model, version=version).set(backend.memory_bytes)
        log.info("loaded %s version %s from %s in %.3fs", model, version, path, seconds)
        return LoadedModel(model, version, backend, seconds)

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        versions = self.models.get(name)
        if not versions:
            raise NotFoundError(f"unknown model {name!r}")
        if version is None or version == "":
            return versions[max(versions, key=version_key)]
        if version not in versions:
            raise NotFoundError(f"unknown version {version!r} of model {name!r}; loaded: {', '.join(sorted(versions))}")
        return versions[version]

    async def infer(
        self,
        model: LoadedModel,
        inputs: dict[str, npt.NDArray[Any]],
        datatypes: dict[str, str],
        output_names: list[str] | None,
    ) -> dict[str, npt.NDArray[Any]]:
        if not self.ready:
            raise UnavailableError("server is not ready")
        model.validate(inputs, datatypes)
        known = [o.name for o in model.backend.outputs]
        names = output_names or known
        for name in names:
            if name not in known:
                raise BadRequestError(f"model {model.name} has no output {name!r}; outputs: {', '.join(known)}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, model.backend.run, inputs, names)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
