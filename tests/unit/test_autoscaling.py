"""spec.autoscaling: an HPA on the serving Deployment, whose replicas the operator then leaves out of its apply."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from modelyard_operator.api import ModelDeployment
from modelyard_operator.config import OperatorConfig
from modelyard_operator.reconcile import plan, plan_rollout
from modelyard_operator.render import ANNOTATION_AUTOSCALER, AUTOSCALING_METRICS, quantity

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
    assert rules[0] == "self.maxReplicas >= self.minReplicas"
    assert len(rules) == 3  # and a target for the custom metrics, none for cpu
    assert any("self.rollout.strategy != 'blueGreen'" in r["rule"] for r in spec["x-kubernetes-validations"])
    with pytest.raises(ValidationError):
        ModelDeployment.model_validate(model_deployment(autoscaling={"minReplicas": 0, "maxReplicas": 2}))


@pytest.mark.parametrize(
    ("metric", "target", "name", "value"),
    [
        ("inflight", 2, "modelyard_inference_inflight_requests", "2"),
        ("queueTime", 25.5, "modelyard_inference_queue_milliseconds", "25500m"),
        ("rps", 0.5, "modelyard_inference_requests_per_second", "500m"),
    ],
)
def test_a_serving_metric_renders_a_pods_metric_of_the_custom_metrics_api(
    metric: str, target: float, name: str, value: str
) -> None:
    scaling = {"minReplicas": 1, "maxReplicas": 4, "metric": metric, "target": target}
    hpa = by_kind(plan(model_deployment(autoscaling=scaling), [model_version()], [], CONFIG, NOW).apply)[
        "HorizontalPodAutoscaler"
    ]
    assert hpa["spec"]["metrics"] == [
        {"type": "Pods", "pods": {"metric": {"name": name}, "target": {"type": "AverageValue", "averageValue": value}}}
    ]
    assert "behavior" not in hpa["spec"]  # the HPA's own defaults unless asked


def test_scale_down_stabilization_reaches_the_hpa_behavior() -> None:
    scaling = {**SCALING, "scaleDownStabilizationSeconds": 15}
    hpa = by_kind(plan(model_deployment(autoscaling=scaling), [model_version()], [], CONFIG, NOW).apply)[
        "HorizontalPodAutoscaler"
    ]
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 15}}


def test_quantities_of_per_pod_targets() -> None:
    assert [quantity(v) for v in (1, 3.0, 0.25, 12.5)] == ["1", "3", "250m", "12500m"]


def test_the_charts_adapter_rules_serve_every_metric_the_operator_names() -> None:
    """The HPA asks the custom metrics API for AUTOSCALING_METRICS; the chart's prometheus-adapter rules must
    name exactly those (as:) from the server's series (docs/operator.md shows the same rules)."""
    import yaml

    from .test_crd import REPO

    values = yaml.safe_load((REPO / "charts" / "modelyard" / "values.yaml").read_text())
    rules = values["autoscaling"]["prometheusAdapter"]["rules"]
    assert sorted(r["name"]["as"] for r in rules) == sorted(AUTOSCALING_METRICS.values())
    for rule in rules:
        assert rule["seriesQuery"].startswith("modelyard_inference_")
        assert "<<.GroupBy>>" in rule["metricsQuery"]
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}


def test_the_status_carries_what_the_scale_subresource_reads() -> None:
    deps = [
        deployment("fraud-42", "42", replicas=3, available=3),
        deployment("fraud-41", "41", replicas=2, available=1),
    ]
    status = plan(model_deployment(), [model_version()], deps, CONFIG, NOW).status
    assert status is not None
    assert status.status["replicas"] == 4  # Ready pods of every version
    assert status.status["selector"] == "app.kubernetes.io/instance=fraud,app.kubernetes.io/name=modelyard-server"
    missing = plan(model_deployment(version="99"), [model_version()], deps, CONFIG, NOW).status
    assert missing is not None
    assert missing.status["replicas"] == 4  # also while the asked version is not found


@pytest.mark.parametrize(
    "scaling",
    [
        {"maxReplicas": 2, "metric": "bogus", "target": 1},
        {"maxReplicas": 2, "metric": "rps", "target": 0},
    ],
)
def test_a_bad_metric_spec_is_refused(scaling: dict) -> None:
    with pytest.raises(ValidationError):
        ModelDeployment.model_validate(model_deployment(autoscaling=scaling))


