"""The operator as users run it: ``helm install`` of the chart with the images ``make images`` built, the operator
as the chart's Deployment on the real node with exactly the chart's RBAC, and README's quickstart applied as
written: a real model served in the cluster, answering tritonclient through its Service.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
import yaml

import quickstart
import realnode
from devcluster import DevCluster

from ..conftest import Kubectl, dev_cluster, wait_for
from .test_kubectl_plugin import plugin

REPO = Path(__file__).resolve().parents[2]
SYSTEM = "modelyard-system"
pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def cluster_with_chart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevCluster, Kubectl, float]]:
    with dev_cluster(tmp_path_factory.mktemp("chart-cluster"), crds=False, nodes=False, real_node=True) as cl:
        cl.push_images()
        began = time.monotonic()
        cl.install_chart({"operator.loaderAllowHosts": "{fraud-models.default.svc}"}, namespace=SYSTEM)
        yield cl, Kubectl(cl.bin / "kubectl", cl.kubeconfig), time.monotonic() - began


def operator_pod(kube: Kubectl) -> dict:  # type: ignore[type-arg]
    pods = kube.get("pods", namespace=SYSTEM, labels="app.kubernetes.io/name=modelyard")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def test_the_operator_runs_as_the_charts_deployment_from_the_built_image(
    cluster_with_chart: tuple[DevCluster, Kubectl, float],
) -> None:
    cl, kube, took = cluster_with_chart
    print(f"helm install --wait: {took:.1f}s")
    pod = operator_pod(kube)
    assert pod["spec"]["nodeName"] == realnode.NODE
    assert pod["spec"]["containers"][0]["image"] == cl.image("modelyard-operator")
    container = pod["status"]["containerStatuses"][0]
    assert container["ready"] is True
    assert pod["spec"]["serviceAccountName"] == "modelyard-operator"
    uid = kube.run("exec", "-n", SYSTEM, pod["metadata"]["name"], "--", "id", "-u").stdout.strip()
    assert uid == "65532"
    time.sleep(12)  # more than one liveness period: the probe passes, nothing restarts
    pod = operator_pod(kube)
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert pod["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # leader election is on by default: the pod holds the Lease in its own namespace (the chart's Role allows it)
    lease = kube.get("lease", "modelyard-operator", SYSTEM)
    assert lease["spec"]["holderIdentity"].startswith(pod["metadata"]["name"] + "-"), lease["spec"]


def test_readme_quickstart_serves_the_shipped_model_through_its_service(
    cluster_with_chart: tuple[DevCluster, Kubectl, float],
) -> None:
    cl, kube, _ = cluster_with_chart
    began = time.monotonic()
    kube.run("apply", "-f", str(REPO / "examples" / "quickstart.yaml"))
    wait = kube.run("wait", "--for=condition=Ready", "md/fraud", "--timeout=240s", check=False)
    logs = kube.run("logs", "-n", SYSTEM, "deploy/modelyard-operator", "--tail=60", check=False).stdout
    assert wait.returncode == 0, f"{wait.stderr}\n{kube.run('get', 'md,mv,pods', '-o', 'wide').stdout}\n{logs}"
    print(f"kubectl apply -f examples/quickstart.yaml -> md/fraud Ready: {time.monotonic() - began:.1f}s")
    # ... through the chart's admission policy, which was active all along (test_chart_rbac.py tests what it denies)
    assert kube.get("validatingadmissionpolicybinding", "modelyard-operator-workloads") is not None
    mv = kube.get("mv", "fraud-1", "default")
    assert mv["status"]["phase"] == "Ready"
    docs = {d["kind"]: d for d in yaml.safe_load_all((REPO / "examples" / "quickstart.yaml").read_text()) if d}
    assert mv["status"]["artifact"]["digest"] == docs["ModelVersion"]["spec"]["artifact"]["digest"]
    model_pods = kube.get("pods", namespace="default", labels="modelyard.dev/deployment=fraud")["items"]
    assert len(model_pods) == 2
    assert all(p["spec"]["nodeName"] == realnode.NODE for p in model_pods)
    assert {p["spec"]["containers"][0]["image"] for p in model_pods} == {cl.image("modelyard-runtime")}

    vip = kube.get("service", "fraud", "default")["spec"]["clusterIP"]
    features = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [-1, 0.5, 2, 1]], dtype=np.float32)
    inp = httpclient.InferInput("features", list(features.shape), "FP32")
    inp.set_data_from_numpy(features)
    client = httpclient.InferenceServerClient(f"{vip}:8080")
    result = wait_for(lambda: _infer(client, inp), timeout=20, what="an answer through the Service fraud")
    expected = 1 / (1 + np.exp(-(features @ np.array(quickstart.WEIGHTS, dtype=np.float32) + quickstart.BIAS)))
    np.testing.assert_allclose(result.as_numpy("score")[:, 0], expected, rtol=1e-6)
    assert "Forbidden" not in kube.run("logs", "-n", SYSTEM, "deploy/modelyard-operator").stdout
    # kubectl modelyard logs: each model pod's server log (served by the kubelet), one prefix per pod
    logs = plugin(kube, "logs", "fraud", "-n", "default", "--tail", "5").stdout.splitlines()
    assert logs
    assert {line.split("]", 1)[0].lstrip("[") for line in logs} == {p["metadata"]["name"] for p in model_pods}


def _infer(client: httpclient.InferenceServerClient, inp: httpclient.InferInput) -> httpclient.InferResult | None:
    try:
        return client.infer("fraud", [inp])
    except Exception:  # kube-proxy programs the Service within a second or so
        return None
