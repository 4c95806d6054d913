"""Why a model pod could not start, from the pods' status (pure).

A server that cannot load its version (an execution provider the image lacks, a GPU provider that cannot start on
the node, a model that does not load) exits and writes ``{"reason", "message"}`` to its termination message
(``--termination-log``); so does the loader (the init container, or the sidecar in dynamic mode) that cannot fetch
or verify the artifact. The kubelet keeps it in the container's status, current or last state, where the operator
reads it for a ModelDeployment whose Deployment is not rolled out, and reports it as Degraded (and so as a Warning
Event).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelyard_operator.names import LABEL_VERSION

SERVER_CONTAINER = "server"
LOADER_CONTAINER = "loader"
KNOWN_REASONS = {
    SERVER_CONTAINER: ("ExecutionProviderUnavailable", "ModelLoadFailed", "ServerFailed"),
    # modelyard_runtime.loader.errors: every LoaderError's reason
    LOADER_CONTAINER: ("FetchFailed", "DigestMismatch", "SignatureInvalid", "UnsafeContent", "AddressBlocked",
                       "ModelLoadFailed", "InvalidArguments", "Error"),
}  # fmt: skip


@dataclass(frozen=True)
class StartFailure:
    version: str
    pod: str
    reason: str
    message: str
    container: str = SERVER_CONTAINER


def _parse(message: str, known: tuple[str, ...]) -> tuple[str, str] | None:
    try:
        document = json.loads(message)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("reason") not in known:
        return None
    return str(document["reason"]), str(document.get("message") or "")


def start_failures(pods: list[dict[str, Any]]) -> dict[str, StartFailure]:
    """Per version label, the latest start failure a server or loader container reported (pods in listing order)."""
    found: dict[str, StartFailure] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        version = (meta.get("labels") or {}).get(LABEL_VERSION)
        status = pod.get("status") or {}
        containers = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        for container in containers:
            known = KNOWN_REASONS.get(container.get("name", ""))
            if known is None or not version:
                continue
            for state in (container.get("state") or {}, container.get("lastState") or {}):
                terminated = state.get("terminated") or {}
                parsed = _parse(terminated.get("message") or "", known) if terminated.get("exitCode") else None
                if parsed is not None:
                    found[version] = StartFailure(version, str(meta.get("name", "")), *parsed, container["name"])
                    break
    return found
