"""Chaos on the real node (kubelet, containerd, the project's images) with the real control plane and Prometheus:
the operator is SIGKILLed at every rollout step, the API server is stopped for 60 s mid-rollout, etcd is compacted
under the operator's watches (410 Gone, a forced relist), model pods die together with the operator, and a
ModelDeployment is deleted while no operator runs (docs/operator.md, "Crashes and outages";
security-checklist items 15, 16, 17, 22 and 25). Each test prints its figures.

The operator runs here as a process (``KillableOperator``) so a kill is a real SIGKILL and a restart is immediate;
it watches one namespace whose versions were validated by Jobs on the node. A client sends checked requests over
the Service's ready endpoints throughout (hack/traffic.py). One module, one cluster: the tests follow one story
(versions 1 → 2 → 3 (rolled back) → 4 → 5) and each starts from the previous one's end state.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from devcluster import DevCluster, dev_analysis
from kubeapi import Kube
from realnode import GATEWAY, PLACEMENT
from traffic import Endpoints

from ..conftest import Kubectl, real_node_fixtures, serve_directory, wait_for
from ..integration.test_full_loop import model_version, send, sha256
from ..models import binary_op, failing_model
from .support import KillableOperator, StatusWatch, probe, report

pytestmark = pytest.mark.timeout(420)

NAME = "adder"
ANALYSIS = dev_analysis(
    [{"name": "error-rate", "template": "errorRate", "max": 0.05, "critical": True}], min_requests=20
)
STEPS = [{"setWeight": 25}, {"setWeight": 50}, {"analyze": {"minDuration": "6s", "maxDuration": "5m"}}, {"pause": {}},
         {"setWeight": 75}]  # fmt: skip
SELECTOR = f"app.kubernetes.io/instance={NAME}"


local_cluster, kube, ns = real_node_fixtures(
    "chaos-cluster",
    images=["modelyard-runtime"],
    ns="chaos",
    name="local_cluster",
    crds=True,
    prometheus=True,
    audit=True,
)


@pytest.fixture(scope="module")
def operator(
    local_cluster: DevCluster, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KillableOperator]:
    url = local_cluster.prometheus_url()
    assert url, "the cluster has no Prometheus"
    op = KillableOperator(
        local_cluster.dir / "operator.kubeconfig",  # the audited identity
        tmp_path_factory.mktemp("chaos-operator") / "operator.log",
        f"--namespace={ns}", f"--prometheus-url={url}", f"--loader-allow-hosts={GATEWAY}",
        f"--runtime-image={local_cluster.image('modelyard-runtime')}",
        f"--validation-placement={json.dumps({'nodeSelector': PLACEMENT['nodeSelector']})}",
    )  # fmt: skip
    op.start()
    yield op
    op.stop()
    assert "Traceback" not in op.tail(10**7), op.tail()


@pytest.fixture(scope="module")
def versions(
    kube: Kubectl, ns: str, operator: KillableOperator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Versions 1 to 5 of the adder, validated by Jobs on the node; 3 fails at run time (a model that errors)."""
    root = tmp_path_factory.mktemp("chaos-artifacts")
    with serve_directory(root) as port:
        for version in "12345":
            path = root / f"v{version}.onnx"
            model = failing_model(path) if version == "3" else binary_op(path)
            uri = f"http://{GATEWAY}:{port}/v{version}.onnx"
            kube.apply(model_version(f"{NAME}-{version}", version, uri, sha256(model)), ns)
        for version in "12345":
            wait_for(lambda v=version: phase_of(kube, ns, f"{NAME}-{v}") == "Ready", timeout=180, interval=0.5,
                     what=f"{NAME}-{version} validated")  # fmt: skip
        yield


def phase_of(kube: Kubectl, ns: str, mv: str) -> str | None:
    return ((kube.get("modelversion", mv, ns) or {}).get("status") or {}).get("phase")


def model_deployment(
    version: str, rollout: dict[str, Any] | None = None, action: dict[str, str] | None = None
) -> dict[str, Any]:
    rollout = rollout or {"strategy": "canary", "steps": STEPS, "analysis": ANALYSIS}
    spec: dict[str, Any] = {"model": NAME, "version": version, "replicas": 1, "placement": PLACEMENT,
                            "resources": {"requests": {"cpu": "50m"}}, "rollout": rollout}  # fmt: skip
    if action:
        spec["rollout"] = {**spec["rollout"], "action": action}
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": NAME}, "spec": spec}


