#!/usr/bin/env python3
"""Writes examples/quickstart.yaml: a real small model (a logistic fraud score, 4 features -> score) shipped in
a ConfigMap, a tiny in-cluster file server for it, and the ModelVersion (with the model's real digest) and
ModelDeployment that serve it. Run with the project's virtual environment (it needs the onnx package):

    .venv/bin/python hack/quickstart.py

tests/unit/test_quickstart.py checks that the file holds what this writes: the digest of the embedded bytes and
the scores the model gives.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

import onnx
import yaml
from onnx import TensorProto, helper

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = [0.8, -0.5, 1.2, 0.3]
BIAS = -0.4
STORE = "fraud-models"  # the file server's Deployment, Service and ConfigMap
STORE_IMAGE = "ghcr.io/modelyard/modelyard-runtime:0.1.0"  # python3 is in the runtime image


def model_bytes() -> bytes:
    """score = sigmoid(features · WEIGHTS + BIAS); features: FP32 [-1, 4], score: FP32 [-1, 1]."""
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 1], WEIGHTS)
    b = helper.make_tensor("b", TensorProto.FLOAT, [1], [BIAS])
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["logit0"]),
        helper.make_node("Add", ["logit0", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    graph = helper.make_graph(nodes, "fraud", [features], [score], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelyard-quickstart")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def manifests(data: bytes) -> list[dict[str, object]]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    labels = {"app.kubernetes.io/name": STORE}
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    store = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": STORE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "http",
                            "image": STORE_IMAGE,
                            "command": ["python3", "-m", "http.server", "8000", "--directory", "/models"],
                            "ports": [{"name": "http", "containerPort": 8000}],
                            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2},
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                            "securityContext": restricted,
                            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                        }
                    ],
                    "volumes": [{"name": "models", "configMap": {"name": STORE}}],
                },
            },
        },
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": STORE, "labels": labels},
            "binaryData": {"model.onnx": base64.b64encode(data).decode()},
        },
        store,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": STORE, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
        {
            "apiVersion": "modelyard.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "fraud-1"},
            "spec": {
                "model": "fraud",
                "version": "1",
                "format": "onnx",
                "artifact": {"uri": f"http://{STORE}.default.svc/model.onnx", "digest": digest},
            },
        },
        {
            "apiVersion": "modelyard.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "fraud"},
            "spec": {
                "model": "fraud",
                "version": "1",
                "replicas": 2,
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            },
        },
    ]


HEADER = """\
# Quickstart: a real small model (fraud score = sigmoid(features . w + b); input `features` FP32 [-1, 4], output
# `score` FP32 [-1, 1]) served by Modelyard. Written by hack/quickstart.py; apply it in the namespace `default`:
#
#   helm install modelyard charts/modelyard -n modelyard-system --create-namespace \\
#     --set 'operator.loaderAllowHosts={fraud-models.default.svc}'
#   kubectl apply -f examples/quickstart.yaml
#   kubectl wait --for=condition=Ready md/fraud --timeout=5m
#
# The model's bytes travel in the ConfigMap and a tiny file server (Deployment and Service fraud-models) serves
# them inside the cluster. The loader's SSRF guard refuses cluster-internal hosts unless the chart allows them:
# hence operator.loaderAllowHosts above. Real models live in object stores, registries or web servers
# (docs/loader.md).
"""


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # repeat the labels instead of YAML anchors: easier to read


def main() -> int:
    docs = manifests(model_bytes())
    dump = (yaml.dump(d, Dumper=_NoAliases, sort_keys=False, width=120) for d in docs)
    text = HEADER + "".join("---\n" + d for d in dump)
    (REPO / "examples" / "quickstart.yaml").write_text(text)
    print("wrote examples/quickstart.yaml", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
