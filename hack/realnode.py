"""The dev cluster's real node: kubelet, containerd and runc, the CNI reference plugins, CoreDNS and a local image
registry, configured for this machine (no systemd, a cgroup v1 hybrid, no default route, no container registry
reachable). ``hack/devcluster up --real-node`` drives it; docs/real-node.md says what runs where and why.

This module holds what the node is (names, addresses, the placement of pods on it), the configuration files of
its parts, and the host settings it changes and gives back at ``down``. Standard library only.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

NODE = "node-0"
CIDR = "10.244.100.0/24"  # kwok's fake nodes use 10.244.0-5.0/24
GATEWAY = str(next(ipaddress.ip_network(CIDR).hosts()))  # the bridge's address: 10.244.100.1, also the node IP
BRIDGE = "mdy0"
LABEL = "modelyard.dev/real-node"
# Pods that must run on the real node select its label. It has no taint: a manifest without placement (the
# README's quickstart) runs on it when the cluster has no kwok nodes.
PLACEMENT: dict[str, Any] = {"nodeSelector": {LABEL: "true"}}
CLUSTER_DOMAIN = "cluster.local"
DNS_IP = "10.96.0.10"  # Service kube-dns in kube-system; CoreDNS answers behind it
# The chart's default image registry ghcr.io/modelyard, served from the dev registry's path modelyard/: manifests
# that name the default images (examples/quickstart.yaml) run unchanged on the dev cluster.
MIRRORED_REGISTRY = "ghcr.io"
MIRRORED_PATH = "modelyard"
PAUSE_IMAGE = "modelyard-dev/pause:1"  # pushed into the dev registry at up; containerd's sandbox image

STATE = Path("/var/lib/modelyard-node")  # kubelet's root, CNI state, container logs: removed at down
RUN = Path("/run/modelyard-node")  # containerd's state and socket: removed at down
LOCK = Path("/run/modelyard-node.lock")
# Content and unpacked layers survive a down, so the next node starts its pods without pulling again.
IMAGE_STORE = "node/containerd-root"  # under the cache root
REGISTRY_STORE = "registry"  # under the cache root: the dev registry's blobs, pushed once per image content

# kubelet (protectKernelDefaults false) and the CNI bridge change these; down writes back what up found.
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
)
# Folders the node's parts create outside STATE/RUN (container runtimes and kubelet have fixed defaults).
HOST_DIRS = ("/var/lib/cni", "/run/containerd", "/var/log/pods", "/var/log/containers", "/etc/cni", "/opt/cni")
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class NodeError(RuntimeError):
    """The real node cannot start here; the message says why and what to do."""


def cache_root() -> Path:
    return Path(os.environ.get("MODELYARD_CACHE", str(Path.home() / ".cache" / "modelyard")))


# ------------------------------------------------------------------------------------------ configuration


def containerd_config(*, bin_dir: Path, registry: str, metrics_port: int) -> str:
    """containerd 2.x (config version 3) for this machine: cgroupfs, overlayfs, the dev registry over plain HTTP,
    the sandbox image from it, and ``restrict_oom_score_adj`` (this VM lacks CAP_SYS_RESOURCE: without it every
    sandbox fails with runc's "can't get final child's PID from pipe")."""
    runc = shutil.which("runc") or "/usr/sbin/runc"
    return f"""version = 3
root = "{cache_root() / IMAGE_STORE}"
state = "{RUN / "containerd"}"

[grpc]
  address = "{RUN / "containerd.sock"}"

[ttrpc]
  address = "{RUN / "containerd.sock.ttrpc"}"

[metrics]
  address = "127.0.0.1:{metrics_port}"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "{registry}/{PAUSE_IMAGE}"
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "{RUN / "certs.d"}"

  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    enable_selinux = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "{runc}"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["{bin_dir / "cni"}"]
      conf_dir = "{RUN / "cni"}"
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
"""


def registry_hosts(registry: str, *, upstream: str) -> str:
    """containerd's hosts.toml for ``upstream``: pulled from the dev registry (plain HTTP on loopback). For the
    chart's default registry this is a mirror, as air-gapped clusters have: images named
    ``ghcr.io/modelyard/<name>:<version>`` come from ``<registry>/modelyard/<name>:<version>``."""
    server = f"http://{registry}" if upstream == registry else f"https://{upstream}"
    return f'server = "{server}"\n\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'


def cni_config() -> dict[str, Any]:
    """One bridge for every pod, the node's pod CIDR, hairpin on (a pod may reach itself through its Service)."""
    return {
        "cniVersion": "1.0.0",
        "name": "modelyard-dev",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": CIDR, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(STATE / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(*, pki: Path, healthz_port: int) -> dict[str, Any]:
    """KubeletConfiguration for this machine: cgroupfs (no systemd as PID 1), cgroup v1 allowed (1.35 refuses it
    by default), webhook authentication/authorization (the API server's kubelet client certificate is the only
    caller), image garbage collection and disk-pressure eviction off (images are a cache here)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{RUN / 'containerd.sock'}",
        "address": GATEWAY,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "registerNode": True,
        "maxPods": 110,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "syncFrequency": "10s",  # ConfigMap and Secret volumes follow their source within seconds
        "nodeStatusReportFrequency": "30s",
        "shutdownGracePeriod": "0s",
        "podPidsLimit": -1,
        "resolvConf": "/etc/resolv.conf",
    }


def corefile(*, kubeconfig: Path, health_port: int, ready_port: int) -> str:
    """CoreDNS answering cluster.local from the API server on the node's address; other names go to the host's
    resolver."""
    return f""".:53 {{
    bind {GATEWAY}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} modelyard-dev
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 5
}}
"""


def dns_objects() -> list[dict[str, Any]]:
    """Service kube-dns at DNS_IP and its endpoints: CoreDNS runs on the node's address, outside any pod."""
    ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
        "spec": {"clusterIP": DNS_IP, "ports": [{"name": n, "port": 53, "protocol": p} for n, p in ports]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kube-dns-coredns",
            "namespace": "kube-system",
            "labels": {
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": "modelyard-dev",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [GATEWAY], "conditions": {"ready": True}}],
        "ports": [{"name": n, "port": 53, "protocol": p} for n, p in ports],
    }
    return [service, endpoints]


def user_role(name: str, user: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ClusterRole with ``rules`` and its binding to the client certificate's ``user``."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": rules}  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    return [role, binding]


def coredns_rbac(user: str) -> list[dict[str, Any]]:
    """What CoreDNS's kubernetes plugin reads, for its own client certificate."""
    return user_role(
        "modelyard-dev-coredns",
        user,
        [
            {"apiGroups": [""], "resources": ["services", "pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    )


def registry_config(*, port: int, storage: Path) -> str:
    """Debian's docker-registry on loopback, storing blobs in the cache (JSON is valid YAML)."""
    conf = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    return json.dumps(conf, indent=2) + "\n"


# ------------------------------------------------------------------------------------------- pause image


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def pause_layout(pause_binary: Path, layout: Path) -> Path:
    """An OCI image layout holding one image: the pause program at /pause, FROM scratch, as UID 65535."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tar.gettarinfo(str(pause_binary), arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755
        with open(pause_binary, "rb") as f:
            tar.addfile(info, f)
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    layer = _blob(layout, gzip.compress(raw.getvalue(), mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_desc = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
    }
    manifest_desc = _blob(layout, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_desc}],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return layout


def push_layout(layout: Path, ref: str) -> None:
    """Copy an OCI layout's image to ``ref`` on the dev registry (plain HTTP) with skopeo."""
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise NodeError("skopeo is missing (make node-tools installs Debian's)")
    proc = subprocess.run(
        [skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise NodeError(f"skopeo copy to {ref} failed: {proc.stderr.strip()[-500:]}")


# ------------------------------------------------------------------------------------ host preparation


def check_host() -> None:
    """Refuse early, with the fix, what would make the node fail later."""
    missing = [tool for tool in ("runc", "iptables", "skopeo", "docker-registry", "ip") if shutil.which(tool) is None]
    if missing:
        raise NodeError(f"--real-node needs {', '.join(missing)} (make node-tools installs them)")
    if os.geteuid() != 0:
        raise NodeError("--real-node needs root (kubelet, containerd and the CNI plugins change the host)")
    if LOCK.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = int(LOCK.read_text().strip() or "0")
            if pid > 0 and Path(f"/proc/{pid}").exists():
                raise NodeError(f"a real node already runs on this machine (pid {pid} holds {LOCK}): one per machine")
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        raise NodeError(f"bridge {BRIDGE} exists: another dev node runs here or a stale one (hack/devcluster down)")


def read_sysctls() -> dict[str, str]:
    values = {}
    for key in SYSCTLS:
        path = Path("/proc/sys") / key.replace(".", "/")
        with contextlib.suppress(OSError):
            values[key] = path.read_text().strip()
    return values


def write_sysctls(values: dict[str, str]) -> list[str]:
    changed = []
    for key, value in values.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
                changed.append(f"{key}={value}")
    return changed


def prepare_host(record: Path, owner_pid: int) -> None:
    """Record the host settings the node will change, take the machine lock, make the bridge with the node's
    address (the node IP must not be loopback, and the API server binds it), and the node's folders."""
    existing = [d for d in HOST_DIRS if Path(d).exists()]
    record.write_text(json.dumps({"sysctls": read_sysctls(), "host_dirs_before": existing}, indent=2) + "\n")
    LOCK.write_text(f"{owner_pid}\n")
    net = ipaddress.ip_network(CIDR)
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{GATEWAY}/{net.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    for sub in (STATE, RUN / "cni", RUN / "certs.d", cache_root() / IMAGE_STORE, cache_root() / REGISTRY_STORE):
        sub.mkdir(parents=True, exist_ok=True)


def _ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


# ------------------------------------------------------------------------------------------------ cleanup


def _processes_matching(pattern: re.Pattern[str]) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if pattern.search((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")):
                pids.append(int(proc.name))
    return pids


def _live(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that may never reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _pods_cgroup_pids() -> list[int]:
    pids: set[int] = set()
    for controller in ("memory", "pids", "cpu", "freezer"):
        root = CGROUP_ROOT / controller / "kubepods"
        if root.exists():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


def _unmount_under(prefixes: tuple[str, ...]) -> int:
    """Lazily unmount everything mounted under the given folders, deepest first."""
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefixes):
                mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return len(set(mounts))


def _remove_cgroups() -> None:
    for controller in CGROUP_ROOT.iterdir():
        root = controller / "kubepods"
        if not root.is_dir():
            continue
        for sub in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def _iptables_chains(binary: str) -> None:
    for table, chains in (("filter", KUBELET_CHAINS), ("nat", KUBELET_CHAINS), ("mangle", KUBELET_CHAINS)):
        listing = subprocess.run([binary, "-t", table, "-S"], capture_output=True, text=True, check=False).stdout
        for rule in listing.splitlines():
            if rule.startswith("-A ") and any(f"-j {c}" in rule for c in chains):
                args = rule.split()
                subprocess.run([binary, "-t", table, "-D", *args[1:]], capture_output=True, check=False)
        for chain in chains:
            subprocess.run([binary, "-t", table, "-F", chain], capture_output=True, check=False)
            subprocess.run([binary, "-t", table, "-X", chain], capture_output=True, check=False)


def cleanup(record: Path | None) -> list[str]:
    """Remove what the node left: its containers' processes, mounts, network namespaces and veths, the bridge,
    kubelet's iptables chains and cgroups, its folders; write back the recorded sysctls. Safe after a crash and
    when run twice. Runs after kubelet and containerd were stopped."""
    done: list[str] = []
    shim = re.compile(rf"containerd-shim-runc-v2 .*-address {re.escape(str(RUN))}")
    killed: set[int] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a shim may still be starting a container: kill until none is left
        alive = {pid for pid in {*_processes_matching(shim), *_pods_cgroup_pids()} if _live(pid)}
        if not alive:
            break
        _kill_all(sorted(alive))
        killed |= alive
        time.sleep(0.2)
    if killed:
        done.append(f"{len(killed)} container processes and shims killed")
    unmounted = _unmount_under((str(STATE), str(RUN), str(cache_root() / IMAGE_STORE), "/run/netns/cni-"))
    if unmounted:
        done.append(f"{unmounted} mounts")
    netns = Path("/run/netns")
    if netns.is_dir():
        for ns in netns.glob("cni-*"):
            subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True, check=False)
            with contextlib.suppress(OSError):
                ns.unlink()
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        for port in Path(f"/sys/class/net/{BRIDGE}/brif").iterdir():
            _ip("link", "delete", port.name, check=False)
        _ip("link", "delete", BRIDGE, check=False)
        done.append(f"bridge {BRIDGE}")
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary):
            _iptables_chains(binary)
    _remove_cgroups()
    recorded: dict[str, Any] = {}
    if record is not None and record.exists():
        recorded = json.loads(record.read_text())
        changed = write_sysctls(recorded.get("sysctls", {}))
        if changed:
            done.append("sysctls " + ", ".join(changed))
        for d in HOST_DIRS:
            if d not in recorded.get("host_dirs_before", HOST_DIRS) and Path(d).exists():
                shutil.rmtree(d, ignore_errors=True)
                done.append(d)
        record.unlink()
    for d in (STATE, RUN):
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
            done.append(str(d))
    with contextlib.suppress(OSError):
        LOCK.unlink()
    return done
