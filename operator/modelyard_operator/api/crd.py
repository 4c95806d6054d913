"""CustomResourceDefinitions generated from the API models (pure).

Pydantic emits JSON Schema with ``$ref``/``$defs``, ``anyOf`` for optionals and ``title`` keys; a CRD needs a
*structural* OpenAPI v3 schema: every node typed, references inlined, no ``anyOf`` around types. This
module performs that translation and adds what only a CRD has (status subresource, printer columns,
names). ``hack/generate.py`` writes the result to ``crds/`` and the Helm chart.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from modelyard_operator.api.common import GROUP, VERSION
from modelyard_operator.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelyard_operator.api.modelversion import ModelVersionSpec, ModelVersionStatus

# JSON-schema keys with no place in a structural schema: titles are noise, and "additionalProperties: false"
# may not stand beside "properties" (the API server prunes unknown fields instead, and kubectl's strict
# field validation reports them).
_DROP = {"title"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)  # a field's description/default beats the referenced model's
        return _resolve(target, defs)
    node = {k: v for k, v in node.items() if k not in _DROP and k != "$defs"}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"cannot express a union as a structural schema: {options}")
        merged = dict(options[0])
        merged.update(node)
        node = merged
        if node.get("default", ...) is None:
            del node["default"]
        return _resolve(node, defs)
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if not isinstance(node.get(exclusive, True), bool):  # draft 2020 number -> OpenAPI v3 boolean
            node[bound] = node[exclusive]
            node[exclusive] = True
    if "const" in node:  # OpenAPI v3 (as the API server reads it) has no const
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        del node["additionalProperties"]
        node["x-kubernetes-preserve-unknown-fields"] = True
    return {k: _resolve(v, defs) for k, v in node.items()}


API_VERSION_DOC = (
    "The versioned schema of this representation of an object (for these resources: modelyard.dev/v1alpha1)."
)
KIND_DOC = "The REST resource this object represents (ModelVersion or ModelDeployment)."


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema in the form the API server accepts for a CRD."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema: dict[str, Any] = _resolve(raw, defs)
    schema.setdefault("type", "object")
    return schema


def _crd(
    *,
    kind: str,
    plural: str,
    short: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    description: str,
    columns: list[dict[str, Any]],
    scale: bool = False,
) -> dict[str, Any]:
    spec_schema = structural_schema(spec)
    status_schema = structural_schema(status)
    status_schema["description"] = status_schema.get("description", "Observed state, written by the operator.")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "modelyard", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["modelyard"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}, **({"scale": SCALE} if scale else {})},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": API_VERSION_DOC},
                                "kind": {"type": "string", "description": KIND_DOC},
                                # the API server refuses anything but the type here: ObjectMeta has its own docs
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


# `kubectl scale` (and anything else that speaks the scale subresource) writes spec.replicas; the operator reports the
# model's Ready pods and their label selector in status.
SCALE = {
    "specReplicasPath": ".spec.replicas",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".status.selector",
}


def _col(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        col["priority"] = priority
    return col


def model_version_crd() -> dict[str, Any]:
    return _crd(
        kind="ModelVersion",
        plural="modelversions",
        short=["mv", "mver"],
        spec=ModelVersionSpec,
        status=ModelVersionStatus,
        description="One immutable, digest-pinned, optionally signed model artifact.",
        columns=[
            _col("Model", ".spec.model"),
            _col("Version", ".spec.version"),
            _col("Format", ".spec.format"),
            _col("Phase", ".status.phase"),
            _col("Digest", ".status.artifact.shortDigest"),
            _col("Size", ".status.artifact.size"),
            _col("Validated", '.status.conditions[?(@.type=="Validated")].status'),
            _col("Age", ".metadata.creationTimestamp", "date"),
            _col("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1),
            _col("Load", ".status.loadSeconds", "number", priority=1),
            _col("URI", ".spec.artifact.uri", priority=1),
        ],
    )


def model_deployment_crd() -> dict[str, Any]:
    return _crd(
        kind="ModelDeployment",
        plural="modeldeployments",
        # `md` alone collides with Cluster API's MachineDeployment; `mdeploy` works in a cluster that has both
        short=["md", "mdeploy"],
        spec=ModelDeploymentSpec,
        status=ModelDeploymentStatus,
        description="What should serve a model, where, and how a new version takes over.",
        scale=True,
        columns=[
            _col("Model", ".spec.model"),
            _col("Stable", ".status.stableVersion"),
            _col("Canary", ".status.canaryVersion"),
            _col("Weight", ".status.weights.canary", "integer"),  # in effect (Ready pods under the replicas router)
            _col("Requested", ".status.requestedWeight", "integer", priority=1),
            _col("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            _col("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
            _col("Phase", ".status.phase"),
            _col("URL", ".status.endpoints.http"),
            _col("Age", ".metadata.creationTimestamp", "date"),
            _col("Strategy", ".spec.rollout.strategy", priority=1),
            _col("Replicas", ".spec.replicas", "integer", priority=1),
            _col("gRPC", ".status.endpoints.grpc", priority=1),
        ],
    )


def all_crds() -> list[dict[str, Any]]:
    return [model_version_crd(), model_deployment_crd()]
