"""What to do for a ModelDeployment, computed from what was observed (pure).

``plan`` takes the ModelDeployment, the ModelVersions of its namespace and the Deployments it owns, and
returns the objects to apply, the Deployments to delete and the status to write. The kopf handler does
the I/O around it; this module can be tested with plain dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modelyard_operator.api.common import ObjectMeta
from modelyard_operator.api.modeldeployment import ModelDeployment, ModelDeploymentStatus
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.names import LABEL_VERSION
from modelyard_operator.render import render_children
from modelyard_operator.status import (
    DeploymentObservation,
    Problem,
    Reason,
    StatusUpdate,
    degraded_status,
    serving_status,
)

Obj = dict[str, Any]


@dataclass
class Plan:
    apply: list[Obj] = field(default_factory=list)
    delete_deployments: list[str] = field(default_factory=list)
    status: StatusUpdate | None = None


def parse_errors(exc: ValidationError) -> str:
    """A one-line summary of a pydantic error, in the manifest's field names."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def find_model_version(md: ModelDeployment, candidates: list[Obj], config: OperatorConfig) -> ModelVersion | Problem:
    """The ModelVersion that ``md.spec.version`` names, or the reason there is none to serve."""
    model, version = md.spec.model, md.spec.version
    same_version: list[ModelVersion] = []
    for obj in candidates:
        try:
            mv = ModelVersion.model_validate(obj)
        except ValidationError:
            continue  # an object the CRD schema let through but we cannot read: not a candidate
        if mv.spec.version == version:
            same_version.append(mv)
    matches = [mv for mv in same_version if mv.spec.model == model]
    if not matches:
        if same_version:
            names = ", ".join(f"{mv.metadata.name} (model {mv.spec.model})" for mv in same_version)
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
        return Problem(Reason.MODEL_VERSION_FAILED, f"ModelVersion {mv.metadata.name} failed validation")
    if mv.spec.artifact.digest is None and not config.allow_unpinned_artifacts:
        return Problem(
            Reason.ARTIFACT_NOT_PINNED,
            f"ModelVersion {mv.metadata.name} has no artifact.digest and the operator does not allow "
            "unpinned artifacts",
        )
    if mv.spec.artifact.uri.startswith("file://") and not config.allow_file_uris:
        return Problem(
            Reason.FILE_URI_NOT_ALLOWED,
            f"ModelVersion {mv.metadata.name} uses a file:// URI, which the operator does not allow",
        )
    return mv


def plan(
    md_obj: Obj,
    model_versions: list[Obj],
    deployments: list[Obj],
    config: OperatorConfig,
    now: str,
) -> Plan:
    """Decide what to apply, delete and report for one ModelDeployment (strategy ``immediate``)."""
    md = ModelDeployment.model_validate(md_obj)
    found = find_model_version(md, model_versions, config)
    if isinstance(found, Problem):
        return Plan(status=degraded_status(md.metadata, md.status, found, now))
    observed = [DeploymentObservation.from_object(d, LABEL_VERSION) for d in deployments]
    target = found.spec.version
    result = Plan(apply=render_children(md, found, config))
    current = next((d for d in observed if d.version == target), None)
    if current is not None and current.rolled_out and current.replicas == md.spec.replicas:
        # The new version serves at full capacity: only now do the old ones go.
        result.delete_deployments = sorted(d.name for d in observed if d.version != target)
        observed = [current]
    result.status = serving_status(md, target, observed, now, config.cluster_domain)
    return result


def invalid_status(md_obj: Obj, exc: ValidationError, now: str) -> StatusUpdate | None:
    """Status for a ModelDeployment whose spec does not parse (None when even its metadata does not)."""
    try:
        meta = ObjectMeta.model_validate(md_obj["metadata"])
        status = ModelDeploymentStatus.model_validate(md_obj.get("status") or {})
    except (ValidationError, KeyError):
        return None
    return degraded_status(meta, status, Problem(Reason.INVALID_SPEC, parse_errors(exc)), now)
