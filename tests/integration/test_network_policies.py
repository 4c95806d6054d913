"""Per-ModelDeployment NetworkPolicies from the real operator, accepted and stored by the real API server.

Enforcement is the CNI's (the dev cluster's bridge enforces nothing): what is tested here is that the objects exist
with the peers and ports the installation configured, follow the versions the pods load, are not rewritten when
nothing changed, are restored after an edit, and pass the API server's strict validation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import EgressRule, NetworkPolicySettings
from modelyard_operator.netpol import render_network_policy

from ..conftest import Kubectl, dev_cluster, running_operator, temp_namespace, wait_for
from .test_operator import DIGEST

ALLOWLIST = [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.0.0/16"], "ports": [443]}]
FLAGS = (
    "--model-validation=off",
    "--network-policies",
    "--network-policy-ingress-namespaces=gateways,ingress-nginx",
    "--network-policy-prometheus-namespaces=monitoring",
    f"--network-policy-egress={json.dumps(ALLOWLIST)}",
)


@pytest.fixture(scope="module")
def cluster_and_operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kubectl, Path]]:
    folder = tmp_path_factory.mktemp("netpol")
    with dev_cluster(folder / "cluster") as cl, running_operator(cl.kubeconfig, folder / "operator.log", *FLAGS):
        yield Kubectl(cl.bin / "kubectl", cl.kubeconfig), folder / "operator.log"


@pytest.fixture
def kubectl(cluster_and_operator: tuple[Kubectl, Path]) -> Kubectl:
    return cluster_and_operator[0]


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    with temp_namespace(kubectl, "np") as name:
        yield name


def mv(version: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"fraud-{version}"},
        "spec": {"model": "fraud", "version": version, "artifact": {"uri": uri, "digest": DIGEST}},
    }


def md(version: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {"model": "fraud", "version": version, "replicas": replicas,
                 "serving": {"httpPort": 9000, "grpcPort": 9001, "allowFromNamespaces": ["payments"]}},
    }  # fmt: skip


def egress_cidrs(policy: dict[str, Any]) -> list[str]:
    return [peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer]


def test_policy_has_the_configured_peers_and_follows_the_versions(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply([mv("1", "http://10.1.2.3:9000/model.onnx"), mv("2", "https://models.example.com/m.onnx")],
                  namespace)  # fmt: skip
    started = time.monotonic()
    kubectl.apply(md("1"), namespace)
    policy = wait_for(lambda: kubectl.get("networkpolicy", "fraud", namespace), timeout=20, what="NetworkPolicy")
    print(f"NetworkPolicy present {time.monotonic() - started:.1f} s after the ModelDeployment")
    owner = policy["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", "fraud", True)
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "modelyard-server", "app.kubernetes.io/instance": "fraud"
    }  # fmt: skip
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    inference, metrics = spec["ingress"]
    clients = sorted(["gateways", "ingress-nginx", "payments", namespace])
    assert inference["from"] == [
        {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                                     "values": clients}]}}
    ]  # fmt: skip
    assert inference["ports"] == [{"protocol": "TCP", "port": 9000}, {"protocol": "TCP", "port": 9001}]
    assert metrics["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9000}]
    dns = spec["egress"][0]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    # version 1 is fetched from an IP: exactly that address and port, no allowlist
    assert spec["egress"][1:] == [{"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}],
                                   "ports": [{"protocol": "TCP", "port": 9000}]}]  # fmt: skip
    # pods select exactly what the policy selects
    pod_labels = kubectl.get("deployment", "fraud-1", namespace)["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()

    # version 2 is behind a host name: the allowlist joins (and version 1's address stays while its pods do)
    kubectl.apply(md("2"), namespace)
    wait_for(lambda: "0.0.0.0/0" in egress_cidrs(kubectl.get("networkpolicy", "fraud", namespace)), timeout=20,
             what="the allowlist in the policy")  # fmt: skip
    # once version 1's Deployment is gone, so is its address
    wait_for(lambda: kubectl.get("deployment", "fraud-1", namespace) is None, timeout=90, what="fraud-1 deleted")
    final = wait_for(
        lambda: (p := kubectl.get("networkpolicy", "fraud", namespace)) and egress_cidrs(p) == ["0.0.0.0/0"] and p,
        timeout=40,
        what="egress without version 1's address",
    )
    assert final["spec"]["egress"][1]["to"][0]["ipBlock"]["except"] == ["10.0.0.0/8", "169.254.0.0/16"]


def test_unchanged_policy_is_not_rewritten_and_edits_are_restored(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv("1", "http://10.1.2.3/model.onnx"), namespace)
    kubectl.apply(md("1"), namespace)
    policy = wait_for(lambda: kubectl.get("networkpolicy", "fraud", namespace), timeout=20, what="NetworkPolicy")
    version = policy["metadata"]["resourceVersion"]
    # a reconcile that changes the Deployment, not the policy: the index tells the operator to skip it
    kubectl.apply(md("1", replicas=2), namespace)
    wait_for(lambda: kubectl.get("deployment", "fraud-1", namespace)["spec"]["replicas"] == 2, timeout=20,
             what="2 replicas")  # fmt: skip
    time.sleep(2)
    assert kubectl.get("networkpolicy", "fraud", namespace)["metadata"]["resourceVersion"] == version
    # a user opens the pods to everyone; the next reconcile puts the policy back (one may already be on its way,
    # caused by the Deployment's status events, so the edited policy is not asserted: it may be restored already)
    kubectl.run("patch", "networkpolicy", "fraud", "-n", namespace, "--type=json",
                "-p", '[{"op": "replace", "path": "/spec/ingress", "value": [{}]}]')  # fmt: skip
    kubectl.apply(md("1", replicas=1), namespace)
    restored = wait_for(lambda: (p := kubectl.get("networkpolicy", "fraud", namespace)) and
                        len(p["spec"]["ingress"]) == 2 and p, timeout=20, what="the policy restored")  # fmt: skip
    assert restored["metadata"]["resourceVersion"] != version  # edited, then written back


def test_deleting_the_model_deployment_collects_its_policy(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv("1", "pvc://models/fraud/1"), namespace)
    kubectl.apply(md("1"), namespace)
    wait_for(lambda: kubectl.get("networkpolicy", "fraud", namespace), timeout=20, what="NetworkPolicy")
    kubectl.run("delete", "md", "fraud", "-n", namespace)
    wait_for(lambda: kubectl.get("networkpolicy", "fraud", namespace) is None, timeout=60, what="policy collected")


RENDER_CASES = {
    "ipv4 and allowlist": ("http://10.1.2.3:9000/m.onnx", "https://models.example.com/m.onnx"),
    "ipv6 literal": ("http://[fd00::5]:8080/m.onnx",),
    "oci on a registry IP": (f"oci://10.96.0.20:5000/models/fraud@{DIGEST}",),
    "s3 and pvc": ("s3://models/fraud/1/model.onnx", "pvc://claim/fraud"),
}


def test_rendered_policies_pass_strict_server_side_validation(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    """Everything the renderer can produce (IPv6 blocks, ``except`` lists, every scheme) is a valid NetworkPolicy
    for the API server, checked with ``kubectl apply --dry-run=server --validate=strict``."""
    settings = NetworkPolicySettings(
        enabled=True,
        ingress_namespaces=("gateways",),
        prometheus_namespaces=("monitoring",),
        artifact_egress=(
            EgressRule("0.0.0.0/0", (443,), ("10.0.0.0/8", "169.254.0.0/16")),
            EgressRule("::/0", (443,), ("fc00::/7",)),
            EgressRule("203.0.113.0/24"),
        ),
    )
    body = md("1")
    body["metadata"].update(namespace=namespace, uid="00000000-0000-0000-0000-000000000001")
    deployment = ModelDeployment.model_validate(body)
    docs = []
    for i, (case, uris) in enumerate(RENDER_CASES.items()):
        versions = []
        for j, uri in enumerate(uris):
            obj = mv(str(j), uri)
            obj["metadata"]["namespace"] = namespace
            versions.append(ModelVersion.model_validate(obj))
        policy = render_network_policy(deployment, versions, settings)
        policy["metadata"]["name"] = f"case-{i}"
        policy["metadata"].pop("ownerReferences")  # no such owner exists: a dry run would still accept it
        docs.append(policy)
        print(case, json.dumps(policy["spec"]["egress"]))
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out = kubectl.run("apply", "--dry-run=server", "--validate=strict", "-f", str(path)).stdout
    assert out.count("created (server dry run)") == len(RENDER_CASES), out
    # and the API server does refuse a broken one (the check can fail)
    docs[0]["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"] = "10.1.2.3"
    path.write_text(yaml.safe_dump(docs[0]))
    refused = kubectl.run("apply", "--dry-run=server", "--validate=strict", "-f", str(path), check=False)
    assert refused.returncode != 0
    assert "cidr" in refused.stderr, refused.stderr
