#!/usr/bin/env python3
"""A real Kubernetes control plane on 127.0.0.1, without Docker: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok run as local processes from binaries built by
``hack/build-controlplane.sh``; kwok fakes the nodes and turns their pods Running/Ready.

    hack/devcluster up [--dir DIR]      start; the last line printed is ``export KUBECONFIG=...``
    hack/devcluster up --local-node     also run node local-0 whose pods are real processes (hack/localnode)
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
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localnode import CIDR as LOCAL_NODE_CIDR  # hack/ is on the path: this file's folder
from localnode import NODE as LOCAL_NODE

HACK = Path(__file__).resolve().parent
REPO = HACK.parent
DEFAULT_DIR = REPO / ".devcluster"
SERVICE_CIDR = "10.96.0.0/16"
STATE_FILE = "state.json"
KWOK_SELECTOR = "modelyard.dev/fake-node=true"
OWN_KWOK_STAGES = ("pod-complete.yaml", "validation-complete.yaml")  # in hack/kwok/
PROMETHEUS_USER = "system:modelyard-prometheus"  # read-only identity for Prometheus's service discovery
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
    """A CA, the apiserver's serving certificate, client certificates and the service-account keys."""
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
        "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
    )
    certs = {
        "apiserver": ("/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth"),
        "admin": ("/O=system:masters/CN=modelyard-admin", "extendedKeyUsage=clientAuth"),
        "controller-manager": ("/CN=system:kube-controller-manager", "extendedKeyUsage=clientAuth"),
        "scheduler": ("/CN=system:kube-scheduler", "extendedKeyUsage=clientAuth"),
        "kwok": ("/O=system:masters/CN=kwok-controller", "extendedKeyUsage=clientAuth"),
        "localnode": ("/O=system:masters/CN=modelyard-localnode", "extendedKeyUsage=clientAuth"),
        "kube-proxy": ("/CN=system:kube-proxy", "extendedKeyUsage=clientAuth"),  # bound to system:node-proxier
        "prometheus": (f"/CN={PROMETHEUS_USER}", "extendedKeyUsage=clientAuth"),  # no group: RBAC grants reads only
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        self, *, nodes: bool = True, local_node: bool = False, prometheus: bool = False, timeout: float = 120.0
    ) -> State:
        existing = self.state()
        if existing is not None and any(c.alive() for c in existing.components):
            raise ClusterError(f"a cluster is already running from {self.dir} (hack/devcluster down first)")
        started = time.monotonic()
        bin_dir = self.bin
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
        server = f"https://127.0.0.1:{ports['apiserver']}"
        write_kubeconfig(self.kubeconfig, pki, server, "admin")
        for user in ("controller-manager", "scheduler", "kwok", "localnode", "kube-proxy"):
            write_kubeconfig(self.dir / f"{user}.kubeconfig", pki, server, user)
        stages = self._kwok_stages()
        state = State(dir=str(self.dir), bin=str(bin_dir), kubeconfig=str(self.kubeconfig), apiserver=server)
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
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
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
                    "--endpoint-reconciler-type=none",
                    "--profiling=false",
                    "--watch-cache=true",
                    "--v=1",
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
            if local_node:
                self._start_local_node(state, deadline=time.monotonic() + timeout)
            if prometheus_binary is not None:
                self._start_prometheus(prometheus_binary, state, deadline=time.monotonic() + timeout)
        except BaseException:
            self._stop_all(state)
            raise
        version = json.loads(self.kubectl("get", "--raw", "/version", capture=True))["gitVersion"]
        log(f"cluster up in {time.monotonic() - started:.1f}s: Kubernetes {version} at {server}")
        return state

    def _start_local_node(self, state: State, *, deadline: float) -> None:
        """The process-backed node ``local-0`` (hack/localnode): real pods as local processes."""
        port = free_port()
        comp = Component(
            "localnode",
            str(Path(sys.executable).resolve()),
            [
                str(HACK / "localnode"),
                "run",
                f"--kubeconfig={self.dir / 'localnode.kubeconfig'}",
                f"--state-dir={self.dir / 'localnode'}",
                f"--health-port={port}",
            ],
            str(self.dir / "logs" / "localnode.log"),
            f"http://127.0.0.1:{port}/healthz",
        )
        self._start(comp, state, deadline=deadline)
        remaining = max(1, int(deadline - time.monotonic()))
        self.kubectl("wait", "--for=condition=Ready", f"node/{LOCAL_NODE}", f"--timeout={remaining}s")
        self._start_kube_proxy(state, deadline=deadline)

    def _start_kube_proxy(self, state: State, *, deadline: float) -> None:
        """kube-proxy for local-0 (iptables mode, in this host's network namespace): Services get their virtual
        IPs, reachable from this host and from the pods. ``--masquerade-all`` because the pods share one bridge
        without br_netfilter: a pod's request to a Service IP answered by a pod on the same bridge must come back
        through the host to be un-NATed."""
        if shutil.which("iptables") is None:
            raise ClusterError("--local-node needs iptables for kube-proxy (make localnode-tools installs it)")
        health, metrics = free_port(), free_port()
        comp = Component(
            "kube-proxy",
            str(self.bin / "kube-proxy"),
            [
                f"--kubeconfig={self.dir / 'kube-proxy.kubeconfig'}",
                f"--hostname-override={LOCAL_NODE}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={LOCAL_NODE_CIDR}",
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
        comp = Component(
            "prometheus",
            binary,
            [
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            str(self.dir / "logs" / "prometheus.log"),
            f"http://127.0.0.1:{port}/-/ready",
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

    def _start(self, comp: Component, state: State, *, deadline: float) -> None:
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

    # -- down / status --

    def down(self) -> list[str]:
        state = self.state()
        if state is None:
            return []
        stopped = self._stop_all(state)
        if any(c.name == "localnode" for c in state.components):
            from localnode.agent import cleanup  # hack/ is on the path: this file's folder

            removed = cleanup(self.dir / "localnode")  # whatever a crashed agent left: namespaces, bridge, folders
            if removed:
                log(f"local node leftovers removed: {', '.join(removed)}")
        if any(c.name == "kube-proxy" for c in state.components):  # its iptables rules stay after it stops
            subprocess.run([state.bin + "/kube-proxy", "--cleanup"], capture_output=True, check=False)
        for sub in ("etcd-data", "prometheus-data", STATE_FILE):
            subprocess.run(["rm", "-rf", str(self.dir / sub)], check=False)
        return stopped

    def _stop_all(self, state: State, grace: float = 10.0) -> list[str]:
        """SIGTERM every component still running (newest first), SIGKILL what outlives ``grace``."""
        stopped = []
        for comp in reversed(state.components):
            if comp.alive():
                os.kill(comp.pid, signal.SIGTERM)
                stopped.append(f"{comp.name} (pid {comp.pid})")
        deadline = time.monotonic() + grace
        for comp in state.components:
            if not self._wait_gone(comp, deadline) and comp.alive():
                os.kill(comp.pid, signal.SIGKILL)
                self._wait_gone(comp, time.monotonic() + 5.0)
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
        return env

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


def prometheus_rbac() -> dict[str, Any]:
    """Read access to what Kubernetes service discovery watches, for Prometheus's own client certificate."""
    name = "modelyard-dev-prometheus"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "endpoints", "services", "nodes"],
                "verbs": ["get", "list", "watch"],
            },
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROMETHEUS_USER}],
    }
    return {"apiVersion": "v1", "kind": "List", "items": [role, binding]}


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
        "--local-node",
        action="store_true",
        help="also run node local-0 (hack/localnode): its pods run as local processes; needs root",
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
            cluster.up(nodes=not args.no_nodes, local_node=args.local_node, prometheus=args.prometheus)
            if url := cluster.prometheus_url():
                print(f"export MODELYARD_PROMETHEUS_URL={url}")
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
            if "MODELYARD_PROMETHEUS_URL" in env:
                print(f"export MODELYARD_PROMETHEUS_URL={env['MODELYARD_PROMETHEUS_URL']}")
    except ClusterError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
