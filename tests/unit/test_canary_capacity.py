"""Pod counts and the weights in effect through whole rollouts (pure): the plan runs tick by tick against a
small simulated cluster whose pods become Ready one tick after they are asked for.

- replicas router: 1, 2, 3, 4 and 10 replicas at every step of a 10 / 25 / 50 / 100 canary: the stable
  version keeps all its pods, the canary is surged beside it, ``status.weights`` is the share of Ready
  pods, and a weight the pods cannot express is a Warning Event;
- inPod router: through start, weights, promotion and rollback the model never runs on more than
  ``replicas + 1`` pods, and never on fewer than ``replicas`` Ready ones.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelyard_operator.config import OperatorConfig
from modelyard_operator.indexes import observed_deployment
from modelyard_operator.reconcile import RolloutPlan, plan, plan_rollout
from modelyard_operator.render import DRAIN_SECONDS
from modelyard_operator.rollout.capacity import (
    canary_pods,
    effective_weight,
    handover,
    planned_weight,
    weight_warning,
)
from modelyard_operator.rollout.decision import format_time

from .samples import DIGEST, deployment, model_deployment, model_version

T0 = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
CONFIG = OperatorConfig()
MVS = [model_version("fraud-1", version="1"), model_version("fraud-2", version="2")]
STEP_WEIGHTS = (10, 25, 50, 100)

# replicas -> {step weight: (stable pods, canary pods, effective canary %)}; the table in docs/rollouts.md
TABLE: dict[int, dict[int, tuple[int, int, int]]] = {
    1: {10: (1, 1, 50), 25: (1, 1, 50), 50: (1, 1, 50), 100: (1, 1, 100)},
    2: {10: (2, 1, 33), 25: (2, 1, 33), 50: (2, 2, 50), 100: (2, 2, 100)},
    3: {10: (3, 1, 25), 25: (3, 1, 25), 50: (3, 3, 50), 100: (3, 3, 100)},
    4: {10: (4, 1, 20), 25: (4, 1, 20), 50: (4, 4, 50), 100: (4, 4, 100)},
    10: {10: (10, 1, 9), 25: (10, 3, 23), 50: (10, 10, 50), 100: (10, 10, 100)},
}
WARNED = {(1, 10), (1, 25), (2, 10), (2, 25), (3, 10), (4, 10), (4, 25)}  # more than 2 points off


@dataclass
class Cluster:
    """Deployments as the plan applied them; pods asked for become Ready one tick later, removed ones go now (with
    ``drain``: they terminate until the next tick, reported as the Deployment's ``status.terminatingReplicas``)."""

    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    ready: dict[str, int] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)  # bumped by every change of a Deployment's spec
    observed_generation: dict[str, int] = field(default_factory=dict)  # what the Deployment controller has seen
    peak_pods: int = 0
    least_ready: int = 1_000
    drain: bool = False
    draining: dict[str, int] = field(default_factory=dict)  # pods being deleted, by the Deployment they were of
    peak_with_draining: int = 0
    rolls: int = 0  # template changes of a Deployment with pods: each replaces them all, one at a time
    config_maps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def observed(self) -> list[dict[str, Any]]:
        objs = []
        for name, obj in self.deployments.items():
            want, have = obj["spec"]["replicas"], self.ready.get(name, 0)
            body = {"metadata": copy.deepcopy(obj["metadata"]), "spec": copy.deepcopy(obj["spec"])}
            body["metadata"]["generation"] = self.generation[name]
            body["status"] = {"observedGeneration": self.observed_generation.get(name, 0), "replicas": want,
                              "readyReplicas": have, "availableReplicas": have, "updatedReplicas": want,
                              "terminatingReplicas": self.draining.get(name, 0)}  # fmt: skip
            objs.append(observed_deployment(body))  # what the operator's index keeps of it
        return objs

    def apply(self, result: RolloutPlan) -> None:
        for obj in result.apply:
            if obj["kind"] == "ConfigMap":
                self.config_maps[obj["metadata"]["name"]] = obj
            if obj["kind"] != "Deployment":
                continue
            name = obj["metadata"]["name"]
            previous = self.deployments.get(name)
            template_changed = previous is not None and previous["spec"]["template"] != obj["spec"]["template"]
            if previous is None or previous["spec"] != obj["spec"]:
                self.generation[name] = self.generation.get(name, 0) + 1
            self.deployments[name] = obj
            want = obj["spec"]["replicas"]
            have = min(self.ready.get(name, 0), want)
            if template_changed and have:
                self.rolls += 1
                self._roll(obj["spec"], have)
            if self.drain and not template_changed:
                self.draining[name] = self.draining.get(name, 0) + self.ready.get(name, 0) - have
            self.ready[name] = have
        for name in result.delete_deployments:
            self.deployments.pop(name, None)
            gone = self.ready.pop(name, 0)
            if self.drain:
                self.draining[name] = self.draining.get(name, 0) + gone
        self.peak_pods = max(self.peak_pods, self.pods())
        self.peak_with_draining = max(self.peak_with_draining, self.pods() + sum(self.draining.values()))

    def _roll(self, spec: dict[str, Any], have: int) -> None:
        """A template change replacing ``have`` Ready pods one at a time, as the Deployment controller does it."""
        pods, ready = self.pods(), sum(self.ready.values())
        if spec["strategy"]["rollingUpdate"]["maxSurge"] == 0:
            # paced: one old pod goes (draining) as its replacement starts, and the next old one only once that
            # replacement has stayed Ready for minReadySeconds, longer than the drain: one draining pod at a time
            assert spec["minReadySeconds"] > DRAIN_SECONDS
            self.least_ready = min(self.least_ready, ready - 1)
            if self.drain:
                self.peak_with_draining = max(self.peak_with_draining, pods + 1)
        else:
            # maxSurge 1, maxUnavailable 0: one new pod beside the old ones, which go as it is Ready; the
            # controller surges the next one as soon as an old pod's deletion starts, beside the draining one
            self.peak_pods = max(self.peak_pods, pods + 1)
            if self.drain:
                self.peak_with_draining = max(self.peak_with_draining, pods + 1 + min(1, have - 1))

    def settle(self) -> None:
        """One tick later: every pod asked for is Ready, and the pods being deleted are gone."""
        self.draining.clear()
        for name, obj in self.deployments.items():
            self.ready[name] = obj["spec"]["replicas"]
            self.observed_generation[name] = self.generation[name]
        self.least_ready = min(self.least_ready, sum(self.ready.values()))

    def pods(self) -> int:
        return sum(max(obj["spec"]["replicas"], self.ready.get(name, 0)) for name, obj in self.deployments.items())

    def replicas(self) -> dict[str, int]:
        return {name: obj["spec"]["replicas"] for name, obj in self.deployments.items()}


