"""Which validation results count (pure): only pods of the operator's own Job, checked by owner UIDs."""

from __future__ import annotations

import copy
from typing import Any

from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.status import status_differs
from modelyard_operator.validation import (
    Outcome,
    job_finished,
    outcome_from_failed_job,
    outcome_status,
    render_validation_job,
    trusted_pods,
)

DIGEST = "sha256:" + "a" * 64
MV: dict[str, Any] = {
    "metadata": {"name": "resnet-2", "namespace": "ml", "uid": "mv-uid", "generation": 1},
    "spec": {
        "model": "resnet",
        "version": "2",
        "artifact": {"uri": "https://models.example.com/r.onnx", "digest": DIGEST},
    },
}


def job(uid: str = "job-uid", **status: Any) -> dict[str, Any]:
    rendered = render_validation_job(ModelVersion.model_validate(MV), OperatorConfig())
    rendered["metadata"]["uid"] = uid
    rendered["status"] = status
    return rendered


def pod_of(owner: dict[str, Any], *, kind: str = "Job", controller: bool = True) -> dict[str, Any]:
    spec = copy.deepcopy(owner["spec"]["template"]["spec"])
    ref = {"kind": kind, "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": controller}
    return {"metadata": {"name": "p", "ownerReferences": [ref], "labels": owner["metadata"]["labels"]}, "spec": spec}


def test_the_pod_of_the_model_versions_own_job_counts() -> None:
    j = job()
    assert trusted_pods(MV, j, [pod_of(j)]) == [pod_of(j)]


def test_a_look_alike_pod_with_the_labels_but_no_owner_does_not_count() -> None:
    j = job()
    forged = pod_of(j)
    forged["metadata"].pop("ownerReferences")
    assert trusted_pods(MV, j, [forged]) == []


def test_a_pod_of_another_job_or_a_non_controller_reference_does_not_count() -> None:
    j = job()
    assert trusted_pods(MV, j, [pod_of(job(uid="other-job"))]) == []
    assert trusted_pods(MV, j, [pod_of(j, controller=False)]) == []
    assert trusted_pods(MV, j, [pod_of(j, kind="ReplicaSet")]) == []


def test_a_pod_that_runs_something_else_than_the_jobs_container_does_not_count() -> None:
    j = job()
    forged = pod_of(j)
    forged["spec"]["containers"][0]["image"] = "attacker.example/validator:1"
    assert trusted_pods(MV, j, [forged]) == []


def test_a_job_not_controlled_by_this_model_version_makes_nothing_count() -> None:
    j = job()
    stale = copy.deepcopy(MV)
    stale["metadata"]["uid"] = "a-recreated-model-version"  # same name, new object: the old Job is not its own
    assert trusted_pods(stale, j, [pod_of(j)]) == []
    renamed = job()
    renamed["metadata"]["name"] = "resnet-2-validate-forged"
    assert trusted_pods(MV, renamed, [pod_of(renamed)]) == []
    assert trusted_pods(MV, None, [pod_of(j)]) == []


def test_job_finished_reads_counts_and_conditions() -> None:
    assert not job_finished(job(active=1))
    assert job_finished(job(succeeded=1))
    assert job_finished(job(failed=1))
    assert job_finished(job(conditions=[{"type": "Failed", "status": "True"}]))
    assert not job_finished(job(conditions=[{"type": "Complete", "status": "False"}]))


def test_a_failed_job_without_pods_gives_its_reason() -> None:
    timed_out = outcome_from_failed_job(
        job(conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}])
    )
    assert timed_out == Outcome(False, "ValidationTimedOut", "the validation Job ran past --validation-timeout")
    other = outcome_from_failed_job(job(conditions=[{"type": "Failed", "status": "True", "message": "evicted"}]))
    assert other == Outcome(False, "ValidationJobFailed", "evicted")
    assert outcome_from_failed_job(job(succeeded=1)) is None


def test_the_status_records_which_job_produced_the_result() -> None:
    status = outcome_status({}, Outcome(True, "Validated", "ok", {}), 1, "2026-12-05T00:00:00Z", job())
    assert status["validationJob"] == {"name": "resnet-2-validate", "uid": "job-uid"}
    assert "validationJob" not in outcome_status({}, Outcome(False, "InvalidSpec", "bad"), 1, "2026-12-05T00:00:00Z")


def test_status_differs_follows_merge_patch_semantics() -> None:
    current = {"phase": "Healthy", "weights": {"stable": 100, "canary": 0}, "conditions": [{"type": "Ready"}]}
    assert not status_differs(current, {"phase": "Healthy", "weights": {"stable": 100}})
    assert not status_differs(current, {"canaryVersion": None})  # deleting what is absent changes nothing
    assert status_differs(current, {"phase": "Progressing"})
    assert status_differs(current, {"weights": {"canary": 10}})
    assert status_differs(current, {"phase": None})
    assert status_differs(current, {"conditions": [{"type": "Ready"}, {"type": "Degraded"}]})  # lists replace
    assert status_differs(current, {"step": {}})  # a new (even empty) object appears
    assert not status_differs(current, {})
