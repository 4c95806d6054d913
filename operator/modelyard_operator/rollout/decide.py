"""The rollout decision core: ``decide(spec, state, observations, now) -> Decision`` (pure).

It never reads a clock or does I/O. ``state`` is the ModelDeployment's status, which holds everything a
decision depends on (step and its start time, evidence, failure counters, handled action nonces,
rolled-back versions), so an operator restarted mid-step resumes exactly where it was.

Rules (DESIGN.md §4, notes/rollout-semantics.md):
- Verdicts per metric: Pass, Fail, Inconclusive (NoData, LowEvidence, Stale), Error. No data is never a pass.
- An analyze step advances only after ``minDuration``, with ``evidence.minRequests`` canary requests
  counted from the step's start, and the latest measurement of every acting metric a Pass.
- A ``critical`` metric rolls back on one Fail; others follow ``failurePolicy`` (consecutive or total;
  default: the first Fail). ``dryRun`` metrics are measured and recorded, never acted on.
- Inconclusive past ``maxDuration``, or a metrics backend that errors, holds the weight and sets
  AnalysisHealthy=False; with ``onInconclusive: rollback`` the former rolls back. Nothing of that promotes.
- Rollback always goes to ``status.stableVersion``; a rolled-back version is not attempted again until a
  ``retry`` action. Actions are applied once per nonce.
- Weights move only onto Ready backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modelyard_operator.api.common import parse_duration
from modelyard_operator.api.modeldeployment import (
    AnalysisStatus,
    AnalyzeStep,
    DecisionStatus,
    HandledAction,
    HistoryEntry,
    MetricCounters,
    MetricResult,
    MetricSpec,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    StepStatus,
    Weights,
)
from modelyard_operator.rollout.actions import Action
from modelyard_operator.rollout.capacity import canary_pods
from modelyard_operator.rollout.decision import (
    Decision,
    Kind,
    MetricEvaluation,
    Observations,
    Reason,
    Target,
    Verdict,
    format_time,
    parse_time,
)
from modelyard_operator.rollout.steps import analysis_of, effective_steps
from modelyard_operator.rollout.verdicts import analysis_health, carried_over, count, finite, tally

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
class _Work:
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


class _Decider:
    def __init__(
        self, spec: ModelDeploymentSpec, state: ModelDeploymentStatus, obs: Observations, now: datetime
    ) -> None:
        self.spec, self.state, self.obs, self.now = spec, state, obs, now
        self.stamp = format_time(now)
        self.steps = effective_steps(spec)
        self.analysis = analysis_of(spec)
        self.router = spec.rollout.traffic_router
        self.full = spec.rollout.strategy == "blueGreen" or self.router == "inPod"
        self.w = _Work(
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
        self.provision = 0
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

    # --- actions ---------------------------------------------------------------------------------------
    def _actions(self) -> Decision | None:
        seen: set[str] = set()
        for action in self.obs.actions:
            if action.nonce in self.w.nonces or action.nonce in seen:
                continue
            seen.add(action.nonce)
            result, decision = self._action(action)
            self.w.nonces.append(action.nonce)
            self.w.last_action = HandledAction(type=action.type, nonce=action.nonce, at=self.stamp, result=result)
            self.w.handled.append((action, result))
            if decision is not None:
                return decision
        return None

    def _action(self, action: Action) -> tuple[str, Decision | None]:
        w = self.w
        desired = self.spec.version
        if action.type == "abort":
            if w.canary is None:
                return "NothingToAbort", None
            return "Aborted", self._rollback(Reason.ABORTED, f"aborted by action {action.nonce}", outcome="Aborted")
        if action.type == "retry":
            if desired in w.rolled_back and w.canary is None:
                w.rolled_back.remove(desired)
                return "Retrying", None
            if w.canary is not None and w.step is not None:
                w.step = StepStatus(index=w.step.index, started_at=self.stamp, promote_full=w.step.promote_full,
                                    post_promotion=w.step.post_promotion)  # fmt: skip
                w.analysis = self._fresh_counters()
                return "StepRestarted", None
            return "NothingToRetry", None
        if action.type == "promoteFull":
            if w.canary is not None and w.step is not None:
                w.step = StepStatus(index=len(self.steps), started_at=self.stamp, promote_full=True)
                return "PromotingFully", None
            if desired != w.stable:
                if desired in w.rolled_back:
                    w.rolled_back.remove(desired)
                return "PromotingFully", self._start(desired, promote_full=True)
            return "NothingToPromote", None
        # approve
        if w.canary is None or w.step is None or w.step.index >= len(self.steps):
            return "NothingToApprove", None
        step = self.steps[w.step.index]
        held = w.phase == "Paused"
        if step.pause is not None or (step.analyze is not None and held):
            self._next_step()
            w.phase = "Progressing"
            return "Approved", None
        return "NothingToApprove", None

    # --- the main flow ---------------------------------------------------------------------------------
    def run(self) -> Decision:
        forced = self._actions()
        if forced is not None:
            return forced
        w, desired = self.w, self.spec.version
        if w.canary is not None and desired != w.canary:
            if desired == w.stable:
                return self._rollback(Reason.SPEC_REVERTED, "spec.version is the stable version again",
                                      outcome="Reverted", mark=False)  # fmt: skip
            self._end("Superseded")
            old = w.canary
            w.canary, w.step, w.analysis, w.weight = None, None, None, 0
            if desired not in w.rolled_back:
                decision = self._start(desired)
                return Decision(**{**decision.__dict__, "reason": Reason.SUPERSEDED,
                                   "message": f"version {desired} supersedes {old}; {decision.message}"})  # fmt: skip
        if w.canary is None:
            if desired == w.stable:
                w.phase = "Healthy"
                return self._done(Kind.STEADY, Reason.STABLE, f"version {desired} is stable")
            if desired in w.rolled_back:
                w.phase = "RolledBack"
                return self._done(
                    Kind.HOLD,
                    Reason.VERSION_ROLLED_BACK,
                    f"version {desired} was rolled back; serving {w.stable}. Apply a retry action to try it again",
                )
            return self._start(desired)
        return self._step()

    def _measure(self, *, post_promotion: bool) -> tuple[MetricSpec, ...]:
        """Update failure counters from this tick's observations; return the metrics that breach."""
        w, obs = self.w, self.obs
        metrics = [m for m in self.analysis.metrics if not (post_promotion and m.compare is not None)]
        counters = {c.name: c for c in (w.analysis.metrics if w.analysis else [])}
        if not obs.measured:
            self.evaluations = carried_over(metrics, counters, self.state.last_decision)
            return ()
        result = tally(metrics, counters, obs, self.analysis)
        w.analysis = AnalysisStatus(last_measured_at=self.stamp, metrics=result.counters)
        if w.step is not None and finite(obs.requests):
            w.step = w.step.model_copy(update={"evidence": max(0, int(obs.requests or 0))})
        self.evaluations = result.evaluations
        return result.breaching

    def _ready_for(self, weight: int) -> bool:
        need = canary_pods(self.spec.replicas, weight, router=self.router, full=self.full)
        return self.obs.canary_ready >= need

    def _step(self) -> Decision:
        w = self.w
        assert w.step is not None
        post = w.step.post_promotion
        breaching = self._measure(post_promotion=post)
        if breaching:
            m = breaching[0]
            e = next(e for e in self.evaluations if e.name == m.name)
            if post:
                pp = self.spec.rollout.post_promotion
                if pp is not None and pp.on_failure == "alert":
                    return self._promote(Reason.POST_PROMOTION_FAILED, f"{m.name} failed ({e.message}); alert only")
                return self._rollback(Reason.POST_PROMOTION_FAILED, f"after promotion {m.name}: {e.message}")
            reason = Reason.CRITICAL_FAILED if m.critical else Reason.POLICY_FAILED
            return self._rollback(reason, f"{m.name}: {e.message}")
        started = parse_time(w.step.started_at, self.now)
        elapsed = self.now - started
        if post:
            pp = self.spec.rollout.post_promotion
            duration = parse_duration(pp.analyze.duration) if pp and pp.analyze else timedelta(0)
            return self._analyze(AnalyzeStep(min_duration="0s"), elapsed, post_duration=duration)
        if w.step.index >= len(self.steps):
            return self._finish()
        step = self.steps[w.step.index]
        if step.set_weight is not None:
            weight = step.set_weight
            self.provision = max(weight, w.weight)
            if not self._ready_for(weight):
                need = canary_pods(self.spec.replicas, weight, router=self.router, full=self.full)
                return self._done(
                    Kind.HOLD,
                    Reason.CANARY_NOT_READY,
                    f"waiting for {need} Ready canary replicas (have {self.obs.canary_ready}) before weight {weight}",
                )
            w.weight, w.phase = weight, "Progressing"
            self._next_step()
            return self._done(Kind.ADVANCE, Reason.WEIGHT_SET, f"canary {w.canary} at weight {weight}")
        if step.pause is not None:
            if step.pause.duration is None:
                w.phase = "Paused"
                return self._done(
                    Kind.PAUSE,
                    Reason.AWAITING_APPROVAL,
                    f"step {w.step.index} waits for an approve action (canary at {w.weight}%)",
                    paused=True,
                )
            if elapsed >= parse_duration(step.pause.duration):
                self._next_step()
                return self._done(Kind.ADVANCE, Reason.PAUSE_ELAPSED, f"pause of {step.pause.duration} elapsed")
            return self._done(Kind.HOLD, Reason.PAUSING, f"pausing {step.pause.duration}")
        assert step.analyze is not None
        return self._analyze(step.analyze, elapsed)

    def _analyze(self, step: AnalyzeStep, elapsed: timedelta, *, post_duration: timedelta | None = None) -> Decision:
        w = self.w
        assert w.step is not None
        minimum = post_duration if post_duration is not None else parse_duration(step.min_duration)
        maximum = parse_duration(step.max_duration) if step.max_duration else None
        acting = [e for e in self.evaluations if not e.dry_run]
        counters = {c.name: c for c in (w.analysis.metrics if w.analysis else [])}
        gating = [m for m in self.analysis.metrics if not m.dry_run and not (post_duration is not None and m.compare)]
        all_pass = all(counters.get(m.name) and counters[m.name].last_verdict == Verdict.PASS for m in gating)
        evidence = w.step.evidence
        enough = evidence >= self.analysis.evidence.min_requests
        if elapsed >= minimum and all_pass and enough:
            if post_duration is not None:
                return self._promote(Reason.PROMOTED, f"post-promotion analysis passed for {minimum}")
            self._next_step()
            w.phase = "Progressing"
            return self._done(Kind.ADVANCE, Reason.ANALYSIS_PASSED, f"analysis passed ({evidence} requests)")
        if self.obs.backend_error or any(e.verdict == Verdict.ERROR for e in acting):
            health = self._health()
            past = maximum is not None and elapsed >= maximum
            if past and self.analysis.on_inconclusive == "rollback":
                return self._rollback(Reason.INCONCLUSIVE_PAST_MAX, f"metrics backend failing past {step.max_duration}")
            w.phase = "Paused" if past else "Progressing"
            return self._done(Kind.HOLD, Reason.BACKEND_ERROR, f"holding at {w.weight}%: {health[2]}", paused=past)
        if maximum is not None and elapsed >= maximum:
            why = "; ".join(f"{e.name}: {e.verdict} {e.reason or ''} {e.message}".strip() for e in acting)
            why = why or f"{evidence}/{self.analysis.evidence.min_requests} requests"
            if self.analysis.on_inconclusive == "rollback":
                return self._rollback(Reason.INCONCLUSIVE_PAST_MAX, f"no conclusive pass within {step.max_duration}")
            w.phase = "Paused"
            message = f"no conclusive pass within {step.max_duration}; holding at {w.weight}% ({why})"
            return self._done(Kind.HOLD, Reason.INCONCLUSIVE_PAST_MAX, message,
                              healthy=("False", str(Reason.INCONCLUSIVE_PAST_MAX), message[:1024]),
                              paused=True)  # fmt: skip
        reason = Reason.POST_PROMOTION if post_duration is not None else Reason.ANALYZING
        if not enough:
            reason = Reason.LOW_EVIDENCE
        w.phase = "Progressing"
        message = f"analysing for {int(elapsed.total_seconds())}s of at least {int(minimum.total_seconds())}s; " + (
            f"{evidence}/{self.analysis.evidence.min_requests} requests"
        )
        return self._done(Kind.HOLD, reason, message)

    def _finish(self) -> Decision:
        w = self.w
        assert w.step is not None
        self.provision = 100
        if not self._ready_for(100):
            need = canary_pods(self.spec.replicas, 100, router=self.router, full=True)
            return self._done(
                Kind.HOLD,
                Reason.CANARY_NOT_READY,
                f"waiting for {need} Ready canary replicas (have {self.obs.canary_ready}) before taking all traffic",
            )
        pp = self.spec.rollout.post_promotion
        if pp is not None and pp.analyze is not None and not w.step.promote_full:
            w.weight, w.phase = 100, "Progressing"
            w.step = StepStatus(index=len(self.steps), started_at=self.stamp, post_promotion=True)
            w.analysis = self._fresh_counters(w.analysis)
            return self._done(
                Kind.ADVANCE,
                Reason.POST_PROMOTION,
                f"canary {w.canary} takes all traffic; watching {pp.analyze.duration}",
            )
        w.weight = 100
        reason = Reason.PROMOTED_FULL if w.step.promote_full else Reason.PROMOTED
        return self._promote(reason, "all steps passed" if reason == Reason.PROMOTED else "promoteFull action")


def decide(spec: ModelDeploymentSpec, state: ModelDeploymentStatus, obs: Observations, now: datetime) -> Decision:
    """The next rollout decision for a ModelDeployment whose strategy is canary or blueGreen."""
    return _Decider(spec, state, obs, now).run()
