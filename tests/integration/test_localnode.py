"""The process-backed local node (hack/localnode): pods bound to ``local-0`` really run, as local processes in
their own network and mount namespaces, and nothing is left behind.

One cluster with the local node for the whole module (its own, beside the session's kwok cluster). The last
test stops it with ``down`` and checks that no namespace, bridge or process survives.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from devcluster import DevCluster
from localnode import GATEWAY, PLACEMENT
from localnode.agent import LOCK
from localnode.net import BRIDGE, NETNS_PREFIX, host_interface

from ..conftest import Kubectl, dev_cluster, model_over_http, temp_namespace, wait_for

IMAGE = "ghcr.io/modelyard/runtime:0.1.0"
TOLERATE = {**PLACEMENT, "automountServiceAccountToken": False}


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with dev_cluster(tmp_path_factory.mktemp("localnode-cluster"), crds=False, nodes=False, local_node=True) as cl:
        yield cl


@pytest.fixture(scope="module")
def kube(local_cluster: DevCluster) -> Kubectl:
    return Kubectl(local_cluster.bin / "kubectl", local_cluster.kubeconfig)


@pytest.fixture
def ns(kube: Kubectl) -> Iterator[str]:
    with temp_namespace(kube, "ln") as name:
        yield name


@pytest.fixture(scope="module")
def artifact_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The model over HTTP from the host, on all addresses: pods reach it through the bridge's gateway."""
    with model_over_http(tmp_path_factory.mktemp("artifacts")) as url:
        yield url


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for c in [*containers, *spec.get("initContainers", [])]:
        c.setdefault("image", IMAGE)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {**TOLERATE, "containers": containers, **spec},
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


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(NETNS_PREFIX)]


def pod_netns(kube: Kubectl, name: str, ns: str) -> str:
    return NETNS_PREFIX + kube.get("pod", name, ns)["metadata"]["uid"].replace("-", "")[:8]


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed agent's children are reparented to a PID 1 that may never reap them)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def container_pid(container_status: dict[str, Any]) -> int:
    return int(container_status["containerID"].removeprefix("localnode://"))


def test_node_is_registered_ready_with_real_capacity_and_a_lease(kube: Kubectl) -> None:
    node = kube.get("node", "local-0")
    assert node["metadata"]["labels"]["modelyard.dev/local-node"] == "true"
    assert node["spec"]["taints"] == [{"key": "modelyard.dev/local-node", "value": "true", "effect": "NoSchedule"}]
    assert node["spec"]["podCIDR"] == "10.244.100.0/24"
    assert node["status"]["capacity"]["cpu"] == str(os.cpu_count())
    assert int(node["status"]["capacity"]["memory"].removesuffix("Ki")) > 0
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    lease = kube.get("lease", "local-0", "kube-node-lease")
    renewed = datetime.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
    assert (datetime.datetime.now(datetime.UTC) - renewed).total_seconds() < 30


