"""Status and conditions of a ModelDeployment from what was observed (pure).

Conditions follow kstatus: ``Ready``, ``Progressing`` and ``Degraded`` plus ``status.observedGeneration``, and
kstatus's abnormal-true pair ``Reconciling`` (work in progress) and ``Stalled`` (no progress without a change), which
is what the kstatus library (Flux, kpt) reads on a custom resource: Reconciling=True is InProgress, Stalled=True is
Failed, neither is Current. ``kubectl wait --for=condition=Ready`` and Argo CD's health check (docs/gitops.md)
read the same conditions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from modelyard_operator.api.common import Condition, ConditionStatus, ObjectMeta
from modelyard_operator.api.modeldeployment import ModelDeployment, ModelDeploymentStatus
from modelyard_operator.rollout.decision import Decision, Kind


class Reason(enum.StrEnum):
    """Reasons the operator gives in conditions and Events."""

    MODEL_VERSION_NOT_FOUND = "ModelVersionNotFound"
    MODEL_VERSION_MISMATCH = "ModelVersionMismatch"
    MODEL_VERSION_AMBIGUOUS = "ModelVersionAmbiguous"
    MODEL_VERSION_FAILED = "ModelVersionFailed"
    ARTIFACT_NOT_PINNED = "ArtifactNotPinned"
    FILE_URI_NOT_ALLOWED = "FileURINotAllowed"
    INVALID_SPEC = "InvalidSpec"
    DEPLOYING = "Deploying"
    REPLACING = "ReplacingVersion"
    AVAILABLE = "Available"
    SCALED_TO_ZERO = "ScaledToZero"
    PENDING_VALIDATION = "PendingValidation"
    GATEWAY_API_MISSING = "GatewayAPIMissing"
    EXECUTION_PROVIDER_UNAVAILABLE = "ExecutionProviderUnavailable"  # reported by the pod's server (podhealth)
    MODEL_LOAD_FAILED = "ModelLoadFailed"
    SERVER_FAILED = "ServerFailed"
    # reported by the pod's loader (init container or sidecar) when it cannot fetch or verify the artifact
    ARTIFACT_FETCH_FAILED = "FetchFailed"
    ARTIFACT_DIGEST_MISMATCH = "DigestMismatch"
    ARTIFACT_SIGNATURE_INVALID = "SignatureInvalid"
    ARTIFACT_UNSAFE = "UnsafeContent"
    ARTIFACT_ADDRESS_BLOCKED = "AddressBlocked"
    LOADER_FAILED = "LoaderFailed"
    GPU_IDLE = "GPUIdle"


@dataclass(frozen=True)
class DeploymentObservation:
    """The parts of a rendered Deployment's state that health depends on."""

    name: str
    version: str
    replicas: int
    ready_replicas: int
    available_replicas: int
    updated_replicas: int
    generation: int
    observed_generation: int
    pods: int = 0  # status.replicas: its pods not being deleted, ready or not
    terminating: int = 0  # status.terminatingReplicas (Kubernetes 1.35 on by default): pods being deleted

    @property
    def rolled_out(self) -> bool:
        return (
            self.observed_generation >= self.generation
            and self.updated_replicas >= self.replicas
            and self.available_replicas >= self.replicas
        )

    @classmethod
    def from_object(cls, obj: dict[str, Any], version_label: str) -> DeploymentObservation:
        meta, spec, st = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
        return cls(
            name=meta.get("name", ""),
            version=meta.get("labels", {}).get(version_label, ""),
            replicas=int(spec.get("replicas", 1)),
            ready_replicas=int(st.get("readyReplicas", 0)),
            available_replicas=int(st.get("availableReplicas", 0)),
            updated_replicas=int(st.get("updatedReplicas", 0)),
            generation=int(meta.get("generation", 0)),
            observed_generation=int(st.get("observedGeneration", 0)),
            pods=int(st.get("replicas", 0)),
            terminating=int(st.get("terminatingReplicas") or 0),
        )


@dataclass(frozen=True)
class Problem:
    """Why a ModelDeployment cannot be reconciled right now (shown as Degraded)."""

    reason: Reason
    message: str


