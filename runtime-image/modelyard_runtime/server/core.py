"""The transport-neutral data plane: repository, loading (static or dynamic), version routing, inference.

HTTP and gRPC are thin adapters over :class:`DataPlane`; errors are :mod:`modelyard_runtime.errors`.

Everything here runs on the event loop except session creation, warm-up and inference, which run in
thread pools (ONNX Runtime holds the GIL while it creates a session, so that never blocks requests).
Because the bookkeeping is single-threaded, no locks are needed: concurrent loads of one version share
one task, reference counts keep a version alive while a request uses it, and eviction only considers
versions nobody holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.backends import Backend, BackendUnavailableError, load_backend
from modelyard_runtime.backends.options import parse_backend_options
from modelyard_runtime.errors import (
    BadRequestError,
    Code,
    InferenceFailedError,
    NotFoundError,
    ServingError,
    UnavailableError,
)
from modelyard_runtime.metrics import ServerMetrics, VersionMetrics
from modelyard_runtime.modelconfig import (
    CONFIG_FILE,
    ModelConfig,
    ModelConfigError,
    WeightedPicker,
    read_model_config,
)
from modelyard_runtime.modelfile import ModelFileError, choose_onnx
from modelyard_runtime.protocol.datatypes import numpy_dtype
from modelyard_runtime.server.batcher import Batcher, Outputs, Timing
from modelyard_runtime.server.preload import Preload
from modelyard_runtime.server.stats import ModelStats

log = logging.getLogger("modelyard.server")
MODEL_FILES = ("model.onnx", "model.plan")
RESCAN_SECONDS = 1.0  # how stale the view of the repository and of config.yaml may be
UNKNOWN_MODEL = "(unknown)"  # the model label of requests for models that do not exist
INLINE_BELOW_NS = 100_000  # runs averaging less than a thread hop costs (~0.1 ms) stay on the loop thread
INFER_THREADS = 4  # inference runs off the loop thread (ONNX Runtime releases the GIL while it runs)
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]
CONFIG_OVERRIDE_UNSUPPORTED = "a load with parameters.config is not supported; edit the model's config.yaml instead"


class LoadError(RuntimeError):
    """A version could not be loaded; the message says which and why."""


def version_key(version: str) -> tuple[int, int | str]:
    """Numeric versions sort numerically and above names: "10" > "9" > "beta"."""
    return (1, int(version)) if version.isdigit() else (0, version)


def _onnx_files(version_dir: Path) -> list[str]:
    """Relative paths of the ``.onnx`` files (any case) below ``version_dir``; hidden folders are not entered."""
    found: list[str] = []
    for folder, dirs, files in os.walk(version_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        here = Path(folder)
        rel = here.relative_to(version_dir)
        found.extend((rel / f).as_posix() for f in files if f.lower().endswith(".onnx") and (here / f).is_file())
    return found


def model_file(version_dir: Path) -> Path | None:
    """``model.onnx`` or ``model.plan``, else what the validator (``modelyard-loader validate``) loads, by the
    same function (:func:`modelyard_runtime.modelfile.choose_onnx`). The loader publishes a single-file artifact
    under its URI's file name (``.../adder-v1.onnx``) and extracts archives as they are laid out, so the server
    must find exactly the file that passed validation."""
    for name in MODEL_FILES:
        if (version_dir / name).is_file():
            return version_dir / name
    try:
        return version_dir / choose_onnx(_onnx_files(version_dir))
    except ModelFileError:
        return None


def scan_repository(root: Path) -> dict[str, dict[str, Path]]:
    """``root/<model>/<version>/model.onnx`` (or ``model.plan``, or one other ``.onnx``) → {model: {version: path}}."""
    found: dict[str, dict[str, Path]] = {}
    if not root.is_dir():
        return found
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (path := model_file(version_dir)) is not None:
                found.setdefault(model_dir.name, {})[version_dir.name] = path
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime  # follows the symlinks a ConfigMap volume swaps on update
    except OSError:
        return 0.0


def _size_on_disk(model_file: Path) -> int:
    """The model file and anything beside it (external data), as the estimate before loading."""
    return sum(p.stat().st_size for p in model_file.parent.rglob("*") if p.is_file())


def _open_backend(path: Path, config: ModelConfig) -> Backend:
    return load_backend(path, parse_backend_options(config.backend, model_file=path))


def _batchable(backend: Backend) -> bool:
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


def open_version(name: str, version: str, path: Path, config: ModelConfig) -> tuple[Backend, float]:
    """Open a version's backend and warm it up (blocking: run it off the event loop); returns it and the seconds."""
    started = time.perf_counter()
    backend = _open_backend(path, config)
    if config.warmup_runs:
        inputs = _warmup_inputs(backend)
        names = [o.name for o in backend.outputs]
        try:
            for _ in range(config.warmup_runs):
                backend.run(inputs, names)
        except Exception as exc:  # a model may reject zero-filled inputs; serving can still work
            log.warning("warm-up of %s version %s failed (set warmup: false to skip it): %s", name, version, exc)
    return backend, time.perf_counter() - started


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
            return {"name": t.name, "data_type": f"TYPE_{t.datatype}", "dims": dims}

        config: dict[str, Any] = {
            "name": self.name,
            "platform": self.backend.platform,
            "backend": "tensorrt" if self.backend.platform.startswith("tensorrt") else "onnxruntime",
            "max_batch_size": self.max_batch_size,
            "input": [tensor(t) for t in self.backend.inputs],
            "output": [tensor(t) for t in self.backend.outputs],
        }
        if self.batcher is not None:
            config["dynamic_batching"] = {"max_queue_delay_microseconds": int(self.max_queue_delay_ms * 1000)}
        return config

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
        if self.max_batch_size > 0:
            rows = {arr.shape[0] for arr in inputs.values()}
            if len(rows) > 1:
                raise BadRequestError(f"inputs of model {self.name} disagree on the batch size: {sorted(rows)}")
            if rows and (n := rows.pop()) > self.max_batch_size:
                raise BadRequestError(f"batch size {n} is above the model's max_batch_size {self.max_batch_size}")


