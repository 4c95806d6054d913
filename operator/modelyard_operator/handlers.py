"""kopf handlers: parse, observe through the adapter, call pure code, apply, write status.

Every trigger (a ModelDeployment changed, one of its Deployments changed, a ModelVersion appeared or
changed, the periodic resync) ends in the same :func:`reconcile`, serialised per ModelDeployment, so the
outcome depends only on the cluster's state, never on which event came first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from pydantic import ValidationError

from modelyard_operator import derived, validation
from modelyard_operator.api.common import GROUP, VERSION
from modelyard_operator.api.modeldeployment import ModelDeployment
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.events import decision_fields, event_objects
from modelyard_operator.indexes import View
from modelyard_operator.kube import Kube, KubeError
from modelyard_operator.metrics import OperatorMetrics
from modelyard_operator.names import (
    LABEL_BUILDS,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_MODEL,
    LABEL_VERSION,
    MANAGED_BY,
)
from modelyard_operator.podhealth import StartFailure
from modelyard_operator.podsurvey import PodSurvey, start_failure_survey, unschedulable_survey
from modelyard_operator.prometheus import Prometheus, measure
from modelyard_operator.reconcile import (
    Plan,
    RolloutPlan,
    invalid_status,
    parse_errors,
    plan,
    plan_rollout,
    uses_rollout,
    versions_in_use,
)
from modelyard_operator.rollout.decision import format_time, parse_time
from modelyard_operator.rollout.steps import measurement_due
from modelyard_operator.status import DeploymentObservation, Problem, Reason, degraded_status, status_differs
from modelyard_operator.sweeper import Sweeper
from modelyard_operator.turns import Turns

MD = (GROUP, VERSION, "modeldeployments")
MV = (GROUP, VERSION, "modelversions")
log = logging.getLogger("modelyard.operator")
INSTANCE = socket.gethostname()  # the reporting instance of our Events (the pod name in a cluster)
KOPF_CONSISTENCY_SECONDS = 30.0


def _now() -> str:
    return format_time(datetime.now(UTC))


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kw: Any) -> None:
    # Progress and diff-base in annotations: status stays ours and matches the CRD schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modelyard.dev")
    # The handlers react to spec changes only: with labels in the essence, the labels the ModelVersion handler adds
    # would cost a second write of this annotation on every version.
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modelyard.dev", ignored_fields=["metadata"]
    )
    # kopf waits this long for the watch to bring its own diff-base patch before it takes an older copy of the
    # object as current; at its default of 5 s, a control plane whose watch events ran 9 s behind made kopf see
    # every new ModelDeployment as created again (a second reconcile and a second patch each)
    settings.persistence.consistency_timeout = KOPF_CONSISTENCY_SECONDS
    settings.posting.level = logging.WARNING  # our own Events say what matters; kopf's are noise
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    # a failed request (a broken watch included) is retried at most 5 s apart: kopf's default grows to 21 s, which
    # would add that much to the recovery after the API server comes back (health.py, docs/operator.md)
    settings.networking.error_backoffs = (1, 1, 2, 3, 5, 5, 5, 5)
    memo.setdefault("config", OperatorConfig())
    memo.setdefault("metrics", OperatorMetrics())
    memo.kube = Kube()
    memo.start_failures = start_failure_survey(memo.kube)
    memo.unschedulable = unschedulable_survey(memo.kube)
    config: OperatorConfig = memo.config
    memo.prometheus = (
        Prometheus(config.prometheus_url, timeout=config.prometheus_timeout) if config.prometheus_url else None
    )
    memo.locks = Turns()
    memo.lag_watch = asyncio.create_task(memo.metrics.watch_event_loop_lag())
    # rollout ticks, resyncs and validation checks: one task over the indexes, no kopf timers (no finalizers)
    memo.sweeper = Sweeper(memo, View.of(kw), reconcile, check_validation)
    memo.sweep = asyncio.create_task(memo.sweeper.run())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("lag_watch") is not None:
        memo.lag_watch.cancel()
    if memo.get("sweep") is not None:
        memo.sweep.cancel()
        await memo.sweeper.stop()
    await memo.kube.close()
    if memo.get("prometheus") is not None:
        await memo.prometheus.close()


async def reconcile(namespace: str, name: str, memo: kopf.Memo, view: View, *, joins: bool = False) -> None:
    """Bring one ModelDeployment's children and status in line with its spec.

    Reads come from the watch-fed indexes (``view``); writes go out only where something differs. With ``joins``
    (an event handler's trigger) nothing runs while another reconcile of the object waits for its turn: that one
    reads what this one would (``turns.py``).
    """
    kube: Kube = memo.kube
    memo.sweeper.ready()
    if joins and memo.locks.waiting((namespace, name)):
        memo.metrics.reconciles_joined.inc()
        return
    started = time.perf_counter()
    async with memo.locks.turn((namespace, name)):
        try:
            md = await _current(view.model_deployment, "ModelDeployment", namespace, name, kube)
            if md is None or md["metadata"].get("deletionTimestamp"):
                kube.forget_owner(namespace, name)
                memo.metrics.forget_model_deployment(namespace, name)
                return
            deployments = view.owned_deployments(namespace, name)
            mvs = view.model_versions(namespace, (md.get("spec") or {}).get("model"), versions_in_use(md, deployments))
            try:
                todo = await _plan(md, mvs, deployments, memo)
            except ValidationError as exc:
                update = invalid_status(md, exc, _now())
                if update is not None:
                    await _emit(kube, md, update.events)
                    await _write_status(kube, md, update.status)
                return
            if todo.delete_autoscaler:  # before the Deployment gets its replicas back: no HPA may rescale it after
                log.info("deleting HorizontalPodAutoscaler %s/%s: autoscaling is off", namespace, name)
                await kube.delete_autoscaler(namespace, name)
            children = [
                *deployments,
                *view.owned_services(namespace, name),
                *view.owned_network_policies(namespace, name),
            ]
            observed = {(o["kind"], o["metadata"]["name"]): o for o in children}
            try:
                for obj in todo.apply:
                    await kube.apply_child(obj, name, observed.get((obj["kind"], obj["metadata"]["name"])))
            except KubeError as exc:
                if not exc.api_missing:
                    raise
                await _report_gateway_api_missing(md, exc, kube)
                # Retried until the CRDs appear; what already serves keeps serving meanwhile.
                raise kopf.TemporaryError(f"{exc}; retrying", delay=GATEWAY_API_RETRY_SECONDS) from exc
            for dep, count in todo.scale.items():
                current = observed.get(("Deployment", dep))
                if current is None or (current.get("spec") or {}).get("replicas") != count:
                    log.info(
                        "scaling Deployment %s/%s to %d beside the autoscaled stable version", namespace, dep, count
                    )
                    await kube.scale_deployment(namespace, dep, count)
            for dep in todo.delete_deployments:
                log.info("deleting Deployment %s/%s: replaced by %s", namespace, dep, md["spec"]["version"])
                await kube.delete_deployment(namespace, dep)
            if todo.status is not None:
                await _emit(kube, md, todo.status.events)  # first: a restart in between cannot repeat them
                await _write_status(kube, md, todo.status.status)
                memo.metrics.observe_weights(namespace, name, md["spec"].get("model", ""), todo.status.status)
            if isinstance(todo, RolloutPlan):
                _count(memo.metrics, todo)
        except KubeError as exc:
            if exc.namespace_terminating:  # a child deleted with its namespace; the ModelDeployment goes next
                log.info("not re-creating the children of %s/%s: %s", namespace, name, exc)
                return
            if exc.transient:
                raise kopf.TemporaryError(str(exc), delay=2) from exc
            raise kopf.PermanentError(str(exc)) from exc
        finally:
            memo.metrics.reconcile_duration.labels(kind="ModelDeployment").observe(time.perf_counter() - started)


async def _current(
    cached: Callable[[str, str], dict[str, Any] | None], kind: str, namespace: str, name: str, kube: Kube
) -> dict[str, Any] | None:
    """The object from the index, or while the index does not hold our own last status write yet (its watch event
    is milliseconds behind, seconds on a saturated control plane) the object that write returned; read from the
    API if neither is there within half a second."""
    for _ in range(10):
        obj = cached(namespace, name)
        if obj is None:
            return None
        current = kube.current(kind, obj)
        if current is not None:
            return current
        await asyncio.sleep(0.05)
    if kind == "ModelDeployment":
        return await kube.get_model_deployment(namespace, name)
    return await kube.get_model_version(namespace, name)


async def _write_status(kube: Kube, md: dict[str, Any], status: dict[str, Any]) -> None:
    """Patch the ModelDeployment's status, unless the patch would change nothing."""
    if status_differs(md.get("status") or {}, status):
        meta = md["metadata"]
        await kube.patch_status("ModelDeployment", meta["namespace"], meta["name"], status)


GATEWAY_API_RETRY_SECONDS = 5.0


async def _report_gateway_api_missing(md: dict[str, Any], exc: KubeError, kube: Kube) -> None:
    """The gatewayAPI router needs the HTTPRoute CRD: say so as Degraded (not a permanent error)."""
    parsed = ModelDeployment.model_validate(md)
    problem = Problem(
        Reason.GATEWAY_API_MISSING,
        "trafficRouter gatewayAPI needs the Gateway API CRDs (HTTPRoute, gateway.networking.k8s.io/v1), "
        f"which this cluster does not serve ({exc}); install them, or use trafficRouter replicas or inPod",
    )
    update = degraded_status(parsed.metadata, parsed.status, problem, _now())
    await _emit(kube, md, update.events)
    await _write_status(kube, md, update.status)


POD_CHECK_GRACE_SECONDS = 10.0  # a Deployment younger than this is still starting: its pods are not read yet


async def _start_failures(
    survey: PodSurvey[dict[str, StartFailure]], namespace: str, name: str, deployments: list[dict[str, Any]]
) -> dict[str, StartFailure]:
    """What the model pods say about failed starts; asked only while a Deployment that is not rolled out has had time
    to start, so neither a steady ModelDeployment nor a healthy start costs a read (``podsurvey``: one LIST per
    namespace per 10 s answers all). A crash-looping pod's Deployment status events and the periodic resync bring
    its reason within about 30 s."""
    starting = [d for d in deployments if not DeploymentObservation.from_object(d, LABEL_VERSION).rolled_out]
    created = [parse_time(d["metadata"].get("creationTimestamp"), datetime.now(UTC)).timestamp() for d in starting]
    if not created or time.time() - min(created) < POD_CHECK_GRACE_SECONDS:
        return {}
    return await survey.of(namespace, name)


async def _plan(md: dict[str, Any], mvs: list[dict[str, Any]], deployments: list[dict[str, Any]], memo: Any) -> Plan:
    """The plain plan (with the start failures its pods report), or a rollout decision (measuring first when an
    analysis interval has passed; a rollout reconciles every second, and lists no pods)."""
    parsed = ModelDeployment.model_validate(md)
    if not uses_rollout(parsed):
        meta = parsed.metadata
        failures = await _start_failures(memo.start_failures, meta.namespace, meta.name, deployments)
        return plan(parsed, mvs, deployments, memo.config, _now(), failures)
    now = datetime.now(UTC)
    measurement = None
    if measurement_due(parsed.spec, parsed.status, now):
        measurement = await measure(memo.get("prometheus"), parsed, now)
    return plan_rollout(parsed, mvs, deployments, memo.config, now, measurement)


def _count(metrics: OperatorMetrics, todo: RolloutPlan) -> None:
    decision = todo.decision
    if decision is None:
        return
    if todo.status is not None and todo.status.events:
        metrics.rollout_decisions.labels(decision=str(decision.kind)).inc()
    if decision.outcome:
        metrics.rollouts.labels(outcome=decision.outcome).inc()
    if decision.measured:
        for m in decision.metrics:
            metrics.analysis_verdicts.labels(metric=m.name, verdict=str(m.verdict)).inc()


async def _emit(kube: Kube, md: dict[str, Any], events: list[tuple[str, str, str]]) -> None:
    """A decision's Events, created before its status is written, each exactly once (``events.py``)."""
    if not events:
        return
    obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", **md}
    for spec in events:  # one log line per decision, its fields structured (--log-format json)
        log.info("decision %s: %s", spec[1], spec[2], extra=decision_fields(md, spec))
    for event in event_objects(obj, events, now=_now(), instance=INSTANCE):
        try:
            await kube.create_event(event)
        except KubeError as exc:
            if exc.transient:
                raise  # retried with the decision: the status is not written without its Events
            log.warning("cannot record Event %s: %s", event["reason"], exc)


@kopf.on.resume(*MD)
@kopf.on.create(*MD)
@kopf.on.update(*MD, field="spec")
async def model_deployment_changed(namespace: str | None, name: str, memo: Any, **kw: Any) -> None:
    await reconcile(namespace or "default", name, memo, View.of(kw))


@kopf.on.update(*MD, field="spec.rollout.trafficRouter")
async def traffic_router_changed(namespace: str | None, name: str, old: Any, memo: Any, **_: Any) -> None:
    """Leaving the gatewayAPI router: its HTTPRoute would keep steering the Gateway with frozen weights."""
    if old != "gatewayAPI":
        return
    ns = namespace or "default"
    async with memo.locks[(ns, name)]:  # after any reconcile that still saw the old router
        try:
            md = await memo.kube.get_model_deployment(ns, name)
            router = (((md or {}).get("spec") or {}).get("rollout") or {}).get("trafficRouter")
            if md is not None and router != "gatewayAPI":
                log.info("deleting HTTPRoute %s/%s: trafficRouter is now %s", ns, name, router or "replicas")
                await memo.kube.delete_route(ns, name)
        except KubeError as exc:
            raise kopf.TemporaryError(str(exc), delay=5) from exc


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def child_deployment_event(
    type: str, namespace: str | None, labels: Mapping[str, str], memo: Any, **kw: Any
) -> None:
    owner = labels.get(LABEL_INSTANCE)
    if owner and type is not None:  # None: the initial listing, covered by resume
        await reconcile(namespace or "default", owner, memo, View.of(kw), joins=True)


@kopf.on.resume(*MV)
@kopf.on.create(*MV)
async def model_version_created(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, memo: Any, **kw: Any
) -> None:
    """Label the version (``kubectl get mv -l modelyard.dev/model=...``) and start its validation Job."""
    memo.sweeper.ready()
    labels = meta.get("labels") or {}
    if labels.get(LABEL_MODEL) != spec["model"] or labels.get(LABEL_VERSION) != spec["version"]:
        patch.metadata["labels"] = {LABEL_MODEL: spec["model"], LABEL_VERSION: spec["version"]}
    generation = int(meta.get("generation") or 0)
    current = dict(status)
    if validation.decided(current, generation):
        if (backfill := validation.backfilled_status(current, generation, _now())) is not None:
            patch.status.update(backfill)
        return
    config: OperatorConfig = memo.config
    try:
        mv = ModelVersion.model_validate(dict(body))
    except ValidationError as exc:
        failed = validation.Outcome(False, "InvalidSpec", parse_errors(exc))
        patch.status.update(validation.outcome_status(current, failed, generation, _now()))
        return
    if derived.pending(dict(body)):  # built first; validated once the build pushed it
        first = await derived.step(dict(body), memo, View.of(kw))
        if first is not None:
            patch.status.update(first)
        return
    refused = await _credentials_refusal(mv, memo.kube)
    if refused is not None:  # Failed: no Job and no model pod ever mounts the Secret
        patch.status.update(validation.outcome_status(current, refused, generation, _now()))
        kopf.event(body, type="Warning", reason=refused.reason, message=refused.message)
        return
    refused = validation.unsupported_format(mv)
    if refused is not None:
        patch.status.update(validation.outcome_status(current, refused, generation, _now()))
        return
    if config.model_validation == "off":
        patch.status.update(validation.skipped_status(current, generation, _now()))
        return
    try:
        await memo.kube.apply(validation.render_validation_job(mv, config))
    except KubeError as exc:
        raise kopf.TemporaryError(str(exc), delay=5) from exc
    if current.get("phase") != "Validating":
        patch.status.update(validation.validating_status(current, generation, _now()))


async def _credentials_refusal(mv: ModelVersion, kube: Kube) -> validation.Outcome | None:
    """The opt-in check of the version's credentialsSecret; a Secret not created yet is waited for (retried)."""
    name = mv.artifact.credentials_secret
    if not name:
        return None
    namespace = mv.metadata.namespace or "default"
    try:
        secret = await kube.get_secret_metadata(namespace, name)
    except KubeError as exc:
        raise kopf.TemporaryError(str(exc), delay=5) from exc
    if secret is None:
        raise kopf.TemporaryError(f"credentialsSecret {namespace}/{name} does not exist (yet)", delay=10)
    return validation.credentials_refusal(mv, secret)


async def record_validation(namespace: str, mv_name: str, memo: Any, view: View) -> None:
    """Write a finished validation's result into the ModelVersion's status, once per generation.

    Only a pod of the operator's own Job counts (:func:`validation.trusted_pods`): labels can be copied by anyone
    who may create pods in the namespace, owner UIDs cannot be made to match.
    """
    mv = await _current(view.model_version, "ModelVersion", namespace, mv_name, memo.kube)
    if mv is None:
        return
    status, generation = mv.get("status") or {}, int(mv["metadata"].get("generation") or 0)
    job = view.validation_job(namespace, mv_name)
    if validation.decided(status, generation) or job is None or not validation.job_finished(job):
        return
    pods = validation.trusted_pods(mv, job, await memo.kube.list_pods(namespace, {validation.LABEL_VALIDATES: mv_name}))
    now = datetime.now(UTC)
    outcomes = []
    for pod in pods:
        finished = validation.finished_at(pod)
        # an unreadable finishedAt counts as just now: the result gets its grace period rather than none
        finished_epoch = parse_time(finished, now).timestamp() if finished else None
        outcomes.append(validation.outcome_from_pod(pod, now.timestamp(), finished_epoch))
    if not pods:
        outcomes.append(validation.outcome_from_failed_job(job))
    for outcome in outcomes:
        if outcome is None:
            continue
        new_status = validation.outcome_status(status, outcome, generation, _now(), job)
        await memo.kube.patch_status("ModelVersion", namespace, mv_name, new_status)
        memo.metrics.validations.labels(outcome="Ready" if outcome.ok else outcome.reason).inc()
        event_type = "Normal" if outcome.ok else "Warning"
        kopf.event(cast(kopf.Body, mv), type=event_type, reason=outcome.reason, message=outcome.message)
        log.info("ModelVersion %s/%s: %s (%s)", namespace, mv_name, outcome.reason, outcome.message)
        return


@kopf.on.event("batch", "v1", "jobs", labels={validation.LABEL_VALIDATES: kopf.PRESENT, LABEL_MANAGED_BY: MANAGED_BY})
async def validation_job_event(type: str | None, body: kopf.Body, namespace: str | None, memo: Any, **kw: Any) -> None:
    if type == "DELETED" or not validation.job_finished(dict(body)):
        return
    mv_name = (body.get("metadata", {}).get("labels") or {})[validation.LABEL_VALIDATES]
    try:
        await record_validation(namespace or "default", mv_name, memo, View.of(kw))
    except KubeError as exc:
        log.warning("cannot record the validation of %s: %s", mv_name, exc)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_BUILDS: kopf.PRESENT, LABEL_MANAGED_BY: MANAGED_BY})
