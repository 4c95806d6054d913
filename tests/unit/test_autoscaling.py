"""spec.autoscaling: an HPA on the serving Deployment, whose replicas the operator then leaves out of its apply."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelyard_operator.api import ModelDeployment
from modelyard_operator.config import OperatorConfig
from modelyard_operator.reconcile import plan
from modelyard_operator.render import ANNOTATION_AUTOSCALER

from .samples import deployment, model_deployment, model_version

NOW = "2026-11-24T12:00:00Z"
CONFIG = OperatorConfig()
SCALING = {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilization": 70}


def by_kind(objs: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objs}


def test_autoscaling_renders_an_hpa_and_a_deployment_without_replicas() -> None:
    result = plan(model_deployment(autoscaling=SCALING), [model_version()], [], CONFIG, NOW)
    kinds = by_kind(result.apply)
    dep, hpa = kinds["Deployment"], kinds["HorizontalPodAutoscaler"]
    assert "replicas" not in dep["spec"]  # server-side apply then never takes the field back from the HPA
    assert dep["metadata"]["annotations"] == {ANNOTATION_AUTOSCALER: "fraud"}
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["name"] == "fraud"
    assert hpa["metadata"]["ownerReferences"][0]["uid"] == "uid-md"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud-42"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    metric = hpa["spec"]["metrics"][0]
    assert metric == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }
    assert result.delete_autoscaler is False


def test_without_autoscaling_the_deployment_has_spec_replicas_and_no_hpa() -> None:
    result = plan(model_deployment(), [model_version()], [], CONFIG, NOW)
    kinds = by_kind(result.apply)
    assert "HorizontalPodAutoscaler" not in kinds
    assert kinds["Deployment"]["spec"]["replicas"] == 2
    assert "annotations" not in kinds["Deployment"]["metadata"]


def test_turning_autoscaling_off_deletes_the_hpa() -> None:
    scaled = deployment("fraud-42", "42", replicas=5, available=5)
    scaled["metadata"]["annotations"] = {ANNOTATION_AUTOSCALER: "fraud"}
    assert plan(model_deployment(), [model_version()], [scaled], CONFIG, NOW).delete_autoscaler is True
    plain = deployment("fraud-42", "42")
    assert plan(model_deployment(), [model_version()], [plain], CONFIG, NOW).delete_autoscaler is False


def test_an_autoscaled_version_replaces_the_old_one_at_min_replicas() -> None:
    md = model_deployment(version="43", autoscaling=SCALING)
    mvs = [model_version(), model_version("fraud-43", version="43")]
    old = deployment("fraud-42", "42", replicas=5, available=5)
    one = plan(md, mvs, [old, deployment("fraud-43", "43", replicas=1, available=1)], CONFIG, NOW)
    assert one.delete_deployments == []  # below minReplicas: the HPA has not scaled it up yet
    assert by_kind(one.apply)["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "fraud-43"
    two = plan(md, mvs, [old, deployment("fraud-43", "43", replicas=2, available=2)], CONFIG, NOW)
    assert two.delete_deployments == ["fraud-42"]
    assert two.status is not None
    assert two.status.status["phase"] == "Healthy"


def test_max_below_min_is_refused_by_the_schema() -> None:
    from modelyard_operator.api.crd import all_crds

    crd = next(c for c in all_crds() if c["spec"]["names"]["kind"] == "ModelDeployment")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [r["rule"] for r in spec["properties"]["autoscaling"]["x-kubernetes-validations"]]
    assert rules == ["self.maxReplicas >= self.minReplicas"]
    assert any("self.rollout.strategy == 'immediate'" in r["rule"] for r in spec["x-kubernetes-validations"])
    with pytest.raises(ValidationError):
        ModelDeployment.model_validate(model_deployment(autoscaling={"minReplicas": 0, "maxReplicas": 2}))
