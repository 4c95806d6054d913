"""The node artifact cache's rendered pods against the real API server (server-side dry-run, nothing runs).

What docs/loader.md says about it holds: the API server accepts the model pod and the validation pod with
the cache's hostPath volume, and the restricted Pod Security level refuses them (why the cache is off by
default and the namespaces must allow hostPath volumes).
"""

from __future__ import annotations

import json
from typing import Any

from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.render import render_children
from modelyard_operator.validation import render_validation_job

from ..conftest import Kubectl

DIGEST = "sha256:" + "5f" * 32
CONFIG = OperatorConfig(artifact_cache_dir="/var/cache/modelyard/artifacts")


def pods(namespace: str) -> list[dict[str, Any]]:
    mv = ModelVersion.model_validate(
        {
            "metadata": {"name": "fraud-1", "namespace": namespace, "uid": "u-mv"},
            "spec": {
                "model": "fraud",
                "version": "1",
                "artifact": {"uri": "https://models.example.com/fraud/1/model.onnx", "digest": DIGEST},
            },
        }
    )
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "fraud", "namespace": namespace, "uid": "u-md"},
            "spec": {"model": "fraud", "version": "1"},
        }
    )
    templates = {
        "model": render_children(md, mv, CONFIG)[0]["spec"]["template"]["spec"],
        "validate": render_validation_job(mv, CONFIG)["spec"]["template"]["spec"],
    }
    return [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"cache-{kind}", "namespace": namespace}, "spec": spec}
        for kind, spec in templates.items()
    ]


def dry_run(kubectl: Kubectl, pod: dict[str, Any]) -> tuple[int, str]:
    proc = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
    return proc.returncode, proc.stderr


def test_cache_pods_are_valid_where_host_paths_are_allowed(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=privileged")
    for pod in pods(namespace):
        code, err = dry_run(kubectl, pod)
        assert code == 0, err
        assert "violate" not in err


def test_restricted_pod_security_refuses_the_cache_volume(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    for pod in pods(namespace):
        code, err = dry_run(kubectl, pod)
        assert code != 0
        assert "hostPath" in err, err
        assert "artifact-cache" in err, err
