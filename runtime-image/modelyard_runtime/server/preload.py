"""Static mode's head start: open every model version in a thread while the main thread imports the web stack.

Session creation spends most of its time in ONNX Runtime's C++ code (reading the file, optimizing the graph), so it
overlaps well with importing aiohttp and gRPC. This module imports only the standard library, so starting it costs
nothing; the data plane later takes the opened backends instead of opening them again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any


class Preload:
    def __init__(
        self,
        repository: Path,
        config_dir: Path | None,
        version_configs: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    ) -> None:
        self.repository = repository
        self.config_dir = config_dir
        self.version_configs = dict(version_configs or {})
        self.futures: dict[tuple[str, str], Future[Any]] = {}
        self.scanned = threading.Event()
        # set once the first version's engine is imported and its opening under way (or nothing is to be opened): the
        # main thread imports the web stack after it, so the two threads' imports do not take turns on the GIL while
        # the session, which is what readiness waits for, has not even started
        self.opening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="preload", daemon=True)

    def start(self) -> Preload:
        self._thread.start()
        return self

    def take(self, name: str, version: str) -> Future[Any] | None:
        """The future of ``(backend, seconds, grown bytes)`` for a version, once; None when it was not preloaded."""
        self.scanned.wait()
        return self.futures.pop((name, version), None)

    def _run(self) -> None:
        try:
            self._open_all()
        finally:  # whatever happened, nobody waits for what will not come
            self.scanned.set()
            self.opening.set()

    def _open_all(self) -> None:
        from modelyard_runtime.modelconfig import (
            overlay_version_config,
            own_version_config,
            read_model_config,
        )
        from modelyard_runtime.server.opening import import_engine, open_version
        from modelyard_runtime.server.repository import scan_repository

        found = scan_repository(self.repository)
        for model, versions in found.items():
            for version in versions:
                self.futures[(model, version)] = Future()
        self.scanned.set()
        for (model, version), future in list(self.futures.items()):
            try:
                dirs = [self.repository / model] + ([self.config_dir / model] if self.config_dir else [])
                config = read_model_config(*dirs)
                own = own_version_config(self.version_configs, self.repository, model, version)
                if own:
                    config = overlay_version_config(config, own)
                if not self.opening.is_set():
                    import_engine(found[model][version], config)
                    self.opening.set()
                future.set_result(open_version(model, version, found[model][version], config))
            except BaseException as exc:  # handed to the data plane, which reports it like any load failure
                future.set_exception(exc)
