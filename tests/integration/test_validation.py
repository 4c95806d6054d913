"""ModelVersion validation on the real control plane: the operator's Job, the result read back from the pod's
termination message, and ModelDeployments that wait for a validated version.

kwok runs no processes, so its stage ``hack/kwok/validation-complete.yaml`` answers for the validator with the
same JSON the real one writes (URIs containing "tampered" or "unloadable" fail). The validator itself runs as a
process in tests/integration/test_loader_validate.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import Kubectl, wait_for
from .test_operator import DIGEST, condition, md

pytestmark = pytest.mark.usefixtures("operator_process")


def mv(version: str, uri_name: str = "model") -> dict[str, Any]:
    return {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"fraud-{version}"},
        "spec": {"model": "fraud", "version": version,
                 "artifact": {"uri": f"https://models.example.com/fraud/{version}/{uri_name}.onnx", "digest": DIGEST}},
    }  # fmt: skip


def settled(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = kubectl.get("mv", name, namespace=namespace)
        return obj if obj.get("status", {}).get("phase") in ("Ready", "Failed") else None

    result: dict[str, Any] = wait_for(done, timeout=60, what=f"ModelVersion {name} validated")
    return result


def test_a_good_version_is_validated_by_a_job_and_records_what_was_found(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv("1"), namespace)
    obj = settled(kubectl, namespace, "fraud-1")
    status = obj["status"]
    assert status["phase"] == "Ready"
    assert status["artifact"]["digest"] == DIGEST
    assert status["signature"]["inputs"] == [{"name": "A", "datatype": "FP32", "shape": [-1, 4]}]
    assert status["loadSeconds"] == 0.01
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert {t: condition(obj, t)["status"] for t in ("ArtifactVerified", "Validated", "Ready")} == dict.fromkeys(
        ("ArtifactVerified", "Validated", "Ready"), "True"
    )
    job = kubectl.get("job", "fraud-1-validate", namespace=namespace)
    assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["containers"][0]["args"][:3] == ["validate", "--uri", obj["spec"]["artifact"]["uri"]]
    events = wait_for(
        lambda: [e for e in kubectl.get("events", namespace=namespace)["items"]
                 if e["involvedObject"]["name"] == "fraud-1" and e["reason"] == "Validated"],
        what="a Validated event",
    )  # fmt: skip
    assert events[0]["type"] == "Normal"


@pytest.mark.parametrize(
    ("uri_name", "reason", "verified"),
    [("tampered", "DigestMismatch", "False"), ("unloadable", "ModelLoadFailed", "True")],
)
def test_a_failed_validation_blocks_deployment_with_the_reason(
    kubectl: Kubectl, namespace: str, uri_name: str, reason: str, verified: str
) -> None:
    kubectl.apply(mv("2", uri_name), namespace)
    kubectl.apply(md(version="2"), namespace)
    obj = settled(kubectl, namespace, "fraud-2")
    assert obj["status"]["phase"] == "Failed"
    ready = condition(obj, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert condition(obj, "ArtifactVerified")["status"] == verified

    def degraded() -> dict[str, Any] | None:
        found = condition(kubectl.get("md", "fraud", namespace=namespace), "Degraded")
        return found if found and found["status"] == "True" else None

    found = wait_for(degraded, timeout=30, what="ModelDeployment degraded")
    assert found["reason"] == "ModelVersionFailed"
    assert reason in found["message"]
    assert kubectl.get("deployments", namespace=namespace)["items"] == []  # never served


def test_a_deployment_waits_for_validation_then_serves(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(md(version="3", replicas=1), namespace)
    kubectl.apply(mv("3"), namespace)
    settled(kubectl, namespace, "fraud-3")

    def ready() -> dict[str, Any] | None:
        obj = kubectl.get("md", "fraud", namespace=namespace)
        found = condition(obj, "Ready")
        return obj if found and found["status"] == "True" else None

    obj = wait_for(ready, timeout=60, what="ModelDeployment ready")
    assert obj["status"]["stableVersion"] == "3"
    mv_obj = kubectl.get("mv", "fraud-3", namespace=namespace)
    deployment = kubectl.get("deployments", namespace=namespace)["items"][0]
    created = deployment["metadata"]["creationTimestamp"]
    validated = condition(mv_obj, "Validated")
    assert validated is not None
    assert created >= validated["lastTransitionTime"]  # the Deployment came after the validation


def secret(name: str, *, opted_in: bool) -> dict[str, Any]:
    labels = {"modelyard.dev/artifact-credentials": "true"} if opted_in else {"team": "a"}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels},
            "stringData": {"token": "never-read-by-the-operator"}}  # fmt: skip


def with_credentials(obj: dict[str, Any], secret_name: str) -> dict[str, Any]:
    obj["spec"]["artifact"]["credentialsSecret"] = secret_name
    return obj


def test_a_credentials_secret_without_the_opt_in_label_is_never_mounted(kubectl: Kubectl, namespace: str) -> None:
    """The Secret exists but does not carry modelyard.dev/artifact-credentials=true: the version fails with the
    reason, no Job (and no model pod) mounts it, and the ModelDeployment is Degraded saying why."""
    kubectl.apply(secret("team-db-password", opted_in=False), namespace)
    kubectl.apply(with_credentials(mv("5"), "team-db-password"), namespace)
    kubectl.apply(md(version="5"), namespace)
    obj = settled(kubectl, namespace, "fraud-5")
    assert obj["status"]["phase"] == "Failed"
    ready = condition(obj, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "CredentialsSecretNotAllowed")
    assert "modelyard.dev/artifact-credentials" in ready["message"]

    def degraded() -> dict[str, Any] | None:
        found = condition(kubectl.get("md", "fraud", namespace=namespace), "Degraded")
        return found if found and found["status"] == "True" else None

    found = wait_for(degraded, timeout=30, what="ModelDeployment degraded")
    assert "CredentialsSecretNotAllowed" in found["message"]
    assert kubectl.get("jobs", namespace=namespace)["items"] == []
    assert kubectl.get("deployments", namespace=namespace)["items"] == []


def test_an_opted_in_secret_is_mounted_into_the_validation_job(kubectl: Kubectl, namespace: str) -> None:
    """Labeled (here: created after the ModelVersion, which waits for it), the Secret is mounted read-only into the
    validation Job's loader, and the version is validated."""
    kubectl.apply(with_credentials(mv("6"), "store-token"), namespace)
    kubectl.apply(secret("store-token", opted_in=True), namespace)
    obj = settled(kubectl, namespace, "fraud-6")
    assert obj["status"]["phase"] == "Ready"
    pod = kubectl.get("job", "fraud-6-validate", namespace=namespace)["spec"]["template"]["spec"]
    assert {"name": "credentials", "secret": {"secretName": "store-token", "defaultMode": 420}} in pod["volumes"]
    loader = pod["containers"][0]
    assert {"name": "credentials", "mountPath": "/var/run/secrets/modelyard/credentials", "readOnly": True} in loader[
        "volumeMounts"
    ]


