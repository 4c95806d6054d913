"""Traffic routers (pure): how a canary weight becomes replica counts, an HTTPRoute or server weights.

- ``replicas``: both versions behind the main Service; the weight is the canary's share of the Ready
  pods (how many pods: ``capacity``).
- ``gatewayAPI``: an HTTPRoute with backend weights to ``<md>-stable`` and ``<md>-canary``, optional
  request mirroring and header matches that pin requests to the canary.
- ``inPod``: both versions loaded in the same pods; the server splits unversioned requests by the
  ``version_weights`` of ``<model>/config.yaml``, which the operator renders as a ConfigMap.
"""

from __future__ import annotations

import json
from typing import Any

from modelyard_operator.api.modeldeployment import GatewayAPISpec

Obj = dict[str, Any]

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
MODEL_CONFIG_KEY = "config.yaml"


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


def model_config_yaml(weights: dict[str, int], shadow: dict[str, Any] | None = None) -> str:
    """``<model>/config.yaml`` holding the version weights (a YAML flow mapping, keys quoted) and, while the canary
    shadows, the server's ``shadow`` setting (``version``, ``percent``, ``compare``, ``max_abs_diff``)."""
    body = ", ".join(f'"{v}": {w}' for v, w in sorted(weights.items()))
    text = f"version_weights: {{{body}}}\n"
    if shadow:
        text += "shadow: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in shadow.items()) + "}\n"
    return text


def render_weights_config_map(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: Obj,
    weights: dict[str, int],
    shadow: dict[str, Any] | None = None,
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels), "ownerReferences": [owner]},
        "data": {MODEL_CONFIG_KEY: model_config_yaml(weights, shadow)},
    }
