"""The real operator against the real control plane: children, status, recovery, placement, GC."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ..conftest import Kubectl, wait_for

DIGEST = "sha256:" + "5f" * 32

pytestmark = pytest.mark.usefixtures("operator_process")


def mv(version: str = "1", model: str = "fraud", name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name or f"{model}-{version}"},
        "spec": {"model": model, "version": version,
                 "artifact": {"uri": f"https://models.example.com/{model}/{version}/model.onnx", "digest": DIGEST}},
    }  # fmt: skip


def md(name: str = "fraud", version: str = "1", replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": "fraud", "version": version, "replicas": replicas,
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}, **spec},
    }  # fmt: skip


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    if not obj:
        return None
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def pods_of(kubectl: Kubectl, namespace: str, md_name: str) -> list[dict[str, Any]]:
    found = kubectl.get("pods", namespace=namespace, labels=f"app.kubernetes.io/instance={md_name}")
    return list(found["items"])


def scheduled_pods(kubectl: Kubectl, namespace: str, md_name: str, count: int) -> list[dict[str, Any]]:
    """Wait until ``count`` pods of the deployment exist and all are bound to a node."""

    def bound() -> list[dict[str, Any]] | None:
        pods = pods_of(kubectl, namespace, md_name)
        return pods if len(pods) == count and all(p["spec"].get("nodeName") for p in pods) else None

    result: list[dict[str, Any]] = wait_for(bound, timeout=60, what=f"{count} scheduled pods")
    return result


def test_children_created_within_seconds_and_ready(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv(), namespace)
    started = time.monotonic()
    kubectl.apply(md(), namespace)
    wait_for(lambda: kubectl.get("deployment", "fraud-1", namespace), timeout=10, what="Deployment fraud-1")
    elapsed = time.monotonic() - started
    assert elapsed < 10
    for svc in ("fraud", "fraud-stable"):
        service = kubectl.get("service", svc, namespace)
        assert service is not None, svc
        owner = service["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", "fraud", True)

    ready = wait_for(
        lambda: (c := condition(kubectl.get("md", "fraud", namespace), "Ready")) and c["status"] == "True" and c,
        timeout=60,
        what="Ready=True",
    )
    assert ready["reason"] == "Available"
    obj = kubectl.get("md", "fraud", namespace)
    status = obj["status"]
    assert status["phase"] == "Healthy"
    assert status["stableVersion"] == "1"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["endpoints"]["http"] == f"http://fraud.{namespace}.svc.cluster.local:8080"
    assert condition(obj, "Degraded")["status"] == "False"  # type: ignore[index]
    pods = pods_of(kubectl, namespace, "fraud")
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["automountServiceAccountToken"] is False
    # kubectl wait understands the kstatus conditions
    kubectl.run("wait", "--for=condition=Ready", "md/fraud", "-n", namespace, "--timeout=5s")


def test_model_version_is_labelled_and_validated(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv("7"), namespace)

    def validated() -> dict[str, Any] | None:
        obj = kubectl.get("mv", "fraud-7", namespace)
        return obj if obj.get("status", {}).get("phase") == "Ready" else None

    obj = wait_for(validated, timeout=30, what="phase Ready")
    verified = condition(obj, "ArtifactVerified")
    assert verified is not None
    assert (verified["status"], verified["reason"]) == ("True", "Verified")
    listed = kubectl.get("mv", namespace=namespace, labels="modelyard.dev/model=fraud,modelyard.dev/version=7")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["fraud-7"]


def test_missing_model_version_degrades_then_recovers(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(md(version="3"), namespace)
    degraded = wait_for(
        lambda: (c := condition(kubectl.get("md", "fraud", namespace), "Degraded")) and c["status"] == "True" and c,
        timeout=15,
        what="Degraded=True",
    )
    assert degraded["reason"] == "ModelVersionNotFound"
    assert kubectl.get("md", "fraud", namespace)["status"]["phase"] == "Degraded"
    assert kubectl.get("deployments", namespace=namespace)["items"] == []
    events = kubectl.get("events", namespace=namespace)["items"]
    assert any(e["reason"] == "ModelVersionNotFound" and e["type"] == "Warning" for e in events)

    # A version of another model with the same version string is a mismatch, not a match.
    kubectl.apply(mv("3", model="churn"), namespace)
    wait_for(
        lambda: (
            (c := condition(kubectl.get("md", "fraud", namespace), "Degraded"))
            and c["reason"] == "ModelVersionMismatch"
        ),
        timeout=15,
        what="ModelVersionMismatch",
    )

    kubectl.apply(mv("3"), namespace)
    wait_for(
        lambda: (c := condition(kubectl.get("md", "fraud", namespace), "Ready")) and c["status"] == "True",
        timeout=30,
        what="recovery to Ready=True once the ModelVersion exists",
    )
    assert condition(kubectl.get("md", "fraud", namespace), "Degraded")["status"] == "False"  # type: ignore[index]


def test_changing_version_replaces_the_deployment(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply([mv("1"), mv("2")], namespace)
    kubectl.apply(md(version="1"), namespace)
    wait_for(
        lambda: kubectl.get("md", "fraud", namespace).get("status", {}).get("stableVersion") == "1",
        timeout=60,
        what="v1",
    )
    kubectl.apply(md(version="2"), namespace)
    wait_for(
        lambda: kubectl.get("md", "fraud", namespace)["status"].get("stableVersion") == "2",
        timeout=60,
        what="v2 stable",
    )
    wait_for(lambda: kubectl.get("deployment", "fraud-1", namespace) is None, timeout=30, what="v1 Deployment removed")
    names = [d["metadata"]["name"] for d in kubectl.get("deployments", namespace=namespace)["items"]]
    assert names == ["fraud-2"]
    stable_svc = kubectl.get("service", "fraud-stable", namespace)
    assert stable_svc["spec"]["selector"]["modelyard.dev/version"] == "2"


def test_deleting_the_model_deployment_collects_its_children(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply([mv(), md()], namespace)
    wait_for(lambda: kubectl.get("deployment", "fraud-1", namespace), timeout=15, what="Deployment")
    kubectl.run("delete", "md", "fraud", "-n", namespace, "--wait=true", "--timeout=30s")

    def collected() -> bool:
        deployments = kubectl.get("deployments", namespace=namespace)["items"]
        services = kubectl.get("services", namespace=namespace)["items"]
        return not deployments and not services and not pods_of(kubectl, namespace, "fraud")

    wait_for(collected, timeout=60, what="garbage collection of Deployment, Services and Pods")
    assert kubectl.get("mv", "fraud-1", namespace) is not None  # versions outlive deployments


def test_gpu_requests_land_only_on_gpu_nodes(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv(), namespace)
    gpu = md(replicas=4, resources={"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": 2}})
    kubectl.apply(gpu, namespace)
    pods = scheduled_pods(kubectl, namespace, "fraud", 4)
    assert {p["spec"]["nodeName"] for p in pods} <= {"gpu-0", "gpu-1"}


def test_cpu_pods_never_land_on_the_tainted_edge_node(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv(), namespace)
    kubectl.apply(md(replicas=12), namespace)
    pods = scheduled_pods(kubectl, namespace, "fraud", 12)
    assert "edge-0" not in {p["spec"]["nodeName"] for p in pods}


def test_edge_node_needs_a_toleration(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv(), namespace)
    arm = {"nodeSelector": {"kubernetes.io/arch": "arm64"}}
    kubectl.apply(md(name="edge", replicas=1, placement=arm), namespace)

    def unschedulable() -> bool:
        pods = pods_of(kubectl, namespace, "edge")
        return bool(pods) and any(
            c["type"] == "PodScheduled" and c["status"] == "False" and c["reason"] == "Unschedulable"
            for c in pods[0]["status"].get("conditions", [])
        )

    wait_for(unschedulable, timeout=30, what="the untolerating pod to be Unschedulable")
    assert not pods_of(kubectl, namespace, "edge")[0]["spec"].get("nodeName")
    tolerated = {
        **arm,
        "tolerations": [{"key": "modelyard.dev/edge", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    }
    kubectl.apply(md(name="edge2", replicas=1, placement=tolerated), namespace)
    pods = wait_for(
        lambda: (p := pods_of(kubectl, namespace, "edge2")) and p[0]["spec"].get("nodeName") and p,
        timeout=30,
        what="tolerating pod scheduled",
    )
    assert pods[0]["spec"]["nodeName"] == "edge-0"


def test_user_edits_of_owned_fields_are_restored(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply([mv(), md()], namespace)
    wait_for(lambda: kubectl.get("deployment", "fraud-1", namespace), timeout=15, what="Deployment")
    kubectl.run("scale", "deployment", "fraud-1", "-n", namespace, "--replicas=5")
    kubectl.run("label", "service", "fraud", "-n", namespace, "modelyard.dev/model=hijacked", "--overwrite")
    wait_for(
        lambda: kubectl.get("deployment", "fraud-1", namespace)["spec"]["replicas"] == 2,
        timeout=15,
        what="replicas restored to the spec's 2",
    )
    wait_for(
        lambda: kubectl.get("service", "fraud", namespace)["metadata"]["labels"]["modelyard.dev/model"] == "fraud",
        timeout=45,
        what="Service label restored",
    )


def test_rendered_pods_pass_restricted_pod_security(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kubectl.apply([mv(), md()], namespace)
    deployment = wait_for(lambda: kubectl.get("deployment", "fraud-1", namespace), timeout=15, what="Deployment")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "restricted-check", "namespace": namespace},
        "spec": deployment["spec"]["template"]["spec"],
    }
    proc = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
    assert proc.returncode == 0, proc.stderr
    assert "violate" not in proc.stderr
    # and the real pods, created by the ReplicaSet controller under enforcement, exist
    wait_for(lambda: len(pods_of(kubectl, namespace, "fraud")) == 2, timeout=30, what="2 pods admitted")
    # a pod that breaks the profile is refused, so the check above can fail
    bad = json.loads(json.dumps(pod))
    bad["metadata"]["name"] = "privileged-check"
    bad["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    proc = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert "allowPrivilegeEscalation" in proc.stderr