async def build_job_event(type: str | None, body: kopf.Body, namespace: str | None, memo: Any, **kw: Any) -> None:
    if type == "DELETED" or not validation.job_finished(dict(body)):
        return
    mv_name = (body.get("metadata", {}).get("labels") or {})[LABEL_BUILDS]
    await advance_build(namespace or "default", mv_name, memo, View.of(kw))


async def advance_build(namespace: str, name: str, memo: Any, view: View) -> None:
    """One step of a derived version's build (:mod:`derived`), one at a time per version, on its current status."""
    async with memo.locks[("ModelVersion", namespace, name)]:
        mv = await _current(view.model_version, "ModelVersion", namespace, name, memo.kube)
        if mv is None or not derived.pending(mv):
            return
        if validation.decided(mv.get("status") or {}, int(mv["metadata"].get("generation") or 0)):
            return
        await derived.advance(namespace, name, mv, memo, view)


async def check_validation(namespace: str, name: str, mv: dict[str, Any], memo: Any, view: View) -> None:
    """The sweeper's safety net for a version still Validating: a missed Job event, a result whose message came
    late (or never: NoResult), a Job deleted by hand or not created yet (applying it again is harmless)."""
    if derived.pending(mv):  # a derived version not built yet: its parent, its build Job
        await advance_build(namespace, name, memo, view)
        return
    job = view.validation_job(namespace, name)
    if job is not None and not validation.job_finished(job):
        await _report_unschedulable(namespace, name, mv, memo)
        return
    if job is not None:
        await record_validation(namespace, name, memo, view)
        return
    try:
        await memo.kube.apply(validation.render_validation_job(ModelVersion.model_validate(mv), memo.config))
    except (KubeError, ValidationError) as exc:
        log.warning("cannot re-create the validation Job of %s/%s: %s", namespace, name, exc)


