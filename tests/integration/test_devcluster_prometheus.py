"""``hack/devcluster up --real-node --prometheus``: Debian's Prometheus discovers pods through the local API
server (Kubernetes service discovery, its own read-only client certificate) and scrapes model pods with the
relabelling the chart documents; ``env`` points the operator at it, and ``down`` stops it.

One cluster for the module (its own): the last test stops it with ``down``.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster import PROMETHEUS_USER, DevCluster, main
from realnode import GATEWAY, PLACEMENT

from ..conftest import Kubectl, dev_cluster, model_over_http, wait_for


@pytest.fixture(scope="module")
def prom_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    assert shutil.which("prometheus"), "prometheus not installed: run `make prometheus`"
    folder = tmp_path_factory.mktemp("prometheus-cluster")
    with dev_cluster(folder, crds=False, nodes=False, real_node=True, prometheus=True) as cl:
        cl.push_images(["modelyard-runtime"])
        yield cl


@pytest.fixture(scope="module")
def kube(prom_cluster: DevCluster) -> Kubectl:
    return Kubectl(prom_cluster.bin / "kubectl", prom_cluster.kubeconfig)


@pytest.fixture(scope="module")
def artifact_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The model over HTTP from the host: pods reach it at the node's address."""
    with model_over_http(tmp_path_factory.mktemp("prom-artifacts")) as url:
        yield url


def server_pod(name: str, artifact: str, *, app: str, image: str) -> dict[str, Any]:
    mounts = [{"name": "models", "mountPath": "/models"}, {"name": "tmp", "mountPath": "/tmp"}]
    loader = {
        "name": "loader",
        "image": image,
        "command": ["modelyard-loader"],
        "args": ["fetch", "--uri", artifact, "--dest", "/models/add/1", "--allow-hosts", GATEWAY],
        "volumeMounts": mounts,
    }
    server = {
        "name": "server",
        "image": image,
        "command": ["modelyard-server"],
        "args": ["--model-repository", "/models", "--http-port", "8080", "--grpc-port", "8081"],
        "ports": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 8081}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": app}},
        "spec": {
            **PLACEMENT,
            "automountServiceAccountToken": False,
            "initContainers": [loader],
            "containers": [server],
            "volumes": [{"name": "models", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        },
    }


def query(url: str, promql: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def ready(kube: Kubectl, name: str, ns: str) -> bool:
    obj = kube.get("pod", name, ns) or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))


def test_env_and_status_point_at_prometheus(prom_cluster: DevCluster, capsys: pytest.CaptureFixture[str]) -> None:
    url = prom_cluster.prometheus_url()
    assert url is not None
    assert url.startswith(f"http://{GATEWAY}:")  # where pods (an operator in the cluster) reach it too
    assert prom_cluster.env()["MODELYARD_PROMETHEUS_URL"] == url
    assert main(["env", "--dir", str(prom_cluster.dir)]) == 0
    assert f"export MODELYARD_PROMETHEUS_URL={url}\n" in capsys.readouterr().out
    assert ("prometheus", "healthy") in [(name, health) for name, _, health in prom_cluster.status()]
    with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as resp:
        assert resp.status == 200


def test_model_pod_is_discovered_and_scraped_with_namespace_and_pod_labels(
    prom_cluster: DevCluster, kube: Kubectl, artifact_url: str
) -> None:
    url = prom_cluster.prometheus_url()
    assert url is not None
    ns = f"prom-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", ns)
    wait_for(lambda: kube.get("serviceaccount", "default", ns), what=f"default service account in {ns}")
    image = prom_cluster.image("modelyard-runtime")
    kube.apply(server_pod("model", artifact_url, app="modelyard-server", image=image), ns)
    kube.apply(server_pod("other", artifact_url, app="something-else", image=image), ns)  # not a model: not scraped
    wait_for(lambda: ready(kube, "model", ns), timeout=60, interval=0.5, what="the model pod Ready")
    became_ready = time.monotonic()
    promql = f'modelyard_model_loaded{{namespace="{ns}",pod="model"}}'
    series = wait_for(lambda: query(url, promql), timeout=20, interval=0.5, what=f"{promql} in Prometheus")
    print(f"pod Ready -> series in Prometheus in {time.monotonic() - became_ready:.1f}s (scrape interval 2s)")
    assert {float(s["value"][1]) for s in series} == {1.0}
    assert {s["metric"]["job"] for s in series} == {"modelyard-models"}
    ip = kube.get("pod", "model", ns)["status"]["podIP"]
    assert {s["metric"]["instance"] for s in series} == {f"{ip}:8080"}  # the `http` port, not grpc
    wait_for(lambda: ready(kube, "other", ns), timeout=60, interval=0.5, what="the other pod Ready")
    time.sleep(3)  # more than a scrape interval after it is Ready
    scraped = query(url, f'up{{namespace="{ns}"}}')
    targets = [(s["metric"]["pod"], s["metric"]["instance"], s["value"][1]) for s in scraped]
    assert targets == [("model", f"{ip}:8080", "1")]  # the other pod's `http` port is not a model's: dropped
    kube.run("delete", "namespace", ns, "--wait=false", check=False)


def test_prometheus_uses_a_read_only_identity(prom_cluster: DevCluster, kube: Kubectl) -> None:
    for verb, resource, allowed in [("list", "pods", "yes"), ("watch", "endpoints", "yes"), ("create", "pods", "no")]:
        out = kube.run("auth", "can-i", verb, resource, "-A", f"--as={PROMETHEUS_USER}", check=False).stdout
        assert out.strip() == allowed, (verb, resource, out)


def test_down_stops_prometheus(prom_cluster: DevCluster) -> None:
    pid = next(int(pid) for name, pid, _ in prom_cluster.status() if name == "prometheus")
    assert Path(f"/proc/{pid}").exists()
    prom_cluster.down()
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="the prometheus process gone")
    assert prom_cluster.prometheus_url() is None
    assert "MODELYARD_PROMETHEUS_URL" not in prom_cluster.env()
    assert not (prom_cluster.dir / "prometheus-data").exists()
