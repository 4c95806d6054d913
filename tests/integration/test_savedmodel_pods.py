"""A TensorFlow SavedModel (``format: savedmodel``, engine ``tensorflow``) on the real node: the operator installed by
the chart picks the runtime-tf image for the version's validation Job and its model pod, the Job loads the SavedModel
with TensorFlow and records its signature, and the pod's answers to tritonclient equal TensorFlow's own in this
process. Then ``convert: onnx``: a derived version's build Job (runtime-tf image) converts the SavedModel with
tf2onnx, gates it on TensorFlow's outputs and pushes it to the artifact store (a real OCI registry), and an ONNX
Runtime pod (the default runtime image) answers as TensorFlow does."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from devcluster import DevCluster
from realnode import GATEWAY, PLACEMENT

from ..conftest import Kubectl, real_node_fixtures, serve_directory, wait_for
from ..support.registry import Registry, artifact_store, registry

pytestmark = pytest.mark.timeout(600)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf: Any = importlib.import_module("tensorflow")  # the dev extra installs it (no type stubs: Any)


cluster, kube, ns = real_node_fixtures(
    "savedmodel", images=["modelyard-operator", "modelyard-runtime", "modelyard-runtime-tf"], ns="tf"
)


@pytest.fixture(scope="module")
def store(cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry(tmp_path_factory.mktemp("store"), auth=("builder", "convert-me"), address=GATEWAY) as reg:
        yield reg


@pytest.fixture(scope="module")
def operator(cluster: DevCluster, kube: Kubectl, ns: str, store: Registry) -> None:
    secret, values = artifact_store(store)
    kube.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(secret))
    cluster.install_chart(
        {"operator.watchNamespaces": "{" + ns + "}", "operator.loaderAllowHosts": "{" + GATEWAY + "}", **values}
    )


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """A Keras dense model exported as a SavedModel, as the archive ``model.savedmodel/...`` served over HTTP:
    (URL, digest, the SavedModel folder here)."""
    root = tmp_path_factory.mktemp("savedmodel-artifacts")
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [tf.keras.Input((4,), name="x"), tf.keras.layers.Dense(8, activation="tanh"), tf.keras.layers.Dense(2)]
    )
    saved = root / "model.savedmodel"
    model.export(str(saved), verbose=False)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(saved, arcname="model.savedmodel")
    (root / "dense.tar.gz").write_bytes(buffer.getvalue())
    digest = "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}/dense.tar.gz", digest, saved


def apply(kube: Kubectl, ns: str, obj: dict[str, Any]) -> None:
    kube.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(obj))


def phase(kube: Kubectl, kind: str, name: str, ns: str, wanted: str) -> dict[str, Any] | None:
    obj = kube.get(kind, name, ns)
    return obj if obj and (obj.get("status") or {}).get("phase") == wanted else None


def apply_parent(kube: Kubectl, ns: str, artifact: tuple[str, str, Path]) -> None:
    uri, digest, _ = artifact
    mv = {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "dense-1"},
          "spec": {"model": "dense", "version": "1", "format": "savedmodel", "runtime": {"engine": "tensorflow"},
                   "artifact": {"uri": uri, "digest": digest}}}  # fmt: skip
    apply(kube, ns, mv)


def serve(kube: Kubectl, ns: str, name: str, version: str) -> tuple[dict[str, Any], httpclient.InferenceServerClient]:
    """A ModelDeployment of one pod for ``version`` of model dense, Healthy; a tritonclient to its pod."""
    md = {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
          "spec": {"model": "dense", "version": version, "replicas": 1, "placement": PLACEMENT,
                   "resources": {"requests": {"cpu": "100m"}}}}  # fmt: skip
    apply(kube, ns, md)
    wait_for(lambda: phase(kube, "modeldeployment", name, ns, "Healthy"), timeout=240, what=f"{name} Healthy")
    (pod,) = kube.get("pods", namespace=ns, labels=f"app.kubernetes.io/instance={name}")["items"]
    return pod, httpclient.InferenceServerClient(f"{pod['status']['podIP']}:8080", connection_timeout=5)


def infer(client: httpclient.InferenceServerClient, x: np.ndarray) -> np.ndarray:
    tensor = httpclient.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    answer = client.infer("dense", [tensor])
    (name,) = [o["name"] for o in answer.get_response()["outputs"]]
    return answer.as_numpy(name)


def tensorflow(saved: Path, x: np.ndarray) -> np.ndarray:
    (want,) = [
        v.numpy() for v in tf.saved_model.load(str(saved)).signatures["serving_default"](x=tf.constant(x)).values()
    ]
    return want


def test_a_savedmodel_is_validated_and_served_by_the_runtime_tf_image_as_tensorflow_computes_it(
    cluster: DevCluster, kube: Kubectl, ns: str, operator: None, artifact: tuple[str, str, Path]
) -> None:
    _, _, saved = artifact
    apply_parent(kube, ns, artifact)
    ready = wait_for(lambda: phase(kube, "modelversion", "dense-1", ns, "Ready"), timeout=240, what="dense-1 Ready")
    assert [(t["name"], t["datatype"]) for t in ready["status"]["signature"]["inputs"]] == [("x", "FP32")]
    (job_pod,) = kube.get("pods", namespace=ns, labels="modelyard.dev/validates=dense-1")["items"]
    assert job_pod["spec"]["containers"][0]["image"] == cluster.image("modelyard-runtime-tf")
    pod, client = serve(kube, ns, "dense", "1")
    assert {c["image"] for c in pod["spec"]["containers"]} == {cluster.image("modelyard-runtime-tf")}
    x = np.random.default_rng(5).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_allclose(infer(client, x), tensorflow(saved, x), rtol=0, atol=1e-6)
    assert client.get_model_metadata("dense")["platform"] == "tensorflow_savedmodel"


def test_a_savedmodel_converted_to_onnx_is_built_gated_pushed_and_served_by_onnx_runtime(
    cluster: DevCluster, kube: Kubectl, ns: str, operator: None, store: Registry, artifact: tuple[str, str, Path]
) -> None:
    _, digest, saved = artifact
    apply_parent(kube, ns, artifact)
    derived = {"version": "1", "transforms": [{"convert": "onnx"}], "gate": {"generated": 100, "maxAbsDiff": 1e-5}}
    mv = {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "dense-1-onnx"},
          "spec": {"model": "dense", "version": "1-onnx", "derivedFrom": derived}}  # fmt: skip
    apply(kube, ns, mv)
    ready = wait_for(lambda: phase(kube, "modelversion", "dense-1-onnx", ns, "Ready"), timeout=400,
                     what="dense-1-onnx Ready")  # fmt: skip
    built = ready["status"]["build"]
    print(json.dumps(built, indent=2))
    assert built["parentDigest"] == digest  # the archive the parent pins
    assert built["sizeBytesBefore"] == sum(p.stat().st_size for p in saved.rglob("*") if p.is_file())
    assert built["uri"] == f"oci://{store.host}/modelyard/{ns}/dense@{built['digest']}"
    assert (built["gate"]["passed"], built["gate"]["rows"]) == (True, 100)
    assert built["gate"]["maxAbsDiff"] <= 1e-5
    assert built["latencyMsBefore"] > 0  # TensorFlow's
    assert built["latencyMsAfter"] > 0  # ONNX Runtime's
    (job_pod,) = kube.get("pods", namespace=ns, labels="modelyard.dev/builds=dense-1-onnx")["items"]
    assert job_pod["spec"]["containers"][0]["image"] == cluster.image("modelyard-runtime-tf")
    # validated as ONNX: the signature's names kept, so clients of version 1 send the same request
    assert [(t["name"], t["datatype"]) for t in ready["status"]["signature"]["inputs"]] == [("x", "FP32")]
    pod, client = serve(kube, ns, "dense-onnx", "1-onnx")
    assert {c["image"] for c in pod["spec"]["containers"]} == {cluster.image("modelyard-runtime")}
    assert client.get_model_metadata("dense")["platform"] == "onnxruntime_onnx"
    x = np.random.default_rng(6).normal(size=(7, 4)).astype(np.float32)
    np.testing.assert_allclose(infer(client, x), tensorflow(saved, x), rtol=0, atol=1e-5)
