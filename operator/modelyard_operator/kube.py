"""The only module that talks to the Kubernetes API (adapter over lightkube).

Objects cross this boundary as plain dictionaries; API exceptions become :class:`KubeError`, which the
handlers turn into kopf's temporary errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.core.resource import api_info
from lightkube.core.selector import build_selector
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.batch_v1 import Job
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, Event, Pod, Service
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.types import PatchType

from modelyard_operator.api.common import GROUP, VERSION
from modelyard_operator.config import FIELD_MANAGER

SCALE_FIELD_MANAGER = f"{FIELD_MANAGER}-scale"  # replicas of a canary sized beside an autoscaler

Obj = dict[str, Any]

ModelVersionResource = create_namespaced_resource(GROUP, VERSION, "ModelVersion", "modelversions")
ModelDeploymentResource = create_namespaced_resource(GROUP, VERSION, "ModelDeployment", "modeldeployments")
HTTPRouteResource = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")

_KINDS: dict[tuple[str, str], Any] = {
    ("apps/v1", "Deployment"): Deployment,
    ("v1", "Service"): Service,
    ("v1", "ConfigMap"): ConfigMap,
    ("batch/v1", "Job"): Job,
    ("networking.k8s.io/v1", "NetworkPolicy"): NetworkPolicy,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTPRouteResource,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): HorizontalPodAutoscaler,
}
# children the operator does not watch: an unchanged one is not sent again (an edit of it is restored after a restart)
_UNWATCHED = {"HorizontalPodAutoscaler"}
LIST_PAGE = 100  # objects per page of a LIST (limit and continue)
READ_TIMEOUT_SECONDS = 30.0  # below the API server's own limit for a request (--request-timeout, 60 s)
ANSWER_HOLD_SECONDS = 60.0  # how long the object a status write returned stands in for a cache not caught up


def _dict(obj: Any) -> Obj:
    return cast(Obj, obj.to_dict())


async def _plain_list(client: Any, resource: Any, namespace: str, labels: dict[str, Any] | None) -> list[Obj]:
    """A LIST through lightkube's request path (its URL, auth and errors), its answer decoded as plain JSON: turning
    each item into lightkube's typed object and back into a dict cost the operator an eighth of its CPU at scale."""
    selector = build_selector(labels) if labels else None
    request = client.prepare_request(
        "list", res=resource, namespace=namespace, params={"limit": LIST_PAGE, "labelSelector": selector}
    )
    info = api_info(resource).resource
    api_version = f"{info.group}/{info.version}" if info.group else info.version
    items: list[Obj] = []
    while True:
        answer = await client.send(client.build_adapter_request(request))
        client.raise_for_status(answer)
        body = json.loads(answer.content)
        for item in body.get("items") or []:  # a LIST's items carry no apiVersion and kind: the typed path added them
            items.append({"apiVersion": api_version, "kind": info.kind, **item})
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return items
        request.params["continue"] = token


def _revision(obj: Obj) -> int:
    """resourceVersion as a number: etcd's revision, which only grows (0 when it is not a number)."""
    raw = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(raw) if raw.isdigit() else 0


Mark = tuple[str, str, int]  # (uid, "generation" or "resourceVersion", its number)


def _mark(obj: Obj) -> Mark | None:
    """What grows when anyone changes an object's desired state: its generation where it has one (status updates
    leave it alone), else its resourceVersion; with its uid, since a re-created object counts again. None when the
    number cannot be read (an opaque resourceVersion): then the object is simply applied."""
    meta = obj.get("metadata") or {}
    if meta.get("generation"):
        return (str(meta.get("uid", "")), "generation", int(meta["generation"]))
    raw = str(meta.get("resourceVersion") or "")
    return (str(meta.get("uid", "")), "resourceVersion", int(raw)) if raw.isdigit() else None


def unchanged_since(applied: Mark | None, observed: Obj) -> bool:
    """Whether ``observed`` (a cached copy) shows the object as this operator's apply left it, or older: a watch
    that has not caught up with our own apply yet shows a lower number, and anyone's change after it a higher one."""
    seen = _mark(observed)
    if applied is None or seen is None:
        return False
    return seen[:2] == applied[:2] and seen[2] <= applied[2]


