"""The NetworkPolicy of a ModelDeployment's pods (pure: dicts in, dicts out, no I/O).

One policy per ModelDeployment selects all its pods (every version): a pod holds both the server and its
loader (an init container, or a native sidecar in dynamic loading), and a NetworkPolicy applies to a pod,
not to a container, so the loader's egress allowance is the server's too (docs/security.md).

- ingress to the inference ports (HTTP, gRPC) from the ModelDeployment's namespace, the configured
  gateway namespaces and the ModelDeployment's ``serving.allowFromNamespaces``; to the HTTP port (which serves
  ``/metrics``) from the Prometheus namespaces; nothing else;
- egress to DNS (kube-dns, UDP and TCP 53) and to the artifact hosts of the versions the pods load: the
  exact address and port when a URI names an IP, else the installation's allowlist (object stores and
  registries behind names, whose addresses a policy cannot name).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from modelyard_operator.api.modeldeployment import ModelDeployment
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import EgressRule, NetworkPolicySettings
from modelyard_operator.names import common_labels, selector
from modelyard_operator.render import owner_reference

Obj = dict[str, Any]

NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace (Kubernetes >= 1.21)
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}  # CoreDNS keeps kube-dns's label for compatibility
DEFAULT_PORTS = {"http": 80, "https": 443, "oci": 443, "s3": 443}
# schemes whose bytes come from the pod's own volumes: no egress
LOCAL_SCHEMES = ("pvc", "file")


def parse_egress_rules(value: Any) -> tuple[EgressRule, ...]:
    """``[{"cidr": "10.0.0.0/8", "ports": [443], "except": [...]}, ...]`` (JSON from the chart), checked.

    Raises ValueError with the offending entry named."""
    if not isinstance(value, list):
        raise ValueError("expected a list of {cidr, ports, except}")
    rules = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) - {"cidr", "ports", "except"} or "cidr" not in entry:
            raise ValueError(f"entry {i}: expected {{cidr, ports, except}}, got {entry!r}")
        try:
            net = ipaddress.ip_network(str(entry["cidr"]))
            excepts = tuple(str(ipaddress.ip_network(str(e))) for e in entry.get("except") or [])
        except ValueError as exc:
            raise ValueError(f"entry {i}: {exc}") from None
        ports = entry.get("ports") or []
        if not isinstance(ports, list) or not all(type(p) is int and 0 < p < 65536 for p in ports):
            raise ValueError(f"entry {i}: ports must be a list of TCP port numbers (1-65535)")
        rules.append(EgressRule(str(net), tuple(ports), excepts))
    return tuple(rules)


def host_rule(uri: str) -> EgressRule | str:
    """The egress one artifact URI needs: an EgressRule for an IP literal, ``"local"`` for bytes from a volume
    (no network), or ``"named"`` when the host is a name (or s3://, whose endpoint the loader chooses): the
    allowlist must cover it."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES:
        return "local"
    if scheme == "s3":
        return "named"  # the bucket is not a host: the loader talks to AWS's regional endpoint or --s3-endpoint
    try:
        address = ipaddress.ip_address(parts.hostname or "")
        port = parts.port or DEFAULT_PORTS.get(scheme, 443)
    except ValueError:  # a name, or an unreadable port (the loader refuses that URI anyway)
        return "named"
    prefix = 32 if address.version == 4 else 128
    return EgressRule(f"{address}/{prefix}", (port,))


def artifact_egress(versions: list[ModelVersion], settings: NetworkPolicySettings) -> list[Obj]:
    """Egress rules for the artifacts (and signature bundles) of ``versions``: exact hosts, then the allowlist
    once if any URI names a host by name. Sorted and without duplicates, so the object is stable."""
    exact: set[EgressRule] = set()
    named = False
    for mv in versions:
        if not mv.built:  # a derived version its build has not pushed yet: no pod loads it
            continue
        uris = [mv.artifact.uri]
        if mv.artifact.signature is not None:
            uris.append(mv.artifact.signature.uri)
        for uri in uris:
            rule = host_rule(uri)
            if isinstance(rule, EgressRule):
                exact.add(rule)
            elif rule == "named":
                named = True
    rules = [r.to_wire() for r in sorted(exact, key=lambda r: (r.cidr, r.ports))]
    if named:
        rules += [r.to_wire() for r in settings.artifact_egress]
    return rules


def dns_egress() -> Obj:
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: DNS_NAMESPACE}},
                "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def _from_namespaces(namespaces: list[str]) -> Obj:
    values = sorted(set(namespaces))
    return {"namespaceSelector": {"matchExpressions": [{"key": NAMESPACE_LABEL, "operator": "In", "values": values}]}}


def policy_name(md_name: str) -> str:
    return md_name  # like the main Service: the ModelDeployment's name is a valid object name


def render_network_policy(md: ModelDeployment, versions: list[ModelVersion], settings: NetworkPolicySettings) -> Obj:
    """The NetworkPolicy of ``md``'s pods, which load ``versions`` (stable, canary, the one being rolled out)."""
    meta = md.metadata
    serving = md.spec.serving
    inference = [{"protocol": "TCP", "port": serving.http_port}, {"protocol": "TCP", "port": serving.grpc_port}]
    clients = [meta.namespace, *settings.ingress_namespaces, *(serving.allow_from_namespaces or [])]
    ingress: list[Obj] = [{"from": [_from_namespaces(clients)], "ports": inference}]
    if settings.prometheus_namespaces:
        metrics = [{"protocol": "TCP", "port": serving.http_port}]
        ingress.append({"from": [_from_namespaces(list(settings.prometheus_namespaces))], "ports": metrics})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(meta.name),
            "namespace": meta.namespace,
            "labels": common_labels(meta.name, md.spec.model),
            "ownerReferences": [owner_reference("ModelDeployment", meta.name, meta.uid)],
        },
        "spec": {
            "podSelector": {"matchLabels": selector(meta.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [dns_egress(), *artifact_egress(versions, settings)],
        },
    }
