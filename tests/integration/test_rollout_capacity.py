"""Rollout capacity on the real node (kubelet, containerd, the project's images, the operator installed by the
chart), with a client sending checked requests over the Service's ready endpoints throughout (hack/traffic.py):

1. the replicas router at 1 replica under a 10 % step: the stable pod stays, one canary pod is surged beside
   it, ``status.weights`` says 50 % (with a Warning Event saying why), and the share each version actually
   answered matches it; the canary never gets all the traffic before promotion;
2. the inPod router at 2 replicas through a canary, its promotion and a rollback: never more than
   ``replicas + 1`` model pods (peak measured by watching the pods, counting the pods being deleted whose
   containers still run), and not one failed user request; in static and in dynamic loading the canary joins
   through the loader sidecars' versions list, so its load and its rollback replace no pod (the same pods, never
   more than ``replicas``);
3. the inPod router with a canary that needs its own loader (warm-up samples): the two rolls that add and remove
   that loader are paced (no surge, each new pod Ready for longer than an old pod's drain before the next old one
   goes), so counting the pods being deleted the model still never has more than ``replicas + 1`` pods.

Its own cluster with the real node (one real node per machine: modules that use one run one after the other).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devcluster import DevCluster
from kubeapi import Kube
from realnode import GATEWAY, PLACEMENT

from ..conftest import REPO, Kubectl, real_node_fixtures, serve_directory, wait_for
from ..models import binary_op
from .test_full_loop import model_version, send, sha256

pytestmark = pytest.mark.timeout(600)

REPORT = REPO / ".pytest_cache" / "rollout-capacity.json"


local_cluster, kube, ns = real_node_fixtures("capacity-cluster", ns="capacity", name="local_cluster")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("capacity-artifacts")
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}", root


@pytest.fixture(scope="module")
def operator(local_cluster: DevCluster, ns: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.mktemp("capacity-node") / "artifact-cache"
    cache.mkdir()
    os.chown(cache, 65532, 65532)
    local_cluster.install_chart({"operator.watchNamespaces": "{" + ns + "}",
                                 "operator.loaderAllowHosts": "{" + GATEWAY + "}",
                                 "operator.artifactCache.hostPath": str(cache)})  # fmt: skip


@pytest.fixture(scope="module")
def versions(kube: Kubectl, ns: str, artifacts: tuple[str, Path], operator: None) -> list[str]:
    """Versions 1, 2 and 3 of the adder, validated (a Job each on the node)."""
    base, root = artifacts
    names = []
    for version in ("1", "2", "3"):
        model = binary_op(root / f"v{version}.onnx")
        names.append(f"adder-{version}")
        kube.apply(model_version(f"adder-{version}", version, f"{base}/v{version}.onnx", sha256(model)), ns)
    for name in names:
        wait_for(lambda n=name: (kube.get("modelversion", n, ns) or {}).get("status", {}).get("phase") == "Ready",
                 timeout=120, interval=0.5, what=f"{name} validated")  # fmt: skip
    return names


def model_deployment(name: str, version: str, replicas: int, rollout: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"model": "adder", "version": version, "replicas": replicas, "placement": PLACEMENT,
                     "resources": {"requests": {"cpu": "50m"}}, "rollout": rollout, **spec}}  # fmt: skip


def status_of(kube: Kubectl, ns: str, name: str) -> dict[str, Any]:
    return dict((kube.get("modeldeployment", name, ns) or {}).get("status") or {})


def until(kube: Kubectl, ns: str, name: str, predicate: Any, *, timeout: float, what: str, load: Any) -> dict[str, Any]:
    """The MD's status once ``predicate`` holds; fails at once when a user request failed meanwhile."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert not load.failures(), f"user requests failed while waiting for {what}: {load.failures()[:3]}"
        status = status_of(kube, ns, name)
        if predicate(status):
            return status
        time.sleep(0.3)
    objects = kube.run("get", "deploy,rs,pods", "-o", "wide", "-n", ns, check=False).stdout
    events = kube.run("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout[-4000:]
    events += kube.run("logs", "-n", "modelyard-system", "deploy/modelyard-operator", "--tail=40", check=False).stdout
    pytest.fail(f"timed out after {timeout}s waiting for {what}; status: {status}\n{objects}\n{events}")


@dataclass
class PodCount:
    """Watches a ModelDeployment's model pods (not validation Jobs') and keeps the peak counts."""

    kube: Kube
    namespace: str
    md: str
    peak: int = 0  # pods not being deleted
    peak_with_terminating: int = 0  # and those being deleted whose containers still run
    samples: int = 0
    timeline: list[tuple[float, list[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def count(self) -> tuple[int, int]:
        pods = self.kube.get(f"/api/v1/namespaces/{self.namespace}/pods",
                             labelSelector=f"app.kubernetes.io/instance={self.md},!job-name")["items"]  # fmt: skip
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        # Kubernetes' "terminating" (what a Deployment's status.terminatingReplicas counts): deletion started and
        # the pod not terminal yet, i.e. its containers still run; a terminal one only waits for the API to drop it
        stopped = [p for p in pods if p not in live and (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
        seen = sorted(p["metadata"]["name"] + (" (stopped)" if p in stopped else " (deleting)" if p not in live else "")
                      for p in pods)  # fmt: skip
        if not self.timeline or self.timeline[-1][1] != seen:  # printed at the end: which pods existed when
            self.timeline.append((round(time.monotonic(), 2), seen))
        return len(live), len(pods) - len(stopped)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                live, total = self.count()
            except Exception:  # noqa: S112  (an API hiccup: the next sample counts)
                continue
            self.peak, self.peak_with_terminating = max(self.peak, live), max(self.peak_with_terminating, total)
            self.samples += 1
            self._stop.wait(0.1)

    def __enter__(self) -> PodCount:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


def healthy(version: str) -> Any:
    return lambda s: s.get("stableVersion") == version and s.get("phase") == "Healthy" and not s.get("canaryVersion")


def paused_at(weight: int) -> Any:
    return lambda s: s.get("phase") == "Paused" and s.get("requestedWeight") == weight


def write_report(key: str, values: dict[str, Any]) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[key] = values
    REPORT.write_text(json.dumps(report, indent=1))
    print(key, values)


def test_one_replica_at_ten_percent_is_half_and_half_never_all_to_the_canary(
    local_cluster: DevCluster, kube: Kubectl, ns: str, versions: list[str]
) -> None:
    name = "small"
    rollout = {"strategy": "canary", "trafficRouter": "replicas", "steps": [{"setWeight": 10}, {"pause": {}}]}
    kube.apply(model_deployment(name, "1", 1, rollout), ns)
    wait_for(lambda: healthy("1")(status_of(kube, ns, name)), timeout=120, interval=0.5, what="version 1 Healthy")
    with send(local_cluster, ns, name, rate=20) as users:
        wait_for(lambda: users.versions().get("1", 0) >= 10, timeout=30, what="users on version 1")
        kube.apply(model_deployment(name, "2", 1, rollout), ns)
        at_10 = until_canary(kube, ns, name, users)
        assert at_10["weights"] == {"stable": 50, "canary": 50}
        assert at_10["requestedWeight"] == 10
        deployments = {d["metadata"]["name"]: d["spec"]["replicas"] for d in kube.get("deployments", namespace=ns,
                       labels=f"app.kubernetes.io/instance={name}")["items"]}  # fmt: skip
        assert deployments == {f"{name}-1": 1, f"{name}-2": 1}  # the stable pod stays; the canary's is surged
        events = [e for e in kube.get("events", namespace=ns)["items"]
                  if e["reason"] == "WeightNotExpressible" and e["involvedObject"]["name"] == name]  # fmt: skip
        assert events, "no WeightNotExpressible event"
        assert events[0]["type"] == "Warning"
        assert "canary weight 10% is 50% in effect with 1 replica(s)" in events[0]["message"]
        # the share each version answered while the step holds (the client follows the ready endpoints)
        window = time.monotonic()
        time.sleep(8)
        answered = users.versions(window)
        total = sum(answered.values())
        share = answered.get("2", 0) / total
        assert total >= 80
        assert 0.35 <= share <= 0.65, answered
        assert answered.get("1", 0) > 0, "all traffic went to the canary"
        # approve: the canary takes over, then the stable version goes
        body = model_deployment(name, "2", 1, {**rollout, "action": {"type": "approve", "nonce": "1"}})
        kube.apply(body, ns)
        until(kube, ns, name, healthy("2"), timeout=120, what="version 2 promoted", load=users)
        after = time.monotonic()
        wait_for(lambda: users.versions(after).get("2", 0) >= 10, timeout=30, what="users on version 2")
    assert not users.failures(), users.failures()[:5]
    before_canary = [r for r in users.results if r.at < window]
    write_report("replicas router, 1 replica, setWeight 10", {
        "status.weights": at_10["weights"], "answered during the step": answered,
        "canary share answered": round(share, 3), "user requests": len(users.results),
        "failed": len(users.failures()), "requests before the step": len(before_canary)})  # fmt: skip


def until_canary(kube: Kubectl, ns: str, name: str, users: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        assert not users.failures(), users.failures()[:3]
        status = status_of(kube, ns, name)
        if paused_at(10)(status) and (status.get("weights") or {}).get("canary") == 50:
            return status
        # before the canary pod is Ready nothing goes to it; at no point does it have all the traffic
        assert (status.get("weights") or {}).get("canary", 0) <= 50, status
        time.sleep(0.3)
    pytest.fail(f"canary never reached its step: {status_of(kube, ns, name)}")


def live_pods(kube: Kubectl, ns: str, name: str) -> list[str]:
    pods = kube.get("pods", namespace=ns, labels=f"app.kubernetes.io/instance={name},!job-name")["items"]
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


def loaded_versions(kube: Kubectl, ns: str, name: str) -> dict[str, set[str]]:
    """The versions each live, Ready model pod's server has loaded (its repository index, over the pod's address)."""
    import urllib.request

    out = {}
    for pod in kube.get("pods", namespace=ns, labels=f"app.kubernetes.io/instance={name},!job-name")["items"]:
        conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        if pod["metadata"].get("deletionTimestamp") or conditions.get("Ready") != "True":
            continue
        request = urllib.request.Request(f"http://{pod['status']['podIP']}:8080/v2/repository/index", data=b"{}")
        with urllib.request.urlopen(request, timeout=5) as resp:
            index = json.loads(resp.read())
        out[pod["metadata"]["name"]] = {e["version"] for e in index if e.get("state") == "READY"}
    return out


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_in_pod_rollout_never_exceeds_replicas_plus_one_pods_and_loses_no_request(
    local_cluster: DevCluster, kube: Kubectl, ns: str, versions: list[str], mode: str
) -> None:
    """The canary joins the pods through their loader sidecars' versions list (dynamic loading's own sidecar, or in
    static loading one that does only that), replacing no pod at all; the promotion hands the pods over one at a
    time."""
    name = f"shared-{mode}"
    replicas = 2
    rollout = {"strategy": "canary", "trafficRouter": "inPod", "steps": [{"setWeight": 50}, {"pause": {}}]}
    # dynamic loading under a memory budget: the versions the operator lists are held, never evicted by it
    loading = {"loading": {"mode": mode, **({"memoryBudget": "64Mi"} if mode == "dynamic" else {})}}
    kube.apply(model_deployment(name, "1", replicas, rollout, **loading), ns)
    wait_for(lambda: healthy("1")(status_of(kube, ns, name)), timeout=120, interval=0.5, what="version 1 Healthy")
    api = Kube(local_cluster.kubeconfig)
    timings: dict[str, float] = {}
    with send(local_cluster, ns, name, rate=20) as users, PodCount(api, ns, name) as pods:
        wait_for(lambda: users.versions().get("1", 0) >= 10, timeout=30, what="users on version 1")
        started = time.monotonic()
        # 1. version 2 loaded into the same pods (rolled one at a time), then half the requests each
        before_canary = live_pods(kube, ns, name)
        kube.apply(model_deployment(name, "2", replicas, rollout, **loading), ns)
        until(kube, ns, name, paused_at(50), timeout=180, what="version 2 at 50 %", load=users)
        timings["start -> 50 %"] = time.monotonic() - started
        window = time.monotonic()
        wait_for(lambda: users.versions(window).get("2", 0) >= 20, timeout=120, what="version 2 answering")
        split = users.versions(window)
        with_canary = live_pods(kube, ns, name)
        both = {"1", "2"}
        wait_for(lambda: list(loaded_versions(kube, ns, name).values()) == [both] * replicas, timeout=60,
                 what="versions 1 and 2 loaded in every pod")  # fmt: skip
        # 2. promoted: the old Deployment's pods (both versions loaded) hand over to version 2's a pod at a time,
        # growing only into the room that pods being deleted leave: counted with them, never above replicas + 1
        wait_for(lambda: pods.count() == (replicas, replicas), timeout=60, what="no pod being deleted")
        rolled_peak = (pods.peak, pods.peak_with_terminating)
        pods.peak = pods.peak_with_terminating = replicas
        started = time.monotonic()
        approve = {**rollout, "action": {"type": "approve", "nonce": "p"}}
        kube.apply(model_deployment(name, "2", replicas, approve, **loading), ns)
        until(kube, ns, name, healthy("2"), timeout=180, what="version 2 promoted", load=users)
        wait_for(lambda: [d["metadata"]["name"] for d in kube.get("deployments", namespace=ns,
                 labels=f"app.kubernetes.io/instance={name}")["items"]] == [f"{name}-2"],
                 timeout=180, what="version 1's Deployment gone")  # fmt: skip
        timings["promotion -> handed over"] = time.monotonic() - started
        wait_for(lambda: pods.count() == (replicas, replicas), timeout=60, what="version 1's pods gone")
        promote_peak = (pods.peak, pods.peak_with_terminating)
        pods.peak = pods.peak_with_terminating = replicas
        # 3. version 3, rolled back by an abort: the canary is unloaded from the same Deployment's pods
        before_rollback = live_pods(kube, ns, name)
        kube.apply(model_deployment(name, "3", replicas, rollout, **loading), ns)
        until(kube, ns, name, paused_at(50), timeout=180, what="version 3 at 50 %", load=users)
        window = time.monotonic()
        wait_for(lambda: users.versions(window).get("3", 0) >= 10, timeout=120, what="version 3 answering")
        started = time.monotonic()
        abort = {**rollout, "action": {"type": "abort", "nonce": "a"}}
        kube.apply(model_deployment(name, "3", replicas, abort, **loading), ns)
        until(kube, ns, name, lambda s: s.get("phase") == "RolledBack", timeout=60, what="rolled back", load=users)
        deployment = f"{name}-2"
        wait_for(lambda: kube.get("deployment", deployment, ns)["metadata"]["annotations"]["modelyard.dev/versions"]
                 == "2" and kube.get("deployment", deployment, ns)["status"].get("updatedReplicas") == replicas
                 and kube.get("deployment", deployment, ns)["status"].get("replicas") == replicas,
                 timeout=180, what="version 3 unloaded from version 2's pods")  # fmt: skip
        timings["abort -> canary unloaded"] = time.monotonic() - started

        def only_version_2() -> bool:  # the pods' view of the weights follows the ConfigMap within the kubelet's sync
            recent = users.versions(time.monotonic() - 3)
            return set(recent) == {"2"} and recent["2"] >= 10

        wait_for(only_version_2, timeout=90, interval=1, what="only version 2 answering")
        timings["abort -> only version 2 answers"] = time.monotonic() - started
        wait_for(lambda: list(loaded_versions(kube, ns, name).values()) == [{"2"}] * replicas, timeout=60,
                 what="version 3 unloaded from every pod")  # fmt: skip
        server_args = kube.get("deployment", deployment, ns)["spec"]["template"]["spec"]["containers"][0]["args"]
        after_rollback = live_pods(kube, ns, name)
    for at, seen in pods.timeline:  # shown on a failure: which pods existed when
        print(f"{at:.2f} {' '.join(seen)}")
    assert pods.samples > 100
    assert max(pods.peak, rolled_peak[0], promote_peak[0]) <= replicas + 1, (rolled_peak, promote_peak, pods.peak)
    assert promote_peak[1] <= replicas + 1, promote_peak  # the handover: pods being deleted counted too
    assert not users.failures(), users.failures()[:5]
    assert split.get("1", 0) > 0, split
    assert split.get("2", 0) > 0, split
    assert set(users.versions()) <= {"1", "2", "3"}
    if mode == "dynamic":
        assert server_args[server_args.index("--memory-budget") + 1] == "64Mi", server_args
    # the canary came and went through the sidecars' versions list: not one pod replaced
    assert with_canary == before_canary, (before_canary, with_canary)
    assert after_rollback == before_rollback, (before_rollback, after_rollback)
    assert rolled_peak == (replicas, replicas), rolled_peak
    assert (pods.peak, pods.peak_with_terminating) == (replicas, replicas)
    write_report(f"inPod router, {mode} loading, {replicas} replicas", {
        "peak model pods (not terminating)": max(pods.peak, rolled_peak[0], promote_peak[0]),
        "peak incl. terminating": max(pods.peak_with_terminating, rolled_peak[1], promote_peak[1]),
        "peak through the canary's start": rolled_peak, "peak through promotion": promote_peak,
        "peak through the rollback": (pods.peak, pods.peak_with_terminating),
        "pod samples": pods.samples, "user requests": len(users.results),
        "failed": len(users.failures()), "answered at 50 %": split, "answered in all": users.versions(),
        **{k: round(v, 1) for k, v in timings.items()}})  # fmt: skip


@pytest.fixture(scope="module")
def warmed_version(kube: Kubectl, ns: str, artifacts: tuple[str, Path], operator: None) -> str:
    """Version 4 of the adder with digest-pinned warm-up samples: an init container the stable pods lack, so an
    inPod canary of it joins them through a second loader in their pod template."""
    base, root = artifacts
    model = binary_op(root / "v4.onnx")
    sample = {"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]} for n in "AB"]}
    (root / "warmup.json").write_text(json.dumps([sample]))
    body = model_version("adder-4", "4", f"{base}/v4.onnx", sha256(model))
    samples = {"uri": f"{base}/warmup.json", "digest": sha256(root / "warmup.json")}
    body["spec"]["warmup"] = {"requests": 2, "samples": samples}
    kube.apply(body, ns)
    wait_for(lambda: (kube.get("modelversion", "adder-4", ns) or {}).get("status", {}).get("phase") == "Ready",
             timeout=120, interval=0.5, what="adder-4 validated")  # fmt: skip
    return "4"


def test_in_pod_canary_with_its_own_loader_rolls_paced_never_above_replicas_plus_one_pods_draining_included(
    local_cluster: DevCluster, kube: Kubectl, ns: str, versions: list[str], warmed_version: str
) -> None:
    """Adding the canary's loader and removing it again roll every pod. Paced (maxSurge 0, maxUnavailable 1,
    minReadySeconds longer than an old pod's drain), the pods being deleted are counted in ``replicas + 1``;
    the strategy surges again once the roll has settled."""
    name, canary, replicas = "paced", warmed_version, 2
    rollout = {"strategy": "canary", "trafficRouter": "inPod", "steps": [{"setWeight": 50}, {"pause": {}}]}
    kube.apply(model_deployment(name, "1", replicas, rollout), ns)
    wait_for(lambda: healthy("1")(status_of(kube, ns, name)), timeout=120, interval=0.5, what="version 1 Healthy")
    api = Kube(local_cluster.kubeconfig)
    deployment = f"{name}-1"
    timings: dict[str, float] = {}

    def strategy() -> tuple[dict[str, Any], int]:
        spec = kube.get("deployment", deployment, ns)["spec"]
        return spec["strategy"]["rollingUpdate"], int(spec.get("minReadySeconds") or 0)

    assert strategy() == ({"maxUnavailable": 0, "maxSurge": 1}, 0)  # before: a roll of its own template surges
    with send(local_cluster, ns, name, rate=20) as users, PodCount(api, ns, name) as pods:
        wait_for(lambda: users.versions().get("1", 0) >= 10, timeout=30, what="users on version 1")
        before = live_pods(kube, ns, name)
        started = time.monotonic()
        kube.apply(model_deployment(name, canary, replicas, rollout), ns)
        until(kube, ns, name, paused_at(50), timeout=240, what=f"version {canary} at 50 %", load=users)
        timings["start -> 50 %"] = time.monotonic() - started
        paced = strategy()
        template = kube.get("deployment", deployment, ns)["spec"]["template"]["spec"]
        loaders = [c["name"] for c in template["initContainers"]]
        window = time.monotonic()
        wait_for(lambda: users.versions(window).get(canary, 0) >= 10, timeout=120, what=f"version {canary} answering")
        split = users.versions(window)
        wait_for(lambda: pods.count() == (replicas, replicas), timeout=60, what="no pod being deleted")
        load_peak = (pods.peak, pods.peak_with_terminating)
        with_canary = live_pods(kube, ns, name)
        pods.peak = pods.peak_with_terminating = replicas
        started = time.monotonic()
        abort = {**rollout, "action": {"type": "abort", "nonce": "a"}}
        kube.apply(model_deployment(name, canary, replicas, abort), ns)
        until(kube, ns, name, lambda s: s.get("phase") == "RolledBack", timeout=60, what="rolled back", load=users)
        wait_for(lambda: strategy() == ({"maxUnavailable": 0, "maxSurge": 1}, 0)
                 and kube.get("deployment", deployment, ns)["status"].get("updatedReplicas") == replicas,
                 timeout=240, what="the canary's loader removed and the strategy back to surging")  # fmt: skip
        timings["abort -> unloaded, settled"] = time.monotonic() - started
        wait_for(lambda: pods.count() == (replicas, replicas), timeout=60, what="no pod being deleted")
        unload_peak = (pods.peak, pods.peak_with_terminating)
        after = live_pods(kube, ns, name)
    for at, seen in pods.timeline:  # shown on a failure: which pods existed when
        print(f"{at:.2f} {' '.join(seen)}")
    assert f"loader-{canary}" in loaders, loaders
    assert paced == ({"maxUnavailable": 1, "maxSurge": 0}, 10), paced
    assert not set(before) & set(with_canary), (before, with_canary)  # the loader came in by replacing every pod
    assert not set(with_canary) & set(after), (with_canary, after)  # and went out the same way
    assert pods.samples > 100
    assert load_peak[1] <= replicas + 1, load_peak  # the pods being deleted counted too
    assert unload_peak[1] <= replicas + 1, unload_peak
    assert not users.failures(), users.failures()[:5]
    assert split.get("1", 0) > 0, split
    assert split.get(canary, 0) > 0, split
    write_report(f"inPod router, a canary with its own loader, {replicas} replicas", {
        "peak through the canary's load (not terminating, incl. terminating)": load_peak,
        "peak through its unload": unload_peak, "pod samples": pods.samples, "user requests": len(users.results),
        "failed": len(users.failures()), "answered at 50 %": split,
        **{k: round(v, 1) for k, v in timings.items()}})  # fmt: skip