@dataclass
class StatusUpdate:
    """The status to write, plus the Events worth emitting because something changed."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int,
) -> list[dict[str, Any]]:
    """Return conditions with one set; lastTransitionTime moves only when the status changes."""
    previous = next((c for c in conditions if c.get("type") == type_), None)
    transition = now
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        transition = previous["lastTransitionTime"]
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    ).to_wire()
    return [c for c in conditions if c.get("type") != type_] + [new]


CondValue = tuple[ConditionStatus, str, str]  # (status, reason, message)


def abnormal_conditions(progressing: CondValue, degraded: CondValue) -> tuple[CondValue, CondValue]:
    """kstatus's ``Reconciling`` and ``Stalled`` from ``Progressing`` and ``Degraded``.

    Reconciling is True while work is in progress, Stalled when nothing moves until something changes. Stalled wins:
    kstatus reads Reconciling first, so both True would hide a failure behind InProgress.
    """
    stalled: CondValue = ("True", degraded[1], degraded[2]) if degraded[0] == "True" else ("False", *degraded[1:])
    reconciling: CondValue = (
        ("True", progressing[1], progressing[2])
        if progressing[0] == "True" and stalled[0] != "True"
        else ("False", *progressing[1:])
    )
    return reconciling, stalled


def set_abnormal_conditions(
    conditions: list[dict[str, Any]],
    *,
    reconciling: CondValue,
    stalled: CondValue,
    now: str,
    generation: int,
) -> list[dict[str, Any]]:
    """Return conditions with ``Reconciling`` and ``Stalled`` set (at most one of them True)."""
    if reconciling[0] == "True" and stalled[0] == "True":
        reconciling = ("False", stalled[1], stalled[2])
    for type_, (status, reason, message) in (("Reconciling", reconciling), ("Stalled", stalled)):
        conditions = set_condition(conditions, type_, status, reason, message, now=now, generation=generation)
    return conditions


def _conditions(
    current: ModelDeploymentStatus,
    generation: int,
    now: str,
    *,
    ready: CondValue,
    progressing: CondValue,
    degraded: CondValue,
) -> list[dict[str, Any]]:
    conditions = [c.to_wire() for c in current.conditions]
    for type_, (status, reason, message) in (("Ready", ready), ("Progressing", progressing), ("Degraded", degraded)):
        conditions = set_condition(conditions, type_, status, reason, message, now=now, generation=generation)
    reconciling, stalled = abnormal_conditions(progressing, degraded)
    return set_abnormal_conditions(conditions, reconciling=reconciling, stalled=stalled, now=now, generation=generation)


def endpoints(md: ModelDeployment, cluster_domain: str) -> dict[str, str]:
    host = f"{md.metadata.name}.{md.metadata.namespace}.svc.{cluster_domain}"
    return {
        "http": f"http://{host}:{md.spec.serving.http_port}",
        "grpc": f"{host}:{md.spec.serving.grpc_port}",
    }


def degraded_status(meta: ObjectMeta, current: ModelDeploymentStatus, problem: Problem, now: str) -> StatusUpdate:
    """The spec cannot be served as asked: say why, keep whatever is serving untouched."""
    status = current.to_wire()
    previous = next((c for c in current.conditions if c.type == "Degraded"), None)
    problem_value: CondValue = ("False", problem.reason, problem.message)
    status.update(
        observedGeneration=meta.generation,
        phase="Degraded",
        conditions=_conditions(
            current,
            meta.generation,
            now,
            ready=problem_value,
            progressing=problem_value,
            degraded=("True", problem.reason, problem.message),
        ),
    )
    events = []
    if previous is None or previous.status != "True" or previous.reason != problem.reason:
        events.append(("Warning", str(problem.reason), problem.message))
    return StatusUpdate(status=status, events=events)


def waiting_status(meta: ObjectMeta, current: ModelDeploymentStatus, problem: Problem, now: str) -> StatusUpdate:
    """The version asked for is not validated yet: nothing changes until it is (whatever serves keeps serving)."""
    status = current.to_wire()
    serving = current.stable_version is not None
    ready_now = next((c for c in current.conditions if c.type == "Ready"), None)
    ready: CondValue = (
        (ready_now.status, ready_now.reason, ready_now.message)
        if serving and ready_now is not None
        else ("False", problem.reason, problem.message)
    )
    status.update(
        observedGeneration=meta.generation,
        phase=current.phase if serving and current.phase else "Progressing",
        conditions=_conditions(
            current,
            meta.generation,
            now,
            ready=ready,
            progressing=("True", problem.reason, problem.message),
            degraded=("False", problem.reason, "waiting, not failing"),
        ),
    )
    previous = next((c for c in current.conditions if c.type == "Progressing"), None)
    events = []
    if previous is None or previous.reason != problem.reason:
        events.append(("Normal", str(problem.reason), problem.message))
    return StatusUpdate(status=status, events=events)


def serving_status(
    md: ModelDeployment,
    target_version: str,
    observed: list[DeploymentObservation],
    now: str,
    cluster_domain: str,
) -> StatusUpdate:
    """Status while (or after) the target version's Deployment rolls out."""
    status = md.status.to_wire()
    target = next((d for d in observed if d.version == target_version), None)
    others = [d for d in observed if d.version != target_version]
    events: list[tuple[str, str, str]] = []
    ready: CondValue
    progressing: CondValue
    if target is not None and target.rolled_out and not others:
        reason = Reason.SCALED_TO_ZERO if target.replicas == 0 else Reason.AVAILABLE
        message = f"version {target_version}: {target.available_replicas}/{target.replicas} replicas available"
        phase = "Healthy"
        ready, progressing = ("True", reason, message), ("False", reason, message)
        if md.status.stable_version != target_version or md.status.phase != "Healthy":
            events.append(("Normal", str(reason), message))
        status["stableVersion"] = target_version
    else:
        have = target.available_replicas if target else 0
        want = md.spec.autoscaling.min_replicas if md.spec.autoscaling else md.spec.replicas
        reason = Reason.REPLACING if others else Reason.DEPLOYING
        message = f"version {target_version}: {have}/{want} replicas available"
        if others:
            message += f"; still serving {', '.join(sorted(d.version for d in others))} until it is"
        phase = "Progressing"
        ready, progressing = ("False", reason, message), ("True", reason, message)
    status.update(
        observedGeneration=md.metadata.generation,
        phase=phase,
        weights={"stable": 100, "canary": 0},
        endpoints=endpoints(md, cluster_domain),
        conditions=_conditions(
            md.status,
            md.metadata.generation,
            now,
            ready=ready,
            progressing=progressing,
            degraded=("False", reason, message),
        ),
    )
    return StatusUpdate(status=status, events=events)


