"""Metric verdicts and failure counters (pure): one measurement of each metric becomes a verdict, the
verdicts update the restart-safe counters in ``status.analysis``, and the counters say when a metric's
failure policy is reached."""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelyard_operator.api.common import parse_duration
from modelyard_operator.api.modeldeployment import (
    AnalysisSpec,
    DecisionStatus,
    MetricCounters,
    MetricSpec,
)
from modelyard_operator.rollout.decision import (
    Inconclusive,
    MetricEvaluation,
    MetricObservation,
    Observations,
    Reason,
    Verdict,
)


def finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and not math.isinf(value)


def evaluate_metric(
    metric: MetricSpec, obs: MetricObservation | None, *, requests: float | None, min_requests: int, stale: bool
) -> MetricEvaluation:
    """The verdict of one measurement of one metric."""
    name, dry = metric.name, metric.dry_run
    if obs is None:
        return MetricEvaluation(name, Verdict.INCONCLUSIVE, Inconclusive.NO_DATA, message="not measured", dry_run=dry)
    if obs.error:
        return MetricEvaluation(name, Verdict.ERROR, "QueryError", message=obs.error, dry_run=dry)
    canary, stable = obs.canary, obs.stable

    def result(verdict: Verdict, reason: str | None = None, message: str = "") -> MetricEvaluation:
        return MetricEvaluation(
            name,
            verdict,
            reason,
            canary if finite(canary) else None,
            stable if finite(stable) else None,
            message,
            dry,
        )

    if stale:
        return result(Verdict.INCONCLUSIVE, Inconclusive.STALE, "the canary's newest sample is too old")
    if not finite(canary):
        return result(Verdict.INCONCLUSIVE, Inconclusive.NO_DATA, "no value for the canary")
    if requests is None or requests < min_requests:
        seen = 0 if requests is None else int(requests)
        return result(Verdict.INCONCLUSIVE, Inconclusive.LOW_EVIDENCE, f"{seen}/{min_requests} canary requests")
    assert canary is not None
    problems: list[str] = []
    if metric.min is not None and canary < metric.min:
        problems.append(f"{canary:.6g} < min {metric.min:g}")
    if metric.max is not None and canary > metric.max:
        problems.append(f"{canary:.6g} > max {metric.max:g}")
    if metric.compare is not None:
        if not finite(stable):
            return result(Verdict.INCONCLUSIVE, Inconclusive.NO_DATA, "no value for the stable version")
        assert stable is not None
        if metric.compare.max_ratio is not None:
            if stable > 0:
                ratio = canary / stable
                if ratio > metric.compare.max_ratio:
                    problems.append(f"canary/stable {ratio:.3g} > {metric.compare.max_ratio:g}")
            elif canary > 0:
                problems.append(f"canary {canary:.6g} against stable 0")
    if problems:
        return result(Verdict.FAIL, None, "; ".join(problems))
    return result(Verdict.PASS)


def count(value: float | None) -> int | None:
    return int(value) if value is not None and finite(value) else None


def policy_reached(metric: MetricSpec, counters: MetricCounters) -> bool:
    if metric.critical:
        return counters.failures >= 1 and counters.last_verdict == Verdict.FAIL
    policy = metric.failure_policy
    if policy is None or policy.consecutive is not None:
        return counters.consecutive >= (policy.consecutive if policy and policy.consecutive else 1)
    return counters.failures >= (policy.total or 1)


@dataclass(frozen=True)
class Tally:
    """One tick's verdicts, the counters after them, and the acting metrics whose failure policy is reached."""

    evaluations: tuple[MetricEvaluation, ...]
    counters: list[MetricCounters]
    breaching: tuple[MetricSpec, ...]


def _counted(metric: MetricSpec, verdict: Verdict, before: MetricCounters) -> MetricCounters:
    if verdict == Verdict.FAIL:
        return MetricCounters(name=metric.name, failures=before.failures + 1, consecutive=before.consecutive + 1,
                              last_verdict=str(verdict))  # fmt: skip
    consecutive = 0 if verdict == Verdict.PASS else before.consecutive
    return MetricCounters(
        name=metric.name, failures=before.failures, consecutive=consecutive, last_verdict=str(verdict)
    )


def tally(
    metrics: list[MetricSpec], counters: dict[str, MetricCounters], obs: Observations, analysis: AnalysisSpec
) -> Tally:
    """The verdicts of a tick that measured, and the counters they leave (counters of other metrics stay)."""
    stale_after = 2 * parse_duration(analysis.scrape_interval).total_seconds()
    stale = obs.sample_age_seconds is not None and obs.sample_age_seconds > stale_after
    by_name = {o.name: o for o in obs.metrics}
    if obs.backend_error:
        by_name = {m.name: MetricObservation(m.name, error=obs.backend_error) for m in metrics}
    evaluations, breaching, updated = [], [], []
    for m in metrics:
        e = evaluate_metric(m, by_name.get(m.name), requests=obs.requests,
                            min_requests=analysis.evidence.min_requests, stale=stale)  # fmt: skip
        c = _counted(m, e.verdict, counters.get(m.name, MetricCounters(name=m.name)))
        evaluations.append(e)
        updated.append(c)
        if e.verdict == Verdict.FAIL and not m.dry_run and policy_reached(m, c):
            breaching.append(m)
    untouched = [c for name, c in counters.items() if name not in {m.name for m in metrics}]
    return Tally(tuple(evaluations), updated + untouched, tuple(breaching))


def carried_over(
    metrics: list[MetricSpec], counters: dict[str, MetricCounters], last: DecisionStatus | None
) -> tuple[MetricEvaluation, ...]:
    """Between intervals the last measurement stands (with its numbers), if it was taken in this step."""
    numbers = {m.name: m for m in (last.metrics if last else [])}
    kept = []
    for m in metrics:
        c = counters.get(m.name)
        if c is None or not c.last_verdict:
            continue
        r = numbers.get(m.name)
        if r is not None and r.verdict == c.last_verdict:
            kept.append(MetricEvaluation(m.name, Verdict(r.verdict), r.reason, r.canary, r.stable,
                                         r.message or "", m.dry_run))  # fmt: skip
        else:
            kept.append(MetricEvaluation(m.name, Verdict(c.last_verdict), dry_run=m.dry_run))
    return tuple(kept)


def analysis_health(evaluations: tuple[MetricEvaluation, ...], backend_error: str | None) -> tuple[str, str, str]:
    """The AnalysisHealthy condition (status, reason, message) of a rollout from its latest verdicts."""
    acting = [e for e in evaluations if not e.dry_run]
    errors = [e for e in acting if e.verdict == Verdict.ERROR]
    if backend_error or errors:
        why = backend_error or "; ".join(f"{e.name}: {e.message}" for e in errors)
        return ("False", str(Reason.BACKEND_ERROR), f"metrics backend failed: {why}"[:1024])
    failing = [e for e in acting if e.verdict == Verdict.FAIL]
    if failing:
        return ("False", "MetricFailing", "; ".join(f"{e.name}: {e.message}" for e in failing))
    inconclusive = [e for e in acting if e.verdict == Verdict.INCONCLUSIVE]
    if inconclusive:
        first = inconclusive[0]
        return ("Unknown", str(first.reason or Reason.INCONCLUSIVE), f"{first.name}: {first.message}")
    if acting:
        return ("True", "Passing", "every metric passes")
    return ("Unknown", "NotMeasured", "no measurement in this step yet")
