"""The rollout decision's vocabulary (pure data): verdicts, decision kinds and reasons, what the controller
observed, and the decision it gets back. Times in ``status`` are RFC 3339 UTC strings at second precision."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from modelyard_operator.api.modeldeployment import ModelDeploymentStatus
from modelyard_operator.rollout.actions import Action

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Verdict(enum.StrEnum):
    PASS = "Pass"  # noqa: S105  (a verdict, not a password)
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class Inconclusive(enum.StrEnum):
    NO_DATA = "NoData"
    LOW_EVIDENCE = "LowEvidence"
    STALE = "Stale"


class Kind(enum.StrEnum):
    """What the decision does."""

    STEADY = "Steady"
    START = "Start"
    ADVANCE = "Advance"
    HOLD = "Hold"
    PAUSE = "Pause"
    PROMOTE = "Promote"
    ROLLBACK = "RollBack"


class Reason(enum.StrEnum):
    STABLE = "Stable"
    STARTED = "RolloutStarted"
    SUPERSEDED = "Superseded"
    SPEC_REVERTED = "SpecReverted"
    VERSION_ROLLED_BACK = "VersionRolledBack"
    WEIGHT_SET = "WeightSet"
    CANARY_NOT_READY = "CanaryNotReady"
    PAUSING = "Pausing"
    PAUSE_ELAPSED = "PauseElapsed"
    AWAITING_APPROVAL = "AwaitingApproval"
    APPROVED = "Approved"
    ANALYSIS_PASSED = "AnalysisPassed"
    ANALYZING = "Analyzing"
    LOW_EVIDENCE = "LowEvidence"
    INCONCLUSIVE = "AnalysisInconclusive"
    INCONCLUSIVE_PAST_MAX = "InconclusivePastMaxDuration"
    BACKEND_ERROR = "MetricsBackendError"
    CRITICAL_FAILED = "CriticalMetricFailed"
    POLICY_FAILED = "FailurePolicyReached"
    ABORTED = "Aborted"
    PROMOTED = "Promoted"
    PROMOTED_FULL = "PromotedFull"
    POST_PROMOTION = "PostPromotionAnalysis"
    POST_PROMOTION_FAILED = "PostPromotionFailed"
    STEP_RESTARTED = "StepRestarted"


@dataclass(frozen=True)
class MetricObservation:
    """One metric measured for the canary (and the stable version when it compares)."""

    name: str
    canary: float | None = None
    stable: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Observations:
    """What the controller saw this tick. ``measured`` is False between analysis intervals."""

    canary_ready: int = 0
    stable_ready: int = 0
    measured: bool = False
    requests: float | None = None  # canary requests since the step started
    sample_age_seconds: float | None = None  # age of the canary's newest scraped sample
    metrics: tuple[MetricObservation, ...] = ()
    backend_error: str | None = None
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class MetricEvaluation:
    name: str
    verdict: Verdict
    reason: str | None = None
    canary: float | None = None
    stable: float | None = None
    message: str = ""
    dry_run: bool = False


@dataclass(frozen=True)
class Target:
    """What should run: the versions, the canary's traffic weight and the weight to provision for."""

    stable: str | None
    canary: str | None
    weight: int  # canary traffic weight now (only ever on Ready backends)
    provision_weight: int  # canary capacity to prepare (the step's weight while it becomes Ready)
    full: bool = False  # blueGreen: the canary is a full copy


@dataclass(frozen=True)
class Decision:
    kind: Kind
    reason: Reason
    message: str
    status: ModelDeploymentStatus
    target: Target
    metrics: tuple[MetricEvaluation, ...] = ()
    outcome: str | None = None  # Promoted, RolledBack, Aborted, Superseded: a rollout ended
    analysis_healthy: tuple[str, str, str] = ("True", "NoAnalysis", "no analysis running")
    paused: bool = False
    actions: tuple[tuple[Action, str], ...] = ()  # (action, result) handled in this decision
    measured: bool = False  # the metrics were measured for this decision (count its verdicts once)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return default
