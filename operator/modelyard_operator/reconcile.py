"""What to do for a ModelDeployment, computed from what was observed (pure).

``plan`` takes the ModelDeployment, the ModelVersions of its namespace and the Deployments it owns, and
returns the objects to apply, the Deployments to delete and the status to write. The kopf handler does
the I/O around it; this module can be tested with plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelyard_operator.api.common import ObjectMeta
from modelyard_operator.api.modeldeployment import ACTION_ANNOTATION, ModelDeployment, ModelDeploymentStatus
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.inpod import (
    ANNOTATION_VERSIONS,
    held_by_list,
    is_paced,
    pace,
    render_in_pod_deployment,
    render_version_weights,
    template_loaders,
)
from modelyard_operator.names import LABEL_VERSION, deployment_name, selector
from modelyard_operator.netpol import render_network_policy
from modelyard_operator.podhealth import LOADER_CONTAINER, StartFailure
from modelyard_operator.render import (
    ANNOTATION_AUTOSCALER,
    render_autoscaler,
    render_children,
    render_deployment,
    render_route,
    render_service,
)
from modelyard_operator.rollout.actions import Action, ActionError, collect_actions, parse_annotation
from modelyard_operator.rollout.capacity import canary_pods, effective_weight, handover, weight_warning
from modelyard_operator.rollout.decide import decide
from modelyard_operator.rollout.decision import Decision, Kind, Observations, Target, format_time
from modelyard_operator.rollout.decision import Reason as DecisionReason
from modelyard_operator.rollout.measurement import Measurement
from modelyard_operator.rollout.routers import main_service_version, version_weights
from modelyard_operator.rollout.steps import shadowing
from modelyard_operator.runtime_config import gpu_idle_warning
from modelyard_operator.status import (
    DeploymentObservation,
    Problem,
    Reason,
    StatusUpdate,
    degraded_status,
    rollout_status,
    serving_status,
    waiting_status,
)

Obj = dict[str, Any]


@dataclass
class Plan:
    apply: list[Obj] = field(default_factory=list)
    delete_deployments: list[str] = field(default_factory=list)
    delete_autoscaler: bool = False  # autoscaling was turned off: its HPA would go on scaling the Deployment
    scale: dict[str, int] = field(default_factory=dict)  # Deployment -> replicas, written apart from the apply
    status: StatusUpdate | None = None


def parse_errors(exc: ValidationError) -> str:
    """A one-line summary of a pydantic error, in the manifest's field names."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


VersionMap = dict[str, list[ModelVersion]]
MISMATCH_EXAMPLES = 3  # versions of other models a mismatch names


def version_map(candidates: list[Obj]) -> VersionMap:
    """The namespace's ModelVersions by ``spec.version``, each parsed once per reconcile, in listing order."""
    versions: VersionMap = {}
    for obj in candidates:
        try:
            mv = ModelVersion.model_validate(obj)
        except ValidationError:
            continue  # an object the CRD schema let through but we cannot read: not a candidate
        versions.setdefault(mv.spec.version, []).append(mv)
    return versions


@dataclass(frozen=True)
class ObservedDeployment:
    """An owned Deployment as health sees it, read once per reconcile, with the versions its pods load."""

    observation: DeploymentObservation
    loads: tuple[str, ...]  # the inPod router's versions annotation
    template_loaders: int | None = None  # the inPod router's loaders in the pod template
    paced: bool = False  # rolls without a surge (inpod.pace)

    @classmethod
    def from_object(cls, obj: Obj) -> ObservedDeployment:
        loaded = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_VERSIONS, "")
        observation = DeploymentObservation.from_object(obj, LABEL_VERSION)
        return cls(observation, tuple(loaded.split(",")), template_loaders(obj), is_paced(obj))

    def pace(self, deployment: Obj) -> Obj:
        """The rendered ``deployment`` (this one's next spec) paced as its roll needs (:func:`inpod.pace`)."""
        settled = self.observation.rolled_out and self.observation.terminating == 0
        return pace(deployment, self.template_loaders, self.paced, settled)