class KubeError(Exception):
    """An API call failed; ``transient`` says whether retrying may help."""

    def __init__(self, message: str, *, status: int = 0, kind: str = "", causes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind  # the kind of the object the failed call was about, when there was one
        self.causes = causes  # the reasons in the answer's details.causes (Kubernetes' Status)

    @property
    def namespace_terminating(self) -> bool:
        """A create refused because its namespace is being deleted: nothing to do there any more."""
        return self.status == 403 and "NamespaceTerminating" in self.causes

    @property
    def api_missing(self) -> bool:
        """The API server does not serve this kind at all (its CRD is not installed)."""
        return self.status == 404 and self.kind == "HTTPRoute"

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status == 409 or self.status == 429 or self.status >= 500


@contextlib.contextmanager
def _transport(what: str) -> Iterator[None]:
    """A connection that failed or timed out is a transient KubeError (retried), not a handler crash."""
    try:
        yield
    except httpx2.TransportError as exc:
        raise KubeError(f"{what}: {type(exc).__name__} talking to the API server: {exc}", status=0) from exc


def _translate(exc: ApiError, what: str, *, kind: str = "") -> KubeError:
    details = exc.status.details
    causes = tuple(c.reason for c in (details.causes or []) if c.reason) if details is not None else ()
    return KubeError(f"{what}: {exc.status.message}", status=exc.status.code or 0, kind=kind, causes=causes)


class Kube:
    """Thin async facade over the API calls the operator makes."""

    def __init__(self, client: AsyncClient | None = None) -> None:
        # No limit on waiting for a pooled connection: at scale hundreds of reconciles queue for the pool's 100
        # connections, and the wait is the queue, not a failure. An answer may take READ_TIMEOUT_SECONDS: on a
        # saturated control plane creating a Service took 8-10 s (its ClusterIP allocated), and a client that gave
        # up at 10 s sent the same work again while the server finished the first.
        timeout = httpx2.Timeout(10.0, read=READ_TIMEOUT_SECONDS, pool=None)
        self._client = client or AsyncClient(field_manager=FIELD_MANAGER, timeout=timeout)
        # what each apply sent (a digest) and the generation (or resourceVersion) the object had afterwards, by
        # the ModelDeployment (namespace, name) the object belongs to: an unchanged object is not sent again
        self._applied: dict[tuple[str, str], dict[tuple[str, str], tuple[str, Mark | None]]] = {}
        # the resourceVersion each status write returned, so a cached object older than our own write is not used,
        # and the object that write returned, until the cache has caught up with it (then only the number stays)
        self._written: dict[tuple[str, str, str], int] = {}
        self._answers: dict[tuple[str, str, str], tuple[float, Obj]] = {}  # oldest first

    async def close(self) -> None:
        await self._client.close()

    async def _list(self, resource: Any, what: str, namespace: str, labels: dict[str, Any] | None = None) -> list[Obj]:
        """Every object of ``resource`` in ``namespace`` (matching ``labels``); ``what`` names them in errors. Pages
        of ``LIST_PAGE`` objects: decoding a thousand pods at once would hold the event loop for a tenth of a
        second."""
        try:
            with _transport(f"listing {what}"):
                inner = getattr(self._client, "_client", None)
                if not hasattr(inner, "prepare_request"):  # a lightkube without its generic client: typed objects
                    pages = self._client.list(resource, namespace=namespace, labels=labels, chunk_size=LIST_PAGE)
                    return [_dict(o) async for o in pages]
                return await _plain_list(inner, resource, namespace, labels)
        except ApiError as exc:
            raise _translate(exc, f"listing {what}") from exc

    async def _get(self, resource: Any, kind: str, namespace: str, name: str) -> Obj | None:
        """One object, or None when it does not exist."""
        try:
            with _transport(f"reading {kind} {namespace}/{name}"):
                obj = await self._client.get(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise _translate(exc, f"reading {kind} {namespace}/{name}") from exc
        return _dict(obj)

    async def get_model_deployment(self, namespace: str, name: str) -> Obj | None:
        return await self._get(ModelDeploymentResource, "ModelDeployment", namespace, name)

    async def list_pods(self, namespace: str, labels: dict[str, Any]) -> list[Obj]:
        return await self._list(Pod, f"pods in {namespace}", namespace, labels)

    async def get_secret_metadata(self, namespace: str, name: str) -> Obj | None:
        """A Secret's metadata only (labels, annotations), or None when it does not exist: the API server answers
        with a PartialObjectMetadata, so the Secret's values never reach the operator."""
        what = f"reading the metadata of Secret {namespace}/{name}"
        http = self._client._client._client  # lightkube's configured httpx client (base URL, auth, TLS)
        with _transport(what):
            resp = await http.get(
                f"/api/v1/namespaces/{namespace}/secrets/{name}",
                headers={"Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"},
            )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise KubeError(f"{what}: HTTP {resp.status_code}", status=resp.status_code, kind="Secret")
        body = resp.json()
        return {"metadata": body.get("metadata") or {}}

    async def get_model_version(self, namespace: str, name: str) -> Obj | None:
        return await self._get(ModelVersionResource, "ModelVersion", namespace, name)

    async def apply_child(self, obj: Obj, owner: str, observed: Obj | None) -> bool:
        """Apply ``obj`` (a child of ModelDeployment ``owner``) unless this operator applied the very same
        object before and ``observed`` (the cached copy) shows nobody changed it since; True when sent."""
        meta = obj["metadata"]
        key, slot = (meta["namespace"], owner), (obj["kind"], meta["name"])
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        sent = self._applied.get(key, {}).get(slot)
        if sent is not None and sent[0] == digest:
            if observed is not None and unchanged_since(sent[1], observed):
                return False
            if observed is None and obj["kind"] in _UNWATCHED:
                return False
        result = await self.apply(obj)
        self._applied.setdefault(key, {})[slot] = (digest, _mark(result))
        return True

    def forget_owner(self, namespace: str, owner: str) -> None:
        """The ModelDeployment is gone: its children go with it (garbage collection), and so do our records."""
        self._applied.pop((namespace, owner), None)
        self._written.pop(("ModelDeployment", namespace, owner), None)
        self._answers.pop(("ModelDeployment", namespace, owner), None)

    def stale(self, kind: str, cached: Obj) -> bool:
        """Whether ``cached`` is older than the last status this operator wrote to that object."""
        meta = cached.get("metadata") or {}
        written = self._written.get((kind, meta.get("namespace", ""), meta.get("name", "")), 0)
        return _revision(cached) < written

    def current(self, kind: str, cached: Obj) -> Obj | None:
        """``cached``, or, while it is older than this operator's last status write, the object that write returned:
        the state the watch is about to bring (a change someone made since comes after it, as it would anyway). None
        when the cache is stale and that answer is no longer held."""
        meta = cached.get("metadata") or {}
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        if not self.stale(kind, cached):
            self._answers.pop(key, None)
            return cached
        held = self._answers.get(key)
        return held[1] if held is not None else None

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply under the operator's field manager, taking over conflicting fields."""
        resource = _KINDS[(obj["apiVersion"], obj["kind"])]
        meta = obj["metadata"]
        what = f"applying {obj['kind']} {meta['namespace']}/{meta['name']}"
        try:
            with _transport(what):
                result = await self._client.patch(
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
        return _dict(result)

    async def _delete(self, resource: Any, kind: str, namespace: str, name: str) -> None:
        """Delete one object; one that is gone already, or a kind the API server does not serve, is fine."""
        try:
            with _transport(f"deleting {kind} {namespace}/{name}"):
                await self._client.delete(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise _translate(exc, f"deleting {kind} {namespace}/{name}", kind=kind) from exc
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) != 404:  # see apply
                raise

    async def delete_deployment(self, namespace: str, name: str) -> None:
        await self._delete(Deployment, "Deployment", namespace, name)

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Set a Deployment's replicas with a merge patch under its own field manager (a canary beside an autoscaled
        stable version): an apply that leaves the field out then never takes it back, so the pods stay when the HPA
        takes the Deployment over at the promotion."""
        what = f"scaling Deployment {namespace}/{name} to {replicas}"
        try:
            with _transport(what):
                await self._client.patch(
                    Deployment,
                    name,
                    {"spec": {"replicas": replicas}},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                    field_manager=SCALE_FIELD_MANAGER,
                )
        except ApiError as exc:
            raise _translate(exc, what, kind="Deployment") from exc

    async def delete_autoscaler(self, namespace: str, name: str) -> None:
        """Delete the HorizontalPodAutoscaler of ModelDeployment ``name`` (autoscaling turned off)."""
        await self._delete(HorizontalPodAutoscaler, "HorizontalPodAutoscaler", namespace, name)
        self._applied.get((namespace, name), {}).pop(("HorizontalPodAutoscaler", name), None)

    async def delete_route(self, namespace: str, name: str) -> None:
        """Delete the gatewayAPI router's HTTPRoute; gone already, or no such API at all, is fine."""
        await self._delete(HTTPRouteResource, "HTTPRoute", namespace, name)

    async def create_event(self, event: Obj) -> bool:
        """Create one Event (``events.event_objects``); False when one of that name exists already (the same
        decision's Event, written before a restart)."""
        meta = event["metadata"]
        what = f"creating Event {meta['namespace']}/{meta['name']}"
        try:
            with _transport(what):
                await self._client.create(cast(Event, Event.from_dict(event)))
        except ApiError as exc:
            if exc.status.code == 409:
                return False
            raise _translate(exc, what, kind="Event") from exc
        return True

    async def patch_status(self, kind: str, namespace: str, name: str, status: Obj) -> None:
        resource = ModelDeploymentResource if kind == "ModelDeployment" else ModelVersionResource
        try:
            with _transport(f"writing the status of {kind} {namespace}/{name}"):
                result = await self._client.patch(
                    resource.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
                )
        except ApiError as exc:
            if exc.status.code != 404:
                raise _translate(exc, f"writing the status of {kind} {namespace}/{name}") from exc
            return
        answer, key, now = _dict(result), (kind, namespace, name), time.monotonic()
        (answer.get("metadata") or {}).pop("managedFields", None)  # as the indexes hold objects: never read here
        self._written[key] = _revision(answer)
        self._answers.pop(key, None)
        self._answers[key] = (now, answer)
        # Those of objects not read since (a version validated, an object deleted) go once the watch has surely
        # brought them: the held answers stay bounded by the write rate.
        oldest = next(iter(self._answers))
        while self._answers[oldest][0] < now - ANSWER_HOLD_SECONDS:
            del self._answers[oldest]
            oldest = next(iter(self._answers))


class LeaseStore:
    """The coordination.k8s.io/v1 Lease that elects the acting operator (``leader.py``): read, create, and update
    with the resourceVersion it was read at, so two candidates never both win the same round (409 for one)."""

    def __init__(self, namespace: str, name: str, client: AsyncClient | None = None) -> None:
        self.namespace, self.name = namespace, name
        self._client = client or AsyncClient(field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(5.0))

    async def close(self) -> None:
        await self._client.close()

    async def get(self) -> Obj | None:
        try:
            with _transport(f"reading Lease {self.namespace}/{self.name}"):
                return _dict(await self._client.get(Lease, self.name, namespace=self.namespace))
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise _translate(exc, f"reading Lease {self.namespace}/{self.name}", kind="Lease") from exc

    async def create(self, spec: Obj) -> bool:
        """Create the Lease holding ``spec`` (no timestamps: the first renewal writes them); False when another
        candidate created it first."""
        meta = {"name": self.name, "namespace": self.namespace}
        lease = cast(Lease, Lease.from_dict({"metadata": meta, "spec": spec}))
        try:
            with _transport(f"creating Lease {self.namespace}/{self.name}"):
                await self._client.create(lease)
        except ApiError as exc:
            if exc.status.code == 409:
                return False
            raise _translate(exc, f"creating Lease {self.namespace}/{self.name}", kind="Lease") from exc
        return True

    async def update(self, resource_version: str, spec: Obj) -> bool:
        """Merge ``spec`` into the Lease if nobody changed it since ``resource_version``; False when someone did."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        try:
            with _transport(f"updating Lease {self.namespace}/{self.name}"):
                await self._client.patch(Lease, self.name, body, namespace=self.namespace, patch_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status.code in (404, 409):
                return False
            raise _translate(exc, f"updating Lease {self.namespace}/{self.name}", kind="Lease") from exc
        return True
