"""The inPod router's objects: one Deployment whose pods load the stable version and the canary, and the ConfigMap
``<md>-version-weights`` with the server's version weights (and shadow setting) and the list of versions the pods'
loader sidecar holds beside the pod's own.

How the canary gets into the pods:

- **Held through the versions list** (when the canary's artifact needs nothing the pod does not already mount: the
  same credentials, trust material, cache and image, and no warm-up samples): the canary is an entry of the
  ConfigMap's ``versions.json``, which a loader sidecar follows (``--versions-file``): dynamic loading's own sidecar,
  or in static loading a sidecar that does nothing else (the pod's own version still comes from the init container
  before the server starts). Loading or unloading the canary changes the ConfigMap only: no pod is replaced, so the
  model never has more pods than ``spec.replicas``.
- **A second loader in the pod template** otherwise (a canary that needs other mounts): adding or removing it
  rolls the pods one at a time, paced with 2 or more replicas (:func:`pace`) so that draining pods never take the
  model above ``spec.replicas + 1`` pods.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from modelyard_operator.api.modeldeployment import ModelDeployment
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig, runtime_image_for
from modelyard_operator.names import common_labels, version_slug
from modelyard_operator.render import (
    DRAIN_SECONDS,
    LOADER_API_PORT,
    MODELS_DIR,
    TERMINATION_LOG,
    admin_port,
    admin_token_mounts,
    artifact_access,
    owner_reference,
    render_deployment,
    serve_arg,
    server_admin_args,
    serving_loader_args,
    sidecar_startup_probe,
    warmup_samples_containers,
    work_mounts,
)
from modelyard_operator.rollout.capacity import paced_roll
from modelyard_operator.rollout.routers import MODEL_CONFIG_KEY, render_weights_config_map
from modelyard_operator.runtime_config import version_config, version_config_args

Obj = dict[str, Any]

ANNOTATION_VERSIONS = "modelyard.dev/versions"
MODEL_CONFIG_DIR = "/etc/modelyard/model-config"
VERSIONS_KEY = "versions.json"
VERSIONS_DIR = "/etc/modelyard/versions"
CANARY_LOADER_API_PORTS = (8091, 8092, 8093, 8094, 8095)  # the second loader sidecar (dynamic mode)
# A paced roll's new pod stays Ready this long before the next old pod goes: longer than an old pod's drain and exit
PACED_MIN_READY_SECONDS = DRAIN_SECONDS + 5


def weights_config_map_name(md_name: str) -> str:
    return f"{md_name}-version-weights"


def canary_loader_port(md: ModelDeployment) -> int:
    """The loopback port of the inPod router's second loader sidecar (dynamic mode), clear of every other port."""
    taken = {md.spec.serving.http_port, md.spec.serving.grpc_port, LOADER_API_PORT, admin_port(md)}
    return next(p for p in CANARY_LOADER_API_PORTS if p not in taken)  # four ports cannot take all five


