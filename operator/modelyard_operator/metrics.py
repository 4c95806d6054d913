"""The operator's own Prometheus metrics, on a registry passed in (never the global one)."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LAG_INTERVAL_SECONDS = 0.25


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconcile_duration = Histogram(
            "modelyard_operator_reconcile_duration_seconds",
            "Time to reconcile one object.",
            ["kind"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.reconciles_joined = Counter(
            "modelyard_operator_reconciles_joined_total",
            "ModelDeployment reconciles an event did not start: another one waited for its turn and reads the same.",
            registry=self.registry,
        )
        self.rollout_decisions = Counter(
            "modelyard_rollout_decisions_total", "Rollout decisions taken.", ["decision"], registry=self.registry
        )
        self.rollouts = Counter(
            "modelyard_rollouts_total", "Rollouts finished, by outcome.", ["outcome"], registry=self.registry
        )
        self.validations = Counter(
            "modelyard_model_validations_total",
            "ModelVersion validations finished, by outcome (Ready or the failure reason).",
            ["outcome"],
            registry=self.registry,
        )
        self.analysis_verdicts = Counter(
            "modelyard_analysis_verdicts_total",
            "Analysis verdicts per metric.",
            ["metric", "verdict"],
            registry=self.registry,
        )
        self.canary_weight = Gauge(
            "modelyard_rollout_canary_weight",
            "Percent of a ModelDeployment's traffic its canary gets (status.weights.canary; 0 without a rollout).",
            ["namespace", "modeldeployment", "model"],
            registry=self.registry,
        )
        self.event_loop_lag = Histogram(
            "modelyard_operator_event_loop_lag_seconds",
            f"How late the event loop ran a callback scheduled every {LAG_INTERVAL_SECONDS} s.",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    async def watch_event_loop_lag(self) -> None:
        """Sleep a fixed interval, forever, and observe how much later than asked the loop woke us up."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + LAG_INTERVAL_SECONDS
            await asyncio.sleep(LAG_INTERVAL_SECONDS)
            self.event_loop_lag.observe(max(0.0, loop.time() - asked))

    def observe_weights(self, namespace: str, name: str, model: str, status: dict[str, Any]) -> None:
        """The canary weight from a status the operator wrote (only when the status names the weights)."""
        weights = status.get("weights")
        if isinstance(weights, dict) and isinstance(weights.get("canary"), int | float):
            self.canary_weight.labels(namespace, name, model).set(weights["canary"])

    def forget_model_deployment(self, namespace: str, name: str) -> None:
        """Drop the series of a deleted ModelDeployment (one per object, so they must not outlive it)."""
        for labels in [s.labels for m in self.canary_weight.collect() for s in m.samples]:
            if labels.get("namespace") == namespace and labels.get("modeldeployment") == name:
                self.canary_weight.remove(namespace, name, labels["model"])
