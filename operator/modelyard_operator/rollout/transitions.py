"""Rollout state transitions (pure): start, next step, rollback and promotion on a working copy of the
status, and the Decision with the status it leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from modelyard_operator.api.modeldeployment import (
    AnalysisStatus,
    DecisionStatus,
    HandledAction,
    HistoryEntry,
    MetricCounters,
    MetricResult,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    StepStatus,
    Weights,
)
from modelyard_operator.rollout.actions import Action
from modelyard_operator.rollout.decision import (
    Decision,
    Kind,
    MetricEvaluation,
    Observations,
    Reason,
    Target,
    format_time,
)
from modelyard_operator.rollout.steps import analysis_of, effective_steps
from modelyard_operator.rollout.verdicts import analysis_health, count

HISTORY_LIMIT = 32
NONCE_LIMIT = 16


def requested_weight(state: ModelDeploymentStatus) -> int:
    """The canary weight the steps have set so far (statuses written before ``requestedWeight`` existed held
    it in ``weights.canary``)."""
    if state.canary_version is None:
        return 0
    if state.requested_weight is not None:
        return state.requested_weight
    return state.weights.canary if state.weights else 0


@dataclass
class Work:
    """The mutable working copy of the rollout part of the status."""

    phase: str | None
    stable: str | None
    canary: str | None
    weight: int
    step: StepStatus | None
    analysis: AnalysisStatus | None
    history: list[HistoryEntry]
    rolled_back: list[str]
    nonces: list[str]
    last_action: HandledAction | None
    handled: list[tuple[Action, str]] = field(default_factory=list)


class Transitions:
    """The working state of one decision, the transitions between rollout states, and the Decision they make
    (the rules that choose a transition live in ``decide``)."""

    def __init__(
        self, spec: ModelDeploymentSpec, state: ModelDeploymentStatus, obs: Observations, now: datetime
    ) -> None:
        self.spec, self.state, self.obs, self.now = spec, state, obs, now
        self.stamp = format_time(now)
        self.steps = effective_steps(spec)
        self.analysis = analysis_of(spec)
        self.router = spec.rollout.traffic_router
        self.full = spec.rollout.strategy == "blueGreen" or self.router == "inPod"
        self.w = Work(
            phase=state.phase,
            stable=state.stable_version,
            canary=state.canary_version,
            weight=requested_weight(state),
            step=state.step if state.canary_version else None,
            analysis=state.analysis if state.canary_version else None,
            history=list(state.history),
            rolled_back=list(state.rolled_back_versions),
            nonces=list(state.handled_nonces),
            last_action=state.last_handled_action,
        )
        self.evaluations: tuple[MetricEvaluation, ...] = ()
        self.provision = self.w.weight

    # --- building the result -------------------------------------------------------------------------
    def _status(self, kind: Kind, reason: Reason, message: str) -> ModelDeploymentStatus:
        w = self.w
        decision = DecisionStatus(
            verdict=str(kind),
            reason=str(reason),
            message=message[:2048],
            at=self.stamp,
            requests=count(self.obs.requests) if self.obs.measured else None,
            metrics=[
                MetricResult(
                    name=e.name,
                    canary=e.canary,
                    stable=e.stable,
                    n=count(self.obs.requests),
                    verdict=str(e.verdict),
                    reason=e.reason,
                    message=e.message[:1024] or None,
                )
                for e in self.evaluations
            ],
        )
        previous = self.state.last_decision
        if reason == Reason.VERSION_ROLLED_BACK and previous is not None and previous.verdict == Kind.ROLLBACK:
            decision = previous  # the rollback's reason and numbers stay visible while it holds
        elif (
            kind in (Kind.STEADY, Kind.HOLD)
            and previous is not None
            and decision.model_copy(update={"at": previous.at}) == previous
        ):
            # The same decision again (a resync, a relist, a restart): it keeps the time it was first made, so a
            # steady ModelDeployment's status is not rewritten every resync (``at`` says since when it holds).
            decision = previous
        return self.state.model_copy(
            update={
                "phase": w.phase,
                "stable_version": w.stable,
                "canary_version": w.canary,
                "weights": Weights(stable=100 - w.weight, canary=w.weight),  # the controller reports the effective
                "requested_weight": w.weight if w.canary else None,
                "step": w.step,
                "analysis": w.analysis,
                "last_decision": decision,
                "last_handled_action": w.last_action,
                "handled_nonces": w.nonces[-NONCE_LIMIT:],
                "history": w.history[-HISTORY_LIMIT:],
                "rolled_back_versions": w.rolled_back[-HISTORY_LIMIT:],
            }
        )

    def _done(
        self,
        kind: Kind,
        reason: Reason,
        message: str,
        *,
        outcome: str | None = None,
        healthy: tuple[str, str, str] | None = None,
        paused: bool = False,
    ) -> Decision:
        w = self.w
        if healthy is None:
            healthy = self._health()
        target = Target(
            stable=w.stable,
            canary=w.canary,
            weight=w.weight if w.canary else 0,
            provision_weight=max(self.provision, w.weight) if w.canary else 0,
            full=self.spec.rollout.strategy == "blueGreen",
        )
        return Decision(
            kind=kind,
            reason=reason,
            message=message,
            status=self._status(kind, reason, message),
            target=target,
            metrics=self.evaluations,
            outcome=outcome,
            analysis_healthy=healthy,
            paused=paused,
            actions=tuple(w.handled),
            measured=self.obs.measured,
        )

    def _health(self) -> tuple[str, str, str]:
        if self.w.canary is None:
            return ("True", "NoAnalysis", "no rollout in progress")
        return analysis_health(self.evaluations, self.obs.backend_error)

    # --- transitions ---------------------------------------------------------------------------------
    def _fresh_counters(self, keep: AnalysisStatus | None = None) -> AnalysisStatus:
        old = {c.name: c for c in (keep.metrics if keep else [])}
        counters = [
            MetricCounters(name=m.name, failures=old[m.name].failures if m.name in old else 0)
            for m in self.analysis.metrics
        ]
        return AnalysisStatus(last_measured_at=None, metrics=counters)

    def _start(self, version: str, *, promote_full: bool = False) -> Decision:
        w = self.w
        w.canary, w.weight, w.phase = version, 0, "Progressing"
        w.step = StepStatus(index=len(self.steps) if promote_full else 0, started_at=self.stamp,
                            promote_full=promote_full)  # fmt: skip
        w.analysis = self._fresh_counters()
        # The first step's pods start with the rollout: a canary Deployment created at 0 pods and raised a tick
        # later costs a tick, and under an autoscaler (which leaves replicas out of the apply) it would start one
        # pod (the API server's default) only to scale it away.
        first = self.steps[w.step.index] if w.step.index < len(self.steps) else None
        self.provision = first.set_weight if first is not None and first.set_weight is not None else 0
        message = f"rolling out version {version} over stable {w.stable}"
        return self._done(Kind.START, Reason.STARTED, message, healthy=("Unknown", "NotMeasured", "starting"))

    def _next_step(self) -> None:
        w = self.w
        assert w.step is not None
        w.step = StepStatus(index=w.step.index + 1, started_at=self.stamp, promote_full=w.step.promote_full)
        w.analysis = self._fresh_counters(w.analysis)

    def _end(self, outcome: str) -> None:
        w = self.w
        assert w.canary is not None
        w.history.append(HistoryEntry(version=w.canary, outcome=outcome, at=self.stamp))

    def _rollback(self, reason: Reason, message: str, *, outcome: str = "RolledBack", mark: bool = True) -> Decision:
        w = self.w
        version = w.canary
        assert version is not None
        self._end(outcome)
        if mark and version not in w.rolled_back:
            w.rolled_back.append(version)
        w.canary, w.weight, w.step, w.analysis = None, 0, None, None
        w.phase = "RolledBack" if self.spec.version == version else "Healthy"
        self.provision = 0
        text = f"rolled back {version} to stable {w.stable}: {message}"
        return self._done(Kind.ROLLBACK, reason, text, outcome=outcome, healthy=self._health_after_rollback(reason))

    def _health_after_rollback(self, reason: Reason) -> tuple[str, str, str]:
        if reason in (Reason.CRITICAL_FAILED, Reason.POLICY_FAILED, Reason.POST_PROMOTION_FAILED):
            return ("False", str(reason), "the canary failed its analysis")
        if reason == Reason.INCONCLUSIVE_PAST_MAX:
            return ("False", str(reason), "no conclusive analysis before maxDuration")
        return ("True", "NoAnalysis", "no rollout in progress")

    def _promote(self, reason: Reason, message: str) -> Decision:
        w = self.w
        version = w.canary
        assert version is not None
        self._end("Promoted")
        w.stable, w.canary, w.weight, w.step, w.analysis, w.phase = version, None, 0, None, None, "Healthy"
        if version in w.rolled_back:
            w.rolled_back.remove(version)
        return self._done(Kind.PROMOTE, reason, f"version {version} promoted: {message}", outcome="Promoted")
