"""PromQL for the analysis metrics (pure string rendering).

Built-in templates read the inference server's metrics (DESIGN.md §3) selected by ``model`` and
``version`` (labels the server sets) and ``namespace`` (added by the scrape config's relabelling).
Raw queries use ``{{model}}``, ``{{version}}``, ``{{namespace}}`` and ``{{window}}`` placeholders.
"""

from __future__ import annotations

import math
import re

from modelyard_operator.api.modeldeployment import MetricSpec

REQUESTS = "modelyard_inference_requests_total"
COMPARISONS = "modelyard_shadow_comparisons_total"  # shadowed requests, by result (the server's shadow traffic)
COMPARED = 'result=~"agree|disagree|error"'  # skipped copies were not compared
DURATION = "modelyard_inference_request_duration_seconds"
# Server errors: HTTP 5xx (the server labels gRPC calls with the HTTP status of their outcome: INTERNAL is 500,
# UNAVAILABLE 503), and the gRPC names for servers that label calls by gRPC status. Client errors (4xx,
# INVALID_ARGUMENT, NOT_FOUND, ...) and abandoned requests (499) are not the version's fault: counting them would let
# any client force a rollback by sending bad requests. A Prometheus regex matches the whole value.
SERVER_ERROR_CODES = "5..|INTERNAL|UNAVAILABLE|UNKNOWN|DATA_LOSS"

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_KNOWN = ("model", "version", "namespace", "window")


class QueryError(ValueError):
    """A query cannot be rendered (unknown placeholder)."""


def label_value(value: str) -> str:
    """A PromQL double-quoted string literal's contents."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(model: str, version: str, namespace: str, extra: str = "") -> str:
    parts = [f'model="{label_value(model)}"', f'version="{label_value(version)}"']
    parts.append(f'namespace="{label_value(namespace)}"')
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def range_seconds(seconds: float) -> str:
    """A PromQL range of whole seconds (at least 1s)."""
    return f"{max(1, math.ceil(seconds))}s"


def render_template(template: str, *, model: str, version: str, namespace: str, window: str) -> str:
    sel = selector(model, version, namespace)
    if template == "errorRate":
        bad = selector(model, version, namespace, f'code=~"{SERVER_ERROR_CODES}"')
        # No error series at all means no errors (0), not no data; no requests at all stays no data.
        return f"(sum(rate({REQUESTS}{bad}[{window}])) or vector(0)) / sum(rate({REQUESTS}{sel}[{window}]))"
    if template in ("latencyP95", "latencyP99"):
        q = "0.95" if template == "latencyP95" else "0.99"
        return f"histogram_quantile({q}, sum by (le) (rate({DURATION}_bucket{sel}[{window}])))"
    if template == "agreement":
        agree = selector(model, version, namespace, 'result="agree"')
        compared = selector(model, version, namespace, COMPARED)
        # no "agree" series but comparisons: 0 agreement, not no data
        return (f"(sum(increase({COMPARISONS}{agree}[{window}])) or vector(0)) / "
                f"sum(increase({COMPARISONS}{compared}[{window}]))")  # fmt: skip
    raise QueryError(f"unknown template {template!r}")


def render_raw(query: str, *, model: str, version: str, namespace: str, window: str) -> str:
    values = {"model": label_value(model), "version": label_value(version), "namespace": label_value(namespace),
              "window": window}  # fmt: skip

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise QueryError(f"unknown placeholder {{{{{key}}}}}: use one of {', '.join(_KNOWN)}")
        return values[key]

    return _PLACEHOLDER.sub(sub, query)


def render_metric(metric: MetricSpec, *, model: str, version: str, namespace: str, window: str) -> str:
    """The query of one analysis metric for one version."""
    if metric.template is not None:
        return render_template(metric.template, model=model, version=version, namespace=namespace, window=window)
    if metric.query is None:
        raise QueryError(f"metric {metric.name} has neither template nor query")
    return render_raw(metric.query, model=model, version=version, namespace=namespace, window=window)


def evidence_query(*, model: str, version: str, namespace: str, since_seconds: float, shadow: bool = False) -> str:
    """Requests the version served since the step started (its evidence); while it shadows, the requests it was
    compared on."""
    if shadow:
        sel = selector(model, version, namespace, COMPARED)
        return f"sum(increase({COMPARISONS}{sel}[{range_seconds(since_seconds)}]))"
    sel = selector(model, version, namespace)
    return f"sum(increase({REQUESTS}{sel}[{range_seconds(since_seconds)}]))"


def freshness_query(*, model: str, version: str, namespace: str, shadow: bool = False) -> str:
    """Time of the newest sample of the version's request counter, or comparison counter while it shadows (to tell
    stale data)."""
    return f"max(timestamp({COMPARISONS if shadow else REQUESTS}{selector(model, version, namespace)}))"
