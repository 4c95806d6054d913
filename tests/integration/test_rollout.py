"""Rollouts driven by the real operator on the real control plane (kwok makes the pods Ready).

These rows need no metrics: weights, approval gates applied once per nonce, abort and retry, a held
analysis when no Prometheus is configured, and the HTTPRoute of the gatewayAPI router.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import REPO, Kubectl, wait_for
from .test_operator import condition, md, mv

pytestmark = pytest.mark.usefixtures("operator_process")


def status_of(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    return dict((kubectl.get("md", "fraud", namespace) or {}).get("status") or {})


def replicas_of(kubectl: Kubectl, namespace: str) -> dict[str, int]:
    items = kubectl.get("deployments", namespace=namespace)["items"]
    return {d["metadata"]["name"]: d["spec"]["replicas"] for d in items}


def rollout(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"strategy": "canary", "steps": list(steps), **extra}


def stable_v1(kubectl: Kubectl, namespace: str, body: dict[str, Any]) -> None:
    kubectl.apply([mv("1"), mv("2")], namespace)
    kubectl.apply(body, namespace)
    wait_for(lambda: status_of(kubectl, namespace).get("phase") == "Healthy", timeout=60, what="v1 Healthy")


def test_canary_with_approval_gate_applied_once(kubectl: Kubectl, namespace: str) -> None:
    spec = {"rollout": rollout({"setWeight": 50}, {"pause": {}}, {"setWeight": 100})}
    stable_v1(kubectl, namespace, md(version="1", **spec))
    kubectl.apply(md(version="2", **spec), namespace)

    paused = wait_for(
        lambda: (s := status_of(kubectl, namespace)).get("phase") == "Paused" and s, timeout=60, what="Paused"
    )
    assert paused["canaryVersion"] == "2"
    assert paused["weights"] == {"stable": 50, "canary": 50}
    assert paused["requestedWeight"] == 50
    # the stable version keeps both pods; the canary is surged beside it (2 of 4 Ready pods: 50 % in effect)
    assert replicas_of(kubectl, namespace) == {"fraud-1": 2, "fraud-2": 2}
    obj = kubectl.get("md", "fraud", namespace)
    assert condition(obj, "Paused")["status"] == "True"  # type: ignore[index]
    assert condition(obj, "Progressing")["status"] == "True"  # type: ignore[index]

    kubectl.run("annotate", "md", "fraud", "-n", namespace, "modelyard.dev/action=approve:a1")
    promoted = wait_for(
        lambda: (s := status_of(kubectl, namespace)).get("stableVersion") == "2" and s, timeout=60, what="promotion"
    )
    assert promoted["lastHandledAction"]["nonce"] == "a1"
    assert [(h["version"], h["outcome"]) for h in promoted["history"]] == [("2", "Promoted")]
    wait_for(lambda: replicas_of(kubectl, namespace) == {"fraud-2": 2}, timeout=30, what="v1 retired")
    wait_for(lambda: condition(kubectl.get("md", "fraud", namespace), "Ready")["status"] == "True",  # type: ignore[index]
             timeout=30, what="Ready")  # fmt: skip

    # A GitOps tool re-applies the same annotation: nothing fires again.
    kubectl.run("annotate", "md", "fraud", "-n", namespace, "--overwrite", "modelyard.dev/action=approve:a1")
    kubectl.apply(md(version="2", **spec), namespace)
    events = kubectl.get("events", namespace=namespace)["items"]
    actions = [e for e in events if e["reason"] == "RolloutAction" and "nonce a1" in e["message"]]
    assert len(actions) == 1
    assert actions[0].get("count", 1) == 1
    assert any(e["reason"] == "RolloutPromote" for e in events)
    assert status_of(kubectl, namespace)["history"] == promoted["history"]


def test_analysis_without_prometheus_holds_then_abort_and_retry(kubectl: Kubectl, namespace: str) -> None:
    analysis = {"interval": "2s", "metrics": [{"name": "errors", "template": "errorRate", "max": 0.01}]}
    spec = {"rollout": rollout({"setWeight": 50}, {"analyze": {"minDuration": "5s"}}, analysis=analysis)}
    stable_v1(kubectl, namespace, md(version="1", **spec))
    kubectl.apply(md(version="2", **spec), namespace)

    def held() -> dict[str, Any] | None:
        obj = kubectl.get("md", "fraud", namespace)
        c = condition(obj, "AnalysisHealthy")
        in_analysis = obj["status"].get("step", {}).get("index") == 1
        return c if c and c["status"] == "False" and in_analysis else None

    healthy = wait_for(held, timeout=60, what="AnalysisHealthy=False")
    assert healthy["reason"] == "MetricsBackendError"
    assert "no Prometheus configured" in healthy["message"]
    assert status_of(kubectl, namespace)["weights"]["canary"] == 50  # held, neither promoted nor rolled back

    kubectl.apply(md(version="2", **{"rollout": {**spec["rollout"], "action": {"type": "abort", "nonce": "x1"}}}),
                  namespace)  # fmt: skip
    rolled = wait_for(
        lambda: (s := status_of(kubectl, namespace)).get("phase") == "RolledBack" and s, timeout=30, what="rollback"
    )
    assert rolled["stableVersion"] == "1"
    assert rolled["rolledBackVersions"] == ["2"]
    assert "canaryVersion" not in rolled
    assert condition(kubectl.get("md", "fraud", namespace), "Degraded")["status"] == "True"  # type: ignore[index]
    wait_for(lambda: replicas_of(kubectl, namespace) == {"fraud-1": 2}, timeout=30, what="canary removed")

    kubectl.apply(md(version="2", **{"rollout": {**spec["rollout"], "action": {"type": "retry", "nonce": "x2"}}}),
                  namespace)  # fmt: skip
    wait_for(lambda: status_of(kubectl, namespace).get("canaryVersion") == "2", timeout=30, what="retried")
    assert status_of(kubectl, namespace)["rolledBackVersions"] == []


def install_crd(kubectl: Kubectl, crd: Path) -> None:
    """Apply a CRD and wait until it is Established (polled: right after a re-apply the CRD may have no
    conditions yet, which ``kubectl wait`` reports as an error instead of waiting)."""
    kubectl.run("apply", "--server-side", "-f", str(crd))
    name = yaml.safe_load(crd.read_text())["metadata"]["name"]

    def established() -> bool:
        conditions = ((kubectl.get("crd", name) or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=30, what=f"CRD {name} Established")


def test_gateway_api_route_weights(kubectl: Kubectl, namespace: str, cluster: Any) -> None:
    crd = next(cluster.bin.parent.glob("gateway-api/gateway.networking.k8s.io_httproutes.yaml"), None)
    assert crd is not None, f"Gateway API CRDs missing next to {cluster.bin}"
    install_crd(kubectl, crd)
    spec = {"rollout": rollout({"setWeight": 30}, {"pause": {}}, trafficRouter="gatewayAPI",
                               gatewayAPI={"parentRefs": [{"name": "gw"}], "mirrorPercent": 10,
                                           "canaryHeaders": [{"name": "x-canary", "value": "1"}]})}  # fmt: skip
    stable_v1(kubectl, namespace, md(version="1", **spec))
    route = wait_for(lambda: kubectl.get("httproute", "fraud", namespace), timeout=30, what="HTTPRoute")
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]] == [("fraud-stable", 100)]

    kubectl.apply(md(version="2", **spec), namespace)
    wait_for(lambda: status_of(kubectl, namespace).get("phase") == "Paused", timeout=60, what="Paused at 30%")
    route = kubectl.get("httproute", "fraud", namespace)
    header, main = route["spec"]["rules"]
    assert header["backendRefs"][0]["name"] == "fraud-canary"
    assert [(b["name"], b["weight"]) for b in main["backendRefs"]] == [("fraud-stable", 70), ("fraud-canary", 30)]
    assert main["filters"][0]["requestMirror"]["percent"] == 10
    canary_svc = kubectl.get("service", "fraud-canary", namespace)
    assert canary_svc["spec"]["selector"]["modelyard.dev/version"] == "2"
    assert replicas_of(kubectl, namespace) == {"fraud-1": 2, "fraud-2": 1}
    assert json.loads(json.dumps(route["metadata"]["ownerReferences"]))[0]["kind"] == "ModelDeployment"
    assert REPO.exists()

    kubectl.run("annotate", "md", "fraud", "-n", namespace, "modelyard.dev/action=approve:go")
    wait_for(lambda: status_of(kubectl, namespace).get("stableVersion") == "2", timeout=60, what="promotion")

    def only_stable() -> list[Any] | None:
        rules = kubectl.get("httproute", "fraud", namespace)["spec"]["rules"]
        refs = [(b["name"], b["weight"]) for b in rules[0]["backendRefs"]]
        return refs if len(rules) == 1 and refs == [("fraud-stable", 100)] else None

    wait_for(only_stable, timeout=30, what="the route back on one backend")
    assert kubectl.get("service", "fraud-stable", namespace)["spec"]["selector"]["modelyard.dev/version"] == "2"

    # Leaving the gatewayAPI router removes the route (it would steer the Gateway with frozen weights).
    kubectl.apply(md(version="2", **{"rollout": {**spec["rollout"], "trafficRouter": "replicas"}}), namespace)
    wait_for(lambda: kubectl.get("httproute", "fraud", namespace) is None, timeout=30, what="HTTPRoute deleted")
    assert status_of(kubectl, namespace)["phase"] == "Healthy"


def test_in_pod_router_sets_server_version_weights(kubectl: Kubectl, namespace: str) -> None:
    spec = {"rollout": rollout({"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}},
                               trafficRouter="inPod")}  # fmt: skip
    stable_v1(kubectl, namespace, md(version="1", **spec))
    first_template = kubectl.get("deployment", "fraud-1", namespace)["spec"]["template"]
    kubectl.apply(md(version="2", **spec), namespace)

    def weights_config() -> str | None:
        cm = kubectl.get("configmap", "fraud-version-weights", namespace)
        return cm["data"]["config.yaml"] if cm else None

    wait_for(lambda: status_of(kubectl, namespace).get("phase") == "Paused", timeout=90, what="Paused at 20%")
    assert weights_config() == 'version_weights: {"1": 80, "2": 20}\n'
    listed = json.loads(kubectl.get("configmap", "fraud-version-weights", namespace)["data"]["versions.json"])
    assert [(e["version"], e["uri"]) for e in listed["versions"]] == [("2", mv("2")["spec"]["artifact"]["uri"])]
    deployment = kubectl.get("deployment", "fraud-1", namespace)
    assert deployment["metadata"]["annotations"]["modelyard.dev/versions"] == "1,2"
    assert deployment["spec"]["template"] == first_template  # the canary came through the list: no pod replaced
    pod = deployment["spec"]["template"]["spec"]
    loaders = {c["name"]: c["args"] for c in pod["initContainers"]}
    assert set(loaders) == {"loader", "versions-loader"}  # the pod's version, and the sidecar that follows the list
    assert "--versions-file" in loaders["versions-loader"]
    server = pod["containers"][0]
    args = server["args"]
    assert args[args.index("--model-config-dir") + 1] == "/etc/modelyard/model-config"
    assert args[args.index("--serve") :][:2] == ["--serve", "fraud:1"]  # readiness: the stable version at least
    assert {"name": "model-config", "mountPath": "/etc/modelyard/model-config", "readOnly": True} in (
        server["volumeMounts"]
    )
    volume = next(v for v in pod["volumes"] if v["name"] == "model-config")
    assert volume["configMap"]["items"] == [{"key": "config.yaml", "path": "fraud/config.yaml"}]
    template_before = deployment["spec"]["template"]
    assert replicas_of(kubectl, namespace) == {"fraud-1": 2}  # no second copy: both versions share the pods

    approve = md(version="2", **{"rollout": {**spec["rollout"], "action": {"type": "approve", "nonce": "n1"}}})
    kubectl.apply(approve, namespace)
    wait_for(lambda: weights_config() == 'version_weights: {"1": 40, "2": 60}\n', timeout=60, what="60% to v2")
    assert status_of(kubectl, namespace)["weights"] == {"stable": 40, "canary": 60}
    # the server re-reads the mounted ConfigMap: a weight change does not roll the pods
    assert kubectl.get("deployment", "fraud-1", namespace)["spec"]["template"] == template_before


def test_gateway_api_missing_is_degraded_until_the_crds_appear(kubectl: Kubectl, namespace: str, cluster: Any) -> None:
    """Without the HTTPRoute CRD the gatewayAPI router reports Degraded/GatewayAPIMissing and keeps retrying.

    The CRD is removed for real (tests of this session run one after another, and the route test above
    installs it again for itself), then installed while the operator keeps running.
    """
    crd = next(cluster.bin.parent.glob("gateway-api/gateway.networking.k8s.io_httproutes.yaml"), None)
    assert crd is not None, f"Gateway API CRDs missing next to {cluster.bin}"
    kubectl.run("delete", "crd", "httproutes.gateway.networking.k8s.io", "--ignore-not-found", "--wait=true")
    wait_for(lambda: "httproutes" not in kubectl.run("api-resources", "--api-group=gateway.networking.k8s.io").stdout,
             timeout=30, what="HTTPRoute API gone")  # fmt: skip
    spec = {"rollout": rollout({"setWeight": 30}, {"pause": {}}, trafficRouter="gatewayAPI")}
    kubectl.apply([mv("1"), mv("2")], namespace)
    kubectl.apply(md(version="1", **spec), namespace)

    def degraded() -> dict[str, Any] | None:
        c = condition(kubectl.get("md", "fraud", namespace), "Degraded")
        return c if c and c["status"] == "True" else None

    c = wait_for(degraded, timeout=60, what="Degraded=True")
    assert c["reason"] == "GatewayAPIMissing"
    assert "Gateway API CRDs" in c["message"]
    assert status_of(kubectl, namespace)["phase"] == "Degraded"
    assert "fraud-1" in replicas_of(kubectl, namespace)  # the Deployment is there: only the route is missing
    events = kubectl.get("events", namespace=namespace)["items"]
    assert [e["reason"] for e in events if e["reason"] == "GatewayAPIMissing"] == ["GatewayAPIMissing"]

    install_crd(kubectl, crd)
    wait_for(lambda: status_of(kubectl, namespace).get("phase") == "Healthy", timeout=60, what="recovered")
    route = kubectl.get("httproute", "fraud", namespace)
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]] == [("fraud-stable", 100)]
    assert condition(kubectl.get("md", "fraud", namespace), "Degraded")["status"] == "False"  # type: ignore[index]

    # Mid-rollout: the CRD (and with it the route) goes away at an approval gate, then comes back.
    kubectl.apply(md(version="2", **spec), namespace)
    wait_for(lambda: status_of(kubectl, namespace).get("phase") == "Paused", timeout=60, what="Paused at 30%")
    kubectl.run("delete", "crd", "httproutes.gateway.networking.k8s.io", "--wait=true")
    c = wait_for(degraded, timeout=60, what="Degraded=True mid-rollout")
    assert c["reason"] == "GatewayAPIMissing"
    held = status_of(kubectl, namespace)
    assert (held["stableVersion"], held["canaryVersion"], held["weights"]) == ("1", "2", {"stable": 70, "canary": 30})
    install_crd(kubectl, crd)
    wait_for(lambda: status_of(kubectl, namespace).get("phase") == "Paused", timeout=60, what="back at the gate")

    def route_weights() -> list[Any] | None:
        r = kubectl.get("httproute", "fraud", namespace)
        return [(b["name"], b["weight"]) for b in r["spec"]["rules"][-1]["backendRefs"]] if r else None

    assert wait_for(route_weights, timeout=30, what="route re-created") == [("fraud-stable", 70), ("fraud-canary", 30)]
    assert condition(kubectl.get("md", "fraud", namespace), "Degraded")["status"] == "False"  # type: ignore[index]


def test_prometheus_client_maps_timeouts_and_errors_to_clear_messages() -> None:
    """The adapter against real HTTP servers that stall, fail and answer: every failure is a PrometheusError."""
    import asyncio
    import http.server
    import threading
    import time

    from modelyard_operator.prometheus import Prometheus, PrometheusError

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.startswith("/stall"):
                time.sleep(2)
            if self.path.startswith("/broken"):
                body, code = b"<html>bad gateway</html>", 502
            elif self.path.startswith("/invalid"):
                body, code = b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}', 400
            else:
                body, code = b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"0.25"]}]}}', 200
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    async def ask(path: str, limit: float = 5.0) -> float | None:
        prom = Prometheus(base + path, timeout=limit)
        try:
            return await prom.query("up")
        finally:
            await prom.close()

    try:
        assert asyncio.run(ask("/ok")) == 0.25
        started = time.monotonic()
        with pytest.raises(PrometheusError, match=r"did not answer within 0.5s"):
            asyncio.run(ask("/stall", limit=0.5))
        assert time.monotonic() - started < 1.8  # the timeout, not the server, ended the wait
        with pytest.raises(PrometheusError, match=r"HTTP 502: not a Prometheus API response"):
            asyncio.run(ask("/broken"))
        with pytest.raises(PrometheusError, match=r"HTTP 400: bad_data: parse error at char 3"):
            asyncio.run(ask("/invalid"))
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(PrometheusError, match="unreachable"):
        asyncio.run(ask("/ok"))  # nothing listens on the port any more
