"""The whole loop on the real node (kubelet and containerd), with Prometheus: the operator, installed by the chart
as a Deployment from the built images, validates a ModelVersion
with a Job that really runs (loader fetch over HTTP from this host, digest check, model load), serves it from
Deployments whose pods really answer tritonclient, and rolls versions out on the metrics Prometheus scrapes from
those pods, while a client sends steady traffic over the Service's ready endpoints (hack/traffic.py, client-side
balancing per request):

1. version 1: validated, served, answering from the pod IP and through the Service's virtual IP (kube-proxy) and
   its endpoints; Prometheus has its series;
2. version 2: a canary through the steps (50 %, analysis on the error rate) and promoted;
3. version 3, a tampered artifact: fails validation (DigestMismatch), never gets a pod, version 2 keeps serving;
4. version 4, a model that fails at run time: a blue/green copy analysed on preview traffic, rolled back;
and through all of it not one user request fails.

Its own cluster with the real node and Prometheus (one real node per machine: modules that use one run one after
the other) and its own operator, installed with the chart, watching the test's namespace and allowed to fetch from
the node's address (where this host serves the artifacts) with ``operator.loaderAllowHosts``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from devcluster import DevCluster, dev_analysis
from realnode import GATEWAY, NODE, PLACEMENT
from traffic import Traffic, traffic

from ..conftest import REPO, Kubectl, real_node_fixtures, serve_directory, wait_for
from ..models import binary_op, failing_model

pytestmark = pytest.mark.timeout(420)  # four versions, each through real pods, in one story

ANALYSIS = dev_analysis(
    [{"name": "error-rate", "template": "errorRate", "max": 0.01, "critical": True}], min_requests=20
)
CANARY = {"strategy": "canary", "steps": [{"setWeight": 50}, {"analyze": {"minDuration": "6s", "maxDuration": "90s"}}],
          "analysis": ANALYSIS}  # fmt: skip
BLUE_GREEN = {"strategy": "blueGreen", "blueGreen": {"analyze": {"minDuration": "6s", "maxDuration": "90s"}},
              "analysis": ANALYSIS}  # fmt: skip
A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 10, dtype=np.float32)


local_cluster, kube, ns = real_node_fixtures("full-loop-cluster", ns="loop", name="local_cluster", prometheus=True)


@pytest.fixture(scope="module")
def artifact_cache(tmp_path_factory: pytest.TempPathFactory, ns: str) -> Path:
    """The node's artifact cache: the loaders of the namespace's validation and model pods share its folder
    ``<cache>/<ns>`` (a hostPath), which node provisioning gives to their user, UID 65532."""
    cache = tmp_path_factory.mktemp("full-loop-node") / "artifact-cache"
    (cache / ns).mkdir(parents=True)
    os.chown(cache / ns, 65532, 65532)
    return cache


@pytest.fixture(scope="module")
def operator(local_cluster: DevCluster, ns: str, artifact_cache: Path) -> Iterator[None]:
    """The operator as the chart installs it, watching the test's namespace, measuring in the cluster's
    Prometheus, with the node's artifact cache."""
    url = local_cluster.prometheus_url()
    assert url, "the cluster has no Prometheus"
    values = {"operator.watchNamespaces": "{" + ns + "}", "operator.loaderAllowHosts": "{" + GATEWAY + "}",
              "operator.prometheusURL": url, "operator.artifactCache.hostPath": str(artifact_cache)}  # fmt: skip
    local_cluster.install_chart(values)
    yield
    logs = local_cluster.kubectl("logs", "-n", "modelyard-system", "deploy/modelyard-operator", check=False,
                                 capture=True)  # fmt: skip
    assert "Forbidden" not in logs, logs[-3000:]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A plain HTTP file server on all of this host's addresses (pods reach it at the gateway); its folder."""
    root = tmp_path_factory.mktemp("full-loop-artifacts")
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}", root


def model_version(name: str, version: str, uri: str, digest: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {"model": "adder", "version": version, "format": "onnx", "artifact": {"uri": uri, "digest": digest}},
    }


