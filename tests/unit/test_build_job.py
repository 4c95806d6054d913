"""The build Job of a derived version (spec.derivedFrom) and what its pod's outcome becomes (pure code)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelyard_operator import build
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.main import config_from_args, parse_args
from modelyard_operator.render import artifact_access

DIGEST = "sha256:" + "a" * 64
SAMPLES = "sha256:" + "b" * 64
CALIBRATION = "sha256:" + "c" * 64
CONFIG = OperatorConfig(
    artifact_store="oci://registry.example:5000/modelyard",
    artifact_store_secret="store-creds",
    artifact_store_plain_http=True,
    loader_allow_hosts=("registry.example",),
)


def parent() -> ModelVersion:
    return ModelVersion.model_validate({
        "metadata": {"name": "fraud-1", "namespace": "team", "uid": "u-1", "generation": 1},
        "spec": {"model": "fraud", "version": "1", "artifact": {"uri": "https://models.example/fraud/1/model.onnx",
                                                                 "digest": DIGEST, "credentialsSecret": "s3"}},
        "status": {"phase": "Ready"},
    })  # fmt: skip


def derived(**status: Any) -> ModelVersion:
    return ModelVersion.model_validate({
        "metadata": {"name": "fraud-2", "namespace": "team", "uid": "u-2", "generation": 1},
        "spec": {"model": "fraud", "version": "2", "derivedFrom": {
            "version": "1",
            "transforms": [{"quantize": {"mode": "static", "calibration": {"uri": "https://x/cal.json",
                                                                            "digest": CALIBRATION}}},
                           {"prune": {"sparsity": 0.3}}],
            "gate": {"samples": {"uri": "https://x/samples.json", "digest": SAMPLES}, "top1Agreement": 0.99},
        }},
        "status": status,
    })  # fmt: skip


def test_the_job_fetches_parent_and_inputs_then_builds_and_pushes_to_the_store() -> None:
    job = build.render_build_job(derived(), parent(), CONFIG)
    assert job["metadata"]["name"] == "fraud-2-build"
    assert job["metadata"]["labels"]["modelyard.dev/builds"] == "fraud-2"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-2"
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    fetch, calibration, samples = pod["initContainers"]
    assert fetch["args"][:5] == [
        "fetch",
        "--uri",
        "https://models.example/fraud/1/model.onnx",
        "--dest",
        "/work/parent",
    ]
    assert fetch["args"][5:7] == ["--digest", DIGEST]
    assert "--credentials-dir" in fetch["args"]  # the parent's Secret, as its own pods read it
    assert calibration["args"][2] == "https://x/cal.json"
    assert calibration["args"][4] == "/work/inputs/0"
    assert samples["args"][4] == "/work/inputs/1"
    assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in pod["initContainers"])
    (builder,) = pod["containers"]
    args = builder["args"]
    assert builder["command"] == ["modelyard-build"]
    assert args[args.index("--push") + 1] == "oci://registry.example:5000/modelyard/team/fraud:2"
    assert args[args.index("--format") + 1] == "onnx"
    assert {"--oci-plain-http", "--credentials-dir"} <= set(args)
    assert args[args.index("--allow-hosts") + 1] == "registry.example"
    spec = json.loads(args[args.index("--spec-json") + 1])
    assert spec["transforms"][0]["quantize"]["calibration"] == {"uri": "/work/inputs/0", "digest": CALIBRATION}
    assert spec["transforms"][1] == {"prune": {"sparsity": 0.3, "method": "magnitude"}}
    assert spec["gate"]["samples"] == {"uri": "/work/inputs/1", "digest": SAMPLES}
    assert spec["gate"]["top1Agreement"] == 0.99
    store = next(v for v in pod["volumes"] if v["name"] == "store-credentials")
    assert store == {"name": "store-credentials", "secret": {"secretName": "store-creds"}}
    names = [v["name"] for v in pod["volumes"]]
    assert len(names) == len(set(names))


def summary(**extra: Any) -> dict[str, Any]:
    return {
        "ok": True, "reason": "Built", "message": "built, gated and stored",
        "parent": {"digest": DIGEST, "sizeBytes": 4_000_000}, "derived": {"digest": SAMPLES, "sizeBytes": 1_000_000},
        "pushed": {"uri": "oci://registry.example:5000/modelyard/team/fraud@" + CALIBRATION, "digest": CALIBRATION},
        "latency": {"batch": 32, "runs": 30, "parentMs": 2.0, "derivedMs": 0.9, "ratio": 0.45},
        "gate": {"passed": True, "inputs": "samples", "rows": 64, "maxAbsDiff": 0.02, "rmse": 0.004,
                 "top1Agreement": 1.0, "thresholds": {"top1Agreement": 0.99}, "failures": []},
    } | extra  # fmt: skip


def pod_with(code: int, message: str, init_code: int = 0, init_message: str = "") -> dict[str, Any]:
    return {
        "spec": {"initContainers": [{"name": "fetch-parent"}], "containers": [{"name": "build"}]},
        "status": {
            "phase": "Succeeded" if code == 0 else "Failed",
            "initContainerStatuses": [{"name": "fetch-parent", "state": {"terminated": {
                "exitCode": init_code, "message": init_message}}}],
            "containerStatuses": [{"name": "build", "state": {"terminated": {"exitCode": code, "message": message}}}],
        },
    }  # fmt: skip


def test_a_build_that_passed_records_the_pushed_artifact_and_the_numbers() -> None:
    outcome = build.outcome_from_pod(pod_with(0, json.dumps(summary())))
    assert outcome is not None
    assert outcome.ok
    job = {"metadata": {"name": "fraud-2-build", "uid": "j-1"}}
    record = build.build_status(parent(), outcome, job, CONFIG)
    assert record["uri"].endswith("@" + CALIBRATION)
    assert record["digest"] == CALIBRATION
    assert record["credentialsSecret"] == "store-creds"
    assert (record["sizeBytesBefore"], record["sizeBytesAfter"]) == (4_000_000, 1_000_000)
    assert (record["latencyMsBefore"], record["latencyMsAfter"], record["latencyBatch"]) == (2.0, 0.9, 32)
    assert record["gate"]["top1Agreement"] == 1.0
    assert record["job"] == "fraud-2-build"
    status = build.built_status({}, record, 1, "2026-12-06T00:00:00Z")
    assert status["phase"] == "Validating"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Built"]["status"] == "True"
    assert conditions["Reconciling"]["status"] == "True"
    # the version now names the pushed artifact, pinned, with the store's Secret and plain http
    built = derived(build=record)
    assert built.artifact.uri == record["uri"]
    assert built.artifact.digest == CALIBRATION
    args, _, _ = artifact_access(built, CONFIG)
    assert "--oci-plain-http" in args
    assert args[args.index("--credentials-dir") + 1] == "/var/run/secrets/modelyard/credentials"


@pytest.mark.parametrize(
    ("pod", "reason", "words"),
    [
        (
            pod_with(
                1,
                json.dumps(
                    summary(ok=False, reason="GateFailed", message="top1Agreement 0.9 is below 0.99", pushed=None)
                ),
            ),
            "GateFailed",
            "below 0.99",
        ),
        (pod_with(4, json.dumps({"ok": False, "reason": "PushFailed", "message": "HTTP 401"})), "PushFailed", "401"),
        (pod_with(3, ""), "BuildFailed", "exited with code 3"),
        (pod_with(0, json.dumps(summary(pushed=None))), "NotPushed", "no pushed artifact"),
        (
            pod_with(0, "", 1, json.dumps({"reason": "DigestMismatch", "message": "expected sha256:aa"})),
            "DigestMismatch",
            "fetching the parent: expected",
        ),
    ],
)
def test_failures_keep_their_reason_and_numbers(pod: dict[str, Any], reason: str, words: str) -> None:
    outcome = build.outcome_from_pod(pod)
    assert outcome is not None
    assert not outcome.ok
    assert outcome.reason == reason
    assert words in outcome.message
    record = build.build_status(parent(), outcome, None, CONFIG)
    status = build.build_failed_status({}, outcome, record, 1, "2026-12-06T00:00:00Z")
    assert status["phase"] == "Failed"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Built"]["status"] == "False"
    assert conditions["Stalled"]["status"] == "True"
    assert "uri" not in record


def test_a_running_build_has_no_outcome() -> None:
    running = {
        "spec": {"containers": [{"name": "build"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "build", "state": {"running": {}}}]},
    }
    assert build.outcome_from_pod(running) is None


def test_a_version_not_built_yet_has_no_artifact() -> None:
    with pytest.raises(ValueError, match="derived and not built yet"):
        _ = derived().artifact
    assert not derived().built


def test_artifact_store_flags(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MODELYARD_ARTIFACT_STORE", "oci://10.0.0.5:5000/models/")
    monkeypatch.setenv("MODELYARD_ARTIFACT_STORE_PLAIN_HTTP", "true")
    config = config_from_args(parse_args([]))
    assert config.artifact_store == "oci://10.0.0.5:5000/models"
    assert config.artifact_store_plain_http is True
    with pytest.raises(SystemExit):
        parse_args(["--artifact-store", "s3://bucket/models"])
    assert "expected oci://REGISTRY[:PORT]/PREFIX" in capsys.readouterr().err


def savedmodel_parent() -> ModelVersion:
    return ModelVersion.model_validate({
        "metadata": {"name": "fraud-1", "namespace": "team", "uid": "u-1", "generation": 1},
        "spec": {"model": "fraud", "version": "1", "format": "savedmodel", "runtime": {"engine": "tensorflow"},
                 "artifact": {"uri": "https://models.example/fraud/1.tar.gz", "digest": DIGEST}},
        "status": {"phase": "Ready"},
    })  # fmt: skip


def test_a_savedmodel_parent_is_converted_in_the_runtime_tf_image_and_its_archive_digest_recorded() -> None:
    config = OperatorConfig(artifact_store=CONFIG.artifact_store, runtime_image="rt:1", runtime_tf_image="rt-tf:1")
    job = build.render_build_job(derived(), savedmodel_parent(), config)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "rt-tf:1"  # tf2onnx and TensorFlow (the gate's reference) are in that image only
    assert container["args"][container["args"].index("--format") + 1] == "savedmodel"
    assert {c["image"] for c in pod["initContainers"]} == {"rt:1"}  # fetching needs no TensorFlow
    assert (
        build.render_build_job(derived(), parent(), config)["spec"]["template"]["spec"]["containers"][0]["image"]
        == "rt:1"
    )
    # the report of a folder parent has no digest: the archive the version pins stands for it
    outcome = build.outcome_from_pod(pod_with(0, json.dumps(summary(parent={"sizeBytes": 46_701, "files": 4}))))
    assert outcome is not None
    record = build.build_status(savedmodel_parent(), outcome, None, config)
    assert (record["parentDigest"], record["sizeBytesBefore"]) == (DIGEST, 46_701)