def test_server_pod_becomes_ready_and_answers_tritonclient_then_stops_on_delete(
    kube: Kubectl, ns: str, artifact_server: str
) -> None:
    mounts = [{"name": "models", "mountPath": "/models"}, {"name": "tmp", "mountPath": "/tmp"}]
    restricted = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
    loader = {
        "name": "loader",
        "image": IMAGE,
        "command": ["modelyard-loader"],
        "args": ["fetch", "--uri", artifact_server, "--dest", "/models/add/1", "--allow-hosts", GATEWAY],
        "volumeMounts": mounts,
        "securityContext": restricted,
    }
    server = {
        "name": "server",
        "command": ["modelyard-server"],
        "args": ["--model-repository", "/models", "--http-port", "$(HTTP_PORT)", "--grpc-port", "8081"],
        "env": [{"name": "HTTP_PORT", "value": "8080"}],
        "ports": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 8081}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 5},
        "volumeMounts": mounts,
        "securityContext": restricted,
    }
    volumes = [{"name": "models", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    started = time.monotonic()
    kube.apply(pod("srv", [server], initContainers=[loader], volumes=volumes), ns)
    st = wait_for(lambda: ready(kube, "srv", ns), timeout=60, interval=0.5, what="the server pod Ready")
    time_to_ready = time.monotonic() - started
    assert st["phase"] == "Running"
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    ip = st["podIP"]
    assert ip.startswith("10.244.100.")

    client = httpclient.InferenceServerClient(f"{ip}:8080")
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 10, dtype=np.float32)
    inputs = [httpclient.InferInput("A", [2, 4], "FP32"), httpclient.InferInput("B", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer("add", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUT1"), a - b)
    print(f"pod applied -> Ready and answering in {time_to_ready:.1f}s")

    # through a Service: kube-proxy (iptables) gives it a virtual IP, from this host and from a pod
    kube.run("label", "pod", "srv", "-n", ns, "app=srv")
    ports = [{"name": "http", "port": 80, "targetPort": "http"}]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "srv"},
               "spec": {"selector": {"app": "srv"}, "ports": ports}}  # fmt: skip
    kube.apply(service, ns)
    vip = kube.get("service", "srv", ns)["spec"]["clusterIP"]
    assert vip.startswith("10.96.")

    def through_service() -> bool:
        try:
            result = httpclient.InferenceServerClient(f"{vip}:80", connection_timeout=1).infer("add", inputs)
        except Exception:  # kube-proxy programs the rules within a second or so
            return False
        return bool(np.array_equal(result.as_numpy("OUT0"), a + b))

    wait_for(through_service, timeout=20, interval=0.3, what=f"an answer through the Service IP {vip}")
    ready_url = f"http://{vip}/v2/health/ready"
    probe = f"import urllib.request; assert urllib.request.urlopen('{ready_url}', timeout=3).status == 200"
    retrying = f'for i in $(seq 20); do python3 -c "{probe}" && exit 0; sleep 0.5; done; exit 1'  # SYN may race ARP
    kube.apply(pod("client", [sh("c", retrying)], restartPolicy="Never"), ns)
    wait_for(lambda: status(kube, "client", ns).get("phase") in ("Succeeded", "Failed"), timeout=90,
             what="the client pod done")  # fmt: skip
    client_status = status(kube, "client", ns)
    assert client_status["phase"] == "Succeeded", client_status.get("containerStatuses")

    pid = container_pid(st["containerStatuses"][0])
    assert running(pid)
    netns = pod_netns(kube, "srv", ns)
    assert netns in netns_names()
    assert Path(f"/sys/class/net/{host_interface(netns)}").exists()
    kube.run("delete", "pod", "srv", "-n", ns, "--wait=false")
    wait_for(lambda: kube.get("pod", "srv", ns) is None, timeout=40, what="the pod object removed")
    assert not running(pid)
    assert netns not in netns_names()
    veth = Path(f"/sys/class/net/{host_interface(netns)}")
    wait_for(lambda: not veth.exists(), timeout=10, what=f"{veth.name} gone")  # the kernel drops it with the netns
    with pytest.raises(OSError, match=r"timed out|[Nn]o route|refused|unreachable"):  # its address went with its netns
        socket.create_connection((ip, 8080), timeout=1).close()


def test_delete_sends_sigterm_and_honours_the_grace_period(kube: Kubectl, ns: str, tmp_path: Path) -> None:
    script = "trap 'echo TERM > /out/signal; exit 0' TERM; echo started > /out/signal; while true; do sleep 0.1; done"
    spec = pod(
        "graceful",
        [sh("c", script, volumeMounts=[{"name": "out", "mountPath": "/out"}])],
        volumes=[{"name": "out", "hostPath": {"path": str(tmp_path)}}],
        terminationGracePeriodSeconds=30,
    )
    kube.apply(spec, ns)
    wait_for(lambda: (tmp_path / "signal").exists(), timeout=30, what="the container started")
    netns = pod_netns(kube, "graceful", ns)
    assert netns in netns_names()
    began = time.monotonic()
    kube.run("delete", "pod", "graceful", "-n", ns, "--wait=false")
    wait_for(lambda: kube.get("pod", "graceful", ns) is None, timeout=30, what="the pod object removed")
    assert (tmp_path / "signal").read_text().strip() == "TERM"
    assert time.monotonic() - began < 15  # it exited on SIGTERM: no waiting out the 30 s grace period
    assert netns not in netns_names()


def test_other_images_fail_with_image_not_runnable(kube: Kubectl, ns: str) -> None:
    kube.apply(pod("nginx", [{"name": "web", "image": "nginx:1.27"}]), ns)
    st = wait_for(lambda: status(kube, "nginx", ns).get("phase") == "Failed" and status(kube, "nginx", ns))
    assert st["reason"] == "ImageNotRunnable"
    assert "nginx:1.27" in st["message"]
    assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "ImageNotRunnable"
    kube.run("delete", "pod", "nginx", "-n", ns, "--wait=false")  # a finished pod's object goes at once
    wait_for(lambda: kube.get("pod", "nginx", ns) is None, timeout=10, what="the failed pod's object removed")


def test_host_network_pods_are_refused(kube: Kubectl, ns: str) -> None:
    kube.apply(pod("hostnet", [sh("c", "sleep 60")], hostNetwork=True), ns)
    st = wait_for(lambda: status(kube, "hostnet", ns).get("phase") == "Failed" and status(kube, "hostnet", ns))
    assert st["reason"] == "HostNetworkNotSupported"


def test_exit_code_and_termination_message_in_status(kube: Kubectl, ns: str) -> None:
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}, ns
    )
    script = 'printf "%s from %s at %s" "$(cat /cfg/greeting)" "$NAME" "$IP" > /dev/termination-log; exit 3'
    env = [
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    failing = sh("fails", script, env=env, volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}])
    fallback = sh("logs", "echo last words; exit 4", terminationMessagePolicy="FallbackToLogsOnError")
    read_only = sh(
        "ro", "touch /localnode-ro-check && exit 1; exit 0", securityContext={"readOnlyRootFilesystem": True}
    )
    spec = pod(
        "failing",
        [failing, fallback, read_only],
        restartPolicy="Never",
        volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}],
    )
    kube.apply(spec, ns)
    st = wait_for(lambda: status(kube, "failing", ns).get("phase") == "Failed" and status(kube, "failing", ns))
    by_name = {c["name"]: c["state"]["terminated"] for c in st["containerStatuses"]}
    assert by_name["fails"]["exitCode"] == 3
    assert by_name["fails"]["reason"] == "Error"
    assert by_name["fails"]["message"] == f"hello from failing at {st['podIP']}"
    assert by_name["logs"]["exitCode"] == 4
    assert by_name["logs"]["message"].strip() == "last words"
    assert by_name["ro"]["exitCode"] == 0  # its root filesystem was read-only
    assert not Path("/localnode-ro-check").exists()


