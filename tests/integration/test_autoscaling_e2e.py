"""Autoscaling on a serving metric, end to end on the dev cluster: the real HPA controller (kube-controller-manager),
prometheus-adapter built from its Go module (hack/build-prometheus-adapter.sh) serving custom.metrics.k8s.io through
the API server's aggregation layer with the chart's rules, Prometheus scraping the model pods, real pods on the local
node (kubelet, containerd) and tritonclient load: a ModelDeployment with ``metric: rps`` scales from 1 pod up under
load and back down after it.

The chart's rules take a 1 minute rate window (made for a 15 s scrape); the dev cluster scrapes every 2 s, so the test
gives the adapter the same rules with a 10 s window, which keeps the run short. The HPA controller syncs every 15 s
(its default); the ModelDeployment sets ``scaleDownStabilizationSeconds: 10`` instead of the HPA's 300 s.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from devcluster import DevCluster
from realnode import GATEWAY, PLACEMENT
from traffic import traffic

from ..conftest import REPO, Kubectl, dev_cluster, serve_directory, temp_namespace, wait_for
from ..models import binary_op

pytestmark = pytest.mark.timeout(600)

A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 10, dtype=np.float32)
METRIC = "modelyard_inference_requests_per_second"
RATE, TARGET, MAX = 24.0, 4, 3  # 24 requests/s against 4 per pod: the HPA wants 6 pods and is capped at 3


def adapter_rules(path: Path) -> Path:
    """The chart's prometheus-adapter rules (values autoscaling.prometheusAdapter.rules), with a 10 s rate window."""
    values = yaml.safe_load((REPO / "charts" / "modelyard" / "values.yaml").read_text())
    rules = values["autoscaling"]["prometheusAdapter"]["rules"]
    text = yaml.safe_dump({"rules": rules}).replace("[1m]", "[10s]")
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    build = subprocess.run(
        ["bash", str(REPO / "hack" / "build-prometheus-adapter.sh")], stdout=subprocess.PIPE, text=True, check=True
    )
    adapter = Path(build.stdout.split()[-1])
    root = tmp_path_factory.mktemp("autoscaling")
    with dev_cluster(root / "cluster", crds=False, nodes=False, real_node=True, prometheus=True) as cl:
        cl.push_images(["modelyard-operator", "modelyard-runtime"])
        cl.start_custom_metrics(adapter, adapter_rules(root / "adapter-rules.yaml"))
        yield cl


@pytest.fixture(scope="module")
def kube(cluster: DevCluster) -> Kubectl:
    return Kubectl(cluster.bin / "kubectl", cluster.kubeconfig)


@pytest.fixture(scope="module")
def ns(kube: Kubectl) -> Iterator[str]:
    with temp_namespace(kube, "hpa") as name:
        yield name


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("autoscaling-artifacts")
    binary_op(root / "adder.onnx")
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}", root


def adds(inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> bool:
    return bool(np.array_equal(outputs["OUT0"], inputs["A"] + inputs["B"]))


def objects(artifacts: tuple[str, Path]) -> list[dict[str, Any]]:
    url, root = artifacts
    digest = "sha256:" + hashlib.sha256((root / "adder.onnx").read_bytes()).hexdigest()
    scaling = {"minReplicas": 1, "maxReplicas": MAX, "metric": "rps", "target": TARGET,
               "scaleDownStabilizationSeconds": 10}  # fmt: skip
    return [
        {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "adder-1"},
         "spec": {"model": "adder", "version": "1", "artifact": {"uri": f"{url}/adder.onnx", "digest": digest}}},
        {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "adder"},
         "spec": {"model": "adder", "version": "1", "placement": PLACEMENT, "autoscaling": scaling,
                  "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}},
    ]  # fmt: skip


def custom_metric(kube: Kubectl, ns: str) -> dict[str, float]:
    """What the HPA controller reads: the adapter's per-pod values (requests per second)."""
    path = f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns}/pods/*/{METRIC}"
    out = kube.run("get", "--raw", path, check=False)
    if out.returncode != 0:
        return {}
    return {i["describedObject"]["name"]: quantity(i["value"]) for i in json.loads(out.stdout)["items"]}


def quantity(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_rps_scales_the_model_up_under_load_and_down_after(
    cluster: DevCluster, kube: Kubectl, ns: str, artifacts: tuple[str, Path]
) -> None:
    cluster.install_chart(
        {"operator.watchNamespaces": "{" + ns + "}", "operator.loaderAllowHosts": "{" + GATEWAY + "}"}
    )
    for obj in objects(artifacts):
        kube.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(obj))
    hpa = wait_for(lambda: kube.get("hpa", "adder", ns), timeout=120, what="the HPA")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == METRIC
    ready = lambda: (kube.get("deployment", "adder-1", ns) or {}).get("status", {}).get("readyReplicas") or 0  # noqa: E731
    wait_for(lambda: ready() == 1, timeout=180, what="the first pod Ready")

    timeline: list[str] = []
    start = time.monotonic()  # the load's start

    def sample() -> tuple[int, int]:
        dep = kube.get("deployment", "adder-1", ns) or {}
        want, have = dep.get("spec", {}).get("replicas") or 0, dep.get("status", {}).get("readyReplicas") or 0
        per_pod = custom_metric(kube, ns)
        shown = ", ".join(f"{v:.1f}" for v in sorted(per_pod.values(), reverse=True)) or "none"
        timeline.append(f"t={time.monotonic() - start:4.0f}s replicas={want} ready={have} rps/pod=[{shown}]")
        print(timeline[-1], flush=True)
        return want, have

    with traffic(cluster.kubeconfig, ns, "adder", model="adder", inputs={"A": A, "B": B}, check=adds, rate=RATE) as t:
        up = None
        while time.monotonic() - start < 120 and up is None:
            if sample()[1] == MAX:
                up = time.monotonic() - start
            time.sleep(5)
        assert up is not None, f"never reached {MAX} ready pods under load:\n" + "\n".join(timeline)
        held = []
        for _ in range(6):  # 30 s more under the same load: the pods stay
            held.append(sample()[0])
            time.sleep(5)
        failed, sent = t.failures(), len(t.results)
    assert held == [MAX] * len(held), "the load no longer held the pods:\n" + "\n".join(timeline)
    stopped = time.monotonic()
    final = 0
    while time.monotonic() - stopped < 150:
        final, _ = sample()
        if final == 1:
            break
        time.sleep(5)
    down = time.monotonic() - stopped
    print(f"scaled 1 -> {MAX} ready pods {up:.0f}s after the load began ({RATE:.0f} requests/s, target {TARGET}/pod), "
          f"held {MAX} for 30s more, back to 1 {down:.0f}s after it stopped; "
          f"{sent} requests, {len(failed)} failed")  # fmt: skip
    assert final == 1, "did not scale back down:\n" + "\n".join(timeline)
    assert failed == [], failed[:5]
