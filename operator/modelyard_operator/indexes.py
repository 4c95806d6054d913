"""In-memory views of the cluster, kept current by kopf's watch streams (``@kopf.index``).

A reconcile reads the ModelDeployment, the ModelVersions it names, its Deployments, Services and NetworkPolicies and the
validation pods from these indexes instead of the API: one watch per kind replaces a GET and two LISTs per
reconcile (at 1,000 ModelDeployments the difference between a quiet API server and a busy one). kopf runs
handlers only once every index holds the initial listing.

An index can trail the operator's own writes by one watch event: :meth:`Kube.stale` tells when the cached
object is older than the operator's last status write, and the handler then reads it from the API, so a
decision is never taken twice on a status that was already replaced.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from modelyard_operator.api.common import GROUP, VERSION
from modelyard_operator.inpod import ANNOTATION_VERSIONS
from modelyard_operator.names import LABEL_BUILDS, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from modelyard_operator.reconcile import MISMATCH_EXAMPLES
from modelyard_operator.status import Reason
from modelyard_operator.validation import LABEL_VALIDATES

Obj = dict[str, Any]
MD = (GROUP, VERSION, "modeldeployments")
MV = (GROUP, VERSION, "modelversions")
OWNED = {LABEL_MANAGED_BY: MANAGED_BY}


def _meta(body: Mapping[str, Any]) -> Obj:
    """Metadata without managedFields (often the largest part of an object, and never read here)."""
    return {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}


def _copy(body: kopf.Body) -> Obj:
    obj = {key: body[key] for key in ("apiVersion", "kind", "spec", "status") if key in body}
    obj["metadata"] = _meta(body)
    return obj


def observed_deployment(body: Mapping[str, Any]) -> Obj:
    """What health, the write check and an inPod roll's pacing read of a Deployment: metadata, desired replicas,
    ``minReadySeconds``, the versions its pod template loads (the inPod router's annotation), status."""
    spec = body.get("spec") or {}
    kept: Obj = {"replicas": spec.get("replicas")}
    if "minReadySeconds" in spec:
        kept["minReadySeconds"] = spec["minReadySeconds"]
    loads = (((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_VERSIONS)
    if loads is not None:
        kept["template"] = {"metadata": {"annotations": {ANNOTATION_VERSIONS: loads}}}
    return {"kind": "Deployment", "metadata": _meta(body), "spec": kept, "status": body.get("status") or {}}


def _observed_job(body: kopf.Body) -> Obj:
    """What the trust check and completion read of a validation Job: metadata, its pod's containers, status."""
    pod_spec = (((body.get("spec") or {}).get("template") or {}).get("spec")) or {}
    keep = ("name", "image", "command", "args")
    containers = [{k: c[k] for k in keep if k in c} for c in pod_spec.get("containers") or []]
    return {"kind": "Job", "metadata": _meta(body), "spec": {"template": {"spec": {"containers": containers}}},
            "status": body.get("status") or {}}  # fmt: skip


@kopf.index(*MD)
def md_index(namespace: str | None, name: str, body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    """ModelDeployments by name; their names by the model they ask for and, while they have no ModelVersion of
    their own, by the version they ask for (a version of another model is news only to those: their status
    names it as a mismatch)."""
    ns = namespace or "default"
    keys: dict[Any, Any] = {("name", ns, name): _copy(body), ("model", ns, spec.get("model")): name}
    conditions = (body.get("status") or {}).get("conditions") or []
    if any(c.get("reason") in _WITHOUT_VERSION for c in conditions):
        keys[("lacking-version", ns, spec.get("version"))] = name
    return keys


_WITHOUT_VERSION = {Reason.MODEL_VERSION_NOT_FOUND, Reason.MODEL_VERSION_MISMATCH}


@kopf.index(*MV)
def mv_index(namespace: str | None, name: str, body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    """ModelVersions by name, by model and version (what a ModelDeployment names) and by version alone."""
    ns = namespace or "default"
    obj = _copy(body)
    return {
        ("name", ns, name): obj,
        ("model-version", ns, spec.get("model"), spec.get("version")): obj,
        ("version", ns, spec.get("version")): obj,
    }


@kopf.index("apps", "v1", "deployments", labels={**OWNED, LABEL_INSTANCE: kopf.PRESENT})
def deployment_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The operator's Deployments by the ModelDeployment they belong to."""
    return {(namespace or "default", labels[LABEL_INSTANCE]): observed_deployment(body)}


@kopf.index("", "v1", "services", labels={**OWNED, LABEL_INSTANCE: kopf.PRESENT})
def service_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The operator's Services by the ModelDeployment they belong to (metadata only: enough to skip writes)."""
    return {(namespace or "default", labels[LABEL_INSTANCE]): {"metadata": _meta(body), "kind": "Service"}}


@kopf.index("networking.k8s.io", "v1", "networkpolicies", labels={**OWNED, LABEL_INSTANCE: kopf.PRESENT})
def network_policy_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The operator's NetworkPolicies by the ModelDeployment they belong to (metadata only: enough to skip writes)."""
    return {(namespace or "default", labels[LABEL_INSTANCE]): {"metadata": _meta(body), "kind": "NetworkPolicy"}}


@kopf.index("batch", "v1", "jobs", labels={**OWNED, LABEL_VALIDATES: kopf.PRESENT})
def validation_job_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Validation Jobs by the ModelVersion they validate (Jobs, not their pods: the operator watches no pods)."""
    return {(namespace or "default", labels[LABEL_VALIDATES]): _observed_job(body)}


@kopf.index("batch", "v1", "jobs", labels={**OWNED, LABEL_BUILDS: kopf.PRESENT})
def build_job_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Build Jobs (spec.derivedFrom) by the ModelVersion they build."""
    return {(namespace or "default", labels[LABEL_BUILDS]): _observed_job(body)}


def _iter(index: Any, key: Any) -> Iterator[Any]:
    try:
        yield from index[key]
    except KeyError:
        return


def _all(index: Any, key: Any) -> list[Any]:
    return list(_iter(index, key))


@dataclass(frozen=True)
class View:
    """The indexes a handler was given (kopf passes each index as a keyword argument named after it)."""

    mds: Any
    mvs: Any
    deployments: Any
    services: Any
    validation_jobs: Any
    network_policies: Any
    build_jobs: Any

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> View:
        return cls(
            kwargs["md_index"],
            kwargs["mv_index"],
            kwargs["deployment_index"],
            kwargs["service_index"],
            kwargs["validation_job_index"],
            kwargs["network_policy_index"],
            kwargs["build_job_index"],
        )

    def model_deployment(self, namespace: str, name: str) -> Obj | None:
        found = _all(self.mds, ("name", namespace, name))
        return found[0] if found else None

    def all_model_deployments(self) -> list[tuple[tuple[str, str], Obj]]:
        """((namespace, name), object) of every ModelDeployment."""
        return [((k[1], k[2]), objs[0]) for k in list(self.mds) if k[0] == "name" and (objs := _all(self.mds, k))]

    def all_model_versions(self) -> list[tuple[tuple[str, str], Obj]]:
        """((namespace, name), object) of every ModelVersion."""
        return [((k[1], k[2]), objs[0]) for k in list(self.mvs) if k[0] == "name" and (objs := _all(self.mvs, k))]

    def model_deployments_naming(self, namespace: str, model: str | None, version: str | None) -> set[str]:
        """Names of the ModelDeployments that ask for ``model``, and of those without a version of their own model
        that ask for ``version`` (none for None)."""
        lacking = _all(self.mds, ("lacking-version", namespace, version)) if version is not None else []
        return {*_all(self.mds, ("model", namespace, model)), *lacking}

    def model_version(self, namespace: str, name: str) -> Obj | None:
        found = _all(self.mvs, ("name", namespace, name))
        return found[0] if found else None

    def model_versions(self, namespace: str, model: str | None, versions: Iterable[str | None]) -> list[Obj]:
        """The ModelVersions of ``model`` with one of ``versions``; for the first version, when ``model`` has none,
        those of other models (a ModelDeployment reports them as a mismatch)."""
        wanted = [v for v in dict.fromkeys(versions) if v]
        found = [mv for v in wanted for mv in _all(self.mvs, ("model-version", namespace, model, v))]
        if wanted and not any((mv.get("spec") or {}).get("version") == wanted[0] for mv in found):
            # a few are enough to name in the mismatch: with a thousand models at version "1", all of them were
            # parsed by every reconcile of a ModelDeployment whose own version was not in the index yet
            found += itertools.islice(_iter(self.mvs, ("version", namespace, wanted[0])), MISMATCH_EXAMPLES + 1)
        return found

    def owned_deployments(self, namespace: str, md_name: str) -> list[Obj]:
        return _all(self.deployments, (namespace, md_name))

    def owned_services(self, namespace: str, md_name: str) -> list[Obj]:
        return _all(self.services, (namespace, md_name))

    def owned_network_policies(self, namespace: str, md_name: str) -> list[Obj]:
        return _all(self.network_policies, (namespace, md_name))

    def validation_job(self, namespace: str, mv_name: str) -> Obj | None:
        found = _all(self.validation_jobs, (namespace, mv_name))
        return found[0] if found else None

    def build_job(self, namespace: str, mv_name: str) -> Obj | None:
        found = _all(self.build_jobs, (namespace, mv_name))
        return found[0] if found else None