@dataclass
class Run:
    body: dict[str, Any]
    mvs: list[dict[str, Any]] = field(default_factory=lambda: MVS)
    cluster: Cluster = field(default_factory=Cluster)
    tick: int = 0
    events: list[tuple[str, str, str]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def step(self) -> RolloutPlan:
        """A reconcile, then another one on the Deployments' change events before the Deployment controller has
        observed it (their spec changed, their status not yet), then the pods asked for are Ready."""
        result = self._reconcile()
        echo = self._reconcile()
        self.cluster.settle()
        return result if result.decision and str(result.decision.kind) != "Steady" else echo

    def _reconcile(self) -> RolloutPlan:
        self.tick += 1
        result = plan_rollout(self.body, self.mvs, self.cluster.observed(), CONFIG, T0 + timedelta(seconds=self.tick),
                              None)  # fmt: skip
        assert result.status is not None
        self.cluster.apply(result)
        self.body["status"] = merged(self.body.get("status") or {}, result.status.status)
        self.events += result.status.events
        self.statuses.append(self.body["status"])
        return result

    def until(self, done: Any, limit: int = 12) -> RolloutPlan:
        for _ in range(limit):
            result = self.step()
            if done(result):
                return result
        pytest.fail(f"not reached in {limit} ticks: {self.body['status']}")

    def approve(self, nonce: str) -> None:
        self.body["spec"]["rollout"]["action"] = {"type": "approve", "nonce": nonce}


def merged(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (null deletes), as the API server applies the status the operator writes."""
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def started(
    replicas: int, router: str, steps: list[dict[str, Any]], loading: str = "static", mvs: list[dict[str, Any]] = MVS
) -> Run:
    """Version 1 serving at ``replicas`` Ready pods; version 2 applied with a canary over ``steps``."""
    body = model_deployment(version="2", replicas=replicas, loading={"mode": loading},
                            rollout={"strategy": "canary", "trafficRouter": router, "steps": steps})  # fmt: skip
    body["status"] = {"phase": "Healthy", "stableVersion": "1", "weights": {"stable": 100, "canary": 0}}
    run = Run(body, mvs)
    # the first version goes in directly (no stable version yet to roll out from), as the handler does it
    seed = plan({**body, "spec": {**body["spec"], "version": "1"}, "status": {}}, mvs, [], CONFIG, format_time(T0))
    run.cluster.apply(seed)
    run.cluster.settle()
    run.cluster.peak_pods = run.cluster.pods()
    run.cluster.least_ready = replicas
    return run


def paused(result: RolloutPlan) -> bool:
    return result.decision is not None and str(result.decision.kind) == "Pause"


CANARY_STEPS = [step for w in STEP_WEIGHTS for step in ({"setWeight": w}, {"pause": {}})]


@pytest.mark.parametrize("replicas", sorted(TABLE))
def test_replicas_router_table(replicas: int) -> None:
    """Every step of a 10/25/50/100 canary: pods of each version, the weight in effect, the Warning Events."""
    run = started(replicas, "replicas", CANARY_STEPS)
    for number, weight in enumerate(STEP_WEIGHTS):
        run.until(paused)
        status = run.body["status"]
        stable_pods, canary_pods_, effective = TABLE[replicas][weight]
        assert run.cluster.replicas() == {"fraud-1": stable_pods, "fraud-2": canary_pods_}, (replicas, weight)
        assert status["weights"] == {"stable": 100 - effective, "canary": effective}, (replicas, weight)
        assert status["requestedWeight"] == weight
        warned = [e for e in run.events if e[1] == "WeightNotExpressible" and f"weight {weight}%" in e[2]]
        assert [e[0] for e in warned] == (["Warning"] if (replicas, weight) in WARNED else []), (replicas, weight)
        if warned:
            assert f"is {effective}% in effect with {replicas} replica(s)" in warned[0][2]
        run.approve(str(number))
    promoted = run.until(lambda r: r.decision is not None and str(r.decision.kind) == "Promote")
    assert promoted.status is not None
    run.until(lambda _: "fraud-1" not in run.cluster.deployments)
    assert run.cluster.replicas() == {"fraud-2": replicas}
    assert run.body["status"]["weights"] == {"stable": 100, "canary": 0}
    assert "requestedWeight" not in run.body["status"]
    # at every tick: the stable version kept all its pods, and below 100 % the canary never had all the traffic
    for status in run.statuses:
        if status.get("canaryVersion") and status.get("requestedWeight", 0) < 100:
            assert status["weights"]["canary"] <= 50
    assert run.cluster.least_ready >= replicas


def test_one_replica_at_ten_percent_never_sends_all_traffic_to_the_canary() -> None:
    run = started(1, "replicas", [{"setWeight": 10}, {"pause": {}}])
    run.until(paused)
    assert run.cluster.replicas() == {"fraud-1": 1, "fraud-2": 1}
    weights = [s["weights"]["canary"] for s in run.statuses]
    assert weights[0] == 0  # the canary pod is not Ready yet: nothing goes to it
    assert max(weights) == 50
    assert run.body["status"]["requestedWeight"] == 10


def test_rollback_needs_no_scale_up_of_the_stable_version() -> None:
    run = started(3, "replicas", [{"setWeight": 25}, {"pause": {}}])
    run.until(paused)
    run.body["spec"]["rollout"]["action"] = {"type": "abort", "nonce": "a"}
    aborted = run.step()
    assert aborted.decision is not None
    assert str(aborted.decision.kind) == "RollBack"
    assert aborted.delete_deployments == ["fraud-2"]  # the stable version still has all 3 Ready pods
    assert run.cluster.replicas() == {"fraud-1": 3}
    assert run.body["status"]["weights"] == {"stable": 100, "canary": 0}


@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("ending", ["promote", "rollback"])
def test_in_pod_rollout_never_runs_more_than_replicas_plus_one_pods(replicas: int, ending: str) -> None:
    run = started(replicas, "inPod", [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}])
    assert run.cluster.replicas() == {"fraud-1": replicas}
    run.until(paused)
    run.approve("1")
    run.until(paused)
    assert run.body["status"]["weights"] == {"stable": 40, "canary": 60}
    if ending == "promote":
        run.approve("2")
        run.until(lambda r: r.decision is not None and str(r.decision.kind) == "Promote")
        run.until(lambda _: "fraud-1" not in run.cluster.deployments, limit=3 * replicas + 3)
        assert run.cluster.replicas() == {"fraud-2": replicas}
    else:
        run.body["spec"]["rollout"]["action"] = {"type": "abort", "nonce": "a"}
        run.step()
        assert run.cluster.replicas() == {"fraud-1": replicas}
        loaded = run.cluster.deployments["fraud-1"]["metadata"]["annotations"]["modelyard.dev/versions"]
        assert loaded == "1"  # the canary unloaded from the same Deployment's pods
    assert run.cluster.peak_pods <= replicas + 1
    assert run.cluster.least_ready >= replicas


@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
def test_in_pod_promotion_counts_pods_being_deleted(replicas: int) -> None:
    """A promotion's handover grows the new Deployment only into the room the old one's draining pods leave, so
    pods never exceed ``replicas + 1`` even counting those being deleted (Kubernetes 1.35 reports them)."""
    run = started(replicas, "inPod", [{"setWeight": 50}, {"pause": {}}])
    run.until(paused)
    run.cluster.drain = True
    run.cluster.peak_pods = run.cluster.peak_with_draining = run.cluster.pods()
    run.approve("1")
    run.until(lambda r: r.decision is not None and str(r.decision.kind) == "Promote")
    run.until(lambda _: "fraud-1" not in run.cluster.deployments, limit=4 * replicas + 4)
    run.step()
    assert run.cluster.replicas() == {"fraud-2": replicas}
    assert run.cluster.peak_with_draining <= replicas + 1
    assert run.cluster.least_ready >= replicas


@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("ending", ["promote", "rollback"])
@pytest.mark.parametrize("loading", ["static", "dynamic"])
def test_in_pod_adds_and_drops_the_canary_without_replacing_a_pod(replicas: int, ending: str, loading: str) -> None:
    """The canary joins the stable version's pods through the loader sidecars' versions list (the ConfigMap), so
    loading it, weighting it and rolling it back replace no pod; a promotion hands the pods over one at a time
    (replicas + 1 at most, draining ones included), the old pods holding the new version meanwhile."""
    run = started(replicas, "inPod", [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}], loading)
    held = lambda: json.loads(run.cluster.config_maps["fraud-version-weights"]["data"]["versions.json"])["versions"]  # noqa: E731
    assert held() == []
    run.cluster.drain = True
    run.until(paused)
    assert [(e["model"], e["version"], e["uri"]) for e in held()] == [("fraud", "2", "s3://models/fraud/2/model.onnx")]
    assert held()[0]["config"]["backend"]["kind"] == "onnxruntime"  # the canary's own server settings travel with it
    run.approve("1")
    run.until(paused)
    assert run.body["status"]["weights"] == {"stable": 40, "canary": 60}
    assert run.cluster.deployments["fraud-1"]["metadata"]["annotations"]["modelyard.dev/versions"] == "1,2"
    assert run.cluster.rolls == 0
    assert run.cluster.peak_with_draining == replicas  # not one pod more while the canary is loaded and weighted
    if ending == "promote":
        run.approve("2")
        run.until(lambda r: r.decision is not None and str(r.decision.kind) == "Promote")
        assert [e["version"] for e in held()] == ["2"]  # the old pods keep it until they go
        run.until(lambda _: "fraud-1" not in run.cluster.deployments, limit=4 * replicas + 4)
        run.step()
        assert run.cluster.replicas() == {"fraud-2": replicas}
        assert held() == []
        assert run.cluster.peak_with_draining <= replicas + 1
    else:
        run.body["spec"]["rollout"]["action"] = {"type": "abort", "nonce": "a"}
        run.step()
        assert run.cluster.replicas() == {"fraud-1": replicas}
        assert held() == []  # the sidecars drop the canary from the same pods
        assert run.cluster.deployments["fraud-1"]["metadata"]["annotations"]["modelyard.dev/versions"] == "1"
        assert run.cluster.peak_with_draining == replicas
    assert run.cluster.rolls == 0
    assert run.cluster.least_ready >= replicas


# version 2 with warm-up samples: an init container the pods lack, so it joins them through a second loader
SECOND_LOADER = [MVS[0], model_version("fraud-2", version="2",
                 warmup={"samples": {"uri": "s3://models/fraud/2/samples.npz", "digest": DIGEST}})]  # fmt: skip


@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
@pytest.mark.parametrize("ending", ["promote", "rollback"])
def test_in_pod_second_loader_rolls_never_exceed_replicas_plus_one_pods_draining_ones_included(
    replicas: int, ending: str
) -> None:
    """A canary with mounts the pods lack rolls them to add its loader (and to remove it on a rollback). With 2 or
    more replicas those rolls are paced: no surge, one pod at a time, each replacement Ready for longer than the
    drain before the next old pod goes; so draining pods never take the model above ``replicas + 1`` pods, at the
    cost of one pod's capacity meanwhile. One replica surges (2 pods at most either way). Settled, the Deployment
    surges again (a roll of the stable version's own template keeps its capacity)."""
    run = started(replicas, "inPod", [{"setWeight": 50}, {"pause": {}}], mvs=SECOND_LOADER)
    run.cluster.drain = True
    run.cluster.peak_pods = run.cluster.peak_with_draining = run.cluster.pods()
    run.until(paused)
    deployment = run.cluster.deployments["fraud-1"]["spec"]
    assert [c["name"] for c in deployment["template"]["spec"]["initContainers"]][:2] == ["loader", "loader-2"]
    assert run.cluster.rolls == 1
    paced = replicas >= 2
    assert (deployment["strategy"]["rollingUpdate"]["maxSurge"] == 0) is paced
    assert ("minReadySeconds" in deployment) is paced
    if ending == "promote":
        run.approve("1")
        run.until(lambda r: r.decision is not None and str(r.decision.kind) == "Promote")
        run.until(lambda _: "fraud-1" not in run.cluster.deployments, limit=4 * replicas + 4)
        run.step()
        assert run.cluster.replicas() == {"fraud-2": replicas}
    else:
        run.body["spec"]["rollout"]["action"] = {"type": "abort", "nonce": "a"}
        run.step()
        assert run.cluster.rolls == 2  # the canary's loader removed: another roll, paced as the first
        assert (run.cluster.deployments["fraud-1"]["spec"].get("minReadySeconds") is not None) is paced
        run.step()
        run.step()
    settled = run.cluster.deployments[next(iter(run.cluster.deployments))]["spec"]
    assert settled["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert "minReadySeconds" not in settled
    assert run.cluster.peak_pods <= replicas + 1
    assert run.cluster.peak_with_draining <= replicas + 1
    assert run.cluster.least_ready >= (replicas - 1 if paced else replicas)


@pytest.mark.parametrize(
    ("replicas", "ready", "old_pods", "new_terminating", "expected"),
    [(2, 1, 2, 0, (1, 1)), (2, 1, 1, 0, (2, 1)), (2, 1, 1, 1, (1, 1)), (3, 2, 2, 0, (2, 1)), (3, 2, 1, 0, (3, 1)),
     (2, 2, 1, 0, (2, 0)), (2, 0, 3, 0, (0, 2)), (1, 0, 1, 0, (1, 1))],
)  # fmt: skip
def test_handover_waits_for_pods_being_deleted(
    replicas: int, ready: int, old_pods: int, new_terminating: int, expected: tuple[int, int]
) -> None:
    assert handover(replicas, ready, old_pods, new_terminating) == expected
    new, old = expected
    assert new + max(old, old_pods) + new_terminating <= replicas + 1 or new == ready


@pytest.mark.parametrize(
    ("replicas", "ready", "expected"),
    [(3, 0, (1, 3)), (3, 1, (2, 2)), (3, 2, (3, 1)), (3, 3, (3, 0)), (1, 0, (1, 1)), (1, 1, (1, 0))],
)
def test_handover_one_pod_at_a_time(replicas: int, ready: int, expected: tuple[int, int]) -> None:
    assert handover(replicas, ready) == expected
    new, old = expected
    assert new + old <= replicas + 1
    assert ready + old >= replicas


@pytest.mark.parametrize(
    ("router", "replicas", "weight", "full", "expected"),
    [("replicas", 4, 0, False, 0), ("replicas", 4, 100, False, 4), ("replicas", 0, 50, False, 0),
     ("replicas", 4, 75, False, 4), ("gatewayAPI", 4, 10, False, 1), ("gatewayAPI", 4, 26, False, 2),
     ("gatewayAPI", 10, 33, False, 4), ("inPod", 4, 10, True, 4), ("replicas", 4, 0, True, 4)],
)  # fmt: skip
def test_canary_pods(router: str, replicas: int, weight: int, full: bool, expected: int) -> None:
    assert canary_pods(replicas, weight, router=router, full=full) == expected


def test_effective_weight_follows_what_the_service_selects() -> None:
    assert effective_weight("replicas", 0, stable_ready=4, canary_ready=4) == 0  # stable only
    assert effective_weight("replicas", 100, stable_ready=4, canary_ready=4) == 100  # canary only
    assert effective_weight("replicas", 25, stable_ready=3, canary_ready=1) == 25
    assert effective_weight("replicas", 25, stable_ready=4, canary_ready=0) == 0
    assert effective_weight("replicas", 25, stable_ready=0, canary_ready=0) == 0
    assert effective_weight("gatewayAPI", 25, stable_ready=4, canary_ready=1) == 25
    assert planned_weight(4, 75, router="replicas") == 50  # the canary never outgrows the stable version
    assert weight_warning(10, 10, router="replicas") is None
    assert weight_warning(1, 10, router="gatewayAPI") is None


def test_weight_in_effect_holds_while_a_scale_is_not_yet_observed() -> None:
    """A Deployment the controller has not observed since its last scale still has its Ready pods behind the
    Service: the weight in effect counts them (no dip to 0 % on the way from one step to the next)."""
    steps = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 25}, {"pause": {}}]
    body = model_deployment(version="2", replicas=10, rollout={"strategy": "canary", "steps": steps})
    body["status"] = {
        "phase": "Progressing",
        "stableVersion": "1",
        "canaryVersion": "2",
        "requestedWeight": 10,
        "weights": {"stable": 91, "canary": 9},
        "step": {"index": 2, "startedAt": "2026-12-05T12:00:00Z"},
    }
    stable = deployment("fraud-1", "1", replicas=10, available=10)
    canary = deployment("fraud-2", "2", replicas=3, available=1, generation=2)
    canary["status"]["observedGeneration"] = 1  # scaled from 1 to 3 pods a moment ago
    result = plan_rollout(body, MVS, [stable, canary], CONFIG, T0, None)
    assert result.decision is not None
    assert str(result.decision.reason) == "CanaryNotReady"  # waiting for 3 Ready canary pods before 25 %
    assert result.status is not None
    assert result.status.status["weights"] == {"stable": 91, "canary": 9}
    assert result.status.status["requestedWeight"] == 10