def test_containers_restart_with_back_off_under_restart_policy_always(kube: Kubectl, ns: str) -> None:
    kube.apply(pod("crashy", [sh("c", "exit 1")]), ns)

    def restarted() -> dict[str, Any] | None:
        cs = status(kube, "crashy", ns).get("containerStatuses") or [{}]
        return cs[0] if cs[0].get("restartCount", 0) >= 2 else None

    cs = wait_for(restarted, timeout=30, what="two restarts")
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert status(kube, "crashy", ns)["phase"] == "Running"


def test_a_failing_liveness_probe_restarts_the_container(kube: Kubectl, ns: str) -> None:
    probe = {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2}
    kube.apply(pod("unhealthy", [sh("c", "sleep 1000", livenessProbe=probe)], terminationGracePeriodSeconds=5), ns)

    def restarted() -> dict[str, Any] | None:
        cs = status(kube, "unhealthy", ns).get("containerStatuses") or [{}]
        return cs[0] if cs[0].get("restartCount", 0) >= 1 else None

    cs = wait_for(restarted, timeout=30, what="a restart after liveness failures")
    assert cs["lastState"]["terminated"]["exitCode"] == 128 + 15  # stopped with SIGTERM


def test_sidecar_first_exec_and_tcp_probes_and_configmap_refresh(kube: Kubectl, ns: str) -> None:
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gate"}, "data": {"state": "wait"}}, ns)
    shared = [{"name": "shared", "mountPath": "/shared"}]
    sidecar = sh(
        "side",
        "sleep 1; echo up > /shared/side; while true; do sleep 0.1; done",
        restartPolicy="Always",
        volumeMounts=shared,
        startupProbe={"exec": {"command": ["test", "-f", "/shared/side"]}, "periodSeconds": 1, "failureThreshold": 30},
    )
    main = sh(
        "main",
        "test -f /shared/side || exit 9; exec python3 -m http.server 9000",  # the sidecar was started first
        volumeMounts=[*shared, {"name": "gate", "mountPath": "/gate"}],
        ports=[{"name": "web", "containerPort": 9000}],
        livenessProbe={"tcpSocket": {"port": "web"}, "periodSeconds": 1, "initialDelaySeconds": 2},
        readinessProbe={"exec": {"command": ["grep", "-q", "ready", "/gate/state"]}, "periodSeconds": 1},
    )
    volumes = [{"name": "shared", "emptyDir": {}}, {"name": "gate", "configMap": {"name": "gate"}}]
    kube.apply(pod("probed", [main], initContainers=[sidecar], volumes=volumes), ns)

    def running() -> dict[str, Any] | None:
        st = status(kube, "probed", ns)
        cs = st.get("containerStatuses") or [{}]
        return st if cs[0].get("state", {}).get("running") else None

    st = wait_for(running, timeout=30, what="the main container running")
    assert st["initContainerStatuses"][0]["started"] is True
    time.sleep(3)  # liveness (tcpSocket) passes, readiness (exec) fails: running, not Ready, no restarts
    st = status(kube, "probed", ns)
    assert st["containerStatuses"][0]["ready"] is False
    assert st["containerStatuses"][0]["restartCount"] == 0
    kube.run("patch", "configmap", "gate", "-n", ns, "-p", '{"data": {"state": "ready"}}')
    st = wait_for(lambda: ready(kube, "probed", ns), timeout=20, what="Ready once the ConfigMap says so")
    assert st["containerStatuses"][0]["restartCount"] == 0
    assert st["initContainerStatuses"][0]["state"]["running"]  # the native sidecar keeps running