# --- a canary beside an autoscaled stable version ------------------------------------------------------------


def canary_md(status: dict) -> dict:
    body = model_deployment(version="42", autoscaling={"minReplicas": 2, "maxReplicas": 10, "metric": "rps",
                                                       "target": 5},
                            rollout={"strategy": "canary", "steps": [{"setWeight": 25}, {"pause": {}}]})  # fmt: skip
    body["status"] = status
    return body


IN_STEP = {"phase": "Progressing", "stableVersion": "41", "canaryVersion": "42",
           "weights": {"stable": 100, "canary": 0},
           "step": {"index": 0, "startedAt": "2026-11-24T12:00:00Z"}}  # fmt: skip
ROLLOUT_MVS = [model_version("fraud-41", version="41"), model_version("fraud-42", version="42")]
LATER = datetime(2026, 11, 24, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(("stable", "canary"), [(2, 1), (3, 1), (6, 2), (9, 3)])
def test_the_canary_takes_its_share_of_the_pods_the_hpa_gave_the_stable_version(stable: int, canary: int) -> None:
    deps = [deployment("fraud-41", "41", replicas=stable, available=stable), deployment("fraud-42", "42", replicas=1)]
    result = plan_rollout(canary_md(IN_STEP), ROLLOUT_MVS, deps, CONFIG, LATER, None)
    kinds = {(o["kind"], o["metadata"]["name"]): o for o in result.apply}
    assert "replicas" not in kinds[("Deployment", "fraud-41")]["spec"]  # the HPA owns the stable version's
    assert "replicas" not in kinds[("Deployment", "fraud-42")]["spec"]  # written by the scale patch instead
    assert result.scale == {"fraud-42": canary}  # 25 %: canary / (stable + canary) nearest 0.25
    hpa = kinds[("HorizontalPodAutoscaler", "fraud")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "fraud-41"


def test_at_the_promotion_the_hpa_moves_to_the_new_version_and_no_replicas_are_applied() -> None:
    promoted = {"phase": "Healthy", "stableVersion": "42", "weights": {"stable": 100, "canary": 0}}
    deps = [
        deployment("fraud-41", "41", replicas=4, available=4),
        deployment("fraud-42", "42", replicas=4, available=4),
    ]
    result = plan_rollout(canary_md(promoted), ROLLOUT_MVS, deps, CONFIG, LATER, None)
    kinds = {(o["kind"], o["metadata"]["name"]): o for o in result.apply}
    assert kinds[("HorizontalPodAutoscaler", "fraud")]["spec"]["scaleTargetRef"]["name"] == "fraud-42"
    assert "replicas" not in kinds[("Deployment", "fraud-42")]["spec"]
    assert result.scale == {}
    assert result.delete_deployments == ["fraud-41"]  # 4 Ready pods of the new version carry what the HPA gave it


def test_below_min_replicas_the_canary_counts_against_min_replicas() -> None:
    deps = [deployment("fraud-41", "41", replicas=1, available=1)]
    result = plan_rollout(canary_md(IN_STEP), ROLLOUT_MVS, deps, CONFIG, LATER, None)
    assert result.scale == {"fraud-42": 1}  # 1 beside minReplicas 2: 33 %, nearer 25 % than 2 (50 %)


def test_the_canary_step_waits_for_its_share_of_the_autoscaled_pods() -> None:
    """spec.replicas (2 here) is not used under an autoscaler: 25 % of 6 stable pods needs 2 Ready canary pods."""
    deps = [
        deployment("fraud-41", "41", replicas=6, available=6),
        deployment("fraud-42", "42", replicas=2, available=1),
    ]
    result = plan_rollout(canary_md(IN_STEP), ROLLOUT_MVS, deps, CONFIG, LATER, None)
    assert str(result.decision.reason) == "CanaryNotReady"  # type: ignore[union-attr]
    ready = [deployment("fraud-41", "41", replicas=6, available=6), deployment("fraud-42", "42", replicas=2)]
    advanced = plan_rollout(canary_md(IN_STEP), ROLLOUT_MVS, ready, CONFIG, LATER, None)
    assert str(advanced.decision.reason) != "CanaryNotReady"  # type: ignore[union-attr]
