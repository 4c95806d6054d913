"""The node artifact cache on the real node (kubelet and containerd): a model pod rendered by ``render.py`` with the
cache, from the built runtime image, fetching over HTTP from this host.

- its loader mounts only the namespace's folder ``<cacheRoot>/<namespace>``: the entry lands there, and what another
  namespace keeps beside it is out of the pod's reach (the hostPath is that folder, nothing above it);
- a restarted pod publishes from the node's copy (``cacheHit``);
- a cached file changed on the node, with the entry's index rewritten to match, is refused against the
  ModelVersion's pinned digest: the pod fetches the artifact again and serves the pinned model (an adder), never
  the planted one (a multiplier with the same inputs and outputs);
- with the store answering 404, the refused entry leaves the pod unready, the loader failing with the store's error
  and the refusal in its log.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
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

pytestmark = pytest.mark.timeout(400)

A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 10, dtype=np.float32)


node_cluster, kube = real_node_fixtures("cache-node", images=["modelyard-runtime"], name="node_cluster")


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def rendered(ns: str, uri: str, digest: str, config: OperatorConfig) -> dict[str, Any]:
    mv = ModelVersion.model_validate(
        {
            "metadata": {"name": "adder-1", "namespace": ns, "uid": "u-mv"},
            "spec": {"model": "adder", "version": "1", "artifact": {"uri": uri, "digest": digest}},
        }
    )
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "adder", "namespace": ns, "uid": "u-md"},
            "spec": {"model": "adder", "version": "1", "replicas": 1, "placement": PLACEMENT},
        }
    )
    deployment = render_children(md, mv, config)[0]
    deployment["metadata"].pop("ownerReferences")  # no ModelDeployment object here: nothing to garbage-collect by
    return deployment


def pods(kube: Kubectl, ns: str) -> list[dict[str, Any]]:
    listed = kube.get("pods", namespace=ns)
    return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]


def ready_pod(kube: Kubectl, ns: str, old: set[str]) -> dict[str, Any] | None:
    for p in pods(kube, ns):
        conditions = p.get("status", {}).get("conditions", [])
        if p["metadata"]["name"] not in old and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return p
    return None


def loader_outcome(kube: Kubectl, ns: str, name: str) -> tuple[dict[str, Any], str]:
    """The loader's JSON result (stdout's last line) and its whole log."""
    log = kube.run("logs", "-n", ns, name, "-c", "loader").stdout
    lines = [line for line in log.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), log


def answer(ip: str) -> np.ndarray:
    client = httpclient.InferenceServerClient(f"{ip}:8080", connection_timeout=5, network_timeout=5)
    inputs = [httpclient.InferInput("A", [2, 4], "FP32"), httpclient.InferInput("B", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    out: np.ndarray = client.infer("adder", inputs).as_numpy("OUT0")
    return out


def restart(kube: Kubectl, ns: str) -> set[str]:
    """Delete the model pod (the Deployment makes a new one); the names of the pods deleted."""
    old = {p["metadata"]["name"] for p in pods(kube, ns)}
    kube.run("delete", "pod", "-n", ns, "--all", "--wait=false")
    return old


def tamper(entry: Path, planted: bytes) -> None:
    """What a writer of the node folder can do: replace the cached model and rewrite the index to match."""
    target = entry / "tree" / "model.onnx"
    os.chmod(target, 0o644)
    target.unlink()  # a new file: the published copies of earlier pods (hard links) keep their content
    target.write_bytes(planted)
    index = json.loads((entry / "index.json").read_text())
    index["files"]["model.onnx"] = hashlib.sha256(planted).hexdigest()
    (entry / "index.json").write_text(json.dumps(index))


def test_the_node_cache_is_per_namespace_and_a_tampered_entry_is_refused(
    node_cluster: DevCluster, kube: Kubectl, tmp_path: Path
) -> None:
    store, planted = tmp_path / "store", tmp_path / "planted"
    store.mkdir()
    planted.mkdir()
    model = binary_op(store / "model.onnx")  # OUT0 = A + B
    binary_op(planted / "model.onnx", "Mul")  # OUT0 = A * B: same signature, another answer
    digest = sha256(model)
    root = tmp_path / "node-cache"
    with temp_namespace(kube, "cache") as ns, serve_directory(store) as port:
        kube.run("label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged")
        # node provisioning: the namespace's folder belongs to the loader's user; another tenant's folder beside it
        for folder in (root / ns, root / "other-tenant"):
            folder.mkdir(parents=True)
            os.chown(folder, 65532, 65532)
            folder.chmod(0o700)
        (root / "other-tenant" / "secret-model.onnx").write_bytes(b"another tenant's")
        config = OperatorConfig(
            runtime_image=node_cluster.image("modelyard-runtime"),
            image_pull_policy="Always",
            loader_allow_hosts=(GATEWAY,),
            artifact_cache_dir=str(root),
        )
        deployment = rendered(ns, f"http://{GATEWAY}:{port}/model.onnx", digest, config)
        (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "hostPath" in v]
        assert volume["hostPath"]["path"] == f"{root}/{ns}"
        kube.apply(deployment, ns)

        # 1. first start: downloaded, and the entry lands in the namespace's folder only
        first = wait_for(lambda: ready_pod(kube, ns, set()), timeout=180, what="the first model pod Ready")
        outcome, log = loader_outcome(kube, ns, first["metadata"]["name"])
        assert outcome["cacheHit"] is False, log
        entry = root / ns / "sha256" / digest.split(":", 1)[1]
        assert sha256(entry / "tree" / "model.onnx") == digest
        assert sorted(p.name for p in root.iterdir()) == sorted([ns, "other-tenant"])  # nothing above the folder
        assert sorted(p.name for p in (root / "other-tenant").iterdir()) == ["secret-model.onnx"]
        np.testing.assert_array_equal(answer(first["status"]["podIP"]), A + B)

        # 2. a new pod publishes from the node's copy, checked against the pinned digest
        old = restart(kube, ns)
        second = wait_for(lambda: ready_pod(kube, ns, old), timeout=120, what="the second model pod Ready")
        outcome, log = loader_outcome(kube, ns, second["metadata"]["name"])
        assert outcome["cacheHit"] is True, log
        assert "verified against the pinned digest" in log, log

        # 3. the cached model replaced by another one, index and all: refused, fetched again, the adder serves
        tamper(entry, (planted / "model.onnx").read_bytes())
        old = restart(kube, ns)
        third = wait_for(lambda: ready_pod(kube, ns, old), timeout=120, what="the third model pod Ready")
        outcome, log = loader_outcome(kube, ns, third["metadata"]["name"])
        assert outcome["cacheHit"] is False, log
        assert "not the pinned digest" in log, log
        np.testing.assert_array_equal(answer(third["status"]["podIP"]), A + B)
        assert sha256(entry / "tree" / "model.onnx") == digest  # the entry was refilled from the store

        # 4. planted again while the store answers 404: the pod never becomes Ready, the loader says why
        tamper(entry, (planted / "model.onnx").read_bytes())
        (store / "model.onnx").rename(store / "moved.onnx")
        old = restart(kube, ns)

        def loader_failed() -> dict[str, Any] | None:
            for p in pods(kube, ns):
                if p["metadata"]["name"] in old:
                    continue
                for status in p.get("status", {}).get("initContainerStatuses", []):
                    term = status.get("state", {}).get("terminated") or status.get("lastState", {}).get("terminated")
                    if term and term.get("exitCode") == 3:
                        return p
            return None

        failed = wait_for(loader_failed, timeout=120, what="the loader of the fourth pod to fail")
        log = kube.run("logs", "-n", ns, failed["metadata"]["name"], "-c", "loader", "--previous", check=False).stdout
        log = log or kube.run("logs", "-n", ns, failed["metadata"]["name"], "-c", "loader", check=False).stdout
        assert "not the pinned digest" in log, log
        assert "FetchFailed" in log, log
        assert ready_pod(kube, ns, old) is None
        print(f"refused on the node: {[line for line in log.splitlines() if 'evicted' in line]}")
