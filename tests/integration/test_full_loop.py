"""The whole loop on the process-backed local node: the real operator validates a ModelVersion with a Job that
really runs (loader fetch over HTTP from this host, digest check, model load), then serves it from a Deployment
whose pod really answers inference requests; a tampered artifact fails validation and leaves the serving version
alone.

Its own cluster with the local node (one per machine: modules that use one run one after the other) and its own
operator subprocess, placed on ``local-0`` with ``--validation-placement`` and allowed to fetch from the bridge's
gateway with ``--loader-allow-hosts``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from devcluster import DevCluster

from ..conftest import Kubectl, dev_cluster, running_operator, serve_directory, temp_namespace, wait_for
from ..models import binary_op

GATEWAY = "10.244.100.1"  # the host, as the local node's pods see it
PLACEMENT = {
    "nodeSelector": {"modelyard.dev/local-node": "true"},
    "tolerations": [{"key": "modelyard.dev/local-node", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with dev_cluster(tmp_path_factory.mktemp("full-loop-cluster"), nodes=False, local_node=True) as cl:
        yield cl


@pytest.fixture(scope="module")
def kube(local_cluster: DevCluster) -> Kubectl:
    return Kubectl(local_cluster.bin / "kubectl", local_cluster.kubeconfig)


@pytest.fixture(scope="module")
def ns(kube: Kubectl) -> Iterator[str]:
    with temp_namespace(kube, "loop") as name:
        yield name


@pytest.fixture(scope="module")
def operator(
    local_cluster: DevCluster, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """The real operator, watching the test's namespace, placing validation pods on local-0."""
    log = tmp_path_factory.mktemp("full-loop-operator") / "operator.log"
    args = ["--namespace", ns, "--validation-placement", json.dumps(PLACEMENT), "--loader-allow-hosts", GATEWAY]
    with running_operator(local_cluster.kubeconfig, log, *args) as proc:
        yield proc


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A plain HTTP file server on all of this host's addresses (pods reach it at the gateway); its folder."""
    root = tmp_path_factory.mktemp("full-loop-artifacts")
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}", root


def model_version(name: str, version: str, uri: str, digest: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {"model": "adder", "version": version, "format": "onnx", "artifact": {"uri": uri, "digest": digest}},
    }


def model_deployment(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "adder"},
        "spec": {
            "model": "adder",
            "version": version,
            "replicas": 1,
            "placement": PLACEMENT,
            "resources": {"requests": {"cpu": "100m"}},
        },
    }


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def mv_phase(kube: Kubectl, name: str, ns: str, phase: str) -> dict[str, Any] | None:
    mv = kube.get("modelversion", name, ns)
    return mv if mv and mv.get("status", {}).get("phase") == phase else None


def ready_model_pod(kube: Kubectl, ns: str, version: str) -> dict[str, Any] | None:
    pods = kube.get("pods", namespace=ns, labels=f"modelyard.dev/model=adder,modelyard.dev/version={version}")
    for pod in pods["items"]:
        conditions = pod.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return pod  # type: ignore[no-any-return]
    return None


def answer(ip: str) -> bool:
    """One inference request to the pod; True when both outputs are right."""
    client = httpclient.InferenceServerClient(f"{ip}:8080", connection_timeout=5, network_timeout=5)
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 10, dtype=np.float32)
    inputs = [httpclient.InferInput("A", [2, 4], "FP32"), httpclient.InferInput("B", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer("adder", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUT1"), a - b)
    return True


def test_validate_serve_answer_then_a_tampered_version_fails_and_the_first_keeps_serving(
    kube: Kubectl, ns: str, operator: subprocess.Popen[bytes], artifacts: tuple[str, Path]
) -> None:
    base, root = artifacts
    model = binary_op(root / "v1.onnx")
    digest = sha256(model)

    started = time.monotonic()
    kube.apply([model_version("adder-1", "1", f"{base}/v1.onnx", digest), model_deployment("1")], ns)

    mv = wait_for(lambda: mv_phase(kube, "adder-1", ns, "Ready"), timeout=60, interval=0.5, what="adder-1 Ready")
    validated_in = time.monotonic() - started
    status = mv["status"]
    assert status["artifact"]["digest"] == digest
    assert status["artifact"]["sizeBytes"] == model.stat().st_size
    assert [(t["name"], t["datatype"]) for t in status["signature"]["inputs"]] == [("A", "FP32"), ("B", "FP32")]
    assert [(t["name"], t["datatype"]) for t in status["signature"]["outputs"]] == [("OUT0", "FP32"), ("OUT1", "FP32")]
    assert status["loadSeconds"] >= 0
    assert condition(mv, "ArtifactVerified")["status"] == "True"
    # the validation Job really ran: its pod ran on local-0 and finished (the agent keeps a finished pod's object
    # until it is deleted); the operator reads the pod, so the Job's own status may follow a moment later
    jobs = kube.get("jobs", namespace=ns)["items"]
    assert len(jobs) == 1
    job = jobs[0]["metadata"]["name"]
    wait_for(lambda: kube.get("job", job, ns)["status"].get("succeeded") == 1, timeout=15, what=f"job {job} done")
    job_pods = kube.get("pods", namespace=ns, labels=f"job-name={job}")["items"]
    assert [p["spec"]["nodeName"] for p in job_pods] == ["local-0"]
    assert job_pods[0]["status"]["phase"] == "Succeeded"

    pod = wait_for(lambda: ready_model_pod(kube, ns, "1"), timeout=60, interval=0.5, what="the model pod Ready")
    assert pod["spec"]["nodeName"] == "local-0"
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.244.100.")
    assert answer(ip)
    first_answer = time.monotonic() - started
    print(f"kubectl apply -> MV Ready in {validated_in:.1f}s, -> first correct answer in {first_answer:.1f}s")

    # a second version whose bytes were changed after its digest was taken
    tampered = binary_op(root / "v2.onnx", op="Mul")
    pinned = sha256(tampered)
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    kube.apply([model_version("adder-2", "2", f"{base}/v2.onnx", pinned), model_deployment("2")], ns)

    mv = wait_for(lambda: mv_phase(kube, "adder-2", ns, "Failed"), timeout=60, interval=0.5, what="adder-2 Failed")
    verified = condition(mv, "ArtifactVerified")
    assert (verified["status"], verified["reason"]) == ("False", "DigestMismatch")
    assert condition(mv, "Ready")["reason"] == "DigestMismatch"

    def degraded() -> dict[str, Any] | None:
        md = kube.get("modeldeployment", "adder", ns)
        return md if md.get("status", {}).get("phase") == "Degraded" else None

    md = wait_for(degraded, timeout=30, interval=0.5, what="the ModelDeployment Degraded")
    assert "adder-2" in condition(md, "Degraded")["message"]
    # the first version still serves, from the same pod
    assert answer(ip)
    still = ready_model_pod(kube, ns, "1")
    assert still is not None
    assert still["metadata"]["uid"] == pod["metadata"]["uid"]
    assert ready_model_pod(kube, ns, "2") is None
