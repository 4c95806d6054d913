"""ModelVersion validation: the rendered Job and how a finished validator's result becomes status (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.validation import (
    LABEL_VALIDATES,
    NO_RESULT_GRACE_SECONDS,
    job_name,
    outcome_from_pod,
    outcome_status,
    render_validation_job,
    validating_status,
)

DIGEST = "sha256:" + "a" * 64
NOW = "2026-11-24T12:00:00Z"


def mv(**artifact: Any) -> ModelVersion:
    return ModelVersion.model_validate(
        {
            "metadata": {"name": "resnet-v2", "namespace": "ml", "uid": "u-1", "generation": 1},
            "spec": {
                "model": "resnet",
                "version": "2",
                "artifact": {"uri": "https://models.example.com/resnet.onnx", "digest": DIGEST, **artifact},
            },
        }
    )


def pod(exit_code: int | None, message: str = "", phase: str = "Succeeded") -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if exit_code is None else {"terminated": {"exitCode": exit_code}}
    if message and exit_code is not None:
        state["terminated"]["message"] = message
    return {"status": {"phase": phase, "containerStatuses": [{"name": "validate", "state": state}]}}


def test_job_is_one_shot_restricted_and_owned_by_the_model_version() -> None:
    job = render_validation_job(mv(), OperatorConfig(runtime_image="img:1"))
    assert job["metadata"]["name"] == job_name("resnet-v2") == "resnet-v2-validate"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["metadata"]["labels"][LABEL_VALIDATES] == "resnet-v2"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    pod_spec = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"][LABEL_VALIDATES] == "resnet-v2"
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["restartPolicy"] == "Never"
    (container,) = pod_spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["terminationMessagePolicy"] == "File"
    assert container["command"] == ["modelyard-loader"]
    assert container["args"] == [
        "validate", "--uri", "https://models.example.com/resnet.onnx", "--dest", "/work/model",
        "--digest", DIGEST, "--format", "onnx", "--termination-log", "/dev/termination-log",
    ]  # fmt: skip


def test_secrets_are_mounted_as_files_never_passed_as_arguments() -> None:
    job = render_validation_job(
        mv(
            credentialsSecret="store-creds",
            signature={"uri": "https://models.example.com/resnet.sig", "publicKeySecret": {"name": "k", "key": "pub"}},
        ),
        OperatorConfig(),
    )
    pod_spec = job["spec"]["template"]["spec"]
    args = pod_spec["containers"][0]["args"]
    assert "--credentials-dir" in args
    assert args[args.index("--public-key") + 1] == "/var/run/secrets/modelyard/signing/key.pem"
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == "store-creds"
    assert volumes["signing"]["secret"]["items"] == [{"key": "pub", "path": "key.pem"}]
    assert all(
        m.get("readOnly")
        for m in pod_spec["containers"][0]["volumeMounts"]
        if m["name"] != "work" and m["name"] != "tmp"
    )


GOOD = {
    "ok": True,
    "artifact": {"digest": DIGEST, "sizeBytes": 1234, "verified": True},
    "signature": {"verified": True},
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 10]}],
    "loadSeconds": 0.4567,
}


def test_a_good_result_makes_the_version_ready_with_what_was_found() -> None:
    outcome = outcome_from_pod(pod(0, json.dumps(GOOD)), 100.0, 99.0)
    assert outcome is not None
    assert outcome.ok
    status = outcome_status({}, outcome, 1, NOW)
    assert status["phase"] == "Ready"
    assert status["artifact"] == {"digest": DIGEST, "shortDigest": DIGEST[:19], "sizeBytes": 1234, "size": "1.2KiB"}
    assert status["signature"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert status["loadSeconds"] == 0.457
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {t: c["status"] for t, c in conditions.items()} == {
        "ArtifactVerified": "True",
        "Validated": "True",
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    assert "signature verified" in conditions["ArtifactVerified"]["message"]


def test_an_empty_artifact_keeps_its_size_of_zero() -> None:
    """sizeBytes 0 is a size (an empty file), not a missing value: it must not vanish from the status."""
    for artifact, expected in (
        ({"sizeBytes": 0}, {"sizeBytes": 0, "size": "0B"}),
        (
            {"digest": DIGEST, "sizeBytes": 0},
            {"digest": DIGEST, "shortDigest": DIGEST[:19], "sizeBytes": 0, "size": "0B"},
        ),
        ({"digest": DIGEST}, {"digest": DIGEST, "shortDigest": DIGEST[:19]}),
    ):
        outcome = outcome_from_pod(pod(0, json.dumps({**GOOD, "artifact": artifact})), 100.0, 99.0)
        assert outcome is not None
        assert outcome_status({}, outcome, 1, NOW)["artifact"] == expected
    outcome = outcome_from_pod(pod(0, json.dumps({**GOOD, "artifact": {"digest": ""}})), 100.0, 99.0)
    assert outcome is not None
    assert "artifact" not in outcome_status({}, outcome, 1, NOW)


def failure(reason: str, message: str, **extra: Any) -> str:
    return json.dumps({"ok": False, "reason": reason, "message": message, **extra})


@pytest.mark.parametrize(
    ("exit_code", "message", "reason", "verified"),
    [
        (4, failure("DigestMismatch", "got sha256:bb…"), "DigestMismatch", "False"),
        (5, "", "SignatureInvalid", "False"),  # no JSON: the exit code says why
        (6, failure("AddressBlocked", "169.254.169.254"), "AddressBlocked", "False"),
        (3, "connection refused", "FetchFailed", "Unknown"),
        (7, failure("ModelLoadFailed", "bad graph"), "ModelLoadFailed", "True"),
        (137, "", "ValidationFailed", "Unknown"),  # killed (out of memory): no reason of ours
    ],
)  # fmt: skip
def test_failures_keep_the_reason_and_say_whether_the_bytes_were_trusted(
    exit_code: int, message: str, reason: str, verified: str
) -> None:
    outcome = outcome_from_pod(pod(exit_code, message, phase="Failed"), 100.0, 99.0)
    assert outcome is not None
    assert not outcome.ok
    assert outcome.reason == reason
    status = outcome_status({}, outcome, 3, NOW)
    assert status["phase"] == "Failed"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == reason
    assert conditions["ArtifactVerified"]["status"] == verified
    assert conditions["Ready"]["observedGeneration"] == 3


def test_running_or_message_pending_means_no_answer_yet() -> None:
    assert outcome_from_pod(pod(None, phase="Running"), 100.0, None) is None
    assert outcome_from_pod({"status": {"phase": "Pending"}}, 100.0, None) is None
    assert outcome_from_pod(pod(0, ""), 100.0, 100.0 - NO_RESULT_GRACE_SECONDS / 2) is None
    late = outcome_from_pod(pod(0, ""), 100.0, 100.0 - NO_RESULT_GRACE_SECONDS - 1)
    assert late is not None
    assert late.reason == "NoResult"


def test_a_pod_that_failed_before_running_is_a_failure() -> None:
    outcome = outcome_from_pod({"status": {"phase": "Failed", "message": "deadline exceeded"}}, 0.0, None)
    assert outcome is not None
    assert outcome.reason == "ValidationPodFailed"
    assert outcome.message == "deadline exceeded"


def test_validating_keeps_transition_times_of_unchanged_conditions() -> None:
    first = validating_status({}, 1, "2026-11-24T10:00:00Z")
    again = validating_status(first, 1, "2026-11-24T11:00:00Z")
    assert again["phase"] == "Validating"
    assert {c["lastTransitionTime"] for c in again["conditions"]} == {"2026-11-24T10:00:00Z"}


def test_placement_and_allowed_hosts_reach_the_validator() -> None:
    config = OperatorConfig(
        validation_placement={
            "nodeSelector": {"modelyard.dev/local-node": "true"},
            "tolerations": [{"key": "modelyard.dev/local-node", "operator": "Exists", "effect": "NoSchedule"}],
        },
        loader_allow_hosts=("10.244.100.1", "minio.storage.svc"),
    )
    pod_spec = render_validation_job(mv(), config)["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"modelyard.dev/local-node": "true"}
    assert pod_spec["tolerations"][0]["key"] == "modelyard.dev/local-node"
    args = pod_spec["containers"][0]["args"]
    assert args[args.index("--allow-hosts") + 1] == "10.244.100.1,minio.storage.svc"
    plain = render_validation_job(mv(), OperatorConfig())["spec"]["template"]["spec"]
    assert "nodeSelector" not in plain
    assert "--allow-hosts" not in plain["containers"][0]["args"]


@pytest.mark.parametrize(
    ("value", "message"),
    [("{", "not JSON"), ('{"affinity": {}}', "expected"), ('{"tolerations": {}}', "tolerations a list")],
)
def test_a_bad_placement_flag_is_refused(value: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard_operator.main import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--validation-placement", value])
    assert message in capsys.readouterr().err


def test_a_bad_placement_variable_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MODELYARD_VALIDATION_PLACEMENT goes through the same check as the flag: a usage error, not a traceback."""
    from modelyard_operator.main import parse_args

    monkeypatch.setenv("MODELYARD_VALIDATION_PLACEMENT", '{"affinity": {}}')
    with pytest.raises(SystemExit) as exit_info:
        parse_args([])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: modelyard-operator" in err
    assert "--validation-placement: expected" in err
    # the flag still wins over the variable, and a good variable is parsed into the placement
    assert parse_args(["--validation-placement", "{}"]).validation_placement == {}
    monkeypatch.setenv("MODELYARD_VALIDATION_PLACEMENT", '{"nodeSelector": {"pool": "cpu"}}')
    assert parse_args([]).validation_placement == {"nodeSelector": {"pool": "cpu"}}


