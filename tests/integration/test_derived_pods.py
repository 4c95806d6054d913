"""Derived versions (``spec.derivedFrom``) on the real node, with the operator installed by the chart and an artifact
store (a real OCI registry, Debian's docker-registry with basic auth, on the node's bridge address):

- an int8 version is built from its parent by the build Job (the loader fetches the parent, ``modelyard-build``
  quantizes, gates and pushes), its status records what was built, its pushed artifact is validated, and a pod
  serves it: tritonclient's answers agree with the parent's (ONNX Runtime here) on the class of every row;
- a version whose gate cannot hold fails with the gate's numbers, and nothing is pushed;
- a version whose parent does not exist waits for it (Reconciling), and is built once the parent appears.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient

from devcluster import DevCluster
from realnode import GATEWAY, PLACEMENT

from ..conftest import Kubectl, real_node_fixtures, serve_directory, temp_namespace, wait_for
from ..models import image_classifier
from ..support.registry import Registry, artifact_store, registry

pytestmark = pytest.mark.timeout(900)
STORE_USER, STORE_PASSWORD = "builder", "derive-me"


cluster, kube = real_node_fixtures("derived", images=["modelyard-operator", "modelyard-runtime"])


@pytest.fixture(scope="module")
def store(cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry(tmp_path_factory.mktemp("store"), auth=(STORE_USER, STORE_PASSWORD), address=GATEWAY) as reg:
        yield reg


@pytest.fixture(scope="module")
def ns(kube: Kubectl, store: Registry) -> Iterator[str]:
    with temp_namespace(kube, "derived") as name:
        kube.run("apply", "-n", name, "-f", "-", stdin=json.dumps(artifact_store(store)[0]))
        yield name


@pytest.fixture(scope="module")
def operator(cluster: DevCluster, ns: str, store: Registry) -> None:
    cluster.install_chart({
        "operator.watchNamespaces": "{" + ns + "}",
        "operator.loaderAllowHosts": "{" + GATEWAY + "}",
        **artifact_store(store)[1],
    })  # fmt: skip


@pytest.fixture(scope="module")
def parent_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The parent: a small image classifier served over HTTP (URL, digest, file)."""
    root = tmp_path_factory.mktemp("parent")
    path = image_classifier(root / "model.onnx", classes=5, side=16)
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}/model.onnx", digest, path


def apply(kube: Kubectl, ns: str, obj: dict[str, Any]) -> None:
    kube.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(obj))


def version(name: str, number: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": name},
            "spec": {"model": "cls", "version": number, **spec}}  # fmt: skip


def apply_parent(kube: Kubectl, ns: str, parent_model: tuple[str, str, Path], number: str) -> None:
    """Version ``number`` of model cls: the parent model served over HTTP, pinned by its digest."""
    uri, digest, _ = parent_model
    apply(kube, ns, version(f"cls-{number}", number, artifact={"uri": uri, "digest": digest}))