def model_deployment(version: str, rollout: dict[str, Any] | None = None, *, name: str = "adder") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "adder",
        "version": version,
        "replicas": 2,
        "placement": PLACEMENT,
        "resources": {"requests": {"cpu": "100m"}},
    }
    if rollout:
        spec["rollout"] = rollout
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def mv_phase(kube: Kubectl, name: str, ns: str, phase: str) -> dict[str, Any] | None:
    mv = kube.get("modelversion", name, ns)
    return mv if mv and mv.get("status", {}).get("phase") == phase else None


def md_status(kube: Kubectl, ns: str, name: str = "adder") -> dict[str, Any]:
    return dict((kube.get("modeldeployment", name, ns) or {}).get("status") or {})


def model_pods(kube: Kubectl, ns: str, version: str, md: str = "adder") -> list[dict[str, Any]]:
    """The ModelDeployment's pods of ``version`` (not the validation Job's)."""
    labels = f"app.kubernetes.io/instance={md},modelyard.dev/version={version}"
    return kube.get("pods", namespace=ns, labels=labels)["items"]  # type: ignore[no-any-return]


def ready_pods(kube: Kubectl, ns: str, version: str, md: str = "adder") -> list[dict[str, Any]]:
    return [p for p in model_pods(kube, ns, version, md) if any(c["type"] == "Ready" and c["status"] == "True"
                                   for c in p.get("status", {}).get("conditions", []))]  # fmt: skip


