"""The steps a strategy runs and when the analysis measures (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from modelyard_operator.api.common import parse_duration
from modelyard_operator.api.modeldeployment import (
    AnalysisSpec,
    AnalyzeStep,
    MetricSpec,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    PauseStep,
    RolloutStep,
)
from modelyard_operator.rollout.decision import parse_time


def effective_steps(spec: ModelDeploymentSpec) -> list[RolloutStep]:
    """The steps a strategy runs: canary's own; blueGreen as a full copy at 0%, analysis, (approval)."""
    rollout = spec.rollout
    if rollout.strategy == "canary":
        return list(rollout.steps)
    if rollout.strategy == "blueGreen":
        bg = rollout.blue_green
        steps = [RolloutStep(set_weight=0), RolloutStep(analyze=bg.analyze if bg else AnalyzeStep())]
        if bg is not None and not bg.auto_promote:
            steps.append(RolloutStep(pause=PauseStep()))
        return steps
    return []


def analysis_of(spec: ModelDeploymentSpec) -> AnalysisSpec:
    return spec.rollout.analysis or AnalysisSpec()


def measurement_due(spec: ModelDeploymentSpec, state: ModelDeploymentStatus, now: datetime) -> bool:
    """Whether the controller should query the metrics backend this tick (once per analysis interval)."""
    if state.canary_version is None:
        return False
    last = state.analysis.last_measured_at if state.analysis else None
    if last is None:
        return True
    interval = parse_duration(analysis_of(spec).interval)
    return now - parse_time(last, now - interval) >= interval


def shadowing(spec: ModelDeploymentSpec, canary: str | None, weight: int, *, post_promotion: bool = False) -> bool:
    """Whether the canary shadows now: ``rollout.shadow`` set (inPod router), and the canary at weight 0."""
    rollout = spec.rollout
    return (rollout.shadow is not None and rollout.traffic_router == "inPod" and canary is not None and weight == 0
            and not post_promotion)  # fmt: skip


def applicable(metrics: Sequence[MetricSpec], *, shadow: bool) -> list[MetricSpec]:
    """The metrics measured now: while the canary shadows, the ``agreement`` ones only (it serves no client, so its
    request metrics have no data); otherwise all but those (nothing is copied to it)."""
    return [m for m in metrics if (m.template == "agreement") == shadow]
