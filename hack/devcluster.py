#!/usr/bin/env python3
"""A real Kubernetes control plane on 127.0.0.1, without Docker: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok run as local processes from binaries built by
``hack/build-controlplane.sh``; kwok fakes the nodes and turns their pods Running/Ready.

    hack/devcluster up [--dir DIR]      start; the last line printed is ``export KUBECONFIG=...``
    hack/devcluster up --real-node      also run node node-0: kubelet, containerd, runc, CNI, kube-proxy, CoreDNS
                                        and a local image registry (hack/realnode.py, docs/real-node.md)
    hack/devcluster up --prometheus     also run Prometheus, discovering and scraping model pods through the API
    hack/devcluster env [--dir DIR]     print the KUBECONFIG and PATH exports
    hack/devcluster status [--dir DIR]  report each component
    hack/devcluster down [--dir DIR]    stop exactly the processes ``up`` started
    hack/devcluster build               build (or reuse) the binaries and print their folder

The integration tests' pytest fixture drives the same :class:`DevCluster` class. Standard library
only, so it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import realnode  # hack/ is on the path: this file's folder

HACK = Path(__file__).resolve().parent
REPO = HACK.parent
DEFAULT_DIR = REPO / ".devcluster"
SERVICE_CIDR = "10.96.0.0/16"
STATE_FILE = "state.json"
KWOK_SELECTOR = "modelyard.dev/fake-node=true"
OPERATOR_USER = "modelyard-operator"  # the identity of operator.kubeconfig (up writes it next to the admin's)
# a second operator replica's identity (operator-b.kubeconfig): the audit log tells which replica sent a request
OPERATOR_B_USER = "modelyard-operator-b"
OWN_KWOK_STAGES = ("pod-complete.yaml", "validation-complete.yaml")  # in hack/kwok/
# What make images writes to dist/images (the CPU ones; the GPU image is not pushed: no GPU here)
PROJECT_IMAGES = ("modelyard-operator", "modelyard-runtime")
FRONT_PROXY_USER = "front-proxy-client"  # the API server's client certificate towards aggregated API servers
PROMETHEUS_USER = "system:modelyard-prometheus"  # read-only identity for Prometheus's service discovery
COREDNS_USER = "system:modelyard-coredns"  # read-only identity of the real node's CoreDNS
PROMETHEUS_SCRAPE_INTERVAL = "2s"  # short, so a new pod's series appear within seconds in development


def dev_analysis(metrics: list[dict[str, Any]], *, min_requests: int) -> dict[str, Any]:
    """A ModelDeployment's ``rollout.analysis`` for this cluster's Prometheus: measure every 2 s over 5 s windows
    (at least two scrapes)."""
    return {"interval": "2s", "window": "5s", "scrapeInterval": PROMETHEUS_SCRAPE_INTERVAL,
            "evidence": {"minRequests": min_requests}, "metrics": metrics}  # fmt: skip


class ClusterError(RuntimeError):
    """Starting or stopping the cluster failed; the message says what and shows the log tail."""


def log(msg: str) -> None:
    print(f"[devcluster] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- binaries


def versions() -> dict[str, str]:
    out = {}
    for line in (HACK / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def project_version() -> str:
    """The one version of the package, the chart and the images: pyproject.toml's."""
    with open(REPO / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def ensure_node_binaries() -> Path:
    """Build (cold) or find (warm) containerd, the CNI plugins, CoreDNS and pause; returns their bin folder."""
    proc = subprocess.run(["bash", str(HACK / "build-node.sh")], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError("building the real node's binaries failed (the reason is printed above)")
    return Path(proc.stdout.strip().splitlines()[-1])


def realnode_record_name() -> str:
    return "realnode-host.json"  # the host settings found at up, written back at down


def ensure_binaries() -> Path:
    """Build (cold) or find (warm) the binaries; returns their bin folder."""
    proc = subprocess.run(["bash", str(HACK / "build-controlplane.sh")], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError("building the control-plane binaries failed (the reason is printed above)")
    return Path(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ PKI


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()[-500:]}")


def make_pki(pki: Path) -> None:
    """A CA, the apiserver's and the real node's serving certificates, client certificates and the
    service-account keys."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=modelyard-devcluster-ca",
        cwd=pki,
    )
    sans = (
        "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        f"DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:{realnode.GATEWAY}"
    )
    certs = {
        "apiserver": ("/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth"),
        "admin": ("/O=system:masters/CN=modelyard-admin", "extendedKeyUsage=clientAuth"),
        "controller-manager": ("/CN=system:kube-controller-manager", "extendedKeyUsage=clientAuth"),
        "scheduler": ("/CN=system:kube-scheduler", "extendedKeyUsage=clientAuth"),
        "kwok": ("/O=system:masters/CN=kwok-controller", "extendedKeyUsage=clientAuth"),
        "kube-proxy": ("/CN=system:kube-proxy", "extendedKeyUsage=clientAuth"),  # bound to system:node-proxier
        "prometheus": (f"/CN={PROMETHEUS_USER}", "extendedKeyUsage=clientAuth"),  # no group: RBAC grants reads only
        # the aggregation layer's identity towards extension API servers (prometheus-adapter in the autoscaling
        # test): they trust the user it names in X-Remote-User because its certificate carries this name
        "front-proxy-client": (f"/CN={FRONT_PROXY_USER}", "extendedKeyUsage=clientAuth"),
        # the real node: its kubelet's identity (Node authorizer), its serving certificate for logs/exec, the API
        # server's client certificate towards it, and CoreDNS's read-only identity
        "kubelet": (f"/O=system:nodes/CN=system:node:{realnode.NODE}", "extendedKeyUsage=clientAuth"),
        "kubelet-serving": (
            f"/CN={realnode.NODE}",
            f"subjectAltName=DNS:{realnode.NODE},IP:{realnode.GATEWAY}\nextendedKeyUsage=serverAuth",
        ),
        "apiserver-kubelet-client": (
            "/O=system:masters/CN=kube-apiserver-kubelet-client",
            "extendedKeyUsage=clientAuth",
        ),
        "coredns": (f"/CN={COREDNS_USER}", "extendedKeyUsage=clientAuth"),
        # an operator run from this host under its own name, so the audit log tells its requests apart
        "operator": (f"/O=system:masters/CN={OPERATOR_USER}", "extendedKeyUsage=clientAuth"),
        "operator-b": (f"/O=system:masters/CN={OPERATOR_B_USER}", "extendedKeyUsage=clientAuth"),
    }
    for name, (subject, ext) in certs.items():
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki)
        (pki / f"{name}.ext").write_text(ext + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "3650",
            "-extfile",
            f"{name}.ext",
            cwd=pki,
        )
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=pki)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, pki: Path, server: str, user: str) -> None:
    # JSON is valid YAML: no YAML library needed.
    conf = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "modelyard-dev", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(pki / f"{user}.crt"), "client-key": str(pki / f"{user}.key")},
            }
        ],
        "contexts": [{"name": "modelyard-dev", "context": {"cluster": "modelyard-dev", "user": user}}],
        "current-context": "modelyard-dev",
    }
    path.write_text(json.dumps(conf, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------- nodes


def _gpu_labels(product: str, memory_mib: int) -> dict[str, str]:
    # The labels NVIDIA's GPU feature discovery puts on real nodes.
    return {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": str(memory_mib),
        "nvidia.com/gpu.family": "hopper",
        "nvidia.com/gpu.compute.major": "9",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/cuda.driver.major": "570",
        "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/mig.capable": "true",
        "node.kubernetes.io/instance-type": "p5.48xlarge",
        "modelyard.dev/accelerator": "nvidia-h100",
    }


def fake_nodes() -> list[dict[str, Any]]:
    """Three CPU nodes, two 8-GPU nodes and one tainted arm64 edge node."""
    specs: list[tuple[str, str, dict[str, str], dict[str, str], list[dict[str, str]]]] = []
    for i in range(3):
        specs.append(
            (
                f"cpu-{i}",
                "amd64",
                {"node.kubernetes.io/instance-type": "m7i.4xlarge"},
                {"cpu": "16", "memory": "64Gi", "pods": "110"},
                [],
            )
        )
    for i in range(2):
        specs.append(
            (
                f"gpu-{i}",
                "amd64",
                _gpu_labels("NVIDIA-H100-80GB-HBM3", 81559),
                {"cpu": "192", "memory": "2048Gi", "pods": "110", "nvidia.com/gpu": "8"},
                [],
            )
        )
    specs.append(
        (
            "edge-0",
            "arm64",
            {"node.kubernetes.io/instance-type": "t4g.large", "modelyard.dev/edge": "true"},
            {"cpu": "2", "memory": "8Gi", "pods": "32"},
            [{"key": "modelyard.dev/edge", "value": "true", "effect": "NoSchedule"}],
        )
    )
    nodes = []
    for index, (name, arch, labels, capacity, taints) in enumerate(specs):
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/arch": arch,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/hostname": name,
                        "topology.kubernetes.io/zone": f"dev-{'ab'[index % 2]}",
                        "modelyard.dev/fake-node": "true",
                        "type": "kwok",
                        **labels,
                    },
                },
                "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"], "taints": taints},
                "status": {"capacity": capacity, "allocatable": capacity},
            }
        )
    return nodes


# ------------------------------------------------------------------------------------------ processes


# Listening ports come from below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default): a port
# the kernel hands out for bind(0) may be handed out again, before the component that was meant to listen on it
# starts, to one of the many outgoing connections the control plane opens meanwhile ("address already in use").
_PORTS = range(20000, 32768)


_GIVEN: collections.deque[int] = collections.deque(maxlen=512)  # ports handed out recently by this process


def free_port() -> int:
    """A loopback TCP port nothing listens on now, outside the ephemeral range, and not one this process handed out
    recently (a caller takes several ports before it binds any: two draws must never return the same one)."""
    for _ in range(200):
        port = random.choice(_PORTS)  # noqa: S311  (not cryptography: spreading tries over the range)
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _GIVEN.append(port)
            return port
    raise ClusterError("no free port between 20000 and 32767")


@dataclass
class Component:
    name: str
    binary: str
    args: list[str]
    log: str
    health: str  # URL polled until it answers 200
    pid: int = 0

    def alive(self) -> bool:
        if self.pid <= 0:
            return False
        try:
            exe = os.readlink(f"/proc/{self.pid}/exe")
        except OSError:
            return False
        # Same PID and same binary: it is the process we started, not a recycled PID.
        return Path(exe.removesuffix(" (deleted)")).name == Path(self.binary).name

    def tail(self, lines: int = 40) -> str:
        try:
            text = Path(self.log).read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


@dataclass
class State:
    dir: str
    bin: str
    kubeconfig: str
    apiserver: str
    components: list[Component] = field(default_factory=list)
    real_node: bool = False
    registry: str = ""  # host:port of the dev registry the real node pulls from

    def save(self) -> None:
        path = Path(self.dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path) -> State | None:
        path = directory / STATE_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        raw["components"] = [Component(**c) for c in raw["components"]]
        return cls(**raw)


def wait_for_cri(sock: Path, containerd: Component, *, deadline: float) -> None:
    """Until containerd's CRI service answers: its metrics endpoint is up before the CRI plugin has initialized,
    and a kubelet started in between exits at once ("server is not initialized yet"). Without grpcio (devcluster
    run by a bare python3), kubelet's start is retried on that message instead (``_start(retry_on=...)``)."""
    try:
        import grpc  # the runtime's dependency; imported here so that the rest of devcluster needs none
    except ImportError:
        return

    with grpc.insecure_channel(f"unix://{sock}") as channel:
        version = channel.unary_unary("/runtime.v1.RuntimeService/Version")
        while True:
            try:
                version(b"", timeout=2)  # an empty VersionRequest
                return
            except grpc.RpcError as exc:
                if time.monotonic() > deadline:
                    why = f"containerd's CRI never answered: {exc}"
                    raise ClusterError(f"{why}; last lines of {containerd.log}:\n{containerd.tail()}") from exc
            time.sleep(0.2)


def _http_ok(url: str, ca: Path | None) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()  # noqa: S323  (kcm/scheduler serve self-signed certs on 127.0.0.1)
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


class DevCluster:
    """Start, inspect and stop a local control plane kept in ``directory``."""

    def __init__(self, directory: Path = DEFAULT_DIR, bin_dir: Path | None = None) -> None:
        self.dir = directory.resolve()
        self._bin = bin_dir
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def bin(self) -> Path:
        if self._bin is None:
            self._bin = ensure_binaries()
        return self._bin

    def state(self) -> State | None:
        return State.load(self.dir)

    # -- up --

    def up(
        self,
        *,
        nodes: bool = True,
        real_node: bool = False,
        prometheus: bool = False,
        audit: bool = False,
        timeout: float = 120.0,
    ) -> State:
        """Start the control plane (and kwok's nodes, the real node, Prometheus as asked). ``audit``: the API server
        logs every request of :data:`OPERATOR_USER` (operator.kubeconfig) to ``logs/audit.log``, one JSON line each."""
        existing = self.state()
        if existing is not None and any(c.alive() for c in existing.components):
            raise ClusterError(f"a cluster is already running from {self.dir} (hack/devcluster down first)")
        started = time.monotonic()
        bin_dir = self.bin
        node_bin = None
        if real_node:
            try:
                realnode.check_host()
            except realnode.NodeError as exc:
                raise ClusterError(str(exc)) from None
            node_bin = ensure_node_binaries()
        prometheus_binary = shutil.which("prometheus") if prometheus else None
        if prometheus and prometheus_binary is None:
            raise ClusterError("--prometheus needs the prometheus binary on PATH (make prometheus installs Debian's)")
        for sub in ("etcd-data", "pki", "logs", "prometheus-data"):
            path = self.dir / sub
            if sub != "logs" and path.exists():
                subprocess.run(["rm", "-rf", str(path)], check=True)
            path.mkdir(parents=True, exist_ok=True)
        pki = self.dir / "pki"
        make_pki(pki)
        ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver", "kcm", "sched", "kwok")}
        state = State(dir=str(self.dir), bin=str(bin_dir), kubeconfig=str(self.kubeconfig), apiserver="")
        if real_node:  # the bridge first: the API server listens on the node's address, so pods reach it too
            realnode.prepare_host(self.dir / realnode_record_name(), owner_pid=os.getpid())
            state.real_node = True
        host = realnode.GATEWAY if real_node else "127.0.0.1"
        server = state.apiserver = f"https://{host}:{ports['apiserver']}"
        write_kubeconfig(self.kubeconfig, pki, server, "admin")
        for user in (
            "controller-manager",
            "scheduler",
            "kwok",
            "kube-proxy",
            "kubelet",
            "coredns",
            "operator",
            "operator-b",
        ):
            write_kubeconfig(self.dir / f"{user}.kubeconfig", pki, server, user)
        stages = self._kwok_stages()
        logs = self.dir / "logs"
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        plan = [
            Component(
                "etcd",
                str(bin_dir / "etcd"),
                [
                    "--name=devcluster",
                    f"--data-dir={self.dir / 'etcd-data'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=devcluster={peer_url}",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                    "--quota-backend-bytes=4294967296",
                ],
                str(logs / "etcd.log"),
                f"{etcd_url}/health",
            ),
            Component(
                "kube-apiserver",
                str(bin_dir / "kube-apiserver"),
                [
                    f"--etcd-servers={etcd_url}",
                    f"--bind-address={host}",
                    f"--advertise-address={host}",
                    f"--secure-port={ports['apiserver']}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--authorization-mode=Node,RBAC",
                    "--allow-privileged=true",
                    # with a real node, Service kubernetes points at this API server for the pods
                    f"--endpoint-reconciler-type={'lease' if real_node else 'none'}",
                    "--profiling=false",
                    "--watch-cache=true",
                    "--v=1",
                    # kubectl logs/exec/port-forward go through the real node's kubelet
                    f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                    f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                    f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                    "--kubelet-preferred-address-types=InternalIP,Hostname",
                    # the aggregation layer (APIServices of extension API servers, e.g. prometheus-adapter's
                    # custom.metrics.k8s.io): proxied requests carry the user in X-Remote-* headers, signed by the
                    # front-proxy client certificate, and go to an endpoint of the APIService's Service directly
                    # (no kube-proxy needed for the API server to reach it)
                    f"--requestheader-client-ca-file={pki / 'ca.crt'}",
                    f"--requestheader-allowed-names={FRONT_PROXY_USER}",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                    f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                    "--enable-aggregator-routing=true",
                    *(self._audit_flags(logs) if audit else []),
                ],
                str(logs / "kube-apiserver.log"),
                f"{server}/readyz",
            ),
            Component(
                "kube-controller-manager",
                str(bin_dir / "kube-controller-manager"),
                [
                    f"--kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                    f"--authentication-kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                    f"--authorization-kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kcm']}",
                    "--leader-elect=false",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--use-service-account-credentials=true",
                    "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                    "--controllers=*,-node-ipam-controller,-cloud-node-lifecycle-controller",
                    "--v=1",
                    "--concurrent-deployment-syncs=10",
                    "--concurrent-replicaset-syncs=10",
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                ],
                str(logs / "kube-controller-manager.log"),
                f"https://127.0.0.1:{ports['kcm']}/healthz",
            ),
            Component(
                "kube-scheduler",
                str(bin_dir / "kube-scheduler"),
                [
                    f"--kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                    f"--authentication-kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                    f"--authorization-kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['sched']}",
                    "--leader-elect=false",
                    "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                    "--v=1",
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                ],
                str(logs / "kube-scheduler.log"),
                f"https://127.0.0.1:{ports['sched']}/healthz",
            ),
            Component(
                "kwok",
                str(bin_dir / "kwok"),
                [
                    f"--kubeconfig={self.dir / 'kwok.kubeconfig'}",
                    f"--config={stages}",
                    f"--manage-nodes-with-label-selector={KWOK_SELECTOR}",
                    "--manage-all-nodes=false",
                    f"--server-address=127.0.0.1:{ports['kwok']}",
                    "--node-ip=127.0.0.1",
                    "--node-lease-duration-seconds=40",
                    "--cidr=10.244.0.0/16",
                ],
                str(logs / "kwok.log"),
                f"http://127.0.0.1:{ports['kwok']}/healthz",
            ),
        ]
        try:
            for comp in plan:
                self._start(comp, state, deadline=time.monotonic() + timeout)
            self._wait_for_service_account(deadline=time.monotonic() + timeout)
            if nodes:
                self.kubectl(
                    "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": fake_nodes()})
                )
                self.kubectl("wait", "--for=condition=Ready", "node", "-l", KWOK_SELECTOR, f"--timeout={int(timeout)}s")
            if node_bin is not None:
                self._start_real_node(node_bin, state, deadline=time.monotonic() + timeout)
            if prometheus_binary is not None:
                self._start_prometheus(prometheus_binary, state, deadline=time.monotonic() + timeout)
        except BaseException:
            self._stop_all(state)
            if real_node:
                realnode.cleanup(self.dir / realnode_record_name())
            raise
        version = json.loads(self.kubectl("get", "--raw", "/version", capture=True))["gitVersion"]
        log(f"cluster up in {time.monotonic() - started:.1f}s: Kubernetes {version} at {server}")
        return state

    def _audit_flags(self, logs: Path) -> list[str]:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],  # one line per request: when its answer is complete (or started)
            "rules": [{"level": "Metadata", "users": [OPERATOR_USER, OPERATOR_B_USER]}, {"level": "None"}],
        }
        path = self.dir / "audit-policy.yaml"
        path.write_text(json.dumps(policy, indent=2) + "\n")
        (logs / "audit.log").unlink(missing_ok=True)
        return [f"--audit-policy-file={path}", f"--audit-log-path={logs / 'audit.log'}", "--audit-log-maxsize=0"]

    def _start_real_node(self, node_bin: Path, state: State, *, deadline: float) -> None:
        """Node ``node-0`` run by kubelet with containerd and runc (hack/realnode.py): a registry for its images,
        containerd, kubelet, kube-proxy and CoreDNS, in that order."""
        run, logs = realnode.RUN, self.dir / "logs"
        started = time.monotonic()
        reg_port = free_port()
        (self.dir / "registry.yml").write_text(
            realnode.registry_config(port=reg_port, storage=realnode.cache_root() / realnode.REGISTRY_STORE)
        )
        registry = Component(
            "registry",
            shutil.which("docker-registry") or "docker-registry",
            ["serve", str(self.dir / "registry.yml")],
            str(logs / "registry.log"),
            f"http://127.0.0.1:{reg_port}/v2/",
        )
        self._start(registry, state, deadline=deadline)
        state.registry = f"127.0.0.1:{reg_port}"
        state.save()
        layout = realnode.pause_layout(node_bin / "pause", self.dir / "pause-image")
        realnode.push_layout(layout, f"{state.registry}/{realnode.PAUSE_IMAGE}")
        for upstream in (state.registry, realnode.MIRRORED_REGISTRY):
            hosts = run / "certs.d" / upstream / "hosts.toml"
            hosts.parent.mkdir(parents=True, exist_ok=True)
            hosts.write_text(realnode.registry_hosts(state.registry, upstream=upstream))
        (run / "cni" / "10-modelyard.conflist").write_text(json.dumps(realnode.cni_config(), indent=2) + "\n")
        metrics = free_port()
        (self.dir / "containerd.toml").write_text(
            realnode.containerd_config(bin_dir=node_bin, registry=state.registry, metrics_port=metrics)
        )
        containerd = Component(
            "containerd",
            str(node_bin / "containerd"),
            [f"--config={self.dir / 'containerd.toml'}", "--log-level=warn"],
            str(logs / "containerd.log"),
            f"http://127.0.0.1:{metrics}/v1/metrics",
        )
        # the shim is found on PATH; it outlives containerd on purpose and down kills it
        os.environ["PATH"] = f"{node_bin}{os.pathsep}{os.environ.get('PATH', '')}"
        self._start(containerd, state, deadline=deadline)
        realnode.LOCK.write_text(f"{containerd.pid}\n")
        wait_for_cri(run / "containerd.sock", containerd, deadline=deadline)
        healthz = free_port()
        (self.dir / "kubelet.yaml").write_text(
            json.dumps(realnode.kubelet_config(pki=self.dir / "pki", healthz_port=healthz), indent=2) + "\n"
        )
        kubelet = Component(
            "kubelet",
            str(self.bin / "kubelet"),
            [
                f"--config={self.dir / 'kubelet.yaml'}",
                f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
                f"--root-dir={realnode.STATE / 'kubelet'}",
                f"--hostname-override={realnode.NODE}",
                f"--node-ip={realnode.GATEWAY}",
                f"--node-labels={realnode.LABEL}=true",
                "--v=1",
            ],
            str(logs / "kubelet.log"),
            f"http://127.0.0.1:{healthz}/healthz",
        )
        # containerd answers its metrics before its CRI service finished initialising; kubelet then exits at once
        self._start(kubelet, state, deadline=deadline, retry_on="server is not initialized yet")
        while not self.kubectl("get", "node", realnode.NODE, check=False, capture=True):  # registers in a moment
            if time.monotonic() > deadline:
                raise ClusterError(f"kubelet never registered {realnode.NODE}:\n{kubelet.tail()}")
            time.sleep(0.2)
        remaining = max(1, int(deadline - time.monotonic()))
        self.kubectl("wait", "--for=condition=Ready", f"node/{realnode.NODE}", f"--timeout={remaining}s")
        self._start_kube_proxy(state, deadline=deadline)
        items = realnode.coredns_rbac(COREDNS_USER) + realnode.dns_objects()
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        health, ready = free_port(), free_port()
        (self.dir / "Corefile").write_text(
            realnode.corefile(kubeconfig=self.dir / "coredns.kubeconfig", health_port=health, ready_port=ready)
        )
        coredns = Component(
            "coredns",
            str(node_bin / "coredns"),
            ["-conf", str(self.dir / "Corefile")],
            str(logs / "coredns.log"),
            f"http://127.0.0.1:{ready}/ready",
        )
        self._start(coredns, state, deadline=deadline)
        log(f"real node {realnode.NODE} ready in {time.monotonic() - started:.1f}s; registry {state.registry}")

    def _start_kube_proxy(self, state: State, *, deadline: float) -> None:
        """kube-proxy for the real node (iptables mode, in this host's network namespace): Services
        get their virtual IPs, reachable from this host and from the pods. ``--masquerade-all`` because the pods
        share one bridge without br_netfilter: a pod's request to a Service IP answered by a pod on the same bridge
        must come back through the host to be un-NATed."""
        if shutil.which("iptables") is None:
            raise ClusterError("the real node needs iptables for kube-proxy (make node-tools installs it)")
        health, metrics = free_port(), free_port()
        comp = Component(
            "kube-proxy",
            str(self.bin / "kube-proxy"),
            [
                f"--kubeconfig={self.dir / 'kube-proxy.kubeconfig'}",
                f"--hostname-override={realnode.NODE}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={realnode.CIDR}",
                "--masquerade-all",
                "--conntrack-max-per-core=0",  # leave this machine's conntrack settings alone
                "--nodeport-addresses=primary",
                f"--healthz-bind-address=127.0.0.1:{health}",
                f"--metrics-bind-address=127.0.0.1:{metrics}",
                "--iptables-min-sync-period=0s",
                "--v=1",
            ],
            str(self.dir / "logs" / "kube-proxy.log"),
            f"http://127.0.0.1:{health}/healthz",
        )
        self._start(comp, state, deadline=deadline)

    def _start_prometheus(self, binary: str, state: State, *, deadline: float) -> None:
        """Prometheus discovering pods from this API server (hack/promsd.py) with the relabelling the chart documents
        (docs/rollouts.md): model pods' ``http`` port scraped at /metrics, with ``namespace`` and ``pod`` labels."""
        self.kubectl("apply", "-f", "-", stdin=json.dumps(prometheus_rbac()))
        pki = self.dir / "pki"
        # Debian's prometheus has no kubernetes_sd_configs: hack/promsd.py serves the same targets over HTTP SD.
        sd_port = free_port()
        sd = Component(
            "prometheus-sd",
            str(Path(sys.executable).resolve()),
            [
                str(HACK / "promsd.py"),
                f"--server={state.apiserver}",
                f"--ca={pki / 'ca.crt'}",
                f"--cert={pki / 'prometheus.crt'}",
                f"--key={pki / 'prometheus.key'}",
                f"--port={sd_port}",
            ],
            str(self.dir / "logs" / "prometheus-sd.log"),
            f"http://127.0.0.1:{sd_port}/healthz",
        )
        self._start(sd, state, deadline=deadline)
        config = prometheus_config(f"http://127.0.0.1:{sd_port}/targets")
        (self.dir / "prometheus.yml").write_text(json.dumps(config, indent=2) + "\n")  # JSON is valid YAML
        port = free_port()
        host = realnode.GATEWAY if state.real_node else "127.0.0.1"  # an operator in a pod queries it too
        comp = Component(
            "prometheus",
            binary,
            [
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'prometheus-data'}",
                f"--web.listen-address={host}:{port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            str(self.dir / "logs" / "prometheus.log"),
            f"http://{host}:{port}/-/ready",
        )
        self._start(comp, state, deadline=deadline)
        log(f"prometheus at {prometheus_url(comp)}")

    def _kwok_stages(self) -> Path:
        root = self.bin.parent / "kwok-stages"
        parts = [
            "node/fast/node-initialize.yaml",
            "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
            "pod/fast/pod-ready.yaml",
            "pod/fast/pod-delete.yaml",
        ]
        missing = [p for p in parts if not (root / p).exists()]
        if missing:
            raise ClusterError(f"kwok stage files missing under {root}: {missing} (rebuild with hack/devcluster build)")
        # Job completion is ours: validation pods get a stand-in for the validator (hack/kwok/)
        texts = [(root / p).read_text() for p in parts] + [(HACK / "kwok" / f).read_text() for f in OWN_KWOK_STAGES]
        out = self.dir / "kwok-stages.yaml"
        out.write_text("\n---\n".join(texts))
        return out

    def _start(self, comp: Component, state: State, *, deadline: float, retry_on: str | None = None) -> None:
        """Start ``comp`` and wait until its health endpoint answers. ``retry_on``: a log line that means "started
        too early" (e.g. kubelet finding containerd's CRI not initialized yet under load): start it again."""
        for attempt in range(1, 6):
            try:
                self._start_once(comp, state, deadline=deadline)
                return
            except ClusterError:
                if retry_on is None or attempt == 5 or retry_on not in comp.tail() or time.monotonic() > deadline:
                    raise
                log(f"{comp.name} started too early ({retry_on}); starting it again (attempt {attempt + 1})")
                state.components.remove(comp)
                state.save()
                time.sleep(1.0)

    def _start_once(self, comp: Component, state: State, *, deadline: float) -> None:
        with open(comp.log, "ab") as logf:
            proc = subprocess.Popen(
                [comp.binary, *comp.args],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        comp.pid = proc.pid
        self._procs[proc.pid] = proc
        state.components.append(comp)
        state.save()
        ca = Path(state.dir) / "pki" / "ca.crt" if comp.name == "kube-apiserver" else None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ClusterError(
                    f"{comp.name} exited with code {proc.returncode}; last lines of {comp.log}:\n{comp.tail()}"
                )
            if _http_ok(comp.health, ca):
                log(f"{comp.name} ready (pid {comp.pid})")
                return
            time.sleep(0.2)
        raise ClusterError(
            f"{comp.name} did not become healthy at {comp.health}; last lines of {comp.log}:\n{comp.tail()}"
        )

    def _wait_for_service_account(self, *, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False, capture=True):
                return
            time.sleep(0.3)
        raise ClusterError("the controller-manager never created the default service account")

    def stop_component(self, name: str, grace: float = 10.0) -> None:
        """Stop one running component (SIGTERM, SIGKILL after ``grace``): e.g. the API server, for outage tests."""
        state = self.state()
        comp = next((c for c in state.components if c.name == name), None) if state else None
        if comp is None or not comp.alive():
            raise ClusterError(f"{name} is not running")
        os.kill(comp.pid, signal.SIGTERM)
        if not self._wait_gone(comp, time.monotonic() + grace):
            os.kill(comp.pid, signal.SIGKILL)
            self._wait_gone(comp, time.monotonic() + 5.0)

    def start_component(self, name: str, timeout: float = 60.0, flags: dict[str, str] | None = None) -> None:
        """Start a component :meth:`stop_component` stopped, with the same flags (``flags`` replaces or adds
        ``--name=value`` ones, e.g. ``{"watch-cache": "false"}``); returns once it is healthy."""
        state = self.state()
        comp = next((c for c in state.components if c.name == name), None) if state else None
        if state is None or comp is None or comp.alive():
            raise ClusterError(f"{name} is not a stopped component of this cluster")
        state.components.remove(comp)
        for flag, value in (flags or {}).items():
            comp.args = [a for a in comp.args if a.split("=", 1)[0] != f"--{flag}"] + [f"--{flag}={value}"]
        self._start(comp, state, deadline=time.monotonic() + timeout)

    def start_custom_metrics(self, binary: Path, rules: Path, timeout: float = 90.0) -> None:
        """Run prometheus-adapter (``binary``, built by hack/build-prometheus-adapter.sh) beside the API server, on the
        Prometheus of ``up --prometheus`` with the rules file ``rules``, and register it as the APIService of
        ``custom.metrics.k8s.io``: the aggregation layer reaches it at an endpoint of a selector-less Service in
        kube-system, the host's bridge address with a real node (the API server routes to endpoints itself)."""
        state = self.state()
        prometheus = self.prometheus_url()
        if state is None or prometheus is None:
            raise ClusterError("custom metrics need a running cluster with --prometheus")
        host = realnode.GATEWAY if state.real_node else "127.0.0.1"
        port = free_port()
        admin = str(self.kubeconfig)
        certs = self.dir / "prometheus-adapter-certs"  # its self-signed serving certificate
        certs.mkdir(exist_ok=True)
        comp = Component(
            "prometheus-adapter",
            str(binary),
            [
                f"--prometheus-url={prometheus}",
                f"--config={rules}",
                f"--lister-kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                f"--bind-address={host}",
                f"--secure-port={port}",
                f"--cert-dir={certs}",
                "--metrics-relist-interval=5s",  # new series (a new pod's) are served within seconds
                "--v=1",
            ],
            str(self.dir / "logs" / "prometheus-adapter.log"),
            f"https://{host}:{port}/healthz",
        )
        self._start(comp, state, deadline=time.monotonic() + timeout)
        self.kubectl("apply", "-f", "-", stdin=json.dumps(custom_metrics_registration(host, port)))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.kubectl("get", "--raw", "/apis/custom.metrics.k8s.io/v1beta1", check=False, capture=True):
                log(f"custom.metrics.k8s.io served by prometheus-adapter at {host}:{port}")
                return
            time.sleep(0.5)
        raise ClusterError(f"the APIService of custom.metrics.k8s.io never became available; see {comp.log}")

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision (through etcd's JSON gateway), so a watch that resumes
        from an older resourceVersion gets 410 Gone; returns the revision."""
        state = self.state()
        etcd = next((c for c in state.components if c.name == "etcd"), None) if state else None
        if etcd is None or not etcd.alive():
            raise ClusterError("etcd is not running")
        url = next(a.split("=", 1)[1] for a in etcd.args if a.startswith("--listen-client-urls="))

        def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
            req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST")
            with urllib.request.urlopen(req, timeout=30) as resp:
                return dict(json.loads(resp.read()))

        revision = int(call("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
        call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    # -- down / status --

    def down(self) -> list[str]:
        state = self.state()
        if state is None:
            return []
        drained = self._drain_real_node(state) if state.real_node else []
        stopped = drained + self._stop_all(state)
        if state.real_node:
            removed = realnode.cleanup(self.dir / realnode_record_name())
            if removed:
                log(f"real node: removed {', '.join(removed)}")
        if any(c.name == "kube-proxy" for c in state.components):  # its iptables rules stay after it stops
            subprocess.run([state.bin + "/kube-proxy", "--cleanup"], capture_output=True, check=False)
        for sub in ("etcd-data", "prometheus-data", STATE_FILE):
            subprocess.run(["rm", "-rf", str(self.dir / sub)], check=False)
        return stopped

    def _drain_real_node(self, state: State, grace: int = 30) -> list[str]:
        """Stop the pods of the real node through the API while kubelet runs, so they end as Kubernetes ends
        them (their grace periods, preStop, sandboxes torn down by the CNI plugins, containerd's records
        removed). The controllers stop first: nothing is re-created meanwhile. What outlives ``grace`` is
        killed by the cleanup."""
        by_name = {c.name: c for c in state.components}
        if not all(name in by_name and by_name[name].alive() for name in ("kube-apiserver", "kubelet", "containerd")):
            return []
        stopped = []
        for name in ("kube-controller-manager", "kube-scheduler"):
            comp = by_name.get(name)
            if comp is not None and comp.alive():
                os.kill(comp.pid, signal.SIGTERM)
                stopped.append(f"{comp.name} (pid {comp.pid})")
                self._wait_gone(comp, time.monotonic() + 10)
        selector = f"spec.nodeName={realnode.NODE}"
        self.kubectl("delete", "pods", "-A", "--field-selector", selector, "--wait=false", check=False, capture=True)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            left = self.kubectl(
                "get", "pods", "-A", "--field-selector", selector, "-o", "name", check=False, capture=True
            )
            if not left.strip():
                break
            time.sleep(0.5)
        else:
            self.kubectl("delete", "pods", "-A", "--field-selector", selector, "--force", "--grace-period=0",
                         check=False, capture=True)  # fmt: skip
        # kubelet removes the sandboxes (and their network) shortly after the pods are gone
        kubelet_dir = realnode.STATE / "kubelet" / "pods"
        while time.monotonic() < deadline + 10 and kubelet_dir.exists() and any(kubelet_dir.iterdir()):
            time.sleep(0.5)
        return stopped

    def _stop_all(self, state: State, grace: float = 10.0) -> list[str]:
        """SIGTERM every component still running, newest first and one at a time (each waits for what it was
        started on: an API server whose etcd stops under it hangs in its graceful shutdown), SIGKILL what outlives
        ``grace``."""
        stopped = []
        for comp in reversed(state.components):
            if not comp.alive():
                continue
            os.kill(comp.pid, signal.SIGTERM)
            stopped.append(f"{comp.name} (pid {comp.pid})")
            if not self._wait_gone(comp, time.monotonic() + grace) and comp.alive():
                os.kill(comp.pid, signal.SIGKILL)
                self._wait_gone(comp, time.monotonic() + 5.0)
        for comp in state.components:  # reap what exited on its own meanwhile
            self._wait_gone(comp, time.monotonic())
        return stopped

    def _wait_gone(self, comp: Component, deadline: float) -> bool:
        proc = self._procs.pop(comp.pid, None)
        if proc is not None:  # our own child: wait() also reaps it
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._procs[comp.pid] = proc
                return False
            return True
        while comp.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        return not comp.alive()

    def status(self) -> list[tuple[str, str, str]]:
        state = self.state()
        if state is None:
            return []
        rows = []
        for comp in state.components:
            ca = Path(state.dir) / "pki" / "ca.crt" if comp.name == "kube-apiserver" else None
            if not comp.alive():
                health = "stopped"
            else:
                health = "healthy" if _http_ok(comp.health, ca) else "unhealthy"
            rows.append((comp.name, str(comp.pid), health))
        return rows

    # -- helpers --

    def env(self) -> dict[str, str]:
        env = {"KUBECONFIG": str(self.kubeconfig), "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
        if url := self.prometheus_url():
            env["MODELYARD_PROMETHEUS_URL"] = url  # the operator's default Prometheus
        state = self.state()
        if state is not None and state.registry:
            env["MODELYARD_REGISTRY"] = state.registry  # where the real node pulls the project's images from
        return env

    def image(self, name: str) -> str:
        """The reference the real node pulls the project's image ``name`` by (pushed by :meth:`push_images`)."""
        state = self.state()
        if state is None or not state.registry:
            raise ClusterError("no registry: start the cluster with --real-node")
        return f"{state.registry}/{name}:{project_version()}"

    def push_images(self, names: list[str] | None = None) -> list[str]:
        """Push the project's images (``make images`` writes them to dist/images) into the dev registry; blobs
        the registry holds already are skipped, so a push of an unchanged image takes a moment."""
        skopeo = shutil.which("skopeo")
        if skopeo is None:
            raise ClusterError("skopeo is missing (make node-tools installs Debian's)")
        pushed = []
        for name in names or list(PROJECT_IMAGES):
            archive = REPO / "dist" / "images" / f"{name}.tar"
            if not archive.exists():
                raise ClusterError(f"{archive} is missing: run make images first")
            # as <registry>/<name>:<version>, and under the chart's default registry's path, which the node mirrors
            ref = self.image(name)
            mirrored = f"{self.image(realnode.MIRRORED_PATH + '/' + name)}"
            for target in (ref, mirrored):
                proc = subprocess.run(
                    [
                        skopeo,
                        "copy",
                        "--quiet",
                        "--dest-tls-verify=false",
                        f"oci-archive:{archive}",
                        f"docker://{target}",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    raise ClusterError(f"pushing {archive.name} to {target} failed: {proc.stderr.strip()[-500:]}")
            pushed.append(ref)
        return pushed

    def install_chart(self, values: dict[str, str], *, namespace: str = "modelyard-system", timeout: int = 180) -> None:
        """``helm install modelyard charts/modelyard`` with the images pushed to the dev registry and ``values``
        (``--set`` pairs); returns once the operator's Deployment is Ready."""
        # Always: the node's containerd store outlives clusters, and a tag it holds from an earlier build would
        # otherwise win over the image just pushed (IfNotPresent); pulls from the local registry cost a manifest
        sets = {
            "imageRegistry": self.env()["MODELYARD_REGISTRY"],
            "operator.image.pullPolicy": "Always",
            "runtime.image.pullPolicy": "Always",
            **values,
        }
        args = [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]
        proc = subprocess.run(
            [str(self.bin / "helm"), "install", "modelyard", str(REPO / "charts" / "modelyard"), "--namespace",
             namespace, "--create-namespace", *args, "--wait", "--timeout", f"{timeout}s"],
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            pods = self.kubectl("get", "pods", "-A", "-o", "wide", check=False, capture=True)
            raise ClusterError(f"helm install failed: {proc.stderr.strip()[-1500:]}\n{pods}")

    def audit_events(self, since: float, until: float, user: str = OPERATOR_USER) -> list[dict[str, Any]]:
        """The operator identity's requests (``up(audit=True)``) that completed between two wall-clock times (epoch
        seconds), one audit event each; a watch counts once, when it started. ``user``: :data:`OPERATOR_B_USER` for
        the second replica's (operator-b.kubeconfig)."""
        events = []
        with open(self.dir / "logs" / "audit.log", encoding="utf-8") as fh:
            for line in fh:
                event = json.loads(line)
                if event.get("user", {}).get("username") != user:
                    continue
                wanted = "ResponseStarted" if event.get("verb") == "watch" else "ResponseComplete"
                if event.get("stage") != wanted:
                    continue
                stamp = datetime.datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00")).timestamp()
                if since <= stamp < until:
                    events.append(event)
        return events

    def prometheus_url(self) -> str | None:
        """The URL of the Prometheus ``up --prometheus`` started, or None."""
        state = self.state()
        comp = next((c for c in state.components if c.name == "prometheus"), None) if state else None
        return prometheus_url(comp) if comp else None

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, capture: bool = False) -> str:
        proc = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            if check:
                raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
            return ""
        if not capture and proc.stdout.strip():
            log(proc.stdout.strip())
        return proc.stdout


def prometheus_url(comp: Component) -> str:
    return comp.health.removesuffix("/-/ready")


def custom_metrics_registration(host: str, port: int) -> dict[str, Any]:
    """The Service (no selector), its endpoint and the APIService that send ``custom.metrics.k8s.io`` to an adapter
    at ``host:port``. The adapter serves a self-signed certificate: the APIService skips its verification (dev
    only; a cluster install sets caBundle)."""
    name, ns = "prometheus-adapter", "kube-system"
    ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"ports": [{"name": "https", "port": port, "targetPort": port}]},
            },
            {  # the aggregator's resolver reads Endpoints or EndpointSlices depending on the release: both
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns},
                "subsets": [{"addresses": [{"ip": host}], "ports": ports}],
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": ports,
                "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1beta1.custom.metrics.k8s.io"},
                "spec": {
                    "group": "custom.metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"name": name, "namespace": ns, "port": port},
                    "insecureSkipTLSVerify": True,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        ],
    }


