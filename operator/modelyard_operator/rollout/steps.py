"""The steps a strategy runs and when the analysis measures (pure)."""

from __future__ import annotations

from datetime import datetime

from modelyard_operator.api.common import parse_duration
from modelyard_operator.api.modeldeployment import (
    AnalysisSpec,
    AnalyzeStep,
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
