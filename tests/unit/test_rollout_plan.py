"""The rollout plan (pure): objects, deletions and status for a decision; the Prometheus answer parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelyard_operator.config import OperatorConfig
from modelyard_operator.prometheus import PrometheusError, parse_response
from modelyard_operator.reconcile import RolloutPlan, plan_rollout, rollout_active
from modelyard_operator.rollout.decision import MetricObservation
from modelyard_operator.rollout.measurement import Measurement
from modelyard_operator.status import status_differs

from .samples import deployment, model_deployment, model_version

NOW = datetime(2026, 11, 24, 12, 0, 30, tzinfo=UTC)
CONFIG = OperatorConfig()
ERRORS = {"name": "errors", "template": "errorRate", "max": 0.05, "critical": True}
ROLLOUT = {"strategy": "canary", "steps": [{"setWeight": 50}, {"pause": {}}],
           "analysis": {"interval": "10s", "evidence": {"minRequests": 10}, "metrics": [ERRORS]}}  # fmt: skip


def md(version: str = "42", status: dict[str, Any] | None = None, **rollout: Any) -> dict[str, Any]:
    body = model_deployment(version=version, replicas=4, rollout={**ROLLOUT, **rollout})
    body["status"] = status or {"phase": "Healthy", "stableVersion": "41", "weights": {"stable": 100, "canary": 0}}
    return body


MVS = [model_version("fraud-41", version="41"), model_version("fraud-42", version="42")]


def in_step(index: int, weight: int) -> dict[str, Any]:
    return {"phase": "Progressing", "stableVersion": "41", "canaryVersion": "42",
            "weights": {"stable": 100 - weight, "canary": weight},
            "step": {"index": index, "startedAt": "2026-11-24T12:00:00Z"}}  # fmt: skip


def replicas(result: RolloutPlan) -> dict[str, int]:
    return {o["metadata"]["name"]: o["spec"]["replicas"] for o in result.apply if o["kind"] == "Deployment"}


def main_selector(result: RolloutPlan) -> dict[str, str]:
    return next(
        o["spec"]["selector"] for o in result.apply if o["kind"] == "Service" and o["metadata"]["name"] == "fraud"
    )


def test_a_canary_with_a_weight_shares_the_main_service_by_pods() -> None:
    deployments = [deployment("fraud-41", "41", replicas=2, available=2), deployment("fraud-42", "42", replicas=2,
                                                                                      available=2)]  # fmt: skip
    result = plan_rollout(md(status=in_step(1, 50)), MVS, deployments, CONFIG, NOW, None)
    assert "modelyard.dev/version" not in main_selector(result)


def test_a_blue_green_copy_is_kept_out_of_the_main_service_until_the_switch() -> None:
    blue_green = {"strategy": "blueGreen", "blueGreen": {"analyze": {"minDuration": "1m"}}}
    deployments = [deployment("fraud-41", "41", replicas=4, available=4), deployment("fraud-42", "42", replicas=4,
                                                                                      available=4)]  # fmt: skip
    status = {**in_step(1, 0), "phase": "Progressing"}
    result = plan_rollout(md(status=status, **blue_green), MVS, deployments, CONFIG, NOW, None)
    assert replicas(result) == {"fraud-41": 4, "fraud-42": 4}
    assert main_selector(result)["modelyard.dev/version"] == "41"
    services = {o["metadata"]["name"]: o["spec"]["selector"] for o in result.apply if o["kind"] == "Service"}
    assert services["fraud-canary"]["modelyard.dev/version"] == "42"  # previews reach it there


def conditions(result: RolloutPlan) -> dict[str, tuple[str, str]]:
    assert result.status is not None
    return {c["type"]: (c["status"], c["reason"]) for c in result.status.status["conditions"]}


def test_start_creates_the_canary_beside_the_stable() -> None:
    result = plan_rollout(md(), MVS, [deployment("fraud-41", "41", replicas=4, available=4)], CONFIG, NOW, None)
    assert result.decision is not None
    assert str(result.decision.kind) == "Start"
    # The first step (setWeight 50) gets its pods at once; its traffic waits until they are Ready.
    assert replicas(result) == {"fraud-41": 4, "fraud-42": 4}
    assert result.status is not None
    assert result.status.status["weights"] == {"stable": 100, "canary": 0}
    services = {o["metadata"]["name"]: o["spec"]["selector"] for o in result.apply if o["kind"] == "Service"}
    assert services["fraud-canary"]["modelyard.dev/version"] == "42"
    assert services["fraud-stable"]["modelyard.dev/version"] == "41"
    assert services["fraud"]["modelyard.dev/version"] == "41"  # users stay off the canary until it has a weight
    main = next(o for o in result.apply if o["kind"] == "Service" and o["metadata"]["name"] == "fraud")
    assert "modelyard.dev/version" not in main["metadata"]["labels"]
    assert result.delete_deployments == []
    assert result.status is not None
    assert result.status.events[0][1] == "RolloutStart"
    assert conditions(result)["Progressing"] == ("True", "RolloutStarted")


def test_set_weight_provisions_canary_pods_before_moving_traffic() -> None:
    deployments = [deployment("fraud-41", "41", replicas=4, available=4), deployment("fraud-42", "42", replicas=0,
                                                                                      available=0)]  # fmt: skip
    result = plan_rollout(md(status=in_step(0, 0)), MVS, deployments, CONFIG, NOW, None)
    assert str(result.decision.reason) == "CanaryNotReady"  # type: ignore[union-attr]
    assert replicas(result) == {"fraud-41": 4, "fraud-42": 4}  # 50 %: as many pods as the stable version
    assert result.status is not None
    assert result.status.status["weights"] == {"stable": 100, "canary": 0}


def test_ready_pods_a_scale_down_is_taking_away_are_no_capacity_and_carry_no_traffic() -> None:
    """The canary's Deployment scaled to 0 (its controller observed that) while its pod is still Ready for a moment:
    that pod is neither a reason to move the weight nor part of the weight in effect (the CI failure of stop 26)."""
    canary = deployment("fraud-42", "42", replicas=0, available=0, generation=2)
    canary["status"].update(readyReplicas=1, availableReplicas=1, replicas=1)
    deployments = [deployment("fraud-41", "41", replicas=4, available=4), canary]
    result = plan_rollout(md(status=in_step(0, 0)), MVS, deployments, CONFIG, NOW, None)
    assert str(result.decision.reason) == "CanaryNotReady"  # type: ignore[union-attr]
    assert result.status is not None
    assert result.status.status["weights"] == {"stable": 100, "canary": 0}
    paused = plan_rollout(md(status={**in_step(1, 50), "requestedWeight": 50}), MVS, deployments, CONFIG, NOW, None)
    assert paused.status is not None
    assert paused.status.status["weights"] == {"stable": 100, "canary": 0}  # 0 of 4 serving pods are the canary's


def test_rollback_keeps_the_canary_until_the_stable_is_back_and_clears_status_fields() -> None:
    deployments = [deployment("fraud-41", "41", replicas=2, available=2), deployment("fraud-42", "42", replicas=2,
                                                                                      available=2)]  # fmt: skip
    failing = Measurement(500, 1.0, (MetricObservation("errors", 0.5),))
    result = plan_rollout(md(status=in_step(1, 50)), MVS, deployments, CONFIG, NOW, failing)
    assert str(result.decision.kind) == "RollBack"  # type: ignore[union-attr]
    assert replicas(result) == {"fraud-41": 4}
    assert main_selector(result)["modelyard.dev/version"] == "41"  # users leave the canary at once
    assert result.delete_deployments == []  # 2 Ready stable pods do not carry 4 yet
    assert result.status is not None
    status = result.status.status
    assert status["canaryVersion"] is None  # null in the merge patch removes it
    assert status["step"] is None
    assert json.dumps(status["lastDecision"]["metrics"]).count("null") == 0  # no nulls inside list items
    assert conditions(result)["Degraded"] == ("True", "RolledBack")
    assert result.status.events[0][:2] == ("Warning", "RolloutRollBack")
    back = [deployment("fraud-41", "41", replicas=4, available=4), deployment("fraud-42", "42", replicas=2,
                                                                               available=2)]  # fmt: skip
    again = plan_rollout(md(status=result.status.status), MVS, back, CONFIG, NOW, None)
    assert again.delete_deployments == ["fraud-42"]


def test_missing_model_version_is_degraded_and_touches_nothing() -> None:
    result = plan_rollout(md(version="43"), MVS, [], CONFIG, NOW, None)
    assert result.apply == []
    assert conditions(result)["Degraded"] == ("True", "ModelVersionNotFound")


@pytest.mark.parametrize(
    ("status", "expected"),
    [({"stableVersion": "41"}, True), ({"stableVersion": "42"}, False),
     ({"stableVersion": "41", "rolledBackVersions": ["42"]}, False),
     ({"stableVersion": "42", "canaryVersion": "43"}, True), ({"phase": "Progressing"}, False)],
)  # fmt: skip
def test_rollout_timer_runs_only_while_there_is_work(status: dict[str, Any], expected: bool) -> None:
    assert rollout_active(md(status=status)) is expected


def test_a_new_action_wakes_a_held_rollout() -> None:
    held = md(status={"stableVersion": "41", "rolledBackVersions": ["42"], "handledNonces": ["1"]})
    held["metadata"]["annotations"] = {"modelyard.dev/action": "retry:1"}
    assert not rollout_active(held)
    held["metadata"]["annotations"] = {"modelyard.dev/action": "retry:2"}
    assert rollout_active(held)
    held["metadata"]["annotations"] = {"modelyard.dev/action": "nonsense"}
    assert not rollout_active(held)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.25"]}]}},
         0.25),
        (200, {"status": "success", "data": {"resultType": "vector", "result": []}}, None),
        (200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}},
         None),
        (200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}, 3.0),
    ],
)  # fmt: skip
def test_prometheus_values(status: int, body: dict[str, Any], expected: float | None) -> None:
    assert parse_response(status, json.dumps(body)) == expected


@pytest.mark.parametrize(
    ("status", "text", "message"),
    [
        (400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}),
         "bad_data: parse error at char 3"),
        (502, "<html>Bad Gateway</html>", "HTTP 502: not a Prometheus API response"),
        (200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"pod": "a"}, "value": [1, "1"]}, {"metric": {"pod": "b"}, "value": [1, "2"]}]}}),
         "returned 2 series"),
        (200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}),
         "unsupported result type 'matrix'"),
        (200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{"value": []}]}}),
         "malformed vector result"),
    ],
)  # fmt: skip
def test_prometheus_errors_are_clear(status: int, text: str, message: str) -> None:
    with pytest.raises(PrometheusError, match=message):
        parse_response(status, text)


def test_switching_to_immediate_mid_rollout_clears_the_rollout_fields() -> None:
    from modelyard_operator.reconcile import plan

    body = md(status=in_step(1, 50), strategy="immediate")
    result = plan(body, MVS, [deployment("fraud-42", "42", replicas=4, available=4)], CONFIG, "2026-11-24T12:00:30Z")
    assert result.status is not None
    assert result.status.status["canaryVersion"] is None
    assert result.status.status["step"] is None
    assert result.status.status["stableVersion"] == "42"


def merged(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch applied (RFC 7386)."""
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = merged(out.get(key) if isinstance(out.get(key), dict) else {}, value)
        else:
            out[key] = value
    return out


def test_a_steady_rollout_status_is_not_rewritten_by_a_resync() -> None:
    """The same Steady decision 30 s later (the sweeper's resync, a relist) keeps lastDecision.at: nothing to write."""
    deps = [deployment("fraud-41", version="41", replicas=4, available=4)]
    first = plan_rollout(md(version="41"), MVS, deps, CONFIG, NOW, None)
    assert first.status is not None
    stored = merged(md(version="41")["status"], first.status.status)  # what the API server keeps
    again = plan_rollout(md(version="41", status=stored), MVS, deps, CONFIG, NOW + timedelta(seconds=30), None)
    assert again.status is not None
    assert again.status.status["lastDecision"]["at"] == stored["lastDecision"]["at"] == "2026-11-24T12:00:30Z"
    assert not status_differs(stored, again.status.status)
    assert not again.status.events