def versions_in_use(md_obj: Obj, deployments: list[Obj]) -> tuple[str, ...]:
    """The versions whose ModelVersions a reconcile reads: the one asked for first, the stable and canary
    ones, and those the inPod router's pods still load (a promotion hands their pods over one at a time)."""
    spec, status = md_obj.get("spec") or {}, md_obj.get("status") or {}
    wanted = [spec.get("version"), status.get("stableVersion"), status.get("canaryVersion")]
    for d in deployments:
        wanted += ((d.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_VERSIONS, "").split(",")
    return tuple(v for v in dict.fromkeys(wanted) if v)


def _parsed(md_obj: Obj | ModelDeployment) -> ModelDeployment:
    return md_obj if isinstance(md_obj, ModelDeployment) else ModelDeployment.model_validate(md_obj)


def find_model_version(md: ModelDeployment, versions: VersionMap, config: OperatorConfig) -> ModelVersion | Problem:
    """The ModelVersion that ``md.spec.version`` names, or the reason there is none to serve."""
    model, version = md.spec.model, md.spec.version
    same_version = versions.get(version, [])
    matches = [mv for mv in same_version if mv.spec.model == model]
    if not matches:
        if same_version:
            names = ", ".join(f"{mv.metadata.name} (model {mv.spec.model})" for mv in same_version[:MISMATCH_EXAMPLES])
            if len(same_version) > MISMATCH_EXAMPLES:
                names += " and more"
            return Problem(
                Reason.MODEL_VERSION_MISMATCH,
                f"no ModelVersion of model {model!r} with version {version!r}; found only {names}",
            )
        return Problem(
            Reason.MODEL_VERSION_NOT_FOUND,
            f"no ModelVersion of model {model!r} with version {version!r} in namespace {md.metadata.namespace}",
        )
    if len(matches) > 1:
        names = ", ".join(sorted(mv.metadata.name for mv in matches))
        return Problem(Reason.MODEL_VERSION_AMBIGUOUS, f"several ModelVersions claim {model}:{version}: {names}")
    mv = matches[0]
    if mv.status.phase == "Failed":
        why = next((c for c in mv.status.conditions if c.type == "Ready"), None)
        detail = f": {why.reason}: {why.message}" if why is not None and why.reason else ""
        return Problem(Reason.MODEL_VERSION_FAILED, f"ModelVersion {mv.metadata.name} failed validation{detail}")
    if mv.artifact.digest is None and not config.allow_unpinned_artifacts:
        return Problem(
            Reason.ARTIFACT_NOT_PINNED,
            f"ModelVersion {mv.metadata.name} has no artifact.digest and the operator does not allow "
            "unpinned artifacts",
        )
    if mv.artifact.uri.startswith("file://") and not config.allow_file_uris:
        return Problem(
            Reason.FILE_URI_NOT_ALLOWED,
            f"ModelVersion {mv.metadata.name} uses a file:// URI, which the operator does not allow",
        )
    if mv.status.phase != "Ready":
        return Problem(
            Reason.PENDING_VALIDATION,
            # not its phase: a message that changed with it would cost one more status write on every deployment
            f"waiting for ModelVersion {mv.metadata.name} to be validated",
        )
    return mv


def network_policy(md: ModelDeployment, versions: VersionMap, config: OperatorConfig, *loaded: str | None) -> list[Obj]:
    """The pods' NetworkPolicy (none when the installation turned them off): egress for every version in
    ``loaded`` that has a ModelVersion (the target, the stable one still serving, a canary)."""
    if not config.network_policies.enabled:
        return []
    mvs = [mv for v in dict.fromkeys(loaded) if v and (mv := _model_version(md, versions, v)) is not None]
    return [render_network_policy(md, mvs, config.network_policies)]


def autoscaler_left(md: ModelDeployment, deployments: list[Obj]) -> bool:
    """Autoscaling was turned off while a Deployment still carries the HPA's annotation: its HPA goes first."""
    return md.spec.autoscaling is None and any(
        ANNOTATION_AUTOSCALER in ((d.get("metadata") or {}).get("annotations") or {}) for d in deployments
    )


def autoscaled_base(md: ModelDeployment, deployments: list[ObservedDeployment], stable: str | None) -> int:
    """The stable version's pods as its autoscaler set them (spec.replicas of its Deployment, which the HPA owns):
    the capacity a canary's share is counted against. ``minReplicas`` before the Deployment is observed."""
    assert md.spec.autoscaling is not None
    current = next((d.observation.replicas for d in deployments if stable and d.observation.version == stable), None)
    return max(current or 0, md.spec.autoscaling.min_replicas)


def with_scale(update: StatusUpdate, md: ModelDeployment, deployments: list[Obj]) -> StatusUpdate:
    """Adds what the scale subresource reads: ``replicas``, the Ready pods of every Deployment the ModelDeployment
    owns (all versions), and ``selector``, the label selector of those pods as a string."""
    ready = sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in deployments)
    labels = selector(md.metadata.name)
    update.status.update(replicas=ready, selector=",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    return update


def problem_status(md: ModelDeployment, problem: Problem, now: str) -> StatusUpdate:
    """Waiting for validation is progress; everything else that stops a version from serving is Degraded."""
    if problem.reason == Reason.PENDING_VALIDATION:
        return waiting_status(md.metadata, md.status, problem, now)
    return degraded_status(md.metadata, md.status, problem, now)


def start_failure_problem(failure: StartFailure) -> Problem:
    """A server or loader that could not start, as the ModelDeployment's Degraded reason."""
    try:
        reason = Reason(failure.reason)
    except ValueError:
        reason = Reason.LOADER_FAILED if failure.container == LOADER_CONTAINER else Reason.SERVER_FAILED
    what = "its loader" if failure.container == LOADER_CONTAINER else "it"
    message = f"version {failure.version}: pod {failure.pod} cannot start, {what} failed: {failure.message}"
    return Problem(reason, message[:1024])


# Progressing reasons of a ModelDeployment whose plan already reached its version's pods
_SERVING_REASONS = {
    Reason.DEPLOYING, Reason.REPLACING, Reason.AVAILABLE, Reason.SCALED_TO_ZERO,
    Reason.EXECUTION_PROVIDER_UNAVAILABLE, Reason.MODEL_LOAD_FAILED, Reason.SERVER_FAILED,
    Reason.ARTIFACT_FETCH_FAILED, Reason.ARTIFACT_DIGEST_MISMATCH, Reason.ARTIFACT_SIGNATURE_INVALID,
    Reason.ARTIFACT_UNSAFE, Reason.ARTIFACT_ADDRESS_BLOCKED, Reason.LOADER_FAILED,
}  # fmt: skip


def gpu_idle_event(md: ModelDeployment, mv: ModelVersion) -> list[tuple[str, str, str]]:
    """A Warning when the pods get a GPU that the version's providers never use: once per spec generation, when its
    pods are first rendered (not on every resync)."""
    warning = gpu_idle_warning(md, mv)
    if warning is None:
        return []
    progressing = next((c for c in md.status.conditions if c.type == "Progressing"), None)
    rendered = progressing is not None and progressing.reason in _SERVING_REASONS
    if rendered and md.status.observed_generation == md.metadata.generation:
        return []
    return [("Warning", str(Reason.GPU_IDLE), warning)]


def plan(
    md_obj: Obj | ModelDeployment,
    model_versions: list[Obj],
    deployments: list[Obj],
    config: OperatorConfig,
    now: str,
    failures: Mapping[str, StartFailure] | None = None,
) -> Plan:
    """Decide what to apply, delete and report for one ModelDeployment (strategy ``immediate``).

    ``md_obj`` may come parsed already (the handler parses it to choose between this and a rollout).
    ``failures`` are the start failures the model pods reported, by version (:mod:`podhealth`): the target
    version's, while its Deployment is not rolled out, makes the ModelDeployment Degraded.
    """
    md = _parsed(md_obj)
    versions = version_map(model_versions)
    found = find_model_version(md, versions, config)
    if isinstance(found, Problem):
        return Plan(status=with_scale(problem_status(md, found, now), md, deployments))
    observed = [DeploymentObservation.from_object(d, LABEL_VERSION) for d in deployments]
    target = found.spec.version
    result = Plan(apply=serving_children(md, found, config))
    # the versions being replaced still have pods (a dynamic loader may fetch again) until they go
    old = [d.version for d in observed if d.version != target]
    result.apply += network_policy(md, versions, config, target, md.status.stable_version, *old)
    if md.spec.rollout.traffic_router == "gatewayAPI":
        result.apply.append(render_route(md, 0, has_canary=False))
    current = next((d for d in observed if d.version == target), None)
    scaling = md.spec.autoscaling
    result.delete_autoscaler = autoscaler_left(md, deployments)
    full = current is not None and (
        current.replicas >= scaling.min_replicas if scaling else current.replicas == md.spec.replicas
    )
    if current is not None and current.rolled_out and full:
        # The new version serves at full capacity: only now do the old ones go.
        result.delete_deployments = sorted(d.name for d in observed if d.version != target)
        observed = [current]
    failure = (failures or {}).get(target)
    if failure is not None and not (current is not None and current.rolled_out):
        result.status = degraded_status(md.metadata, md.status, start_failure_problem(failure), now)
    else:
        result.status = serving_status(md, target, observed, now, config.cluster_domain)
    result.status.events += gpu_idle_event(md, found)
    if md.status.canary_version is not None:
        # The strategy became immediate mid-rollout: the rollout's fields no longer describe anything.
        result.status.status.update(canaryVersion=None, requestedWeight=None, step=None, analysis=None)
    with_scale(result.status, md, deployments)
    return result


def invalid_status(md_obj: Obj, exc: ValidationError, now: str) -> StatusUpdate | None:
    """Status for a ModelDeployment whose spec does not parse (None when even its metadata does not)."""
    try:
        meta = ObjectMeta.model_validate(md_obj["metadata"])
        status = ModelDeploymentStatus.model_validate(md_obj.get("status") or {})
    except (ValidationError, KeyError):
        return None
    return degraded_status(meta, status, Problem(Reason.INVALID_SPEC, parse_errors(exc)), now)


# --- progressive delivery (canary, blueGreen) --------------------------------------------------------


def serving_children(md: ModelDeployment, mv: ModelVersion, config: OperatorConfig) -> list[Obj]:
    """What serves ``mv`` alone. Under a rollout of the inPod router, its Deployment and ConfigMap from the start:
    the first canary then finds the pods it joins (in dynamic loading, without replacing one)."""
    children = render_children(md, mv, config)
    if md.spec.rollout.traffic_router != "inPod" or md.spec.rollout.strategy == "immediate":
        return children
    deployment = render_in_pod_deployment(md, mv, None, config, replicas=md.spec.replicas)
    weights = render_version_weights(md, version_weights(mv.spec.version, None, 0))
    return [weights, deployment, *children[1:]]


def uses_rollout(md: ModelDeployment) -> bool:
    """Canary and blueGreen rollouts start once a stable version is recorded; the first version (and
    the immediate strategy) goes in directly."""
    return md.spec.rollout.strategy != "immediate" and md.status.stable_version is not None


def rollout_active(md_obj: Obj) -> bool:
    """Whether the rollout timer has work for this object (cheap, from the body alone)."""
    spec, status = md_obj.get("spec") or {}, md_obj.get("status") or {}
    rollout = spec.get("rollout") or {}
    if rollout.get("strategy", "immediate") == "immediate" or not status.get("stableVersion"):
        return False
    if status.get("canaryVersion"):
        return True
    held = spec.get("version") in (status.get("rolledBackVersions") or [])
    if spec.get("version") != status.get("stableVersion") and not held:
        return True
    annotations = (md_obj.get("metadata") or {}).get("annotations") or {}
    handled = set(status.get("handledNonces") or [])
    action = rollout.get("action") or {}
    if action and action.get("nonce") not in handled:
        return True
    try:
        pending = parse_annotation(annotations[ACTION_ANNOTATION]).nonce not in handled
    except (KeyError, ActionError):
        pending = False  # an unreadable annotation is reported by the periodic resync, not every second
    return pending


def ready_replicas(deployments: list[ObservedDeployment], version: str | None, *, in_pod: bool = False) -> int:
    """Available replicas of the Deployment that serves ``version`` (0 when there is none).

    With the inPod router a version counts in pods that load it, once that pod template is rolled out.
    """
    if version is None:
        return 0
    if in_pod:
        for d in deployments:
            if version in d.loads and d.observation.rolled_out:
                return d.observation.available_replicas
        return 0
    for d in deployments:
        obs = d.observation
        if obs.version == version:
            if obs.generation > obs.observed_generation:
                return 0
            # Pods over spec.replicas are being scaled away: they are Ready for a moment, never capacity.
            return min(obs.available_replicas, obs.ready_replicas, obs.replicas)
    return 0


def paced(deployment: Obj, observed: list[ObservedDeployment]) -> Obj:
    """An inPod Deployment paced as the roll from its live version needs (:func:`modelyard_operator.inpod.pace`)."""
    name = deployment["metadata"]["name"]
    live = next((d for d in observed if d.observation.name == name), None)
    return live.pace(deployment) if live is not None else pace(deployment, None, False, True)


def serving_pods(deployments: list[ObservedDeployment], version: str | None) -> int:
    """Ready pods of ``version``'s Deployment: the Service's ready endpoints of that version, also while the
    Deployment controller has not yet observed a scale (which ``ready_replicas`` waits for), and none of the pods a
    scale-down is taking away (they leave the endpoints as they start terminating)."""
    obs = next((d.observation for d in deployments if version and d.observation.version == version), None)
    return min(obs.ready_replicas, obs.replicas) if obs is not None else 0


def _model_version(md: ModelDeployment, versions: VersionMap, version: str) -> ModelVersion | None:
    return next((mv for mv in versions.get(version, []) if mv.spec.model == md.spec.model), None)


@dataclass
class RolloutPlan(Plan):
    decision: Decision | None = None


def observations(
    md: ModelDeployment,
    deployments: list[ObservedDeployment],
    measurement: Measurement | None,
    actions: tuple[Action, ...],
) -> Observations:
    """The decision core's input from what the controller saw and measured this tick."""
    in_pod = md.spec.rollout.traffic_router == "inPod"
    canary_ready = ready_replicas(deployments, md.status.canary_version, in_pod=in_pod)
    stable_ready = ready_replicas(deployments, md.status.stable_version)
    if measurement is None:
        return Observations(canary_ready=canary_ready, stable_ready=stable_ready, actions=actions)
    return Observations(
        canary_ready=canary_ready,
        stable_ready=stable_ready,
        measured=True,
        requests=measurement.requests,
        sample_age_seconds=measurement.sample_age_seconds,
        metrics=measurement.metrics,
        backend_error=measurement.backend_error,
        actions=actions,
    )


def plan_rollout(
    md_obj: Obj | ModelDeployment,
    model_versions: list[Obj],
    deployments: list[Obj],
    config: OperatorConfig,
    now: datetime,
    measurement: Measurement | None,
) -> RolloutPlan:
    """Decide (pure core), then render what the decision's target needs and the status to write.

    Runs every second during a rollout: the ModelDeployment may come parsed already, and the ModelVersions
    and Deployments are each read once.
    """
    md = _parsed(md_obj)
    stamp = format_time(now)
    versions = version_map(model_versions)
    found = find_model_version(md, versions, config)
    if isinstance(found, Problem):
        return RolloutPlan(status=with_scale(problem_status(md, found, stamp), md, deployments))
    observed = [ObservedDeployment.from_object(d) for d in deployments]
    scaled = md.spec.autoscaling is not None
    if scaled:  # the HPA sizes the stable version: the canary's share, its wait and the handover count against that
        base = autoscaled_base(md, observed, md.status.stable_version)
        md = md.model_copy(update={"spec": md.spec.model_copy(update={"replicas": base})})
    actions, action_errors = collect_actions(md.spec.rollout.action, md.metadata.annotations)
    decision = decide(md.spec, md.status, observations(md, observed, measurement, tuple(actions)), now)
    target = decision.target
    replicas = md.spec.replicas
    router = md.spec.rollout.traffic_router
    stable_ready = ready_replicas(observed, target.stable)
    canary_ready = ready_replicas(observed, target.canary, in_pod=router == "inPod")
    result = RolloutPlan(decision=decision)
    name = md.metadata.name
    stable_mv = _model_version(md, versions, target.stable) if target.stable else None
    canary_mv = None
    if target.canary is not None:
        canary_mv = found if found.spec.version == target.canary else _model_version(md, versions, target.canary)
    if router == "inPod" and stable_mv is not None and target.stable is not None:
        result.apply += in_pod_children(md, stable_mv, canary_mv, target, observed, versions, config)
        canary_ready = 0  # the canary is in the stable version's pods
    else:
        # The stable version keeps all its pods until the rollout ends; the canary is surged beside it.
        if stable_mv is not None:
            result.apply.append(render_deployment(md, stable_mv, config, replicas=None if scaled else replicas))
        if canary_mv is not None:
            pods = canary_pods(replicas, target.provision_weight, router=router, full=target.full)
            result.apply.append(render_deployment(md, canary_mv, config, replicas=None if scaled else pods))
            if scaled:  # written apart from the apply: it stays when the HPA takes the Deployment over at promotion
                result.scale[deployment_name(md.metadata.name, canary_mv.spec.version)] = pods
        if scaled and target.stable is not None:
            result.apply.append(render_autoscaler(md, target.stable))
    result.delete_autoscaler = autoscaler_left(md, deployments)
    selects = main_service_version(router, target.stable, target.canary, target.weight)
    result.apply.append(render_service(md, name=name, version=selects, version_label=False))
    if target.stable is not None:
        result.apply.append(render_service(md, name=f"{name}-stable", version=target.stable))
        result.apply.append(render_service(md, name=f"{name}-canary", version=target.canary or target.stable))
    if router == "gatewayAPI":
        result.apply.append(render_route(md, target.weight, has_canary=target.canary is not None))
    leaving = [d.observation.version for d in observed]  # versions whose pods remain until they are deleted
    result.apply += network_policy(md, versions, config, target.stable, target.canary, *leaving)
    keep = {target.stable, target.canary}
    if stable_ready + canary_ready >= replicas:
        # Versions that left the target go only once the remaining ones carry the requested capacity.
        result.delete_deployments = sorted(d.observation.name for d in observed if d.observation.version not in keep)
    weight = target.weight if target.canary is not None else 0
    result.status = rollout_status(
        md, decision, stable_ready=stable_ready, now=stamp, cluster_domain=config.cluster_domain,
        action_errors=action_errors,
        canary_weight=effective_weight(router, weight, stable_ready=serving_pods(observed, target.stable),
                                       canary_ready=serving_pods(observed, target.canary)),
    )  # fmt: skip
    if decision.kind == Kind.ADVANCE and decision.reason == DecisionReason.WEIGHT_SET:
        warning = weight_warning(replicas, weight, router=router)
        if warning is not None:
            result.status.events.append(("Warning", "WeightNotExpressible", warning))
    with_scale(result.status, md, deployments)
    return result


def in_pod_children(
    md: ModelDeployment,
    stable: ModelVersion,
    canary: ModelVersion | None,
    target: Target,
    observed: list[ObservedDeployment],
    versions: VersionMap,
    config: OperatorConfig,
) -> list[Obj]:
    """The inPod router's version weights and Deployment.

    Loading or unloading the canary changes the pod template, and the Deployment's update (maxSurge 1,
    maxUnavailable 0) rolls the pods one at a time. A promotion changes which Deployment serves: the old
    version's, whose pods load both versions, hands over to the new one a pod at a time, so the model never
    runs on more than ``replicas + 1`` pods.
    """
    replicas = md.spec.replicas
    assert target.stable is not None
    weights = version_weights(target.stable, target.canary if canary is not None else None, target.weight)
    shadow = target.canary if canary is not None and shadowing(md.spec, target.canary, target.weight) else None
    objs: list[Obj] = []
    held: list[ModelVersion] = []  # versions the pods hold through the versions list (dynamic loading)
    own = replicas
    holders = [d for d in observed if d.observation.version != target.stable and target.stable in d.loads]
    if holders:
        source = max(holders, key=lambda d: d.observation.available_replicas)
        loaded = [_model_version(md, versions, v) for v in source.loads if v]
        if loaded and all(mv is not None for mv in loaded):
            # Ready pods, also while a scale is not yet observed: that wait would scale back what just grew
            old_pods = sum(max(d.observation.replicas, d.observation.pods) + d.observation.terminating for d in holders)
            mine = [d.observation.terminating for d in observed if d.observation.version == target.stable]
            own, theirs = handover(replicas, serving_pods(observed, target.stable), old_pods, sum(mine))
            first, *rest = [mv for mv in loaded if mv is not None]
            other = rest[0] if rest else None
            objs.append(paced(render_in_pod_deployment(md, first, other, config, replicas=theirs), observed))
            if other is not None and held_by_list(md, first, other, config):
                held.append(other)  # the old pods keep serving the new stable version until they go
    objs.append(paced(render_in_pod_deployment(md, stable, canary, config, replicas=own), observed))
    if canary is not None and held_by_list(md, stable, canary, config):
        held.append(canary)
    shadowed = shadow if shadow != target.stable else None
    return [render_version_weights(md, weights, shadowed, held), *objs]
