"""Kubernetes Events for decisions, each written exactly once (pure: builds the objects, sends nothing).

A decision's Events are created *before* the status that records the decision, under a name derived from the
object's identity and the resourceVersion the decision was made from. A restart between the two (the operator
SIGKILLed) makes the same decision again from the same stored state, so the Event's create answers 409 and no
second Event appears; a restart before the Event leaves neither, and the decision is simply made again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

COMPONENT = "modelyard-operator"
EventSpec = tuple[str, str, str]  # (type, reason, message)


def event_name(obj: dict[str, Any], index: int, reason: str) -> str:
    """``<object name>.<16 hex>``, the kubectl/client-go shape, fixed by (uid, resourceVersion, index, reason)."""
    meta = obj.get("metadata") or {}
    key = json.dumps([meta.get("uid", ""), meta.get("resourceVersion", ""), index, reason], separators=(",", ":"))
    suffix = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{meta.get('name', 'object')[: 253 - 17]}.{suffix}"


def event_objects(obj: dict[str, Any], events: list[EventSpec], *, now: str, instance: str) -> list[dict[str, Any]]:
    """core/v1 Events about ``obj`` (a namespaced object as read from the API), one per ``(type, reason, message)``.

    ``now`` is an RFC 3339 time in whole seconds (first/last timestamps) and ``instance`` the reporting instance
    (the operator's host name)."""
    meta = obj.get("metadata") or {}
    involved = {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name(obj, i, reason), "namespace": meta.get("namespace", "")},
            "involvedObject": involved,
            "type": type_,
            "reason": reason[:128],
            "message": message[:1024],
            "action": reason[:128],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        for i, (type_, reason, message) in enumerate(events)
    ]


def decision_fields(md: dict[str, Any], event: EventSpec) -> dict[str, str]:
    """The structured fields of a decision's log line (``extra=``): which ModelDeployment, model and version, and
    the Event's type and reason; the Event's message is the line's message."""
    meta, spec = md.get("metadata") or {}, md.get("spec") or {}
    type_, reason, _ = event
    return {
        "namespace": str(meta.get("namespace", "")),
        "modeldeployment": str(meta.get("name", "")),
        "model": str(spec.get("model", "")),
        "version": str(spec.get("version", "")),
        "reason": reason,
        "type": type_,
    }