def prometheus_rbac() -> dict[str, Any]:
    """Read access to what Kubernetes service discovery watches, for Prometheus's own client certificate."""
    read = ["get", "list", "watch"]
    rules = [
        {"apiGroups": [""], "resources": ["pods", "endpoints", "services", "nodes"], "verbs": read},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
    ]
    items = realnode.user_role("modelyard-dev-prometheus", PROMETHEUS_USER, rules)
    return {"apiVersion": "v1", "kind": "List", "items": items}


def prometheus_config(sd_url: str) -> dict[str, Any]:
    """The scrape config documented in docs/rollouts.md; pods come from hack/promsd.py at ``sd_url`` with the
    ``__meta_kubernetes_*`` labels ``kubernetes_sd_configs`` (role pod) would give them."""
    return {
        "global": {"scrape_interval": PROMETHEUS_SCRAPE_INTERVAL, "evaluation_interval": PROMETHEUS_SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "modelyard-models",
                "scrape_interval": PROMETHEUS_SCRAPE_INTERVAL,
                "metrics_path": "/metrics",
                "http_sd_configs": [{"url": sd_url, "refresh_interval": PROMETHEUS_SCRAPE_INTERVAL}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                        "regex": "modelyard-server",
                        "action": "keep",
                    },
                    {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http", "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            }
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/devcluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "env", "build"])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("MODELYARD_DEVCLUSTER_DIR", DEFAULT_DIR)),
        help="state folder (kubeconfig, PKI, logs); default: .devcluster in the repository",
    )
    parser.add_argument("--no-nodes", action="store_true", help="do not create the kwok nodes")
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="also run node node-0: kubelet, containerd, runc, CNI, kube-proxy, CoreDNS, a local registry; needs root",
    )
    parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also run Prometheus (Debian's), discovering and scraping model pods through the API server",
    )
    args = parser.parse_args(argv)
    cluster = DevCluster(args.dir)
    try:
        if args.command == "build":
            print(cluster.bin)
        elif args.command == "up":
            cluster.up(
                nodes=not args.no_nodes,
                real_node=args.real_node,
                prometheus=args.prometheus,
            )
            if args.real_node:
                present = [n for n in PROJECT_IMAGES if (REPO / "dist" / "images" / f"{n}.tar").exists()]
                for ref in cluster.push_images(present) if present else []:
                    log(f"pushed {ref}")
                if not present:
                    log("no images in dist/images to push (make images builds them)")
            if url := cluster.prometheus_url():
                print(f"export MODELYARD_PROMETHEUS_URL={url}")
            if registry := cluster.env().get("MODELYARD_REGISTRY"):
                print(f"export MODELYARD_REGISTRY={registry}")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
        elif args.command == "down":
            stopped = cluster.down()
            log("stopped " + (", ".join(stopped) if stopped else "nothing (no cluster was running)"))
        elif args.command == "status":
            rows = cluster.status()
            if not rows:
                print(f"no cluster in {cluster.dir}")
                return 1
            for name, pid, health in rows:
                print(f"{name:<26} pid {pid:<8} {health}")
            return 0 if all(h == "healthy" for _, _, h in rows) else 1
        elif args.command == "env":
            env = cluster.env()
            print(f"export KUBECONFIG={env['KUBECONFIG']}")
            print(f"export PATH={cluster.bin}:$PATH")
            for key in ("MODELYARD_PROMETHEUS_URL", "MODELYARD_REGISTRY"):
                if key in env:
                    print(f"export {key}={env[key]}")
    except ClusterError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
