"""What the repository holds and each model's config.yaml, as the data plane sees them: cached for at most
RESCAN_SECONDS, so requests do not scan the disk, yet new versions and edited weights show within about a second."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from modelyard_runtime.modelconfig import CONFIG_FILE, ModelConfig, ModelConfigError, read_model_config
from modelyard_runtime.server.repository import mtime, scan_repository

log = logging.getLogger("modelyard.server")
RESCAN_SECONDS = 1.0  # how stale the view of the repository and of config.yaml may be


class RepositoryView:
    def __init__(self, repository: Path, config_dir: Path | None) -> None:
        self.repository = repository
        self.config_dir = config_dir
        self._scan: tuple[float, dict[str, dict[str, Path]]] = (-1e9, {})
        self._configs: dict[str, tuple[float, tuple[float, ...], ModelConfig]] = {}  # model → (checked, mtimes, config)

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
        mtimes = tuple(mtime(d / CONFIG_FILE) for d in dirs)
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

    def forget_config(self, name: str) -> None:
        """Read the model's config.yaml again on next use (an explicit load)."""
        self._configs.pop(name, None)