def _patch_form(value: Any, *, in_list: bool = False) -> Any:
    """None stays (null deletes the key) in objects; inside list items, where null is no deletion, it goes."""
    if isinstance(value, dict):
        return {k: _patch_form(v, in_list=in_list) for k, v in value.items() if not (in_list and v is None)}
    if isinstance(value, list):
        return [_patch_form(v, in_list=True) for v in value]
    return value


# Decisions that are Events every time; the others only when their reason changes.
_ALWAYS_EVENT = {Kind.START, Kind.ADVANCE, Kind.PROMOTE, Kind.ROLLBACK}


def rollout_status(
    md: ModelDeployment,
    decision: Decision,
    *,
    stable_ready: int,
    now: str,
    cluster_domain: str,
    action_errors: list[str] | None = None,
    canary_weight: int | None = None,
) -> StatusUpdate:
    """Status of a ModelDeployment under a canary/blueGreen rollout, from the decision's new state.

    ``canary_weight`` is the canary's share of traffic in effect (the decision's requested weight when None).
    """
    # A merge patch keeps keys it does not mention: fields the decision cleared are sent as null.
    status = _patch_form(decision.status.model_dump(by_alias=True, mode="json"))
    previous = md.status.last_decision
    gen = md.metadata.generation
    phase = decision.status.phase or "Progressing"
    message = decision.message
    in_rollout = decision.status.canary_version is not None
    replicas = md.spec.replicas
    ready: CondValue
    progressing: CondValue
    degraded: CondValue
    if phase == "RolledBack":
        ready = ("False", "RolledBack", message)
        progressing = ("False", "RolledBack", message)
        degraded = ("True", "RolledBack", message)
    elif in_rollout:
        ready = ("False", str(decision.reason), message)
        progressing = ("True", str(decision.reason), message)
        degraded = ("False", str(decision.reason), message)
    else:
        have = f"version {decision.status.stable_version}: {stable_ready}/{replicas} replicas available"
        if stable_ready >= replicas:
            ready, progressing = ("True", "Available", have), ("False", "Available", have)
        else:
            phase = "Progressing"
            ready, progressing = ("False", "Deploying", have), ("True", "Deploying", have)
        degraded = ("False", "Available", have)
    conditions = _conditions(md.status, gen, now, ready=ready, progressing=progressing, degraded=degraded)
    paused: CondValue = (
        ("True", str(decision.reason), message) if decision.paused else ("False", "NotPaused", "not paused")
    )
    for type_, (st, reason, msg) in (("Paused", paused), ("AnalysisHealthy", decision.analysis_healthy)):
        conditions = set_condition(conditions, type_, st, reason, msg, now=now, generation=gen)  # type: ignore[arg-type]
    status.update(observedGeneration=gen, phase=phase, endpoints=endpoints(md, cluster_domain), conditions=conditions)
    if canary_weight is not None:
        status["weights"] = {"stable": 100 - canary_weight, "canary": canary_weight}
    events: list[tuple[str, str, str]] = []
    kind = decision.kind
    kept = decision.status.last_decision == previous  # a hold that leaves the last decision standing
    changed = not kept and (previous is None or previous.verdict != kind or previous.reason != str(decision.reason))
    if kind in _ALWAYS_EVENT or (changed and kind != Kind.STEADY):
        warn = kind == Kind.ROLLBACK or decision.analysis_healthy[0] == "False"
        events.append(("Warning" if warn else "Normal", f"Rollout{kind}", f"{decision.reason}: {message}"[:1024]))
    for action, result in decision.actions:
        events.append(("Normal", "RolloutAction", f"{action.type} (nonce {action.nonce}, {action.source}): {result}"))
    for error in action_errors or []:
        events.append(("Warning", "InvalidAction", error))
    return StatusUpdate(status=status, events=events)


def status_differs(current: dict[str, Any], patch: dict[str, Any]) -> bool:
    """Whether a JSON merge patch of ``patch`` onto ``current`` would change anything (RFC 7386: null deletes a
    key, objects merge key by key, everything else, lists included, replaces)."""
    for key, value in patch.items():
        if value is None:
            if key in current:
                return True
        elif isinstance(value, dict) and isinstance(current.get(key), dict):
            if status_differs(current[key], value):
                return True
        elif isinstance(value, dict):
            return True  # merged onto a non-object: it becomes the object (even an empty one)
        elif key not in current or current[key] != value:
            return True
    return False
