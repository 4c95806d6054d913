"""The host bridge, one network namespace per pod with a veth pair to it, and their removal.

Names: bridge ``mdy0`` (gateway = first address of the node's pod CIDR), namespace ``mdy-<8 hex>``,
host-side veth ``mdyv<8 hex>`` (the pod side is ``eth0``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time

BRIDGE = "mdy0"
NETNS_PREFIX = "mdy-"


class NetError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def gateway(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


def bridge_exists() -> bool:
    return os.path.exists(f"/sys/class/net/{BRIDGE}")


def setup_bridge(cidr: str) -> None:
    net = ipaddress.ip_network(cidr)
    if bridge_exists():
        raise NetError(f"bridge {BRIDGE} exists: another local node runs here, or a stale one (hack/devcluster down)")
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("addr", "add", f"{gateway(cidr)}/{net.prefixlen}", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    # Forward what pods send to a Service IP: kube-proxy's DNAT turns it into a pod address on this same bridge.
    # Only this interface forwards (the machine's other interfaces, and its global ip_forward, stay as they are).
    with open(f"/proc/sys/net/ipv4/conf/{BRIDGE}/forwarding", "w") as flag:
        flag.write("1\n")


def netns_name(uid: str) -> str:
    return NETNS_PREFIX + uid.replace("-", "")[:8]


def host_interface(ns: str) -> str:
    """The host side of the pod's veth pair."""
    return "mdyv" + ns.removeprefix(NETNS_PREFIX)


def setup_pod(uid: str, pod_ip: str, cidr: str) -> str:
    """Create the pod's namespace and wire it to the bridge; returns the namespace name."""
    ns = netns_name(uid)
    host_if = host_interface(ns)
    prefix = ipaddress.ip_network(cidr).prefixlen
    ip("netns", "add", ns)
    ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
    ip("link", "set", host_if, "master", BRIDGE, "up")
    ip("-n", ns, "addr", "add", f"{pod_ip}/{prefix}", "dev", "eth0")
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", ns, "route", "add", "default", "via", gateway(cidr))
    # Pod IPs are reused: the host may still have the previous pod's MAC for this address, and would send the
    # first packets into the void until that entry times out (seconds). Forget it.
    ip("neigh", "flush", "to", pod_ip, "dev", BRIDGE, check=False)
    return ns


def netns_pids(ns: str) -> list[int]:
    out = ip("netns", "pids", ns, check=False)
    return [int(p) for p in out.split()]


def teardown_pod(ns: str) -> None:
    """Kill whatever still runs in the namespace, delete its veth pair (at once: the kernel would only drop it
    when it gets round to destroying the namespace, seconds later on a busy machine), then the namespace."""
    for pid in netns_pids(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while netns_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.05)
    ip("link", "delete", host_interface(ns), check=False)
    ip("netns", "delete", ns, check=False)


def our_namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list", check=False).splitlines() if line.startswith(NETNS_PREFIX)]


def teardown_all() -> list[str]:
    """Every pod namespace of the local node, then the bridge: what ``hack/devcluster down`` runs last."""
    removed = []
    for ns in our_namespaces():
        teardown_pod(ns)
        removed.append(ns)
    if bridge_exists():
        ip("link", "delete", BRIDGE, check=False)
        removed.append(BRIDGE)
    return removed
