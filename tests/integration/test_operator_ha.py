"""Operator replicas and outages on the real API server (docs/operator.md, "Several replicas" and "Probes").

- Two real operator processes with ``--leader-elect``, each under its own identity so the API server's audit log
  tells their requests apart: the standby sends nothing but reads of the Lease; killed, the leader is replaced
  within a bounded time and a change made meanwhile is applied by the new leader.
- The API server stopped: ``/healthz`` turns 503 once the watches have been down longer than the bound; started
  again: ``/healthz`` and ``/readyz`` recover and a change made right away is applied. Times are printed.
"""

from __future__ import annotations

import collections
import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster import OPERATOR_B_USER, OPERATOR_USER
from modelyard_operator.leader import LEASE_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_SECONDS

from ..conftest import Kubectl, dev_cluster, running_operator, wait_for
from ..support.processes import probe

DIGEST = "sha256:" + "5f" * 32
LEASE_NS = "default"
pytestmark = pytest.mark.timeout(300)
Cluster = tuple[Any, Kubectl]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with dev_cluster(tmp_path_factory.mktemp("ha") / "cluster", audit=True) as cl:
        yield cl, Kubectl(cl.bin / "kubectl", cl.kubeconfig)


def model(namespace: str, i: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": f"m{i}-1", "namespace": namespace},
            "spec": {"model": f"m{i}", "version": "1",
                     "artifact": {"uri": f"https://models.example.com/m{i}.onnx", "digest": DIGEST}},
        },
        {
            "apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"d{i}", "namespace": namespace},
            "spec": {"model": f"m{i}", "version": "1", "replicas": 1,
                     "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}},
        },
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lease(kubectl: Kubectl) -> dict[str, Any]:
    return (kubectl.get("lease", "modelyard-operator", LEASE_NS) or {}).get("spec") or {}


def replicas(kubectl: Kubectl, namespace: str, name: str) -> int | None:
    dep = kubectl.get("deployment", name, namespace)
    return dep["spec"]["replicas"] if dep else None


def kinds(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for e in events:
        ref = e.get("objectRef") or {}
        counts[
            f"{e['verb']} {ref.get('resource', '?')}{'/' + ref['subresource'] if ref.get('subresource') else ''}"
        ] += 1
    return dict(counts)


def elect(port: int) -> list[str]:
    return ["--leader-elect", f"--leader-elect-namespace={LEASE_NS}", f"--health-port={port}", "--model-validation=off"]


def test_two_replicas_one_acts_and_the_standby_takes_over(audited: Cluster, tmp_path: Path) -> None:
    cl, kubectl = audited
    kubectl.run("create", "namespace", "ha")
    port_a, port_b = free_port(), free_port()
    with running_operator(cl.dir / "operator.kubeconfig", tmp_path / "a.log", *elect(port_a)) as a:
        holder_a = wait_for(lambda: lease(kubectl).get("holderIdentity"), timeout=30, what="A to hold the Lease")
        wait_for(lambda: probe(port_a, "/readyz") == 200, timeout=30, what="A ready (initial lists done)")
        with running_operator(cl.dir / "operator-b.kubeconfig", tmp_path / "b.log", *elect(port_b)) as b:
            b_started = time.time()
            wait_for(lambda: probe(port_b, "/readyz") == 200, timeout=30, what="B ready (standby, Lease read)")
            assert probe(port_b, "/healthz") == 200
            kubectl.apply([obj for i in range(5) for obj in model("ha", i)])
            for i in range(5):
                wait_for(lambda i=i: replicas(kubectl, "ha", f"d{i}-1") == 1, timeout=60, what=f"d{i}-1 applied")
                wait_for(lambda i=i: (kubectl.get("md", f"d{i}", "ha") or {}).get("status"), timeout=30, what="status")
            time.sleep(2 * RETRY_SECONDS)
            acting_until = time.time()
            by_a = cl.audit_events(b_started, acting_until, user=OPERATOR_USER)
            by_b = cl.audit_events(b_started, acting_until, user=OPERATOR_B_USER)
            print(f"both running for {acting_until - b_started:.0f}s: A sent {kinds(by_a)}; B sent {kinds(by_b)}")
            # the standby only reads the Lease: no watch, no list, no write of anything
            assert by_b
            assert {(e["verb"], e["objectRef"]["resource"]) for e in by_b} == {("get", "leases")}
            assert kinds(by_a).get("patch deployments", 0) >= 5
            assert kinds(by_a).get("patch modeldeployments/status")
            assert lease(kubectl)["holderIdentity"] == holder_a

            a.send_signal(signal.SIGKILL)  # no release: B waits out A's term
            a.wait(10)
            killed = time.time()
            kubectl.run("patch", "md", "d0", "-n", "ha", "--type=merge", "-p", '{"spec":{"replicas":2}}')
            wait_for(lambda: replicas(kubectl, "ha", "d0-1") == 2, timeout=60, what="B to apply the change")
            took = time.time() - killed
            spec = lease(kubectl)
            print(f"leader SIGKILLed: the standby applied a change made meanwhile after {took:.1f}s "
                  f"(lease {LEASE_SECONDS}s, retry {RETRY_SECONDS:.0f}s); Lease {spec}")  # fmt: skip
            assert spec["holderIdentity"] not in ("", holder_a)
            assert spec["leaseTransitions"] >= 1
            assert took < LEASE_SECONDS + 2 * RETRY_SECONDS + 15
            after = cl.audit_events(killed, time.time(), user=OPERATOR_B_USER)
            assert kinds(after).get("patch deployments", 0) >= 1, kinds(after)
            assert b.poll() is None

            # a leader that stops normally gives the Lease up: a new standby takes over within a retry period
            with running_operator(cl.dir / "operator.kubeconfig", tmp_path / "c.log", *elect(free_port())):
                wait_for(lambda: "standing by" in (tmp_path / "c.log").read_text(), timeout=20, what="C standing by")
                b.send_signal(signal.SIGTERM)
                b.wait(20)
                stopped = time.time()
                holder_b = spec["holderIdentity"]
                wait_for(lambda: lease(kubectl).get("holderIdentity") not in ("", holder_b), timeout=15, what="C leads")
                print(f"leader stopped with SIGTERM: the standby holds the Lease after {time.time() - stopped:.1f}s")
                assert time.time() - stopped < 2 * RETRY_SECONDS + 5


def test_liveness_follows_the_watches_through_an_api_server_outage(audited: Cluster, tmp_path: Path) -> None:
    cl, kubectl = audited
    kubectl.run("create", "namespace", "outage")
    kubectl.apply(model("outage", 0))
    port = free_port()
    bound = 10
    flags = [f"--health-port={port}", f"--watch-dead-seconds={bound}", "--model-validation=off"]
    # beside it, an elected operator (its own Lease, watching an empty namespace): it must stop acting once it
    # cannot renew its Lease, before another replica could take over
    kubectl.run("create", "namespace", "outage-elected")
    elected_flags = ["--leader-elect", "--leader-elect-namespace=outage-elected", "--namespace=outage-elected"]
    elected_log = tmp_path / "elected.log"
    with (
        running_operator(cl.dir / "operator.kubeconfig", tmp_path / "op.log", *flags) as op,
        running_operator(cl.dir / "operator-b.kubeconfig", elected_log, *elected_flags) as elected,
    ):
        wait_for(lambda: probe(port, "/readyz") == 200, timeout=30, what="ready")
        wait_for(lambda: replicas(kubectl, "outage", "d0-1") == 1, timeout=30, what="d0-1 applied")
        assert probe(port, "/healthz") == 200
        wait_for(lambda: "holds the Lease and acts" in elected_log.read_text(), timeout=30, what="the elected leads")

        exits: list[float] = []
        waiter = threading.Thread(target=lambda: (elected.wait(), exits.append(time.monotonic())), daemon=True)
        waiter.start()
        sigterm = time.monotonic()
        cl.stop_component("kube-apiserver")  # returns once it is gone: it drains its watches first (seconds)
        stopped = time.monotonic()
        wait_for(lambda: probe(port, "/healthz") == 503, timeout=bound + 15, what="liveness to fail")
        unhealthy = time.monotonic() - stopped
        waiter.join(timeout=RENEW_DEADLINE_SECONDS + 2 * RETRY_SECONDS)
        exited = exits[0] - sigterm
        print(
            f"API server SIGTERMed, gone {stopped - sigterm:.1f}s later; /healthz 503 {unhealthy:.1f}s after it was "
            f"gone (bound {bound}s); the elected operator exited {exited:.1f}s after the SIGTERM (renew deadline "
            f"{RENEW_DEADLINE_SECONDS:.0f}s, lease {LEASE_SECONDS}s)"
        )
        assert unhealthy >= bound - 1
        # it stopped before its term ran out, i.e. before another replica could have taken the Lease
        assert exited < LEASE_SECONDS
        assert elected.returncode == 1
        assert "leader election lost" in elected_log.read_text()
        time.sleep(5)
        assert probe(port, "/healthz") == 503
        assert op.poll() is None

        cl.start_component("kube-apiserver")
        back = time.monotonic()
        kubectl.run("patch", "md", "d0", "-n", "outage", "--type=merge", "-p", '{"spec":{"replicas":3}}')
        wait_for(lambda: probe(port, "/healthz") == 200, timeout=60, what="liveness to recover")
        live_again = time.monotonic() - back
        wait_for(lambda: replicas(kubectl, "outage", "d0-1") == 3, timeout=60, what="the change to be applied")
        applied = time.monotonic() - back
        assert probe(port, "/readyz") == 200
        print(
            f"API server down {back - stopped:.0f}s: /healthz 503 after {unhealthy:.1f}s (bound {bound}s); after the "
            f"restart /healthz 200 in {live_again:.1f}s, a change made then applied in {applied:.1f}s"
        )
        assert applied < 30
        probe_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read().decode()
        assert probe_text.startswith("ok: watch streams"), probe_text


def reconciles(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    line = next(x for x in text.splitlines() if x.startswith("modelyard_operator_reconcile_duration_seconds_count"))
    return float(line.rsplit(" ", 1)[1])


def replicas_managers(kubectl: Kubectl, namespace: str, name: str) -> list[str]:
    """The field managers that own spec.replicas of a live Deployment."""
    out = kubectl.run("get", "deployment", name, "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    fields = json.loads(out)["metadata"]["managedFields"]
    assert fields  # kubectl hides them without --show-managed-fields: an empty list would prove nothing
    return [m["manager"] for m in fields if "f:replicas" in ((m.get("fieldsV1") or {}).get("f:spec") or {})]


def test_an_autoscaled_deployment_keeps_the_autoscalers_replicas(audited: Cluster, tmp_path: Path) -> None:
    """11.7: under spec.autoscaling the real HPA controller owns replicas and the operator leaves them alone; an
    edit of another operator-owned field is restored, with a bounded number of reconciles and writes."""
    cl, kubectl = audited
    kubectl.run("create", "namespace", "scaled")
    objs = model("scaled", 0)
    objs[1]["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilization": 70}
    kubectl.apply(objs)
    metrics = free_port()
    flags = [f"--metrics-port={metrics}", "--model-validation=off"]
    with running_operator(cl.dir / "operator.kubeconfig", tmp_path / "op.log", *flags):
        hpa = wait_for(lambda: kubectl.get("hpa", "d0", "scaled"), timeout=30, what="the HPA")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "d0-1"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
        assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
        # the HPA controller (kube-controller-manager) raises the Deployment to minReplicas; the operator lets it
        wait_for(lambda: replicas(kubectl, "scaled", "d0-1") == 2, timeout=90, what="the HPA to scale to 2")
        owners = replicas_managers(kubectl, "scaled", "d0-1")
        print(f"spec.replicas owned by {owners}")
        assert "modelyard-operator" not in owners  # were it an owner, its next apply without the field would reset it

        before, since = reconciles(metrics), time.time()
        kubectl.run("patch", "deployment", "d0-1", "-n", "scaled", "--type=merge",
                    "-p", '{"spec":{"strategy":{"rollingUpdate":{"maxSurge":3}}}}')  # fmt: skip
        surge = lambda: kubectl.get("deployment", "d0-1", "scaled")["spec"]["strategy"]["rollingUpdate"]["maxSurge"]  # noqa: E731
        wait_for(lambda: surge() == 1, timeout=20, what="maxSurge restored")
        time.sleep(35)  # longer than the periodic resync
        until = time.time()
        writes = [
            e for e in cl.audit_events(since, until)
            if e["verb"] in ("patch", "update", "create") and e["objectRef"]["resource"] != "events"
        ]  # fmt: skip
        count = reconciles(metrics) - before
        print(f"edit restored; in {until - since:.0f}s: {count:.0f} reconciles, operator writes {kinds(writes)}")
        assert replicas(kubectl, "scaled", "d0-1") == 2
        # measured: 5 to 13 reconciles (each Deployment status event is one, read from memory, no request) and
        # 2 Deployment patches (the restore, and one more when a status event of the edited generation arrives after
        # it); a fight or a hot loop would be one or more a second, writes included
        assert count < 35, count
        assert kinds(writes).get("patch deployments", 0) <= 4, kinds(writes)
        assert not {k for k in kinds(writes) if "deployments/scale" in k or "horizontalpodautoscalers" in k}

        # autoscaling off: the HPA goes first, then the Deployment gets spec.replicas again
        kubectl.run("patch", "md", "d0", "-n", "scaled", "--type=json",
                    "-p", '[{"op":"remove","path":"/spec/autoscaling"}]')  # fmt: skip
        wait_for(lambda: kubectl.get("hpa", "d0", "scaled") is None, timeout=20, what="the HPA deleted")
        wait_for(lambda: replicas(kubectl, "scaled", "d0-1") == 1, timeout=20, what="spec.replicas back")
        dep = kubectl.get("deployment", "d0-1", "scaled")
        assert "modelyard.dev/autoscaler" not in (dep["metadata"].get("annotations") or {})
        assert "modelyard-operator" in replicas_managers(kubectl, "scaled", "d0-1")
