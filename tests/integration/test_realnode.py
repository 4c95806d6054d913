"""The dev cluster's real node (``hack/devcluster up --real-node``): kubelet v1.35, containerd and runc, the CNI
bridge, kube-proxy and CoreDNS run the project's images pulled from the dev registry, and every pod feature the
project relies on behaves as Kubernetes defines it. ``down`` gives back every host setting the node changed.

One cluster with the real node for the whole module (one real node per machine). The last tests stop it.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

import realnode
from devcluster import DevCluster

from ..conftest import Kubectl, dev_cluster, model_over_http, temp_namespace, wait_for

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    sysctls = realnode.read_sysctls()
    with dev_cluster(tmp_path_factory.mktemp("realnode-cluster"), crds=False, nodes=False, real_node=True) as cl:
        cl.push_images(["modelyard-runtime"])
        yield cl
    assert realnode.read_sysctls() == sysctls  # also checked by the last test; this covers an early failure


@pytest.fixture(scope="module")
def kube(real_cluster: DevCluster) -> Kubectl:
    return Kubectl(real_cluster.bin / "kubectl", real_cluster.kubeconfig)


@pytest.fixture(scope="module")
def image(real_cluster: DevCluster) -> str:
    return real_cluster.image("modelyard-runtime")


@pytest.fixture
def ns(kube: Kubectl) -> Iterator[str]:
    with temp_namespace(kube, "rn") as name:
        yield name


@pytest.fixture(scope="module")
def artifact_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The model over HTTP from the host: pods reach it at the node's address."""
    with model_over_http(tmp_path_factory.mktemp("artifacts")) as url:
        yield url


def pod(image: str, name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for c in [*containers, *spec.get("initContainers", [])]:
        c.setdefault("image", image)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {**realnode.PLACEMENT, "automountServiceAccountToken": False, "containers": containers, **spec},
    }


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": ["sh", "-c", script], **extra}


def status(kube: Kubectl, name: str, ns: str) -> dict[str, Any]:
    obj = kube.get("pod", name, ns)
    return obj.get("status", {}) if obj else {}


def ready(kube: Kubectl, name: str, ns: str) -> dict[str, Any] | None:
    st = status(kube, name, ns)
    ok = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))
    return st if ok else None


def finished(kube: Kubectl, name: str, ns: str) -> dict[str, Any]:
    return wait_for(
        lambda: status(kube, name, ns).get("phase") in ("Succeeded", "Failed") and status(kube, name, ns),
        timeout=90,
        what=f"pod {name} finished",
    )


def cni_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("cni-")]


def test_node_is_a_kubelet_with_containerd_on_this_machine(kube: Kubectl) -> None:
    node = kube.get("node", realnode.NODE)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"].startswith("v1.35.")
    assert info["containerRuntimeVersion"].startswith("containerd://2.")
    assert node["metadata"]["labels"][realnode.LABEL] == "true"
    assert not node["spec"].get("taints")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == realnode.GATEWAY
    assert node["status"]["capacity"]["cpu"] == str(os.cpu_count())
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    lease = wait_for(lambda: kube.get("lease", realnode.NODE, "kube-node-lease"), timeout=20, what="the node's lease")
    renewed = datetime.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
    assert (datetime.datetime.now(datetime.UTC) - renewed).total_seconds() < 30


