"""Storage fields in rendered objects: pvc:// claims, S3 settings (per version and chart-wide), the loader CA
bundle, and the credentialsSecret opt-in check (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.inpod import render_in_pod_deployment
from modelyard_operator.main import config_from_args, parse_args
from modelyard_operator.render import render_children
from modelyard_operator.validation import credentials_refusal, render_validation_job

from .samples import DIGEST, model_deployment, model_version

PVC_ARTIFACT = {
    "uri": "pvc://model-store/fraud/42/model.onnx",
    "digest": DIGEST,
    "signature": {"uri": "pvc://signatures/fraud/42/model.sig", "publicKeySecret": {"name": "k", "key": "pem"}},
}


def pod_of(mv: dict[str, Any], config: OperatorConfig | None = None, **md: Any) -> dict[str, Any]:
    children = render_children(
        ModelDeployment.model_validate(model_deployment(**md)),
        ModelVersion.model_validate(mv),
        config or OperatorConfig(),
    )
    pod: dict[str, Any] = children[0]["spec"]["template"]["spec"]
    return pod


def job_pod(mv: dict[str, Any], config: OperatorConfig | None = None) -> dict[str, Any]:
    job = render_validation_job(ModelVersion.model_validate(mv), config or OperatorConfig())
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def test_pvc_claims_are_mounted_read_only_into_the_loader_only() -> None:
    pod = pod_of(model_version(artifact=PVC_ARTIFACT))
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {
        "pvc-0": {"claimName": "model-store", "readOnly": True},
        "pvc-1": {"claimName": "signatures", "readOnly": True},
    }
    loader = pod["initContainers"][0]
    mounts = {m["name"]: m for m in loader["volumeMounts"]}
    assert mounts["pvc-0"] == {"name": "pvc-0", "mountPath": "/mnt/pvc/model-store", "readOnly": True}
    assert mounts["pvc-1"] == {"name": "pvc-1", "mountPath": "/mnt/pvc/signatures", "readOnly": True}
    server = pod["containers"][0]
    assert not {m["name"] for m in server["volumeMounts"]} & set(claims)
    # the loader reads pvc://CLAIM/PATH below its default --pvc-root, /mnt/pvc
    assert "--pvc-root" not in loader["args"]
    assert loader["args"][loader["args"].index("--uri") + 1] == "pvc://model-store/fraud/42/model.onnx"


def test_one_claim_for_artifact_and_signature_is_mounted_once() -> None:
    artifact = {**PVC_ARTIFACT, "signature": {**PVC_ARTIFACT["signature"], "uri": "pvc://model-store/sig"}}
    pod = pod_of(model_version(artifact=artifact))
    assert [v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v] == ["pvc-0"]


def test_the_validation_job_mounts_the_claims_read_only() -> None:
    pod = job_pod(model_version(artifact=PVC_ARTIFACT))
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert [c["persistentVolumeClaim"]["readOnly"] for c in claims] == [True, True]
    assert {m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m.get("readOnly")} >= {
        "/mnt/pvc/model-store",
        "/mnt/pvc/signatures",
    }


def test_in_pod_canary_on_another_claim_gets_its_own_volume() -> None:
    md = ModelDeployment.model_validate(model_deployment())
    stable = ModelVersion.model_validate(model_version(artifact=PVC_ARTIFACT))
    canary = ModelVersion.model_validate(
        model_version("fraud-43", version="43", artifact={"uri": "pvc://other/43/model.onnx", "digest": DIGEST})
    )
    pod = render_in_pod_deployment(md, stable, canary, OperatorConfig(), replicas=1)["spec"]["template"]["spec"]
    canary_loader = pod["initContainers"][1]
    assert {"name": "pvc-0-canary", "mountPath": "/mnt/pvc/other", "readOnly": True} in canary_loader["volumeMounts"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["pvc-0-canary"]["persistentVolumeClaim"] == {"claimName": "other", "readOnly": True}
    assert not [m for m in pod["containers"][0]["volumeMounts"] if m["name"].startswith("pvc-")]


def test_s3_settings_of_a_version_become_loader_flags() -> None:
    artifact = {
        "uri": "s3://models/fraud/42/model.onnx",
        "digest": DIGEST,
        "s3": {"endpoint": "https://minio.storage.svc:9000", "region": "eu-west-3", "addressingStyle": "virtual"},
    }
    for pod in (pod_of(model_version(artifact=artifact)), job_pod(model_version(artifact=artifact))):
        loader = (pod.get("initContainers") or pod["containers"])[0]
        args = loader["args"]
        assert args[args.index("--s3-endpoint") + 1] == "https://minio.storage.svc:9000"
        assert args[args.index("--s3-region") + 1] == "eu-west-3"
        assert args[args.index("--s3-addressing-style") + 1] == "virtual"


def test_s3_settings_are_refused_on_other_uris_and_bad_values() -> None:
    from modelyard_operator.api.modelversion import ArtifactSpec

    with pytest.raises(ValidationError):
        ArtifactSpec.model_validate({"uri": "s3://models/m.onnx", "s3": {"addressingStyle": "dns"}})
    with pytest.raises(ValidationError):
        ArtifactSpec.model_validate({"uri": "s3://models/m.onnx", "s3": {"endpoint": "minio:9000"}})
    with pytest.raises(ValidationError):
        ArtifactSpec.model_validate({"uri": "s3://models/m.onnx", "credentialsSecret": "Bad_Name"})
    # the CEL rule (s3 only with s3:// URIs) is checked by the API server: it is in the schema
    rules = ArtifactSpec.model_json_schema()["x-kubernetes-validations"]
    assert {
        "rule": "!has(self.s3) || self.uri.startsWith('s3://')",
        "message": "s3 settings apply to s3:// URIs only",
    } in rules


def test_chart_wide_settings_reach_every_loader_as_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_S3_ENDPOINT", "http://minio.storage.svc:9000")
    monkeypatch.setenv("MODELYARD_S3_REGION", "eu-central-1")
    monkeypatch.setenv("MODELYARD_S3_ADDRESSING_STYLE", "path")
    monkeypatch.setenv("MODELYARD_LOADER_CA_BUNDLE", "corp-ca")
    config = config_from_args(parse_args([]))
    want_env = {
        "AWS_ENDPOINT_URL_S3": "http://minio.storage.svc:9000",
        "AWS_REGION": "eu-central-1",
        "MODELYARD_LOADER_S3_ADDRESSING_STYLE": "path",
        "MODELYARD_LOADER_CA_FILE": "/var/run/modelyard/ca-bundle/ca.crt",
    }
    pod = pod_of(model_version(), config)
    jpod = job_pod(model_version(), config)
    for loader in (pod["initContainers"][0], jpod["containers"][0]):
        assert {e["name"]: e["value"] for e in loader["env"]} == want_env
        assert {"name": "ca-bundle", "mountPath": "/var/run/modelyard/ca-bundle", "readOnly": True} in loader[
            "volumeMounts"
        ]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["ca-bundle"]["configMap"] == {
        "name": "corp-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
        "optional": True,
    }
    assert "env" not in pod_of(model_version())["initContainers"][0]  # nothing set chart-wide: no environment
    assert all(e["name"] != "AWS_REGION" for e in pod["containers"][0].get("env", []))  # not the server's


def test_bad_chart_wide_s3_settings_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--s3-endpoint", "minio:9000"])
    with pytest.raises(SystemExit):
        parse_args(["--s3-addressing-style", "dns"])


def secret_meta(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "creds", "labels": labels or {}, "annotations": annotations or {}}}


@pytest.mark.parametrize(
    ("meta", "allowed"),
    [
        (secret_meta({"modelyard.dev/artifact-credentials": "true"}), True),
        (secret_meta(annotations={"modelyard.dev/artifact-credentials": "True"}), True),
        (secret_meta({"modelyard.dev/artifact-credentials": "false"}), False),
        (secret_meta({"app": "db"}), False),
        (secret_meta(), False),
    ],
)
def test_a_credentials_secret_must_opt_in(meta: dict[str, Any], allowed: bool) -> None:
    mv = ModelVersion.model_validate(
        model_version(artifact={"uri": "https://h/m.onnx", "digest": DIGEST, "credentialsSecret": "creds"})
    )
    refusal = credentials_refusal(mv, meta)
    assert (refusal is None) is allowed
    if refusal is not None:
        assert refusal.reason == "CredentialsSecretNotAllowed"
        assert "modelyard.dev/artifact-credentials=true" in refusal.message


def test_no_secret_named_nothing_to_refuse() -> None:
    mv = ModelVersion.model_validate(model_version())
    assert credentials_refusal(mv, secret_meta()) is None
