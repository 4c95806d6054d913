"""What one analysis tick measured (pure data, produced by the Prometheus adapter)."""

from __future__ import annotations

from dataclasses import dataclass

from modelyard_operator.rollout.decision import MetricObservation


@dataclass(frozen=True)
class Measurement:
    requests: float | None  # canary requests since the step started
    sample_age_seconds: float | None  # age of the canary's newest scraped sample
    metrics: tuple[MetricObservation, ...]
    backend_error: str | None = None
