"""Traffic routers (pure): how a canary weight becomes replica counts, an HTTPRoute or server weights.

- ``replicas``: both versions behind the main Service; the weight is the canary's share of the pods.
  Total Ready capacity never drops below ``spec.replicas``: a side is scaled down only by as many
  pods as the other side has Ready.
- ``gatewayAPI``: an HTTPRoute with backend weights to ``<md>-stable`` and ``<md>-canary``, optional
  request mirroring and header matches that pin requests to the canary.
- ``inPod``: both versions loaded in the same pods; the server splits unversioned requests by the
  ``version_weights`` of ``<model>/config.yaml``, which the operator renders as a ConfigMap.
"""

from __future__ import annotations

import math
from typing import Any

from modelyard_operator.api.modeldeployment import GatewayAPISpec

Obj = dict[str, Any]

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
MODEL_CONFIG_KEY = "config.yaml"


def canary_replicas(replicas: int, weight: int, *, full: bool) -> int:
    """Pods the canary needs for a weight: its share rounded up (at least one once it gets traffic)."""
    if full or weight >= 100:
        return replicas
    if weight <= 0 or replicas == 0:
        return 0
    return max(1, math.ceil(replicas * weight / 100))


def split_replicas(
    replicas: int, weight: int, *, canary_ready: int, stable_ready: int, full: bool = False
) -> tuple[int, int]:
    """(stable, canary) replica counts for the ``replicas`` router.

    Each side keeps enough pods that, with the other side's Ready pods, at least ``replicas`` are
    Ready: the stable version shrinks only as canary pods become Ready and vice versa (a rollback
    scales the stable version back up before the canary goes).
    """
    canary_target = canary_replicas(replicas, weight, full=full)
    stable_target = 0 if weight >= 100 else (replicas if full else replicas - canary_target)
    stable = max(stable_target, min(replicas, replicas - min(canary_ready, canary_target)))
    canary = max(canary_target, min(canary_ready, replicas - stable_ready))
    return stable, max(canary, 0)


def traffic_weight(stable_ready: int, canary_ready: int) -> int:
    """The canary's effective share of traffic under the replicas router (percent of Ready pods)."""
    total = stable_ready + canary_ready
    return round(100 * canary_ready / total) if total else 0


def main_service_version(router: str, stable: str | None, canary: str | None, weight: int) -> str | None:
    """The version the main Service ``<md>`` selects during a rollout (None: every version of the model).

    Only versions that should get user traffic: the stable one until the canary has a weight (a blueGreen
    copy or a canary waiting for its pods is reachable through ``<md>-canary`` only), both while the weight
    is split by pod counts, the canary alone at 100 %, and the stable one again at once after a rollback.
    The inPod router has one Deployment whose pods load both versions: its Service selects them all.
    """
    if router == "inPod" or stable is None:
        return None
    if canary is None or weight <= 0:
        return stable
    if weight >= 100:
        return canary
    return None


def _backend(name: str, port: int, weight: int | None = None) -> Obj:
    ref: Obj = {"group": "", "kind": "Service", "name": name, "port": port}
    if weight is not None:
        ref["weight"] = weight
    return ref


def render_http_route(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: Obj,
    port: int,
    settings: GatewayAPISpec | None,
    canary_weight: int,
    has_canary: bool,
) -> Obj:
    """The HTTPRoute of the gatewayAPI router: weights to ``<name>-stable`` / ``<name>-canary``."""
    settings = settings or GatewayAPISpec()
    stable_svc, canary_svc = f"{name}-stable", f"{name}-canary"
    rules: list[Obj] = []
    if has_canary and settings.canary_headers:
        headers = [{"type": "Exact", "name": h.name, "value": h.value} for h in settings.canary_headers]
        rules.append({"matches": [{"headers": headers}], "backendRefs": [_backend(canary_svc, port)]})
    if has_canary:
        weight = max(0, min(100, canary_weight))
        main: Obj = {"backendRefs": [_backend(stable_svc, port, 100 - weight), _backend(canary_svc, port, weight)]}
        if settings.mirror_percent and weight < 100:
            main["filters"] = [
                {
                    "type": "RequestMirror",
                    "requestMirror": {"backendRef": _backend(canary_svc, port), "percent": settings.mirror_percent},
                }
            ]
        rules.append(main)
    else:
        rules.append({"backendRefs": [_backend(stable_svc, port, 100)]})
    spec: Obj = {"rules": rules}
    if settings.parent_refs:
        spec["parentRefs"] = [p.to_wire() for p in settings.parent_refs]
    if settings.hostnames:
        spec["hostnames"] = list(settings.hostnames)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels), "ownerReferences": [owner]},
        "spec": spec,
    }


def version_weights(stable: str, canary: str | None, canary_weight: int) -> dict[str, int]:
    """The server's ``version_weights`` for the inPod router (a weight-0 version gets no traffic)."""
    if canary is None or canary == stable:
        return {stable: 100}
    weight = max(0, min(100, canary_weight))
    weights = {stable: 100 - weight, canary: weight}
    return {v: w for v, w in weights.items() if w > 0} or {stable: 100}


def model_config_yaml(weights: dict[str, int]) -> str:
    """``<model>/config.yaml`` holding only the version weights (a YAML flow mapping, keys quoted)."""
    body = ", ".join(f'"{v}": {w}' for v, w in sorted(weights.items()))
    return f"version_weights: {{{body}}}\n"


def render_weights_config_map(
    *, name: str, namespace: str, labels: dict[str, str], owner: Obj, weights: dict[str, int]
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels), "ownerReferences": [owner]},
        "data": {MODEL_CONFIG_KEY: model_config_yaml(weights)},
    }
