"""Dynamic loading on the real node (kubelet and containerd): a dynamic-mode model pod rendered by ``render.py``, from
the built runtime image, its loader a native sidecar fetching over HTTP from this host.

- the sidecar's startup probe holds the server back until the version is published, and the pod is Ready only once
  the server has *loaded* it (the repository index says READY before any inference request);
- a version whose artifact does not match its pinned digest leaves the pod unready, the sidecar's termination
  message giving the reason (``DigestMismatch``) and the server never started.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import tritonclient.http as httpclient

from devcluster import DevCluster
from fileserver import serve_directory
from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.render import render_children
from realnode import GATEWAY, PLACEMENT

from ..conftest import Kubectl, real_node_fixtures, temp_namespace, wait_for
from ..models import binary_op

pytestmark = pytest.mark.timeout(300)


node_cluster, kube = real_node_fixtures("dynamic-node", images=["modelyard-runtime"], name="node_cluster")


def dynamic_deployment(name: str, ns: str, uri: str, digest: str, config: OperatorConfig) -> dict[str, Any]:
    mv = ModelVersion.model_validate(
        {
            "metadata": {"name": f"{name}-1", "namespace": ns, "uid": "u-mv"},
            "spec": {"model": name, "version": "1", "artifact": {"uri": uri, "digest": digest}},
        }
    )
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": name, "namespace": ns, "uid": "u-md"},
            "spec": {"model": name, "version": "1", "replicas": 1, "placement": PLACEMENT,
                     "loading": {"mode": "dynamic"}},
        }
    )  # fmt: skip
    deployment = render_children(md, mv, config)[0]
    deployment["metadata"].pop("ownerReferences")  # no ModelDeployment object here
    return deployment


def pod_of(kube: Kubectl, ns: str, name: str) -> dict[str, Any] | None:
    listed = kube.get("pods", namespace=ns, labels=f"modelyard.dev/deployment={name}")
    items = [p for p in (listed or {}).get("items", []) if not p["metadata"].get("deletionTimestamp")]
    return items[0] if items else None


def is_ready(pod: dict[str, Any] | None) -> bool:
    conditions = (pod or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_a_dynamic_pod_is_ready_once_loaded_and_unready_with_the_reason_when_the_fetch_fails(
    node_cluster: DevCluster, kube: Kubectl, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    model = binary_op(store / "model.onnx")
    digest = "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    config = OperatorConfig(
        runtime_image=node_cluster.image("modelyard-runtime"), image_pull_policy="Always", loader_allow_hosts=(GATEWAY,)
    )
    with temp_namespace(kube, "dyn") as ns, serve_directory(store) as port:
        uri = f"http://{GATEWAY}:{port}/model.onnx"
        good = dynamic_deployment("adder", ns, uri, digest, config)
        bad = dynamic_deployment("tampered", ns, uri, "sha256:" + "0" * 64, config)
        assert "startupProbe" in good["spec"]["template"]["spec"]["initContainers"][0]
        kube.apply([good, bad], ns)

        ready = wait_for(lambda: (p := pod_of(kube, ns, "adder")) and is_ready(p) and p, timeout=180, what="Ready")
        # Ready means loaded: the version is READY in the index before any inference request was sent
        client = httpclient.InferenceServerClient(f"{ready['status']['podIP']}:8080", connection_timeout=5)
        index = {(m["name"], m.get("version")): m.get("state") for m in client.get_model_repository_index()}
        assert index == {("adder", "1"): "READY"}, index
        sidecar = ready["status"]["initContainerStatuses"][0]
        assert (sidecar["name"], sidecar["started"], sidecar["restartCount"]) == ("loader", True, 0)

        def failed() -> dict[str, Any] | None:
            pod = pod_of(kube, ns, "tampered")
            for status in (pod or {}).get("status", {}).get("initContainerStatuses", []):
                term = status.get("state", {}).get("terminated") or status.get("lastState", {}).get("terminated")
                if term and term.get("message"):
                    return {"pod": pod, "terminated": term}
            return None

        seen = wait_for(failed, timeout=120, what="the tampered version's sidecar to fail")
        message = json.loads(seen["terminated"]["message"])
        assert seen["terminated"]["exitCode"] == 4
        assert message["reason"] == "DigestMismatch"
        assert "digest mismatch" in message["message"]
        pod = pod_of(kube, ns, "tampered")
        assert not is_ready(pod)
        server = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "server")
        assert "running" not in server["state"], "the server started although its version was never published"
        print(f"termination message of the failed sidecar: {seen['terminated']['message']}")
