"""The Prometheus adapter: instant queries over the HTTP API and the measurements of one analysis tick.

Only this module talks to Prometheus. Every failure (timeout, connection refused, HTTP error, a body
that is not the API's JSON, a query error, more than one series) becomes :class:`PrometheusError`, which
the measurement turns into an Error verdict. An empty vector or NaN is *no data* (``None``), which the
decision core treats as Inconclusive, never as a pass.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime
from typing import Any

import aiohttp

from modelyard_operator.api.modeldeployment import ModelDeployment
from modelyard_operator.rollout.decision import MetricObservation, parse_time
from modelyard_operator.rollout.measurement import Measurement
from modelyard_operator.rollout.promql import (
    QueryError,
    evidence_query,
    freshness_query,
    render_metric,
)
from modelyard_operator.rollout.steps import analysis_of, applicable, shadowing
from modelyard_operator.rollout.transitions import requested_weight


class PrometheusError(Exception):
    """A query could not be answered."""


class Prometheus:
    """A small client of ``/api/v1/query``."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def query(self, promql: str) -> float | None:
        """The single value of an instant query (evaluated now); None for an empty result or NaN."""
        params = {"query": promql}
        try:
            async with self._client().post(f"{self.url}/api/v1/query", data=params) as resp:
                text = await resp.text()
                status = resp.status
        except TimeoutError as exc:
            raise PrometheusError(f"Prometheus at {self.url} did not answer within {self.timeout:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: {exc}") from exc
        return parse_response(status, text)


def parse_response(status: int, text: str) -> float | None:
    """The value of an ``/api/v1/query`` answer (pure, so it can be tested without a server)."""
    try:
        body: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PrometheusError(f"HTTP {status}: not a Prometheus API response: {text[:200]!r}") from exc
    if not isinstance(body, dict):
        raise PrometheusError(f"HTTP {status}: unexpected response {text[:200]!r}")
    if body.get("status") != "success":
        raise PrometheusError(f"HTTP {status}: {body.get('errorType', 'error')}: {body.get('error', text[:200])}")
    data = body.get("data") or {}
    kind: Any = data.get("resultType")
    result: Any = data.get("result")
    try:
        if kind == "scalar":
            value = float(result[1])
        elif kind == "vector":
            if not result:
                return None
            if len(result) > 1:
                raise PrometheusError(f"the query returned {len(result)} series; aggregate it to one (e.g. sum)")
            value = float(result[0]["value"][1])
        else:
            raise PrometheusError(f"unsupported result type {kind!r} (use an instant vector or scalar)")
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise PrometheusError(f"malformed {kind} result: {str(result)[:200]}") from exc
    return None if math.isnan(value) else value


async def measure(prom: Prometheus | None, md: ModelDeployment, now: datetime) -> Measurement:
    """Evidence, freshness and every analysis metric of the canary (and the stable when compared)."""
    status = md.status
    canary, stable = status.canary_version, status.stable_version
    if canary is None:
        return Measurement(None, None, ())
    if prom is None:
        return Measurement(None, None, (), "no Prometheus configured (--prometheus-url / MODELYARD_PROMETHEUS_URL)")
    analysis = analysis_of(md.spec)
    ns, model = md.metadata.namespace, md.spec.model
    started = parse_time(status.step.started_at if status.step else None, now)
    since = max(1.0, (now - started).total_seconds())
    post = bool(status.step and status.step.post_promotion)
    shadow = shadowing(md.spec, canary, requested_weight(status), post_promotion=post)
    try:
        requests, newest = await asyncio.gather(
            prom.query(evidence_query(model=model, version=canary, namespace=ns, since_seconds=since, shadow=shadow)),
            prom.query(freshness_query(model=model, version=canary, namespace=ns, shadow=shadow)),
        )
    except PrometheusError as exc:
        return Measurement(None, None, (), str(exc))
    age = None if newest is None else max(0.0, now.timestamp() - newest)

    async def one(metric: Any) -> MetricObservation:
        try:
            q = render_metric(metric, model=model, version=canary, namespace=ns, window=analysis.window)
            value = await prom.query(q)
            other = None
            if metric.compare is not None and stable is not None:
                q = render_metric(metric, model=model, version=stable, namespace=ns, window=analysis.window)
                other = await prom.query(q)
        except (PrometheusError, QueryError) as exc:
            return MetricObservation(metric.name, error=str(exc))
        return MetricObservation(metric.name, value, other)

    metrics = await asyncio.gather(*(one(m) for m in applicable(analysis.metrics, shadow=shadow)))
    return Measurement(requests if requests is not None else 0.0, age, tuple(metrics))
