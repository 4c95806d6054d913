"""The SSRF guard's policy (pure: the caller resolves names and passes the addresses in).

A host is refused when its *name* is cluster-internal (``*.svc``, ``*.cluster.local``, ``kubernetes.default``,
``localhost``, ``metadata.google.internal`` ...) or when *any* of its resolved addresses is loopback,
link-local (169.254.0.0/16 and fe80::/10: cloud metadata lives there), private (RFC 1918, ULA),
carrier-grade NAT, multicast, reserved or unspecified. Only names listed in the allowlist
(``--allow-hosts`` / ``MODELYARD_LOADER_ALLOW_HOSTS``: host names, IP addresses or CIDR networks) pass
anyway. The caller connects to exactly the addresses it checked, so a name that re-resolves
(DNS rebinding) cannot slip past, and every redirect goes through the same check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_INTERNAL_SUFFIXES = (".svc", ".cluster.local", ".internal", ".local", ".localhost", ".localdomain")
_INTERNAL_NAMES = frozenset(
    {"localhost", "kubernetes", "kubernetes.default", "metadata", "metadata.google.internal", "instance-data"}
)
_EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in ("100.64.0.0/10", "0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15")]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Allowlist:
    names: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, items: Iterable[str]) -> Allowlist:
        names: set[str] = set()
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in items:
            item = raw.strip().lower().strip("[]")
            if not item:
                continue
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                names.add(item.rstrip("."))
        return cls(frozenset(names), tuple(nets))

    def allows_name(self, host: str) -> bool:
        return normalize_host(host) in self.names

    def allows_address(self, addr: IPAddress) -> bool:
        return any(addr in n for n in self.networks if n.version == addr.version)


def normalize_host(host: str) -> str:
    return host.strip().lower().strip("[]").rstrip(".")


def blocked_name_reason(host: str) -> str | None:
    """Why the *name* alone is refused, or None."""
    h = normalize_host(host)
    if h in _INTERNAL_NAMES or h.startswith("kubernetes.default."):
        return f"{h} is a cluster-internal or metadata name"
    if h.endswith(_INTERNAL_SUFFIXES):
        return f"{h} is a cluster-internal name"
    if "." not in h and not _is_ip(h):
        return f"{h} is a single-label (search-domain) name, which resolves inside the cluster"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def blocked_address_reason(addr: IPAddress) -> str | None:
    """Why this address is refused, or None."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return blocked_address_reason(addr.ipv4_mapped)
    if addr.is_loopback:
        return f"{addr} is a loopback address"
    if addr.is_link_local:
        return f"{addr} is a link-local (cloud metadata) address"
    if addr.is_unspecified:
        return f"{addr} is the unspecified address"
    if addr.is_multicast:
        return f"{addr} is a multicast address"
    if addr.is_private or any(addr in n for n in _EXTRA_BLOCKED if n.version == addr.version):
        return f"{addr} is a private or cluster-internal address"
    if addr.is_reserved:
        return f"{addr} is a reserved address"
    return None


def decide(host: str, addresses: Sequence[str], allow: Allowlist) -> str | None:
    """None when ``host`` (resolved to ``addresses``) may be fetched from, else the reason it may not."""
    if not addresses:
        return f"{normalize_host(host)} did not resolve"
    if allow.allows_name(host):
        return None
    reason = blocked_name_reason(host)
    if reason:
        return reason
    for text in addresses:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
        if allow.allows_address(addr):
            continue
        reason = blocked_address_reason(addr)
        if reason:
            return reason
    return None
