"""PromQL rendering and traffic-router rendering of the rollout package (pure)."""

from __future__ import annotations

import re

import pytest

from modelyard_operator.api.modeldeployment import GatewayAPISpec, MetricSpec
from modelyard_operator.rollout.promql import (
    QueryError,
    evidence_query,
    freshness_query,
    render_metric,
)
from modelyard_operator.rollout.routers import model_config_yaml, render_http_route, version_weights

SEL = 'model="fraud",version="2",namespace="ml"'
BUCKETS = f"modelyard_inference_request_duration_seconds_bucket{{{SEL}}}"
WHERE = {"model": "fraud", "version": "2", "namespace": "ml", "window": "1m"}


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ({"template": "errorRate", "max": 0.01},
         f'(sum(rate(modelyard_inference_requests_total{{{SEL},code=~"5..|INTERNAL|UNAVAILABLE|UNKNOWN|DATA_LOSS"}}[1m]))'
         " or vector(0)) / "
         f"sum(rate(modelyard_inference_requests_total{{{SEL}}}[1m]))"),
        ({"template": "latencyP95", "max": 0.1},
         f"histogram_quantile(0.95, sum by (le) (rate({BUCKETS}[1m])))"),
        ({"template": "latencyP99", "max": 0.1},
         f"histogram_quantile(0.99, sum by (le) (rate({BUCKETS}[1m])))"),
        ({"query": 'sum(rate(x{model="{{model}}",version="{{ version }}",ns="{{namespace}}"}[{{window}}]))', "min": 1},
         'sum(rate(x{model="fraud",version="2",ns="ml"}[1m]))'),
    ],
)  # fmt: skip
def test_queries_render(metric: dict[str, object], expected: str) -> None:
    assert render_metric(MetricSpec.model_validate({"name": "m", **metric}), **WHERE) == expected


@pytest.mark.parametrize(
    ("code", "server_error"),
    [("200", False), ("OK", False), ("400", False), ("401", False), ("403", False), ("404", False), ("408", False),
     ("413", False), ("415", False), ("429", False), ("499", False), ("INVALID_ARGUMENT", False),
     ("NOT_FOUND", False), ("RESOURCE_EXHAUSTED", False), ("CANCELLED", False), ("DEADLINE_EXCEEDED", False),
     ("500", True), ("502", True), ("503", True), ("504", True), ("INTERNAL", True), ("UNAVAILABLE", True),
     ("UNKNOWN", True), ("5000", False), ("1500", False)],
)  # fmt: skip
def test_error_rate_counts_server_errors_only(code: str, server_error: bool) -> None:
    """A client that sends only bad requests must not make a version's error rate rise (no forced rollback): the
    template's code matcher, anchored as Prometheus anchors regexes, selects 5xx and gRPC server failures only."""
    query = render_metric(MetricSpec(name="m", template="errorRate", max=1), **WHERE)
    matcher = re.search(r'code=~"([^"]*)"', query)
    assert matcher is not None
    assert "code!~" not in query
    assert (re.fullmatch(matcher.group(1), code) is not None) is server_error


def test_label_values_are_escaped() -> None:
    query = render_metric(MetricSpec(name="m", template="errorRate", max=1), **{**WHERE, "version": 'a"b\\c'})
    assert 'version="a\\"b\\\\c"' in query


def test_unknown_placeholder_is_a_clear_error() -> None:
    with pytest.raises(QueryError, match=r"unknown placeholder \{\{pod\}\}"):
        render_metric(MetricSpec(name="m", query="up{pod='{{pod}}'}", min=1), **WHERE)


def test_evidence_and_freshness_queries() -> None:
    assert evidence_query(model="fraud", version="2", namespace="ml", since_seconds=90.2) == (
        f"sum(increase(modelyard_inference_requests_total{{{SEL}}}[91s]))"
    )
    assert evidence_query(model="fraud", version="2", namespace="ml", since_seconds=0).endswith("[1s]))")
    assert freshness_query(model="fraud", version="2", namespace="ml") == (
        f"max(timestamp(modelyard_inference_requests_total{{{SEL}}}))"
    )