def rollout_events(kube: Kubectl, ns: str) -> list[dict[str, Any]]:
    uid = kube.get("modeldeployment", NAME, ns)["metadata"]["uid"]
    items = kube.get("events", namespace=ns)["items"]
    return [e for e in items if e["involvedObject"].get("uid") == uid and e["reason"].startswith("Rollout")]


def weights_never_regress(watch: StatusWatch, canary: str) -> tuple[list[int], list[int]]:
    """The requested and the effective canary weights sampled while ``canary`` was rolled out, each checked never to
    go down; returned as the distinct values in order."""
    requested: list[int] = []
    effective: list[int] = []
    for sample in watch.samples:
        s = sample.status
        if s.get("canaryVersion") != canary:
            continue
        for series, value in (
            (requested, s.get("requestedWeight")),
            (effective, (s.get("weights") or {}).get("canary")),
        ):
            if value is None:
                continue
            assert not series or value >= series[-1], f"canary weight went from {series[-1]} to {value}: {s}"
            if not series or value != series[-1]:
                series.append(value)
    return requested, effective


def no_duplicate_children(watch: StatusWatch, kube: Kubectl, ns: str) -> int:
    """Never two Deployments for one version, never more than stable + canary; one validation Job per version.
    Returns the most Deployments seen at once."""
    most = 0
    for sample in watch.samples:
        versions = [d.rsplit("-", 1)[1] for d in sample.deployments]
        assert len(versions) == len(set(versions)) <= 2, sample.deployments
        most = max(most, len(versions))
    jobs = Counter(
        j["metadata"]["labels"].get("modelyard.dev/validates", "") for j in kube.get("jobs", namespace=ns)["items"]
    )
    assert all(n == 1 for n in jobs.values()), jobs
    return most


def restart(operator: KillableOperator, what: str, log: list[str]) -> None:
    """SIGKILL the operator and start it again at once; note the time it took to be ready."""
    operator.kill()
    took = operator.start()
    log.append(f"{what}: ready {took:.1f}s after the SIGKILL")


def test_sigkill_at_every_rollout_step_same_end_state_each_decision_once(
    local_cluster: DevCluster, kube: Kubectl, ns: str, operator: KillableOperator, versions: None
) -> None:
    kube.apply(model_deployment("1"), ns)
    watch = StatusWatch(Kube(local_cluster.kubeconfig), ns, NAME).start()
    kills: list[str] = []
    try:
        watch.until(lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == "1", timeout=120,
                    what="version 1 Healthy")  # fmt: skip
        with send(local_cluster, ns, NAME, rate=20) as users:
            wait_for(lambda: users.versions().get("1", 0) >= 5, timeout=30, what="users answered by version 1")
            started = time.monotonic()
            kube.apply(model_deployment("2"), ns)
            milestones = [
                ("start", lambda s: s.get("canaryVersion") == "2"),
                ("setWeight 25", lambda s: s.get("requestedWeight") == 25),
                ("setWeight 50", lambda s: s.get("requestedWeight") == 50),
                ("analyze", lambda s: (s.get("step") or {}).get("index") == 2),
                ("pause", lambda s: s.get("phase") == "Paused"),
            ]
            for what, reached in milestones:
                watch.until(reached, timeout=120, what=what)
                restart(operator, what, kills)
            paused = watch.until(lambda s: s.get("phase") == "Paused", timeout=30, what="still paused after the kill")
            assert paused["step"]["index"] == 3
            kube.apply(model_deployment("2", action={"type": "approve", "nonce": "chaos-1"}), ns)
            watch.until(lambda s: s.get("requestedWeight") == 75, timeout=120, what="setWeight 75")
            restart(operator, "setWeight 75", kills)
            watch.until(lambda s: s.get("stableVersion") == "2", timeout=120, what="promotion")
            restart(operator, "promote", kills)
            final = watch.until(lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == "2"
                                and watch.samples[-1].deployments == [f"{NAME}-2"], timeout=120,
                                what="version 2 Healthy alone")  # fmt: skip
            took = time.monotonic() - started
            time.sleep(3)  # settled: nothing more may happen
            failed = users.failures()
    finally:
        watch.stop()
    requested, effective = weights_never_regress(watch, "2")
    most = no_duplicate_children(watch, kube, ns)
    events = rollout_events(kube, ns)
    reasons = Counter(e["reason"] for e in events)
    messages = Counter((e["reason"], e["message"]) for e in events)
    report(f"operator SIGKILLed {operator.kills} times through one rollout ({'; '.join(kills)}); promoted in "
          f"{took:.0f}s; requested canary weights {requested}, effective {effective}; at most {most} Deployments; "
          f"Events {dict(reasons)}; {len(users.results)} user requests, {len(failed)} failed")  # fmt: skip
    assert not failed, failed[:3]
    assert requested == [0, 25, 50, 75], requested  # 0 from the start until the canary is Ready; 100 is stable
    assert [(h["version"], h["outcome"]) for h in final["history"]] == [("2", "Promoted")]
    assert final.get("canaryVersion") is None
    # each decision is one Event: one start, one promotion, one per weight set, one analysis pass, one pause
    once = {r: reasons[r] for r in ("RolloutStart", "RolloutPromote", "RolloutPause", "RolloutAction")}
    assert once == dict.fromkeys(once, 1), reasons
    advances = sorted(m for (r, m) in messages if r == "RolloutAdvance")
    assert reasons["RolloutAdvance"] == 4 == len(advances), advances
    assert all(e.get("count", 1) == 1 for e in events)
    assert sum(1 for m in advances if m.startswith("WeightSet")) == 3, advances
    assert kube.get("deployments", namespace=ns, labels=SELECTOR)["items"][0]["metadata"]["name"] == f"{NAME}-2"


