"""The reconcile plan for one ModelDeployment: what is applied, deleted and reported."""

from __future__ import annotations

from modelyard_operator.config import OperatorConfig
from modelyard_operator.reconcile import plan
from modelyard_operator.status import Reason

from .samples import deployment, model_deployment, model_version

NOW = "2026-11-24T12:00:00Z"
LATER = "2026-11-24T12:05:00Z"
CONFIG = OperatorConfig()


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_missing_model_version_is_degraded_and_touches_nothing() -> None:
    result = plan(model_deployment(), [], [], CONFIG, NOW)
    assert result.apply == []
    assert result.delete_deployments == []
    assert result.status is not None
    status = result.status.status
    assert status["phase"] == "Degraded"
    assert status["observedGeneration"] == 3
    assert conditions(status)["Degraded"] == ("True", Reason.MODEL_VERSION_NOT_FOUND)
    assert conditions(status)["Ready"] == ("False", Reason.MODEL_VERSION_NOT_FOUND)
    assert result.status.events == [("Warning", "ModelVersionNotFound", status["conditions"][-1]["message"])]


def test_degraded_event_is_not_repeated() -> None:
    first = plan(model_deployment(), [], [], CONFIG, NOW).status
    assert first is not None
    md = model_deployment()
    md["status"] = first.status
    again = plan(md, [], [], CONFIG, LATER).status
    assert again is not None
    assert again.events == []
    degraded = next(c for c in again.status["conditions"] if c["type"] == "Degraded")
    assert degraded["lastTransitionTime"] == NOW


def test_version_of_another_model_is_a_mismatch() -> None:
    result = plan(model_deployment(), [model_version(model="churn")], [], CONFIG, NOW)
    assert result.status is not None
    assert conditions(result.status.status)["Degraded"] == ("True", Reason.MODEL_VERSION_MISMATCH)
    assert "model churn" in result.status.status["conditions"][-1]["message"]


def test_two_versions_claiming_the_same_name_are_ambiguous() -> None:
    result = plan(model_deployment(), [model_version("a"), model_version("b")], [], CONFIG, NOW)
    assert result.status is not None
    assert conditions(result.status.status)["Degraded"] == ("True", Reason.MODEL_VERSION_AMBIGUOUS)


def test_failed_model_version_is_not_deployed() -> None:
    mv = model_version()
    mv["status"] = {"phase": "Failed"}
    result = plan(model_deployment(), [mv], [], CONFIG, NOW)
    assert result.apply == []
    assert result.status is not None
    assert conditions(result.status.status)["Degraded"] == ("True", Reason.MODEL_VERSION_FAILED)


def test_unpinned_artifact_needs_permission() -> None:
    mv = model_version(artifact={"uri": "https://example.com/m.onnx"})
    denied = plan(model_deployment(), [mv], [], CONFIG, NOW)
    assert denied.apply == []
    assert denied.status is not None
    assert conditions(denied.status.status)["Degraded"] == ("True", Reason.ARTIFACT_NOT_PINNED)
    allowed = plan(model_deployment(), [mv], [], OperatorConfig(allow_unpinned_artifacts=True), NOW)
    assert len(allowed.apply) == 3


def test_file_uri_needs_permission() -> None:
    mv = model_version(artifact={"uri": "file:///models/m.onnx", "digest": "sha256:" + "0" * 64})
    result = plan(model_deployment(), [mv], [], CONFIG, NOW)
    assert result.status is not None
    assert conditions(result.status.status)["Degraded"] == ("True", Reason.FILE_URI_NOT_ALLOWED)


def test_found_version_is_applied_and_progressing_until_available() -> None:
    result = plan(model_deployment(), [model_version()], [], CONFIG, NOW)
    assert [(o["kind"], o["metadata"]["name"]) for o in result.apply] == [
        ("Deployment", "fraud-42"),
        ("Service", "fraud"),
        ("Service", "fraud-stable"),
    ]
    assert result.status is not None
    status = result.status.status
    assert status["phase"] == "Progressing"
    assert conditions(status) == {
        "Ready": ("False", Reason.DEPLOYING),
        "Progressing": ("True", Reason.DEPLOYING),
        "Degraded": ("False", Reason.DEPLOYING),
        "Reconciling": ("True", Reason.DEPLOYING),
        "Stalled": ("False", Reason.DEPLOYING),
    }
    assert "stableVersion" not in status


def test_available_deployment_makes_it_ready_and_stable() -> None:
    result = plan(model_deployment(), [model_version()], [deployment("fraud-42", "42")], CONFIG, NOW)
    assert result.status is not None
    status = result.status.status
    assert status["phase"] == "Healthy"
    assert status["stableVersion"] == "42"
    assert conditions(status)["Ready"] == ("True", Reason.AVAILABLE)
    assert status["endpoints"] == {
        "http": "http://fraud.ml.svc.cluster.local:8080",
        "grpc": "fraud.ml.svc.cluster.local:8081",
    }
    assert result.status.events[0][:2] == ("Normal", "Available")