def test_operator_rendered_validation_job_and_deployment_run_for_real(
    kube: Kubectl, ns: str, artifact_server: str
) -> None:
    """The operator's own Job and Deployment (restricted pods, read-only root, an emptyDir over /work) run
    unchanged but for placement and the loader's allow-list for the host's artifact server."""
    from modelyard_operator.api import ModelDeployment, ModelVersion
    from modelyard_operator.config import OperatorConfig
    from modelyard_operator.render import render_deployment
    from modelyard_operator.validation import render_validation_job

    from ..unit.samples import model_deployment, model_version

    data = urllib.request.urlopen(artifact_server.replace(GATEWAY, "127.0.0.1"), timeout=5).read()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    mv = ModelVersion.model_validate(model_version(artifact={"uri": artifact_server, "digest": digest}))
    placement = PLACEMENT
    md = ModelDeployment.model_validate(
        model_deployment(placement=placement, replicas=1, resources={"requests": {"cpu": "100m"}})
    )
    allow = {"name": "MODELYARD_LOADER_ALLOW_HOSTS", "value": GATEWAY}

    job = render_validation_job(mv, OperatorConfig())
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec |= placement
    pod_spec["containers"][0].setdefault("env", []).append(allow)
    deployment = render_deployment(md, mv, OperatorConfig(), replicas=1)
    deployment["spec"]["template"]["spec"]["initContainers"][0].setdefault("env", []).append(allow)
    for obj in (job, deployment):
        obj["metadata"].pop("ownerReferences", None)
        obj["metadata"]["namespace"] = ns
    kube.apply([job, deployment], ns)

    def validated() -> dict[str, Any] | None:
        pods = kube.get("pods", namespace=ns, labels=f"job-name={job['metadata']['name']}")["items"]
        return pods[0]["status"] if pods and pods[0]["status"].get("phase") == "Succeeded" else None

    st = wait_for(validated, timeout=60, what="the validation pod Succeeded")
    report = json.loads(st["containerStatuses"][0]["state"]["terminated"]["message"])
    assert report["ok"] is True
    assert report["artifact"]["digest"] == digest
    assert [i["name"] for i in report["inputs"]] == ["A", "B"]

    def serving() -> dict[str, Any] | None:
        pods = kube.get("pods", namespace=ns, labels="modelyard.dev/model=fraud")["items"]
        return ready(kube, pods[0]["metadata"]["name"], ns) if pods else None

    st = wait_for(serving, timeout=60, what="the rendered model pod Ready")
    model = json.loads(urllib.request.urlopen(f"http://{st['podIP']}:8080/v2/models/fraud", timeout=5).read())
    assert model["versions"] == ["42"]


