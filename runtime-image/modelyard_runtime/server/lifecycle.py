"""The data plane's repository view and model lifecycle (static or dynamic loading, eviction under the memory
budget), a base of :class:`modelyard_runtime.server.core.DataPlane`, which holds the state declared here.

Everything here runs on the event loop except session creation and warm-up, which run in a thread pool.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelyard_runtime.backends import Backend
from modelyard_runtime.errors import BadRequestError, NotFoundError, public_message
from modelyard_runtime.metrics import ServerMetrics
from modelyard_runtime.modelconfig import (
    ModelConfig,
    held_versions,
    overlay_version_config,
    own_version_config,
)
from modelyard_runtime.server.batcher import Batcher
from modelyard_runtime.server.opening import open_version
from modelyard_runtime.server.preload import Preload
from modelyard_runtime.server.readiness import Required
from modelyard_runtime.server.repository import size_on_disk, version_key
from modelyard_runtime.server.versions import (
    LoadedModel,
    LoadError,
    batchable,
    reported_memory,
    tensor_settings,
)
from modelyard_runtime.server.view import RESCAN_SECONDS, RepositoryView

log = logging.getLogger("modelyard.server")


class Lifecycle:
    """Loads, retires and evicts model versions; :class:`DataPlane` sets the state below in its constructor."""

    repository: Path
    config_dir: Path | None
    _preload: Preload | None
    required: list[Required]
    metrics: ServerMetrics
    mode: str
    memory_budget: int | None
    default_max_batch_size: int
    default_max_queue_delay_ms: float
    models: dict[str, dict[str, LoadedModel]]
    ready: bool
    _pool: ThreadPoolExecutor
    _load_pool: ThreadPoolExecutor
    _loading: dict[tuple[str, str], asyncio.Task[LoadedModel]]
    _failures: dict[tuple[str, str], str]
    _unloaded: set[str]
    _keeper: asyncio.Task[None] | None
    _failed_at: dict[tuple[str, str], object]
    _load_errors: set[tuple[str, str]]
    _missing: set[tuple[str, str]]  # loaded versions the last scan did not find in the repository
    held: set[tuple[str, str]]  # versions a loader sidecar holds for the pod (<model>/.config/<version>.json)
    view: RepositoryView
    version_configs: dict[tuple[str, str], Any]

    # --- repository view (server.view) ----------------------------------------------------------------

    def available(self, *, fresh: bool = False) -> dict[str, dict[str, Path]]:
        return self.view.available(fresh=fresh)

    def model_config(self, name: str) -> ModelConfig:
        return self.view.model_config(name)

    def version_config(self, name: str, version: str) -> ModelConfig:
        """The model's config.yaml with the version's own settings over it: ``--version-config``, else those the
        loader sidecar wrote beside the version it added from its versions file (``<model>/.config/<version>.json``).
        """
        own = own_version_config(self.version_configs, self.repository, name, version)
        config = self.model_config(name)
        return overlay_version_config(config, own) if own else config

    # --- loading ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Static mode loads everything and then becomes ready; dynamic mode accepts requests at once and loads the
        required versions (``--serve``) as soon as they are published, reporting ready only once they are loaded.

        A static server with nothing to serve stays unready (a pod that answers 404 to everything must not
        take traffic) and looks again every RESCAN_SECONDS, so models published later still bring it up.
        """
        self.held = held_versions(self.repository)
        if self.mode == "static":
            await self.load_all()
            while not self.models:
                await asyncio.sleep(RESCAN_SECONDS)
                await self.load_all(quiet=True)
            if not self.required:
                self.required = [(name, v) for name, versions in self.models.items() for v in versions]
        else:
            await self.load_required()
        self._keeper = asyncio.ensure_future(self._keep())
        self.ready = True

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_SECONDS)
            self.held = held_versions(self.repository)
            await self.retire_removed()
            if self.mode == "dynamic":
                await self.load_required()

    async def retire_removed(self) -> None:
        """Retire loaded versions whose folder left the repository (the loader sidecar removes a version that its
        versions file no longer lists), so nothing serves a version the pod was told to drop. A version missing from
        one scan only is kept (a version published again is swapped in by two renames), and so is a required one."""
        on_disk = self.available(fresh=True)
        missing: set[tuple[str, str]] = set()
        for name, versions in list(self.models.items()):
            for version, model in list(versions.items()):
                key = (name, version)
                if version in on_disk.get(name, {}) or key in self.required:
                    continue
                missing.add(key)
                if key in self._missing:
                    await self._retire(model, "removed from the repository")
        self._missing = missing

    async def load_required(self) -> None:
        """Dynamic mode: load each required version, and each one a loader sidecar holds for the pod (its settings
        file is there), that is published, not loaded, not unloaded through the admin API, and did not fail to load
        from the same files (a version published again is tried again)."""
        on_disk = self.available(fresh=True)
        for name, version in [*self.required, *sorted(self.held)]:
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
                if not self.required or (model, version) in self.required:
                    await self._load_version(model, version)  # a version the pod must serve: its failure stops us
                    continue
                try:  # any other (a version a loader sidecar holds beside the pod's own): its failure is its own
                    await self._load_version(model, version)
                except (LoadError, NotFoundError) as exc:
                    log.warning("not serving %s version %s: %s", model, version, exc)

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
            self._load_errors.add((name, version))
            self.metrics.load_failures.labels(model=name, version=version).inc()
            log.error("cannot load %s version %s from %s: %s", name, version, path, reason)
            raise LoadError(f"cannot load {name} version {version}: {public_message(reason)}") from exc
        self._failures.pop((name, version), None)
        self._load_errors.discard((name, version))
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
        pinned = {*self.required, *self.held}  # what readiness needs, and what the pod is told to hold, stays
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
