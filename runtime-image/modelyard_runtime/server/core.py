"""The transport-neutral data plane: repository, loading (static or dynamic), version routing, inference.

HTTP and gRPC are thin adapters over :class:`DataPlane`; errors are :mod:`modelyard_runtime.errors`. Loading,
retiring and evicting versions live in its base, :class:`modelyard_runtime.server.lifecycle.Lifecycle`; this module
keeps the requests: version routing, readiness, inference, accounting.

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
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy.typing as npt

from modelyard_runtime.errors import NotFoundError, UnavailableError
from modelyard_runtime.metrics import ServerMetrics
from modelyard_runtime.modelconfig import WeightedPicker
from modelyard_runtime.server.access import AccessLog
from modelyard_runtime.server.batcher import Outputs
from modelyard_runtime.server.inference import run_inference
from modelyard_runtime.server.lifecycle import Lifecycle
from modelyard_runtime.server.opening import open_version
from modelyard_runtime.server.preload import Preload
from modelyard_runtime.server.readiness import Required, unserved
from modelyard_runtime.server.repository import scan_repository, version_key
from modelyard_runtime.server.shadow import Shadows
from modelyard_runtime.server.versions import LoadedModel, LoadError
from modelyard_runtime.server.view import RepositoryView

__all__ = ["DataPlane", "LoadError", "LoadedModel", "open_version", "scan_repository", "version_key"]

log = logging.getLogger("modelyard.server")
UNKNOWN_MODEL = "(unknown)"  # the model (or version) label of requests for ones that do not exist
INFER_THREADS = 4  # inference runs off the loop thread (ONNX Runtime releases the GIL while it runs)
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "model_repository", "statistics"]
CONFIG_OVERRIDE_UNSUPPORTED = "a load with parameters.config is not supported; edit the model's config.yaml instead"


class DataPlane(Lifecycle):
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
        required: Sequence[Required] = (),
        version_configs: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    ) -> None:
        self.repository = repository
        self.config_dir = config_dir
        self._preload = preload
        self.required = list(required)  # what readiness needs (server.readiness); static: all loaded at start
        self.metrics = metrics
        self.access = AccessLog()  # --access-log turns it on
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
        self._keeper: asyncio.Task[None] | None = None  # retires removed versions; dynamic mode: loads required ones
        self._failed_at: dict[tuple[str, str], object] = {}  # the files a required version failed to load from
        self._load_errors: set[tuple[str, str]] = set()  # versions whose last load failed (until one succeeds)
        self._missing: set[tuple[str, str]] = set()  # loaded versions the last scan did not find
        self.held: set[tuple[str, str]] = set()  # versions a loader sidecar holds for the pod (refreshed each second)
        self.view = RepositoryView(repository, config_dir)
        self._pickers: dict[str, WeightedPicker] = {}
        self.version_configs = dict(version_configs or {})  # --version-config: a version's backend and warmup
        self.shadows = Shadows(metrics, self._run_shadow)  # config.yaml's shadow: copies to a candidate version

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

    # --- requests --------------------------------------------------------------------------------

    def _candidates(self, name: str) -> list[str]:
        """The versions an unversioned request may get. Dynamic mode: the published ones, except those whose last
        load failed while any other is there."""
        if self.mode == "dynamic" and name not in self._unloaded:
            published = list(self.available().get(name, {}))
            return [v for v in published if (name, v) not in self._load_errors] or published
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
        config = self.model_config(name)
        weights = {v: w for v, w in config.version_weights.items() if v in candidates}
        loaded = self.models.get(name, {})
        waiting = {v for v in weights if v not in loaded and ((name, v) in self._loading or (name, v) in self.held)}
        if any(w for v, w in weights.items() if v not in waiting):
            # a version a loader sidecar holds for the pod takes its share once it is loaded, never before
            weights = {v: w for v, w in weights.items() if v not in waiting}
        if config.shadow is not None:  # a shadow version answers no client unless it is all there is
            candidates = [v for v in candidates if v != config.shadow.version] or candidates
        if any(weights.values()):
            picker = self._pickers.get(name)
            if picker is None or picker.weights != {v: w for v, w in weights.items() if w > 0}:
                picker = self._pickers[name] = WeightedPicker(weights)
            return picker.pick()
        return max(candidates, key=version_key)

    @property
    def reports_ready(self) -> bool:
        """What health checks answer: loaded, not draining, and every required version servable."""
        return self.ready and not self.draining and not self.unserved()

    def unserved(self) -> list[str]:
        """The required versions this server does not serve now: not loaded (in dynamic mode too: a pod takes traffic
        only once the versions it must serve are loaded, not merely published), unloaded, or not published yet."""
        return unserved(self.required, self.models, {})

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
        classes: Mapping[str, int] | None = None,
    ) -> Outputs:
        """Validate and run one request (:func:`~modelyard_runtime.server.inference.run_inference`), counted in the
        version's in-flight gauge meanwhile (for every API and binding)."""
        inflight = model.metrics.inflight if model.metrics else None
        if inflight is not None:
            inflight.inc()
        try:
            outputs = await run_inference(model, inputs, datatypes, output_names, self._pool, classes)
        finally:
            if inflight is not None:
                inflight.dec()
        shadow = self.model_config(model.name).shadow
        if shadow is not None:
            classified = any((classes or {}).values())
            self.shadows.offer(shadow, model.name, model.version, inputs, datatypes, outputs, classified)
        return outputs

    async def _run_shadow(self, name: str, version: str, inputs: dict[str, npt.NDArray[Any]],
                          datatypes: dict[str, str], names: list[str]) -> Outputs:  # fmt: skip
        async with self.use(name, version) as candidate:
            return await self.infer(candidate, inputs, datatypes, names)

    def count_request(
        self,
        name: str,
        version: str,
        model: LoadedModel | None,
        protocol: str,
        code: int,
        seconds: float,
        *,
        method: str = "",
        request_bytes: int = 0,
        peer: str = "",
    ) -> None:
        """One finished inference request, for both bindings (``code`` is the HTTP status, also for gRPC): its
        metrics, and its access-log line (``method`` is the HTTP method and path, or the gRPC method)."""
        self.access.request(
            protocol=protocol, method=method, model=name, version=version, status=code, seconds=seconds,
            request_bytes=request_bytes, peer=peer,
        )  # fmt: skip
        if model is None or model.metrics is None:
            self.metrics.count_request(*self.label_values(name, version), protocol, str(code))
            return
        model.metrics.request(protocol, str(code)).inc()
        if code == 200:
            model.metrics.duration.observe(seconds)

    def count_rejected(self, protocol: str, reason: str) -> None:
        """A request refused at the server's limits (server.limits): ``reason`` is the limit."""
        self.metrics.rejected.labels(protocol, reason).inc()

    def label_values(self, name: str, version: str) -> tuple[str, str]:
        """The metric labels of a request that reached no loaded version: names and versions the repository does
        not have collapse into one series each (clients choose them: every random name must not add series)."""
        known = self.models.get(name, {}).keys() | self.available().get(name, {}).keys()
        if not known and name not in self.models:
            return UNKNOWN_MODEL, ""
        if version and version not in known:
            return name, UNKNOWN_MODEL
        return name, version

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
        await self.shadows.close()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for versions in list(self.models.values()):
            for model in list(versions.values()):
                await self._close(model)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._load_pool.shutdown(wait=False, cancel_futures=True)