def answer(ip: str) -> bool:
    """One inference request to the pod; True when both outputs are right."""
    client = httpclient.InferenceServerClient(f"{ip}:8080", connection_timeout=5, network_timeout=5)
    inputs = [httpclient.InferInput("A", [2, 4], "FP32"), httpclient.InferInput("B", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    result = client.infer("adder", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUT0"), A + B)
    np.testing.assert_array_equal(result.as_numpy("OUT1"), A - B)
    return True


def answers(address: str) -> bool:
    try:
        return answer(address)
    except Exception:  # not reachable (yet)
        return False


def adds(inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> bool:
    return bool(np.array_equal(outputs["OUT0"], inputs["A"] + inputs["B"])
                and np.array_equal(outputs["OUT1"], inputs["A"] - inputs["B"]))  # fmt: skip


def send(cluster: DevCluster, ns: str, service: str, rate: float) -> Any:
    return traffic(cluster.kubeconfig, ns, service, model="adder", inputs={"A": A, "B": B}, check=adds, rate=rate)


def prometheus(cluster: DevCluster, promql: str) -> list[dict[str, Any]]:
    url = f"{cluster.prometheus_url()}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())["data"]["result"]  # type: ignore[no-any-return]


def canary_weight(status: dict[str, Any]) -> int:
    return int((status.get("weights") or {}).get("canary", 0))


def until_status(
    kube: Kubectl, ns: str, predicate: Any, *, timeout: float, what: str, load: Traffic | None = None
) -> dict[str, Any]:
    """The MD's status once ``predicate`` holds; fails at once when a user request failed meanwhile."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert load is None or not load.failures(), (
            f"user requests failed while waiting for {what}: {load.failures()[:3]}"
        )
        status = md_status(kube, ns)
        if predicate(status):
            return status
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; status: {json.dumps(status)[:3000]}")


def test_validate_serve_canary_promote_then_broken_versions_never_reach_users(
    local_cluster: DevCluster,
    kube: Kubectl,
    ns: str,
    operator: None,
    artifacts: tuple[str, Path],
    artifact_cache: Path,
) -> None:
    base, root = artifacts
    timings: dict[str, float] = {}

    # 1. version 1: validated by a Job that really runs, then served
    model = binary_op(root / "v1.onnx")
    digest = sha256(model)
    started = time.monotonic()
    kube.apply([model_version("adder-1", "1", f"{base}/v1.onnx", digest), model_deployment("1", CANARY)], ns)
    mv = wait_for(lambda: mv_phase(kube, "adder-1", ns, "Ready"), timeout=60, interval=0.3, what="adder-1 Ready")
    timings["apply -> ModelVersion Ready"] = time.monotonic() - started
    status = mv["status"]
    assert status["artifact"]["digest"] == digest
    assert status["artifact"]["sizeBytes"] == model.stat().st_size
    assert [(t["name"], t["datatype"]) for t in status["signature"]["inputs"]] == [("A", "FP32"), ("B", "FP32")]
    assert [(t["name"], t["datatype"]) for t in status["signature"]["outputs"]] == [("OUT0", "FP32"), ("OUT1", "FP32")]
    assert status["loadSeconds"] >= 0
    assert condition(mv, "ArtifactVerified")["status"] == "True"
    # the validation Job really ran on the node and finished (the operator reads its pod, so the Job's own status
    # may follow a moment later)
    jobs = kube.get("jobs", namespace=ns)["items"]
    assert len(jobs) == 1
    job = jobs[0]["metadata"]["name"]
    wait_for(lambda: kube.get("job", job, ns)["status"].get("succeeded") == 1, timeout=15, what=f"job {job} done")
    job_pods = kube.get("pods", namespace=ns, labels=f"job-name={job}")["items"]
    assert [p["spec"]["nodeName"] for p in job_pods] == [NODE]
    assert job_pods[0]["status"]["phase"] == "Succeeded"

    def first_answer(version: str = "1", md: str = "adder") -> str | None:
        for pod in ready_pods(kube, ns, version, md):
            try:
                if answer(pod["status"]["podIP"]):
                    return str(pod["status"]["podIP"])
            except Exception:  # noqa: S112  (Ready a moment before it answers: try again)
                continue
        return None

    ip = wait_for(first_answer, timeout=60, interval=0.1, what="a correct answer from a version-1 pod")
    timings["apply -> first correct answer (cold)"] = time.monotonic() - started
    assert ip.startswith("10.244.100.")
    wait_for(lambda: len(ready_pods(kube, ns, "1")) == 2, timeout=60, what="both version-1 pods Ready")
    assert {p["spec"]["nodeName"] for p in ready_pods(kube, ns, "1")} == {NODE}
    until_status(kube, ns, lambda s: s.get("phase") == "Healthy", timeout=30, what="adder Healthy")
    # through the Service's virtual IP (kube-proxy on the node)
    vip = kube.get("service", "adder", ns)["spec"]["clusterIP"]
    wait_for(lambda: answers(vip), timeout=20, interval=0.3, what=f"a correct answer through the Service IP {vip}")

    with send(local_cluster, ns, "adder", rate=25) as users:
        # through the Service (its ready endpoints), to both pods; Prometheus scrapes each pod's series
        wait_for(lambda: len({r.pod_ip for r in users.results if r.ok}) == 2, timeout=20, what="both pods answering")
        pods = {p["metadata"]["name"] for p in ready_pods(kube, ns, "1")}
        series = f'modelyard_inference_requests_total{{namespace="{ns}",model="adder",version="1"}}'

        def scraped() -> set[str]:
            return {r["metric"].get("pod", "") for r in prometheus(local_cluster, series) if float(r["value"][1]) > 0}

        wait_for(lambda: scraped() == pods, timeout=30, interval=0.5, what="Prometheus has both pods' request counts")

        # 2. version 2: a canary through the steps, promoted on the error rate Prometheus measures
        v2 = binary_op(root / "v2.onnx")  # the same function, a new artifact
        kube.apply([model_version("adder-2", "2", f"{base}/v2.onnx", sha256(v2)), model_deployment("2", CANARY)], ns)
        at_50 = until_status(kube, ns, lambda s: s.get("canaryVersion") == "2" and canary_weight(s) == 50,
                             timeout=90, what="canary at 50 %", load=users)  # fmt: skip
        assert at_50["stableVersion"] == "1"
        promoted = until_status(kube, ns, lambda s: s.get("stableVersion") == "2" and s.get("phase") == "Healthy",
                                timeout=120, what="version 2 promoted", load=users)  # fmt: skip
        assert [(h["version"], h["outcome"]) for h in promoted["history"]] == [("2", "Promoted")]
        wait_for(lambda: not ready_pods(kube, ns, "1") and len(ready_pods(kube, ns, "2")) == 2, timeout=60,
                 what="version 1 pods gone, two version-2 pods")  # fmt: skip
        since_promotion = time.monotonic()
        wait_for(lambda: users.versions(since_promotion).get("2", 0) >= 10, timeout=20, what="users on version 2")
        assert set(users.versions()) == {"1", "2"}
        both = [r for r in users.results if r.ok and r.version == "2"]
        assert any(r.at < max(r1.at for r1 in users.results if r1.version == "1") for r in both), (
            "versions 1 and 2 never served side by side during the canary"
        )

        # 3. version 3: tampered after its digest was taken: fails validation, never gets a pod
        tampered = binary_op(root / "v3.onnx", op="Mul")
        pinned = sha256(tampered)
        tampered.write_bytes(tampered.read_bytes() + b"\0")
        kube.apply([model_version("adder-3", "3", f"{base}/v3.onnx", pinned), model_deployment("3", CANARY)], ns)
        mv = wait_for(lambda: mv_phase(kube, "adder-3", ns, "Failed"), timeout=60, interval=0.3, what="adder-3 Failed")
        verified = condition(mv, "ArtifactVerified")
        assert (verified["status"], verified["reason"]) == ("False", "DigestMismatch")
        degraded = until_status(kube, ns, lambda s: s.get("phase") == "Degraded", timeout=30,
                                what="adder Degraded", load=users)  # fmt: skip
        assert "adder-3" in next(c for c in degraded["conditions"] if c["type"] == "Degraded")["message"]
        assert degraded["stableVersion"] == "2"
        assert model_pods(kube, ns, "3") == []

        # 4. version 4: fails at run time; a blue/green copy gets preview traffic only, and is rolled back
        broken = failing_model(root / "v4.onnx")
        kube.apply([model_version("adder-4", "4", f"{base}/v4.onnx", sha256(broken)),
                    model_deployment("4", BLUE_GREEN)], ns)  # fmt: skip
        until_status(kube, ns, lambda s: s.get("canaryVersion") == "4", timeout=60, what="version 4 copy", load=users)
        with send(local_cluster, ns, "adder-canary", rate=10) as previews:
            rolled_back = until_status(kube, ns, lambda s: s.get("phase") == "RolledBack", timeout=120,
                                       what="version 4 rolled back", load=users)  # fmt: skip
        # the copy failed every preview (after the rollback <md>-canary points at the stable version again)
        assert previews.failures(), "no preview request reached the copy"
        assert all("[500] model adder version 4 failed" in r.error for r in previews.failures()), previews.failures()[
            :3
        ]
        assert set(previews.versions()) <= {"2"}
        assert rolled_back["stableVersion"] == "2"
        assert rolled_back["rolledBackVersions"] == ["4"]
        assert rolled_back["lastDecision"]["reason"] == "CriticalMetricFailed"
        wait_for(lambda: model_pods(kube, ns, "4") == [], timeout=60,
                 what="the failing copy removed")  # fmt: skip
        after = time.monotonic()
        wait_for(lambda: users.versions(after).get("2", 0) >= 10, timeout=20, what="users still on version 2")

    # a second ModelDeployment of the validated version 2: its pods find the artifact in the node's cache
    assert list((artifact_cache / ns / "sha256").iterdir()), "nothing entered the node's artifact cache"
    started = time.monotonic()
    kube.apply(model_deployment("2", name="adder-b"), ns)
    wait_for(lambda: first_answer("2", "adder-b"), timeout=60, interval=0.1, what="a correct answer from adder-b")
    timings["apply -> first correct answer (validated, cached artifact)"] = time.monotonic() - started
    pod = ready_pods(kube, ns, "2", "adder-b")[0]
    loader_log = kube.run("logs", pod["metadata"]["name"], "-n", ns, "-c", "loader").stdout
    # its result is a JSON line on stdout; kubectl logs interleaves it with the log lines of stderr
    outcomes = [json.loads(line) for line in loader_log.splitlines() if line.startswith("{")]
    assert outcomes, loader_log
    assert outcomes[-1]["cacheHit"] is True, loader_log

    # not one user request failed or got a wrong answer, through four versions
    assert users.results
    assert not users.failures(), users.failures()[:5]
    assert set(users.versions()) == {"1", "2"}

    timings["user requests (all answered right)"] = len(users.results)
    for label, value in timings.items():
        print(f"{label}: {value:.1f}" if isinstance(value, float) else f"{label}: {value}")
    (REPO / ".pytest_cache").mkdir(exist_ok=True)
    (REPO / ".pytest_cache" / "full-loop-timings.json").write_text(json.dumps(timings, indent=1))
