"""Validation results only from the operator's own Job (issue: a pod with the right labels forged a result).

The operator here places validation pods on a node that does not exist, so its own Job never runs; a look-alike
pod with the validation labels runs on a kwok node instead, where hack/kwok/validation-complete.yaml gives it a
passing result in its termination message. The ModelVersion must stay Validating.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Kubectl, dev_cluster, running_operator, wait_for
from .test_operator import DIGEST

NOWHERE = json.dumps({"nodeSelector": {"modelyard.dev/nowhere": "true"}})


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    folder = tmp_path_factory.mktemp("trust")
    with (
        dev_cluster(folder / "cluster") as cl,
        running_operator(cl.kubeconfig, folder / "operator.log", f"--validation-placement={NOWHERE}"),
    ):
        yield Kubectl(cl.bin / "kubectl", cl.kubeconfig)


def forged_pod(mv_name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{mv_name}-forged", "labels": {
            "modelyard.dev/validates": mv_name, "app.kubernetes.io/managed-by": "modelyard"}},
        "spec": {
            "restartPolicy": "Never", "nodeSelector": {"type": "kwok"},
            "containers": [{"name": "validate", "image": "attacker.example/validator:1",
                            "command": ["modelyard-loader"], "args": ["validate", "--uri", uri, "--digest", DIGEST]}],
        },
    }  # fmt: skip


def test_a_look_alike_pod_cannot_validate_a_model_version(kubectl: Kubectl, tmp_path: Path) -> None:
    ns = "trust"
    kubectl.run("create", "namespace", ns)
    wait_for(lambda: kubectl.get("serviceaccount", "default", ns), what="default service account")
    uri = "https://models.example.com/fraud/7/model.onnx"
    kubectl.apply({
        "apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "fraud-7"},
        "spec": {"model": "fraud", "version": "7", "artifact": {"uri": uri, "digest": DIGEST}},
    }, ns)  # fmt: skip
    wait_for(lambda: kubectl.get("job", "fraud-7-validate", ns), what="the operator's validation Job")
    wait_for(lambda: kubectl.get("mv", "fraud-7", ns).get("status", {}).get("phase") == "Validating", what="Validating")
    kubectl.apply(forged_pod("fraud-7", uri), ns)
    forged = wait_for(
        lambda: (p := kubectl.get("pod", "fraud-7-forged", ns)).get("status", {}).get("phase") == "Succeeded" and p,
        timeout=30,
        what="the look-alike pod finished with a passing result",
    )
    message = forged["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert json.loads(message)["ok"] is True  # the forgery is complete: a passing result, the right labels

    time.sleep(15)  # past the validation timer's 10 s safety net, which also looks for results
    mv = kubectl.get("mv", "fraud-7", ns)
    print(f"after 15 s with a forged passing result: phase {mv['status']['phase']}")
    assert mv["status"]["phase"] == "Validating"
    assert "validationJob" not in mv["status"]
    # the operator's own Job is still waiting for a node: the only result that may count has not come
    job_pods = kubectl.get("pods", namespace=ns, labels="batch.kubernetes.io/job-name=fraud-7-validate")["items"]
    assert [p["status"]["phase"] for p in job_pods] == ["Pending"]