def test_partly_available_deployment_is_still_progressing() -> None:
    result = plan(model_deployment(), [model_version()], [deployment("fraud-42", "42", available=1)], CONFIG, NOW)
    assert result.status is not None
    assert result.status.status["phase"] == "Progressing"
    assert "1/2" in result.status.status["conditions"][0]["message"]


def test_old_version_keeps_serving_until_the_new_one_is_available() -> None:
    md = model_deployment(version="43")
    mvs = [model_version(), model_version("fraud-43", version="43")]
    old = deployment("fraud-42", "42")
    waiting = plan(md, mvs, [old, deployment("fraud-43", "43", available=0)], CONFIG, NOW)
    assert waiting.delete_deployments == []
    assert waiting.status is not None
    assert conditions(waiting.status.status)["Progressing"] == ("True", Reason.REPLACING)
    done = plan(md, mvs, [old, deployment("fraud-43", "43")], CONFIG, NOW)
    assert done.delete_deployments == ["fraud-42"]
    assert done.status is not None
    assert done.status.status["stableVersion"] == "43"
    assert done.status.status["phase"] == "Healthy"


def test_scaled_to_zero_is_ready() -> None:
    md = model_deployment(replicas=0)
    result = plan(md, [model_version()], [deployment("fraud-42", "42", replicas=0, available=0)], CONFIG, NOW)
    assert result.status is not None
    assert conditions(result.status.status)["Ready"] == ("True", Reason.SCALED_TO_ZERO)


def test_unparseable_model_versions_are_ignored() -> None:
    broken = {"metadata": {"name": "x"}, "spec": {"model": "fraud"}}
    result = plan(model_deployment(), [broken, model_version()], [], CONFIG, NOW)
    assert len(result.apply) == 3


def test_a_version_under_validation_is_waited_for_not_deployed() -> None:
    for phase in (None, "Pending", "Validating"):
        result = plan(model_deployment(), [model_version(phase=phase)], [], CONFIG, NOW)
        assert result.apply == []
        assert result.delete_deployments == []
        assert result.status is not None
        status = result.status.status
        assert status["phase"] == "Progressing"
        assert conditions(status)["Progressing"] == ("True", Reason.PENDING_VALIDATION)
        assert conditions(status)["Degraded"] == ("False", Reason.PENDING_VALIDATION)
        assert conditions(status)["Ready"] == ("False", Reason.PENDING_VALIDATION)
        assert result.status.events[0][0] == "Normal"


def test_the_old_version_keeps_serving_and_ready_while_the_new_one_is_validated() -> None:
    old = deployment("fraud-41", "41", replicas=2, available=2)
    serving = plan(model_deployment(version="41"), [model_version("fraud-41", version="41")], [old], CONFIG, NOW)
    assert serving.status is not None
    md = model_deployment(version="42")
    md["status"] = serving.status.status
    versions = [model_version("fraud-41", version="41"), model_version(phase="Validating")]
    waiting = plan(md, versions, [old], CONFIG, LATER)
    assert waiting.apply == []
    assert waiting.delete_deployments == []  # nothing is torn down for a version that may still fail
    assert waiting.status is not None
    assert conditions(waiting.status.status)["Ready"] == ("True", Reason.AVAILABLE)
    assert conditions(waiting.status.status)["Progressing"] == ("True", Reason.PENDING_VALIDATION)
    assert waiting.status.status["stableVersion"] == "41"


def test_a_failed_version_is_degraded_with_the_validators_reason() -> None:
    mv = model_version(phase="Failed")
    mv["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "DigestMismatch", "message": "does not hash to sha256:aa"}
    ]
    result = plan(model_deployment(), [mv], [], CONFIG, NOW)
    assert result.apply == []
    assert result.status is not None
    assert conditions(result.status.status)["Degraded"] == ("True", Reason.MODEL_VERSION_FAILED)
    message = next(c["message"] for c in result.status.status["conditions"] if c["type"] == "Degraded")
    assert "DigestMismatch: does not hash to sha256:aa" in message


def test_a_mismatch_names_a_few_versions_of_other_models_not_all() -> None:
    others = [model_version(f"mv{i}", model=f"model{i}") for i in range(5)]
    result = plan(model_deployment(), others, [], CONFIG, NOW)
    assert result.status is not None
    message = result.status.status["conditions"][-1]["message"]
    assert conditions(result.status.status)["Degraded"] == ("True", Reason.MODEL_VERSION_MISMATCH)
    assert "mv0 (model model0), mv1 (model model1), mv2 (model model2) and more" in message
    assert "mv3" not in message
