"""The chart's monitoring objects: alert rules through promtool (Debian's prometheus package) with series that fire
and do not fire each alert, and the PodMonitors, PrometheusRule and dashboard ConfigMap accepted by the real API
server with the Prometheus Operator's CRDs (from its Go module) installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..conftest import REPO, Kubectl
from ..support.gitops import go_checker

CHART = REPO / "charts" / "modelyard"
PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"
ALL_ON = [
    "--set", "monitoring.podMonitors.enabled=true",
    "--set", "monitoring.prometheusRule.enabled=true",
    "--set", "monitoring.dashboard.enabled=true",
]  # fmt: skip


def helm() -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-controlplane.sh")], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.split()[-1]) / "helm"


def render(namespace: str, *args: str) -> list[dict[str, Any]]:
    """The monitoring objects of the chart rendered with ``args`` (PodMonitors, PrometheusRule, dashboard)."""
    proc = subprocess.run(
        [str(helm()), "template", "modelyard", str(CHART), "-n", namespace, *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return [
        d for d in docs
        if d["kind"] in ("PodMonitor", "PrometheusRule") or d["metadata"]["name"] == "modelyard-dashboard"
    ]  # fmt: skip


def test_alert_rules_pass_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (make prometheus)"
    rule = next(d for d in render("modelyard-system", *ALL_ON) if d["kind"] == "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    shutil.copy(PROMTOOL_TESTS, tmp_path / "alerts_test.yaml")
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in check.stdout
    unit = subprocess.run([promtool, "test", "rules", "alerts_test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    rule = next(d for d in render("modelyard-system", *ALL_ON) if d["kind"] == "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert len(alerts) == 10
    cases = [c for t in yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert alerts - fires == set(), "alerts never seen firing"
    assert alerts - quiet == set(), "alerts never seen quiet"
    assert (fires | quiet) - alerts == set(), "test cases for alerts the chart does not have"


def test_thresholds_follow_the_values() -> None:
    docs = render("m", "--set", "monitoring.prometheusRule.enabled=true",
                  "--set-json", "monitoring.prometheusRule.availabilityObjective=0.99",
                  "--set-json", "monitoring.prometheusRule.latencyP99Seconds=0.25")  # fmt: skip
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    by_name = {r.get("alert"): r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "> 0.144" in by_name["ModelyardErrorBudgetBurnFast"]["expr"]  # 14.4 x (1 - 0.99)
    assert "> 0.06" in by_name["ModelyardErrorBudgetBurnSlow"]["expr"]
    assert "> 0.25" in by_name["ModelyardLatencyP99High"]["expr"]
    assert render("m") == []  # everything off by default: no Prometheus Operator CRDs needed


def test_monitoring_objects_are_accepted_by_the_api_server(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    crds = subprocess.run(
        ["bash", str(REPO / "hack" / "fetch-monitoring-crds.sh")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    kubectl.run("apply", "--server-side", "-f", crds)
    kubectl.run("wait", "--for=condition=Established", "crd/podmonitors.monitoring.coreos.com",
                "crd/prometheusrules.monitoring.coreos.com", "--timeout=60s")  # fmt: skip
    docs = render(namespace, *ALL_ON, "--set", "monitoring.labels.release=kube-prometheus-stack",
                  "--set", f"monitoring.dashboard.namespace={namespace}")  # fmt: skip
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "PodMonitor", "PodMonitor", "PrometheusRule"]
    manifest = tmp_path / "monitoring.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    out = kubectl.run("apply", "--dry-run=server", "--validate=strict", "-f", str(manifest)).stdout
    assert out.count("(server dry run)") == 4
    # strict validation really constrains: a misspelt field is refused, not dropped
    bad = next(d for d in docs if d["kind"] == "PodMonitor")
    bad["spec"]["podMetricEndpoints"] = bad["spec"].pop("podMetricsEndpoints")
    manifest.write_text(yaml.safe_dump(bad))
    proc = kubectl.run("apply", "--dry-run=server", "--validate=strict", "-f", str(manifest), check=False)
    assert proc.returncode != 0
    assert 'unknown field "spec.podMetricEndpoints"' in proc.stderr


def test_the_dashboard_follows_grafanas_dashboard_schema(tmp_path: Path) -> None:
    """The dashboard (as committed and as the chart ships it) against Grafana's dashboard schema: Grafana's Foundation
    SDK's strict decoding and the schema's constraints (hack/dashboard-check), for the Grafana it declares."""
    checker = go_checker("build-dashboard-check.sh")
    (configmap,) = (d for d in render("monitoring", *ALL_ON) if d["kind"] == "ConfigMap")
    ((_, shipped),) = configmap["data"].items()
    files = [REPO / "dashboards" / "modelyard.json", tmp_path / "configmap.json"]
    files[1].write_text(shipped)
    proc = subprocess.run([str(checker), *map(str, files)], capture_output=True, text=True, timeout=60, check=False)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count("(declares Grafana 12.3.0, schemaVersion 42)") == 2
    # the check really constrains: each mistake below is found and named
    dashboard = json.loads(shipped)
    mistakes: dict[str, Callable[[dict[str, Any]], None]] = {
        "unexpected field 'refreshInterval'": lambda d: d.update(refreshInterval="30s"),
        "panels[1].gridPos.w: json: cannot unmarshal string": lambda d: d["panels"][1]["gridPos"].update(w="wide"),
        "panels[1].options.legend.calcs: required field is missing": lambda d: d["panels"][1]["options"]["legend"].pop(
            "calcs"
        ),
        "fiscalYearStartMonth: must be < 12": lambda d: d.update(fiscalYearStartMonth=12),
        "unexpected field 'exprr'": lambda d: d["panels"][1]["targets"][0].update(exprr="up"),
    }
    for message, mistake in mistakes.items():
        broken = json.loads(shipped)
        mistake(broken)
        path = tmp_path / "broken.json"
        path.write_text(json.dumps(broken))
        proc = subprocess.run([str(checker), str(path)], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 1, (message, proc.stdout)
        assert message in proc.stdout
    assert dashboard["__requires"][0] == {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "12.3.0"}
