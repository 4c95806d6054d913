"""The rollout decision core, table-driven. Every tick's state goes through the status JSON and back, as
it does when the operator restarts, so each multi-tick row is also a restart-mid-step test."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelyard_operator.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelyard_operator.rollout.actions import Action, ActionError, collect_actions, parse_annotation
from modelyard_operator.rollout.decide import decide
from modelyard_operator.rollout.decision import Decision, MetricObservation, Observations
from modelyard_operator.rollout.steps import measurement_due

T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
STEPS = [
    {"setWeight": 25},
    {"analyze": {"minDuration": "60s", "maxDuration": "300s"}},
    {"setWeight": 50},
    {"pause": {}},
    {"analyze": {"minDuration": "30s"}},
]
METRICS = [
    {"name": "error-rate", "template": "errorRate", "max": 0.05, "critical": True},
    {"name": "p99", "template": "latencyP99", "compare": {"against": "stable", "maxRatio": 1.5},
     "failurePolicy": {"consecutive": 2}},
]  # fmt: skip


def spec(version: str = "2", *, metrics: list[dict[str, Any]] | None = None, **rollout: Any) -> dict[str, Any]:
    analysis = {"interval": "10s", "evidence": {"minRequests": 100}, "metrics": METRICS if metrics is None else metrics}
    analysis.update(rollout.pop("analysis", {}))
    body = {"strategy": "canary", "steps": STEPS, "analysis": analysis, **rollout}
    return {"model": "fraud", "version": version, "replicas": 4, "rollout": body}


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_step(index: int, *, started: float = 0, weight: int = 25, evidence: int = 0, **extra: Any) -> dict[str, Any]:
    """Status of a rollout of 2 over 1, in step ``index`` since ``started`` seconds after T0."""
    status = {"phase": "Progressing", "stableVersion": "1", "canaryVersion": "2",
              "weights": {"stable": 100 - weight, "canary": weight},
              "step": {"index": index, "startedAt": at(started), "evidence": evidence},
              "analysis": {"metrics": [{"name": "error-rate"}, {"name": "p99"}]}}  # fmt: skip
    status.update(extra)
    return status


STEADY = {"phase": "Healthy", "stableVersion": "1", "weights": {"stable": 100, "canary": 0}}


def good(requests: float = 500, *, err: float = 0.0, p99: float = 0.1, stable_p99: float | None = 0.1,
         ready: int = 4, **kw: Any) -> Observations:  # fmt: skip
    metrics = (MetricObservation("error-rate", err), MetricObservation("p99", p99, stable_p99))
    return Observations(canary_ready=ready, stable_ready=4, measured=True, requests=requests, metrics=metrics, **kw)


def nodata(requests: float = 500, **kw: Any) -> Observations:
    metrics = (MetricObservation("error-rate", None), MetricObservation("p99", float("nan"), 0.1))
    return Observations(canary_ready=4, stable_ready=4, measured=True, requests=requests, metrics=metrics, **kw)


def idle(ready: int = 4, **kw: Any) -> Observations:
    return Observations(canary_ready=ready, stable_ready=4, **kw)


def act(kind: str, nonce: str, source: str = "spec") -> tuple[Action, ...]:
    return (Action(kind, nonce, source),)


@dataclass
class Case:
    name: str
    spec: dict[str, Any]
    status: dict[str, Any]
    ticks: list[tuple[float, Observations]]
    expect: dict[str, Any]
    each: dict[str, Any] = field(default_factory=dict)  # checks on every tick's decision


def run(case: Case) -> list[Decision]:
    md_spec = ModelDeploymentSpec.model_validate(case.spec)
    wire = case.status
    decisions = []
    for seconds, obs in case.ticks:
        # The operator restarts between ticks: all it knows comes back from the stored status JSON.
        state = ModelDeploymentStatus.model_validate(json.loads(json.dumps(wire)))
        decision = decide(md_spec, state, obs, T0 + timedelta(seconds=seconds))
        wire = decision.status.to_wire()
        decisions.append(decision)
    return decisions


def check(decision: Decision, expect: dict[str, Any], label: str) -> None:
    st = decision.status
    actual = {
        "kind": str(decision.kind),
        "reason": str(decision.reason),
        "phase": st.phase,
        "stable": st.stable_version,
        "canary": st.canary_version,
        "weight": decision.target.weight,
        "provision": decision.target.provision_weight,
        "step": st.step.index if st.step else None,
        "rolled_back": list(st.rolled_back_versions),
        "outcome": decision.outcome,
        "healthy": decision.analysis_healthy[:2],
        "history": [(h.version, h.outcome) for h in st.history],
        "action": (st.last_handled_action.type, st.last_handled_action.result) if st.last_handled_action else None,
        "verdicts": {m.name: (str(m.verdict), m.reason) for m in decision.metrics},
        "paused": decision.paused,
        "evidence": st.step.evidence if st.step else None,
    }
    for key, want in expect.items():
        assert actual[key] == want, f"{label}: {key} = {actual[key]!r}, expected {want!r}"


CASES = [
    Case("steady: spec.version is the stable version", spec("1"), STEADY, [(0, idle())],
         {"kind": "Steady", "phase": "Healthy", "stable": "1", "canary": None, "weight": 0}),
    Case("a new spec.version starts a rollout at weight 0", spec(), STEADY, [(0, idle(0))],
         {"kind": "Start", "canary": "2", "step": 0, "weight": 0, "phase": "Progressing", "provision": 25}),
    Case("setWeight waits for Ready canary pods before moving traffic", spec(), in_step(0, weight=0),
         [(5, idle(ready=0))],
         {"kind": "Hold", "reason": "CanaryNotReady", "weight": 0, "provision": 25, "step": 0}),
    Case("setWeight moves the weight once the canary pod is Ready", spec(), in_step(0, weight=0),
         [(5, idle(ready=1))], {"kind": "Advance", "reason": "WeightSet", "weight": 25, "step": 1}),
    Case("analysis passing before minDuration holds", spec(), in_step(1), [(30, good())],
         {"kind": "Hold", "reason": "Analyzing", "step": 1, "healthy": ("True", "Passing"), "evidence": 500}),
    Case("analysis passing after minDuration with evidence advances", spec(), in_step(1),
         [(30, good()), (61, idle())], {"kind": "Advance", "reason": "AnalysisPassed", "step": 2}),
    Case("no data is never success, even after minDuration", spec(), in_step(1), [(90, nodata())],
         {"kind": "Hold", "step": 1, "healthy": ("Unknown", "NoData"),
          "verdicts": {"error-rate": ("Inconclusive", "NoData"), "p99": ("Inconclusive", "NoData")}}),
    Case("no data past maxDuration holds with AnalysisHealthy=False", spec(), in_step(1), [(301, nodata())],
         {"kind": "Hold", "reason": "InconclusivePastMaxDuration", "phase": "Paused", "weight": 25,
          "healthy": ("False", "InconclusivePastMaxDuration"), "paused": True}),
    Case("no data past maxDuration rolls back when onInconclusive is rollback",
         spec(analysis={"onInconclusive": "rollback"}), in_step(1), [(301, nodata())],
         {"kind": "RollBack", "reason": "InconclusivePastMaxDuration", "rolled_back": ["2"], "weight": 0}),
    Case("too few canary requests is LowEvidence, not a pass", spec(), in_step(1), [(90, good(requests=40))],
         {"kind": "Hold", "reason": "LowEvidence", "verdicts": {"error-rate": ("Inconclusive", "LowEvidence"),
                                                               "p99": ("Inconclusive", "LowEvidence")}}),
    Case("an old newest sample is Stale (scrapes stopped)", spec(), in_step(1),
         [(90, good(sample_age_seconds=120))],
         {"kind": "Hold", "verdicts": {"error-rate": ("Inconclusive", "Stale"), "p99": ("Inconclusive", "Stale")}}),
    Case("a critical metric rolls back on one failure", spec(), in_step(1), [(20, good(err=0.3))],
         {"kind": "RollBack", "reason": "CriticalMetricFailed", "phase": "RolledBack", "stable": "1",
          "canary": None, "weight": 0, "rolled_back": ["2"], "outcome": "RolledBack",
          "history": [("2", "RolledBack")], "healthy": ("False", "CriticalMetricFailed")}),
    Case("critical metrics also watch setWeight and pause steps", spec(), in_step(3, weight=50),
         [(20, good(err=0.3))], {"kind": "RollBack", "reason": "CriticalMetricFailed"}),
    Case("consecutive policy: one failure holds", spec(), in_step(1), [(20, good(p99=0.5))],
         {"kind": "Hold", "canary": "2", "healthy": ("False", "MetricFailing")}),
    Case("consecutive policy: two failures in a row roll back", spec(), in_step(1),
         [(20, good(p99=0.5)), (31, good(p99=0.5))],
         {"kind": "RollBack", "reason": "FailurePolicyReached", "rolled_back": ["2"]}),
    Case("flapping values never reach a consecutive limit", spec(), in_step(1),
         [(10, good(p99=0.5)), (20, good()), (30, good(p99=0.5)), (40, good()), (50, good(p99=0.5))],
         {"kind": "Hold", "canary": "2"}, each={"canary": "2"}),
    Case("flapping values reach a total limit",
         spec(metrics=[{"name": "p99", "template": "latencyP99", "max": 0.2, "failurePolicy": {"total": 3}}]),
         in_step(1), [(10, good(p99=0.5)), (20, good()), (30, good(p99=0.5)), (40, good()), (50, good(p99=0.5))],
         {"kind": "RollBack", "reason": "FailurePolicyReached"}),
    Case("a metric without failurePolicy fails on its first failure",
         spec(metrics=[{"name": "p99", "template": "latencyP99", "max": 0.2}]), in_step(1),
         [(10, good(p99=0.5))], {"kind": "RollBack", "reason": "FailurePolicyReached"}),
    Case("a dryRun metric that fails is recorded, never acted on",
         spec(metrics=[{"name": "error-rate", "template": "errorRate", "max": 0.05, "critical": True,
                        "dryRun": True},
                       {"name": "p99", "template": "latencyP99", "max": 1.0}]),
         in_step(1), [(61, good(err=0.9))],
         {"kind": "Advance", "reason": "AnalysisPassed", "verdicts": {"error-rate": ("Fail", None),
                                                                      "p99": ("Pass", None)}}),
    Case("compare with stable: a slow canary fails the ratio", spec(), in_step(1),
         [(10, good(p99=0.4, stable_p99=0.1)), (20, good(p99=0.4, stable_p99=0.1))],
         {"kind": "RollBack", "reason": "FailurePolicyReached"}),
    Case("compare with stable: no stable value is NoData", spec(), in_step(1), [(61, good(stable_p99=None))],
         {"kind": "Hold", "verdicts": {"error-rate": ("Pass", None), "p99": ("Inconclusive", "NoData")}}),
    Case("a failing metrics backend holds with AnalysisHealthy=False (no rollback)", spec(), in_step(1),
         [(400, Observations(canary_ready=4, stable_ready=4, measured=True, backend_error="connection refused"))],
         {"kind": "Hold", "reason": "MetricsBackendError", "canary": "2", "weight": 25,
          "healthy": ("False", "MetricsBackendError")}),
    Case("a failing backend past maxDuration rolls back only when configured",
         spec(analysis={"onInconclusive": "rollback"}), in_step(1),
         [(400, Observations(canary_ready=4, measured=True, backend_error="timeout"))],
         {"kind": "RollBack", "reason": "InconclusivePastMaxDuration"}),
    Case("the backend comes back: analysis resumes and advances", spec(), in_step(1),
         [(20, Observations(canary_ready=4, measured=True, backend_error="down")), (70, good())],
         {"kind": "Advance", "reason": "AnalysisPassed", "healthy": ("True", "Passing")}),
    Case("a metric gap after minDuration does not pass the step", spec(), in_step(1),
         [(50, good()), (60, nodata()), (65, idle())], {"kind": "Hold", "step": 1}),
    Case("after a metric gap the next Pass advances", spec(), in_step(1),
         [(50, good()), (60, nodata()), (65, idle()), (70, good())], {"kind": "Advance", "step": 2}),
    Case("between intervals nothing is counted", spec(), in_step(1, evidence=500),
         [(10, good(p99=0.5)), (12, idle())], {"kind": "Hold", "canary": "2", "evidence": 500}),
    Case("a pause without duration waits for approval", spec(), in_step(3, weight=50), [(5, idle())],
         {"kind": "Pause", "reason": "AwaitingApproval", "phase": "Paused", "paused": True}),
    Case("a timed pause advances when it has elapsed",
         spec(steps=[{"setWeight": 10}, {"pause": {"duration": "30s"}}]), in_step(1, weight=10),
         [(10, idle()), (31, idle())], {"kind": "Advance", "reason": "PauseElapsed", "step": 2}),
    Case("approve moves past the pause", spec(), in_step(3, weight=50), [(5, idle(actions=act("approve", "7")))],
         {"step": 4, "action": ("approve", "Approved"), "phase": "Progressing"}),
    Case("an approval re-applied by a GitOps tool (same nonce) is applied once", spec(), in_step(3, weight=50),
         [(5, idle(actions=act("approve", "7"))), (6, idle(actions=act("approve", "7"))), (90, good()),
          (91, idle(actions=act("approve", "7", "annotation")))],
         {"kind": "Promote", "stable": "2", "history": [("2", "Promoted")]}),
    Case("an old nonce still on the object after a restart does not approve the next pause", spec(),
         in_step(3, weight=50, handledNonces=["7"], lastHandledAction={"type": "approve", "nonce": "7"}),
         [(5, idle(actions=act("approve", "7")))], {"kind": "Pause", "step": 3}),
    Case("approve on an analysis held past maxDuration moves on", spec(), in_step(1),
         [(301, nodata()), (302, idle(actions=act("approve", "a1")))],
         {"step": 3, "weight": 50, "action": ("approve", "Approved")}),
    Case("approve with nothing waiting is recorded and ignored", spec(), in_step(1),
         [(5, idle(actions=act("approve", "x")))], {"step": 1, "action": ("approve", "NothingToApprove")}),
    Case("abort rolls back to the recorded stable", spec(), in_step(2, weight=25),
         [(5, idle(actions=act("abort", "1")))],
         {"kind": "RollBack", "reason": "Aborted", "stable": "1", "canary": None, "outcome": "Aborted",
          "rolled_back": ["2"], "phase": "RolledBack"}),
    Case("abort with no rollout does nothing", spec("1"), STEADY, [(5, idle(actions=act("abort", "1")))],
         {"kind": "Steady", "action": ("abort", "NothingToAbort")}),
    Case("promoteFull from a pause promotes at once when the canary can take all traffic", spec(),
         in_step(3, weight=50), [(5, idle(actions=act("promoteFull", "p")))],
         {"kind": "Promote", "reason": "PromotedFull", "stable": "2", "canary": None}),
    Case("promoteFull waits for full canary capacity, then promotes", spec(), in_step(1, weight=25),
         [(5, idle(ready=1, actions=act("promoteFull", "p"))), (10, idle(ready=4))],
         {"kind": "Promote", "reason": "PromotedFull", "stable": "2"}),
    Case("promoteFull of a rolled-back version rolls it out fully", spec(),
         {**STEADY, "phase": "RolledBack", "rolledBackVersions": ["2"]},
         [(5, idle(ready=0, actions=act("promoteFull", "p"))), (10, idle())],
         {"kind": "Promote", "stable": "2", "rolled_back": []}),
    Case("a rolled-back version is not re-attempted without retry", spec(),
         {**STEADY, "phase": "RolledBack", "rolledBackVersions": ["2"]}, [(5, idle()), (50, idle())],
         {"kind": "Hold", "reason": "VersionRolledBack", "phase": "RolledBack", "canary": None}),
    Case("retry of a rolled-back version starts it again", spec(),
         {**STEADY, "phase": "RolledBack", "rolledBackVersions": ["2"]},
         [(5, idle(actions=act("retry", "r1")))],
         {"kind": "Start", "canary": "2", "rolled_back": [], "action": ("retry", "Retrying")}),
    Case("retry during a held analysis restarts the step", spec(), in_step(1),
         [(301, nodata()), (302, idle(actions=act("retry", "r2")))],
         {"kind": "Hold", "step": 1, "phase": "Progressing", "action": ("retry", "StepRestarted")}),
    Case("a new spec.version mid-rollout supersedes the canary", spec("3"), in_step(2, weight=25),
         [(5, idle(ready=0))],
         {"kind": "Start", "reason": "Superseded", "canary": "3", "stable": "1", "step": 0, "weight": 0,
          "history": [("2", "Superseded")], "rolled_back": []}),
    Case("spec.version reverted to the stable version ends the rollout", spec("1"), in_step(2, weight=25),
         [(5, idle())],
         {"kind": "RollBack", "reason": "SpecReverted", "phase": "Healthy", "rolled_back": [],
          "history": [("2", "Reverted")]}),
    Case("a good canary goes through every step to promotion across restarts", spec(), STEADY,
         [(0, idle(0)), (2, idle(1)), (10, good()), (70, good()), (72, idle(ready=2)), (74, idle()),
          (76, idle(actions=act("approve", "go"))), (90, good()), (110, good()), (112, idle())],
         {"kind": "Promote", "reason": "Promoted", "stable": "2", "canary": None, "phase": "Healthy",
          "history": [("2", "Promoted")], "weight": 0}),
    Case("postPromotion: the last step hands all traffic over and keeps watching",
         spec(steps=[{"setWeight": 50}], postPromotion={"analyze": {"duration": "60s"}}), in_step(1, weight=50),
         [(5, idle())], {"kind": "Advance", "reason": "PostPromotionAnalysis", "weight": 100, "stable": "1"}),
    Case("postPromotion: a failure rolls back to the recorded stable",
         spec(steps=[{"setWeight": 50}], postPromotion={"analyze": {"duration": "60s"}}), in_step(1, weight=50),
         [(5, idle()), (20, good(err=0.5, stable_p99=None))],
         {"kind": "RollBack", "reason": "PostPromotionFailed", "stable": "1", "rolled_back": ["2"]}),
    Case("postPromotion: passing for its duration promotes (compare metrics left out)",
         spec(steps=[{"setWeight": 50}], postPromotion={"analyze": {"duration": "60s"}}), in_step(1, weight=50),
         [(5, idle()), (30, good(stable_p99=None)), (70, good(stable_p99=None))],
         {"kind": "Promote", "stable": "2", "verdicts": {"error-rate": ("Pass", None)}}),
    Case("blueGreen: a full copy must be Ready before analysis",
         {**spec(), "rollout": {"strategy": "blueGreen", "analysis": spec()["rollout"]["analysis"]}},
         in_step(0, weight=0), [(5, idle(ready=3))], {"kind": "Hold", "reason": "CanaryNotReady"}),
    Case("blueGreen without autoPromote waits for approval after analysis",
         {**spec(), "rollout": {"strategy": "blueGreen", "blueGreen": {"autoPromote": False},
                                "analysis": spec()["rollout"]["analysis"]}},
         in_step(0, weight=0), [(0, idle()), (30, good()), (61, good()), (62, idle())],
         {"kind": "Pause", "reason": "AwaitingApproval", "weight": 0}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(case: Case) -> None:
    decisions = run(case)
    for i, decision in enumerate(decisions):
        check(decision, case.each, f"tick {i}")
    check(decisions[-1], case.expect, case.name)


def test_table_has_at_least_thirty_rows() -> None:
    assert len(CASES) >= 30


def test_decision_records_the_numbers() -> None:
    [decision] = run(Case("", spec(), in_step(1), [(20, good(requests=321, err=0.3, p99=0.2))], {}))
    last = decision.status.last_decision
    assert last is not None
    assert (last.verdict, last.reason, last.requests) == ("RollBack", "CriticalMetricFailed", 321)
    by_name = {m.name: m for m in last.metrics}
    assert by_name["error-rate"].canary == 0.3
    assert by_name["error-rate"].verdict == "Fail"
    assert "0.3 > max 0.05" in (by_name["error-rate"].message or "")
    assert (by_name["p99"].canary, by_name["p99"].stable, by_name["p99"].n) == (0.2, 0.1, 321)


def test_the_rollback_decision_stays_visible_while_the_version_is_held() -> None:
    case = Case("", spec(), in_step(1), [(20, good(err=0.3)), (25, idle()), (30, idle())], {})
    *_, last = run(case)
    assert (str(last.kind), str(last.reason)) == ("Hold", "VersionRolledBack")
    assert last.status.last_decision is not None
    assert last.status.last_decision.reason == "CriticalMetricFailed"
    assert last.status.last_decision.metrics[0].canary == 0.3


def test_measurement_is_due_once_per_interval() -> None:
    md_spec = ModelDeploymentSpec.model_validate(spec())
    state = ModelDeploymentStatus.model_validate(in_step(1))
    assert measurement_due(md_spec, state, T0)
    measured = ModelDeploymentStatus.model_validate(in_step(1, analysis={"lastMeasuredAt": at(0), "metrics": []}))
    assert not measurement_due(md_spec, measured, T0 + timedelta(seconds=9))
    assert measurement_due(md_spec, measured, T0 + timedelta(seconds=10))
    assert not measurement_due(md_spec, ModelDeploymentStatus.model_validate(STEADY), T0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("approve:7", ("approve", "7")), ("promoteFull:2026-11-24", ("promoteFull", "2026-11-24")),
     (" retry:a:b ", ("retry", "a:b"))],
)  # fmt: skip
def test_action_annotation_parses(value: str, expected: tuple[str, str]) -> None:
    action = parse_annotation(value)
    assert (action.type, action.nonce, action.source) == (*expected, "annotation")


@pytest.mark.parametrize(("value", "message"), [("approve", "expected TYPE:NONCE"), ("skip:1", "unknown action"),
                                                ("abort:", "expected TYPE:NONCE")])  # fmt: skip
def test_bad_action_annotation_is_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(ActionError, match=message):
        parse_annotation(value)
    actions, errors = collect_actions(None, {"modelyard.dev/action": value})
    assert actions == []
    assert message in errors[0]


SHADOW_STEPS = [{"analyze": {"minDuration": "60s"}}, {"setWeight": 50}, {"analyze": {"minDuration": "30s"}}]
SHADOW_METRICS = [
    {"name": "agree", "template": "agreement", "min": 0.99, "critical": True},
    {"name": "error-rate", "template": "errorRate", "max": 0.05, "critical": True},
]


def shadow_spec() -> dict[str, Any]:
    return spec(metrics=SHADOW_METRICS, steps=SHADOW_STEPS, trafficRouter="inPod",
                shadow={"percent": 100, "compare": "top1"})  # fmt: skip


def shadowed(agree: float | None, requests: float = 500) -> Observations:
    """While shadowing the operator measures the agreement only (prometheus.measure), the evidence in comparisons."""
    return Observations(canary_ready=4, stable_ready=4, measured=True, requests=requests,
                        metrics=(MetricObservation("agree", agree),))  # fmt: skip


def test_while_shadowing_only_agreement_counts_and_passes() -> None:
    status = in_step(0, weight=0, analysis={"metrics": [{"name": "agree"}]})
    hold, advance = run(Case("", shadow_spec(), status, [(30, shadowed(0.995)), (70, shadowed(0.995))], {}))
    assert (str(hold.kind), str(hold.reason)) == ("Hold", "Analyzing")
    assert {m.name for m in hold.metrics} == {"agree"}  # errorRate has no data while the canary serves no client
    assert (str(advance.kind), advance.status.step.index if advance.status.step else None) == ("Advance", 1)


def test_a_shadow_that_disagrees_rolls_back_before_any_user_sees_it() -> None:
    status = in_step(0, weight=0, analysis={"metrics": [{"name": "agree"}]})
    [decision] = run(Case("", shadow_spec(), status, [(30, shadowed(0.9))], {}))
    assert (str(decision.kind), str(decision.reason)) == ("RollBack", "CriticalMetricFailed")
    assert decision.target.weight == 0
    last = decision.status.last_decision
    assert last is not None
    assert [(m.name, m.canary) for m in last.metrics] == [("agree", 0.9)]


def test_once_the_canary_serves_agreement_is_not_measured() -> None:
    status = in_step(2, weight=50, analysis={"metrics": [{"name": "error-rate"}]})
    obs = Observations(canary_ready=4, stable_ready=4, measured=True, requests=500,
                       metrics=(MetricObservation("error-rate", 0.0),))  # fmt: skip
    [decision] = run(Case("", shadow_spec(), status, [(10, obs)], {}))
    assert {m.name for m in decision.metrics} == {"error-rate"}
    assert str(decision.reason) == "Analyzing"
