"""Kubernetes pod-spec semantics the agent needs: which images run, `$(VAR)` expansion, env and downward API."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

from localnode.kube import ApiError, Kube

# Only the project's own images run: their entrypoints are console scripts of this environment.
RUNNABLE_IMAGES = {"modelyard/runtime": ["modelyard-server"], "modelyard/operator": ["modelyard-operator"]}
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def _environment() -> list[Path]:
    """Folders the runnable commands need: this checkout (its .venv and the editable sources) and the Python
    installation the venv was made from."""
    paths = [VENV_BIN.parents[1]]
    cfg = VENV_BIN.parent / "pyvenv.cfg"
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                paths.append(Path(value.strip()).parent)
    return paths


ENVIRONMENT = _environment()
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PodError(RuntimeError):
    """The pod cannot run here; ``reason`` is the CamelCase reason put in its status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def image_entrypoint(image: str) -> list[str] | None:
    """The image's entrypoint when it is one of ours, else None (not runnable on the local node)."""
    for marker, entrypoint in RUNNABLE_IMAGES.items():
        if marker in image:
            return entrypoint
    return None


def resolve_executable(name: str, venv_bin: Path = VENV_BIN) -> str | None:
    if "/" in name:
        return name if Path(name).exists() else None
    if (venv_bin / name).exists():
        return str(venv_bin / name)
    return shutil.which(name, path=BASE_PATH)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`, the rest stays as is."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end != -1:
                name = text[i + 2 : end]
                out.append(env.get(name, text[i : end + 1]))
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def field_value(pod: dict[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    for prefix, key in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted(meta.get(key, {}).items()))
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(meta.get(key, {}).get(path[len(prefix) + 2 : -2], ""))
    raise PodError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")


def _quantity(value: str) -> float:
    suffixes = {
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 1024,
        "Mi": 1024**2,
        "Gi": 1024**3,
        "Ti": 1024**4,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * suffixes[suffix]
    return float(value)


def resource_value(container: dict[str, Any], ref: dict[str, Any], allocatable: dict[str, str]) -> str:
    kind, _, name = ref["resource"].partition(".")
    resources = container.get("resources", {})
    raw = resources.get(kind, {}).get(name) or (resources.get("limits", {}).get(name) if kind == "requests" else None)
    raw = raw or allocatable.get(name, "0")
    divisor = _quantity(str(ref.get("divisor", "1")))
    value = _quantity(str(raw)) / divisor
    return str(int(-(-value // 1)))  # round up, as the kubelet does


def _key_ref(kube: Kube, namespace: str, kind: str, ref: dict[str, Any]) -> str | None:
    obj = kube.get_or_none(f"/api/v1/namespaces/{namespace}/{kind}/{ref['name']}")
    data = (obj or {}).get("data", {})
    if ref["key"] in data:
        value = data[ref["key"]]
        return base64.b64decode(value).decode() if kind == "secrets" else str(value)
    if ref.get("optional"):
        return None
    raise PodError("CreateContainerConfigError", f"{kind[:-1]} {ref['name']!r} has no key {ref['key']!r}")


def container_env(
    kube: Kube, pod: dict[str, Any], container: dict[str, Any], pod_ip: str, host_ip: str, allocatable: dict[str, str]
) -> dict[str, str]:
    """The container's environment as the kubelet builds it (service links aside)."""
    ns = pod["metadata"]["namespace"]
    env = {"PATH": f"{VENV_BIN}:{BASE_PATH}", "HOSTNAME": pod["metadata"]["name"], "HOME": "/"}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            if key not in source:
                continue
            obj = kube.get_or_none(f"/api/v1/namespaces/{ns}/{kind}/{source[key]['name']}")
            if obj is None and not source[key].get("optional"):
                raise PodError("CreateContainerConfigError", f"{kind[:-1]} {source[key]['name']!r} not found")
            for k, v in (obj or {}).get("data", {}).items():
                env[prefix + k] = base64.b64decode(v).decode() if kind == "secrets" else str(v)
    for item in container.get("env", []):
        if "valueFrom" not in item:
            env[item["name"]] = expand(item.get("value", ""), env)
            continue
        source = item["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in source:
            value = resource_value(container, source["resourceFieldRef"], allocatable)
        elif "configMapKeyRef" in source:
            value = _key_ref(kube, ns, "configmaps", source["configMapKeyRef"])
        elif "secretKeyRef" in source:
            value = _key_ref(kube, ns, "secrets", source["secretKeyRef"])
        else:
            raise PodError("CreateContainerConfigError", f"unsupported valueFrom in env {item['name']!r}")
        if value is not None:
            env[item["name"]] = value
    return env


def volume_files(kube: Kube, pod: dict[str, Any], volume: dict[str, Any], pod_ip: str) -> dict[str, bytes] | None:
    """The files of a configMap / secret / projected / downwardAPI volume (relative path -> bytes).
    None for an emptyDir; PodError for kinds the local node does not support."""
    ns = pod["metadata"]["namespace"]

    def from_object(kind: str, ref: dict[str, Any]) -> dict[str, bytes]:
        name = ref.get("name") or ref.get("secretName", "")
        try:
            obj = kube.get(f"/api/v1/namespaces/{ns}/{kind}/{name}")
        except ApiError as exc:
            if exc.status == 404 and ref.get("optional"):
                return {}
            raise PodError("ContainerCreating", f"{kind[:-1]} {name!r}: {exc}") from None
        data = {
            k: base64.b64decode(v) if kind == "secrets" else str(v).encode() for k, v in obj.get("data", {}).items()
        }
        if kind == "configmaps":
            data |= {k: base64.b64decode(v) for k, v in obj.get("binaryData", {}).items()}
        if "items" in ref:
            return {i["path"]: data[i["key"]] for i in ref["items"] if i["key"] in data}
        return data

    def downward(items: list[dict[str, Any]]) -> dict[str, bytes]:
        out = {}
        for item in items:
            if "fieldRef" in item:
                out[item["path"]] = field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, "").encode()
        return out

    if "emptyDir" in volume:
        return None
    if "configMap" in volume:
        return from_object("configmaps", volume["configMap"])
    if "secret" in volume:
        return from_object("secrets", volume["secret"])
    if "downwardAPI" in volume:
        return downward(volume["downwardAPI"].get("items", []))
    if "projected" in volume:
        files: dict[str, bytes] = {}
        for src in volume["projected"].get("sources", []):
            if "configMap" in src:
                files |= from_object("configmaps", src["configMap"])
            elif "secret" in src:
                files |= from_object("secrets", src["secret"])
            elif "downwardAPI" in src:
                files |= downward(src["downwardAPI"].get("items", []))
            # serviceAccountToken / clusterTrustBundle sources: not provided by the local node
        return files
    kind = next((k for k in volume if k != "name"), "?")
    raise PodError(
        "VolumeNotSupported", f"volume {volume['name']!r}: {kind} volumes are not supported by the local node"
    )
