"""kopf handlers: parse, observe through the adapter, call pure code, apply, write status.

Every trigger (a ModelDeployment changed, one of its Deployments changed, a ModelVersion appeared or
changed, the periodic resync) ends in the same :func:`reconcile`, serialised per ModelDeployment, so the
outcome depends only on the cluster's state, never on which event came first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from pydantic import ValidationError

from modelyard_operator.api.common import GROUP, VERSION
from modelyard_operator.config import OperatorConfig
from modelyard_operator.kube import Kube, KubeError
from modelyard_operator.metrics import OperatorMetrics
from modelyard_operator.names import LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_MODEL, LABEL_VERSION, MANAGED_BY
from modelyard_operator.reconcile import invalid_status, plan
from modelyard_operator.status import set_condition

MD = (GROUP, VERSION, "modeldeployments")
MV = (GROUP, VERSION, "modelversions")
log = logging.getLogger("modelyard.operator")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Progress and diff-base in annotations: status stays ours and matches the CRD schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modelyard.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="modelyard.dev")
    settings.posting.level = logging.WARNING  # our own Events say what matters; kopf's are noise
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    memo.setdefault("config", OperatorConfig())
    memo.setdefault("metrics", OperatorMetrics())
    memo.kube = Kube()
    memo.locks = collections.defaultdict(asyncio.Lock)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.kube.close()


async def reconcile(namespace: str, name: str, memo: kopf.Memo) -> None:
    """Bring one ModelDeployment's children and status in line with its spec."""
    kube: Kube = memo.kube
    config: OperatorConfig = memo.config
    started = time.perf_counter()
    async with memo.locks[(namespace, name)]:
        try:
            md = await kube.get_model_deployment(namespace, name)
            if md is None or md["metadata"].get("deletionTimestamp"):
                return
            mvs = await kube.list_model_versions(namespace)
            deployments = await kube.list_owned_deployments(namespace, name)
            try:
                todo = plan(md, mvs, deployments, config, _now())
            except ValidationError as exc:
                update = invalid_status(md, exc, _now())
                if update is not None:
                    await kube.patch_status("ModelDeployment", namespace, name, update.status)
                    _emit(md, update.events)
                return
            for obj in todo.apply:
                await kube.apply(obj)
            for dep in todo.delete_deployments:
                log.info("deleting Deployment %s/%s: replaced by %s", namespace, dep, md["spec"]["version"])
                await kube.delete_deployment(namespace, dep)
            if todo.status is not None:
                await kube.patch_status("ModelDeployment", namespace, name, todo.status.status)
                _emit(md, todo.status.events)
        except KubeError as exc:
            if exc.transient:
                raise kopf.TemporaryError(str(exc), delay=2) from exc
            raise kopf.PermanentError(str(exc)) from exc
        finally:
            memo.metrics.reconcile_duration.labels(kind="ModelDeployment").observe(time.perf_counter() - started)


def _emit(obj: dict[str, Any], events: list[tuple[str, str, str]]) -> None:
    for type_, reason, message in events:
        kopf.event(cast(kopf.Body, obj), type=type_, reason=reason, message=message)


@kopf.on.resume(*MD)
@kopf.on.create(*MD)
@kopf.on.update(*MD, field="spec")
async def model_deployment_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    await reconcile(namespace or "default", name, memo)


@kopf.timer(*MD, interval=30.0, initial_delay=30.0)
async def model_deployment_resync(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    await reconcile(namespace or "default", name, memo)


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def child_deployment_event(
    type: str, namespace: str | None, labels: Mapping[str, str], memo: Any, **_: Any
) -> None:
    owner = labels.get(LABEL_INSTANCE)
    if owner and type is not None:  # None: the initial listing, covered by resume
        await reconcile(namespace or "default", owner, memo)


@kopf.on.resume(*MV)
@kopf.on.create(*MV)
async def model_version_created(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    """Label the version for ``kubectl get mv -l modelyard.dev/model=...`` and mark it Pending."""
    labels = meta.get("labels") or {}
    if labels.get(LABEL_MODEL) != spec["model"] or labels.get(LABEL_VERSION) != spec["version"]:
        patch.metadata["labels"] = {LABEL_MODEL: spec["model"], LABEL_VERSION: spec["version"]}
    if not status.get("phase"):
        patch.status["phase"] = "Pending"
        patch.status["observedGeneration"] = meta.get("generation")
        patch.status["conditions"] = set_condition(
            [],
            "ArtifactVerified",
            "Unknown",
            "AwaitingValidation",
            "the artifact has not been verified yet",
            now=_now(),
            generation=int(meta.get("generation") or 0),
        )


@kopf.on.event(*MV)
async def model_version_event(type: str, namespace: str | None, spec: kopf.Spec, memo: Any, **_: Any) -> None:
    """A version appeared, changed phase or went away: deployments that name its model or its version
    re-evaluate (the latter to report a version of the wrong model as a mismatch)."""
    if type is None:
        return
    ns = namespace or "default"
    for md in await memo.kube.list_model_deployments(ns):
        md_spec = md.get("spec", {})
        if md_spec.get("model") == spec.get("model") or md_spec.get("version") == spec.get("version"):
            await reconcile(ns, md["metadata"]["name"], memo)
