"""``modelyard-loader sidecar --versions-file``: the versions the operator wants a pod to hold beside its own.

The file is a key of a ConfigMap mounted into the sidecar (the kubelet swaps its content atomically when the
ConfigMap changes), ``{"versions": [entry, ...]}``, each entry a ``POST /fetch`` body (``model``, ``version``,
``uri``, ``digest``, and optionally ``signature``, ``format``, ``compiledDigest``) plus ``config``: the version's
own server settings (backend, warm-up, batching), which the server reads from
``<repository>/<model>/.config/<version>.json`` when it loads that version
(:func:`modelyard_runtime.modelconfig.version_config_file`).

The sidecar follows the file: it fetches, verifies, publishes and has the server load each listed version once, and
removes a version it added this way when the entry leaves the file (the server then retires it: it serves no version
whose folder is gone). The pod's own version (``--uri``) is never removed. A version that fails (fetch, verification,
or the server's load) is not left published, so no request reaches it; it is logged with its reason, listed as failed
by ``GET /versions``, and tried again after a back-off (5 s, 15 s, then every 60 s); the pod serves on.
A file that cannot be read or parsed is logged and leaves the versions held as they are.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelyard_runtime.loader.errors import LoaderError, UsageError
from modelyard_runtime.loader.pipeline import log
from modelyard_runtime.modelconfig import version_config_file

POLL_SECONDS = 1.0
RETRY_SECONDS = (5.0, 15.0, 60.0)  # back-off after the first, second and later failures of one version


def read_entries(path: Path) -> dict[str, dict[str, Any]]:
    """The file's entries by ``model/version``; UsageError when it is not the expected JSON."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    entries = doc.get("versions") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f'{path}: expected {{"versions": [{{"model", "version", "uri", ...}}, ...]}}')
    return {f"{e.get('model')}/{e.get('version')}": e for e in entries}


class HeldVersions:
    """Follows ``--versions-file`` for a :class:`~modelyard_runtime.loader.sidecar.Sidecar` (its ``fetch`` does the
    work); ``own`` is the pod's own ``model/version``, which stays whatever the file says."""

    def __init__(
        self,
        path: Path,
        repository: Path,
        fetch: Callable[[dict[str, Any]], dict[str, Any]],
        own: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.repository = repository
        self.fetch = fetch
        self.own = own
        self.clock = clock
        self.held: dict[str, str] = {}  # model/version → what was fetched (its entry, as JSON): published and loaded
        self.failed: dict[str, dict[str, Any]] = {}  # model/version → {entry, reason, message, attempts, retryAt}
        self._problem = ""  # the last file problem logged, so a bad file is logged once, not every second

    def sync(self) -> None:
        """One pass: fetch what the file lists and this sidecar does not hold, remove what it added and no longer
        lists."""
        try:
            entries = read_entries(self.path)
        except UsageError as exc:
            if str(exc) != self._problem:
                log(f"versions file: {exc}; the versions held stay as they are")
                self._problem = str(exc)
            return
        self._problem = ""
        for key in [k for k in self.held if k not in entries]:
            self._remove(key)
        for key in [k for k in self.failed if k not in entries]:
            del self.failed[key]
            self._remove_files(key)
        for key, entry in entries.items():
            wanted = json.dumps(entry, sort_keys=True)
            if self.held.get(key) == wanted:
                continue
            failure = self.failed.get(key)
            if failure is not None and failure["entry"] == wanted and self.clock() < failure["retryAt"]:
                continue
            self._add(key, entry, wanted, failure)

    def _add(self, key: str, entry: dict[str, Any], wanted: str, failure: dict[str, Any] | None) -> None:
        if key == self.own:  # the pod's own version: there already (published before the server started)
            self.held[key] = wanted
            return
        body = {k: v for k, v in entry.items() if k != "config"}
        try:
            self._write_config(entry)
            self.fetch(body)
        except LoaderError as exc:
            self._remove_files(key)  # published but not loaded: no request may find it (its share stays with the rest)
            attempts = failure["attempts"] + 1 if failure is not None and failure["entry"] == wanted else 1
            delay = RETRY_SECONDS[min(attempts, len(RETRY_SECONDS)) - 1]
            log(f"versions file: {key} failed ({exc.reason}): {exc}; trying again in {delay:.0f}s")
            self.failed[key] = {
                "entry": wanted,
                "reason": exc.reason,
                "message": str(exc),
                "attempts": attempts,
                "retryAt": self.clock() + delay,
            }
            return
        self.failed.pop(key, None)
        self.held[key] = wanted
        log(f"versions file: {key} held")

    def _write_config(self, entry: dict[str, Any]) -> None:
        config = entry.get("config")
        model, version = str(entry.get("model")), str(entry.get("version"))
        if config is None or "/" in model + version or version in (".", ".."):
            return  # names are checked by the fetch (a DNS label, a version's characters) before anything is written
        if not isinstance(config, dict):
            raise UsageError(f"{model}/{version}: config must be an object")
        path = version_config_file(self.repository, model, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(config, sort_keys=True))
        os.replace(tmp, path)  # in place before the version is published, so its first load sees it

    def _remove(self, key: str) -> None:
        del self.held[key]
        if self._remove_files(key):
            log(f"versions file: {key} removed (no longer listed)")

    def _remove_files(self, key: str) -> bool:
        """Unpublish ``key`` (never the pod's own version); whether there was anything to remove."""
        model, _, version = key.partition("/")
        if key == self.own or not model or "/" in version or version in ("", ".", ".."):
            return False
        folder = self.repository / model / version
        found = folder.is_dir()
        if found:
            gone = folder.with_name(f".removed-{version}-{os.getpid()}")
            os.rename(folder, gone)  # at once: the server's next scan no longer finds the version, and retires it
            shutil.rmtree(gone, ignore_errors=True)
        version_config_file(self.repository, model, version).unlink(missing_ok=True)
        return found

    def status(self) -> dict[str, Any]:
        failed = [{"key": k, **{f: v[f] for f in ("reason", "message", "attempts")}} for k, v in self.failed.items()]
        return {"held": sorted(self.held), "failed": failed}

    def follow(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.sync()
            stop.wait(POLL_SECONDS)
