"""The Grafana dashboard of Modelyard, as data: ``make generate`` writes it to the chart (charts/modelyard/dashboards/,
shipped as a ConfigMap for Grafana's sidecar) and to dashboards/ (to import by hand).

One row per question a user asks of a model: how much traffic, how many failures, how fast, where the time goes
(queue vs compute), how well batching works, what the model costs in memory and load time, and what the rollouts
decided. Every query filters on the ``namespace`` and ``model`` variables; tests run each against a real Prometheus.
"""

from __future__ import annotations

from typing import Any

GRAFANA_VERSION = "12.3.0"  # the Grafana the dashboard declares (``__requires``) and its schemaVersion: the schema
# hack/dashboard-check validates it against (Grafana 12.3's dashboard kind, through the Foundation SDK)
SCHEMA_VERSION = 42
UID = "modelyard-models"

SEL = 'namespace=~"$namespace", model=~"$model"'
RI = "$__rate_interval"


def rate(metric: str, extra: str = "", by: str = "model, version") -> str:
    sel = SEL + (f", {extra}" if extra else "")
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{RI}]))"


def share(codes: str) -> str:
    """The share of requests answered with ``codes``: 0, not nothing, when there were none."""
    total = rate("modelyard_inference_requests_total")
    part = rate("modelyard_inference_requests_total", f'code=~"{codes}"')
    return f"({part} or {total} * 0) / {total}"


def quantile(q: str, metric: str) -> str:
    return f"histogram_quantile({q}, {rate(metric + '_bucket', by='model, version, le')})"


# (title, unit, [(legend, expr)], width)
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]], int]]]] = [
    ("Traffic and errors", [
        ("Requests per second", "reqps", [("{{model}} v{{version}}", rate("modelyard_inference_requests_total"))], 8),
        ("Server errors (5xx)", "percentunit", [("{{model}} v{{version}}", share("5.."))], 8),
        ("Client errors (4xx)", "percentunit", [("{{model}} v{{version}}", share("4.."))], 8),
    ]),
    ("Latency", [
        ("Request latency", "s", [
            (f"p{q[2:]} {{{{model}}}} v{{{{version}}}}", quantile(q, "modelyard_inference_request_duration_seconds"))
            for q in ("0.50", "0.95", "0.99")
        ], 12),
        ("Queue vs compute (p95)", "s", [
            ("queue {{model}} v{{version}}", quantile("0.95", "modelyard_inference_queue_duration_seconds")),
            ("compute {{model}} v{{version}}", quantile("0.95", "modelyard_inference_compute_duration_seconds")),
        ], 12),
    ]),
    ("Batching and load", [
        ("Rows per execution (mean batch size)", "short", [(
            "{{model}} v{{version}}",
            f"{rate('modelyard_inference_batch_size_sum')} / {rate('modelyard_inference_batch_size_count')}",
        )], 12),
        ("Requests in flight", "short", [
            ("{{model}} v{{version}}", f"sum by (model, version) (modelyard_inference_inflight_requests{{{SEL}}})")
        ], 12),
    ]),
    ("Model cost", [
        ("Model memory", "bytes", [
            ("{{model}} v{{version}} {{pod}}", f"sum by (model, version, pod) (modelyard_model_memory_bytes{{{SEL}}})")
        ], 12),
        ("Model load time (mean)", "s", [(
            "{{model}} v{{version}}",
            f"sum by (model, version) (modelyard_model_load_duration_seconds_sum{{{SEL}}})"
            f" / sum by (model, version) (modelyard_model_load_duration_seconds_count{{{SEL}}})",
        )], 12),
    ]),
    ("Rollouts", [
        ("Canary weight", "percent", [(
            "{{namespace}}/{{modeldeployment}}",
            'max by (namespace, modeldeployment) (modelyard_rollout_canary_weight{namespace=~"$namespace", '
            'model=~"$model"})',
        )], 12),
        ("Rollout decisions", "short", [(
            "{{decision}}", f"sum by (decision) (increase(modelyard_rollout_decisions_total[{RI}]))",
        )], 12),
    ]),
]  # fmt: skip


def _panel(pid: int, title: str, unit: str, targets: list[tuple[str, str]], x: int, y: int, w: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}, "overrides": []},
        "options": {"legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "expr": expr, "legendFormat": legend, "range": True}
            for i, (legend, expr) in enumerate(targets)
        ],
    }  # fmt: skip


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "query": {"query": query, "refId": f"{name}-query"},
        "datasource": {"type": "prometheus", "uid": "${datasource}"}, "refresh": 2, "includeAll": True,
        "multi": True, "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }  # fmt: skip


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row_title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})  # fmt: skip
        pid, y, x = pid + 1, y + 1, 0
        for title, unit, targets, w in row:
            panels.append(_panel(pid, title, unit, targets, x, y, w))
            pid, x = pid + 1, x + w
        y += 8
    return {
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        ],
        "uid": UID,
        "title": "Modelyard: models and rollouts",
        "description": "Traffic, errors, latency, batching, memory and rollouts per model and version (Modelyard).",
        "tags": ["modelyard", "inference"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"selected": True, "text": "Prometheus", "value": "prometheus"},
                },
                _variable("namespace", "Namespace", "label_values(modelyard_inference_requests_total, namespace)"),
                _variable(
                    "model", "Model", 'label_values(modelyard_inference_requests_total{namespace=~"$namespace"}, model)'
                ),
            ]
        },
        "panels": panels,
    }
