"""The agent: registers Node ``local-0``, keeps its Lease and Ready condition fresh, and runs a
:class:`~localnode.pods.PodRunner` for every pod bound to it.

    python3 hack/localnode run --kubeconfig K --state-dir D [--node local-0] [--cidr 10.244.100.0/24] [--health-port P]
    python3 hack/localnode cleanup --state-dir D     # what ``hack/devcluster down`` runs after stopping the agent
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import http.server
import ipaddress
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from localnode import CIDR as DEFAULT_CIDR
from localnode import LABEL, net
from localnode import NODE as DEFAULT_NODE
from localnode.kube import ApiError, Kube
from localnode.pods import STAGE, PodRunner

LEASE_SECONDS = 40
SHUTDOWN_GRACE = 5.0
MOUNTPOINTS = "mountpoints.txt"
LOCK = "/run/modelyard-localnode.lock"


def micro_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


class Agent:
    def __init__(self, kube: Kube, state_dir: Path, node: str, cidr: str) -> None:
        self.kube, self.state_dir, self.node, self.cidr = kube, state_dir, node, cidr
        self.host_ip = net.gateway(cidr)
        self.allocatable = {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_kib()}Ki", "pods": "110"}
        self.runners: dict[str, PodRunner] = {}
        self.ips: dict[str, str] = {}
        self.ip_lock = threading.Lock()
        self.stopping = threading.Event()
        self.healthy_at = 0.0
        self.lock_fd: int | None = None

    def log(self, msg: str) -> None:
        print(f"[localnode {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    # -- addresses and mount points --

    def allocate_ip(self, uid: str) -> str:
        with self.ip_lock:
            used = set(self.ips.values()) | {self.host_ip}
            for host in ipaddress.ip_network(self.cidr).hosts():
                if str(host) not in used:
                    self.ips[uid] = str(host)
                    return str(host)
        raise RuntimeError(f"no free address left in {self.cidr}")

    def release_ip(self, uid: str) -> None:
        with self.ip_lock:
            self.ips.pop(uid, None)

    def ensure_mountpoint(self, dst: Path, *, is_dir: bool, covered: list[tuple[Path, str, bool]]) -> None:
        """A bind mount needs its target to exist. Under another of the container's mounts it is created
        in that volume; otherwise on the host, recorded so that cleanup removes it (only if still empty)."""
        for src, path, _ in covered:
            if dst != Path(path) and dst.is_relative_to(path) and src.is_dir():
                inner = src / dst.relative_to(path)
                inner.mkdir(parents=True, exist_ok=True) if is_dir else inner.touch()
                return
        if dst.exists():
            return
        with self.ip_lock, open(self.state_dir / MOUNTPOINTS, "a") as record:
            missing = [p for p in [dst, *dst.parents] if not p.exists()]
            for p in missing:
                record.write(f"{p}\n")
            if is_dir:
                dst.mkdir(parents=True, exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.touch()

    # -- node --

    def register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "amd64"),
                    LABEL: "true",
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {
                "podCIDR": self.cidr,
                "podCIDRs": [self.cidr],
                "taints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}],
            },
        }
        if self.kube.get_or_none(f"/api/v1/nodes/{self.node}") is None:
            self.kube.request("POST", "/api/v1/nodes", node)
        else:
            self.kube.merge_patch(f"/api/v1/nodes/{self.node}", {"metadata": node["metadata"], "spec": node["spec"]})
        self.heartbeat()
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.node, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()},
        }
        try:
            self.kube.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)
        except ApiError as exc:
            if exc.status != 409:
                raise
            self.renew_lease()

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}"
        self.kube.merge_patch(path, {"spec": {"renewTime": micro_now(), "holderIdentity": self.node}})

    def heartbeat(self) -> None:
        t = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ("Ready", "True", "KubeletReady"),
        ]
        status = {
            "capacity": self.allocatable,
            "allocatable": self.allocatable,
            "conditions": [
                {"type": k, "status": s, "reason": r, "message": "modelyard local node agent",
                 "lastHeartbeatTime": t, "lastTransitionTime": t}
                for k, s, r in conditions
            ],
            "addresses": [{"type": "InternalIP", "address": self.host_ip}, {"type": "Hostname", "address": self.node}],
            "nodeInfo": {
                "architecture": platform.machine(), "operatingSystem": "linux", "kernelVersion": platform.release(),
                "osImage": "modelyard local node (processes)", "containerRuntimeVersion": "localnode://0.1",
                "kubeletVersion": "localnode", "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                "bootID": "",
            },
        }  # fmt: skip
        self.kube.merge_patch(f"/api/v1/nodes/{self.node}/status", {"status": status})

    def node_ready(self) -> bool:
        node = self.kube.get_or_none(f"/api/v1/nodes/{self.node}") or {}
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))

    # -- loop --

    def sync(self) -> None:
        pods = self.kube.get("/api/v1/pods", fieldSelector=f"spec.nodeName={self.node}")["items"]
        seen = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            runner = self.runners.get(uid)
            if runner is not None:
                runner.update(pod)
                continue
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                if pod["metadata"].get("deletionTimestamp"):  # nothing runs any more: let the object go
                    self.delete_pod(pod)
                continue  # finished (or finished before this agent started): nothing to run
            self.runners[uid] = runner = PodRunner(self, pod)
            runner.update(pod)
            runner.start()
        for uid, runner in list(self.runners.items()):
            if uid not in seen:
                runner.stop(2.0)  # force-deleted from the API: stop its processes all the same
            if runner.done.is_set():
                del self.runners[uid]

    def delete_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                   "preconditions": {"uid": meta["uid"]}}  # fmt: skip
        try:
            self.kube.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", options)
        except ApiError as exc:
            if exc.status not in (404, 409):
                self.log(f"{meta['namespace']}/{meta['name']}: delete failed: {exc}")

    def run(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.lock_fd = machine_lock()
        if self.lock_fd is None:
            raise SystemExit(f"another local node agent runs on this machine (it holds {LOCK}); one per machine")
        cleanup(self.state_dir, lock_held=True)  # leftovers of an agent that crashed
        net.setup_bridge(self.cidr)
        Path(STAGE).mkdir(exist_ok=True)
        self.register()
        self.log(f"node {self.node} registered ({self.allocatable}, pod CIDR {self.cidr})")
        last_lease = last_status = time.monotonic()
        while not self.stopping.is_set():
            t = time.monotonic()
            try:
                if t - last_lease >= 10:
                    self.renew_lease()
                    last_lease = t
                if t - last_status >= 30:
                    self.heartbeat()
                    last_status = t
                self.sync()
                self.healthy_at = time.monotonic()
            except Exception as exc:  # the API server restarting, a bug in one sync: log it, try again
                self.log(f"sync failed: {exc!r}")
            self.stopping.wait(0.5)
        self.shutdown()

    def shutdown(self) -> None:
        self.log(f"stopping {len(self.runners)} pod(s)")
        for runner in self.runners.values():
            runner.stop(SHUTDOWN_GRACE)
        for runner in self.runners.values():
            runner.done.wait(SHUTDOWN_GRACE + 3)
        cleanup(self.state_dir, lock_held=True)
        with contextlib.suppress(OSError):
            os.unlink(LOCK)  # still holding it: nobody else can have locked this file


def machine_lock() -> int | None:
    """One local node per machine (one bridge): the running agent holds an exclusive lock on LOCK.
    Returns the locked descriptor, or None while another live agent holds it."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def cleanup(state_dir: Path, *, lock_held: bool = False) -> list[str]:
    """Remove every pod namespace (killing what runs in it), the bridge, the pods' folders and the mount
    points made on the host. Safe to run twice and after a crash; the machine-wide parts (namespaces,
    bridge) are left alone while another live agent holds the machine lock."""
    fd = None if lock_held else machine_lock()
    removed: list[str] = []
    if lock_held or fd is not None:
        removed = net.teardown_all()
        with contextlib.suppress(OSError):
            Path(STAGE).rmdir()
    if fd is not None:  # the lock was ours only for this cleanup: no agent runs, the lock file can go
        with contextlib.suppress(OSError):
            os.unlink(LOCK)
        os.close(fd)
    record = state_dir / MOUNTPOINTS
    if record.exists():
        for line in sorted(set(record.read_text().splitlines()), key=len, reverse=True):
            p = Path(line)
            try:
                if p.is_dir():
                    p.rmdir()
                elif p.is_file() and p.stat().st_size == 0:
                    p.unlink()
            except OSError:
                pass  # not empty: something else uses it now
        record.unlink()
    pods = state_dir / "pods"
    if pods.exists():
        import shutil

        shutil.rmtree(pods, ignore_errors=True)
    return removed


def health_server(agent: Agent, port: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/healthz" and time.monotonic() - agent.healthy_at < 10
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(b"ok\n" if ok else b"not ready\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/localnode", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="register the node and run its pods until SIGTERM")
    run.add_argument("--kubeconfig", type=Path, required=True)
    run.add_argument("--state-dir", type=Path, required=True)
    run.add_argument("--node", default=DEFAULT_NODE)
    run.add_argument("--cidr", default=DEFAULT_CIDR)
    run.add_argument("--health-port", type=int, default=0)
    clean = sub.add_parser("cleanup", help="remove pod namespaces, the bridge and the pods' folders")
    clean.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "cleanup":
        print("\n".join(cleanup(args.state_dir)))
        return 0
    agent = Agent(Kube(args.kubeconfig), args.state_dir, args.node, args.cidr)
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stopping.set())
    if args.health_port:
        health_server(agent, args.health_port)
    try:
        agent.run()
    except Exception:
        cleanup(args.state_dir, lock_held=agent.lock_fd is not None)
        raise
    return 0
