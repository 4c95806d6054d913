"""What ``ModelDeployment.spec.pod`` and the installation's image pull Secrets change in a rendered model pod (pure).

The operator's own settings win where they matter: its labels (the schema refuses user labels under its prefixes) and
the ``MODELYARD_`` variables (refused too).
"""

from __future__ import annotations

from typing import Any

from modelyard_operator.api import ModelDeployment
from modelyard_operator.config import OperatorConfig

Obj = dict[str, Any]

DEFAULT_LOADER_RESOURCES: Obj = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


def loader_resources(md: ModelDeployment) -> Obj:
    """The loader container's resources: ``spec.pod.loaderResources`` where given, else the defaults."""
    given = md.spec.pod.loader_resources if md.spec.pod else None
    if given is None or not (given.requests or given.limits):
        return {k: dict(v) for k, v in DEFAULT_LOADER_RESOURCES.items()}
    return {k: {n: str(q) for n, q in v.items()} for k, v in (("requests", given.requests), ("limits", given.limits))
            if v}  # fmt: skip


def image_pull_secrets(md: ModelDeployment | None, config: OperatorConfig) -> list[Obj]:
    """The installation's Secrets (``runtime.imagePullSecrets``), then the ModelDeployment's, each name once."""
    names = list(config.image_pull_secrets)
    if md is not None and md.spec.pod and md.spec.pod.image_pull_secrets:
        names += [ref.name for ref in md.spec.pod.image_pull_secrets]
    return [{"name": n} for n in dict.fromkeys(names)]


def pod_metadata(md: ModelDeployment, labels: dict[str, str]) -> Obj:
    """The pod template's metadata: the user's labels and annotations, with the operator's labels over them."""
    pod = md.spec.pod
    meta: Obj = {"labels": {**((pod.labels or {}) if pod else {}), **labels}}
    if pod and pod.annotations:
        meta["annotations"] = dict(pod.annotations)
    return meta


def apply_pod_overrides(pod_spec: Obj, md: ModelDeployment, config: OperatorConfig) -> None:
    """Runtime and priority class, image pull Secrets and the server's extra environment."""
    if secrets := image_pull_secrets(md, config):
        pod_spec["imagePullSecrets"] = secrets
    pod = md.spec.pod
    if pod is None:
        return
    for field, value in (("runtimeClassName", pod.runtime_class_name),
                         ("priorityClassName", pod.priority_class_name)):  # fmt: skip
        if value:
            pod_spec[field] = value
    if pod.env:
        server = next(c for c in pod_spec["containers"] if c["name"] == "server")
        server["env"] = [*server.get("env", []), *(e.to_wire() for e in pod.env)]
