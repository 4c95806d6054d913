"""The operator's per-object gauge: set from the status it wrote, gone with the object."""

from __future__ import annotations

from prometheus_client import generate_latest

from modelyard_operator.metrics import OperatorMetrics


def test_canary_weight_follows_the_status_and_leaves_with_the_object() -> None:
    m = OperatorMetrics()
    m.observe_weights("ml", "fraud", "fraud", {"weights": {"stable": 75, "canary": 25}})
    m.observe_weights("ml", "churn", "churn", {"phase": "Healthy"})  # no weights in this write: nothing to say
    text = generate_latest(m.registry).decode()
    assert 'modelyard_rollout_canary_weight{model="fraud",modeldeployment="fraud",namespace="ml"} 25.0' in text
    assert 'modeldeployment="churn"' not in text
    m.observe_weights("ml", "fraud", "fraud", {"weights": {"stable": 100, "canary": 0}})
    assert 'modeldeployment="fraud",namespace="ml"} 0.0' in generate_latest(m.registry).decode()
    m.forget_model_deployment("ml", "fraud")
    m.forget_model_deployment("ml", "never-seen")  # harmless
    assert 'modeldeployment="fraud"' not in generate_latest(m.registry).decode()