def test_server_pod_from_the_registry_answers_tritonclient_directly_and_through_a_service(
    kube: Kubectl, ns: str, image: str, artifact_server: str
) -> None:
    mounts = [{"name": "models", "mountPath": "/models"}]
    loader = {
        "name": "loader",
        "command": ["modelyard-loader"],
        "args": ["fetch", "--uri", artifact_server, "--dest", "/models/add/1", "--allow-hosts", realnode.GATEWAY],
        "volumeMounts": mounts,
        "securityContext": RESTRICTED,
    }
    server = {
        "name": "server",
        "command": ["modelyard-server"],
        "args": ["--model-repository", "/models", "--http-port", "$(HTTP_PORT)", "--grpc-port", "8081"],
        "env": [{"name": "HTTP_PORT", "value": "8080"}],
        "ports": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 8081}],
        "startupProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 5},
        "volumeMounts": mounts,
        "securityContext": RESTRICTED,
    }
    volumes = [{"name": "models", "emptyDir": {}}]
    started = time.monotonic()
    kube.apply(pod(image, "srv", [server], initContainers=[loader], volumes=volumes), ns)
    st = wait_for(lambda: ready(kube, "srv", ns), timeout=120, interval=0.5, what="the server pod Ready")
    print(f"pod applied -> Ready in {time.monotonic() - started:.1f}s (image {image})")
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert "/modelyard-runtime@sha256:" in st["containerStatuses"][0]["imageID"]  # pulled by digest from a registry
    ip = st["podIP"]
    assert ip.startswith("10.244.100.")

    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 10, dtype=np.float32)
    inputs = [httpclient.InferInput("A", [2, 4], "FP32"), httpclient.InferInput("B", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = httpclient.InferenceServerClient(f"{ip}:8080").infer("add", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUT0"), a + b)

    kube.run("label", "pod", "srv", "-n", ns, "app=srv")
    ports = [{"name": "http", "port": 80, "targetPort": "http"}]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "srv"},
               "spec": {"selector": {"app": "srv"}, "ports": ports}}  # fmt: skip
    kube.apply(service, ns)
    vip = kube.get("service", "srv", ns)["spec"]["clusterIP"]

    def through_service() -> bool:
        try:
            answer = httpclient.InferenceServerClient(f"{vip}:80", connection_timeout=1).infer("add", inputs)
        except Exception:  # kube-proxy programs the rules within a second or so
            return False
        return bool(np.array_equal(answer.as_numpy("OUT0"), a + b))

    wait_for(through_service, timeout=20, interval=0.3, what=f"an answer through the Service IP {vip}")
    # from a pod, by the Service's DNS name (CoreDNS) and by the API server's in-cluster address
    script = (
        "import socket, urllib.request\n"
        f"assert urllib.request.urlopen('http://srv.{ns}.svc.cluster.local/v2/health/ready', timeout=3).status == 200\n"
        "assert urllib.request.urlopen('http://srv/v2/health/ready', timeout=3).status == 200\n"
        "print(socket.gethostbyname('kubernetes.default'))\n"
    )
    client = {"name": "c", "command": ["python3", "-c", script], "securityContext": RESTRICTED}
    kube.apply(pod(image, "client", [client], restartPolicy="Never"), ns)
    st = finished(kube, "client", ns)
    logs = kube.run("logs", "client", "-n", ns, check=False)
    assert st["phase"] == "Succeeded", logs.stdout + logs.stderr
    assert logs.stdout.strip() == kube.get("service", "kubernetes", "default")["spec"]["clusterIP"]


def test_restricted_pod_runs_as_the_image_user_with_seccomp_no_capabilities_and_a_read_only_root(
    kube: Kubectl, ns: str, image: str
) -> None:
    script = (
        "id -u; id -g; grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/self/status;"
        " touch /root-check 2>/dev/null && echo root-writable || echo root-read-only;"
        " touch /scratch/ok && echo scratch-writable"
    )
    c = sh("c", script, securityContext=RESTRICTED, volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}])
    kube.apply(pod(image, "restricted", [c], restartPolicy="Never", volumes=[{"name": "scratch", "emptyDir": {}}]), ns)
    st = finished(kube, "restricted", ns)
    assert st["phase"] == "Succeeded"
    out = kube.run("logs", "restricted", "-n", ns).stdout.split()
    assert out[:2] == ["65532", "65532"]  # USER of the image: runAsNonRoot is satisfied by it
    fields = dict(zip(out[2:8:2], out[3:8:2], strict=True))
    assert fields == {"Seccomp:": "2", "CapEff:": "0000000000000000", "NoNewPrivs:": "1"}
    assert out[8:] == ["root-read-only", "scratch-writable"]
    # runAsNonRoot refuses an explicit root user before anything runs
    root = sh("c", "id -u", securityContext={**RESTRICTED, "runAsUser": 0})
    kube.apply(pod(image, "as-root", [root], restartPolicy="Never"), ns)

    def refused() -> dict[str, Any] | None:
        state = (status(kube, "as-root", ns).get("containerStatuses") or [{}])[0].get("state") or {}
        waiting = state.get("waiting") or {}
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None

    waiting = wait_for(refused, timeout=60, what="the root container refused")
    assert "non-root" in waiting["message"]


