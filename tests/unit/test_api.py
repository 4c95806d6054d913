from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from modelyard_operator.api import ModelDeploymentSpec, ModelVersionSpec
from modelyard_operator.api.common import parse_duration

from .samples import model_deployment, model_version


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1h30m", 5400), ("250ms", 0.25), ("1.5h", 5400), ("1m30s", 90)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "1d", "-5s", "s", "1h 30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_model_version_defaults() -> None:
    spec = ModelVersionSpec.model_validate(model_version()["spec"])
    assert spec.runtime.engine == "onnxruntime"
    assert spec.runtime.execution_providers == ["CPUExecutionProvider"]
    assert spec.batching.max_batch_size == 0
    assert spec.to_wire()["artifact"]["digest"].startswith("sha256:")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"model": "Fraud"}, "model"),
        ({"version": "-1"}, "version"),
        ({"format": "pickle"}, "format"),
        ({"artifact": {"uri": "ftp://x/y"}}, "artifact.uri"),
        ({"artifact": {"uri": "s3://b/k", "digest": "sha256:xyz"}}, "artifact.digest"),
        ({"batching": {"maxBatchSize": -1}}, "batching.maxBatchSize"),
        ({"unknownField": 1}, "unknownField"),
    ],
)
def test_model_version_rejects(patch: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ModelVersionSpec.model_validate({**model_version()["spec"], **patch})
    assert any(".".join(str(p) for p in e["loc"]).startswith(field) for e in info.value.errors())


def test_model_deployment_defaults_and_camel_case() -> None:
    spec = ModelDeploymentSpec.model_validate(model_deployment()["spec"])
    assert spec.serving.http_port == 8080
    assert spec.loading.mode == "static"
    assert spec.rollout.strategy == "immediate"
    wire = spec.to_wire()
    assert wire["serving"] == {"httpPort": 8080, "grpcPort": 8081}
    assert wire["rollout"]["trafficRouter"] == "replicas"


def test_rollout_steps_parse() -> None:
    spec = ModelDeploymentSpec.model_validate(
        model_deployment(
            rollout={
                "strategy": "canary",
                "steps": [{"setWeight": 10}, {"analyze": {"minDuration": "2m", "maxDuration": "10m"}}, {"pause": {}}],
                "analysis": {"metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.01}]},
            }
        )["spec"]
    )
    assert spec.rollout.steps[0].set_weight == 10
    assert spec.rollout.steps[1].analyze is not None
    assert spec.rollout.steps[1].analyze.max_duration == "10m"
    assert spec.rollout.analysis is not None
    assert spec.rollout.analysis.evidence.min_requests == 100