def test_sigkill_at_analysis_and_at_the_rollback_rolls_back_once(
    local_cluster: DevCluster, kube: Kubectl, ns: str, operator: KillableOperator, versions: None
) -> None:
    """Version 3 fails at run time: the analysis rolls it back. Killed as the analysis starts and again as soon as
    the rollback shows, the restarted operator finishes the rollback once and version 2 keeps serving."""
    rollout = {"strategy": "canary", "analysis": ANALYSIS,
               "steps": [{"setWeight": 50}, {"analyze": {"minDuration": "6s", "maxDuration": "2m"}}]}  # fmt: skip
    kube.apply(model_deployment("2", rollout), ns)
    before = {e["metadata"]["name"] for e in rollout_events(kube, ns)}
    watch = StatusWatch(Kube(local_cluster.kubeconfig), ns, NAME).start()
    kills: list[str] = []
    try:
        with send(local_cluster, ns, NAME, rate=20) as users:
            wait_for(lambda: users.versions().get("2", 0) >= 5, timeout=30, what="users answered by version 2")
            started = time.monotonic()
            kube.apply(model_deployment("3", rollout), ns)
            watch.until(lambda s: (s.get("step") or {}).get("index") == 1, timeout=120, what="analysis")
            restart(operator, "analyze", kills)
            watch.until(lambda s: s.get("phase") == "RolledBack", timeout=120, what="the rollback")
            restart(operator, "rollback", kills)
            final = watch.until(lambda s: s.get("phase") == "RolledBack"
                                and watch.samples[-1].deployments == [f"{NAME}-2"],
                                timeout=120, what="version 3's Deployment gone")  # fmt: skip
            took = time.monotonic() - started
            time.sleep(3)
            stable_failed = [r for r in users.results if r.version == "2" and not r.ok]
            after = time.monotonic()
            wait_for(lambda: users.versions(after).get("2", 0) >= 10, timeout=30, what="version 2 still answering")
    finally:
        watch.stop()
    requested, _ = weights_never_regress(watch, "3")
    no_duplicate_children(watch, kube, ns)
    new = [e for e in rollout_events(kube, ns) if e["metadata"]["name"] not in before]
    reasons = Counter(e["reason"] for e in new)
    report(
        f"bad canary: operator SIGKILLed at {'; '.join(kills)}; rolled back {took:.0f}s after the change; "
        f"Events {dict(reasons)}; version 2 answered {users.versions().get('2', 0)} requests, none failed"
    )
    assert not stable_failed, stable_failed[:3]
    assert requested == [0, 50], requested
    assert [(h["version"], h["outcome"]) for h in final["history"]][-1] == ("3", "RolledBack")
    assert final["stableVersion"] == "2"
    assert final.get("rolledBackVersions") == ["3"]
    assert (reasons["RolloutStart"], reasons["RolloutRollBack"]) == (1, 1), reasons