def test_memory_limit_is_enforced_oom_killed_and_restarted(kube: Kubectl, ns: str, image: str) -> None:
    hog = "b = bytearray(0)\nwhile True:\n    b += bytearray(16 << 20)\n"
    c = {
        "name": "hog",
        "command": ["python3", "-c", hog],
        "resources": {"requests": {"memory": "64Mi"}, "limits": {"memory": "64Mi"}},
    }
    kube.apply(pod(image, "hog", [c]), ns)

    def oom_restarted() -> dict[str, Any] | None:
        cs = (status(kube, "hog", ns).get("containerStatuses") or [{}])[0]
        last = cs.get("lastState", {}).get("terminated")
        return cs if cs.get("restartCount", 0) >= 1 and last else None

    cs = wait_for(oom_restarted, timeout=90, what="the container OOM-killed and restarted")
    assert cs["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert cs["lastState"]["terminated"]["exitCode"] == 137


def test_init_containers_in_order_native_sidecar_first_probes_and_configmap_refresh(
    kube: Kubectl, ns: str, image: str
) -> None:
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gate"}, "data": {"state": "wait"}}, ns)
    shared = [{"name": "shared", "mountPath": "/shared"}]
    first = sh("first", "echo first >> /shared/order", volumeMounts=shared)
    sidecar = sh(
        "side",
        "echo side >> /shared/order; sleep 1; echo up > /shared/side; while true; do sleep 0.1; done",
        restartPolicy="Always",
        volumeMounts=shared,
        startupProbe={"exec": {"command": ["test", "-f", "/shared/side"]}, "periodSeconds": 1, "failureThreshold": 30},
    )
    main = sh(
        "main",
        "test -f /shared/side || exit 9; echo main >> /shared/order; exec python3 -m http.server 9000",
        volumeMounts=[*shared, {"name": "gate", "mountPath": "/gate"}],
        ports=[{"name": "web", "containerPort": 9000}],
        livenessProbe={"tcpSocket": {"port": "web"}, "periodSeconds": 1, "initialDelaySeconds": 2},
        readinessProbe={"exec": {"command": ["grep", "-q", "ready", "/gate/state"]}, "periodSeconds": 1},
    )
    volumes = [{"name": "shared", "emptyDir": {}}, {"name": "gate", "configMap": {"name": "gate"}}]
    kube.apply(pod(image, "probed", [main], initContainers=[first, sidecar], volumes=volumes), ns)

    def main_running() -> dict[str, Any] | None:
        st = status(kube, "probed", ns)
        cs = st.get("containerStatuses") or [{}]
        return st if cs[0].get("state", {}).get("running") else None

    st = wait_for(main_running, timeout=60, what="the main container running")
    assert st["initContainerStatuses"][1]["started"] is True
    time.sleep(3)  # liveness (tcpSocket) passes, readiness (exec) fails: running, not Ready, no restarts
    st = status(kube, "probed", ns)
    assert st["containerStatuses"][0]["ready"] is False
    assert st["containerStatuses"][0]["restartCount"] == 0
    order = kube.run("exec", "probed", "-n", ns, "-c", "main", "--", "cat", "/shared/order").stdout.split()
    assert order == ["first", "side", "main"]
    kube.run("patch", "configmap", "gate", "-n", ns, "-p", '{"data": {"state": "ready"}}')
    st = wait_for(lambda: ready(kube, "probed", ns), timeout=60, what="Ready once the ConfigMap says so")
    assert st["containerStatuses"][0]["restartCount"] == 0
    assert st["initContainerStatuses"][1]["state"]["running"]  # the native sidecar keeps running


def test_a_failing_liveness_probe_restarts_the_container(kube: Kubectl, ns: str, image: str) -> None:
    probe = {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2}
    spec = pod(image, "unhealthy", [sh("c", "exec sleep 1000", livenessProbe=probe)], terminationGracePeriodSeconds=2)
    kube.apply(spec, ns)

    def restarted() -> dict[str, Any] | None:
        cs = (status(kube, "unhealthy", ns).get("containerStatuses") or [{}])[0]
        return cs if cs.get("restartCount", 0) >= 1 else None

    cs = wait_for(restarted, timeout=60, what="a restart after liveness failures")
    assert cs["lastState"]["terminated"]["exitCode"] in (137, 143)  # sleep ignores nothing: TERM or, late, KILL


def test_exit_codes_termination_messages_and_host_path(kube: Kubectl, ns: str, image: str, tmp_path: Path) -> None:
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"greeting": "hi"}}, ns)
    script = 'printf "%s from %s at %s" "$(cat /cfg/greeting)" "$NAME" "$IP" > /dev/termination-log; exit 3'
    env = [
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    failing = sh("fails", script, env=env, volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}])
    fallback = sh("logs", "echo last words; exit 4", terminationMessagePolicy="FallbackToLogsOnError")
    host = sh(  # kubelet makes the folder root's, 0755: only root may write there
        "host",
        "echo from-the-pod > /host/out",
        volumeMounts=[{"name": "host", "mountPath": "/host"}],
        securityContext={"runAsUser": 0},
    )
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "host", "hostPath": {"path": str(tmp_path / "made"), "type": "DirectoryOrCreate"}},
    ]
    kube.apply(pod(image, "failing", [failing, fallback, host], restartPolicy="Never", volumes=volumes), ns)
    st = finished(kube, "failing", ns)
    assert st["phase"] == "Failed"
    by_name = {c["name"]: c["state"]["terminated"] for c in st["containerStatuses"]}
    assert by_name["fails"]["exitCode"] == 3
    assert by_name["fails"]["message"] == f"hi from failing at {st['podIP']}"
    assert by_name["logs"]["exitCode"] == 4
    assert by_name["logs"]["message"].strip() == "last words"
    assert by_name["host"]["exitCode"] == 0
    assert (tmp_path / "made" / "out").read_text() == "from-the-pod\n"