def test_http_route_weights_mirror_and_headers() -> None:
    settings = GatewayAPISpec.model_validate({
        "parentRefs": [{"name": "gw", "namespace": "infra"}], "hostnames": ["fraud.example.com"],
        "canaryHeaders": [{"name": "x-canary", "value": "always"}], "mirrorPercent": 5})  # fmt: skip
    route = render_http_route(name="fraud", namespace="ml", labels={"a": "b"}, owner={"kind": "ModelDeployment"},
                              port=8080, settings=settings, canary_weight=25, has_canary=True)  # fmt: skip
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "infra"}]
    header_rule, main = route["spec"]["rules"]
    assert header_rule["matches"] == [{"headers": [{"type": "Exact", "name": "x-canary", "value": "always"}]}]
    assert [b["name"] for b in header_rule["backendRefs"]] == ["fraud-canary"]
    assert [(b["name"], b["weight"]) for b in main["backendRefs"]] == [("fraud-stable", 75), ("fraud-canary", 25)]
    assert main["filters"][0]["requestMirror"] == {
        "backendRef": {"group": "", "kind": "Service", "name": "fraud-canary", "port": 8080},
        "percent": 5,
    }
    plain = render_http_route(name="fraud", namespace="ml", labels={}, owner={}, port=8080, settings=settings,
                              canary_weight=0, has_canary=False)  # fmt: skip
    assert plain["spec"]["rules"] == [
        {"backendRefs": [{"group": "", "kind": "Service", "name": "fraud-stable", "port": 8080, "weight": 100}]}
    ]


def test_in_pod_version_weights() -> None:
    assert version_weights("1", "2", 10) == {"1": 90, "2": 10}
    assert version_weights("1", "2", 0) == {"1": 100}
    assert version_weights("1", "2", 100) == {"2": 100}
    assert version_weights("1", None, 50) == {"1": 100}
    assert model_config_yaml({"2": 10, "1": 90}) == 'version_weights: {"1": 90, "2": 10}\n'


def test_agreement_template_and_shadow_evidence() -> None:
    query = render_metric(MetricSpec(name="a", template="agreement", min=0.99), **WHERE)
    assert query == (
        f'(sum(increase(modelyard_shadow_comparisons_total{{{SEL},result="agree"}}[1m])) or vector(0)) / '
        f'sum(increase(modelyard_shadow_comparisons_total{{{SEL},result=~"agree|disagree|error"}}[1m]))'
    )
    assert evidence_query(model="fraud", version="2", namespace="ml", since_seconds=30, shadow=True) == (
        f'sum(increase(modelyard_shadow_comparisons_total{{{SEL},result=~"agree|disagree|error"}}[30s]))'
    )
    assert freshness_query(model="fraud", version="2", namespace="ml", shadow=True) == (
        f"max(timestamp(modelyard_shadow_comparisons_total{{{SEL}}}))"
    )


def test_shadow_setting_is_a_config_the_server_reads() -> None:
    """The inPod ConfigMap's shadow line, parsed by the server's own config parser."""
    import yaml

    from modelyard_runtime.modelconfig import ShadowConfig, parse_model_config

    text = model_config_yaml({"7": 100}, {"version": "8", "percent": 50, "compare": "top1", "max_abs_diff": 0.001})
    assert (
        text
        == 'version_weights: {"7": 100}\nshadow: {version: "8", percent: 50, compare: "top1", max_abs_diff: 0.001}\n'
    )
    config = parse_model_config(yaml.safe_load(text))
    assert config.version_weights == {"7": 100}
    assert config.shadow == ShadowConfig(version="8", percent=50.0, compare="top1", max_abs_diff=0.001)
