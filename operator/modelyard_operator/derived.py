"""Derived versions (``spec.derivedFrom``) through their build: wait for the parent, run the build Job, record its
outcome, then hand the pushed artifact to the usual validation. Each call moves one step and is safe to repeat: the
create handler, the build Job's events and the sweeper (every version still Validating) all call :func:`advance`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from modelyard_operator import build, validation
from modelyard_operator.api.derived import BuildStatus
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.indexes import View
from modelyard_operator.kube import KubeError
from modelyard_operator.metrics import OperatorMetrics
from modelyard_operator.names import LABEL_BUILDS
from modelyard_operator.status import status_differs

log = logging.getLogger("modelyard.operator")
Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pending(mv: Obj) -> bool:
    """A derived version whose build has not pushed it yet (the validation path does not apply to it yet)."""
    spec, status = mv.get("spec") or {}, mv.get("status") or {}
    return bool(spec.get("derivedFrom")) and not (status.get("build") or {}).get("uri")


def _parent(view: View, namespace: str, mv: ModelVersion) -> Obj | None:
    assert mv.spec.derived_from is not None
    version = mv.spec.derived_from.version
    found = view.model_versions(namespace, mv.spec.model, [version])
    return next((p for p in found if (p.get("spec") or {}).get("model") == mv.spec.model
                 and (p.get("spec") or {}).get("version") == version), None)  # fmt: skip


async def step(mv_obj: Obj, memo: Any, view: View) -> Obj | None:
    """The status a derived version's next step leads to (None: nothing to write yet)."""
    mv = ModelVersion.model_validate(mv_obj)
    namespace, name = mv.metadata.namespace or "default", mv.metadata.name
    status, generation, now = dict(mv_obj.get("status") or {}), int(mv.metadata.generation or 0), _now()
    config = memo.config
    if config.artifact_store is None:
        refused = validation.Outcome(False, "NoArtifactStore", "derivedFrom needs the installation's artifact store: "
                                     "set the chart's operator.artifactStore.uri (--artifact-store)")  # fmt: skip
        return validation.outcome_status(status, refused, generation, now)
    parent_obj = _parent(view, namespace, mv)
    assert mv.spec.derived_from is not None
    if parent_obj is None:
        why = f"no ModelVersion of model {mv.spec.model} with version {mv.spec.derived_from.version} in {namespace}"
        return build.building_status(status, generation, now, "WaitingForParent", why)
    parent_name, phase = parent_obj["metadata"]["name"], (parent_obj.get("status") or {}).get("phase")
    if phase == "Failed":
        failed = validation.Outcome(False, "ParentFailed", f"the parent ModelVersion {parent_name} failed")
        return build.build_failed_status(status, failed, {"parent": parent_name}, generation, now)
    parent = ModelVersion.model_validate(parent_obj)
    if phase != "Ready" or not parent.built:
        why = f"the parent ModelVersion {parent_name} is {phase or 'Pending'}"
        return build.building_status(status, generation, now, "WaitingForParent", why)
    job = view.build_job(namespace, name)
    if job is None:
        secret = None
        if config.artifact_store_secret:
            secret = await memo.kube.get_secret_metadata(namespace, config.artifact_store_secret)
            if secret is None:
                why = f"the artifact store's credentials Secret {namespace}/{config.artifact_store_secret} is missing"
                return build.building_status(status, generation, now, "WaitingForSecret", why)
        if (refused_secret := validation.secret_refusal(config.artifact_store_secret, secret)) is not None:
            return validation.outcome_status(status, refused_secret, generation, now)
        await memo.kube.apply(build.render_build_job(mv, parent, config))
        return build.building_status(status, generation, now, "Building", f"build Job running from {parent_name}")
    if not validation.job_finished(job):
        return build.building_status(status, generation, now, "Building", f"build Job running from {parent_name}")
    pods = await memo.kube.list_pods(namespace, {LABEL_BUILDS: name})
    trusted = validation.trusted_pods(mv_obj, job, pods, name=build.job_name(name))
    outcomes = [build.outcome_from_pod(p) for p in trusted] or [validation.outcome_from_failed_job(job)]
    outcome = next((o for o in outcomes if o is not None), None)
    if outcome is None:
        return None
    record = build.build_status(parent, outcome, job, config)
    metrics: OperatorMetrics = memo.metrics
    metrics.validations.labels(outcome="Built" if outcome.ok else outcome.reason).inc()
    kopf.event(cast(kopf.Body, mv_obj), type="Normal" if outcome.ok else "Warning", reason=outcome.reason,
               message=outcome.message)  # fmt: skip
    log.info("ModelVersion %s/%s: %s (%s)", namespace, name, outcome.reason, outcome.message)
    if not outcome.ok:
        return build.build_failed_status(status, outcome, record, generation, now)
    built = mv.model_copy(update={"status": mv.status.model_copy(update={"build": BuildStatus.model_validate(record)})})
    await memo.kube.apply(validation.render_validation_job(built, config))
    return build.built_status(status, record, generation, now)


async def advance(namespace: str, name: str, mv_obj: Obj, memo: Any, view: View) -> None:
    """Take the next step of a derived version and write its status when it changed."""
    try:
        new = await step(mv_obj, memo, view)
        if new is not None and status_differs(mv_obj.get("status") or {}, new):
            await memo.kube.patch_status("ModelVersion", namespace, name, new)
    except KubeError as exc:
        log.warning("cannot advance the build of %s/%s: %s", namespace, name, exc)