def test_delete_sends_sigterm_and_honours_the_grace_period(kube: Kubectl, ns: str, image: str) -> None:
    script = "trap 'echo got TERM; sleep 2; exit 0' TERM; echo started; while true; do sleep 0.1; done"
    kube.apply(pod(image, "graceful", [sh("c", script)], terminationGracePeriodSeconds=30), ns)
    wait_for(lambda: ready(kube, "graceful", ns), timeout=60, what="the pod Ready")
    netns = set(cni_namespaces())
    assert netns
    began = time.monotonic()
    logs = subprocess.Popen(
        [str(kube.binary), f"--kubeconfig={kube.kubeconfig}", "logs", "-f", "graceful", "-n", ns],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    kube.run("delete", "pod", "graceful", "-n", ns, "--wait=false")
    wait_for(lambda: kube.get("pod", "graceful", ns) is None, timeout=40, what="the pod object removed")
    took = time.monotonic() - began
    out, _ = logs.communicate(timeout=10)
    assert out.split("\n")[:2] == ["started", "got TERM"]
    assert 2 <= took < 15  # its trap ran to the end, no waiting out the 30 s grace period


def test_down_gives_back_every_host_setting(real_cluster: DevCluster, kube: Kubectl, ns: str, image: str) -> None:
    before = json.loads((real_cluster.dir / "realnode-host.json").read_text())["sysctls"]
    assert realnode.read_sysctls() != before  # kubelet and the bridge did change some
    kube.apply(pod(image, "left-running", [sh("c", "trap '' TERM; while true; do sleep 0.1; done")]), ns)
    wait_for(lambda: ready(kube, "left-running", ns), timeout=60, what="the pod Ready")
    real_cluster.down()
    assert realnode.read_sysctls() == before
    assert cni_namespaces() == []
    assert not Path(f"/sys/class/net/{realnode.BRIDGE}").exists()
    assert not realnode.STATE.exists()
    assert not realnode.RUN.exists()
    assert not realnode.LOCK.exists()
    assert not Path("/sys/fs/cgroup/memory/kubepods").exists()
    names = [["-x", name] for name in ("kubelet", "containerd", "coredns", "kube-proxy")]  # 15 characters at most
    for pgrep in [*names, ["-f", f"containerd-shim-runc-v2 .*-address {realnode.RUN}"]]:
        left = subprocess.run(["pgrep", *pgrep], capture_output=True, text=True)
        assert left.stdout == "", subprocess.run(["ps", "-o", "pid,args", "-p", ",".join(left.stdout.split())],
                                                 capture_output=True, text=True).stdout  # fmt: skip
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, check=True).stdout
        assert "KUBE-" not in rules, rules