def test_api_server_down_60s_mid_rollout_then_the_rollout_finishes(
    local_cluster: DevCluster, kube: Kubectl, ns: str, operator: KillableOperator, versions: None
) -> None:
    """The API server is stopped for 60 s while version 4's canary is analysed: the model pods keep answering
    (kubelet and the data plane need no API server), the operator survives, and once the API server is back the
    rollout goes on from its stored state to promotion."""
    rollout = {"strategy": "canary", "analysis": ANALYSIS,
               "steps": [{"setWeight": 50}, {"analyze": {"minDuration": "6s", "maxDuration": "5m"}}]}  # fmt: skip
    watch = StatusWatch(Kube(local_cluster.kubeconfig), ns, NAME).start()
    try:
        with send(local_cluster, ns, NAME, rate=20) as users:
            kube.apply(model_deployment("4", rollout), ns)
            watch.until(lambda s: (s.get("step") or {}).get("index") == 1, timeout=120, what="analysis")
            local_cluster.stop_component("kube-apiserver")
            down = time.monotonic()
            time.sleep(60)
            assert operator.alive(), operator.tail()
            served_meanwhile = sum(1 for r in users.results if r.ok and r.at > down)
            local_cluster.start_component("kube-apiserver")
            back = time.monotonic()
            wait_for(lambda: probe(operator.health_port, "/healthz") == 200, timeout=60, what="the operator live")
            live = time.monotonic() - back
            watch.skip_to_now()
            final = watch.until(lambda s: s.get("stableVersion") == "4" and s.get("phase") == "Healthy", timeout=120,
                                what="version 4 promoted after the outage")  # fmt: skip
            promoted = time.monotonic() - back
            failed = users.failures()
    finally:
        watch.stop()
    requested, _ = weights_never_regress(watch, "4")
    no_duplicate_children(watch, kube, ns)
    report(
        f"API server down {back - down:.0f}s mid-analysis: {served_meanwhile} user requests answered meanwhile, "
        f"{len(failed)} failed in all; operator live again {live:.1f}s and version 4 promoted {promoted:.1f}s after "
        f"the API server was back; operator restarts: 0"
    )
    assert not failed, failed[:3]
    assert served_meanwhile > 500
    assert promoted < 60
    assert operator.starts == operator.kills + 1  # it never died by itself
    assert requested == [0, 50], requested
    assert [(h["version"], h["outcome"]) for h in final["history"]][-1] == ("4", "Promoted")


def operator_events(kube: Kubectl, ns: str) -> list[dict[str, Any]]:
    kinds = ("ModelDeployment", "ModelVersion")
    return [e for e in kube.get("events", namespace=ns)["items"] if e["involvedObject"].get("kind") in kinds]


def writes(events: list[dict[str, Any]]) -> list[str]:
    return [f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name', '')}"
            for e in events if e["verb"] in ("create", "update", "patch", "delete", "deletecollection")
            and e["objectRef"].get("resource") != "leases"]  # fmt: skip


