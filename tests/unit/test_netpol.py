"""The NetworkPolicy of a ModelDeployment's pods: URIs → egress rules, peers and ports, the plan's use of it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import EgressRule, NetworkPolicySettings, OperatorConfig
from modelyard_operator.main import config_from_args, parse_args
from modelyard_operator.netpol import artifact_egress, host_rule, parse_egress_rules, render_network_policy
from modelyard_operator.reconcile import plan

from .samples import DIGEST, deployment, model_deployment, model_version

PUBLIC_HTTPS = EgressRule("0.0.0.0/0", (443,), ("10.0.0.0/8", "169.254.0.0/16"))
SETTINGS = NetworkPolicySettings(
    enabled=True,
    ingress_namespaces=("gateways",),
    prometheus_namespaces=("monitoring",),
    artifact_egress=(PUBLIC_HTTPS,),
)

# URI → what the pod's loader needs: an exact ipBlock and port, nothing ("local": bytes from a volume) or the
# allowlist ("named")
URI_CASES: list[tuple[str, EgressRule | str]] = [
    ("http://10.1.2.3/models/m.onnx", EgressRule("10.1.2.3/32", (80,))),
    ("https://10.1.2.3/models/m.onnx", EgressRule("10.1.2.3/32", (443,))),
    ("http://10.1.2.3:9000/models/m.onnx", EgressRule("10.1.2.3/32", (9000,))),
    ("https://user:pw@192.168.7.9:8443/m.onnx", EgressRule("192.168.7.9/32", (8443,))),
    ("http://[fd00::5]:8080/m.onnx", EgressRule("fd00::5/128", (8080,))),
    ("oci://10.96.0.20:5000/models/fraud@" + DIGEST, EgressRule("10.96.0.20/32", (5000,))),
    ("oci://10.96.0.20/models/fraud@" + DIGEST, EgressRule("10.96.0.20/32", (443,))),
    ("https://models.example.com/m.onnx", "named"),
    ("oci://registry.example.com/models/fraud@" + DIGEST, "named"),
    ("s3://10.0.0.1/key", "named"),  # a bucket, not a host: the endpoint is the loader's
    ("s3://models/fraud/42/model.onnx", "named"),
    ("pvc://models-claim/fraud/42", "local"),
    ("file:///models/fraud", "local"),
]


@pytest.mark.parametrize(("uri", "expected"), URI_CASES, ids=[c[0] for c in URI_CASES])
def test_uri_to_egress(uri: str, expected: EgressRule | str) -> None:
    assert host_rule(uri) == expected


def _mv(uri: str, version: str = "42", **artifact: Any) -> ModelVersion:
    return ModelVersion.model_validate(model_version(version=version, artifact={"uri": uri, "digest": DIGEST,
                                                                               **artifact}))  # fmt: skip


def test_ip_hosts_are_exact_and_named_hosts_use_the_allowlist_once() -> None:
    versions = [
        _mv("http://10.1.2.3:9000/a.onnx"),
        _mv("http://10.1.2.3:9000/b.onnx", "43"),  # the same host: one rule
        _mv("https://models.example.com/m.onnx", "44"),
        _mv("https://models.example.org/m.onnx", "45"),  # a second name: still the allowlist once
    ]
    rules = artifact_egress(versions, SETTINGS)
    assert rules == [
        {"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}], "ports": [{"protocol": "TCP", "port": 9000}]},
        {
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.0.0/16"]}}],
            "ports": [{"protocol": "TCP", "port": 443}],
        },
    ]


def test_only_ip_hosts_and_local_uris_need_no_allowlist() -> None:
    rules = artifact_egress([_mv("http://10.1.2.3/m.onnx"), _mv("pvc://claim/fraud", "43")], SETTINGS)
    assert rules == [{"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}], "ports": [{"protocol": "TCP", "port": 80}]}]


def test_the_signature_bundle_host_is_allowed_too() -> None:
    signature = {"uri": "http://10.9.9.9:8081/m.sig", "publicKeySecret": {"name": "key", "key": "pub.pem"}}
    rules = artifact_egress([_mv("pvc://claim/fraud", signature=signature)], SETTINGS)
    assert rules == [{"to": [{"ipBlock": {"cidr": "10.9.9.9/32"}}], "ports": [{"protocol": "TCP", "port": 8081}]}]


def test_policy_peers_ports_and_selector() -> None:
    md = ModelDeployment.model_validate(model_deployment(serving={"httpPort": 9000, "grpcPort": 9001}))
    policy = render_network_policy(md, [_mv("http://10.1.2.3/m.onnx")], SETTINGS)
    assert (policy["metadata"]["name"], policy["metadata"]["namespace"]) == ("fraud", "ml")
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-md"
    assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelyard"
    spec = policy["spec"]
    assert spec["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "modelyard-server", "app.kubernetes.io/instance": "fraud"}
    }
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    inference, metrics = spec["ingress"]
    assert inference["from"][0]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["gateways", "ml"]}
    ]
    assert inference["ports"] == [{"protocol": "TCP", "port": 9000}, {"protocol": "TCP", "port": 9001}]
    assert metrics["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9000}]  # /metrics is on the HTTP port; no gRPC
    dns, artifact = spec["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert artifact["to"] == [{"ipBlock": {"cidr": "10.1.2.3/32"}}]


def test_the_model_deployment_adds_namespaces_of_its_own() -> None:
    md = ModelDeployment.model_validate(model_deployment(serving={"allowFromNamespaces": ["payments", "gateways"]}))
    policy = render_network_policy(md, [], SETTINGS)
    inference, metrics = policy["spec"]["ingress"]
    values = inference["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert values == ["gateways", "ml", "payments"]  # sorted, each once
    assert metrics["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]


@pytest.mark.parametrize("bad", [["Payments"], ["a" * 64], ["-x"], [f"ns{i}" for i in range(17)]])
def test_allow_from_namespaces_takes_namespace_names_only(bad: list[str]) -> None:
    with pytest.raises(ValidationError):
        ModelDeployment.model_validate(model_deployment(serving={"allowFromNamespaces": bad}))


def test_without_prometheus_namespaces_only_the_inference_rule() -> None:
    md = ModelDeployment.model_validate(model_deployment())
    settings = NetworkPolicySettings(enabled=True)
    policy = render_network_policy(md, [_mv("pvc://claim/fraud")], settings)
    assert len(policy["spec"]["ingress"]) == 1
    assert policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["ml"]
    assert len(policy["spec"]["egress"]) == 1  # DNS only: the bytes come from a volume


def test_plan_applies_a_policy_only_when_enabled() -> None:
    md, mv = model_deployment(), model_version(artifact={"uri": "http://10.1.2.3/m.onnx", "digest": DIGEST})
    off = plan(md, [mv], [], OperatorConfig(), "2026-01-01T00:00:00Z")
    assert "NetworkPolicy" not in [o["kind"] for o in off.apply]
    on = plan(md, [mv], [], OperatorConfig(network_policies=SETTINGS), "2026-01-01T00:00:00Z")
    (policy,) = [o for o in on.apply if o["kind"] == "NetworkPolicy"]
    assert policy["spec"]["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.1.2.3/32"}}]


def test_plan_keeps_egress_for_the_version_being_replaced() -> None:
    md = model_deployment(version="43")
    md["status"] = {"stableVersion": "42"}
    old = model_version(artifact={"uri": "http://10.1.2.3/old.onnx", "digest": DIGEST})
    new = model_version("fraud-43", version="43", artifact={"uri": "http://10.4.5.6/new.onnx", "digest": DIGEST})
    result = plan(md, [old, new], [deployment("fraud-42", "42")], OperatorConfig(network_policies=SETTINGS), "now")
    (policy,) = [o for o in result.apply if o["kind"] == "NetworkPolicy"]
    cidrs = [r["to"][0]["ipBlock"]["cidr"] for r in policy["spec"]["egress"][1:]]
    assert cidrs == ["10.1.2.3/32", "10.4.5.6/32"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"cidr": "10.0.0.0/8"}, "expected a list"),
        ([{"ports": [443]}], "entry 0: expected"),
        ([{"cidr": "10.0.0.0/8", "port": 443}], "entry 0: expected"),
        ([{"cidr": "10.0.0.1/8"}], "entry 0: 10.0.0.1/8 has host bits set"),
        ([{"cidr": "0.0.0.0/0", "except": ["nonsense"]}], "entry 0:"),
        ([{"cidr": "0.0.0.0/0"}, {"cidr": "::/0", "ports": [0]}], "entry 1: ports must be"),
        ([{"cidr": "0.0.0.0/0", "ports": "443"}], "entry 0: ports must be"),
        ([{"cidr": "0.0.0.0/0", "ports": [True]}], "entry 0: ports must be"),
    ],
)
def test_bad_allowlists_are_refused_with_the_entry_named(value: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_egress_rules(value)


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_from_args(parse_args([])).network_policies == NetworkPolicySettings()  # off for a bare process
    monkeypatch.setenv("MODELYARD_NETWORK_POLICIES", "true")
    monkeypatch.setenv("MODELYARD_NETWORK_POLICY_INGRESS_NAMESPACES", "gateways, ingress-nginx")
    monkeypatch.setenv("MODELYARD_NETWORK_POLICY_PROMETHEUS_NAMESPACES", "monitoring")
    monkeypatch.setenv("MODELYARD_NETWORK_POLICY_EGRESS", '[{"cidr": "0.0.0.0/0", "ports": [443]}]')
    settings = config_from_args(parse_args([])).network_policies
    assert settings == NetworkPolicySettings(
        enabled=True,
        ingress_namespaces=("gateways", "ingress-nginx"),
        prometheus_namespaces=("monitoring",),
        artifact_egress=(EgressRule("0.0.0.0/0", (443,)),),
    )
    assert config_from_args(parse_args(["--no-network-policies"])).network_policies.enabled is False


def test_a_bad_egress_value_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELYARD_NETWORK_POLICY_EGRESS", '[{"cidr": "10.0.0.1/8"}]')
    with pytest.raises(SystemExit):
        parse_args([])
    assert "host bits set" in capsys.readouterr().err


def test_bad_namespace_names_are_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELYARD_NETWORK_POLICY_PROMETHEUS_NAMESPACES", "monitoring,Grafana_NS")
    with pytest.raises(SystemExit):
        parse_args([])
    assert "not namespace names: Grafana_NS" in capsys.readouterr().err
