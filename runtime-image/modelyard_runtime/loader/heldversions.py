"""``modelyard-loader sidecar --versions-file``: the versions the operator wants a pod to hold beside its own.

The file is a key of a ConfigMap mounted into the sidecar (the kubelet swaps its content atomically when the
ConfigMap changes), ``{"versions": [entry, ...]}``, each entry a ``POST /fetch`` body (``model``, ``version``,
``uri``, ``digest``, and optionally ``signature``, ``format``, ``compiledDigest``) plus ``config``: the version's
own server settings (backend, warm-up, batch size and queue delay), which the server reads from
``<repository>/<model>/.config/<version>.json`` (:func:`modelyard_runtime.modelconfig.version_config_file`). That file
also tells the server the pod is to hold the version: it loads it as soon as it is published, and never evicts it.

The sidecar follows the file: it fetches, verifies, publishes and has the server load each listed version once, and
removes a version it added this way when the entry leaves the file (the server then retires it: it serves no version
whose folder is gone). The pod's own version (``--dest``) is never fetched again nor removed. What it holds is kept in
``<repository>/.held.json``, so a restarted sidecar neither fetches again what it holds nor forgets to remove what was
dropped meanwhile. A version that fails (fetch, verification, or the server's load) is not left published, so no
request reaches it; it is logged with its reason, listed as failed by ``GET /versions``, and tried again after a
back-off (5 s, 15 s, then every 60 s); a server that does not answer yet (it starts after the sidecar) is asked again
every 2 s, the version staying published. The pod serves on with what it has. A file that cannot be read or parsed
is logged and leaves the versions held as they are.
"""

from __future__ import annotations

import json
import os
import re
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
NO_ANSWER_RETRY_SECONDS = 2.0  # the server is not up yet: ask again soon, the version stays published
STATE_FILE = ".held.json"  # under the repository: hidden, never taken for a model
MODEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
VERSION_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}$")  # no leading dot: never a hidden folder