class DataPlane:
    def __init__(
        self,
        repository: Path,
        metrics: ServerMetrics,
        *,
        mode: str = "static",
        memory_budget: int | None = None,
        max_batch_size: int = 0,
        max_queue_delay_ms: float = 0.0,
        config_dir: Path | None = None,
        preload: Preload | None = None,
    ) -> None:
        self.repository = repository
        self.config_dir = config_dir
        self._preload = preload
        self.metrics = metrics
        self.mode = mode
        self.memory_budget = memory_budget
        self.default_max_batch_size = max_batch_size
        self.default_max_queue_delay_ms = max_queue_delay_ms
        self.models: dict[str, dict[str, LoadedModel]] = {}
        self.ready = False  # loaded: requests are accepted
        self.draining = False  # shutting down: requests are still accepted, readiness checks fail
        self._pool = ThreadPoolExecutor(max_workers=INFER_THREADS, thread_name_prefix="infer")
        self._load_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="load")
        self._loading: dict[tuple[str, str], asyncio.Task[LoadedModel]] = {}
        self._failures: dict[tuple[str, str], str] = {}
        self._unloaded: set[str] = set()  # unloaded through the API: dynamic mode does not reload them on demand
        self._scan: tuple[float, dict[str, dict[str, Path]]] = (-1e9, {})
        self._configs: dict[str, tuple[float, tuple[float, ...], ModelConfig]] = {}  # model → (checked, mtimes, config)
        self._pickers: dict[str, WeightedPicker] = {}

    # --- repository view -------------------------------------------------------------------------

    def available(self, *, fresh: bool = False) -> dict[str, dict[str, Path]]:
        checked, found = self._scan
        if fresh or time.monotonic() - checked > RESCAN_SECONDS:
            found = scan_repository(self.repository)
            self._scan = (time.monotonic(), found)
        return found

    def model_config(self, name: str) -> ModelConfig:
        """config.yaml of a model, re-read when it changed (checked at most once per RESCAN_SECONDS)."""
        now = time.monotonic()
        cached = self._configs.get(name)
        if cached is not None and now - cached[0] <= RESCAN_SECONDS:
            return cached[2]
        dirs = [self.repository / name]
        if self.config_dir is not None:
            dirs.append(self.config_dir / name)
        mtimes = tuple(_mtime(d / CONFIG_FILE) for d in dirs)
        if cached is not None and cached[1] == mtimes:
            self._configs[name] = (now, mtimes, cached[2])
            return cached[2]
        try:
            config = read_model_config(*dirs)
        except ModelConfigError as exc:
            if cached is None:
                raise
            log.error("keeping the previous settings of %s: %s", name, exc)  # a bad edit must not stop serving
            config = cached[2]
        if cached is not None and cached[2].version_weights != config.version_weights:
            log.info("version weights of %s are now %s", name, config.version_weights or "highest version")
        self._configs[name] = (now, mtimes, config)
        return config

    def index(self, *, ready_only: bool = False) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        on_disk = self.available(fresh=True)
        names = sorted(set(on_disk) | set(self.models))
        for name in names:
            versions = set(on_disk.get(name, {})) | set(self.models.get(name, {}))
            for version in sorted(versions, key=version_key):
                if version in self.models.get(name, {}):
                    state, reason = "READY", ""
                elif (name, version) in self._loading:
                    state, reason = "LOADING", ""
                else:
                    state = "UNAVAILABLE"
                    reason = self._failures.get((name, version), "unloaded" if name in self._unloaded else "")
                if ready_only and state != "READY":
                    continue
                rows.append({"name": name, "version": version, "state": state, "reason": reason})
        return rows

    # --- loading ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Static mode loads everything and then becomes ready; dynamic mode is ready at once.

        A static server with nothing to serve stays unready (a pod that answers 404 to everything must not
        take traffic) and looks again every RESCAN_SECONDS, so models published later still bring it up.
        """
        if self.mode == "static":
            await self.load_all()
            while not self.models:
                await asyncio.sleep(RESCAN_SECONDS)
                await self.load_all(quiet=True)
        self.ready = True

    async def load_all(self, *, quiet: bool = False) -> None:
        found = self.available(fresh=True)
        if not found and not quiet:
            log.warning(
                "no models found under %s (expected <model>/<version>/model.onnx): not ready until one appears",
                self.repository,
            )
        for model, versions in found.items():
            for version in versions:
                await self._load_version(model, version)

    async def load_model(self, name: str) -> list[LoadedModel]:
        """Repository API: load every version of a model found on disk (already loaded ones stay).

        A version that cannot load is the caller's bad request (BadRequestError with the reason)."""
        versions = self.available(fresh=True).get(name)
        if not versions:
            raise NotFoundError(f"no model {name!r} in the repository {self.repository}")
        self._unloaded.discard(name)
        self._configs.pop(name, None)
        try:
            return [await self._load_version(name, v) for v in sorted(versions, key=version_key)]
        except LoadError as exc:
            raise BadRequestError(str(exc)) from None

    async def unload_model(self, name: str) -> None:
        """Repository API: no new requests reach the model; each version closes when its last request ends."""
        if name not in self.models and name not in self.available(fresh=True):
            raise NotFoundError(f"unknown model {name!r}")
        self._unloaded.add(name)
        for model in list(self.models.get(name, {}).values()):
            await self._retire(model, "unloaded")

    async def _load_version(self, name: str, version: str) -> LoadedModel:
        loaded = self.models.get(name, {}).get(version)
        if loaded is not None:
            return loaded
        key = (name, version)
        task = self._loading.get(key)
        if task is None:  # one load per version, owned by _loading: no caller's cancellation stops it for the others
            task = asyncio.create_task(self._owned_load(key), name=f"load {name} version {version}")
            task.add_done_callback(_retrieve)
            self._loading[key] = task
        return await asyncio.shield(task)

    async def _owned_load(self, key: tuple[str, str]) -> LoadedModel:
        """A finished load registers its version even if every caller gave up waiting: it is served (or evicted)
        like any other loaded version."""
        try:
            return await self._do_load(*key)
        finally:
            del self._loading[key]

    async def _do_load(self, name: str, version: str) -> LoadedModel:
        path = self.available(fresh=True).get(name, {}).get(version)
        if path is None:
            raise NotFoundError(f"unknown version {version!r} of model {name!r}")
        try:
            config = self.model_config(name)
            if self.memory_budget is not None:
                needed = _size_on_disk(path)
                if needed > self.memory_budget:
                    raise LoadError(
                        f"{name} version {version} needs about {needed} bytes, "
                        f"more than the memory budget of {self.memory_budget}"
                    )
                await self._make_room(needed)
            loop = asyncio.get_running_loop()
            preloaded = self._preload.take(name, version) if self._preload is not None else None
            if preloaded is not None:
                backend, seconds = await asyncio.wrap_future(preloaded)
            else:
                backend, seconds = await loop.run_in_executor(
                    self._load_pool, open_version, name, version, path, config
                )
        except Exception as exc:
            reason = str(exc)
            self._failures[(name, version)] = reason
            self.metrics.load_failures.labels(model=name, version=version).inc()
            log.error("cannot load %s version %s: %s", name, version, reason)
            if isinstance(exc, BackendUnavailableError | LoadError | ValueError):
                raise LoadError(f"cannot load {name} version {version}: {reason}") from exc
            raise LoadError(f"cannot load {name} version {version} from {path}: {reason}") from exc
        self._failures.pop((name, version), None)
        model = self._wrap(name, version, path, backend, config, seconds)
        self.models.setdefault(name, {})[version] = model
        self.metrics.load_duration.labels(model=name, version=version).observe(seconds)
        self.metrics.loaded.labels(model=name, version=version).set(1)
        self.metrics.memory.labels(model=name, version=version).set(model.memory_bytes)
        batching = f", batching up to {model.max_batch_size}" if model.batcher else ""
        log.info("loaded %s version %s from %s in %.3fs%s", name, version, path, seconds, batching)
        if self.memory_budget is not None:
            await self._make_room(0)
        return model

    def _wrap(
        self, name: str, version: str, path: Path, backend: Backend, config: ModelConfig, seconds: float
    ) -> LoadedModel:
        wanted = config.max_batch_size if config.max_batch_size is not None else self.default_max_batch_size
        delay_ms = (
            config.max_queue_delay_ms if config.max_queue_delay_ms is not None else self.default_max_queue_delay_ms
        )
        if wanted > 0 and not _batchable(backend):
            log.warning(
                "%s version %s has no variable leading dimension on all inputs and outputs: batching is off",
                name,
                version,
            )
            wanted = 0
        model = LoadedModel(name, version, path, backend, config, seconds, wanted, delay_ms)
        model.metrics = self.metrics.version(name, version)
        if wanted > 1:
            model.batcher = Batcher(
                lambda inputs: backend.run(dict(inputs), [o.name for o in backend.outputs]),
                self._pool,
                max_batch_size=wanted,
                max_delay_s=delay_ms / 1000,
            )
        return model

    async def _retire(self, model: LoadedModel, why: str) -> None:
        versions = self.models.get(model.name, {})
        if versions.get(model.version) is model:
            del versions[model.version]
            if not versions:
                del self.models[model.name]
        model.retired = True
        self._failures[(model.name, model.version)] = why
        self.metrics.loaded.labels(model=model.name, version=model.version).set(0)
        self.metrics.memory.labels(model=model.name, version=model.version).set(0)
        log.info("%s %s version %s", why, model.name, model.version)
        if model.refs == 0:
            await self._close(model)

    async def _close(self, model: LoadedModel) -> None:
        if model.batcher is not None:
            await model.batcher.close()
        model.backend.close()

    async def _make_room(self, needed: int) -> None:
        """Evict idle versions, least recently used first, until ``needed`` more bytes fit the budget."""
        assert self.memory_budget is not None
        loaded = [m for versions in self.models.values() for m in versions.values()]
        used = sum(m.memory_bytes for m in loaded)
        if used + needed <= self.memory_budget:
            return
        for model in sorted((m for m in loaded if m.refs == 0), key=lambda m: m.last_used):
            if used + needed <= self.memory_budget:
                return
            used -= model.memory_bytes
            await self._retire(model, "evicted (least recently used)")
        if used + needed > self.memory_budget:
            log.warning(
                "memory budget %d exceeded (%d in use by requests in flight, %d more needed)",
                self.memory_budget,
                used,
                needed,
            )

    # --- requests --------------------------------------------------------------------------------

    def _candidates(self, name: str) -> list[str]:
        if self.mode == "dynamic" and name not in self._unloaded:
            return list(self.available().get(name, {}))
        return list(self.models.get(name, {}))

    def resolve(self, name: str, version: str | None) -> str:
        """The version a request means: the one it names, else one by the weight table, else the highest."""
        if version:
            return version
        candidates = self._candidates(name)
        if not candidates:
            if name in self.models or name in self.available():
                raise UnavailableError(f"model {name!r} is not loaded")
            raise NotFoundError(f"unknown model {name!r}")
        weights = {v: w for v, w in self.model_config(name).version_weights.items() if v in candidates}
        if any(weights.values()):
            picker = self._pickers.get(name)
            if picker is None or picker.weights != {v: w for v, w in weights.items() if w > 0}:
                picker = self._pickers[name] = WeightedPicker(weights)
            return picker.pick()
        return max(candidates, key=version_key)

    @property
    def reports_ready(self) -> bool:
        """What health checks answer: loaded and not draining."""
        return self.ready and not self.draining

    async def acquire(self, name: str, version: str | None = None) -> LoadedModel:
        """The version for a request, loaded on demand in dynamic mode; pair with :meth:`release`."""
        if not self.ready:
            raise UnavailableError("server is not ready")
        chosen = self.resolve(name, version)
        model = self.models.get(name, {}).get(chosen)
        if model is None:
            if self.mode != "dynamic" or name in self._unloaded:
                if chosen in self.available().get(name, {}):
                    raise UnavailableError(f"model {name!r} version {chosen!r} is not loaded")
                raise NotFoundError(self._unknown(name, chosen))
            if chosen not in self.available().get(name, {}):
                raise NotFoundError(self._unknown(name, chosen))
            try:
                model = await self._load_version(name, chosen)
            except LoadError as exc:
                raise UnavailableError(str(exc)) from None
        model.refs += 1
        model.last_used = time.monotonic()
        return model

    def _unknown(self, name: str, version: str) -> str:
        known = set(self.available().get(name, {})) | set(self.models.get(name, {}))
        if not known:
            return f"unknown model {name!r}"
        return f"unknown version {version!r} of model {name!r}; versions: {', '.join(sorted(known, key=version_key))}"

    async def release(self, model: LoadedModel) -> None:
        model.refs -= 1
        model.last_used = time.monotonic()
        if model.refs == 0:
            if model.retired:
                await self._close(model)
            elif self.memory_budget is not None:
                await self._make_room(0)

    @contextlib.asynccontextmanager
    async def use(self, name: str, version: str | None = None) -> AsyncIterator[LoadedModel]:
        model = await self.acquire(name, version)
        try:
            yield model
        finally:
            await self.release(model)

    def lookup(self, name: str, version: str | None = None) -> LoadedModel:
        """A loaded version for metadata and configuration requests (loads nothing)."""
        chosen = version or (
            max(self.models[name], key=version_key) if self.models.get(name) else self.resolve(name, None)
        )
        model = self.models.get(name, {}).get(chosen)
        if model is None:
            if chosen in self.available().get(name, {}):
                raise UnavailableError(f"model {name!r} version {chosen!r} is not loaded")
            raise NotFoundError(self._unknown(name, chosen))
        return model

    async def describe(self, name: str, version: str | None = None) -> LoadedModel:
        """The version a metadata or configuration request is about; dynamic mode loads it if needed."""
        if self.mode == "dynamic" and not (version or self.models.get(name)):
            version = self.resolve(name, None)
        if self.mode == "dynamic" and (version is None or version not in self.models.get(name, {})):
            model = await self.acquire(name, version)
            await self.release(model)
            return model
        return self.lookup(name, version)

    def is_ready(self, name: str, version: str | None = None) -> bool:
        """Model readiness: True when loaded, False when known but not loaded; NotFoundError otherwise."""
        loaded = self.models.get(name, {})
        if (version in loaded) if version else bool(loaded):
            return True
        on_disk = self.available().get(name, {})
        if (version in on_disk) if version else bool(on_disk):
            return False
        raise NotFoundError(self._unknown(name, version or ""))

    async def infer(
        self,
        model: LoadedModel,
        inputs: dict[str, npt.NDArray[Any]],
        datatypes: dict[str, str],
        output_names: list[str] | None,
    ) -> Outputs:
        """Validate and run one request; statistics and the compute/queue/batch metrics are recorded here."""
        started = time.perf_counter_ns()
        try:
            model.validate(inputs, datatypes)
            known = [o.name for o in model.backend.outputs]
            names = output_names or known
            for name in names:
                if name not in known:
                    raise BadRequestError(f"model {model.name} has no output {name!r}; outputs: {', '.join(known)}")
            if model.batcher is not None:
                outputs, timing = await model.batcher.submit(inputs)
                outputs = {n: outputs[n] for n in names}
            elif model.compute_ewma_ns < INLINE_BELOW_NS:
                # a thread hop costs more than a small model's run: do it here, the loop is busy only briefly
                outputs, timing = _run_timed(model.backend, inputs, names)
            else:
                loop = asyncio.get_running_loop()
                outputs, timing = await loop.run_in_executor(self._pool, _run_timed, model.backend, inputs, names)
            model.compute_ewma_ns += (timing.infer_ns - model.compute_ewma_ns) // 8
        except ServingError:
            model.stats.record_failure(time.perf_counter_ns() - started)
            raise
        except Exception as exc:  # the model itself failed: say so through the error table, not as a crash
            model.stats.record_failure(time.perf_counter_ns() - started)
            log.warning("inference of %s version %s failed: %s", model.name, model.version, exc)
            raise InferenceFailedError(f"model {model.name} version {model.version} failed: {exc}") from exc
        rows = next(iter(inputs.values())).shape[0] if model.max_batch_size > 0 and inputs else 1
        model.stats.record_success(time.perf_counter_ns() - started, int(rows), timing)
        bound = model.metrics or self.metrics.version(model.name, model.version)
        bound.compute.observe(timing.infer_ns / 1e9)
        bound.queue.observe(timing.queue_ns / 1e9)
        if timing.leader:
            bound.batch_size.observe(timing.batch_size)
        return outputs

    def count_request(
        self, name: str, version: str, model: LoadedModel | None, protocol: str, code: int, seconds: float
    ) -> None:
        """One finished inference request, for both bindings (``code`` is the HTTP status, also for gRPC)."""
        if model is None or model.metrics is None:
            if code == Code.NOT_FOUND.http:  # names nobody serves must not grow the label set without bound
                name, version = UNKNOWN_MODEL, ""
            self.metrics.count_request(name, version, protocol, str(code))
            return
        model.metrics.request(protocol, str(code)).inc()
        if code == 200:
            model.metrics.duration.observe(seconds)

    def statistics(self, name: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
        if name is None:
            chosen = [m for versions in self.models.values() for m in versions.values()]
        elif version:
            chosen = [self.lookup(name, version)]
        else:
            if name not in self.models:
                self.lookup(name)  # the right error for unknown or unloaded
            chosen = list(self.models[name].values())
        chosen.sort(key=lambda m: (m.name, version_key(m.version)))
        return [m.stats.to_json(m.name, m.version) for m in chosen]

    async def close(self) -> None:
        for versions in list(self.models.values()):
            for model in list(versions.values()):
                await self._close(model)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._load_pool.shutdown(wait=False, cancel_futures=True)


def _retrieve(task: asyncio.Task[LoadedModel]) -> None:
    """Mark a load's failure as seen: when every caller was cancelled, nobody else retrieves it."""
    if not task.cancelled():
        task.exception()


def _run_timed(backend: Backend, inputs: dict[str, npt.NDArray[Any]], names: list[str]) -> tuple[Outputs, Timing]:
    t0 = time.perf_counter_ns()
    outputs = backend.run(inputs, names)
    return outputs, Timing(infer_ns=time.perf_counter_ns() - t0)
