"""The only module that talks to the Kubernetes API (adapter over lightkube).

Objects cross this boundary as plain dictionaries; API exceptions become :class:`KubeError`, which the
handlers turn into kopf's temporary errors.
"""

from __future__ import annotations

from typing import Any, cast

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Pod, Service
from lightkube.types import PatchType

from modelyard_operator.api.common import GROUP, VERSION
from modelyard_operator.config import FIELD_MANAGER
from modelyard_operator.names import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY

Obj = dict[str, Any]

ModelVersionResource = create_namespaced_resource(GROUP, VERSION, "ModelVersion", "modelversions")
ModelDeploymentResource = create_namespaced_resource(GROUP, VERSION, "ModelDeployment", "modeldeployments")
HTTPRouteResource = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")

_KINDS: dict[tuple[str, str], Any] = {
    ("apps/v1", "Deployment"): Deployment,
    ("v1", "Service"): Service,
    ("v1", "ConfigMap"): ConfigMap,
    ("batch/v1", "Job"): Job,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTPRouteResource,
}


def _dict(obj: Any) -> Obj:
    return cast(Obj, obj.to_dict())


class KubeError(Exception):
    """An API call failed; ``transient`` says whether retrying may help."""

    def __init__(self, message: str, *, status: int = 0, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind  # the kind of the object the failed call was about, when there was one

    @property
    def api_missing(self) -> bool:
        """The API server does not serve this kind at all (its CRD is not installed)."""
        return self.status == 404 and self.kind == "HTTPRoute"

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status == 409 or self.status == 429 or self.status >= 500


def _translate(exc: ApiError, what: str, *, kind: str = "") -> KubeError:
    return KubeError(f"{what}: {exc.status.message}", status=exc.status.code or 0, kind=kind)


class Kube:
    """Thin async facade over the API calls the operator makes."""

    def __init__(self, client: AsyncClient | None = None) -> None:
        self._client = client or AsyncClient(field_manager=FIELD_MANAGER)

    async def close(self) -> None:
        await self._client.close()

    async def _list(self, resource: Any, what: str, namespace: str, labels: dict[str, str] | None = None) -> list[Obj]:
        """Every object of ``resource`` in ``namespace`` (matching ``labels``); ``what`` names them in errors."""
        try:
            return [
                _dict(o)
                async for o in self._client.list(resource, namespace=namespace, labels=labels)  # type: ignore[arg-type]
            ]
        except ApiError as exc:
            raise _translate(exc, f"listing {what}") from exc

    async def _get(self, resource: Any, kind: str, namespace: str, name: str) -> Obj | None:
        """One object, or None when it does not exist."""
        try:
            obj = await self._client.get(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise _translate(exc, f"reading {kind} {namespace}/{name}") from exc
        return _dict(obj)

    async def list_model_versions(self, namespace: str) -> list[Obj]:
        return await self._list(ModelVersionResource, f"ModelVersions in {namespace}", namespace)

    async def list_model_deployments(self, namespace: str) -> list[Obj]:
        return await self._list(ModelDeploymentResource, f"ModelDeployments in {namespace}", namespace)

    async def get_model_deployment(self, namespace: str, name: str) -> Obj | None:
        return await self._get(ModelDeploymentResource, "ModelDeployment", namespace, name)

    async def list_pods(self, namespace: str, labels: dict[str, str]) -> list[Obj]:
        return await self._list(Pod, f"pods in {namespace}", namespace, labels)

    async def get_model_version(self, namespace: str, name: str) -> Obj | None:
        return await self._get(ModelVersionResource, "ModelVersion", namespace, name)

    async def list_owned_deployments(self, namespace: str, md_name: str) -> list[Obj]:
        labels = {LABEL_INSTANCE: md_name, LABEL_MANAGED_BY: MANAGED_BY}
        return await self._list(Deployment, f"Deployments of {namespace}/{md_name}", namespace, labels)

    async def apply(self, obj: Obj) -> None:
        """Server-side apply under the operator's field manager, taking over conflicting fields."""
        resource = _KINDS[(obj["apiVersion"], obj["kind"])]
        meta = obj["metadata"]
        what = f"applying {obj['kind']} {meta['namespace']}/{meta['name']}"
        try:
            await self._client.patch(
                resource,
                meta["name"],
                obj,
                namespace=meta["namespace"],
                patch_type=PatchType.APPLY,
                field_manager=FIELD_MANAGER,
                force=True,
            )
        except ApiError as exc:
            raise _translate(exc, what, kind=obj["kind"]) from exc
        except Exception as exc:
            # An answer that is not a Kubernetes Status (a kind the API server does not serve at all:
            # "404 page not found") comes through as the HTTP client's own error.
            code = getattr(getattr(exc, "response", None), "status_code", None)
            if not isinstance(code, int):
                raise
            raise KubeError(f"{what}: HTTP {code} from the API server", status=code, kind=obj["kind"]) from exc

    async def _delete(self, resource: Any, kind: str, namespace: str, name: str) -> None:
        """Delete one object; one that is gone already, or a kind the API server does not serve, is fine."""
        try:
            await self._client.delete(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise _translate(exc, f"deleting {kind} {namespace}/{name}", kind=kind) from exc
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) != 404:  # see apply
                raise

    async def delete_deployment(self, namespace: str, name: str) -> None:
        await self._delete(Deployment, "Deployment", namespace, name)

    async def delete_route(self, namespace: str, name: str) -> None:
        """Delete the gatewayAPI router's HTTPRoute; gone already, or no such API at all, is fine."""
        await self._delete(HTTPRouteResource, "HTTPRoute", namespace, name)

    async def patch_status(self, kind: str, namespace: str, name: str, status: Obj) -> None:
        resource = ModelDeploymentResource if kind == "ModelDeployment" else ModelVersionResource
        try:
            await self._client.patch(
                resource.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
            )
        except ApiError as exc:
            if exc.status.code != 404:
                raise _translate(exc, f"writing the status of {kind} {namespace}/{name}") from exc
