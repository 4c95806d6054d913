"""``pvc://CLAIM/PATH`` on the real node (kubelet, containerd): a hostPath PersistentVolume bound to a claim holds
the model; the operator (a process on this host) validates the ModelVersion with a Job that really runs and serves it
from a pod that really answers, with the claim mounted read-only into the loaders only, never the server.

Its own cluster with the real node (one real node per machine: modules that use one run one after the other).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

import realnode
from devcluster import DevCluster

from ..conftest import Kubectl, real_node_fixtures, running_operator, wait_for
from ..models import binary_op

pytestmark = pytest.mark.timeout(400)


real_cluster, kube, ns = real_node_fixtures(
    "pvc-cluster", images=["modelyard-runtime"], ns="pvc", name="real_cluster", crds=True
)


@pytest.fixture(scope="module")
def operator(real_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    os.environ.update(
        MODELYARD_RUNTIME_IMAGE=real_cluster.image("modelyard-runtime"),
        MODELYARD_IMAGE_PULL_POLICY="Always",
        MODELYARD_VALIDATION_PLACEMENT=json.dumps({"nodeSelector": realnode.PLACEMENT["nodeSelector"]}),
    )
    log = tmp_path_factory.mktemp("pvc-operator") / "operator.log"
    try:
        with running_operator(real_cluster.kubeconfig, log):
            yield
    finally:
        for name in ("MODELYARD_RUNTIME_IMAGE", "MODELYARD_IMAGE_PULL_POLICY", "MODELYARD_VALIDATION_PLACEMENT"):
            os.environ.pop(name, None)


@pytest.fixture(scope="module")
def claim(kube: Kubectl, ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A claim bound to a hostPath PersistentVolume on this host (the real node's filesystem) holding the model at
    adder/1/model.onnx, readable by the pods' user; yields the model's digest."""
    root = tmp_path_factory.mktemp("pvc-volume") / "store"
    (root / "adder" / "1").mkdir(parents=True)
    model = binary_op(root / "adder" / "1" / "model.onnx")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    pv = f"model-store-{ns}"
    kube.apply(
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"], "storageClassName": "",
                  "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(root), "type": "Directory"},
                  "claimRef": {"namespace": ns, "name": "model-store"}}}
    )  # fmt: skip
    kube.apply(
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "model-store"},
         "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                  "resources": {"requests": {"storage": "1Gi"}}}},
        ns,
    )  # fmt: skip
    wait_for(lambda: kube.get("pvc", "model-store", ns)["status"].get("phase") == "Bound", what="the claim bound")
    yield "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    kube.run("delete", "pv", pv, "--wait=false", check=False)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def test_a_model_on_a_claim_is_validated_and_served(kube: Kubectl, ns: str, operator: None, claim: str) -> None:
    kube.apply(
        {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "adder-1"},
         "spec": {"model": "adder", "version": "1",
                  "artifact": {"uri": "pvc://model-store/adder/1/model.onnx", "digest": claim}}},
        ns,
    )  # fmt: skip
    kube.apply(
        {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "adder"},
         "spec": {"model": "adder", "version": "1", "replicas": 1, "placement": realnode.PLACEMENT,
                  "resources": {"requests": {"cpu": "100m"}}}},
        ns,
    )  # fmt: skip

    def phase() -> str | None:
        p = kube.get("mv", "adder-1", ns).get("status", {}).get("phase")
        return p if p in ("Ready", "Failed") else None

    assert wait_for(phase, timeout=180, interval=1, what="the ModelVersion validated") == "Ready", kube.get(
        "mv", "adder-1", ns
    )
    mv = kube.get("mv", "adder-1", ns)
    assert mv["status"]["artifact"]["digest"] == claim  # the validation Job read the claim and hashed the model

    def ready() -> dict[str, Any] | None:
        found = condition(kube.get("md", "adder", ns), "Ready")
        return found if found and found["status"] == "True" else None

    wait_for(ready, timeout=180, interval=1, what="the ModelDeployment Ready")
    pods = kube.get("pods", namespace=ns, labels="modelyard.dev/version=1")["items"]
    serving = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == "predictor"]
    assert len(serving) == 1
    spec, status = serving[0]["spec"], serving[0]["status"]
    claims = {v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"pvc-0"}
    loader_mounts = [m for m in spec["initContainers"][0]["volumeMounts"] if m["name"] in claims]
    assert loader_mounts == [{"name": "pvc-0", "mountPath": "/mnt/pvc/model-store", "readOnly": True}]
    assert not [m for m in spec["containers"][0]["volumeMounts"] if m["name"] in claims]  # never the server
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0

    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 10, dtype=np.float32)
    inputs = [httpclient.InferInput("A", [2, 4], "FP32"), httpclient.InferInput("B", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = httpclient.InferenceServerClient(f"{status['podIP']}:8080").infer("adder", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUT0"), a + b)