def _without_signature_uri(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--signature":
            skip = True  # the URI is per artifact (a versions entry carries its own); the trust material is not
        else:
            out.append(arg)
    return out


def held_by_list(md: ModelDeployment, stable: ModelVersion, other: ModelVersion, config: OperatorConfig) -> bool:
    """Whether ``other`` can join ``stable``'s pods through the versions list, without a change to their template:
    the same image, the same loader flags and mounts (apart from a signature's URI), and no warm-up samples (those
    need an init container)."""
    if other.spec.warmup.samples is not None:
        return False
    if runtime_image_for(config, [stable.spec.format]) != runtime_image_for(config, [other.spec.format]):
        return False
    mine, theirs = artifact_access(stable, config), artifact_access(other, config)
    return _without_signature_uri(mine[0]) == _without_signature_uri(theirs[0]) and mine[1:] == theirs[1:]


def versions_entry(mv: ModelVersion) -> Obj:
    """A ``versions.json`` entry: what the sidecar's ``POST /fetch`` takes, and the version's server settings."""
    spec, artifact = mv.spec, mv.artifact
    entry: Obj = {"model": spec.model, "version": spec.version, "uri": artifact.uri}
    if artifact.digest:
        entry["digest"] = artifact.digest
    if artifact.signature is not None:
        entry["signature"] = artifact.signature.uri
    if spec.format != "onnx":
        entry["format"] = spec.format
    compiled = mv.status.compiled
    if spec.format == "pmml" and compiled is not None and compiled.digest:
        entry["compiledDigest"] = compiled.digest
    entry["config"] = version_config(mv)
    return entry


def render_in_pod_deployment(
    md: ModelDeployment,
    stable: ModelVersion,
    canary: ModelVersion | None,
    config: OperatorConfig,
    *,
    replicas: int,
) -> Obj:
    """The inPod router's Deployment: the stable version's, with the canary loaded into the same pods.

    The server splits unversioned requests by ``version_weights``: the ConfigMap is mounted as
    ``<MODEL_CONFIG_DIR>/<model>/config.yaml`` and passed as ``--model-config-dir``, which the server
    overlays on the repository's config and re-reads when Kubernetes updates the mount, so a weight change
    reaches running pods without a restart. Its ``versions.json`` is mounted into a loader sidecar, which holds the
    versions listed there (see the module's docstring).
    """
    deployment = render_deployment(md, stable, config, replicas=replicas)
    template = deployment["spec"]["template"]
    pod = template["spec"]
    listed = canary is not None and held_by_list(md, stable, canary, config)
    if canary is not None and not listed:
        _add_canary_loader(md, stable, canary, config, pod)
    pod["volumes"].append(
        {
            "name": "model-config",
            "configMap": {
                "name": weights_config_map_name(md.metadata.name),
                "items": [{"key": MODEL_CONFIG_KEY, "path": f"{md.spec.model}/{MODEL_CONFIG_KEY}"}],
            },
        }
    )
    server = pod["containers"][0]
    server["args"] += ["--model-config-dir", MODEL_CONFIG_DIR]
    if canary is not None and not listed:
        server["args"] += serve_arg(canary)  # both versions: a pod missing either leaves the endpoints
        server["args"] += version_config_args(canary)  # each version runs on its own backend and warm-up
    server["volumeMounts"].append({"name": "model-config", "mountPath": MODEL_CONFIG_DIR, "readOnly": True})
    items = [{"key": VERSIONS_KEY, "path": VERSIONS_KEY}]
    pod["volumes"].append(
        {"name": "versions", "configMap": {"name": weights_config_map_name(md.metadata.name), "items": items}}
    )
    if md.spec.loading.mode == "dynamic":
        follower = pod["initContainers"][0]  # the pod's loader sidecar follows the list too
    else:
        follower = _versions_sidecar(md, stable, config, pod["initContainers"][0])
        pod["initContainers"].append(follower)  # after the pod's own version is fetched
    follower["volumeMounts"].append({"name": "versions", "mountPath": VERSIONS_DIR, "readOnly": True})
    follower["args"] += ["--versions-file", f"{VERSIONS_DIR}/{VERSIONS_KEY}"]
    in_template = [stable.spec.version] + ([canary.spec.version] if canary is not None and not listed else [])
    loads = [stable.spec.version] + ([canary.spec.version] if canary is not None else [])
    deployment["metadata"]["annotations"] = {ANNOTATION_VERSIONS: ",".join(loads)}  # what the pods hold
    annotations = {**template["metadata"].get("annotations", {}), ANNOTATION_VERSIONS: ",".join(in_template)}
    template["metadata"]["annotations"] = annotations  # the loaders in the template
    return deployment


def template_loaders(deployment: Obj) -> int | None:
    """How many versions the loaders in a Deployment's pod template fetch (None: not an inPod Deployment)."""
    annotations = ((deployment.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
    loaded = annotations.get(ANNOTATION_VERSIONS)
    return None if loaded is None else len(loaded.split(","))


def is_paced(deployment: Obj) -> bool:
    return int((deployment.get("spec") or {}).get("minReadySeconds") or 0) > 0


def pace(deployment: Obj, live_loaders: int | None, live_paced: bool, live_settled: bool) -> Obj:
    """``deployment`` (rendered by :func:`render_in_pod_deployment`) rolling without a surge when
    :func:`modelyard_operator.rollout.capacity.paced_roll` says so, given the live one's :func:`template_loaders`
    (None: not there yet), :func:`is_paced` and whether its last roll has settled."""
    spec = deployment["spec"]
    loaders = template_loaders(deployment) or 1
    if paced_roll(int(spec.get("replicas") or 1), loaders, live_loaders, live_paced, live_settled):
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
        spec["minReadySeconds"] = PACED_MIN_READY_SECONDS
    return deployment


def _versions_sidecar(md: ModelDeployment, stable: ModelVersion, config: OperatorConfig, loader: Obj) -> Obj:
    """Static loading: a loader sidecar that only follows the versions list (the init container ``loader`` fetched
    the pod's own version, ``--dest``, which it never touches), with the stable version's access to the store."""
    access_args, _, access_mounts = artifact_access(stable, config)
    dest = f"{MODELS_DIR}/{stable.spec.model}/{stable.spec.version}"
    sidecar = copy.deepcopy(loader)
    sidecar["name"] = "versions-loader"
    sidecar["restartPolicy"] = "Always"
    listen = ["--listen", f"127.0.0.1:{canary_loader_port(md)}"]
    failure = ["--termination-log", TERMINATION_LOG]
    sidecar["args"] = ["sidecar", "--dest", dest, *access_args, *server_admin_args(md), *listen, *failure]
    sidecar["volumeMounts"] = [*work_mounts(), *access_mounts, *admin_token_mounts(md)]
    return sidecar


def _add_canary_loader(
    md: ModelDeployment, stable: ModelVersion, canary: ModelVersion, config: OperatorConfig, pod: Obj
) -> None:
    """A second loader for ``canary`` in the pod template (its own credentials and trust material, beside the
    stable's), its warm-up samples, and the runtime-tf image when the canary is a SavedModel."""
    loader = copy.deepcopy(pod["initContainers"][0])
    loader["name"] = f"loader-{version_slug(canary.spec.version)}"[:63]
    canary_args, canary_volumes, canary_mounts = artifact_access(canary, config, suffix="-canary")
    loader["args"] = serving_loader_args(md, canary, canary_args)
    if md.spec.loading.mode == "dynamic":  # a second sidecar: its API on a port of its own, and probed there
        loader["args"] += ["--listen", f"127.0.0.1:{canary_loader_port(md)}"]
        loader["startupProbe"] = sidecar_startup_probe(canary_loader_port(md))
    loader["volumeMounts"] = [*work_mounts(), *canary_mounts]
    if md.spec.loading.mode == "dynamic":
        loader["volumeMounts"] += admin_token_mounts(md)
    pod["initContainers"].append(loader)
    present = {v["name"] for v in pod["volumes"]}  # the node cache, when both versions use it
    pod["volumes"] += [v for v in canary_volumes if v["name"] not in present]
    pod["initContainers"] += warmup_samples_containers(canary, config, pod["volumes"], suffix="-canary")
    if canary.spec.format == "savedmodel":  # the server loads the canary too: it needs TensorFlow
        image = runtime_image_for(config, [stable.spec.format, canary.spec.format])
        for container in [*pod["initContainers"], *pod["containers"]]:
            if container["image"] == config.runtime_image:
                container["image"] = image


def render_version_weights(
    md: ModelDeployment, weights: dict[str, int], shadow: str | None = None, held: Sequence[ModelVersion] = ()
) -> Obj:
    """The inPod router's ConfigMap: version weights, and the server's shadow setting while ``shadow`` (the canary's
    version) shadows; and ``versions.json``, the ``held`` versions the pods' loader sidecars fetch."""
    meta = md.metadata
    spec = md.spec.rollout.shadow
    setting = None
    if shadow is not None and spec is not None:
        setting = {
            "version": shadow,
            "percent": spec.percent,
            "compare": spec.compare,
            "max_abs_diff": spec.max_abs_diff,
        }
    config_map = render_weights_config_map(
        name=weights_config_map_name(meta.name),
        namespace=meta.namespace,
        labels=common_labels(meta.name, md.spec.model),
        owner=owner_reference("ModelDeployment", meta.name, meta.uid),
        weights=weights,
        shadow=setting,
    )
    entries = [versions_entry(mv) for mv in held]
    config_map["data"][VERSIONS_KEY] = json.dumps({"versions": entries}, sort_keys=True, indent=1)
    return config_map
