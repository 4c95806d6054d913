"""ModelVersion spec.runtime, spec.warmup and spec.format on the real node (kubelet and containerd), with the
operator installed by the chart from the built images (the CPU runtime image: no GPU, no CUDA, no TensorRT):

1. a version on CPUExecutionProvider with warm-up requests over digest-pinned samples: its pod warms up with the real
   inputs before it is Ready, then answers;
2. a version asking for CUDAExecutionProvider: the CPU image lacks it, the server refuses to start and the
   ModelDeployment is Degraded with reason ExecutionProviderUnavailable (never a pod silently on the CPU);
3. a ModelDeployment asking for nvidia.com/gpu for the CPU-only version: a Warning Event says the GPU would idle;
4. a TensorRT plan: its validation needs a GPU node, there is none, and the ModelVersion says so in a condition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from devcluster import DevCluster
from realnode import GATEWAY, PLACEMENT

from ..conftest import Kubectl, dev_cluster, serve_directory, temp_namespace, wait_for
from ..models import binary_op

pytestmark = pytest.mark.timeout(420)

A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 10, dtype=np.float32)
CUDA_FIRST = {"executionProviders": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with dev_cluster(tmp_path_factory.mktemp("runtime-fields"), crds=False, nodes=False, real_node=True) as cl:
        cl.push_images(["modelyard-operator", "modelyard-runtime"])
        yield cl


@pytest.fixture(scope="module")
def kube(cluster: DevCluster) -> Kubectl:
    return Kubectl(cluster.bin / "kubectl", cluster.kubeconfig)


@pytest.fixture(scope="module")
def ns(kube: Kubectl) -> Iterator[str]:
    with temp_namespace(kube, "rtf") as name:
        yield name


@pytest.fixture(scope="module")
def operator(cluster: DevCluster, ns: str) -> None:
    values = {"operator.watchNamespaces": "{" + ns + "}", "operator.loaderAllowHosts": "{" + GATEWAY + "}"}
    cluster.install_chart(values)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("runtime-fields-artifacts")
    binary_op(root / "adder.onnx")
    (root / "adder.plan").write_bytes(b"a serialized TensorRT engine would be here")
    sample = {"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]} for n in "AB"]}
    (root / "warmup.json").write_text(json.dumps([sample, sample]))
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}", root


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def apply(kube: Kubectl, ns: str, obj: dict[str, Any]) -> None:
    kube.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(obj))


def model_version(name: str, version: str, artifacts: tuple[str, Path], file: str = "adder.onnx",
                  **spec: Any) -> dict[str, Any]:  # fmt: skip
    url, root = artifacts
    artifact = {"uri": f"{url}/{file}", "digest": sha256(root / file)}
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": name},
            "spec": {"model": "adder", "version": version, "artifact": artifact, **spec}}  # fmt: skip


def model_deployment(name: str, version: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"model": "adder", "version": version, "replicas": 1, "placement": PLACEMENT,
                     "resources": {"requests": {"cpu": "100m"}}, **spec}}  # fmt: skip


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def phase(kube: Kubectl, kind: str, name: str, ns: str, wanted: str) -> dict[str, Any] | None:
    obj = kube.get(kind, name, ns)
    return obj if obj and (obj.get("status") or {}).get("phase") == wanted else None


def pods(kube: Kubectl, ns: str, md: str) -> list[dict[str, Any]]:
    return kube.get("pods", namespace=ns, labels=f"app.kubernetes.io/instance={md}")["items"]  # type: ignore[no-any-return]


def test_cpu_provider_with_warmup_samples_serves_after_warming_up(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path]
) -> None:
    url, root = artifacts
    warmup = {"requests": 3, "samples": {"uri": f"{url}/warmup.json", "digest": sha256(root / "warmup.json")}}
    apply(kube, ns, model_version("adder-1", "1", artifacts, runtime={"executionProviders": ["CPUExecutionProvider"]},
                                  warmup=warmup))  # fmt: skip
    wait_for(lambda: phase(kube, "modelversion", "adder-1", ns, "Ready"), timeout=120, what="adder-1 validated")
    apply(kube, ns, model_deployment("cpu", "1"))
    wait_for(lambda: phase(kube, "modeldeployment", "cpu", ns, "Healthy"), timeout=180, what="cpu Healthy")
    (pod,) = pods(kube, ns, "cpu")
    logs = kube.run("logs", "-n", ns, pod["metadata"]["name"], "-c", "server").stdout
    assert "warmed up adder version 1 with 3 inference(s) on 2 sample(s)" in logs
    assert logs.index("warmed up adder version 1") < logs.index("ready:")
    client = httpclient.InferenceServerClient(f"{pod['status']['podIP']}:8080", connection_timeout=5)
    inputs = [httpclient.InferInput("A", [2, 4], "FP32"), httpclient.InferInput("B", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    np.testing.assert_array_equal(client.infer("adder", inputs).as_numpy("OUT0"), A + B)


def test_a_provider_the_image_lacks_is_degraded_not_a_pod_on_the_cpu(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path]
) -> None:
    apply(kube, ns, model_version("adder-2", "2", artifacts, runtime=CUDA_FIRST))
    wait_for(lambda: phase(kube, "modelversion", "adder-2", ns, "Ready"), timeout=120, what="adder-2 validated")
    apply(kube, ns, model_deployment("gpu", "2"))
    md = wait_for(lambda: phase(kube, "modeldeployment", "gpu", ns, "Degraded"), timeout=150, what="gpu Degraded")
    degraded = condition(md, "Degraded")
    assert degraded["status"] == "True", degraded
    assert degraded["reason"] == "ExecutionProviderUnavailable", degraded
    assert "CUDAExecutionProvider (install onnxruntime-gpu" in degraded["message"]
    assert not any(c.get("ready") for p in pods(kube, ns, "gpu") for c in p["status"].get("containerStatuses", []))
    events = kube.get("events", namespace=ns)["items"]
    assert any(e["reason"] == "ExecutionProviderUnavailable" and e["involvedObject"]["name"] == "gpu" for e in events)


def test_a_gpu_request_for_a_cpu_only_version_gets_a_warning_event(kube: Kubectl, ns: str, operator: None) -> None:
    wait_for(lambda: phase(kube, "modelversion", "adder-1", ns, "Ready"), timeout=120, what="adder-1 validated")
    apply(kube, ns, model_deployment("idle", "1", resources={"limits": {"nvidia.com/gpu": 1}}))

    def warning() -> list[dict[str, Any]]:
        items = kube.get("events", namespace=ns)["items"]
        return [e for e in items if e["reason"] == "GPUIdle" and e["involvedObject"]["name"] == "idle"]

    (event,) = wait_for(warning, timeout=60, what="GPUIdle event")
    assert event["type"] == "Warning"
    assert "the GPU will sit idle" in event["message"]


def test_a_plan_without_a_gpu_node_says_so_in_a_condition(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path]
) -> None:
    apply(kube, ns, model_version("adder-plan", "3", artifacts, file="adder.plan", format="tensorrt",
                                  runtime={"engine": "tensorrt"}))  # fmt: skip

    def validated() -> dict[str, Any]:
        found = condition(kube.get("modelversion", "adder-plan", ns), "Validated")
        return found if found.get("reason") == "NoGPUNodeForValidation" else {}

    found = wait_for(validated, timeout=90, what="NoGPUNodeForValidation")
    assert found["status"] == "Unknown"
    assert "nvidia.com/gpu" in found["message"]
    assert "holds no .onnx" not in found["message"]
    assert (kube.get("modelversion", "adder-plan", ns) or {})["status"]["phase"] == "Validating"
