"""GitOps health of ModelDeployments and ModelVersions read from the real API server, as the real readers compute
it: kstatus (sigs.k8s.io/cli-utils, what Flux and kpt use) through hack/kstatus-check, and Argo CD's Lua health
check (examples/argocd/health.lua) in Lua 5.1. Ready is Current/Healthy; rolling out is InProgress/Progressing; a
paused rollout is InProgress/Suspended; failed validation and a rolled-back rollout are Failed/Degraded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..conftest import Kubectl, wait_for
from ..support.gitops import argocd_health, kstatus, kstatus_binary
from .test_operator import condition, md, mv, pods_of
from .test_rollout import rollout, stable_v1, status_of
from .test_validation import mv as validated_mv

pytestmark = pytest.mark.usefixtures("operator_process")


@pytest.fixture(scope="module")
def checker() -> Path:
    return kstatus_binary()


def health(checker: Path, obj: dict[str, Any]) -> tuple[str, str]:
    """(kstatus status, Argo CD health status) of one object as read from the API server."""
    [verdict] = kstatus(checker, [obj])
    return verdict["status"], argocd_health(obj)[0]


def true_condition(kubectl: Kubectl, kind: str, name: str, namespace: str, type_: str) -> dict[str, Any] | None:
    obj = kubectl.get(kind, name, namespace)
    found = condition(obj, type_)
    return obj if found is not None and found["status"] == "True" else None


def test_ready_objects_are_current_and_healthy(kubectl: Kubectl, namespace: str, checker: Path) -> None:
    kubectl.apply([mv("1"), md(version="1", replicas=1)], namespace)
    ready = wait_for(lambda: true_condition(kubectl, "md", "fraud", namespace, "Ready"), timeout=60, what="Ready")
    version = kubectl.get("mv", "fraud-1", namespace)
    assert version["status"]["observedGeneration"] == version["metadata"]["generation"]
    assert ready["status"]["observedGeneration"] == ready["metadata"]["generation"]
    assert health(checker, ready) == ("Current", "Healthy")
    assert health(checker, version) == ("Current", "Healthy")
    assert [v["status"] for v in kstatus(checker, kubectl.get("md,mv", namespace=namespace)["items"])] == [
        "Current",
        "Current",
    ]


def test_pods_that_never_get_ready_are_in_progress(kubectl: Kubectl, namespace: str, checker: Path) -> None:
    nowhere = {"nodeSelector": {"modelyard.dev/test-node": "none"}}
    kubectl.apply([mv("1"), md(version="1", replicas=1, placement=nowhere)], namespace)

    def deploying() -> dict[str, Any] | None:  # PendingValidation comes first, while the version is validated
        obj = true_condition(kubectl, "md", "fraud", namespace, "Reconciling")
        return obj if obj and condition(obj, "Reconciling")["reason"] == "Deploying" else None  # type: ignore[index]

    rolling = wait_for(deploying, timeout=60, what="Reconciling with reason Deploying")
    wait_for(lambda: pods_of(kubectl, namespace, "fraud"), timeout=30, what="the pod that cannot be scheduled")
    assert condition(rolling, "Stalled")["status"] == "False"  # type: ignore[index]
    assert health(checker, rolling) == ("InProgress", "Progressing")


def test_failed_validation_is_failed_for_the_version_and_its_deployment(
    kubectl: Kubectl, namespace: str, checker: Path
) -> None:
    kubectl.apply([validated_mv("2", "unloadable"), md(version="2")], namespace)
    version = wait_for(
        lambda: true_condition(kubectl, "mv", "fraud-2", namespace, "Stalled"), timeout=60, what="Stalled version"
    )
    assert version["status"]["phase"] == "Failed"
    assert condition(version, "Stalled")["reason"] == "ModelLoadFailed"  # type: ignore[index]
    assert health(checker, version) == ("Failed", "Degraded")
    deployment = wait_for(
        lambda: true_condition(kubectl, "md", "fraud", namespace, "Stalled"), timeout=60, what="Stalled deployment"
    )
    assert condition(deployment, "Stalled")["reason"] == "ModelVersionFailed"  # type: ignore[index]
    assert health(checker, deployment) == ("Failed", "Degraded")


def test_a_rollout_is_in_progress_while_paused_and_failed_once_rolled_back(
    kubectl: Kubectl, namespace: str, checker: Path
) -> None:
    spec = {"rollout": rollout({"setWeight": 50}, {"pause": {}}, {"setWeight": 100})}
    stable_v1(kubectl, namespace, md(version="1", **spec))
    kubectl.apply(md(version="2", **spec), namespace)
    paused = wait_for(lambda: status_of(kubectl, namespace).get("phase") == "Paused", timeout=60, what="Paused")
    assert paused
    obj = kubectl.get("md", "fraud", namespace)
    assert condition(obj, "Reconciling")["status"] == "True"  # type: ignore[index]
    assert health(checker, obj) == ("InProgress", "Suspended")

    abort = {"rollout": {**spec["rollout"], "action": {"type": "abort", "nonce": "g1"}}}
    kubectl.apply(md(version="2", **abort), namespace)
    wait_for(lambda: status_of(kubectl, namespace).get("phase") == "RolledBack", timeout=60, what="RolledBack")
    rolled_back = kubectl.get("md", "fraud", namespace)
    assert condition(rolled_back, "Stalled")["reason"] == "RolledBack"  # type: ignore[index]
    assert rolled_back["status"]["observedGeneration"] == rolled_back["metadata"]["generation"]
    assert health(checker, rolled_back) == ("Failed", "Degraded")