def test_down_leaves_no_namespace_bridge_or_process(local_cluster: DevCluster, kube: Kubectl, ns: str) -> None:
    kube.apply(pod("left-running", [sh("c", "trap '' TERM; while true; do sleep 0.1; done")]), ns)
    st = wait_for(lambda: ready(kube, "left-running", ns), timeout=30, what="the pod Ready")
    pid = container_pid(st["containerStatuses"][0])
    assert netns_names()
    local_cluster.down()
    assert not running(pid)
    assert netns_names() == []
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    assert not Path(LOCK).exists()
    assert not Path("/run/modelyard-localnode").exists()
    assert not Path(LOCK).exists()
    assert not Path("/dev/termination-log").exists()
    assert json.dumps(local_cluster.status()) == "[]"
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout
    assert "KUBE-SERVICES" not in nat  # kube-proxy's rules are cleaned up


def test_a_crashed_agent_leaves_nothing_after_down(tmp_path: Path) -> None:
    """Runs after the module's cluster is down (one local node per machine: one bridge)."""
    cl = DevCluster(tmp_path / "cluster")
    cl.up(nodes=False, local_node=True)
    try:
        kube = Kubectl(cl.bin / "kubectl", cl.kubeconfig)
        kube.apply(pod("orphan", [sh("c", "trap '' TERM; sleep 1000 & wait")]), "default")
        st = wait_for(lambda: ready(kube, "orphan", "default"), timeout=30, what="the pod Ready")
        pids = [int(p) for p in subprocess.run(["ip", "netns", "pids", pod_netns(kube, "orphan", "default")],
                                               capture_output=True, text=True, check=True).stdout.split()]  # fmt: skip
        assert container_pid(st["containerStatuses"][0]) in pids
        assert len(pids) >= 2  # sh and its sleep
        state = cl.state()
        assert state is not None
        agent = next(c for c in state.components if c.name == "localnode")
        os.kill(agent.pid, 9)  # no chance to clean up
        wait_for(lambda: not agent.alive(), timeout=10, what="the agent gone")
        assert all(running(p) for p in pids)  # its pods' processes outlive it ...
    finally:
        cl.down()
    assert not any(running(p) for p in pids)  # ... but not down
    assert netns_names() == []
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    assert not Path(LOCK).exists()