def test_forced_relist_after_etcd_compaction_repeats_no_side_effect(
    local_cluster: DevCluster, kube: Kubectl, ns: str, operator: KillableOperator, versions: None
) -> None:
    """etcd is compacted to its latest revision and the API server restarted without its watch cache: the
    operator's watches resume from a resourceVersion that no longer exists, get 410 Gone and list again. The
    relisted objects (a Healthy ModelDeployment, its children, its versions) cause no write at all."""
    wait_for(lambda: (kube.get("modeldeployment", NAME, ns) or {}).get("status", {}).get("phase") == "Healthy",
             timeout=60, what="Healthy before the relist")  # fmt: skip
    time.sleep(5)
    rv_before = {d["metadata"]["name"]: d["metadata"]["resourceVersion"]
                 for d in kube.get("deployments", namespace=ns)["items"]}  # fmt: skip
    events_before = len(operator_events(kube, ns))
    local_cluster.stop_component("kube-apiserver")
    revision = local_cluster.compact_etcd()
    since = time.time()
    local_cluster.start_component("kube-apiserver", flags={"watch-cache": "false"})
    try:
        wait_for(lambda: probe(operator.health_port, "/healthz") == 200, timeout=60, what="the operator live")
        time.sleep(20)  # every watch has come back (410, list, watch) and had time to act on what it listed
        audit = local_cluster.audit_events(since, time.time())
        lists = Counter(e["objectRef"].get("resource") for e in audit if e["verb"] == "list")
        watches = [e for e in audit if e["verb"] == "watch"]
        gone = [e for e in watches if (e.get("responseStatus") or {}).get("code") == 410]
        done = writes(audit)
        rv_after = {d["metadata"]["name"]: d["metadata"]["resourceVersion"]
                    for d in kube.get("deployments", namespace=ns)["items"]}  # fmt: skip
        events_after = len(operator_events(kube, ns))
    finally:
        local_cluster.stop_component("kube-apiserver")
        local_cluster.start_component("kube-apiserver", flags={"watch-cache": "true"})
        # the cluster's own controllers watched through two restarts with the watch cache switched off and on, which
        # a real cluster never does: the EndpointSlice controller was seen to stay "informer cache out of date" for
        # minutes after it, so the next test's Service never listed its new pods. They are not under test here:
        # restart them, so the next test starts from a control plane as a user's
        for component in ("kube-controller-manager", "kube-scheduler"):
            local_cluster.stop_component(component)
            local_cluster.start_component(component)
    report(
        f"etcd compacted at revision {revision}; API server back without a watch cache: the operator listed again "
        f"{dict(lists)}, {len(gone)} watch requests answered 410, and wrote {len(done)} times in 20 s; "
        f"Deployments unchanged: {rv_before == rv_after}; new Events: {events_after - events_before}"
    )
    assert min(lists["modeldeployments"], lists["deployments"]) >= 1, lists
    assert done == [], done
    assert rv_before == rv_after
    assert events_after == events_before
    assert operator.alive()