def phase(kube: Kubectl, name: str, ns: str, wanted: str) -> dict[str, Any] | None:
    obj = kube.get("modelversion", name, ns)
    return obj if obj and (obj.get("status") or {}).get("phase") == wanted else None


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_an_int8_version_is_built_gated_pushed_validated_and_served(
    kube: Kubectl, ns: str, operator: None, store: Registry, parent_model: tuple[str, str, Path]
) -> None:
    _, digest, path = parent_model
    apply_parent(kube, ns, parent_model, "1")
    apply(kube, ns, version("cls-1-int8", "1-int8", derivedFrom={
        "version": "1", "transforms": [{"quantize": {"mode": "dynamic"}}],
        "gate": {"generated": 200, "seed": 3, "top1Agreement": 0.9}}))  # fmt: skip
    ready = wait_for(lambda: phase(kube, "cls-1-int8", ns, "Ready"), timeout=400, what="cls-1-int8 Ready")
    built = ready["status"]["build"]
    print(json.dumps(built, indent=2))
    assert built["parent"] == "cls-1"
    assert built["parentDigest"] == digest
    assert built["uri"] == f"oci://{store.host}/modelyard/{ns}/cls@{built['digest']}"
    assert built["credentialsSecret"] == "store-creds"
    assert built["sizeBytesBefore"] == path.stat().st_size
    assert built["sizeBytesAfter"] > 0
    assert built["gate"]["passed"] is True
    assert built["gate"]["rows"] == 200
    assert built["gate"]["top1Agreement"] >= 0.9
    assert built["latencyMsBefore"] > 0
    assert built["latencyMsAfter"] > 0
    assert built["job"] == "cls-1-int8-build"
    # the pushed artifact went through the usual validation: fetched by digest from the store, loaded
    assert ready["status"]["artifact"]["digest"] == built["digest"]
    assert condition(ready, "Built")["status"] == "True"
    assert condition(ready, "Validated")["status"] == "True"
    assert [t["name"] for t in ready["status"]["signature"]["inputs"]] == ["data"]
    (build_pod,) = kube.get("pods", namespace=ns, labels="modelyard.dev/builds=cls-1-int8")["items"]
    assert [c["name"] for c in build_pod["spec"]["initContainers"]] == ["fetch-parent"]
    # served: a pod fetches it from the store with the store's Secret and answers like the parent
    md = {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "cls"},
          "spec": {"model": "cls", "version": "1-int8", "replicas": 1, "placement": PLACEMENT,
                   "resources": {"requests": {"cpu": "100m"}}}}  # fmt: skip
    apply(kube, ns, md)
    wait_for(lambda: (kube.get("modeldeployment", "cls", ns) or {}).get("status", {}).get("phase") == "Healthy",
             timeout=300, what="cls Healthy")  # fmt: skip
    (pod,) = kube.get("pods", namespace=ns, labels="app.kubernetes.io/instance=cls")["items"]
    client = httpclient.InferenceServerClient(f"{pod['status']['podIP']}:8080", connection_timeout=5)
    rng = np.random.default_rng(11)
    images = rng.uniform(0, 1, size=(16, 3, 16, 16)).astype(np.float32)
    images[np.arange(16), np.arange(16) % 3] += 2.0  # a dominant colour per image: a clear class
    tensor = httpclient.InferInput("data", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    served = client.infer("cls", [tensor]).as_numpy("probs")
    (expected,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"data": images})
    assert served.shape == expected.shape
    assert (served.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert float(np.abs(served - expected).max()) < 0.1


def test_a_gate_that_cannot_hold_fails_with_its_numbers_and_pushes_nothing(
    kube: Kubectl, ns: str, operator: None, store: Registry, parent_model: tuple[str, str, Path]
) -> None:
    apply_parent(kube, ns, parent_model, "1")
    apply(kube, ns, version("cls-1-pruned", "1-pruned", derivedFrom={
        "version": "1", "transforms": [{"prune": {"sparsity": 0.99}}], "gate": {"maxAbsDiff": 1e-6}}))  # fmt: skip
    failed = wait_for(lambda: phase(kube, "cls-1-pruned", ns, "Failed"), timeout=400, what="cls-1-pruned Failed")
    print(json.dumps(failed["status"], indent=2))
    built = failed["status"]["build"]
    assert "uri" not in built
    assert built["gate"]["passed"] is False
    assert built["gate"]["maxAbsDiff"] > 1e-6
    assert built["achievedSparsity"] >= 0.9
    assert any(f.startswith("maxAbsDiff ") for f in built["gate"]["failures"])
    ready = condition(failed, "Ready")
    assert ready["reason"] == "GateFailed"
    assert condition(failed, "Stalled")["status"] == "True"
    # nothing was pushed for it
    tags = store.tags(f"modelyard/{ns}/cls")
    assert "1-pruned" not in tags


def test_a_version_waits_for_its_parent_and_is_built_once_it_appears(
    kube: Kubectl, ns: str, operator: None, parent_model: tuple[str, str, Path]
) -> None:
    apply(kube, ns, version("cls-5-fp16", "5-fp16", derivedFrom={"version": "5", "transforms": [{"float16": {}}]}))
    waiting = wait_for(
        lambda: (mv := kube.get("modelversion", "cls-5-fp16", ns)) and mv.get("status", {}).get("conditions") and mv,
        timeout=60, what="cls-5-fp16 has conditions",
    )  # fmt: skip
    assert waiting["status"]["phase"] == "Validating"
    reconciling = condition(waiting, "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "WaitingForParent")
    assert "no ModelVersion of model cls with version 5" in reconciling["message"]
    apply_parent(kube, ns, parent_model, "5")
    ready = wait_for(lambda: phase(kube, "cls-5-fp16", ns, "Ready"), timeout=400, what="cls-5-fp16 Ready")
    built = ready["status"]["build"]
    assert built["derivedModelDigest"] != built["parentDigest"]  # float16 weights: other bytes
    assert built["gate"]["passed"] is True