def test_a_pvc_artifact_mounts_its_claim_read_only_into_the_validation_job(kubectl: Kubectl, namespace: str) -> None:
    """The claim (bound to a local PersistentVolume, so the pod can be scheduled) reaches the Job read-only."""
    pv_name = f"model-store-{namespace}"
    kubectl.apply(
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"], "storageClassName": "",
                  "hostPath": {"path": "/tmp/modelyard-test-model-store"},
                  "claimRef": {"namespace": namespace, "name": "model-store"}}}
    )  # fmt: skip
    try:
        kubectl.apply(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "model-store"},
             "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv_name,
                      "resources": {"requests": {"storage": "1Gi"}}}},
            namespace,
        )  # fmt: skip
        _pvc_job(kubectl, namespace)
    finally:
        kubectl.run("delete", "pv", pv_name, "--wait=false", check=False)


def _pvc_job(kubectl: Kubectl, namespace: str) -> None:
    version = mv("8")
    version["spec"]["artifact"]["uri"] = "pvc://model-store/fraud/8/model.onnx"
    kubectl.apply(version, namespace)
    obj = settled(kubectl, namespace, "fraud-8")
    assert obj["status"]["phase"] == "Ready"
    pod = kubectl.get("job", "fraud-8-validate", namespace=namespace)["spec"]["template"]["spec"]
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"name": "pvc-0", "persistentVolumeClaim": {"claimName": "model-store", "readOnly": True}}]
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "pvc-0"]
    assert mounts == [{"name": "pvc-0", "mountPath": "/mnt/pvc/model-store", "readOnly": True}]