def test_the_validator_fills_the_node_cache_model_pods_read() -> None:
    config = OperatorConfig(artifact_cache_dir="/var/cache/modelyard/artifacts")
    pod_spec = render_validation_job(mv(), config)["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    args = container["args"]
    assert args[args.index("--cache") + 1] == "/var/cache/modelyard-artifacts"
    assert "--cache-verify" in args
    assert args[-2:] == ["--termination-log", "/dev/termination-log"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert volumes["artifact-cache"]["hostPath"] == {
        "path": "/var/cache/modelyard/artifacts/ml",
        "type": "DirectoryOrCreate",
    }
    assert {"name": "artifact-cache", "mountPath": "/var/cache/modelyard-artifacts"} in container["volumeMounts"]
    unverified = OperatorConfig(artifact_cache_dir="/srv/c", artifact_cache_verify=False)
    (plain,) = render_validation_job(mv(), unverified)["spec"]["template"]["spec"]["containers"]
    assert "--cache" in plain["args"]
    assert "--cache-verify" not in plain["args"]
    unpinned = ModelVersion.model_validate(
        {
            "metadata": {"name": "resnet-v3", "namespace": "ml"},
            "spec": {"model": "resnet", "version": "3", "artifact": {"uri": "https://models.example.com/r.onnx"}},
        }
    )
    pod_spec = render_validation_job(unpinned, config)["spec"]["template"]["spec"]
    assert "--cache" not in pod_spec["containers"][0]["args"]
    assert not any("hostPath" in v for v in pod_spec["volumes"])


def test_artifact_cache_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard_operator.main import config_from_args, parse_args

    off = config_from_args(parse_args([]))
    assert (off.artifact_cache_dir, off.artifact_cache_verify) == (None, True)
    on = config_from_args(parse_args(["--artifact-cache-dir", "/var/cache/modelyard/artifacts"]))
    assert (on.artifact_cache_dir, on.artifact_cache_verify) == ("/var/cache/modelyard/artifacts", True)
    monkeypatch.setenv("MODELYARD_ARTIFACT_CACHE_DIR", "/srv/cache")
    monkeypatch.setenv("MODELYARD_ARTIFACT_CACHE_VERIFY", "false")
    env = config_from_args(parse_args([]))
    assert (env.artifact_cache_dir, env.artifact_cache_verify) == ("/srv/cache", False)
    flags_win = config_from_args(parse_args(["--artifact-cache-dir", "/data/c", "--artifact-cache-verify"]))
    assert (flags_win.artifact_cache_dir, flags_win.artifact_cache_verify) == ("/data/c", True)
    monkeypatch.delenv("MODELYARD_ARTIFACT_CACHE_VERIFY")
    assert config_from_args(parse_args(["--no-artifact-cache-verify"])).artifact_cache_verify is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cache", "normalized absolute path"),
        ("/var/cache/../../etc", "normalized absolute path"),
        ("/", "node system directory"),
        ("/etc/modelyard", "node system directory"),
        ("/var/lib/kubelet/cache", "node system directory"),
    ],
)
def test_a_bad_artifact_cache_dir_is_refused(value: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard_operator.main import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--artifact-cache-dir", value])
    assert message in capsys.readouterr().err


def test_a_misspelt_boolean_variable_is_an_error_not_false(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard_operator.main import parse_args

    monkeypatch.setenv("MODELYARD_ARTIFACT_CACHE_VERIFY", "ture")
    with pytest.raises(SystemExit, match="MODELYARD_ARTIFACT_CACHE_VERIFY='ture' is not a boolean"):
        parse_args([])


def test_short_digest_and_human_size_for_the_printer_columns() -> None:
    from modelyard_operator.validation import human_size, short_digest

    assert short_digest("sha256:" + "ab" * 32) == "sha256:abababababab"
    assert [human_size(n) for n in (0, 999, 1024, 13107200, 3 * 1024**3 + 1)] == [
        "0B", "999B", "1.0KiB", "12.5MiB", "3.0GiB",
    ]  # fmt: skip
