"""The operator's own Prometheus metrics, on a registry passed in (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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
