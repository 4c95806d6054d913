"""The CRDs on a real API server: installed, valid objects accepted, invalid ones rejected with a
message that says what is wrong, ModelVersion specs immutable."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from ..conftest import Kubectl

DIGEST = "sha256:" + "0123456789abcdef" * 4


def mv(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "fraud-1"},
        "spec": {"model": "fraud", "version": "1", "artifact": {"uri": "s3://models/fraud/1/", "digest": DIGEST}},
    }
    body["spec"].update(spec)
    return body


DERIVED = {"version": "1", "transforms": [{"quantize": {}}]}


def derived(derived_from: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """Version 2 of fraud, derived from version 1 (no artifact)."""
    body = mv(version="2", **spec)
    del body["spec"]["artifact"]
    if derived_from is not None:
        body["spec"]["derivedFrom"] = derived_from
    return body


def md(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelyard.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {"model": "fraud", "version": "1"},
    }
    body["spec"].update(spec)
    return body


def canary(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"strategy": "canary", "steps": list(steps), **extra}


SIG = "https://models.example.com/fraud/1/model.sig"
KEY = {"name": "signing-key", "key": "pub.pem"}

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("short digest", mv(artifact={"uri": "s3://m/f/", "digest": "sha256:abc"}), "spec.artifact.digest"),
    ("md5 digest", mv(artifact={"uri": "s3://m/f/", "digest": "md5:" + "0" * 32}), "spec.artifact.digest"),
    ("ftp scheme", mv(artifact={"uri": "ftp://m/f", "digest": DIGEST}), "spec.artifact.uri"),
    ("pvc without path", mv(artifact={"uri": "pvc://claim", "digest": DIGEST}), "a pvc:// URI must be pvc://CLAIM/PATH"),
    ("model name with capitals", mv(model="Fraud"), "spec.model"),
    ("version with leading dash", mv(version="-1"), "spec.version"),
    ("unsupported format", mv(format="pickle"), 'Unsupported value: "pickle"'),
    ("tensorrt format on onnxruntime", mv(format="tensorrt"), "format tensorrt needs runtime.engine tensorrt"),
    (
        "two signature verifiers",
        mv(artifact={"uri": "s3://m/f/", "digest": DIGEST,
                     "signature": {"uri": SIG, "publicKeySecret": KEY, "certificateChainSecret": KEY}}),
        "set exactly one of publicKeySecret, certificateChainSecret or sigstore",
    ),
    (
        "no signature verifier",
        mv(artifact={"uri": "s3://m/f/", "digest": DIGEST, "signature": {"uri": SIG}}),
        "set exactly one of publicKeySecret, certificateChainSecret or sigstore",
    ),
    ("missing artifact", {**mv(), "spec": {"model": "fraud", "version": "1"}},
     "set artifact (where the model is) or derivedFrom (build it from another version), exactly one"),
    ("setWeight above 100", md(rollout=canary({"setWeight": 150})), "should be less than or equal to 100"),
    ("negative setWeight", md(rollout=canary({"setWeight": -5})), "should be greater than or equal to 0"),
    ("step with two actions", md(rollout=canary({"setWeight": 10, "pause": {}})), "each step sets exactly one"),
    ("empty step", md(rollout=canary({})), "each step sets exactly one"),
    (
        "maxDuration below minDuration",
        md(rollout=canary({"analyze": {"minDuration": "10m", "maxDuration": "2m"}})),
        "maxDuration must be at least minDuration",
    ),
    (
        "bad duration",
        md(rollout=canary({"analyze": {"minDuration": "5 minutes"}})),
        "spec.rollout.steps[0].analyze.minDuration",
    ),
    ("canary without steps", md(rollout={"strategy": "canary"}), "the canary strategy needs at least one step"),
    ("unknown strategy", md(rollout={"strategy": "linear"}), 'Unsupported value: "linear"'),
    ("unknown traffic router", md(rollout={"trafficRouter": "istio"}), 'Unsupported value: "istio"'),
    ("same http and grpc port", md(serving={"httpPort": 9000, "grpcPort": 9000}), "httpPort and grpcPort must differ"),
    ("negative replicas", md(replicas=-1), "spec.replicas"),
    (
        "autoscaling max below min",
        md(autoscaling={"minReplicas": 3, "maxReplicas": 2}),
        "maxReplicas must be at least minReplicas",
    ),
    ("autoscaling without max", md(autoscaling={"minReplicas": 1}), "spec.autoscaling.maxReplicas: Required value"),
    (
        "autoscaling with the inPod router",
        md(autoscaling={"maxReplicas": 4}, rollout={**canary({"setWeight": 10}), "trafficRouter": "inPod"}),
        "autoscaling works with rollout strategies immediate and canary, and not with the inPod router",
    ),
    ("unknown load mode", md(loading={"mode": "lazy"}), 'Unsupported value: "lazy"'),
    (
        "metric with template and query",
        md(rollout=canary({"setWeight": 10}, analysis={"metrics": [
            {"name": "e", "template": "errorRate", "query": "up", "max": 1}]})),
        "set exactly one of template or query",
    ),
    (
        "metric without bound",
        md(rollout=canary({"setWeight": 10}, analysis={"metrics": [{"name": "e", "template": "errorRate"}]})),
        "set at least one of min, max or compare",
    ),
    ("unknown field", md(replica=3), 'unknown field "spec.replica"'),
    ("pod label of the operator's", md(pod={"labels": {"app.kubernetes.io/instance": "x"}}),
     "labels under app.kubernetes.io/ and modelyard.dev/ are the operator's"),
    ("pod env of the operator's", md(pod={"env": [{"name": "MODELYARD_LOG_FORMAT", "value": "json"}]}),
     "MODELYARD_ variables are the operator's"),
    ("pod env twice", md(pod={"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
     "each env name at most once"),
    ("pod env without a value", md(pod={"env": [{"name": "A"}]}), "set exactly one of value and valueFrom"),
    ("pod env from a Secret",
     md(pod={"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
     'unknown field "spec.pod.env[0].valueFrom.secretKeyRef"'),
    ("pod service account", md(pod={"serviceAccountName": "admin"}), 'unknown field "spec.pod.serviceAccountName"'),
    ("artifact and derivedFrom", mv(derivedFrom=DERIVED), "set artifact (where the model is) or derivedFrom"),
    ("neither artifact nor derivedFrom", derived(), "set artifact (where the model is) or derivedFrom"),
    ("derived pmml", derived(DERIVED, format="pmml"), "a derived version is an ONNX model: format onnx"),
    ("derived from itself", derived({**DERIVED, "version": "2"}), "derivedFrom.version names another version"),
    ("no transforms", derived({"version": "1", "transforms": []}), "spec.derivedFrom.transforms"),
    ("two keys in a transform", derived({"version": "1", "transforms": [{"quantize": {}, "float16": {}}]}),
     "a transform has exactly one of convert, quantize, float16 or prune"),
    ("convert after quantize", derived({"version": "1", "transforms": [{"quantize": {}}, {"convert": "onnx"}]}),
     "convert comes first"),
    ("static without calibration", derived({"version": "1", "transforms": [{"quantize": {"mode": "static"}}]}),
     "static quantization needs calibration"),
    ("sparsity 1", derived({"version": "1", "transforms": [{"prune": {"sparsity": 1}}]}),
     "spec.derivedFrom.transforms[0].prune.sparsity"),
    ("top-1 above 1", derived({**DERIVED, "gate": {"top1Agreement": 1.5}}), "spec.derivedFrom.gate.top1Agreement"),
    ("tensorrtPlan", derived({"version": "1", "transforms": [{"tensorrtPlan": {"precision": "fp16"}}]}),
     'unknown field "spec.derivedFrom.transforms[0].tensorrtPlan"'),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_manifest_is_rejected(
    kubectl: Kubectl, namespace: str, case: str, body: dict[str, Any], message: str
) -> None:
    proc = kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(body), check=False)
    assert proc.returncode != 0, f"{case}: accepted but should be rejected"
    assert message in proc.stderr, proc.stderr


VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal version", mv()),
    ("signed version", mv(artifact={"uri": "oci://registry.local/fraud@" + DIGEST, "digest": DIGEST,
                                    "signature": {"uri": SIG, "sigstore": {"identity": "ci@example.com",
                                                                           "issuer": "https://issuer.example.com"}}})),
    ("pvc version", mv(artifact={"uri": "pvc://models/fraud/1/model.onnx", "digest": DIGEST})),
    ("derived version", derived(DERIVED)),
    ("minimal deployment", md()),
    (
        "design example deployment",
        md(replicas=2, resources={"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"nvidia.com/gpu": 1}},
           loading={"mode": "static", "memoryBudget": "8Gi"},
           rollout=canary({"setWeight": 10}, {"analyze": {"minDuration": "2m", "maxDuration": "10m"}},
                          {"setWeight": 50}, {"pause": {}}, {"analyze": {"minDuration": "5m"}},
                          analysis={"interval": "30s", "evidence": {"minRequests": 200}, "metrics": [
                              {"name": "error-rate", "template": "errorRate", "max": 0.01, "critical": True},
                              {"name": "p99-latency", "template": "latencyP99",
                               "compare": {"against": "stable", "maxRatio": 1.2}, "failurePolicy": {"consecutive": 3}},
                              {"name": "custom", "query": "rate(x{model=\"{{model}}\"}[{{window}}])", "min": 0.9}]},
                          postPromotion={"analyze": {"duration": "10m"}, "onFailure": "rollback"})),
    ),
    (
        "shadowing deployment",
        md(rollout=canary({"analyze": {"minDuration": "5m"}}, {"setWeight": 100}, trafficRouter="inPod", shadow={},
                          analysis={"metrics": [{"name": "a", "template": "agreement", "min": 0.99}]})),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body"), VALID, ids=[c[0] for c in VALID])
def test_valid_manifest_is_accepted_with_defaults(
    kubectl: Kubectl, namespace: str, case: str, body: dict[str, Any]
) -> None:
    kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    stored = kubectl.get(body["kind"].lower(), body["metadata"]["name"], namespace)
    if case == "derived version":
        assert stored["spec"]["derivedFrom"]["transforms"] == [
            {"quantize": {"mode": "dynamic", "weightType": "int8", "perChannel": False}}
        ]
        assert stored["spec"]["derivedFrom"]["gate"] == {"generated": 64, "seed": 0}
    if case == "shadowing deployment":
        assert stored["spec"]["rollout"]["shadow"] == {"percent": 100, "compare": "top1", "maxAbsDiff": 0.001}
    if body["kind"] == "ModelDeployment":
        assert stored["spec"]["serving"] == {"httpPort": 8080, "grpcPort": 8081}
        assert stored["spec"]["loading"]["mode"] == "static"
    else:
        assert stored["spec"]["format"] == "onnx"
        assert stored["spec"]["runtime"]["engine"] == "onnxruntime"


def test_crds_are_established_with_names(kubectl: Kubectl) -> None:
    for name, short in (
        ("modelversions.modelyard.dev", ["mv", "mver"]),
        ("modeldeployments.modelyard.dev", ["md", "mdeploy"]),
    ):
        crd = kubectl.get("crd", name)
        established = next(c for c in crd["status"]["conditions"] if c["type"] == "Established")
        assert established["status"] == "True"
        assert crd["spec"]["names"]["shortNames"] == short
    out = kubectl.run("api-resources", "--categories=modelyard", "-o", "name").stdout.split()
    assert sorted(out) == ["modeldeployments.modelyard.dev", "modelversions.modelyard.dev"]


def test_model_version_spec_is_immutable(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mv(), namespace)
    patch = json.dumps({"spec": {"artifact": {"uri": "s3://models/fraud/other/", "digest": DIGEST}}})
    proc = kubectl.run("patch", "mv", "fraud-1", "-n", namespace, "--type=merge", "-p", patch, check=False)
    assert proc.returncode != 0
    assert "spec is immutable: create a new ModelVersion instead" in proc.stderr
    # metadata stays editable (labels, annotations)
    kubectl.run("label", "mv", "fraud-1", "-n", namespace, "team=risk")


def test_model_deployment_model_is_immutable_but_version_is_not(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(md(), namespace)
    kubectl.run("patch", "md", "fraud", "-n", namespace, "--type=merge", "-p", '{"spec":{"version":"2"}}')
    proc = kubectl.run(
        "patch", "md", "fraud", "-n", namespace, "--type=merge", "-p", '{"spec":{"model":"churn"}}', check=False
    )
    assert proc.returncode != 0
    assert "model is immutable" in proc.stderr


def _table(kubectl: Kubectl, *args: str) -> dict[str, str]:
    """The first row of ``kubectl get`` as {COLUMN: value}, cut at the header's column offsets (kubectl aligns
    columns with a tab writer, and an empty cell is blank)."""
    lines = kubectl.run("get", *args).stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    ends = [*starts[1:], None]
    return {lines[0][a:b].strip(): lines[1][a:b].strip() for a, b in zip(starts, ends, strict=True)}


def test_printer_columns(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply([mv(), copy.deepcopy(md())], namespace)
    # the status as the operator writes it (no operator runs in this module: the columns are the API server's)
    mv_status = {
        "phase": "Ready",
        "artifact": {"digest": DIGEST, "shortDigest": DIGEST[:19], "sizeBytes": 13107200, "size": "12.5MiB"},
        "loadSeconds": 0.25,
        "conditions": [
            {"type": t, "status": "True", "reason": r, "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            for t, r in (("Validated", "Loaded"), ("Ready", "Validated"))
        ],
    }
    kubectl.run(
        "patch", "mv", "fraud-1", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": mv_status}),
    )  # fmt: skip
    row = _table(kubectl, "mv", "-n", namespace)
    assert list(row) == ["NAME", "MODEL", "VERSION", "FORMAT", "PHASE", "DIGEST", "SIZE", "VALIDATED", "AGE"]
    assert (row["DIGEST"], row["SIZE"], row["VALIDATED"]) == (DIGEST[:19], "12.5MiB", "True")
    wide = _table(kubectl, "mver", "-n", namespace, "-o", "wide")
    assert (wide["REASON"], wide["LOAD"]) == ("Validated", "0.25")
    assert wide["URI"] == mv()["spec"]["artifact"]["uri"]

    md_status = {
        "phase": "Healthy",
        "stableVersion": "1",
        "endpoints": {"http": f"http://fraud.{namespace}.svc.cluster.local:8080", "grpc": "fraud:8081"},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Available", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
    }  # fmt: skip
    kubectl.run(
        "patch", "md", "fraud", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": md_status}),
    )  # fmt: skip
    row = _table(kubectl, "mdeploy", "-n", namespace)
    assert list(row) == ["NAME", "MODEL", "STABLE", "CANARY", "WEIGHT", "READY", "REASON", "PHASE", "URL", "AGE"]
    assert (row["STABLE"], row["CANARY"], row["PHASE"]) == ("1", "", "Healthy")
    assert (row["READY"], row["REASON"], row["URL"]) == ("True", "Available", md_status["endpoints"]["http"])
    header = kubectl.run("get", "md", "-n", namespace, "-o", "wide").stdout.splitlines()[0].split()
    assert header[-3:] == ["STRATEGY", "REPLICAS", "GRPC"]


ROLLOUT_INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "window shorter than two scrapes",
        md(rollout=canary({"setWeight": 10}, analysis={"window": "20s", "scrapeInterval": "15s"})),
        "window must be at least twice scrapeInterval",
    ),
    (
        "sub-second analysis interval",
        md(rollout=canary({"setWeight": 10}, analysis={"interval": "500ms"})),
        "interval must be at least 1s",
    ),
    (
        "both failure policies",
        md(rollout=canary({"setWeight": 10}, analysis={"metrics": [
            {"name": "e", "template": "errorRate", "max": 0.1, "failurePolicy": {"consecutive": 2, "total": 3}}]})),
        "set exactly one of consecutive or total",
    ),
    ("unknown action", md(rollout={"action": {"type": "skip", "nonce": "1"}}), 'Unsupported value: "skip"'),
    ("action without nonce", md(rollout={"action": {"type": "approve"}}), "spec.rollout.action.nonce: Required"),
    (
        "unknown onInconclusive",
        md(rollout=canary({"setWeight": 10}, analysis={"onInconclusive": "promote"})),
        'Unsupported value: "promote"',
    ),
    ("mirror above 100", md(rollout={"gatewayAPI": {"mirrorPercent": 101}}), "spec.rollout.gatewayAPI.mirrorPercent"),
    (
        "shadow without the inPod router",
        md(rollout=canary({"analyze": {}}, shadow={"percent": 100})),
        "shadow needs trafficRouter inPod",
    ),
    (
        "shadow with the immediate strategy",
        md(rollout={"strategy": "immediate", "trafficRouter": "inPod", "shadow": {}}),
        "shadow needs trafficRouter inPod (pods copy requests to the canary inside themselves) and a canary or "
        "blueGreen strategy",
    ),
    (
        "agreement without shadow",
        md(rollout=canary({"analyze": {}}, trafficRouter="inPod",
                          analysis={"metrics": [{"name": "a", "template": "agreement", "min": 0.99}]})),
        "the agreement template measures shadowed requests: set rollout.shadow",
    ),
    (
        "shadow percent 0",
        md(rollout=canary({"analyze": {}}, trafficRouter="inPod", shadow={"percent": 0})),
        "spec.rollout.shadow.percent",
    ),
    (
        "shadow compare unknown",
        md(rollout=canary({"analyze": {}}, trafficRouter="inPod", shadow={"compare": "top5"})),
        'Unsupported value: "top5"',
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "message"), ROLLOUT_INVALID, ids=[c[0] for c in ROLLOUT_INVALID])
def test_invalid_rollout_manifest_is_rejected(
    kubectl: Kubectl, namespace: str, case: str, body: dict[str, Any], message: str
) -> None:
    proc = kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(body), check=False)
    assert proc.returncode != 0, f"{case}: accepted but should be rejected"
    assert message in proc.stderr, proc.stderr


def test_rollout_actions_and_blue_green_are_accepted(kubectl: Kubectl, namespace: str) -> None:
    body = md(rollout={"strategy": "blueGreen", "blueGreen": {"autoPromote": False},
                       "analysis": {"window": "30s", "scrapeInterval": "15s", "onInconclusive": "rollback"},
                       "action": {"type": "approve", "nonce": "2026-11-24.1"}})  # fmt: skip
    kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    stored = kubectl.get("md", "fraud", namespace)["spec"]["rollout"]
    assert stored["action"] == {"type": "approve", "nonce": "2026-11-24.1"}
    assert stored["blueGreen"]["analyze"]["minDuration"] == "1m"