def check_names(model: str, version: str) -> None:
    """UsageError unless ``model`` is a DNS-1123 label and ``version`` a version folder's name (no leading dot)."""
    if not MODEL_RE.match(model):
        raise UsageError(f"model {model!r} is not a DNS-1123 label")
    if not VERSION_RE.match(version):
        raise UsageError(f"version {version!r} must match [A-Za-z0-9_-][A-Za-z0-9._-]{{0,62}}")


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
    work, ``forget`` drops its record of a removed version); ``own`` is the pod's own ``model/version``."""

    def __init__(
        self,
        path: Path,
        repository: Path,
        fetch: Callable[[dict[str, Any]], dict[str, Any]],
        own: str | None,
        forget: Callable[[str], object] = lambda key: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.repository = repository
        self.fetch = fetch
        self.forget = forget
        self.own = own
        self.clock = clock
        self.failed: dict[str, dict[str, Any]] = {}  # model/version → {entry, reason, message, attempts, retryAt}
        self._problem = ""  # the last file problem logged, so a bad file is logged once, not every second
        self.held: dict[str, str] = self._load_state()  # model/version → its entry (JSON): published and loaded

    # --- what this sidecar holds, across its restarts -----------------------------------------------------

    def _load_state(self) -> dict[str, str]:
        try:
            state = json.loads((self.repository / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {}
        held = state.get("held") if isinstance(state, dict) else None
        if not isinstance(held, dict):
            return {}
        return {k: v for k, v in held.items() if isinstance(k, str) and isinstance(v, str)}

    def _save_state(self) -> None:
        path = self.repository / STATE_FILE
        tmp = path.with_name(f"{STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"held": self.held}, sort_keys=True))
        os.replace(tmp, path)

    # --- following the file --------------------------------------------------------------------------------

    def sync(self) -> None:
        """One pass: fetch what the file lists and this sidecar does not hold, remove what it added and no longer
        lists. A version's failure, whatever it is, is that version's: the next pass comes all the same."""
        try:
            entries = read_entries(self.path)
        except UsageError as exc:
            if str(exc) != self._problem:
                log(f"versions file: {exc}; the versions held stay as they are")
                self._problem = str(exc)
            return
        self._problem = ""
        for key in [k for k in self.held if k not in entries]:
            self._guarded(key, self._remove, key)
        for key in [k for k in self.failed if k not in entries]:
            del self.failed[key]
            self._guarded(key, self._remove_files, key)
        for key, entry in entries.items():
            wanted = json.dumps(entry, sort_keys=True)
            if self.held.get(key) == wanted and (key == self.own or self._folder(key).is_dir()):
                continue
            failure = self.failed.get(key)
            if failure is not None and failure["entry"] == wanted and self.clock() < failure["retryAt"]:
                continue
            self._guarded(key, self._add, key, entry, wanted, failure, wanted=wanted)

    def _guarded(self, key: str, action: Callable[..., object], *args: Any, wanted: str = "") -> None:
        try:
            action(*args)
        except Exception as exc:  # a full disk, a failed rename: never the end of the follower
            before = self.failed.get(key)
            attempts = before["attempts"] + 1 if before is not None and before["entry"] == wanted else 1
            delay = RETRY_SECONDS[min(attempts, len(RETRY_SECONDS)) - 1]  # backed off like any failure
            log(f"versions file: {key}: {type(exc).__name__}: {exc}; trying again in {delay:.0f}s")
            self.failed[key] = {"entry": wanted, "reason": "Internal", "message": str(exc), "attempts": attempts,
                                "retryAt": self.clock() + delay}  # fmt: skip

    def _add(self, key: str, entry: dict[str, Any], wanted: str, failure: dict[str, Any] | None) -> None:
        if key == self.own:  # the pod's own version: there already (published before the server started)
            self.held[key] = wanted
            self._save_state()
            return
        model, version = str(entry.get("model", "")), str(entry.get("version", ""))
        try:
            check_names(model, version)  # before anything touches the disk
            if key in self.held:  # listed again with other content: out with the old one first
                self._remove(key)
            self._write_config(model, version, entry.get("config"))
            self.fetch({k: v for k, v in entry.items() if k != "config"})
        except LoaderError as exc:
            if getattr(exc, "no_answer", False):  # published; the server is not up yet and will be asked again
                self.failed[key] = {"entry": wanted, "reason": exc.reason, "message": str(exc),
                                    "attempts": 0, "retryAt": self.clock() + NO_ANSWER_RETRY_SECONDS}  # fmt: skip
                return
            if not isinstance(exc, UsageError) or (MODEL_RE.match(model) and VERSION_RE.match(version)):
                self._remove_files(key)  # published but not loaded: no request may find it
            attempts = failure["attempts"] + 1 if failure is not None and failure["entry"] == wanted else 1
            delay = RETRY_SECONDS[min(attempts, len(RETRY_SECONDS)) - 1]
            log(f"versions file: {key} failed ({exc.reason}): {exc}; trying again in {delay:.0f}s")
            self.failed[key] = {"entry": wanted, "reason": exc.reason, "message": str(exc),
                                "attempts": attempts, "retryAt": self.clock() + delay}  # fmt: skip
            return
        self.failed.pop(key, None)
        self.held[key] = wanted
        self._save_state()
        log(f"versions file: {key} held")

    def _write_config(self, model: str, version: str, config: Any) -> None:
        """The version's settings, in place before it is published (so its first load sees them); also the server's
        sign that the pod is to hold it."""
        if config is not None and not isinstance(config, dict):
            raise UsageError(f"{model}/{version}: config must be an object")
        path = version_config_file(self.repository, model, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(config or {}, sort_keys=True))
        os.replace(tmp, path)

    def _remove(self, key: str) -> None:
        del self.held[key]
        removed = self._remove_files(key)
        self._save_state()
        if removed:
            log(f"versions file: {key} removed (no longer listed)")

    def _remove_files(self, key: str) -> bool:
        """Unpublish ``key`` (never the pod's own version); whether there was anything to remove."""
        model, _, version = key.partition("/")
        if key == self.own or not MODEL_RE.match(model) or not VERSION_RE.match(version):
            return False
        self.forget(key)
        folder = self.repository / model / version
        found = folder.is_dir()
        if found:
            gone = folder.with_name(f".removed-{version}-{os.getpid()}")
            os.rename(folder, gone)  # at once: the server's next scans no longer find the version, and it retires it
            shutil.rmtree(gone, ignore_errors=True)
        version_config_file(self.repository, model, version).unlink(missing_ok=True)
        return found

    def _folder(self, key: str) -> Path:
        model, _, version = key.partition("/")
        return self.repository / model / version

    def status(self) -> dict[str, Any]:
        failed = [{"key": k, **{f: v[f] for f in ("reason", "message", "attempts")}} for k, v in self.failed.items()]
        return {"held": sorted(self.held), "failed": failed}

    def follow(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # the follower outlives any one pass
                log(f"versions file: {type(exc).__name__}: {exc}")
            stop.wait(POLL_SECONDS)
