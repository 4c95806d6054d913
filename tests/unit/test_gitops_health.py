"""kstatus's Reconciling/Stalled conditions (pure status code) and Argo CD's Lua health check on the statuses the
operator writes. The same readers run on objects from a real API server in tests/integration/test_gitops.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from modelyard_operator.reconcile import plan, plan_rollout
from modelyard_operator.rollout.decision import MetricObservation
from modelyard_operator.rollout.measurement import Measurement
from modelyard_operator.status import CondValue, abnormal_conditions, set_abnormal_conditions
from modelyard_operator.validation import (
    Outcome,
    backfilled_status,
    outcome_status,
    skipped_status,
    validating_status,
)

from ..support.gitops import HEALTH_LUA, REPO, argocd_health
from .samples import deployment, model_deployment, model_version
from .test_reconcile import CONFIG
from .test_rollout_plan import MVS, NOW, in_step, md

STAMP = "2026-11-24T12:00:00Z"


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def abnormal(status: dict[str, Any]) -> tuple[str, str]:
    found = conds(status)
    return found["Reconciling"][0], found["Stalled"][0]


@pytest.mark.parametrize(
    ("progressing", "degraded", "reconciling", "stalled"),
    [
        (("True", "Deploying", "1/2"), ("False", "Deploying", "1/2"), ("True", "Deploying", "1/2"),
         ("False", "Deploying", "1/2")),
        (("False", "Available", "2/2"), ("False", "Available", "2/2"), ("False", "Available", "2/2"),
         ("False", "Available", "2/2")),
        (("False", "Bad", "why"), ("True", "Bad", "why"), ("False", "Bad", "why"), ("True", "Bad", "why")),
        # Stalled wins: kstatus reads Reconciling first, both True would report a failure as InProgress
        (("True", "A", "a"), ("True", "B", "b"), ("False", "A", "a"), ("True", "B", "b")),
    ],
)  # fmt: skip
def test_reconciling_follows_progressing_and_stalled_follows_degraded(
    progressing: CondValue, degraded: CondValue, reconciling: CondValue, stalled: CondValue
) -> None:
    assert abnormal_conditions(progressing, degraded) == (reconciling, stalled)


def test_never_both_true_and_transition_times_move_only_on_change() -> None:
    both = set_abnormal_conditions(
        [], reconciling=("True", "R", "r"), stalled=("True", "S", "s"), now="t1", generation=4
    )
    assert {c["type"]: c["status"] for c in both} == {"Reconciling": "False", "Stalled": "True"}
    assert all(c["observedGeneration"] == 4 for c in both)
    again = set_abnormal_conditions(
        both, reconciling=("False", "R", "r"), stalled=("True", "S", "s2"), now="t2", generation=5
    )
    assert {c["type"]: c["lastTransitionTime"] for c in again} == {"Reconciling": "t1", "Stalled": "t1"}


def md_with(body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {**body, "status": status}


def test_deployment_states() -> None:
    """Each ModelDeployment state: its kstatus pair, observedGeneration and Argo CD health."""
    body = model_deployment()
    missing = plan(body, [], [], CONFIG, STAMP).status
    waiting = plan(body, [model_version(phase="Validating")], [], CONFIG, STAMP).status
    failed_version = plan(body, [model_version(phase="Failed")], [], CONFIG, STAMP).status
    deploying = plan(body, [model_version()], [], CONFIG, STAMP).status
    ready = plan(body, [model_version()], [deployment("fraud-42", "42")], CONFIG, STAMP).status
    rows = [(missing, ("False", "True"), "Degraded"), (failed_version, ("False", "True"), "Degraded"),
            (waiting, ("True", "False"), "Progressing"), (deploying, ("True", "False"), "Progressing"),
            (ready, ("False", "False"), "Healthy")]  # fmt: skip
    for update, pair, health in rows:
        assert update is not None
        assert abnormal(update.status) == pair
        assert update.status["observedGeneration"] == body["metadata"]["generation"]
        assert argocd_health(md_with(body, update.status))[0] == health
    assert failed_version is not None
    assert conds(failed_version.status)["Stalled"] == ("True", "ModelVersionFailed")


def test_rollout_states() -> None:
    both = [deployment("fraud-41", "41", replicas=2, available=2), deployment("fraud-42", "42", replicas=2,
                                                                               available=2)]  # fmt: skip
    paused = plan_rollout(md(status=in_step(1, 50)), MVS, both, CONFIG, NOW, None)
    starting = [deployment("fraud-41", "41", replicas=4, available=4), deployment("fraud-42", "42", replicas=0,
                                                                                  available=0)]  # fmt: skip
    rolling = plan_rollout(md(status=in_step(0, 0)), MVS, starting, CONFIG, NOW, None)
    failing = Measurement(500, 1.0, (MetricObservation("errors", 0.5),))
    rolled_back = plan_rollout(md(status=in_step(1, 50)), MVS, both, CONFIG, NOW, failing)
    assert rolled_back.status is not None
    held = plan_rollout(md(status=rolled_back.status.status), MVS, both, CONFIG, NOW, None)
    rows = [(paused, ("True", "False"), "Suspended"), (rolling, ("True", "False"), "Progressing"),
            (rolled_back, ("False", "True"), "Degraded"), (held, ("False", "True"), "Degraded")]  # fmt: skip
    for result, pair, health in rows:
        assert result.status is not None
        assert abnormal(result.status.status) == pair
        assert argocd_health(md_with(md(), result.status.status))[0] == health
    assert conds(held.status.status)["Stalled"] == ("True", "RolledBack")  # type: ignore[union-attr]


def test_version_states() -> None:
    body = model_version(phase=None)
    gen = body["metadata"]["generation"]
    validating = validating_status({}, gen, STAMP)
    ready = outcome_status(validating, Outcome(True, "Validated", "ok"), gen, STAMP)
    failed = outcome_status(validating, Outcome(False, "ModelLoadFailed", "not an ONNX model"), gen, STAMP)
    skipped = skipped_status({}, gen, STAMP)
    rows = [(validating, ("True", "False"), "Progressing"), (ready, ("False", "False"), "Healthy"),
            (failed, ("False", "True"), "Degraded"), (skipped, ("False", "False"), "Healthy")]  # fmt: skip
    for status, pair, health in rows:
        assert abnormal(status) == pair
        assert status["observedGeneration"] == gen
        assert argocd_health({**body, "status": status})[0] == health
    assert conds(failed)["Stalled"] == ("True", "ModelLoadFailed")
    assert argocd_health({**body, "status": failed})[1] == "ModelLoadFailed: not an ONNX model"


def test_versions_decided_before_the_upgrade_get_the_conditions_once() -> None:
    def old(status: dict[str, Any]) -> dict[str, Any]:  # as an operator without Reconciling/Stalled wrote it
        return {
            **status,
            "conditions": [c for c in status["conditions"] if c["type"] not in ("Reconciling", "Stalled")],
        }

    failed = old(outcome_status({}, Outcome(False, "DigestMismatch", "sha256 differs"), 1, STAMP))
    added = backfilled_status(failed, 1, STAMP)
    assert added is not None
    assert conds(added)["Stalled"] == ("True", "DigestMismatch")
    assert abnormal(added) == ("False", "True")
    ready = backfilled_status(old(outcome_status({}, Outcome(True, "Validated", "ok"), 1, STAMP)), 1, STAMP)
    assert ready is not None
    assert abnormal(ready) == ("False", "False")
    assert backfilled_status({**failed, "conditions": added["conditions"]}, 1, STAMP) is None  # once
    assert backfilled_status(validating_status({}, 1, STAMP), 1, STAMP) is None  # undecided: the handler writes it


def test_argocd_waits_for_the_operator_to_see_a_new_generation() -> None:
    body = model_version(phase=None)
    ready = outcome_status({}, Outcome(True, "Validated", "ok"), 1, STAMP)
    newer = {**body, "metadata": {**body["metadata"], "generation": 2}, "status": ready}
    assert argocd_health(newer) == ("Progressing", "Waiting for the operator to observe generation 2")
    assert argocd_health(body)[0] == "Progressing"  # no status yet


def test_the_argocd_config_map_holds_the_health_script_for_both_kinds() -> None:
    config = yaml.safe_load((REPO / "examples" / "argocd" / "argocd-cm.yaml").read_text())
    script = HEALTH_LUA.read_text()
    assert config["data"] == {
        "resource.customizations.health.modelyard.dev_ModelDeployment": script,
        "resource.customizations.health.modelyard.dev_ModelVersion": script,
    }
