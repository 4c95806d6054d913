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

from datetime import datetime, timedelta

from modelyard_operator.api.common import parse_duration
from modelyard_operator.api.modeldeployment import (
    AnalysisStatus,
    AnalyzeStep,
    HandledAction,
    MetricSpec,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    StepStatus,
)
from modelyard_operator.rollout.actions import Action
from modelyard_operator.rollout.capacity import canary_pods
from modelyard_operator.rollout.decision import Decision, Kind, Observations, Reason, Verdict, parse_time
from modelyard_operator.rollout.steps import applicable, shadowing
from modelyard_operator.rollout.transitions import Transitions
from modelyard_operator.rollout.verdicts import carried_over, finite, tally


class _Decider(Transitions):
    """The rules: actions first, then the step in progress (setWeight, pause, analyze) and the finish."""

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

    def _applicable(self, post_promotion: bool) -> list[MetricSpec]:
        """The metrics that apply now: the agreement ones while the canary shadows, the others otherwise."""
        shadow = shadowing(self.spec, self.w.canary, self.w.weight, post_promotion=post_promotion)
        return applicable(self.analysis.metrics, shadow=shadow)

    def _measure(self, *, post_promotion: bool) -> tuple[MetricSpec, ...]:
        """Update failure counters from this tick's observations; return the metrics that breach."""
        w, obs = self.w, self.obs
        metrics = [m for m in self._applicable(post_promotion) if not (post_promotion and m.compare is not None)]
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
        post = post_duration is not None
        gating = [m for m in self._applicable(post) if not m.dry_run and not (post and m.compare)]
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