async def _report_unschedulable(namespace: str, name: str, mv: dict[str, Any], memo: Any) -> None:
    """A validation pod that fits no node (a TensorRT plan without a GPU node): a condition says so."""
    try:
        why = await memo.unschedulable.of(namespace, name)  # one LIST per namespace per 10 s answers all versions
        if why is None:
            return
        status, generation = mv.get("status") or {}, int(mv["metadata"].get("generation") or 0)
        patch = validation.waiting_for_node_status(status, ModelVersion.model_validate(mv), why, generation, _now())
        if status_differs(status, patch):
            await memo.kube.patch_status("ModelVersion", namespace, name, patch)
    except (KubeError, ValidationError) as exc:
        log.warning("cannot check the validation pod of %s/%s: %s", namespace, name, exc)


@kopf.on.event(*MV)
async def model_version_event(type: str, namespace: str | None, spec: kopf.Spec, memo: Any, **kw: Any) -> None:
    """A version appeared, changed phase or went away: deployments that name its model re-evaluate, and when it
    appeared or went, those without a version of their own model that ask for its version (a mismatch names
    versions of other models, by name and model: neither changes while the object lives)."""
    if type is None:
        return
    ns, view = namespace or "default", View.of(kw)
    version = spec.get("version") if type in ("ADDED", "DELETED") else None
    for name in sorted(view.model_deployments_naming(ns, spec.get("model"), version)):
        await reconcile(ns, name, memo, view, joins=True)
