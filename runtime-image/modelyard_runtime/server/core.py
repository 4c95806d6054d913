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
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy.typing as npt

from modelyard_runtime.backends import Backend
from modelyard_runtime.errors import BadRequestError, NotFoundError, UnavailableError, public_message
from modelyard_runtime.metrics import ServerMetrics
from modelyard_runtime.modelconfig import ModelConfig, WeightedPicker, overlay_version_config
from modelyard_runtime.server.access import AccessLog
from modelyard_runtime.server.batcher import Batcher, Outputs
from modelyard_runtime.server.inference import run_inference
from modelyard_runtime.server.preload import Preload
from modelyard_runtime.server.readiness import Required, unserved
from modelyard_runtime.server.repository import scan_repository, size_on_disk, version_key
from modelyard_runtime.server.shadow import Shadows
from modelyard_runtime.server.versions import (
    LoadedModel,
    LoadError,
    batchable,
    open_version,
    reported_memory,
    tensor_settings,
)
from modelyard_runtime.server.view import RESCAN_SECONDS, RepositoryView

__all__ = ["DataPlane", "LoadError", "LoadedModel", "open_version", "scan_repository", "version_key"]

log = logging.getLogger("modelyard.server")
UNKNOWN_MODEL = "(unknown)"  # the model (or version) label of requests for ones that do not exist
INFER_THREADS = 4  # inference runs off the loop thread (ONNX Runtime releases the GIL while it runs)
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "model_repository", "statistics"]
CONFIG_OVERRIDE_UNSUPPORTED = "a load with parameters.config is not supported; edit the model's config.yaml instead"


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
        self._keeper: asyncio.Task[None] | None = None  # dynamic mode: loads the required versions once published
        self._failed_at: dict[tuple[str, str], object] = {}  # the files a required version failed to load from
        self.view = RepositoryView(repository, config_dir)
        self._pickers: dict[str, WeightedPicker] = {}
        self.version_configs = dict(version_configs or {})  # --version-config: a version's backend and warmup
        self.shadows = Shadows(metrics, self._run_shadow)  # config.yaml's shadow: copies to a candidate version

    # --- repository view (server.view) ----------------------------------------------------------------

    def available(self, *, fresh: bool = False) -> dict[str, dict[str, Path]]:
        return self.view.available(fresh=fresh)

    def model_config(self, name: str) -> ModelConfig:
        return self.view.model_config(name)

    def version_config(self, name: str, version: str) -> ModelConfig:
        """The model's config.yaml with the version's own settings (``--version-config``) over it."""
        own = self.version_configs.get((name, version))
        config = self.model_config(name)
        return overlay_version_config(config, own) if own else config

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
        """Static mode loads everything and then becomes ready; dynamic mode accepts requests at once and loads the
        required versions (``--serve``) as soon as they are published, reporting ready only once they are loaded.

        A static server with nothing to serve stays unready (a pod that answers 404 to everything must not
        take traffic) and looks again every RESCAN_SECONDS, so models published later still bring it up.
        """
        if self.mode == "static":
            await self.load_all()
            while not self.models:
                await asyncio.sleep(RESCAN_SECONDS)
                await self.load_all(quiet=True)
            if not self.required:
                self.required = [(name, v) for name, versions in self.models.items() for v in versions]
        elif self.required:
            await self.load_required()
            self._keeper = asyncio.ensure_future(self._keep_required())
        self.ready = True

    async def _keep_required(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_SECONDS)
            await self.load_required()

    async def load_required(self) -> None:
        """Dynamic mode: load each required version that is published, not loaded, not unloaded through the admin
        API, and did not fail to load from the same files (a version published again is tried again)."""
        on_disk = self.available(fresh=True)
        for name, version in self.required:
            path = on_disk.get(name, {}).get(version or "")
            if version is None or path is None or name in self._unloaded or version in self.models.get(name, {}):
                continue
            files = _files_of(path)
            if files is None or self._failed_at.get((name, version)) == files:
                continue
            try:
                await self._load_version(name, version)
            except (LoadError, NotFoundError):
                self._failed_at[(name, version)] = files

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
            raise NotFoundError(f"no model {name!r} in the repository")
        self._unloaded.discard(name)
        self.view.forget_config(name)
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
            config = self.version_config(name, version)
            preferred, limit = config.preferred_batch_sizes, self._max_batch_size(config)
            if preferred and preferred[-1] > limit:
                raise LoadError(
                    f"{name}: dynamic_batching.preferred_batch_size {list(preferred)} exceeds max_batch_size {limit}"
                )
            if self.memory_budget is not None:
                needed = size_on_disk(path)
                if needed > self.memory_budget:
                    raise LoadError(
                        f"{name} version {version} needs about {needed} bytes, "
                        f"more than the memory budget of {self.memory_budget}"
                    )
                await self._make_room(needed)
            loop = asyncio.get_running_loop()
            preloaded = self._preload.take(name, version) if self._preload is not None else None
            if preloaded is not None:
                backend, seconds, grown = await asyncio.wrap_future(preloaded)
            else:
                backend, seconds, grown = await loop.run_in_executor(
                    self._load_pool, open_version, name, version, path, config
                )
            try:
                labels = tensor_settings(backend, config, self._settings_folders(name, version))
            except LoadError:
                backend.close()
                raise
        except Exception as exc:
            reason = str(exc)
            self._failures[(name, version)] = reason
            self.metrics.load_failures.labels(model=name, version=version).inc()
            log.error("cannot load %s version %s from %s: %s", name, version, path, reason)
            raise LoadError(f"cannot load {name} version {version}: {public_message(reason)}") from exc
        self._failures.pop((name, version), None)
        model = self._wrap(name, version, path, backend, config, seconds)
        model.labels = labels
        model.measured_bytes = grown
        self.models.setdefault(name, {})[version] = model
        self.metrics.load_duration.labels(model=name, version=version).observe(seconds)
        self.metrics.loaded.labels(model=name, version=version).set(1)
        memory = reported_memory(backend.platform, grown, model.memory_bytes)  # as measured (versions.py)
        self.metrics.memory.labels(model=name, version=version).set(memory)
        batching = f", batching up to {model.max_batch_size}" if model.batcher else ""
        log.info("loaded %s version %s from %s in %.3fs%s", name, version, path, seconds, batching)
        if self.memory_budget is not None:
            await self._make_room(0)
        return model

    def _settings_folders(self, name: str, version: str) -> list[Path]:
        """Where a version's label files are looked for: its folder, its model's, the model's config folder."""
        folders = [self.repository / name / version, self.repository / name]
        if self.config_dir is not None:
            folders.append(self.config_dir / name)
        return folders

    def _wrap(
        self, name: str, version: str, path: Path, backend: Backend, config: ModelConfig, seconds: float
    ) -> LoadedModel:
        wanted = self._max_batch_size(config)
        delay_ms = (
            config.max_queue_delay_ms if config.max_queue_delay_ms is not None else self.default_max_queue_delay_ms
        )
        if wanted > 0 and not batchable(backend):
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
                preferred=config.preferred_batch_sizes,
            )
        return model

    def _max_batch_size(self, config: ModelConfig) -> int:
        return config.max_batch_size if config.max_batch_size is not None else self.default_max_batch_size

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
        pinned = set(self.required)  # the versions readiness needs are never evicted for others
        idle = (m for m in loaded if m.refs == 0 and (m.name, m.version) not in pinned)
        for model in sorted(idle, key=lambda m: m.last_used):
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
        config = self.model_config(name)
        weights = {v: w for v, w in config.version_weights.items() if v in candidates}
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


def _files_of(path: Path) -> object:
    """What identifies a version's files (its folder and the files in it, each by inode, size and mtime), or None;
    ``path`` is the version's model file or folder, as the repository scan gives it."""
    folder = path if path.is_dir() else path.parent
    try:
        st = folder.stat()
        return (st.st_ino, st.st_mtime_ns, sorted((e.name, *_ident(e.stat())) for e in folder.iterdir()))
    except OSError:
        return None


def _ident(st: Any) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _retrieve(task: asyncio.Task[LoadedModel]) -> None:
    """Mark a load's failure as seen: when every caller was cancelled, nobody else retrieves it."""
    if not task.cancelled():
        task.exception()
