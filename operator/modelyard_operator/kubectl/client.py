"""The plugin's only door to the API server (lightkube, synchronous) and to Prometheus (its HTTP API)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from modelyard_operator.api.common import GROUP, VERSION

Obj = dict[str, Any]
ModelDeploymentRes = create_namespaced_resource(GROUP, VERSION, "ModelDeployment", "modeldeployments")
ModelVersionRes = create_namespaced_resource(GROUP, VERSION, "ModelVersion", "modelversions")
FIELD_MANAGER = "kubectl-modelyard"


class PluginError(Exception):
    """A failure to show the user in one line (exit status 1)."""


def _plain(obj: Any) -> Obj:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class Cluster:
    """The objects of one namespace, read and written as plain dicts."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        try:
            if kubeconfig:
                config: SingleConfig | None = KubeConfig.from_file(kubeconfig).get(context_name=context)
            else:
                config = KubeConfig.from_env().get(context_name=context)
        except Exception as exc:  # lightkube raises ConfigError, OSError, KeyError for a missing context
            raise PluginError(f"cannot read the kubeconfig: {exc}") from exc
        if config is None:
            raise PluginError("no kubeconfig: set KUBECONFIG or pass --kubeconfig")
        self.namespace = namespace or config.namespace or "default"
        self.client = Client(config, namespace=self.namespace, field_manager=FIELD_MANAGER)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            if exc.status.code == 404:
                raise PluginError(f"{what} not found in namespace {self.namespace}") from exc
            raise PluginError(f"{what}: {exc.status.message}") from exc
        except httpx2.HTTPError as exc:
            raise PluginError(f"cannot reach the API server: {exc}") from exc

    def md(self, name: str) -> Obj:
        return _plain(self._call(f"ModelDeployment {name}", self.client.get, ModelDeploymentRes, name))

    def mv(self, name: str) -> Obj:
        return _plain(self._call(f"ModelVersion {name}", self.client.get, ModelVersionRes, name))

    def mds(self) -> list[Obj]:
        return [_plain(o) for o in self._call("ModelDeployments", lambda: list(self.client.list(ModelDeploymentRes)))]

    def mvs(self, model: str | None = None) -> list[Obj]:
        items = [_plain(o) for o in self._call("ModelVersions", lambda: list(self.client.list(ModelVersionRes)))]
        return [mv for mv in items if model is None or (mv.get("spec") or {}).get("model") == model]

    def pods(self, labels: dict[str, str]) -> list[Obj]:
        selector: dict[str, Any] = dict(labels)
        return [_plain(p) for p in self._call("pods", lambda: list(self.client.list(Pod, labels=selector)))]

    def patch_md(self, name: str, patch: Obj) -> Obj:
        return _plain(
            self._call(
                f"ModelDeployment {name}", self.client.patch, ModelDeploymentRes, name, patch,
                patch_type=PatchType.MERGE,
            )
        )  # fmt: skip

    def logs(self, pod: str, container: str, tail: int | None, follow: bool) -> Iterator[str]:
        lines: Iterator[str] = self._call(
            f"logs of pod {pod}", self.client.log, pod, container=container, tail_lines=tail, follow=follow
        )
        return lines


def prometheus_value(url: str, promql: str, timeout: float = 5.0) -> float | None:
    """One instant query's single value; None when there is no data (an error says what Prometheus said)."""
    try:
        resp = httpx2.get(f"{url.rstrip('/')}/api/v1/query", params={"query": promql}, timeout=timeout)
        body = resp.json()
    except (httpx2.HTTPError, ValueError) as exc:
        raise PluginError(f"Prometheus at {url}: {exc}") from exc
    if body.get("status") != "success":
        raise PluginError(f"Prometheus at {url}: {body.get('error', resp.text[:200])}")
    result = body["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN (no traffic in the window) is no data


def default_prometheus() -> str | None:
    return os.environ.get("MODELYARD_PROMETHEUS_URL")
