"""``ModelDeployment.spec.pod`` and the chart's ``runtime.imagePullSecrets`` in the rendered pods (pure rendering)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.inpod import render_in_pod_deployment
from modelyard_operator.render import render_children
from modelyard_operator.validation import render_validation_job

from .samples import model_deployment, model_version

CONFIG = OperatorConfig(runtime_image="registry.local/modelyard/runtime:test", image_pull_secrets=("regcred",))
POD = {
    "labels": {"team": "risk"},
    "annotations": {"example.com/owner": "risk-ml"},
    "runtimeClassName": "gvisor",
    "priorityClassName": "model-serving",
    "imagePullSecrets": [{"name": "mirror-cred"}, {"name": "regcred"}],
    "env": [{"name": "OMP_NUM_THREADS", "value": "4"},
            {"name": "TRACE", "valueFrom": {"configMapKeyRef": {"name": "tracing", "key": "endpoint"}}}],
    "loaderResources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
}  # fmt: skip


def templates(md: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod templates of every Deployment the operator renders for ``md`` (one version; in-pod with a canary)."""
    model = ModelDeployment.model_validate(md)
    stable = ModelVersion.model_validate(model_version())
    canary = ModelVersion.model_validate(model_version("fraud-43", version="43"))
    children = render_children(model, stable, CONFIG)
    found = [c["spec"]["template"] for c in children if c["kind"] == "Deployment"]
    found.append(render_in_pod_deployment(model, stable, canary, CONFIG, replicas=1)["spec"]["template"])
    return found


def test_pod_settings_reach_every_rendered_pod_and_the_operators_own_stay() -> None:
    for template in templates(model_deployment(pod=POD)):
        meta, pod = template["metadata"], template["spec"]
        assert meta["labels"]["team"] == "risk"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modelyard"  # the operator's labels are kept
        assert meta["annotations"]["example.com/owner"] == "risk-ml"
        assert (pod["runtimeClassName"], pod["priorityClassName"]) == ("gvisor", "model-serving")
        assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]  # the chart's first, once
        assert pod["automountServiceAccountToken"] is False
        assert "serviceAccountName" not in pod
        server = next(c for c in pod["containers"] if c["name"] == "server")
        env = {e["name"]: e for e in server["env"]}
        assert env["OMP_NUM_THREADS"] == {"name": "OMP_NUM_THREADS", "value": "4"}
        assert env["TRACE"]["valueFrom"] == {"configMapKeyRef": {"name": "tracing", "key": "endpoint"}}
        assert "MODELYARD_CACHE_DIR" in env  # the operator's variables stay
        for loader in (c for c in pod["initContainers"] if c["name"].startswith("loader")):
            assert loader["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    in_pod = templates(model_deployment(pod=POD))[-1]["metadata"]["annotations"]
    assert set(in_pod) >= {"example.com/owner", "modelyard.dev/versions"}  # the in-pod router's annotation too


def test_without_pod_settings_the_defaults_and_the_installations_secrets_apply() -> None:
    (template, *_) = templates(model_deployment())
    pod = template["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert not {"runtimeClassName", "priorityClassName"} & set(pod)
    assert "annotations" not in template["metadata"]
    (loader,) = [c for c in pod["initContainers"] if c["name"] == "loader"]
    assert loader["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    bare = OperatorConfig(runtime_image="x")
    md = ModelDeployment.model_validate(model_deployment())
    (deployment, *_) = render_children(md, ModelVersion.model_validate(model_version()), bare)
    assert "imagePullSecrets" not in deployment["spec"]["template"]["spec"]


def test_validation_jobs_pull_with_the_installations_secrets() -> None:
    job = render_validation_job(ModelVersion.model_validate(model_version()), CONFIG)
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize(
    "pod",
    [
        {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        {"serviceAccountName": "admin"},
        {"runtimeClassName": "Not_A_Name"},
    ],
)
def test_fields_the_api_does_not_offer_are_refused(pod: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModelDeployment.model_validate(model_deployment(pod=pod))
