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
