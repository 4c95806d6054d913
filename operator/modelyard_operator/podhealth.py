"""Why a model pod's server could not start, from the pods' status (pure).

A server that cannot load its version (an execution provider the image lacks, a GPU provider that cannot start on
the node, a model that does not load) exits and writes ``{"reason", "message"}`` to its termination message
(``--termination-log``). The kubelet keeps it in the container's status, current or last state, where the operator
reads it for a ModelDeployment whose Deployment is not rolled out, and reports it as Degraded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelyard_operator.names import LABEL_VERSION

SERVER_CONTAINER = "server"
KNOWN_REASONS = ("ExecutionProviderUnavailable", "ModelLoadFailed", "ServerFailed")


@dataclass(frozen=True)
class StartFailure:
    version: str
    pod: str
    reason: str
    message: str


def _parse(message: str) -> tuple[str, str] | None:
    try:
        document = json.loads(message)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("reason") not in KNOWN_REASONS:
        return None
    return str(document["reason"]), str(document.get("message") or "")


def start_failures(pods: list[dict[str, Any]]) -> dict[str, StartFailure]:
    """Per version label, the latest start failure a server container reported (pods in listing order)."""
    found: dict[str, StartFailure] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        version = (meta.get("labels") or {}).get(LABEL_VERSION)
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") != SERVER_CONTAINER:
                continue
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                terminated = state.get("terminated") or {}
                parsed = _parse(terminated.get("message") or "") if terminated.get("exitCode") else None
                if parsed is not None and version:
                    found[version] = StartFailure(version, str(meta.get("name", "")), *parsed)
                    break
    return found