def test_model_pods_and_operator_killed_together_every_version_comes_back(
    local_cluster: DevCluster, kube: Kubectl, ns: str, operator: KillableOperator, versions: None
) -> None:
    """Mid-rollout (version 5 at 50 %, paused for approval), the operator is SIGKILLed and every model pod is force
    deleted at once. Both versions come back from the objects alone, the rollout resumes at the same step with the
    same weights, and an approval then promotes."""
    rollout = {"strategy": "canary", "steps": [{"setWeight": 50}, {"pause": {}}], "analysis": ANALYSIS}
    kube.apply(model_deployment("4", rollout), ns)
    watch = StatusWatch(Kube(local_cluster.kubeconfig), ns, NAME).start()
    try:
        # version 5 before 4 is stable would simply become the first stable version, with no canary to pause
        watch.until(lambda s: s.get("stableVersion") == "4" and s.get("phase") == "Healthy", timeout=120,
                    what="version 4 stable")  # fmt: skip
        kube.apply(model_deployment("5", rollout), ns)
        paused = watch.until(lambda s: s.get("phase") == "Paused", timeout=120, what="paused at 50 %")
        listed = kube.get("pods", namespace=ns, labels=SELECTOR)["items"]
        pods = [p for p in listed if not p["metadata"].get("deletionTimestamp")]  # not version 2's, still going
        old = {p["metadata"]["uid"] for p in listed}
        assert {p["metadata"]["labels"]["modelyard.dev/version"] for p in pods} == {"4", "5"}
        operator.kill()
        killed = time.monotonic()
        kube.run("delete", "pods", "-n", ns, "-l", SELECTOR, "--force", "--grace-period=0", "--wait=false")
        operator.start()

        def back() -> bool:
            now = kube.get("pods", namespace=ns, labels=SELECTOR)["items"]
            ready = {
                p["metadata"]["labels"]["modelyard.dev/version"]
                for p in now
                if p["metadata"]["uid"] not in old
                and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            }
            return ready == {"4", "5"}  # fmt: skip

        wait_for(back, timeout=120, interval=0.5, what="new Ready pods of both versions")
        recovered = time.monotonic() - killed
        resumed = watch.until(lambda s: True, timeout=10, what="a status after the recovery")
        # users reach the pods through the Service's EndpointSlices, which the endpoint controller writes after
        # the pods' readiness: wait for the new pods there before counting answers
        new_ips = {p["status"]["podIP"] for p in kube.get("pods", namespace=ns, labels=SELECTOR)["items"]
                   if p["metadata"]["uid"] not in old and p["status"].get("podIP")}  # fmt: skip
        endpoints = Endpoints(Kube(local_cluster.kubeconfig), ns, NAME)
        try:
            wait_for(lambda: set(endpoints.read()) >= new_ips, timeout=60, interval=0.5,
                     what=f"the new pods {sorted(new_ips)} among the Service's ready endpoints")  # fmt: skip
        except pytest.fail.Exception as e:  # say what the pods and the Service looked like
            listed = kube.get("pods", namespace=ns, labels=SELECTOR)["items"]
            seen = [(p["metadata"]["labels"]["modelyard.dev/version"], p["status"].get("podIP"),
                     p["metadata"].get("deletionTimestamp"), p["metadata"]["uid"] in old,
                     {c["type"]: c["status"] for c in p["status"].get("conditions", [])}) for p in listed]  # fmt: skip
            service = kube.get("service", NAME, namespace=ns)["spec"].get("selector")
            pytest.fail(f"{e}; endpoints {endpoints.read()}; Service selector {service}; pods (version, IP, "
                        f"deleting, old, conditions) {seen}")  # fmt: skip
        with send(local_cluster, ns, NAME, rate=20) as users:
            try:
                wait_for(lambda: {"4", "5"} <= set(users.versions()), timeout=60, what="both versions answering")
            except pytest.fail.Exception as e:  # say what the users saw, in the failure itself
                seen = Counter((r.pod_ip, r.version, r.ok, r.error[:80]) for r in users.results)
                listed = kube.get("pods", namespace=ns, labels=SELECTOR)["items"]
                pods = [(p["metadata"]["labels"]["modelyard.dev/version"], p["status"].get("podIP"),
                         p["metadata"].get("deletionTimestamp")) for p in listed]  # fmt: skip
                pytest.fail(
                    f"{e}; answers by (pod IP, version, ok, error): {dict(seen)}; endpoints "
                    f"{endpoints.read()}; pods (version, IP, deleting) {pods}"
                )
        assert resumed["phase"] == "Paused"
        assert {k: resumed["step"][k] for k in ("index", "startedAt")} == {
            k: paused["step"][k] for k in ("index", "startedAt")
        }
        assert resumed["weights"] == paused["weights"] == {"stable": 50, "canary": 50}
        kube.apply(model_deployment("5", {**rollout, "action": {"type": "approve", "nonce": "chaos-2"}}), ns)
        watch.until(lambda s: s.get("stableVersion") == "5" and s.get("phase") == "Healthy", timeout=120,
                    what="version 5 promoted")  # fmt: skip
    finally:
        watch.stop()
    no_duplicate_children(watch, kube, ns)
    report(
        f"operator and {len(old)} model pods killed together mid-rollout: both versions Ready again in "
        f"{recovered:.1f}s, the rollout resumed paused at step {resumed['step']['index']} with weights "
        f"{resumed['weights']}, then promoted on approval"
    )
    assert not users.failures()


def test_deleted_while_the_operator_is_down_goes_with_its_children(
    local_cluster: DevCluster, kube: Kubectl, ns: str, operator: KillableOperator, versions: None
) -> None:
    """No finalizer of the operator's holds a deletion: with the operator SIGKILLed, the ModelDeployment goes at once
    and its Deployments, Services and pods are garbage-collected; the operator started after it recreates nothing."""
    operator.kill()
    started = time.monotonic()
    kube.run("delete", "modeldeployment", NAME, "-n", ns, "--timeout=30s")
    deleted = time.monotonic() - started
    wait_for(lambda: not kube.get("deployments", namespace=ns, labels=SELECTOR)["items"]
             and not kube.get("services", namespace=ns, labels=SELECTOR)["items"], timeout=60,
             what="children collected")  # fmt: skip
    collected = time.monotonic() - started
    wait_for(lambda: not kube.get("pods", namespace=ns, labels=SELECTOR)["items"], timeout=90, what="pods gone")
    pods_gone = time.monotonic() - started
    operator.start()
    time.sleep(5)
    assert not kube.get("deployments", namespace=ns, labels=SELECTOR)["items"]
    report(
        f"ModelDeployment deleted with the operator down: gone in {deleted:.1f}s, Deployments and Services "
        f"collected in {collected:.1f}s, pods gone in {pods_gone:.1f}s; nothing recreated after the restart"
    )
    assert deleted < 10
