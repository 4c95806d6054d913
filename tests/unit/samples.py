"""Sample manifests shared by the unit tests."""

from __future__ import annotations

import copy
from typing import Any

DIGEST = "sha256:" + "ab" * 32


def model_version(
    name: str = "fraud-42", model: str = "fraud", version: str = "42", *, phase: str | None = "Ready", **spec: Any
) -> dict[str, Any]:
    """A ModelVersion object; validated (phase Ready) unless ``phase`` says otherwise."""
    body: dict[str, Any] = {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "model": model,
            "version": version,
            "format": "onnx",
            "artifact": {"uri": f"s3://models/{model}/{version}/model.onnx", "digest": DIGEST},
        },
    }
    body["spec"].update(spec)
    if phase is not None:
        body["status"] = {"phase": phase, "observedGeneration": 1}
    return body


def model_deployment(name: str = "fraud", version: str = "42", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ml", "uid": "uid-md", "generation": 3},
        "spec": {"model": "fraud", "version": version, "replicas": 2},
    }
    body["spec"].update(spec)
    return copy.deepcopy(body)


def deployment(
    name: str, version: str, *, replicas: int = 2, available: int = 2, generation: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ml", "generation": generation,
                     "labels": {"modelyard.dev/version": version}},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": generation, "replicas": replicas, "readyReplicas": available,
                   "availableReplicas": available, "updatedReplicas": replicas},
    }  # fmt: skip
